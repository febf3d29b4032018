//! What applying a command returns: a reply, or a typed error that says what was wrong.
//!
//! Errors never carry a secret: no card number, password or code, only ids, amounts and
//! limits. `LedgerError::is_retryable` tells a client whether sending the same request again
//! later can succeed.

use crate::types::{
    AccountId, AccountStatus, ChallengeId, Eligibility, FeeTier, MerchantId, PaymentId, PoolId,
    RequestKey, YearMonth,
};
use serde::{Deserialize, Serialize};

/// Fen as yuan, for messages: 12345 → "123.45".
pub fn yuan(fen: u64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

/// Signed fen as yuan.
pub fn signed_yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}", yuan(fen.unsigned_abs()))
}

/// The result of applying one command.
pub type Outcome = Result<Reply, LedgerError>;

/// A successful command's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    AccountOpened {
        account: AccountId,
    },
    /// Deposit or withdrawal done; the account's new balance.
    Posted {
        account: AccountId,
        balance_fen: i64,
    },
    Transferred {
        source_balance_fen: i64,
        target_balance_fen: i64,
    },
    StatusSet {
        status: AccountStatus,
    },
    FlagsSet,
    VipTierSet {
        /// True when this change recorded the commemorative gift (once per account).
        gift_recorded: bool,
    },
    EnrolmentStarted {
        account: AccountId,
    },
    AliasChosen,
    /// An OTP was issued and will be sent by SMS.
    ChallengeIssued {
        challenge: ChallengeId,
        expires_at_ms: u64,
    },
    EpayActivated {
        account: AccountId,
    },
    LimitsSet {
        per_payment_fen: u64,
        per_day_fen: u64,
    },
    PaymentPending {
        payment: PaymentId,
        challenge: ChallengeId,
        expires_at_ms: u64,
    },
    PaymentSettled {
        payment: PaymentId,
        bill_fen: u64,
        /// What left the payer's account: the bill less the voucher.
        debited_fen: u64,
        /// The voucher deducted, if any (its pool).
        voucher: Option<PoolId>,
        /// The campaigns whose one-time reward this settlement granted the merchant.
        rewards: Vec<crate::types::CampaignId>,
    },
    MerchantRegistered {
        merchant: MerchantId,
    },
    MerchantTransferred {
        fee_fen: u64,
        tier: FeeTier,
    },
    /// The webhook is registered (with the version of its new signing secret) or removed.
    WebhookSet {
        merchant: MerchantId,
        secret_version: Option<u32>,
    },
    /// What a `Compact` removed.
    Compacted {
        postings: u64,
        events: u64,
        payments: u64,
        challenges: u64,
    },
    /// Events taken out of the outbox (ids not in it are ignored: a repeated acknowledgement).
    EventsAcked {
        delivered: u64,
        abandoned: u64,
    },
    MonthClosed {
        month: YearMonth,
        merchants: u64,
    },
    /// How many of the acknowledged challenges were still in the outbox.
    SmsAcknowledged {
        removed: u64,
    },
    PoolCreated {
        pool: PoolId,
    },
    VoucherClaimed {
        pool: PoolId,
        remaining: u64,
    },
    PaymentCancelled {
        payment: PaymentId,
    },
    /// One refund of a settled payment: what went back to the payer and to `promotions`
    /// (the voucher's share), and what is left to refund.
    PaymentRefunded {
        payment: PaymentId,
        refund_fen: u64,
        to_payer_fen: u64,
        to_promotions_fen: u64,
        refundable_fen: u64,
    },
    /// How many of the named pending payments had expired and are now `Expired`.
    PaymentsExpired {
        expired: u64,
    },
    PromotionCreated {
        promotion: crate::types::PromotionId,
    },
    CampaignCreated {
        campaign: crate::types::CampaignId,
        starts_ms: u64,
    },
    PrizeCreated {
        prize: crate::types::PrizeId,
    },
    PrizeRedeemed {
        prize: crate::types::PrizeId,
        points_left: u64,
        stock_left: u64,
    },
}

/// A number in a campaign's rules, for errors about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CampaignRule {
    RewardMinCount,
    RewardMinAmountFen,
    RewardAmountFen,
    DiscountMinAvgBalanceFen,
    DiscountMinTxPerTerminal,
    WaivedMinAvgBalanceFen,
    TierHoldMonths,
}

/// A text field, for errors about text input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TextField {
    HolderName,
    MerchantName,
    PoolName,
    Alias,
    OrderId,
    Receipt,
    PromotionName,
    PrizeName,
    CampaignName,
}

impl TextField {
    /// What the field's length limit counts: an alias is shown in an SMS and counted in
    /// characters; every other text in bytes of UTF-8.
    pub fn length_unit(&self) -> &'static str {
        match self {
            TextField::Alias => "characters",
            _ => "bytes of UTF-8",
        }
    }
}

/// Where an e-Pay enrolment stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnrolmentStep {
    /// Step 1 done: card and phone matched.
    Started,
    /// Step 2 done: password checked, alias chosen.
    AliasChosen,
    /// Step 3 done: OTP sent.
    OtpSent,
}

/// Every way a command can be refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum LedgerError {
    // ---- bad input, caught before anything is looked up ----
    #[error("card number must be 16 to 19 digits")]
    CardNumberLength,
    #[error("card number has a wrong check digit (Luhn)")]
    CardNumberChecksum,
    #[error("mobile phone number must be 11 digits starting with 1")]
    InvalidMobilePhone,
    #[error("landline must be an area code and a number, like 0731-84567890")]
    InvalidLandline,
    #[error("card password must be exactly 6 digits")]
    InvalidCardPasswordFormat,
    #[error("one-time password must be exactly 6 digits")]
    InvalidOtpFormat,
    #[error("amount must be greater than zero")]
    ZeroAmount,
    #[error("amount {} yuan exceeds the limit of {} yuan per command", yuan(*amount_fen), yuan(*max_fen))]
    AmountTooLarge { amount_fen: u64, max_fen: u64 },
    #[error("{field:?} must not be empty")]
    TextEmpty { field: TextField },
    #[error("{field:?} is too long: at most {max} {}", field.length_unit())]
    TextTooLong { field: TextField, max: usize },
    #[error("{field:?} contains control characters")]
    TextHasControlChars { field: TextField },
    #[error("a command may list at most {max} items")]
    TooManyItems { max: usize },
    #[error("a webhook URL must be http:// or https:// with a host, without spaces, at most {max_bytes} bytes")]
    InvalidWebhookUrl { max_bytes: usize },
    #[error("this cluster posts webhooks only to https:// URLs")]
    WebhookNeedsHttps,
    #[error("a merchant needs 1 to {max} terminals")]
    InvalidTerminalCount { max: u32 },
    #[error("source and target are the same account")]
    SameAccount,

    // ---- references ----
    #[error("no account {account}")]
    UnknownAccount { account: AccountId },
    #[error("account {account} is an internal account of the bank")]
    InternalAccount { account: AccountId },
    #[error("no merchant {merchant}")]
    UnknownMerchant { merchant: MerchantId },
    #[error("no voucher pool {pool}")]
    UnknownPool { pool: PoolId },
    #[error("no payment {payment}")]
    UnknownPayment { payment: PaymentId },
    #[error("no card with this number")]
    UnknownCard,
    #[error("no active e-Pay credential for this phone number and card")]
    UnknownCredential,

    // ---- accounts and money ----
    #[error("a card with this number is already open")]
    DuplicateCard,
    #[error("account {account} is {status:?}")]
    AccountNotActive {
        account: AccountId,
        status: AccountStatus,
    },
    #[error("account {account} holds {} yuan, {} yuan needed", signed_yuan(*balance_fen), yuan(*needed_fen))]
    InsufficientFunds {
        account: AccountId,
        balance_fen: i64,
        needed_fen: u64,
    },
    #[error("account {account} would overflow")]
    BalanceOverflow { account: AccountId },
    #[error("account {account} still holds {} yuan and cannot be closed", signed_yuan(*balance_fen))]
    AccountNotEmpty {
        account: AccountId,
        balance_fen: i64,
    },
    #[error("account {account} is closed for good")]
    AccountClosed { account: AccountId },

    // ---- e-Pay enrolment and limits ----
    #[error("the reserved phone number does not match the card")]
    PhoneMismatch,
    #[error("account {account} already has an active e-Pay credential")]
    AlreadyEnrolled { account: AccountId },
    #[error("account {account} has no e-Pay enrolment in progress")]
    NotEnrolling { account: AccountId },
    #[error("enrolment is at step {actual:?}, this command needs step {expected:?}")]
    EnrolmentStepOutOfOrder {
        expected: EnrolmentStep,
        actual: EnrolmentStep,
    },
    #[error("wrong card password; tries left: {failures_left}")]
    WrongCardPassword { failures_left: u8 },
    #[error("too many wrong card passwords: the enrolment was cancelled; start again")]
    EnrolmentCancelled,
    #[error("too many wrong card passwords: card {account} is frozen until the bank unfreezes it")]
    CardLocked { account: AccountId },
    #[error("another card already uses this phone number and last six digits for e-Pay")]
    LookupTaken,
    #[error("limit {} yuan is above the bank's cap of {} yuan", yuan(*requested_fen), yuan(*cap_fen))]
    LimitAboveCap { requested_fen: u64, cap_fen: u64 },
    #[error("the per-payment limit cannot exceed the daily limit")]
    LimitsInconsistent,
    #[error("debit of {} yuan is above the per-payment limit of {} yuan", yuan(*debit_fen), yuan(*limit_fen))]
    OverPaymentLimit { debit_fen: u64, limit_fen: u64 },
    #[error("debit of {} yuan with {} yuan spent today exceeds the daily limit of {} yuan", yuan(*debit_fen), yuan(*spent_today_fen), yuan(*limit_fen))]
    OverDailyLimit {
        debit_fen: u64,
        spent_today_fen: u64,
        limit_fen: u64,
    },

    // ---- payments and OTP challenges ----
    #[error("order already paid by payment {payment}")]
    OrderAlreadyPaid { payment: PaymentId },
    #[error("payment {payment} is no longer pending")]
    PaymentNotPending { payment: PaymentId },
    #[error("the one-time password expired at {expired_at_ms} (issued at {issued_at_ms})")]
    OtpExpired {
        issued_at_ms: u64,
        expired_at_ms: u64,
    },
    #[error("wrong one-time password; tries left: {attempts_left}")]
    WrongOtp { attempts_left: u8 },
    #[error("too many wrong one-time passwords: challenge {challenge} is locked")]
    OtpLocked { challenge: ChallengeId },
    #[error("one-time password already used")]
    OtpAlreadyUsed { challenge: ChallengeId },
    #[error("a newer one-time password replaced this one")]
    OtpSuperseded { challenge: ChallengeId },
    /// The reserved phone already received `limit` codes within `window_ms` of ledger time
    /// (the throttle against SMS pumping and toll fraud). Nothing changed: no challenge, no
    /// SMS, no payment. The same request succeeds once the oldest counted code leaves the
    /// window, `retry_after_ms` from now. Not retryable (see [`LedgerError::is_retryable`]).
    #[error("phone ending {phone_last4} received {limit} one-time passwords within {window_ms} ms; try again in {retry_after_ms} ms")]
    TooManyChallenges {
        /// The last four digits of the reserved phone: enough to tell the customer which
        /// phone, no more.
        phone_last4: String,
        limit: u32,
        window_ms: u64,
        retry_after_ms: u64,
    },

    #[error("payment {payment} is {state}; only a settled payment can be refunded")]
    NotRefundable { payment: PaymentId, state: String },
    #[error("payment {payment} has {} yuan left to refund, {} yuan asked", yuan(*refundable_fen), yuan(*requested_fen))]
    RefundExceedsBill {
        payment: PaymentId,
        refundable_fen: u64,
        requested_fen: u64,
    },
    #[error("payment {payment} was refunded {max} times already, the most one payment allows")]
    TooManyRefunds { payment: PaymentId, max: u32 },
    #[error("payment {payment} is a small transfer between customers; only a merchant's payment can be refunded")]
    TransferNotRefundable { payment: PaymentId },
    #[error("payment {payment} expired at {expired_at_ms}: it can never settle")]
    PaymentExpired {
        payment: PaymentId,
        expired_at_ms: u64,
    },

    // ---- card-present payments ----
    #[error("merchant {merchant} is an online merchant and has no terminals")]
    NoTerminals { merchant: MerchantId },
    #[error("merchant {merchant} has terminals 1 to {terminals}, not {terminal}")]
    UnknownTerminal {
        merchant: MerchantId,
        terminal: u32,
        terminals: u32,
    },
    #[error("receipt already used at this terminal, by payment {payment}")]
    DuplicateReceipt { payment: PaymentId },
    #[error("debit of {} yuan with {} yuan paid at terminals today exceeds the card's daily card-present cap of {} yuan", yuan(*debit_fen), yuan(*spent_today_fen), yuan(*limit_fen))]
    OverCardPresentDailyLimit {
        debit_fen: u64,
        spent_today_fen: u64,
        limit_fen: u64,
    },

    // ---- campaigns ----
    #[error("a campaign's window must end after it starts")]
    InvalidCampaignWindow,
    #[error("a campaign cannot start in the past: {starts_ms} is before ledger time {now_ms}")]
    CampaignStartsInPast { starts_ms: u64, now_ms: u64 },
    #[error("a campaign needs at least one rule: a reward, fee tiers or a VIP gift")]
    CampaignWithoutRules,
    #[error("campaign rule {rule:?} must be {min} to {max}, not {value}")]
    InvalidCampaignRule {
        rule: CampaignRule,
        value: u64,
        min: u64,
        max: u64,
    },
    #[error("the ledger already holds the maximum of {max} campaigns")]
    TooManyCampaigns { max: u64 },

    // ---- promotion points and prizes ----
    #[error("a promotion's window must end after it starts")]
    InvalidPromotionWindow,
    #[error("a promotion pays 1 to {max} points per yuan")]
    InvalidPointsRate { max: u32 },
    #[error("a promotion names 1 to {max} distinct partner merchants")]
    InvalidPartners { max: usize },
    #[error("the ledger already holds the maximum of {max} promotions")]
    TooManyPromotions { max: u64 },
    #[error("a prize costs 1 to {max_points} points and has a stock of 1 to {max_stock}")]
    InvalidPrize { max_points: u64, max_stock: u64 },
    #[error("the ledger already holds the maximum of {max} prizes")]
    TooManyPrizes { max: u64 },
    #[error("no prize {prize}")]
    UnknownPrize { prize: crate::types::PrizeId },
    #[error("prize {prize} is out of stock: all {stock} redeemed")]
    PrizeOutOfStock {
        prize: crate::types::PrizeId,
        stock: u64,
    },
    #[error("account {account} holds {points} points, {price} needed")]
    NotEnoughPoints {
        account: AccountId,
        points: u64,
        price: u64,
    },

    // ---- merchants ----
    #[error("account {account} already settles merchant {merchant}")]
    SettlementAccountTaken {
        account: AccountId,
        merchant: MerchantId,
    },
    #[error("month {month} has not ended yet")]
    MonthNotOver { month: YearMonth },
    #[error("month {month} is already closed")]
    MonthAlreadyClosed { month: YearMonth },

    // ---- vouchers ----
    #[error("the ledger already holds the maximum of {max} voucher pools")]
    TooManyPools { max: u64 },
    #[error("pool capacity must be 1 to {max}")]
    InvalidPoolCapacity { max: u64 },
    #[error("pool validity must end after it starts")]
    InvalidPoolWindow,
    #[error("pool {pool} opens at {opens_at_ms}")]
    PoolNotOpen { pool: PoolId, opens_at_ms: u64 },
    #[error("pool {pool} closed at {closed_at_ms}")]
    PoolClosed { pool: PoolId, closed_at_ms: u64 },
    #[error("pool {pool} exhausted: all {capacity} vouchers are claimed")]
    PoolExhausted { pool: PoolId, capacity: u64 },
    #[error("account {account} is not eligible for pool {pool} ({eligibility:?})")]
    NotEligible {
        account: AccountId,
        pool: PoolId,
        eligibility: Eligibility,
    },
    #[error("account {account} already claimed from pool {pool}")]
    AlreadyClaimed { account: AccountId, pool: PoolId },

    // ---- idempotency ----
    #[error("request key {key:?} was already used for a different command")]
    IdempotencyKeyReused { key: RequestKey },
    #[error("request {key:?} is older than the client's window (ids below {floor} are forgotten); it is never applied again")]
    RequestTooOld { key: RequestKey, floor: u64 },
    #[error("the ledger holds its maximum of {max_sessions} client sessions; retry later")]
    TooManyClients { max_sessions: u64 },
    #[error("the caller holds its maximum of {max_keys} idempotency keys used within the keys' idle time; a place frees when one has been unused that long")]
    TooManyIdempotencyKeys { max_keys: u64 },
}

impl LedgerError {
    /// Whether the same request, sent again later unchanged, may succeed. Everything else needs
    /// a different request (or a different state, such as a deposit before a new payment).
    ///
    /// "Retryable" means the client library may send it again at once, with back-off of
    /// seconds, and report the operation as of unknown outcome if its attempts run out.
    /// `TooManyChallenges` is therefore not retryable although the same request will succeed
    /// later: the wait is minutes, which the library's attempts would burn in a loop of
    /// refusals (each one more request against the phone's throttle) before turning a
    /// definite refusal into an unknown outcome. The caller gets the refusal at once with
    /// `retry_after_ms`, and a person decides whether to ask for a code again.
    /// `TooManyIdempotencyKeys` is not retryable for the same reason: a place frees only
    /// when one of the caller's keys has been idle for a day.
    pub fn is_retryable(&self) -> bool {
        matches!(self, LedgerError::TooManyClients { .. })
    }
}
