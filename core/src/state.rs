//! The ledger's state: the records, their keys, and the storage seam.
//!
//! The core reads and writes state only through [`Store`]: point reads, bounded range reads
//! in key order, and one atomic write per applied command. [`MemStore`] backs it with a
//! `BTreeMap` (tests, benchmarks, the simulator's model); the node backs it with sled trees.
//!
//! Keys encode to bytes that sort exactly like the `Key` values themselves (a tag byte, then
//! fixed-width big-endian fields), so every backend iterates in the same order and the state
//! hash and the snapshot are identical, byte for byte, whatever holds the state.

use crate::command::{CampaignFlags, Command, PasswordHash, SessionOwner};
use crate::config::LedgerConfig;
use crate::outcome::{EnrolmentStep, Outcome};
use crate::types::{
    AccountId, AccountStatus, CampaignId, CampaignRules, Cause, ChallengeId, Digest32, Eligibility,
    FeeTier, MerchantId, MerchantKind, Payee, PaymentId, PoolId, PrizeId, PromotionId, RequestKey,
    VipTier, YearMonth,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An account's hot record: what every posting reads. No heap data, so reading it is cheap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub status: AccountStatus,
    /// Customer balances never go below zero; internal accounts may.
    pub balance_fen: i64,
    /// Set when this account settles a merchant: postings then update its balance average.
    pub merchant: Option<MerchantId>,
    pub flags: CampaignFlags,
    pub vip: VipTier,
    pub pan_last4: [u8; 4],
}

/// An account holder's cold record: identity and credentials, read only by enrolment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub name: String,
    pub pan_digest: Digest32,
    pub lookup_digest: Digest32,
    pub phone: String,
    pub password: PasswordHash,
    /// Wrong card passwords since the last right one, across enrolments.
    pub password_failures: u8,
}

/// An e-Pay enrolment in progress (one per account).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolment {
    pub step: EnrolmentStep,
    pub alias: String,
    pub password_failures: u8,
    pub challenge: Option<ChallengeId>,
}

/// An active e-Pay credential (工银e支付).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// The anti-phishing alias shown in every SMS.
    pub alias: String,
    pub per_payment_fen: u64,
    pub per_day_fen: u64,
    /// The CST day `spent_today_fen` belongs to.
    pub day: u64,
    pub spent_today_fen: u64,
}

/// What an OTP challenge confirms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChallengePurpose {
    Enrolment(AccountId),
    Payment(PaymentId),
}

/// Lifecycle of an OTP challenge. Only `Open` accepts a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChallengeState {
    Open,
    Used,
    /// A newer challenge for the same order or enrolment replaced it.
    Voided,
    /// Too many wrong codes.
    Locked,
}

/// An OTP challenge. Holds the verifier (a keyed hash of the code), never the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub purpose: ChallengePurpose,
    /// The account whose reserved phone receives the SMS.
    pub account: AccountId,
    pub nonce: u64,
    pub tx_digest: Digest32,
    pub verifier: Digest32,
    pub issued_ms: u64,
    pub expires_ms: u64,
    pub wrong_attempts: u8,
    pub state: ChallengeState,
}

/// When the OTP challenges still counted against one reserved phone were issued (ledger
/// time, oldest first). Holds at most `LedgerConfig::otp_challenges_per_phone` times, all
/// within `otp_throttle_window_ms` of the last issue: older ones are dropped on every write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtpIssues {
    pub issued_ms: Vec<u64>,
}

/// Lifecycle of a payment. Every payment ends in exactly one of `Settled`, `Failed`,
/// `Superseded`, `Cancelled` or `Expired`; a settled one may later be refunded, in part or
/// in full (`Payment::refunds`), and stays `Settled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentState {
    /// An e-Pay payment waiting for its code. A card-present payment is never pending.
    Pending,
    Settled {
        debited_fen: u64,
        voucher: Option<PoolId>,
        settled_ms: u64,
    },
    /// A newer payment for the same order replaced it before it settled.
    Superseded,
    /// Its code was locked by wrong attempts; it will never settle.
    Failed,
    /// The merchant (or, for a small transfer, the channel) cancelled it while it was pending.
    Cancelled { cancelled_ms: u64 },
    /// Its challenge expired before it was confirmed; it will never settle.
    Expired { expired_ms: u64 },
}

impl PaymentState {
    /// Whether the payment has reached its end (a settled one may still be refunded).
    pub fn is_terminal(&self) -> bool {
        !matches!(self, PaymentState::Pending)
    }

    /// The state's name, for messages and statistics.
    pub fn name(&self) -> &'static str {
        match self {
            PaymentState::Pending => "pending",
            PaymentState::Settled { .. } => "settled",
            PaymentState::Superseded => "superseded",
            PaymentState::Failed => "failed",
            PaymentState::Cancelled { .. } => "cancelled",
            PaymentState::Expired { .. } => "expired",
        }
    }
}

/// How a payment was authorised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentMethod {
    /// e-Pay: phone and last six digits, then the OTP of this challenge.
    Epay { challenge: ChallengeId },
    /// A card swiped at the merchant's terminal with its PIN (刷卡消费).
    CardPresent { terminal: u32 },
}

/// What has been refunded of a settled payment. Refunds go to the payer first, up to what
/// the payer was debited, and the rest (the voucher's share) back to `promotions`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refunds {
    pub count: u32,
    pub total_fen: u64,
    pub to_payer_fen: u64,
    /// Points taken back from the payer, in proportion to what was refunded.
    pub points_taken: u64,
}

/// A payment: two-step e-Pay, small transfer, or card-present.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub payer: AccountId,
    pub payee: Payee,
    pub amount_fen: u64,
    /// The merchant's order id (e-Pay) or the terminal's receipt number (card-present).
    pub order_id: String,
    pub method: PaymentMethod,
    pub state: PaymentState,
    pub created_ms: u64,
    pub refunds: Refunds,
    /// Promotion points the payer earned by this payment when it settled.
    pub points_earned: u64,
}

impl Payment {
    /// The OTP challenge of an e-Pay payment.
    pub fn challenge(&self) -> Option<ChallengeId> {
        match self.method {
            PaymentMethod::Epay { challenge } => Some(challenge),
            PaymentMethod::CardPresent { .. } => None,
        }
    }

    /// What is left to refund: the bill less what was refunded, for a settled payment.
    pub fn refundable_fen(&self) -> u64 {
        match self.state {
            PaymentState::Settled { .. } => self.amount_fen - self.refunds.total_fen,
            _ => 0,
        }
    }
}

/// A joint promotion (减排积分): e-Pay payments settled at one of its partners within its
/// window earn the payer `points_per_yuan` points per whole yuan of the bill.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    pub name: String,
    pub partners: Vec<MerchantId>,
    pub valid_from_ms: u64,
    pub valid_until_ms: u64,
    pub points_per_yuan: u32,
}

/// A prize: a points price and a stock, redeemed first come, first served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prize {
    pub name: String,
    pub price_points: u64,
    pub stock: u64,
    pub redeemed: u64,
}

/// What a card paid at terminals on one China Standard Time day (the card-present cap).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardDay {
    pub day: u64,
    pub spent_fen: u64,
}

/// Last month's figures that decided a merchant's fee tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthFigures {
    pub month: YearMonth,
    pub avg_balance_fen: u64,
    pub tx_count: u64,
    pub earned: FeeTier,
}

/// A merchant with its month-to-date figures and fee tiers (its campaign counters are
/// `Key::MerchantCampaign` records).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merchant {
    pub kind: MerchantKind,
    pub name: String,
    pub settlement_account: AccountId,
    pub contact_phone: String,
    pub terminals: u32,
    pub registered_ms: u64,
    /// The month the month-to-date figures below belong to.
    pub month: YearMonth,
    pub month_tx_count: u64,
    /// Settlement balance × milliseconds accumulated this month, for the exact time-weighted
    /// average daily balance.
    pub balance_fen_ms: i128,
    /// Up to when `balance_fen_ms` is accumulated.
    pub balance_since_ms: u64,
    pub last_balance_fen: i64,
    /// The tier of the current month's transfer fees.
    pub fee_tier: FeeTier,
    /// Last month the waived tier is held for, once earned.
    pub waived_through: Option<YearMonth>,
    /// Last month the 20% tier is held for, once earned. A 20% tier earned while the waiver
    /// holds is kept here and applies after the waiver ends, for what remains of its months.
    pub discount_through: Option<YearMonth>,
    pub last_month: Option<MonthFigures>,
}

/// A merchant campaign: its window and its rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    pub name: String,
    /// First millisecond of the campaign.
    pub starts_ms: u64,
    /// First millisecond after it.
    pub ends_ms: u64,
    pub rules: CampaignRules,
}

impl Campaign {
    /// Whether a moment falls inside the campaign.
    pub fn runs_at(&self, ms: u64) -> bool {
        (self.starts_ms..self.ends_ms).contains(&ms)
    }
}

/// One merchant's figures in one campaign: settlements made within the window (a refund of
/// one lowers the amount, never the count) and the settlement that earned the reward.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignCounters {
    pub tx_count: u64,
    pub amount_fen: u64,
    pub reward_payment: Option<PaymentId>,
}

/// One journal row: a posting, recorded once in the command that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    /// Its place in the journal: rows are numbered from 1 in the order they were made.
    pub seq: u64,
    /// The Raft log index of the command that made it.
    pub index: u64,
    /// The ledger time of that command.
    pub at_ms: u64,
    /// The request that made it.
    pub request: RequestKey,
    pub source: AccountId,
    pub target: AccountId,
    pub amount_fen: u64,
    pub cause: Cause,
    /// The source's balance after this row.
    pub source_balance_fen: i64,
    /// The target's balance after this row.
    pub target_balance_fen: i64,
}

impl Posting {
    /// What this row did to `account`'s balance: negative for the source, positive for the
    /// target, zero for any other account.
    pub fn delta_for(&self, account: AccountId) -> i64 {
        if account == self.source {
            -(self.amount_fen as i64)
        } else if account == self.target {
            self.amount_fen as i64
        } else {
            0
        }
    }

    /// `account`'s balance after this row (its source's or its target's).
    pub fn balance_after(&self, account: AccountId) -> i64 {
        if account == self.source {
            self.source_balance_fen
        } else {
            self.target_balance_fen
        }
    }
}

/// A merchant's webhook. Its signing secret is not here: the nodes derive it from their
/// master key, the merchant and `secret_version`, so it never enters the log or a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// Where events are POSTed (http or https).
    pub url: String,
    /// Counts registrations: each one derives a new signing secret.
    pub secret_version: u32,
    pub registered_ms: u64,
    /// Events in the outbox, not yet delivered or given up on.
    pub undelivered: u64,
    pub delivered: u64,
    /// Given up on after `event_retry_ms` without a 2xx answer.
    pub abandoned: u64,
    /// Set when `max_undelivered_events` were waiting: pushing has paused (events stay
    /// readable from the cursor) until the merchant registers the webhook again.
    pub failing: bool,
}

/// What happened to a merchant's payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// It settled: the bill, what the payer was debited, what a voucher paid.
    Settled {
        bill_fen: u64,
        debited_fen: u64,
        voucher_fen: u64,
    },
    /// A refund of `amount_fen`; `refundable_fen` is what is left to refund.
    Refunded {
        amount_fen: u64,
        refundable_fen: u64,
    },
    /// A newer payment for the same order replaced it.
    Superseded,
    /// Its code was locked by wrong attempts.
    Failed,
    Cancelled,
    Expired,
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Settled { .. } => "payment.settled",
            EventKind::Refunded { .. } => "payment.refunded",
            EventKind::Superseded => "payment.superseded",
            EventKind::Failed => "payment.failed",
            EventKind::Cancelled => "payment.cancelled",
            EventKind::Expired => "payment.expired",
        }
    }
}

/// A payment event: recorded in the command that changed the payment, with an id that never
/// changes (a webhook receiver deduplicates by it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: u64,
    pub merchant: MerchantId,
    pub payment: PaymentId,
    /// The merchant's order id (e-Pay) or receipt number (card-present).
    pub order_id: String,
    pub kind: EventKind,
    pub at_ms: u64,
    /// The Raft log index of the command that made it.
    pub index: u64,
}

/// A voucher pool (刷卡券).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub name: String,
    pub face_value_fen: u64,
    pub capacity: u64,
    pub granted: u64,
    pub eligibility: Eligibility,
    pub valid_from_ms: u64,
    pub valid_until_ms: u64,
}

/// One claimed voucher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voucher {
    pub face_value_fen: u64,
    pub valid_from_ms: u64,
    pub valid_until_ms: u64,
    pub consumed_by: Option<PaymentId>,
}

/// The VIP commemorative gift: a non-monetary entry, recorded once per account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gift {
    pub recorded_ms: u64,
    pub tier: VipTier,
}

/// What a request key was first used for, so a retry gets the same answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub command: Command,
    /// The request's digest (`Envelope::request_digest`): a retry must match it too.
    pub request_digest: Digest32,
    pub outcome: Outcome,
    pub applied_ms: u64,
    /// The Raft log index the request was applied at: its place in the one total order.
    pub applied_index: u64,
}

/// A client's idempotency session: requests below `floor` are forgotten (a retry of one is
/// refused as too old), `records` are kept for the ids at or above it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub floor: u64,
    pub records: u64,
    pub last_seen_ms: u64,
    /// Where the session sits in the idle queue (`Key::SessionIdle`): when it may be
    /// forgotten if nothing uses it again. Lags `last_seen_ms` plus the owner's idle time by
    /// at most a minute, so a busy client does not rewrite the queue on every request.
    pub idle_until_ms: u64,
    /// Whose session it is: which idle time and which quota apply.
    pub owner: SessionOwner,
}

/// Counters and clocks of the whole ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Ledger time: the largest command timestamp applied so far.
    pub last_now_ms: u64,
    pub next_account: u64,
    pub next_merchant: u64,
    pub next_pool: u64,
    pub next_challenge: u64,
    pub next_payment: u64,
    pub next_promotion: u64,
    pub next_prize: u64,
    pub next_campaign: u64,
    pub client_sessions: u64,
    pub last_closed_month: Option<YearMonth>,
    /// The sequence number the next journal row gets.
    pub next_posting: u64,
    /// The id the next payment event gets.
    pub next_event: u64,
    /// The oldest journal row kept: every row below it was compacted away.
    pub first_posting: u64,
    /// The oldest payment id that may still be stored: every one below it was compacted away.
    pub first_payment: u64,
    /// The oldest OTP challenge id that may still be stored: every one below it was
    /// compacted away.
    pub first_challenge: u64,
}

/// Where a record lives. Variant order is storage order: `Ord` compares the tag, then the
/// fields, exactly as the byte encoding sorts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Config,
    Meta,
    Account(AccountId),
    Holder(AccountId),
    /// Keyed PAN hash → account.
    CardIndex(Digest32),
    /// Keyed (phone, last six) hash → account with an active credential.
    LookupIndex(Digest32),
    Enrolment(AccountId),
    Credential(AccountId),
    Challenge(ChallengeId),
    Payment(PaymentId),
    /// (payee, order digest) → the latest payment for that order.
    OrderIndex(Payee, Digest32),
    Merchant(MerchantId),
    Pool(PoolId),
    Voucher(AccountId, PoolId),
    Gift(AccountId),
    Idempotency(RequestKey),
    /// Client id → its idempotency session.
    Session(u64),
    /// (idle-until ms, client id): sessions in the order they may be forgotten, soonest first.
    SessionIdle(u64, u64),
    /// Challenges whose SMS the leader has not yet confirmed sending.
    Outbox(ChallengeId),
    /// Reserved phone (its 11-digit number) → the challenges counted against it.
    OtpIssues(u64),
    /// (expiry ms, payment): pending e-Pay payments in expiry order, so the leader finds the
    /// ones to expire without scanning every payment.
    PendingPayment(u64, PaymentId),
    /// A card's card-present spending today.
    CardDay(AccountId),
    Promotion(PromotionId),
    Prize(PrizeId),
    /// An account's promotion points.
    Points(AccountId),
    Campaign(CampaignId),
    /// A merchant's counters in one campaign (merchant first: a merchant's campaigns are
    /// one range).
    MerchantCampaign(MerchantId, CampaignId),
    /// A journal row, by its sequence number: every posting, in the order it was made.
    Posting(u64),
    /// (account, ledger time, sequence number) of each row that moved an account's money:
    /// an account's statement over a time range is one range of these.
    AccountPosting(AccountId, u64, u64),
    /// A merchant's webhook: where its payment events are pushed.
    Webhook(MerchantId),
    /// (merchant, event id): every payment event of a merchant, in order.
    Event(MerchantId, u64),
    /// (merchant, event id): the events still to push to the merchant's webhook.
    EventOutbox(MerchantId, u64),
    /// A principal's digest (`SessionOwner::Keyed`) → how many keyed sessions it holds.
    KeyedSessions(u64),
}

/// A record. Each `Key` variant holds the `Value` variant of the same name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    Config(Box<LedgerConfig>),
    Meta(Meta),
    Account(Account),
    Holder(Box<Holder>),
    CardIndex(AccountId),
    LookupIndex(AccountId),
    Enrolment(Box<Enrolment>),
    Credential(Box<Credential>),
    Challenge(Box<Challenge>),
    Payment(Box<Payment>),
    OrderIndex(PaymentId),
    Merchant(Box<Merchant>),
    Pool(Box<Pool>),
    Voucher(Voucher),
    Gift(Gift),
    Idempotency(Box<IdempotencyRecord>),
    Session(Session),
    SessionIdle,
    Outbox,
    OtpIssues(OtpIssues),
    PendingPayment,
    CardDay(CardDay),
    Promotion(Box<Promotion>),
    Prize(Box<Prize>),
    Points(u64),
    Campaign(Box<Campaign>),
    MerchantCampaign(CampaignCounters),
    Posting(Box<Posting>),
    AccountPosting,
    Webhook(Box<Webhook>),
    Event(Box<Event>),
    EventOutbox,
    KeyedSessions(u64),
}

/// A key that could not be decoded from bytes: a corrupt store or snapshot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("undecodable state key {0:02x?}")]
pub struct BadKey(pub Vec<u8>);

/// The `N` bytes of `bytes` from `i` on, if it has that many.
fn bytes_at<const N: usize>(bytes: &[u8], i: usize) -> Option<[u8; N]> {
    bytes.get(i..i + N)?.try_into().ok()
}

impl Ord for Key {
    /// Hand-written so the hot comparisons (one table, one id) inline into map look-ups.
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use Key::*;
        match (self, other) {
            (Account(a), Account(b)) => a.cmp(b),
            (Idempotency(a), Idempotency(b)) => a.cmp(b),
            (Session(a), Session(b)) => a.cmp(b),
            (Holder(a), Holder(b)) | (Enrolment(a), Enrolment(b)) => a.cmp(b),
            (Credential(a), Credential(b)) | (Gift(a), Gift(b)) => a.cmp(b),
            (CardIndex(a), CardIndex(b)) | (LookupIndex(a), LookupIndex(b)) => a.cmp(b),
            (Challenge(a), Challenge(b)) => a.cmp(b),
            (Payment(a), Payment(b)) => a.cmp(b),
            (OrderIndex(p, d), OrderIndex(q, e)) => (p, d).cmp(&(q, e)),
            (Merchant(a), Merchant(b)) => a.cmp(b),
            (Pool(a), Pool(b)) => a.cmp(b),
            (Voucher(a, p), Voucher(b, q)) => (a, p).cmp(&(b, q)),
            (SessionIdle(a, c), SessionIdle(b, d)) => (a, c).cmp(&(b, d)),
            (Outbox(a), Outbox(b)) => a.cmp(b),
            (OtpIssues(a), OtpIssues(b)) => a.cmp(b),
            (PendingPayment(a, p), PendingPayment(b, q)) => (a, p).cmp(&(b, q)),
            (CardDay(a), CardDay(b)) | (Points(a), Points(b)) => a.cmp(b),
            (Promotion(a), Promotion(b)) => a.cmp(b),
            (Prize(a), Prize(b)) => a.cmp(b),
            (Campaign(a), Campaign(b)) => a.cmp(b),
            (MerchantCampaign(m, c), MerchantCampaign(n, d)) => (m, c).cmp(&(n, d)),
            (Posting(a), Posting(b)) => a.cmp(b),
            (AccountPosting(a, t, s), AccountPosting(b, u, r)) => (a, t, s).cmp(&(b, u, r)),
            (Webhook(a), Webhook(b)) => a.cmp(b),
            (KeyedSessions(a), KeyedSessions(b)) => a.cmp(b),
            (Event(m, e), Event(n, f)) | (EventOutbox(m, e), EventOutbox(n, f)) => {
                (m, e).cmp(&(n, f))
            }
            _ => self.tag().cmp(&other.tag()),
        }
    }
}

impl PartialOrd for Key {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Number of `Key` variants (tags 0..KEY_TAGS).
pub const KEY_TAGS: usize = 33;

impl Key {
    /// The variant's tag: the first byte of the encoding, and the table it lives in.
    #[inline]
    pub fn tag(&self) -> u8 {
        match self {
            Key::Config => 0,
            Key::Meta => 1,
            Key::Account(_) => 2,
            Key::Holder(_) => 3,
            Key::CardIndex(_) => 4,
            Key::LookupIndex(_) => 5,
            Key::Enrolment(_) => 6,
            Key::Credential(_) => 7,
            Key::Challenge(_) => 8,
            Key::Payment(_) => 9,
            Key::OrderIndex(..) => 10,
            Key::Merchant(_) => 11,
            Key::Pool(_) => 12,
            Key::Voucher(..) => 13,
            Key::Gift(_) => 14,
            Key::Idempotency(_) => 15,
            Key::Session(_) => 16,
            Key::SessionIdle(..) => 17,
            Key::Outbox(_) => 18,
            Key::OtpIssues(_) => 19,
            Key::PendingPayment(..) => 20,
            Key::CardDay(_) => 21,
            Key::Promotion(_) => 22,
            Key::Prize(_) => 23,
            Key::Points(_) => 24,
            Key::Campaign(_) => 25,
            Key::MerchantCampaign(..) => 26,
            Key::Posting(_) => 27,
            Key::AccountPosting(..) => 28,
            Key::Webhook(_) => 29,
            Key::Event(..) => 30,
            Key::EventOutbox(..) => 31,
            Key::KeyedSessions(_) => 32,
        }
    }

    /// Order-preserving bytes: tag, then fixed-width big-endian fields.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(41);
        fn payee(out: &mut Vec<u8>, p: &Payee) {
            match p {
                Payee::Merchant(m) => {
                    out.push(0);
                    out.extend_from_slice(&m.0.to_be_bytes());
                }
                Payee::Account(a) => {
                    out.push(1);
                    out.extend_from_slice(&a.0.to_be_bytes());
                }
            }
        }
        fn rk(out: &mut Vec<u8>, k: &RequestKey) {
            out.extend_from_slice(&k.client_id.to_be_bytes());
            out.extend_from_slice(&k.request_id.to_be_bytes());
        }
        match self {
            Key::Config => out.push(0),
            Key::Meta => out.push(1),
            Key::Account(a) => out.extend([&[2][..], &a.0.to_be_bytes()].concat()),
            Key::Holder(a) => out.extend([&[3][..], &a.0.to_be_bytes()].concat()),
            Key::CardIndex(d) => out.extend([&[4][..], &d.0[..]].concat()),
            Key::LookupIndex(d) => out.extend([&[5][..], &d.0[..]].concat()),
            Key::Enrolment(a) => out.extend([&[6][..], &a.0.to_be_bytes()].concat()),
            Key::Credential(a) => out.extend([&[7][..], &a.0.to_be_bytes()].concat()),
            Key::Challenge(c) => out.extend([&[8][..], &c.0.to_be_bytes()].concat()),
            Key::Payment(p) => out.extend([&[9][..], &p.0.to_be_bytes()].concat()),
            Key::OrderIndex(p, d) => {
                out.push(10);
                payee(&mut out, p);
                out.extend_from_slice(&d.0);
            }
            Key::Merchant(m) => out.extend([&[11][..], &m.0.to_be_bytes()].concat()),
            Key::Pool(p) => out.extend([&[12][..], &p.0.to_be_bytes()].concat()),
            Key::Voucher(a, p) => {
                out.push(13);
                out.extend_from_slice(&a.0.to_be_bytes());
                out.extend_from_slice(&p.0.to_be_bytes());
            }
            Key::Gift(a) => out.extend([&[14][..], &a.0.to_be_bytes()].concat()),
            Key::Idempotency(k) => {
                out.push(15);
                rk(&mut out, k);
            }
            Key::Session(c) => out.extend([&[16][..], &c.to_be_bytes()].concat()),
            Key::SessionIdle(ms, c) => {
                out.push(17);
                out.extend_from_slice(&ms.to_be_bytes());
                out.extend_from_slice(&c.to_be_bytes());
            }
            Key::Outbox(c) => out.extend([&[18][..], &c.0.to_be_bytes()].concat()),
            Key::OtpIssues(phone) => out.extend([&[19][..], &phone.to_be_bytes()].concat()),
            Key::PendingPayment(ms, p) => {
                out.push(20);
                out.extend_from_slice(&ms.to_be_bytes());
                out.extend_from_slice(&p.0.to_be_bytes());
            }
            Key::CardDay(a) => out.extend([&[21][..], &a.0.to_be_bytes()].concat()),
            Key::Promotion(p) => out.extend([&[22][..], &p.0.to_be_bytes()].concat()),
            Key::Prize(p) => out.extend([&[23][..], &p.0.to_be_bytes()].concat()),
            Key::Points(a) => out.extend([&[24][..], &a.0.to_be_bytes()].concat()),
            Key::Campaign(c) => out.extend([&[25][..], &c.0.to_be_bytes()].concat()),
            Key::MerchantCampaign(m, c) => {
                out.push(26);
                out.extend_from_slice(&m.0.to_be_bytes());
                out.extend_from_slice(&c.0.to_be_bytes());
            }
            Key::Posting(seq) => out.extend([&[27][..], &seq.to_be_bytes()].concat()),
            Key::AccountPosting(a, ms, seq) => {
                out.push(28);
                out.extend_from_slice(&a.0.to_be_bytes());
                out.extend_from_slice(&ms.to_be_bytes());
                out.extend_from_slice(&seq.to_be_bytes());
            }
            Key::Webhook(m) => out.extend([&[29][..], &m.0.to_be_bytes()].concat()),
            Key::KeyedSessions(p) => out.extend([&[32][..], &p.to_be_bytes()].concat()),
            Key::Event(m, e) | Key::EventOutbox(m, e) => {
                out.push(self.tag());
                out.extend_from_slice(&m.0.to_be_bytes());
                out.extend_from_slice(&e.to_be_bytes());
            }
        }
        out
    }

    /// The inverse of [`Key::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Key, BadKey> {
        let bad = || BadKey(bytes.to_vec());
        let (&tag, rest) = bytes.split_first().ok_or_else(bad)?;
        let u64_at = |i: usize| -> Result<u64, BadKey> {
            bytes_at(rest, i).map(u64::from_be_bytes).ok_or_else(bad)
        };
        let digest_at = |i: usize| -> Result<Digest32, BadKey> {
            bytes_at(rest, i).map(Digest32).ok_or_else(bad)
        };
        let expect_len = |n: usize| if rest.len() == n { Ok(()) } else { Err(bad()) };
        let key = match tag {
            0 => Key::Config,
            1 => Key::Meta,
            2 => Key::Account(AccountId(u64_at(0)?)),
            3 => Key::Holder(AccountId(u64_at(0)?)),
            4 => Key::CardIndex(digest_at(0)?),
            5 => Key::LookupIndex(digest_at(0)?),
            6 => Key::Enrolment(AccountId(u64_at(0)?)),
            7 => Key::Credential(AccountId(u64_at(0)?)),
            8 => Key::Challenge(ChallengeId(u64_at(0)?)),
            9 => Key::Payment(PaymentId(u64_at(0)?)),
            10 => {
                let id = rest.get(1..9).ok_or_else(bad)?;
                let id = u64::from_be_bytes(id.try_into().map_err(|_| bad())?);
                let payee = match rest.first() {
                    Some(0) => Payee::Merchant(MerchantId(id)),
                    Some(1) => Payee::Account(AccountId(id)),
                    _ => return Err(bad()),
                };
                expect_len(41)?;
                return Ok(Key::OrderIndex(payee, digest_at(9)?));
            }
            11 => Key::Merchant(MerchantId(u64_at(0)?)),
            12 => Key::Pool(PoolId(u64_at(0)?)),
            13 => {
                expect_len(16)?;
                return Ok(Key::Voucher(AccountId(u64_at(0)?), PoolId(u64_at(8)?)));
            }
            14 => Key::Gift(AccountId(u64_at(0)?)),
            15 => {
                expect_len(16)?;
                return Ok(Key::Idempotency(RequestKey {
                    client_id: u64_at(0)?,
                    request_id: u64_at(8)?,
                }));
            }
            16 => Key::Session(u64_at(0)?),
            17 => {
                expect_len(16)?;
                return Ok(Key::SessionIdle(u64_at(0)?, u64_at(8)?));
            }
            18 => Key::Outbox(ChallengeId(u64_at(0)?)),
            19 => Key::OtpIssues(u64_at(0)?),
            20 => {
                expect_len(16)?;
                return Ok(Key::PendingPayment(u64_at(0)?, PaymentId(u64_at(8)?)));
            }
            21 => Key::CardDay(AccountId(u64_at(0)?)),
            22 => Key::Promotion(PromotionId(u64_at(0)?)),
            23 => Key::Prize(PrizeId(u64_at(0)?)),
            24 => Key::Points(AccountId(u64_at(0)?)),
            25 => Key::Campaign(CampaignId(u64_at(0)?)),
            26 => {
                expect_len(16)?;
                return Ok(Key::MerchantCampaign(
                    MerchantId(u64_at(0)?),
                    CampaignId(u64_at(8)?),
                ));
            }
            27 => Key::Posting(u64_at(0)?),
            28 => {
                expect_len(24)?;
                return Ok(Key::AccountPosting(
                    AccountId(u64_at(0)?),
                    u64_at(8)?,
                    u64_at(16)?,
                ));
            }
            29 => Key::Webhook(MerchantId(u64_at(0)?)),
            32 => Key::KeyedSessions(u64_at(0)?),
            30 | 31 => {
                expect_len(16)?;
                let (m, e) = (MerchantId(u64_at(0)?), u64_at(8)?);
                return Ok(if tag == 30 {
                    Key::Event(m, e)
                } else {
                    Key::EventOutbox(m, e)
                });
            }
            _ => return Err(bad()),
        };
        let width = match tag {
            0 | 1 => 0,
            4 | 5 => 32,
            _ => 8,
        };
        expect_len(width)?;
        Ok(key)
    }
}

/// One command's changes: `None` deletes the key. Applied atomically, in order.
pub type WriteSet = Vec<(Key, Option<Value>)>;

/// The storage seam between the ledger core and whatever holds its state.
///
/// Reads see every write set handed to `write` before them. A backend that persists (sled)
/// may buffer several write sets and make them durable together, as long as it makes each
/// one atomically.
pub trait Store {
    /// The record under `key`.
    fn get(&self, key: &Key) -> Option<Value>;
    /// Up to `limit` records with `from <= key < to`, in key order.
    fn range(&self, from: &Key, to: &Key, limit: usize) -> Vec<(Key, Value)>;
    /// Up to `limit` records with `from <= key < to`, in descending key order (the newest
    /// rows of a statement first).
    fn range_rev(&self, from: &Key, to: &Key, limit: usize) -> Vec<(Key, Value)>;
    /// Apply one command's write set atomically.
    fn write(&mut self, writes: WriteSet);
    /// Visit every record in key order (state hash, snapshot, invariant checks).
    fn scan(&self, visit: &mut dyn FnMut(&Key, &Value));
}

/// Account ids below this live in the memory store's dense vector; any above (never handed
/// out by the core, which counts up from 16) fall back to the ordered map.
const DENSE_ACCOUNTS: u64 = 1 << 28;

/// The in-memory store: tests, benchmarks and the simulator's sequential model. Accounts,
/// the hottest records, sit in a vector indexed by id (ids are dense and count up); every
/// other kind of record has an ordered map of its own, so a hot table is not slowed by a
/// large one.
#[derive(Clone, Debug)]
pub struct MemStore {
    accounts: Vec<Option<Value>>,
    tables: Vec<BTreeMap<Key, Value>>,
}

impl Default for MemStore {
    fn default() -> Self {
        MemStore {
            accounts: Vec::new(),
            tables: vec![BTreeMap::new(); KEY_TAGS],
        }
    }
}

fn dense_index(key: &Key) -> Option<usize> {
    match key {
        Key::Account(AccountId(id)) if *id < DENSE_ACCOUNTS => Some(*id as usize),
        _ => None,
    }
}

const ACCOUNT_TAG: usize = 2;

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }
    /// Number of records held.
    pub fn len(&self) -> usize {
        self.accounts.iter().flatten().count()
            + self.tables.iter().map(BTreeMap::len).sum::<usize>()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All records of one tag in key order.
    fn table_iter(&self, tag: usize) -> Box<dyn Iterator<Item = (Key, &Value)> + '_> {
        let sparse = self.tables[tag].iter().map(|(k, v)| (*k, v));
        if tag == ACCOUNT_TAG {
            let dense =
                self.accounts.iter().enumerate().filter_map(|(i, v)| {
                    v.as_ref().map(|v| (Key::Account(AccountId(i as u64)), v))
                });
            Box::new(dense.chain(sparse))
        } else {
            Box::new(sparse)
        }
    }
}

impl Store for MemStore {
    #[inline]
    fn get(&self, key: &Key) -> Option<Value> {
        match dense_index(key) {
            Some(i) => self.accounts.get(i).cloned().flatten(),
            None => self.tables[key.tag() as usize].get(key).cloned(),
        }
    }

    fn range(&self, from: &Key, to: &Key, limit: usize) -> Vec<(Key, Value)> {
        if from >= to {
            return Vec::new();
        }
        let last = (to.tag() as usize).min(KEY_TAGS - 1);
        let mut rows = Vec::new();
        for tag in from.tag() as usize..=last {
            if tag == ACCOUNT_TAG {
                rows.extend(
                    self.table_iter(tag)
                        .filter(|(k, _)| k >= from && k < to)
                        .take(limit - rows.len())
                        .map(|(k, v)| (k, v.clone())),
                );
            } else {
                rows.extend(
                    self.tables[tag]
                        .range(*from..*to)
                        .take(limit - rows.len())
                        .map(|(k, v)| (*k, v.clone())),
                );
            }
            if rows.len() == limit {
                break;
            }
        }
        rows
    }

    fn range_rev(&self, from: &Key, to: &Key, limit: usize) -> Vec<(Key, Value)> {
        if from >= to {
            return Vec::new();
        }
        let last = (to.tag() as usize).min(KEY_TAGS - 1);
        let mut rows = Vec::new();
        for tag in (from.tag() as usize..=last).rev() {
            if rows.len() == limit {
                break;
            }
            if tag == ACCOUNT_TAG {
                let mut table: Vec<(Key, Value)> = self
                    .table_iter(tag)
                    .filter(|(k, _)| k >= from && k < to)
                    .map(|(k, v)| (k, v.clone()))
                    .collect();
                table.reverse();
                table.truncate(limit - rows.len());
                rows.extend(table);
            } else {
                rows.extend(
                    self.tables[tag]
                        .range(*from..*to)
                        .rev()
                        .take(limit - rows.len())
                        .map(|(k, v)| (*k, v.clone())),
                );
            }
        }
        rows
    }

    fn write(&mut self, writes: WriteSet) {
        for (key, value) in writes {
            if let Some(i) = dense_index(&key) {
                if i >= self.accounts.len() {
                    if value.is_none() {
                        continue;
                    }
                    self.accounts.resize(i + 1, None);
                }
                self.accounts[i] = value;
                continue;
            }
            let table = &mut self.tables[key.tag() as usize];
            match value {
                Some(value) => {
                    table.insert(key, value);
                }
                None => {
                    table.remove(&key);
                }
            }
        }
    }

    fn scan(&self, visit: &mut dyn FnMut(&Key, &Value)) {
        for tag in 0..KEY_TAGS {
            for (k, v) in self.table_iter(tag) {
                visit(&k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = Key> {
        let id = prop_oneof![0..4u64, Just(u64::MAX), any::<u64>()];
        let digest =
            prop_oneof![Just([0u8; 32]), Just([0xff; 32]), any::<[u8; 32]>()].prop_map(Digest32);
        let payee = (any::<bool>(), id.clone()).prop_map(|(m, i)| {
            if m {
                Payee::Merchant(MerchantId(i))
            } else {
                Payee::Account(AccountId(i))
            }
        });
        prop_oneof![
            Just(Key::Config),
            Just(Key::Meta),
            id.clone().prop_map(|i| Key::Account(AccountId(i))),
            id.clone().prop_map(|i| Key::Holder(AccountId(i))),
            digest.clone().prop_map(Key::CardIndex),
            digest.clone().prop_map(Key::LookupIndex),
            id.clone().prop_map(|i| Key::Enrolment(AccountId(i))),
            id.clone().prop_map(|i| Key::Credential(AccountId(i))),
            id.clone().prop_map(|i| Key::Challenge(ChallengeId(i))),
            id.clone().prop_map(|i| Key::Payment(PaymentId(i))),
            (payee, digest).prop_map(|(p, d)| Key::OrderIndex(p, d)),
            id.clone().prop_map(|i| Key::Merchant(MerchantId(i))),
            id.clone().prop_map(|i| Key::Pool(PoolId(i))),
            (id.clone(), id.clone()).prop_map(|(a, p)| Key::Voucher(AccountId(a), PoolId(p))),
            id.clone().prop_map(|i| Key::Gift(AccountId(i))),
            (id.clone(), id.clone()).prop_map(|(c, r)| Key::Idempotency(RequestKey {
                client_id: c,
                request_id: r
            })),
            id.clone().prop_map(Key::Session),
            (id.clone(), id.clone()).prop_map(|(t, c)| Key::SessionIdle(t, c)),
            id.clone().prop_map(|c| Key::Outbox(ChallengeId(c))),
            id.clone().prop_map(Key::OtpIssues),
            (id.clone(), id.clone()).prop_map(|(t, p)| Key::PendingPayment(t, PaymentId(p))),
            id.clone().prop_map(|a| Key::CardDay(AccountId(a))),
            id.clone().prop_map(|p| Key::Promotion(PromotionId(p))),
            id.clone().prop_map(|p| Key::Prize(PrizeId(p))),
            id.clone().prop_map(|a| Key::Points(AccountId(a))),
            id.clone().prop_map(|c| Key::Campaign(CampaignId(c))),
            (id.clone(), id.clone())
                .prop_map(|(m, c)| Key::MerchantCampaign(MerchantId(m), CampaignId(c))),
            id.clone().prop_map(Key::Posting),
            (id.clone(), id.clone(), id.clone()).prop_map(|(a, t, s)| Key::AccountPosting(
                AccountId(a),
                t,
                s
            )),
            id.clone().prop_map(|m| Key::Webhook(MerchantId(m))),
            (id.clone(), id.clone()).prop_map(|(m, e)| Key::Event(MerchantId(m), e)),
            (id.clone(), id.clone()).prop_map(|(m, e)| Key::EventOutbox(MerchantId(m), e)),
            id.prop_map(Key::KeyedSessions),
        ]
    }

    proptest! {
        /// A backwards range holds the same records as the forward one, the other way round,
        /// cut at the limit from the top.
        #[test]
        fn a_backwards_range_is_the_forward_range_reversed(
            keys in proptest::collection::vec(key(), 0..40),
            bounds in (key(), key()),
            limit in 0..50usize,
        ) {
            let mut store = MemStore::new();
            store.write(keys.iter().map(|k| (*k, Some(Value::AccountPosting))).collect());
            let (from, to) = if bounds.0 <= bounds.1 { bounds } else { (bounds.1, bounds.0) };
            let mut forward = store.range(&from, &to, usize::MAX);
            forward.reverse();
            forward.truncate(limit);
            prop_assert_eq!(store.range_rev(&from, &to, limit), forward);
        }
    }

    #[test]
    fn memory_store_keeps_dense_and_sparse_accounts_in_key_order() {
        let account = |balance_fen| {
            Value::Account(Account {
                status: AccountStatus::Active,
                balance_fen,
                merchant: None,
                flags: CampaignFlags::default(),
                vip: VipTier::None,
                pan_last4: *b"0000",
            })
        };
        let mut store = MemStore::new();
        let ids = [DENSE_ACCOUNTS + 3, 20, 5, u64::MAX];
        store.write(
            ids.iter()
                .map(|i| (Key::Account(AccountId(*i)), Some(account(*i as i64))))
                .collect(),
        );
        store.write(vec![
            (Key::Meta, None),
            (Key::Account(AccountId(20)), None),
            (Key::Account(AccountId(1 << 40)), None),
        ]);
        let all = store.range(
            &Key::Account(AccountId(0)),
            &Key::Holder(AccountId(0)),
            usize::MAX,
        );
        let keys: Vec<Key> = all.iter().map(|(k, _)| *k).collect();
        let expected: Vec<Key> = [5, DENSE_ACCOUNTS + 3, u64::MAX]
            .iter()
            .map(|i| Key::Account(AccountId(*i)))
            .collect();
        assert_eq!(keys, expected);
        let mut scanned = Vec::new();
        store.scan(&mut |k, _| scanned.push(*k));
        assert_eq!(scanned, expected);
        assert_eq!(store.get(&Key::Account(AccountId(20))), None);
        assert_eq!(store.get(&Key::Account(AccountId(5))), Some(account(5)));
        assert_eq!(
            store
                .range(
                    &Key::Account(AccountId(6)),
                    &Key::Account(AccountId(u64::MAX)),
                    1
                )
                .len(),
            1
        );
        assert_eq!(store.len(), 3);
    }

    proptest! {
        /// Every backend must iterate in the same order, so `Ord` on keys and the byte
        /// order of their encoding must agree; and the encoding must round-trip.
        #[test]
        fn key_order_is_the_byte_order_of_the_encoding(a in key(), b in key()) {
            prop_assert_eq!(a.cmp(&b), a.encode().cmp(&b.encode()));
            prop_assert_eq!(Key::decode(&a.encode()), Ok(a));
            prop_assert_eq!(a.encode()[0], a.tag());
        }

        #[test]
        fn undecodable_keys_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..50)) {
            if let Ok(k) = Key::decode(&bytes) {
                prop_assert_eq!(k.encode(), bytes);
            }
        }
    }
}
