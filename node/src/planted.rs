//! Deliberately broken variants of the node's own code. The simulator runs the node with one
//! of them to show that its checks catch a bug in the client service, the intake, the proposer,
//! the SMS outbox, the webhook loop or the leader's clock
//! (`ledger-sim --list-bugs`). `ledger-node` never sets one: only the simulator's
//! `NodeParts` carry a `PlantedBug`, and no configuration file, flag or environment variable
//! reaches it.

use ledger_core::intake::Secret;
use ledger_wire::api::Operation;

/// A bug planted in the node's code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlantedBug {
    /// The intake digests a request without its secrets, so a retry under the same key with
    /// another card number or OTP code is answered with the first request's receipt.
    IntakeIgnoresSecretOnRetry,
    /// The intake proposes a command without checking its fields' size bounds: an over-long
    /// order id reaches the Raft log (the core still refuses it when applying).
    IntakeSkipsFieldLimits,
    /// The proposer hands the first two calls of a shared entry each other's outcomes.
    ProposerMisroutesReplies,
    /// The SMS outbox acknowledges a message the gateway refused: the customer never gets it.
    OutboxAcksUndelivered,
    /// The client service proposes a write without asking the role table: a merchant may
    /// deposit money out of `clearing`.
    ServiceSkipsRoleCheck,
    /// The webhook loop acknowledges an event the merchant did not accept: the merchant
    /// never hears that its payment settled.
    WebhookAcksUndelivered,
    /// The leader stamps its entries with its wall clock alone, not carrying ledger time on
    /// (`stamp::LedgerClock`): a leader whose clock stepped back holds ledger time still.
    ClockStampsWallTime,
}

impl PlantedBug {
    pub const ALL: [PlantedBug; 7] = [
        PlantedBug::IntakeIgnoresSecretOnRetry,
        PlantedBug::IntakeSkipsFieldLimits,
        PlantedBug::ProposerMisroutesReplies,
        PlantedBug::OutboxAcksUndelivered,
        PlantedBug::ServiceSkipsRoleCheck,
        PlantedBug::WebhookAcksUndelivered,
        PlantedBug::ClockStampsWallTime,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::IntakeIgnoresSecretOnRetry => "intake-ignores-secret-on-retry",
            PlantedBug::IntakeSkipsFieldLimits => "intake-skips-field-limits",
            PlantedBug::ProposerMisroutesReplies => "proposer-misroutes-replies",
            PlantedBug::OutboxAcksUndelivered => "outbox-acks-undelivered",
            PlantedBug::ServiceSkipsRoleCheck => "service-skips-role-check",
            PlantedBug::WebhookAcksUndelivered => "webhook-acks-undelivered",
            PlantedBug::ClockStampsWallTime => "clock-stamps-wall-time",
        }
    }
}

/// `IntakeIgnoresSecretOnRetry`: the request with every secret blanked out.
pub(crate) fn without_secrets(operation: &Operation) -> Operation {
    let blank = || Secret::new("");
    let mut operation = operation.clone();
    match &mut operation {
        Operation::OpenAccount(request) => {
            request.card_number = blank();
            request.card_password = blank();
        }
        Operation::EpayBegin { card_number, .. } => *card_number = blank(),
        Operation::EpayChooseAlias { card_password, .. } => *card_password = blank(),
        Operation::EpayActivate { code, .. } | Operation::PaymentConfirm { code, .. } => {
            *code = blank()
        }
        Operation::PaymentBegin { last_six, .. } => *last_six = blank(),
        Operation::CardPayment {
            card_number,
            card_password,
            ..
        } => {
            *card_number = blank();
            *card_password = blank();
        }
        Operation::EpayConfirm { .. } | Operation::Command(_) => {}
    }
    operation
}
