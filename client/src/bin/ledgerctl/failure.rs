//! Why a command failed, as one typed error: printed as text on standard error, or under
//! `--json` as `{"error": {"type", "message", "retryable", ...}}` on standard output, with an
//! exit code that tells a script whether anything may have changed.

use ledger_client::ClientError;
use ledger_core::types::RequestKey;
use ledger_core::LedgerError;
use ledger_wire::api::ApiError;
use serde_json::{json, Map, Value};

const START_HINT: &str =
    "Is the cluster running? (`cargo run --release -p ledger-node -- dev`, or pass --endpoints)";

/// Every way a ledgerctl command can fail.
#[derive(Debug)]
pub enum Failure {
    /// An argument ledgerctl cannot use; nothing was sent.
    InvalidArgument { message: String },
    /// The record asked for does not exist.
    NotFound { what: &'static str, id: u64 },
    /// The ledger refused the operation; nothing changed.
    Refused(LedgerError),
    /// The node refused the request itself (bad batch, forbidden command).
    Rejected(ApiError),
    /// The cluster answered with a reply this ledgerctl does not expect (a version mismatch).
    UnexpectedReply { reply: String },
    /// A node refused this ledgerctl's certificate (--certs, --identity); nothing was sent.
    CertificateRefused { endpoint: String, reason: String },
    /// No endpoint accepted a connection, so nothing was sent.
    NoNodeReachable { endpoints: Vec<String> },
    /// A read got no answer before the deadline.
    Unavailable { waited_ms: u64, last: String },
    /// A write was sent but no answer came before the deadline: it may or may not have been
    /// applied. The same command with `--key` learns which, without applying it twice.
    OutcomeUnknown {
        key: RequestKey,
        waited_ms: u64,
        last: String,
    },
    /// `ledgerctl demo`: the story did not come out as the domain says.
    DemoFailed { message: String },
}

/// A key as `--key` takes it.
pub fn key_text(key: RequestKey) -> String {
    format!("{}:{}", key.client_id, key.request_id)
}

impl Failure {
    /// A client error from a call that gave an answer (not a give-up: the session turns
    /// those into `Unavailable` or `OutcomeUnknown`).
    pub fn answered(error: ClientError) -> Failure {
        match error {
            ClientError::Refused(e) => Failure::Refused(e),
            ClientError::Rejected(e) => Failure::Rejected(e),
            ClientError::UnexpectedReply(reply) => Failure::UnexpectedReply { reply },
            ClientError::CertificateRefused { endpoint, reason } => {
                Failure::CertificateRefused { endpoint, reason }
            }
            ClientError::Unavailable { last, .. } => Failure::Unavailable { waited_ms: 0, last },
        }
    }

    /// The variant's name, the `type` of the JSON error.
    pub fn type_name(&self) -> &'static str {
        match self {
            Failure::InvalidArgument { .. } => "InvalidArgument",
            Failure::NotFound { .. } => "NotFound",
            Failure::Refused(_) => "Refused",
            Failure::Rejected(_) => "Rejected",
            Failure::UnexpectedReply { .. } => "UnexpectedReply",
            Failure::CertificateRefused { .. } => "CertificateRefused",
            Failure::NoNodeReachable { .. } => "NoNodeReachable",
            Failure::Unavailable { .. } => "Unavailable",
            Failure::OutcomeUnknown { .. } => "OutcomeUnknown",
            Failure::DemoFailed { .. } => "DemoFailed",
        }
    }

    /// Whether the same command, run again later, may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Failure::Refused(e) => e.is_retryable(),
            Failure::Rejected(e) => e.is_retryable(),
            Failure::NoNodeReachable { .. }
            | Failure::Unavailable { .. }
            | Failure::OutcomeUnknown { .. } => true,
            Failure::InvalidArgument { .. }
            | Failure::NotFound { .. }
            | Failure::UnexpectedReply { .. }
            | Failure::CertificateRefused { .. }
            | Failure::DemoFailed { .. } => false,
        }
    }

    /// 1: failed, nothing changed; 2: bad arguments; 3: the outcome is unknown.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::InvalidArgument { .. } => 2,
            Failure::OutcomeUnknown { .. } => 3,
            _ => 1,
        }
    }

    /// What went wrong and what the caller can do.
    pub fn message(&self) -> String {
        match self {
            Failure::InvalidArgument { message } => message.clone(),
            Failure::NotFound { what, id } => format!("no {what} {id}"),
            Failure::Refused(e) => format!("refused: {e}"),
            Failure::Rejected(e) => format!("rejected: {e}"),
            Failure::UnexpectedReply { reply } => format!("unexpected reply: {reply}"),
            Failure::CertificateRefused { endpoint, reason } => {
                format!("certificate refused by {endpoint}: {reason} (see --certs and --identity)")
            }
            Failure::NoNodeReachable { endpoints } => format!(
                "no node accepts connections at {}; nothing was sent.\n{START_HINT}",
                endpoints.join(",")
            ),
            Failure::Unavailable { last, .. } => {
                format!("cluster unavailable: {last}\n{START_HINT}")
            }
            Failure::OutcomeUnknown {
                key,
                waited_ms,
                last,
            } => format!(
                "outcome UNKNOWN: no answer came within {:.1} s ({last}); the write may or may \
                 not have been applied.\nTo learn its outcome without applying it twice, run \
                 the same command again with --key {}",
                *waited_ms as f64 / 1_000.0,
                key_text(*key)
            ),
            Failure::DemoFailed { message } => message.clone(),
        }
    }

    /// The fields beyond type, message and retryable that a script may act on.
    fn details(&self) -> Map<String, Value> {
        let mut details = Map::new();
        match self {
            Failure::Refused(e) => {
                details.insert("reason".into(), json!(variant_name(e)));
                details.insert("ledger_error".into(), json!(e));
            }
            Failure::Rejected(e) => {
                details.insert("reason".into(), json!(variant_name(e)));
            }
            Failure::NotFound { what, id } => {
                details.insert("what".into(), json!(what));
                details.insert("id".into(), json!(id));
            }
            Failure::NoNodeReachable { endpoints } => {
                details.insert("endpoints".into(), json!(endpoints));
            }
            Failure::OutcomeUnknown { key, waited_ms, .. } => {
                details.insert("key".into(), json!(key_text(*key)));
                details.insert("waited_ms".into(), json!(waited_ms));
            }
            Failure::Unavailable { waited_ms, .. } => {
                details.insert("waited_ms".into(), json!(waited_ms));
            }
            _ => {}
        }
        details
    }

    /// The error as JSON: `{"error": {"type", "message", "retryable", ...details}}`.
    pub fn to_json(&self) -> Value {
        let mut error = Map::new();
        error.insert("type".into(), json!(self.type_name()));
        error.insert("message".into(), json!(self.message()));
        error.insert("retryable".into(), json!(self.retryable()));
        error.extend(self.details());
        json!({ "error": error })
    }

    /// Prints the error: JSON on standard output, or text on standard error.
    pub fn report(&self, json: bool) {
        if json {
            crate::view::out(&self.to_json().to_string());
        } else {
            eprintln!("ledgerctl: {}", self.message());
        }
    }
}

/// The name of an enum's variant as serde writes it (`"Name"` or `{"Name": ...}`).
fn variant_name(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        Ok(Value::Object(map)) => map.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    }
}
