//! e-Pay enrolment (the channel's, for a customer at the bank's web or phone front): the
//! card and reserved phone, then the card password and an alias, then an SMS code that
//! activates the credential; and the credential's limits.

use crate::extract::{Caller, IdempotencyKey, JsonBody, PathParams};
use crate::problem::{Problem, Problems};
use crate::routes::created;
use crate::App;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use ledger_core::command::Command;
use ledger_core::intake::Secret;
use ledger_core::types::AccountId;
use ledger_core::Reply;
use ledger_wire::api::{Operation, Query, QueryReply};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(begin_enrolment))
        .routes(routes!(choose_alias))
        .routes(routes!(confirm_enrolment))
        .routes(routes!(activate))
        .routes(routes!(get_credential))
        .routes(routes!(set_limits))
}

/// Step 1: the customer accepted the agreement and entered the card and its reserved phone.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginEnrolment {
    #[schema(value_type = String, format = Password, example = "6222020200112233445")]
    pub card_number: Secret,
    #[schema(example = "13800138000")]
    pub phone: String,
}

/// The account whose enrolment started.
#[derive(Serialize, ToSchema)]
pub struct EnrolmentStarted {
    pub account: u64,
}

/// Step 2: the card password (checked) and the alias the customer chooses.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChooseAlias {
    #[schema(value_type = String, format = Password, example = "135790")]
    pub card_password: Secret,
    /// At most 16 characters.
    #[schema(example = "xiaoming")]
    pub alias: String,
}

/// A step done.
#[derive(Serialize, ToSchema)]
pub struct StepDone {
    pub account: u64,
    /// `alias_chosen` or `activated`.
    pub step: String,
}

/// An SMS code sent.
#[derive(Serialize, ToSchema)]
pub struct CodeSent {
    pub account: u64,
    pub challenge: u64,
    pub expires_at_ms: u64,
}

/// Step 4: the code the customer received.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Activate {
    #[schema(value_type = String, format = Password, example = "123456")]
    pub code: Secret,
}

/// An e-Pay credential's limits, in fen.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub per_payment_fen: u64,
    pub per_day_fen: u64,
}

/// An active e-Pay credential.
#[derive(Serialize, ToSchema)]
pub struct CredentialView {
    pub account: u64,
    pub alias: String,
    pub per_payment_fen: u64,
    pub per_day_fen: u64,
    /// The CST day `spent_today_fen` counts (days since the Unix epoch).
    pub day: u64,
    pub spent_today_fen: u64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AccountPath {
    /// The card account.
    pub account: u64,
}

/// Step 1 of an e-Pay enrolment.
#[utoipa::path(post, path = "/epay/enrolments", tag = "channel", operation_id = "beginEnrolment",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe.")),
    request_body = BeginEnrolment,
    responses((status = 201, body = EnrolmentStarted,
        links(("ChooseAlias" = (operation_id = "chooseAlias", parameters(("account" = "$response.body#/account")))))),
        Problems))]
async fn begin_enrolment(
    caller: Caller,
    key: IdempotencyKey,
    State(app): State<App>,
    JsonBody(body): JsonBody<BeginEnrolment>,
) -> Result<Response, Problem> {
    let op = Operation::EpayBegin {
        card_number: body.card_number,
        phone: body.phone,
    };
    match app.submit(&caller, &key, op).await? {
        Reply::EnrolmentStarted { account } => Ok(created(
            format!("/v1/epay/enrolments/{}", account.0),
            EnrolmentStarted { account: account.0 },
        )),
        other => Err(Problem::unexpected(other)),
    }
}

/// Step 2: card password and alias.
#[utoipa::path(post, path = "/epay/enrolments/{account}/alias", tag = "channel", operation_id = "chooseAlias",
    params(AccountPath, ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe.")),
    request_body = ChooseAlias,
    responses((status = 200, body = StepDone,
        links(("ConfirmEnrolment" = (operation_id = "confirmEnrolment", parameters(("account" = "$request.path.account")))))),
        Problems))]
async fn choose_alias(
    caller: Caller,
    key: IdempotencyKey,
    State(app): State<App>,
    PathParams(path): PathParams<AccountPath>,
    JsonBody(body): JsonBody<ChooseAlias>,
) -> Result<Json<StepDone>, Problem> {
    let op = Operation::EpayChooseAlias {
        account: AccountId(path.account),
        card_password: body.card_password,
        alias: body.alias,
    };
    match app.submit(&caller, &key, op).await? {
        Reply::AliasChosen => Ok(Json(StepDone {
            account: path.account,
            step: "alias_chosen".into(),
        })),
        other => Err(Problem::unexpected(other)),
    }
}

/// Step 3: confirm; an SMS code goes to the reserved phone.
#[utoipa::path(post, path = "/epay/enrolments/{account}/confirm", tag = "channel", operation_id = "confirmEnrolment",
    params(AccountPath, ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe.")),
    responses((status = 200, body = CodeSent), Problems))]
async fn confirm_enrolment(
    caller: Caller,
    key: IdempotencyKey,
    State(app): State<App>,
    PathParams(path): PathParams<AccountPath>,
) -> Result<Json<CodeSent>, Problem> {
    let op = Operation::EpayConfirm {
        account: AccountId(path.account),
    };
    match app.submit(&caller, &key, op).await? {
        Reply::ChallengeIssued {
            challenge,
            expires_at_ms,
        } => Ok(Json(CodeSent {
            account: path.account,
            challenge: challenge.0,
            expires_at_ms,
        })),
        other => Err(Problem::unexpected(other)),
    }
}

/// Step 4: the SMS code activates the credential.
#[utoipa::path(post, path = "/epay/enrolments/{account}/activate", tag = "channel", operation_id = "activateEnrolment",
    params(AccountPath, ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe.")),
    request_body = Activate,
    responses((status = 200, body = StepDone), Problems))]
async fn activate(
    caller: Caller,
    key: IdempotencyKey,
    State(app): State<App>,
    PathParams(path): PathParams<AccountPath>,
    JsonBody(body): JsonBody<Activate>,
) -> Result<Json<StepDone>, Problem> {
    let op = Operation::EpayActivate {
        account: AccountId(path.account),
        code: body.code,
    };
    match app.submit(&caller, &key, op).await? {
        Reply::EpayActivated { account } => Ok(Json(StepDone {
            account: account.0,
            step: "activated".into(),
        })),
        other => Err(Problem::unexpected(other)),
    }
}

/// Read an e-Pay credential (channels, auditors).
#[utoipa::path(get, path = "/epay/credentials/{account}", tag = "reader", operation_id = "getCredential",
    params(AccountPath),
    responses((status = 200, body = CredentialView), Problems))]
async fn get_credential(
    caller: Caller,
    State(app): State<App>,
    PathParams(path): PathParams<AccountPath>,
) -> Result<Json<CredentialView>, Problem> {
    match app
        .query(&caller, Query::Credential(AccountId(path.account)))
        .await?
    {
        QueryReply::Credential(Some(c)) => Ok(Json(CredentialView {
            account: path.account,
            alias: c.alias,
            per_payment_fen: c.per_payment_fen,
            per_day_fen: c.per_day_fen,
            day: c.day,
            spent_today_fen: c.spent_today_fen,
        })),
        QueryReply::Credential(None) => Err(Problem::not_found("e-Pay credential", path.account)),
        other => Err(Problem::unexpected(other)),
    }
}

/// Set an e-Pay credential's limits (at most the bank's caps).
#[utoipa::path(put, path = "/epay/credentials/{account}/limits", tag = "channel", operation_id = "setLimits",
    params(AccountPath, ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe.")),
    request_body = Limits,
    responses((status = 200, body = Limits), Problems))]
async fn set_limits(
    caller: Caller,
    key: IdempotencyKey,
    State(app): State<App>,
    PathParams(path): PathParams<AccountPath>,
    JsonBody(body): JsonBody<Limits>,
) -> Result<Json<Limits>, Problem> {
    let op = Operation::Command(Command::SetEpayLimits {
        account: AccountId(path.account),
        per_payment_fen: body.per_payment_fen,
        per_day_fen: body.per_day_fen,
    });
    match app.submit(&caller, &key, op).await? {
        Reply::LimitsSet {
            per_payment_fen,
            per_day_fen,
        } => Ok(Json(Limits {
            per_payment_fen,
            per_day_fen,
        })),
        other => Err(Problem::unexpected(other)),
    }
}
