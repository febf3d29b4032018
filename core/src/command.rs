//! Commands: everything that changes the ledger, exactly as it travels in the Raft log.
//!
//! A command carries no secret in clear. Card numbers arrive as keyed hashes, card passwords
//! as salted slow hashes (or a proof computed with the stored salt), OTP codes as keyed
//! proofs. The `intake` module turns a customer's raw input into these fields before the
//! command is proposed, so applying stays cheap and deterministic.

use crate::types::{
    AccountId, AccountStatus, Digest32, Eligibility, MerchantId, MerchantKind, Payee, PoolId,
    RequestKey, VipTier, YearMonth,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A client's request: its idempotency key, what it has acknowledged, and the command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub key: RequestKey,
    /// The client's lowest request id still waiting for an answer: the ledger may forget
    /// this client's records below it. Zero acknowledges nothing.
    pub acked_below: u64,
    pub command: Command,
    /// What the request said, secrets included, as the intake received it: a keyed digest
    /// (`intake::request_digest`) for a client's request, the command's own digest for one
    /// that carries no secret. A retry under the same key must carry the same request: two
    /// requests whose secrets differ (another card number, another OTP code) have different
    /// digests even where the commands they became could not tell them apart.
    pub request_digest: Digest32,
    /// Whose session the request opens if its client has none: which idle time and which
    /// quota the session counts against.
    pub owner: SessionOwner,
}

impl Envelope {
    /// An envelope for a command that came in as itself (no secret went into it): its
    /// request digest is the command's own. It opens a client's session.
    pub fn new(key: RequestKey, acked_below: u64, command: Command) -> Self {
        let request_digest = command.digest();
        Envelope {
            key,
            acked_below,
            command,
            request_digest,
            owner: SessionOwner::Client,
        }
    }

    /// The same envelope, opening a session for `owner`.
    pub fn owned_by(self, owner: SessionOwner) -> Self {
        Envelope { owner, ..self }
    }
}

/// Who an idempotency session serves, which decides how long it is kept idle and what it
/// counts against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SessionOwner {
    /// A client that numbers its requests and acknowledges its answers (the client library,
    /// the nodes themselves): kept `client_session_idle_ms` idle, counted in
    /// `max_client_sessions`, which every client shares.
    #[default]
    Client,
    /// A session a principal opened through the HTTP gateway, one per `Idempotency-Key`
    /// (`principal` is a digest of the principal's name): kept `keyed_session_idle_ms` idle,
    /// counted in that principal's own `max_keyed_sessions_per_principal`, so one merchant's
    /// keys never crowd out another's or the client library's sessions.
    Keyed { principal: u64 },
}

/// What the leader stamps on a command when proposing it. The core reads time only from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// The Raft log index of the entry.
    pub index: u64,
    /// The leader's wall clock when it proposed the entry, ms since the Unix epoch. The core
    /// never lets ledger time run backwards: it uses the maximum seen so far.
    pub now_ms: u64,
}

/// A salted, peppered slow hash of a card password (PBKDF2-HMAC-SHA256).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordHash {
    pub salt: [u8; 16],
    pub iterations: u32,
    pub hash: Digest32,
}

/// The leader's randomness for a new OTP challenge and the verifier of its code.
/// The code itself is derived on the leader (OCRA over the transaction digest and `nonce`)
/// and sent by SMS; only `verifier`, a keyed hash of the code, is replicated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeSeed {
    pub nonce: u64,
    pub verifier: Digest32,
}

/// What the payer typed, as a keyed proof computed by the node that received it, together
/// with the nonce of the challenge it was computed against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpProof {
    pub nonce: u64,
    pub proof: Digest32,
}

/// Campaign flags of a card.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignFlags {
    /// An ETC device is bound to the card (绑定ETC).
    pub etc_bound: bool,
    /// Bought the 中邮期缴 savings product during the campaign.
    pub savings_product: bool,
}

/// Every change to the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Open a card account.
    OpenAccount {
        holder_name: String,
        /// Keyed hash of the card number.
        pan_digest: Digest32,
        /// Last four digits, for display.
        pan_last4: [u8; 4],
        /// Keyed hash of (reserved phone, last six digits): the e-Pay look-up key.
        lookup_digest: Digest32,
        /// The reserved mobile phone (预留手机号), 11 digits; SMS messages go here.
        phone: String,
        password: PasswordHash,
        flags: CampaignFlags,
    },
    /// Cash in: clearing → account.
    Deposit { account: AccountId, amount_fen: u64 },
    /// Cash out: account → clearing.
    Withdraw { account: AccountId, amount_fen: u64 },
    /// A book transfer between two customer accounts, authorised at the counter.
    Transfer {
        source: AccountId,
        target: AccountId,
        amount_fen: u64,
    },
    /// Freeze, unfreeze or close an account.
    SetAccountStatus {
        account: AccountId,
        status: AccountStatus,
    },
    /// Record campaign flags (ETC bound, savings product bought).
    SetCampaignFlags {
        account: AccountId,
        flags: CampaignFlags,
    },
    /// Change a holder's VIP tier; reaching platinum during the campaign records the gift.
    SetVipTier { account: AccountId, tier: VipTier },
    /// e-Pay enrolment step 1: agreement accepted, phone and card number entered.
    EpayBegin { pan_digest: Digest32, phone: String },
    /// Step 2: the card password, checked against the stored hash, and the alias.
    EpayChooseAlias {
        account: AccountId,
        /// PBKDF2 of the typed password with the account's stored salt and pepper.
        password_proof: Digest32,
        alias: String,
    },
    /// Step 3: confirm; the bank sends an OTP to the reserved phone.
    EpayConfirm {
        account: AccountId,
        challenge: ChallengeSeed,
    },
    /// Step 4: the OTP; the credential becomes active.
    EpayActivate { account: AccountId, otp: OtpProof },
    /// The customer lowers (or restores up to the caps) the e-Pay limits.
    SetEpayLimits {
        account: AccountId,
        per_payment_fen: u64,
        per_day_fen: u64,
    },
    /// Payment step 1: the merchant submits phone + last six digits (as `lookup_digest`),
    /// amount and order; the bank issues an OTP bound to this transaction.
    PaymentBegin {
        lookup_digest: Digest32,
        payee: Payee,
        amount_fen: u64,
        order_id: String,
        challenge: ChallengeSeed,
    },
    /// Payment step 2: the payer's OTP; the payment settles.
    PaymentConfirm {
        payment: crate::types::PaymentId,
        otp: OtpProof,
    },
    /// A card swiped at a merchant's terminal (刷卡消费): the card number and the PIN typed on
    /// the terminal arrive hashed. Settles at once with the best voucher deducted.
    CardPayment {
        merchant: MerchantId,
        terminal: u32,
        /// Keyed hash of the card number read from the card.
        pan_digest: Digest32,
        /// PBKDF2 of the typed PIN with the card's stored salt and pepper.
        password_proof: Digest32,
        amount_fen: u64,
        /// The terminal's receipt number: one payment per (terminal, receipt).
        receipt: String,
    },
    /// The payee cancels a pending payment; its code is void from then on.
    CancelPayment { payment: crate::types::PaymentId },
    /// The merchant refunds (part of) a settled payment from its settlement account.
    RefundPayment {
        payment: crate::types::PaymentId,
        amount_fen: u64,
    },
    /// Pending payments whose challenge expired by ledger time become `Expired`. Proposed by
    /// the leader itself, never accepted from a client; a payment named too early, or no
    /// longer pending, is left as it is.
    ExpirePayments {
        payments: Vec<crate::types::PaymentId>,
    },
    /// Removes what is past its retention by ledger time: journal rows older than
    /// `journal_retention_ms`, payment events older than `event_retention_ms` that wait in
    /// no outbox, ended payments older than `payment_retention_ms` (with their challenge
    /// and order index entry); at most `MAX_COMPACT_BATCH` of each. Proposed by the leader
    /// itself.
    Compact,
    /// Create a joint promotion: e-Pay payments settled at its partners within the window
    /// earn points.
    CreatePromotion {
        name: String,
        partners: Vec<MerchantId>,
        valid_from_ms: u64,
        valid_until_ms: u64,
        points_per_yuan: u32,
    },
    /// Create a prize with a points price and a stock.
    CreatePrize {
        name: String,
        price_points: u64,
        stock: u64,
    },
    /// Redeem one of a prize for an account's points, first come, first served.
    RedeemPrize {
        prize: crate::types::PrizeId,
        account: AccountId,
    },
    /// Create a merchant campaign: reward and fee-tier rules over a window. `starts_ms` of
    /// `None` starts it at the command's ledger time; a start in the past is refused (its
    /// counters would have missed the settlements before).
    CreateCampaign {
        name: String,
        starts_ms: Option<u64>,
        ends_ms: u64,
        rules: crate::types::CampaignRules,
    },
    /// Register a merchant with its settlement account.
    RegisterMerchant {
        kind: MerchantKind,
        name: String,
        settlement_account: AccountId,
        /// Mobile for POS and online merchants, landline for 商易通.
        contact_phone: String,
        terminals: u32,
    },
    /// A 商易通 (or any) merchant transfers out of its settlement account, paying the fee of
    /// its current tier.
    MerchantTransfer {
        merchant: MerchantId,
        target: AccountId,
        amount_fen: u64,
    },
    /// Close a CST month: roll every merchant's counters into it and decide fee tiers.
    CloseMonth { month: YearMonth },
    /// Create a voucher pool.
    CreatePool {
        name: String,
        face_value_fen: u64,
        capacity: u64,
        eligibility: Eligibility,
        valid_from_ms: u64,
        valid_until_ms: u64,
    },
    /// Claim one voucher from a pool, first come first served.
    ClaimVoucher { pool: PoolId, account: AccountId },
    /// The merchant registers its webhook (`None` removes it). Every registration starts a
    /// new signing secret and clears a failing mark; events made from then on are pushed.
    SetWebhook {
        merchant: MerchantId,
        url: Option<String>,
    },
    /// The leader delivered these events of a merchant to its webhook (a 2xx answer), or gave
    /// up on them after `event_retry_ms`: take them out of the outbox. Proposed by the node
    /// itself, never accepted from a client.
    AckEvents {
        merchant: MerchantId,
        delivered: Vec<u64>,
        abandoned: Vec<u64>,
    },
    /// The leader sent these challenges' SMS messages: take them out of the outbox. Proposed
    /// by the node itself, never accepted from a client.
    AckSms {
        challenges: Vec<crate::types::ChallengeId>,
    },
}

impl Command {
    /// SHA-256 of the command's encoding: the request digest of a command that came in as
    /// itself. (A command holds no secret in clear, so its digest reveals none.)
    pub fn digest(&self) -> Digest32 {
        let mut h = Sha256::new();
        h.update(b"ledger/command/v1");
        h.update(bincode::serialize(self).expect("a command always encodes"));
        Digest32(h.finalize().into())
    }
}

/// The elements an OTP is bound to ("one transaction, one code"). Its digest is the OCRA
/// question: change any element and the code no longer confirms it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxElements<'a> {
    /// Enrolment step 3 for an account with the chosen alias.
    Enrolment { account: AccountId, alias: &'a str },
    /// A payment or small transfer.
    Payment {
        lookup_digest: &'a Digest32,
        payee: Payee,
        amount_fen: u64,
        order_id: &'a str,
    },
}

impl TxElements<'_> {
    /// SHA-256 over a fixed, length-prefixed layout (domain-separated, currency included).
    pub fn digest(&self) -> Digest32 {
        let mut h = Sha256::new();
        h.update(b"ledger/tx-elements/v1");
        match self {
            TxElements::Enrolment { account, alias } => {
                h.update([1u8]);
                h.update(account.0.to_be_bytes());
                h.update((alias.len() as u64).to_be_bytes());
                h.update(alias.as_bytes());
            }
            TxElements::Payment {
                lookup_digest,
                payee,
                amount_fen,
                order_id,
            } => {
                h.update([2u8]);
                h.update(lookup_digest.0);
                match payee {
                    Payee::Merchant(m) => {
                        h.update([1u8]);
                        h.update(m.0.to_be_bytes());
                    }
                    Payee::Account(a) => {
                        h.update([2u8]);
                        h.update(a.0.to_be_bytes());
                    }
                }
                h.update(b"CNY");
                h.update(amount_fen.to_be_bytes());
                h.update((order_id.len() as u64).to_be_bytes());
                h.update(order_id.as_bytes());
            }
        }
        Digest32(h.finalize().into())
    }
}

/// SHA-256 of a terminal's receipt: its entry in the merchant's order index, in a domain of
/// its own so that no e-Pay order id can collide with it.
pub fn receipt_digest(terminal: u32, receipt: &str) -> Digest32 {
    let mut h = Sha256::new();
    h.update(b"ledger/receipt/v1");
    h.update(terminal.to_be_bytes());
    h.update(receipt.as_bytes());
    Digest32(h.finalize().into())
}

/// SHA-256 of a merchant order id: the order index key, fixed width whatever the id's length.
pub fn order_digest(order_id: &str) -> Digest32 {
    let mut h = Sha256::new();
    h.update(b"ledger/order/v1");
    h.update(order_id.as_bytes());
    Digest32(h.finalize().into())
}
