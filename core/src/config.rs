//! The ledger's configuration: the bank's caps and list fees, and the named limits. Campaign
//! rules are records (`Command::CreateCampaign`), not configuration.
//!
//! The configuration is part of the replicated state (written at genesis), so every replica
//! applies commands under the same numbers and a snapshot carries them along.

use serde::{Deserialize, Serialize};

/// 1 yuan in fen.
pub const YUAN: u64 = 100;

/// Largest amount a single command may move: 10 million yuan. Anything larger is refused as
/// bad input before it can overflow a counter.
pub const MAX_AMOUNT_FEN: u64 = 10_000_000 * YUAN;
/// Longest holder or merchant name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest e-Pay alias, in characters. The alias is shown back in every SMS.
pub const MAX_ALIAS_CHARS: usize = 16;
/// Longest merchant order id, in bytes.
pub const MAX_ORDER_ID_BYTES: usize = 64;
/// Most terminals a 商易通 merchant may declare.
pub const MAX_TERMINALS: u32 = 10_000;
/// Most voucher pools the ledger holds; bounds the vouchers per account scanned at payment.
pub const MAX_POOLS: u64 = 10_000;
/// Most vouchers a pool may offer.
pub const MAX_POOL_CAPACITY: u64 = 10_000_000;
/// Most challenges one `AckSms` command may take out of the outbox.
pub const MAX_SMS_ACK: usize = 1_024;
/// Most payments one `ExpirePayments` command may expire.
pub const MAX_EXPIRE_BATCH: usize = 1_024;
/// Longest receipt number a terminal may print, in bytes.
pub const MAX_RECEIPT_BYTES: usize = 32;
/// Most promotions the ledger holds; every e-Pay settlement looks at each of them.
pub const MAX_PROMOTIONS: u64 = 1_000;
/// Most partner merchants one promotion names.
pub const MAX_PROMOTION_PARTNERS: usize = 64;
/// Highest rate a promotion may pay, in points per whole yuan.
pub const MAX_POINTS_PER_YUAN: u32 = 1_000;
/// Most prizes the ledger holds.
pub const MAX_PRIZES: u64 = 10_000;
/// Largest stock one prize may have.
pub const MAX_PRIZE_STOCK: u64 = 10_000_000;
/// Highest price of a prize, in points.
pub const MAX_PRIZE_POINTS: u64 = 1_000_000_000;
/// Most refunds of one payment (each a posting of its own; a bill of 1 fen refunded a fen at
/// a time is the only way to reach it).
pub const MAX_REFUNDS_PER_PAYMENT: u32 = 1_000;
/// The article's year-end campaign: from 2014-12-01 00:00 CST...
pub const ARTICLE_CAMPAIGN_STARTS_MS: u64 = 1_417_363_200_000;
/// ...to 2015-03-01 00:00 CST.
pub const ARTICLE_CAMPAIGN_ENDS_MS: u64 = 1_425_139_200_000;
/// Longest webhook URL.
pub const MAX_WEBHOOK_URL_BYTES: usize = 512;
/// Most events one acknowledgement names, and one page of an event read returns.
pub const MAX_EVENT_BATCH: usize = 1_000;
/// Most journal rows, most events and most payments one `Command::Compact` removes (a row
/// is three records): applying it stays short however much is due. (At 500 rows one took
/// 44 ms to apply over sled, `cargo bench -p ledger-node --bench retention`: payments
/// would wait behind it.)
pub const MAX_COMPACT_BATCH: usize = 128;
/// Most rows one page of a statement, reconciliation or journal read returns.
pub const MAX_STATEMENT_ROWS: u32 = 1_000;
/// Longest time range one statement covers: the journal's retention horizon.
pub const MAX_STATEMENT_RANGE_MS: u64 = 400 * crate::time::DAY_MS;
/// Most campaigns the ledger holds; every settlement looks at each of them.
pub const MAX_CAMPAIGNS: u64 = 64;
/// Highest settlement count a campaign rule may ask for (a reward's count, a fee tier's
/// settlements per terminal).
pub const MAX_CAMPAIGN_COUNT: u64 = 1_000_000;
/// Highest amount a campaign threshold may name (a reward's bills, an average balance):
/// 100 million yuan.
pub const MAX_CAMPAIGN_THRESHOLD_FEN: u64 = 100_000_000 * YUAN;
/// Largest one-time reward a campaign may pay: 10,000 yuan.
pub const MAX_CAMPAIGN_REWARD_FEN: u64 = 10_000 * YUAN;
/// Longest a fee tier may be held once earned, in months.
pub const MAX_TIER_HOLD_MONTHS: u32 = 24;
/// Wrong card passwords in a row, across enrolments, that freeze the card.
pub const MAX_CARD_PASSWORD_FAILURES: u8 = 6;
/// Wrong card passwords tolerated during one e-Pay enrolment before it is cancelled.
pub const MAX_PASSWORD_FAILURES: u8 = 3;

/// The configuration every replica applies commands under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerConfig {
    /// Bank cap on a single e-Pay payment (debited amount). Default 1,000 yuan.
    pub epay_cap_fen_per_payment: u64,
    /// Bank cap on e-Pay payments per China Standard Time day. Default 3,000 yuan.
    pub epay_cap_fen_per_day: u64,
    /// How long an OTP challenge may be answered. Default 5 minutes.
    pub otp_expiry_ms: u64,
    /// Wrong codes that lock a challenge. Default 3.
    pub otp_max_attempts: u8,
    /// Most OTP challenges issued to one reserved phone within `otp_throttle_window_ms`,
    /// enrolment and payment codes together (default 5). Against SMS pumping and toll
    /// fraud: whoever knows a phone and a card's last six digits could otherwise make the
    /// bank send texts without end. Zero would refuse every challenge (no e-Pay at all).
    pub otp_challenges_per_phone: u32,
    /// The sliding window of ledger time the throttle counts over (default 10 minutes). Zero
    /// would count nothing (no throttle).
    pub otp_throttle_window_ms: u64,
    /// Cap on what one card may pay at terminals (card-present, 刷卡消费) per China Standard
    /// Time day, counted after vouchers. Default 50,000 yuan. e-Pay limits do not apply there.
    pub card_present_cap_fen_per_day: u64,
    /// List fee for a 商易通 merchant transfer, in basis points (0.5% = 50).
    pub list_fee_basis_points: u64,
    /// Minimum list fee (1 yuan).
    pub list_fee_min_fen: u64,
    /// Maximum list fee (50 yuan).
    pub list_fee_max_fen: u64,
    /// Idempotency records kept per client beyond what it has acknowledged (default 1,024).
    /// A client acknowledges with `Envelope::acked_below`; when it has more records than
    /// this, its oldest is forgotten and a retry of it is refused as too old, never re-applied.
    pub idempotency_window_per_client: u64,
    /// A client session idle this long (ledger time) is forgotten with its records
    /// (default 7 days). The client library gives up on a request long before.
    pub client_session_idle_ms: u64,
    /// Most client sessions held at once (default 1,000,000). A new client beyond it is
    /// refused (retryable: idle sessions expire) rather than forgetting a live one.
    pub max_client_sessions: u64,
    /// A session opened for one HTTP `Idempotency-Key` (`SessionOwner::Keyed`) idle this long
    /// is forgotten with its answer (default 24 hours, as payment APIs keep their keys): a
    /// retry with the key after that is applied as new.
    pub keyed_session_idle_ms: u64,
    /// Most keyed sessions one principal holds at once (default 1,000,000). Past it, a new
    /// key is refused with `TooManyIdempotencyKeys` until one has been idle for
    /// `keyed_session_idle_ms`; other principals and the client library are not affected.
    pub max_keyed_sessions_per_principal: u64,
    /// How long the leader keeps trying to deliver a payment event to a merchant's webhook
    /// (ledger time since the event; default 3 days). After it, the event leaves the outbox
    /// undelivered; the merchant still reads it from its event cursor.
    pub event_retry_ms: u64,
    /// Undelivered webhook events one merchant may have (default 10,000): past it, pushing
    /// pauses and the webhook is marked failing until the merchant registers it again. Its
    /// events stay readable from the cursor; a slow merchant never slows a payment.
    pub max_undelivered_events: u64,
    /// How long journal rows are kept, by ledger time (default 400 days, the longest
    /// statement range); older rows are compacted away (`Command::Compact`).
    pub journal_retention_ms: u64,
    /// How long a payment event is kept once it waits in no outbox (default 7 days); a
    /// merchant reading from its cursor reads within that.
    pub event_retention_ms: u64,
    /// How long an ended payment is kept, from its creation (default 400 days), with its
    /// challenge and its order index entry: past it, it can no longer be read or refunded,
    /// and its order id may be paid again.
    pub payment_retention_ms: u64,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            epay_cap_fen_per_payment: 1_000 * YUAN,
            epay_cap_fen_per_day: 3_000 * YUAN,
            otp_expiry_ms: 5 * 60_000,
            otp_max_attempts: 3,
            otp_challenges_per_phone: 5,
            otp_throttle_window_ms: 10 * 60_000,
            card_present_cap_fen_per_day: 50_000 * YUAN,
            list_fee_basis_points: 50,
            list_fee_min_fen: YUAN,
            list_fee_max_fen: 50 * YUAN,
            idempotency_window_per_client: 1_024,
            client_session_idle_ms: 7 * 86_400_000,
            max_client_sessions: 1_000_000,
            keyed_session_idle_ms: 86_400_000,
            max_keyed_sessions_per_principal: 1_000_000,
            event_retry_ms: 3 * 86_400_000,
            max_undelivered_events: 10_000,
            journal_retention_ms: MAX_STATEMENT_RANGE_MS,
            event_retention_ms: 7 * 86_400_000,
            payment_retention_ms: MAX_STATEMENT_RANGE_MS,
        }
    }
}
