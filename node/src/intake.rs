//! The node's intake: one client request to one command, on the node that received it,
//! before anything is proposed. It refuses what may not come from a client, turns secrets
//! into hashes and proofs (the core's `intake` functions), derives the request's randomness
//! from its key (so a retry becomes the same command), checks every field's size bound, and
//! digests the request as received, so that a retry under the same key must carry the same
//! request, secrets included.

use crate::planted::{self, PlantedBug};
use crate::state_store::SledState;
use ledger_core::command::{Command, TxElements};
use ledger_core::intake::{self, SecretKeys};
use ledger_core::outcome::LedgerError;
use ledger_core::types::{Digest32, Payee, RequestKey};
use ledger_core::{validate, Ledger};
use ledger_wire::api::{ApiError, ClientResult, Operation};

/// Where CPU-heavy intake work (password hashing) runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuWork {
    /// On tokio's blocking pool, off the async threads (production).
    BlockingPool,
    /// In the calling task: the simulator's single thread, where waiting on another OS
    /// thread would let the virtual clock run ahead.
    Inline,
}

/// What the intake needs from the node.
pub struct Intake {
    pub keys: SecretKeys,
    pub cpu: CpuWork,
    pub planted: Option<PlantedBug>,
    /// Whether this node's webhook transport posts to `http://` URLs.
    pub plain_http_webhooks: bool,
}

/// The digest of a request as the intake received it, secrets included: what a retry under
/// the same key must match.
pub fn request_digest(keys: &SecretKeys, operation: &Operation) -> Digest32 {
    let bytes = bincode::serialize(operation).expect("a request always encodes");
    intake::request_digest(keys, &bytes)
}

impl Intake {
    /// This request's digest (see `request_digest`).
    pub fn digest(&self, operation: &Operation) -> Digest32 {
        match self.planted {
            Some(PlantedBug::IntakeIgnoresSecretOnRetry) => {
                request_digest(&self.keys, &planted::without_secrets(operation))
            }
            _ => request_digest(&self.keys, operation),
        }
    }

    /// The recorded answer of a request this node has already applied. A retry is answered
    /// before the intake runs, so it needs nothing the original changed (an enrolment that
    /// its activation closed, a salt). A key recorded for another request, even one that
    /// differs only in a secret, is refused.
    pub fn recorded_answer(
        &self,
        ledger: &Ledger<SledState>,
        key: RequestKey,
        digest: Digest32,
    ) -> Option<ClientResult> {
        let record = ledger.idempotency_record(key)?;
        Some(if record.request_digest == digest {
            record.outcome.map_err(ApiError::Ledger)
        } else {
            Err(ApiError::Ledger(LedgerError::IdempotencyKeyReused { key }))
        })
    }

    /// One request to one command: secrets hashed, randomness derived from the key, field
    /// bounds checked.
    pub async fn command(
        &self,
        ledger: &Ledger<SledState>,
        key: RequestKey,
        operation: Operation,
    ) -> Result<Command, ApiError> {
        let command = self.derive(ledger, key, operation).await?;
        if self.planted != Some(PlantedBug::IntakeSkipsFieldLimits) {
            validate::field_limits(&command)?;
        }
        Ok(command)
    }

    async fn derive(
        &self,
        ledger: &Ledger<SledState>,
        key: RequestKey,
        operation: Operation,
    ) -> Result<Command, ApiError> {
        let keys = &self.keys;
        let nonce = |label| {
            let e = intake::request_entropy(keys, key, label);
            u64::from_be_bytes(e[..8].try_into().expect("8 bytes"))
        };
        let command = match operation {
            Operation::OpenAccount(request) => {
                let mut salt = [0u8; 16];
                salt.copy_from_slice(&intake::request_entropy(keys, key, "salt")[..16]);
                let keys = keys.clone();
                self.cpu(move || intake::open_account(&keys, &request, salt))
                    .await??
            }
            Operation::EpayBegin { card_number, phone } => Command::EpayBegin {
                pan_digest: intake::card_digest(keys, &card_number)?,
                phone,
            },
            Operation::EpayChooseAlias {
                account,
                card_password,
                alias,
            } => {
                let password_proof = self.password_proof(ledger, account, card_password).await?;
                Command::EpayChooseAlias {
                    account,
                    password_proof,
                    alias,
                }
            }
            Operation::EpayConfirm { account } => {
                let enrolment = ledger
                    .enrolment(account)
                    .ok_or(LedgerError::NotEnrolling { account })?;
                let digest = TxElements::Enrolment {
                    account,
                    alias: &enrolment.alias,
                }
                .digest();
                let (challenge, _code) = intake::challenge_seed(keys, nonce("otp-nonce"), &digest);
                Command::EpayConfirm { account, challenge }
            }
            Operation::EpayActivate { account, code } => {
                let challenge = ledger
                    .enrolment(account)
                    .and_then(|e| e.challenge)
                    .and_then(|c| ledger.challenge(c))
                    .ok_or(LedgerError::NotEnrolling { account })?;
                Command::EpayActivate {
                    account,
                    otp: intake::otp_proof(keys, &challenge, &code)?,
                }
            }
            Operation::PaymentBegin {
                phone,
                last_six,
                payee,
                amount_fen,
                order_id,
            } => {
                let lookup_digest = intake::lookup_digest(keys, &phone, &last_six)?;
                payment_begin(
                    keys,
                    nonce("otp-nonce"),
                    lookup_digest,
                    payee,
                    amount_fen,
                    order_id,
                )
            }
            Operation::PaymentConfirm { payment, code } => {
                let challenge = ledger
                    .payment(payment)
                    .and_then(|p| p.challenge())
                    .and_then(|c| ledger.challenge(c))
                    .ok_or(LedgerError::UnknownPayment { payment })?;
                Command::PaymentConfirm {
                    payment,
                    otp: intake::otp_proof(keys, &challenge, &code)?,
                }
            }
            Operation::CardPayment {
                merchant,
                terminal,
                card_number,
                card_password,
                amount_fen,
                receipt,
            } => {
                let pan_digest = intake::card_digest(keys, &card_number)?;
                let account = ledger
                    .account_by_card(pan_digest)
                    .ok_or(LedgerError::UnknownCard)?;
                let password_proof = self.password_proof(ledger, account, card_password).await?;
                Command::CardPayment {
                    merchant,
                    terminal,
                    pan_digest,
                    password_proof,
                    amount_fen,
                    receipt,
                }
            }
            Operation::Command(command) => {
                check_plain(&command)?;
                check_webhook_scheme(&command, self.plain_http_webhooks)?;
                command
            }
        };
        Ok(command)
    }

    /// A typed card password as a proof under the account's stored salt (slow: PBKDF2).
    async fn password_proof(
        &self,
        ledger: &Ledger<SledState>,
        account: ledger_core::types::AccountId,
        card_password: ledger_core::intake::Secret,
    ) -> Result<Digest32, ApiError> {
        let stored = ledger
            .holder(account)
            .ok_or(LedgerError::UnknownAccount { account })?
            .password;
        let keys = self.keys.clone();
        Ok(self
            .cpu(move || intake::password_proof(&keys, &card_password, &stored))
            .await??)
    }

    /// Runs slow, CPU-bound work (password hashing) where `cpu` says.
    async fn cpu<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        match self.cpu {
            CpuWork::Inline => Ok(f()),
            CpuWork::BlockingPool => {
                tokio::task::spawn_blocking(f)
                    .await
                    .map_err(|e| ApiError::Unavailable {
                        reason: e.to_string(),
                    })
            }
        }
    }
}

/// Payment step 1: the challenge is bound to the transaction's elements.
fn payment_begin(
    keys: &SecretKeys,
    nonce: u64,
    lookup_digest: Digest32,
    payee: Payee,
    amount_fen: u64,
    order_id: String,
) -> Command {
    let digest = TxElements::Payment {
        lookup_digest: &lookup_digest,
        payee,
        amount_fen,
        order_id: &order_id,
    }
    .digest();
    let (challenge, _code) = intake::challenge_seed(keys, nonce, &digest);
    Command::PaymentBegin {
        lookup_digest,
        payee,
        amount_fen,
        order_id,
        challenge,
    }
}

/// Whether answering this operation's intake reads the ledger (salt, enrolment, challenge):
/// then it must see everything committed before, even on a leader elected a moment ago.
pub fn reads_state(operation: &Operation) -> bool {
    matches!(
        operation,
        Operation::EpayChooseAlias { .. }
            | Operation::EpayConfirm { .. }
            | Operation::EpayActivate { .. }
            | Operation::PaymentConfirm { .. }
            | Operation::CardPayment { .. }
    )
}

/// Commands with hashed fields must come through their operations, which hash them here;
/// `AckSms` only from the node itself.
fn check_plain(command: &Command) -> Result<(), ApiError> {
    let reason = match command {
        Command::OpenAccount { .. } => "open accounts with Operation::OpenAccount",
        Command::EpayBegin { .. }
        | Command::EpayChooseAlias { .. }
        | Command::EpayConfirm { .. }
        | Command::EpayActivate { .. } => "enrol with the Epay operations",
        Command::PaymentBegin { .. } | Command::PaymentConfirm { .. } => {
            "pay with the Payment operations"
        }
        Command::CardPayment { .. } => "swipe with Operation::CardPayment",
        Command::AckSms { .. } => "only a node acknowledges SMS",
        Command::AckEvents { .. } => "only a node acknowledges webhook events",
        Command::ExpirePayments { .. } => "only a node expires payments",
        Command::Compact => "only a node compacts the ledger",
        _ => return Ok(()),
    };
    Err(ApiError::NotAllowed {
        reason: reason.into(),
    })
}

/// A webhook this node could never post to is refused when registered, not found out
/// about three days of retries later.
fn check_webhook_scheme(command: &Command, plain_http: bool) -> Result<(), LedgerError> {
    match command {
        Command::SetWebhook { url: Some(url), .. } if !plain_http && url.starts_with("http://") => {
            Err(LedgerError::WebhookNeedsHttps)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::types::{ChallengeId, MerchantId, PaymentId};

    #[test]
    fn an_http_webhook_is_refused_where_only_https_is_posted() {
        let set = |url: &str| Command::SetWebhook {
            merchant: MerchantId(1),
            url: Some(url.to_owned()),
        };
        let plain = set("http://shop.example/hook");
        assert_eq!(
            check_webhook_scheme(&plain, false),
            Err(LedgerError::WebhookNeedsHttps)
        );
        assert_eq!(check_webhook_scheme(&plain, true), Ok(()));
        assert_eq!(
            check_webhook_scheme(&set("https://shop.example/hook"), false),
            Ok(())
        );
        let removed = Command::SetWebhook {
            merchant: MerchantId(1),
            url: None,
        };
        assert_eq!(check_webhook_scheme(&removed, false), Ok(()));
    }

    #[test]
    fn a_nodes_own_commands_are_refused_from_any_client() {
        for command in [
            Command::AckSms {
                challenges: vec![ChallengeId(1)],
            },
            Command::AckEvents {
                merchant: MerchantId(1),
                delivered: vec![1],
                abandoned: vec![],
            },
            Command::ExpirePayments {
                payments: vec![PaymentId(1)],
            },
            Command::Compact,
        ] {
            assert!(
                matches!(check_plain(&command), Err(ApiError::NotAllowed { .. })),
                "{command:?}"
            );
        }
        let plain = Command::Deposit {
            account: ledger_core::types::AccountId(16),
            amount_fen: 1,
        };
        assert_eq!(check_plain(&plain), Ok(()));
    }
}
