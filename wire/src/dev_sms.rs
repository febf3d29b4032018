//! The development SMS outbox: the file a `ledger-node` with the development gateway writes
//! each message to, one JSON line per message. `ledgerctl sms tail`, the tests and the chaos
//! harness read OTP codes from it, as a person would from their phone.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Name of the outbox file in a node's data directory.
pub const DEV_OUTBOX_FILE: &str = "sms-outbox.jsonl";

/// One message as the development gateway wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevSms {
    /// The message id (the challenge id); a message delivered twice appears twice.
    pub id: u64,
    /// The recipient's phone.
    pub to: String,
    /// The message, code included.
    pub text: String,
    /// The node that sent it.
    pub node: u64,
}

impl DevSms {
    /// The six-digit code in the text (after 验证码).
    pub fn code(&self) -> Option<String> {
        code_in(&self.text)
    }
}

/// The six-digit code in a message's text (after 验证码), as a person reads it.
pub fn code_in(text: &str) -> Option<String> {
    let at = text.find("验证码")? + "验证码".len();
    let code: String = text[at..].chars().take(6).collect();
    (code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// Every message in an outbox file, in the order written; a missing file is empty.
pub fn read_outbox(path: &Path) -> std::io::Result<Vec<DevSms>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// The latest message with id `id` across several nodes' outbox files.
pub fn find_message(paths: &[impl AsRef<Path>], id: u64) -> Option<DevSms> {
    paths
        .iter()
        .filter_map(|p| read_outbox(p.as_ref()).ok())
        .flatten()
        .filter(|m| m.id == id)
        .last()
}
