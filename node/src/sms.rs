//! The SMS outbox: committed OTP challenges become text messages that the current leader
//! delivers, then acknowledges through the log. A message committed before a leader change
//! is still in the outbox afterwards and the new leader sends it: at least once, with the
//! challenge id as message id so duplicates can be recognised.

use ledger_core::intake::{self, SecretKeys};
use ledger_core::ledger::SmsFacts;
use ledger_core::types::Payee;
use ledger_wire::dev_sms::DevSms;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Mutex;

/// One text message. `text` carries the code: it goes to the gateway and nowhere else.
#[derive(Clone, Serialize, Deserialize)]
pub struct SmsMessage {
    /// The challenge id: the same message sent twice has the same id.
    pub id: u64,
    pub to: String,
    pub text: String,
}

impl std::fmt::Debug for SmsMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsMessage")
            .field("id", &self.id)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

/// Why a message was not delivered; it stays in the outbox and is tried again.
#[derive(Debug, thiserror::Error)]
#[error("sms gateway: {0}")]
pub struct SmsError(pub String);

/// Where messages go. The production gateway talks to the operator's SMS service; the
/// development gateway writes them down for a person to read.
pub trait SmsGateway: Send + Sync + 'static {
    fn deliver<'a>(&'a self, message: &'a SmsMessage) -> Delivery<'a>;
}

/// A delivery under way: done when the gateway accepted the message (or refused it).
pub type Delivery<'a> = Pin<Box<dyn Future<Output = Result<(), SmsError>> + Send + 'a>>;

/// The national sender number the article names.
pub const SENDER: &str = "95588";

/// Composes the text: the alias (the anti-phishing mark), what is being confirmed, the code.
pub fn compose(keys: &SecretKeys, facts: &SmsFacts, payee_name: Option<&str>) -> SmsMessage {
    let code = intake::otp_code(keys, facts.nonce, &facts.tx_digest);
    let what = match (facts.payee, facts.amount_fen) {
        (Some(payee), Some(amount_fen)) => {
            let to = match (payee, payee_name) {
                (_, Some(name)) => name.to_owned(),
                (Payee::Merchant(m), None) => format!("商户{m}"),
                (Payee::Account(a), None) => format!("账户{a}"),
            };
            format!(
                "您正在向{to}支付{}.{:02}元",
                amount_fen / 100,
                amount_fen % 100
            )
        }
        _ => "您正在开通工银e支付".to_owned(),
    };
    SmsMessage {
        id: facts.challenge.0,
        to: facts.phone.clone(),
        text: format!(
            "【{SENDER}】{}：{what}，验证码{}，5分钟内有效，请勿告诉他人。",
            facts.alias,
            code.expose()
        ),
    }
}

/// The development gateway: appends each message as a JSON line to a file in the data
/// directory and prints it on standard output, so a person can read the code and type it in.
/// Never for production: the file holds codes in clear.
pub struct DevGateway {
    path: PathBuf,
    node: u64,
    file: Mutex<Option<std::fs::File>>,
}

impl DevGateway {
    pub fn new(path: PathBuf, node: u64) -> Self {
        DevGateway {
            path,
            node,
            file: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &PathBuf {
        &self.path
    }
}

impl SmsGateway for DevGateway {
    fn deliver<'a>(&'a self, message: &'a SmsMessage) -> Delivery<'a> {
        Box::pin(async move {
            let line = serde_json::to_string(&DevSms {
                id: message.id,
                to: message.to.clone(),
                text: message.text.clone(),
                node: self.node,
            })
            .map_err(|e| SmsError(e.to_string()))?;
            let mut file = self.file.lock().map_err(|_| SmsError("poisoned".into()))?;
            if file.is_none() {
                *file = Some(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&self.path)
                        .map_err(|e| SmsError(format!("{}: {e}", self.path.display())))?,
                );
            }
            let f = file.as_mut().expect("opened above");
            writeln!(f, "{line}")
                .and_then(|_| f.flush())
                .map_err(|e| SmsError(e.to_string()))?;
            println!("SMS #{} to {}: {}", message.id, message.to, message.text);
            Ok(())
        })
    }
}

/// Longest an external sender may take for one message.
const EXEC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The production gateway: hands each message to an operator-supplied program (which talks
/// to the SMS service), as one JSON object `{"id","to","text"}` on its standard input. Exit
/// status 0 means delivered; anything else, or no exit within 10 s, means try again later.
pub struct ExecGateway {
    program: PathBuf,
}

impl ExecGateway {
    pub fn new(program: PathBuf) -> Self {
        ExecGateway { program }
    }
}

impl SmsGateway for ExecGateway {
    fn deliver<'a>(&'a self, message: &'a SmsMessage) -> Delivery<'a> {
        Box::pin(async move {
            use tokio::io::AsyncWriteExt;
            let payload = serde_json::to_vec(message).map_err(|e| SmsError(e.to_string()))?;
            let mut child = tokio::process::Command::new(&self.program)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| SmsError(format!("{}: {e}", self.program.display())))?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin
                    .write_all(&payload)
                    .await
                    .map_err(|e| SmsError(e.to_string()))?;
            }
            match tokio::time::timeout(EXEC_TIMEOUT, child.wait()).await {
                Ok(Ok(status)) if status.success() => Ok(()),
                Ok(Ok(status)) => Err(SmsError(format!(
                    "{} exited with {status}",
                    self.program.display()
                ))),
                Ok(Err(e)) => Err(SmsError(e.to_string())),
                Err(_) => Err(SmsError(format!(
                    "{} took longer than {EXEC_TIMEOUT:?}",
                    self.program.display()
                ))),
            }
        })
    }
}
