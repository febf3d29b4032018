//! Errors as RFC 9457 problem details (`application/problem+json`): every refusal carries
//! the typed error's name (`error`, the same name `ledgerctl --json` prints), whether the same
//! request may succeed later (`retryable`), and the error's own fields. The status is chosen
//! by one exhaustive match per error type, so a new error forces a decision here.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger_client::ClientError;
use ledger_core::ledger::journal::ReadError;
use ledger_core::LedgerError;
use ledger_wire::api::ApiError;
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

/// The body of every error answer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// `urn:ledger:problem:<error>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The error's name.
    pub title: String,
    /// The HTTP status, repeated.
    pub status: u16,
    /// What went wrong, in words (never a secret).
    pub detail: String,
    /// The error's name: `InsufficientFunds`, `WrongOtp`, `Forbidden`, ...
    pub error: String,
    /// Whether the same request, sent again later with the same `Idempotency-Key`, may
    /// succeed.
    pub retryable: bool,
    /// The error's own fields (`balance_fen`, `retry_after_ms`, ...), when it has any.
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<serde_json::Value>,
}

/// An error answer.
#[derive(Clone, Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub body: Box<ProblemBody>,
    /// Seconds, for 429 and 503.
    pub retry_after_s: Option<u64>,
    /// For 401: the `WWW-Authenticate` challenge.
    pub authenticate: bool,
}

/// Every error answer an operation may give, for the OpenAPI document.
#[allow(dead_code)]
#[derive(IntoResponses)]
pub enum Problems {
    /// The request is malformed or a value is out of its range.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(#[to_schema] ProblemBody),
    /// No credentials, or unknown ones: a client certificate from the cluster CA, or
    /// `Authorization: Bearer <API key>`.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(ProblemBody),
    /// The caller's role may not do this, or not to this merchant's records.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(ProblemBody),
    /// No such record.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(ProblemBody),
    /// The state forbids it now (already paid, step out of order), or the `Idempotency-Key`
    /// was used for another request.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(ProblemBody),
    /// The request body did not arrive in time.
    #[response(status = 408, content_type = "application/problem+json")]
    Timeout(ProblemBody),
    /// The request body is larger than the gateway accepts.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(ProblemBody),
    /// The request body is not `application/json`.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(ProblemBody),
    /// The ledger refused: insufficient funds, a wrong code, over a limit, ...
    #[response(status = 422, content_type = "application/problem+json")]
    Unprocessable(ProblemBody),
    /// Too many codes for this phone, too many `Idempotency-Key`s in use by the caller, or
    /// too many client sessions in all: see `Retry-After`.
    #[response(status = 429, content_type = "application/problem+json")]
    TooManyRequests(ProblemBody),
    /// The cluster answered in a way this gateway does not know (a version mismatch between
    /// the gateway and the nodes): an operator's matter; the request's outcome is unknown.
    #[response(status = 502, content_type = "application/problem+json")]
    BadGateway(ProblemBody),
    /// The cluster did not answer in time. A write's outcome is then unknown: send it again
    /// with the same `Idempotency-Key` to learn it, without applying it twice.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(ProblemBody),
}

/// What a request was, for what its failure means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Read,
    /// A write under an `Idempotency-Key`: a retry with it learns the outcome.
    KeyedWrite,
    /// A write without one: a retry may apply it a second time.
    UnkeyedWrite,
}

/// The serde variant name of an error and its fields, if it has any.
fn name_and_fields<E: Serialize>(error: &E) -> (String, Option<serde_json::Value>) {
    match serde_json::to_value(error) {
        Ok(serde_json::Value::String(name)) => (name, None),
        Ok(serde_json::Value::Object(map)) if map.len() == 1 => {
            let (name, fields) = map.into_iter().next().expect("one entry");
            let fields = match fields {
                serde_json::Value::Object(_) => Some(fields),
                serde_json::Value::Null => None,
                other => Some(serde_json::json!({ "value": other })),
            };
            (name, fields)
        }
        _ => ("Error".into(), None),
    }
}

impl Problem {
    pub fn new(status: StatusCode, error: &str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            body: Box::new(ProblemBody {
                kind: format!("urn:ledger:problem:{error}"),
                title: error.into(),
                status: status.as_u16(),
                detail: detail.into(),
                error: error.into(),
                retryable: false,
                fields: None,
            }),
            retry_after_s: None,
            authenticate: false,
        }
    }

    fn with_fields(mut self, fields: Option<serde_json::Value>) -> Problem {
        self.body.fields = fields;
        self
    }

    fn retryable(mut self, after_s: Option<u64>) -> Problem {
        self.body.retryable = true;
        self.retry_after_s = after_s;
        self
    }

    pub fn bad_request(error: &str, detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, error, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        let mut p = Problem::new(StatusCode::UNAUTHORIZED, "Unauthenticated", detail);
        p.authenticate = true;
        p
    }

    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "Forbidden", detail)
    }

    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "NotFound", format!("no {what} {id}"))
    }

    /// A reply of another kind than the operation gives: a gateway older or newer than the
    /// cluster. Logged; the caller learns only that.
    pub fn unexpected(reply: impl std::fmt::Debug) -> Problem {
        tracing::error!(?reply, "the cluster answered with an unexpected reply");
        Problem::new(
            StatusCode::BAD_GATEWAY,
            "UnexpectedReply",
            "the cluster answered with a reply this gateway does not know (a version mismatch)",
        )
    }

    /// A refusal by the ledger.
    pub fn ledger(error: &LedgerError) -> Problem {
        let (name, fields) = name_and_fields(error);
        let problem =
            Problem::new(ledger_status(error), &name, error.to_string()).with_fields(fields);
        match error {
            LedgerError::TooManyChallenges { retry_after_ms, .. } => {
                problem.retryable(Some(retry_after_ms.div_ceil(1000).max(1)))
            }
            LedgerError::TooManyClients { .. } => problem.retryable(Some(1)),
            // A place frees when one of the caller's keys has been idle for a day.
            LedgerError::TooManyIdempotencyKeys { .. } => problem.retryable(Some(60)),
            _ => problem,
        }
    }

    /// A refusal by the node (not the ledger) or a failure to reach the cluster; a write's
    /// outcome is then unknown.
    pub fn client(error: ClientError, call: Call) -> Problem {
        match error {
            ClientError::Refused(e) => Problem::ledger(&e),
            ClientError::Rejected(e) => Problem::api(&e, call),
            ClientError::Unavailable { .. } => Problem::unavailable(call),
            ClientError::UnexpectedReply(reply) => Problem::unexpected(reply),
            ClientError::CertificateRefused { endpoint, reason } => {
                tracing::error!(%endpoint, %reason, "a node refused the gateway's certificate");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Unavailable",
                    "the gateway cannot reach the cluster",
                )
                .retryable(Some(5))
            }
        }
    }

    /// No answer from the cluster in time: a write's outcome is then unknown.
    pub fn unavailable(call: Call) -> Problem {
        let unknown =
            |detail: &str| Problem::new(StatusCode::SERVICE_UNAVAILABLE, "OutcomeUnknown", detail);
        let problem = match call {
            Call::KeyedWrite => unknown(
                "the cluster did not answer in time; the request may or may not have been \
                 applied: send it again with the same Idempotency-Key to learn which",
            ),
            Call::UnkeyedWrite => unknown(
                "the cluster did not answer in time; the request may or may not have been \
                 applied, and it carried no Idempotency-Key: read the resource to learn which \
                 before sending it again (a retry may apply it twice)",
            ),
            Call::Read => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "the cluster did not answer in time",
            ),
        };
        problem.retryable(Some(1))
    }

    fn api(error: &ApiError, call: Call) -> Problem {
        match error {
            ApiError::Ledger(e) => Problem::ledger(e),
            ApiError::Read(e) => {
                let (name, fields) = name_and_fields(e);
                Problem::new(read_status(e), &name, e.to_string()).with_fields(fields)
            }
            ApiError::Forbidden { .. } => Problem::forbidden(error.to_string()),
            ApiError::NotAllowed { .. } => Problem::bad_request("NotAllowed", error.to_string()),
            ApiError::NotLeader { .. } | ApiError::Unavailable { .. } => Problem::unavailable(call),
            ApiError::BatchTooLarge { .. } => Problem::unexpected(error),
            // Nothing was applied: a retry (with or without the key) is safe, once space
            // returns.
            ApiError::DiskFull { .. } => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "DiskFull",
                "the ledger is not taking writes: the leader's disk is nearly full; nothing was applied",
            )
            .retryable(Some(DISK_FULL_RETRY_SECS)),
        }
    }
}

/// `Retry-After` of a write refused for a full disk: an operator has to free space.
const DISK_FULL_RETRY_SECS: u64 = 30;

fn read_status(error: &ReadError) -> StatusCode {
    match error {
        ReadError::UnknownAccount { .. } | ReadError::UnknownMerchant { .. } => {
            StatusCode::NOT_FOUND
        }
        ReadError::PageSize { .. }
        | ReadError::ReversedRange { .. }
        | ReadError::RangeTooLong { .. }
        | ReadError::CursorForAnotherRead
        | ReadError::BadCursor => StatusCode::BAD_REQUEST,
    }
}

/// The status of each refusal: 400 for a value the ledger never accepts, 404 for a record
/// that does not exist, 409 for a state that forbids it now, 422 for a business refusal,
/// 429 for a throttle.
pub fn ledger_status(error: &LedgerError) -> StatusCode {
    use LedgerError as E;
    match error {
        E::CardNumberLength
        | E::CardNumberChecksum
        | E::InvalidMobilePhone
        | E::InvalidLandline
        | E::InvalidCardPasswordFormat
        | E::InvalidOtpFormat
        | E::ZeroAmount
        | E::AmountTooLarge { .. }
        | E::TextEmpty { .. }
        | E::TextTooLong { .. }
        | E::TextHasControlChars { .. }
        | E::TooManyItems { .. }
        | E::InvalidWebhookUrl { .. }
        | E::WebhookNeedsHttps
        | E::InvalidTerminalCount { .. }
        | E::SameAccount
        | E::LimitAboveCap { .. }
        | E::LimitsInconsistent
        | E::InvalidCampaignWindow
        | E::CampaignStartsInPast { .. }
        | E::CampaignWithoutRules
        | E::InvalidCampaignRule { .. }
        | E::InvalidPromotionWindow
        | E::InvalidPointsRate { .. }
        | E::InvalidPartners { .. }
        | E::InvalidPrize { .. }
        | E::InvalidPoolCapacity { .. }
        | E::InvalidPoolWindow => StatusCode::BAD_REQUEST,
        E::UnknownAccount { .. }
        | E::UnknownMerchant { .. }
        | E::UnknownPool { .. }
        | E::UnknownPayment { .. }
        | E::UnknownCredential
        | E::UnknownPrize { .. } => StatusCode::NOT_FOUND,
        E::DuplicateCard
        | E::AlreadyEnrolled { .. }
        | E::NotEnrolling { .. }
        | E::EnrolmentStepOutOfOrder { .. }
        | E::EnrolmentCancelled
        | E::LookupTaken
        | E::OrderAlreadyPaid { .. }
        | E::PaymentNotPending { .. }
        | E::OtpAlreadyUsed { .. }
        | E::OtpSuperseded { .. }
        | E::PaymentExpired { .. }
        | E::DuplicateReceipt { .. }
        | E::SettlementAccountTaken { .. }
        | E::MonthAlreadyClosed { .. }
        | E::AlreadyClaimed { .. }
        | E::AccountNotEmpty { .. }
        | E::AccountClosed { .. }
        | E::IdempotencyKeyReused { .. }
        | E::RequestTooOld { .. } => StatusCode::CONFLICT,
        E::UnknownCard
        | E::UnknownTerminal { .. }
        | E::InternalAccount { .. }
        | E::AccountNotActive { .. }
        | E::InsufficientFunds { .. }
        | E::BalanceOverflow { .. }
        | E::PhoneMismatch
        | E::WrongCardPassword { .. }
        | E::CardLocked { .. }
        | E::OverPaymentLimit { .. }
        | E::OverDailyLimit { .. }
        | E::OtpExpired { .. }
        | E::WrongOtp { .. }
        | E::OtpLocked { .. }
        | E::NotRefundable { .. }
        | E::RefundExceedsBill { .. }
        | E::TooManyRefunds { .. }
        | E::TransferNotRefundable { .. }
        | E::NoTerminals { .. }
        | E::OverCardPresentDailyLimit { .. }
        | E::TooManyCampaigns { .. }
        | E::TooManyPromotions { .. }
        | E::TooManyPrizes { .. }
        | E::PrizeOutOfStock { .. }
        | E::NotEnoughPoints { .. }
        | E::MonthNotOver { .. }
        | E::TooManyPools { .. }
        | E::PoolNotOpen { .. }
        | E::PoolClosed { .. }
        | E::PoolExhausted { .. }
        | E::NotEligible { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        E::TooManyChallenges { .. }
        | E::TooManyClients { .. }
        | E::TooManyIdempotencyKeys { .. } => StatusCode::TOO_MANY_REQUESTS,
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ledger\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_principal_out_of_idempotency_keys_gets_429_with_retry_after() {
        let response =
            Problem::ledger(&LedgerError::TooManyIdempotencyKeys { max_keys: 5 }).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "60");
        let clients = Problem::ledger(&LedgerError::TooManyClients { max_sessions: 5 });
        assert_eq!(clients.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(clients.retry_after_s, Some(1));
    }

    #[test]
    fn a_write_refused_for_a_full_disk_is_503_disk_full_not_outcome_unknown() {
        let full = ApiError::DiskFull {
            free_bytes: 1,
            reserve_bytes: 2,
        };
        for call in [Call::KeyedWrite, Call::UnkeyedWrite] {
            let problem = Problem::client(ClientError::Rejected(full.clone()), call);
            assert_eq!(problem.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(problem.retry_after_s, Some(DISK_FULL_RETRY_SECS));
            let response = problem.into_response();
            assert_eq!(response.headers()[header::RETRY_AFTER], "30");
        }
        let body = Problem::client(ClientError::Rejected(full), Call::KeyedWrite).body;
        assert!(body.retryable);
        assert_eq!(
            serde_json::to_value(&body).expect("json")["error"],
            "DiskFull"
        );
    }
}
