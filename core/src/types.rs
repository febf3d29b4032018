//! Identifiers, enums and small value types shared by commands, state and replies.
//!
//! Everything here is plain data with a deterministic serde encoding: no maps, no floats.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A bank account (a card, or one of the bank's internal accounts).
    AccountId
);
id_type!(
    /// A merchant registered for the campaign.
    MerchantId
);
id_type!(
    /// A merchant campaign (PSBC 心计划): reward and fee-tier rules over a window.
    CampaignId
);
id_type!(
    /// A voucher pool (刷卡券).
    PoolId
);
id_type!(
    /// A joint promotion with partner merchants (减排积分).
    PromotionId
);
id_type!(
    /// A prize redeemed with promotion points.
    PrizeId
);
id_type!(
    /// An OTP challenge.
    ChallengeId
);
id_type!(
    /// A two-step e-Pay payment or small transfer.
    PaymentId
);

impl AccountId {
    /// Funds vouchers and merchant rewards.
    pub const PROMOTIONS: AccountId = AccountId(1);
    /// Receives merchant transfer fees.
    pub const FEE_INCOME: AccountId = AccountId(2);
    /// Phone-credit top-ups paid out to the telecom operators.
    pub const TELECOM_SETTLEMENT: AccountId = AccountId(3);
    /// Money entering or leaving the bank: deposits and withdrawals.
    pub const CLEARING: AccountId = AccountId(4);
    /// The bank's internal accounts, created at genesis.
    pub const INTERNAL: [AccountId; 4] = [
        AccountId::PROMOTIONS,
        AccountId::FEE_INCOME,
        AccountId::TELECOM_SETTLEMENT,
        AccountId::CLEARING,
    ];
    /// Customer account ids start here, so an internal id is never handed out to a card.
    pub const FIRST_CUSTOMER: u64 = 16;

    /// Whether this is one of the bank's internal accounts (which may hold negative balances).
    pub fn is_internal(self) -> bool {
        self.0 < Self::FIRST_CUSTOMER
    }
}

/// The idempotency key of a request: the client's id and its own request number.
/// A client creates one key per logical operation and reuses it on every retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestKey {
    pub client_id: u64,
    pub request_id: u64,
}

/// A 32-byte digest: a keyed hash of a card number, of a look-up pair, of a password, or an
/// OTP verifier. `Debug` shows only a short fingerprint, so that logs stay short and carry
/// nothing an attacker could use to test guesses offline.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Digest32(pub [u8; 32]);

impl Digest32 {
    /// All 32 bytes in lower-case hex: for digests that are meant to be compared by people
    /// (a state hash, a backup's checksum), never for a secret's hash.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for Digest32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest32({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

/// Lifecycle of an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountStatus {
    Active,
    /// No money moves in or out until it is unfrozen.
    Frozen,
    /// Terminal; only an account with a zero balance can be closed.
    Closed,
}

/// VIP tier of a card holder, in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum VipTier {
    None,
    Platinum,
    Diamond,
}

/// The three kinds of merchant in the campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MerchantKind {
    /// POS机 merchant; contact phone is a mobile number.
    Pos,
    /// 商易通 merchant (the bank's merchant terminal service); contact phone is a landline.
    Shangyitong,
    /// Online merchant accepting e-Pay.
    Online,
}

/// Who receives an e-Pay payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Payee {
    /// Online shopping or bill payment (缴费) to a merchant.
    Merchant(MerchantId),
    /// A small transfer (小额转账) to another account.
    Account(AccountId),
}

/// Which accounts may claim from a voucher pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Eligibility {
    Anyone,
    /// Holders who bound an ETC device to the card (绑定ETC).
    EtcBound,
    /// Buyers of the 中邮期缴 savings product during the campaign.
    SavingsProduct,
    /// Holders at or above a VIP tier.
    VipAtLeast(VipTier),
}

/// A 商易通 merchant's transfer-fee tier, best last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FeeTier {
    /// The list fee.
    List,
    /// 20% of the list fee (2折).
    TwentyPercent,
    /// No fee.
    Waived,
}

/// The one-time reward of a campaign for one kind of merchant: registered during the
/// campaign, the settlement that first brings it to at least `min_count` settlements and
/// `min_fen` of bills within the campaign earns `reward_fen` of phone credit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewardRule {
    pub min_count: u64,
    pub min_fen: u64,
    pub reward_fen: u64,
}

/// A campaign's monthly fee tiers for 商易通 transfers, decided from a month's figures: an
/// average daily balance of at least `waived_min_avg_balance_fen` waives the fees; at least
/// `discount_min_avg_balance_fen`, or `discount_min_tx_per_terminal` settlements per
/// terminal, earns 20% of list. Either is held for `hold_months` from the next month.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeTiers {
    pub discount_min_avg_balance_fen: u64,
    pub discount_min_tx_per_terminal: u64,
    pub waived_min_avg_balance_fen: u64,
    pub hold_months: u32,
}

/// What a campaign offers. Absent rules offer nothing: a campaign may reward only POS
/// merchants, or only lower fees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignRules {
    pub pos_reward: Option<RewardRule>,
    pub shangyitong_reward: Option<RewardRule>,
    pub fee_tiers: Option<FeeTiers>,
    /// Holders who reach this VIP tier during the campaign get the commemorative gift.
    pub vip_gift: Option<VipTier>,
}

impl CampaignRules {
    /// The article's year-end campaign (DOMAIN.md section 4): 10 settlements and 2,000 yuan
    /// (POS) or 50,000 yuan (商易通) earn 100 yuan of phone credit; 30,000 yuan of average
    /// daily balance or 20 settlements per terminal earn 20% fees, 50,000 yuan waives them,
    /// each held 3 months; platinum holders get the gift. The dev cluster's default.
    pub fn article() -> CampaignRules {
        const YUAN: u64 = 100;
        CampaignRules {
            pos_reward: Some(RewardRule {
                min_count: 10,
                min_fen: 2_000 * YUAN,
                reward_fen: 100 * YUAN,
            }),
            shangyitong_reward: Some(RewardRule {
                min_count: 10,
                min_fen: 50_000 * YUAN,
                reward_fen: 100 * YUAN,
            }),
            fee_tiers: Some(FeeTiers {
                discount_min_avg_balance_fen: 30_000 * YUAN,
                discount_min_tx_per_terminal: 20,
                waived_min_avg_balance_fen: 50_000 * YUAN,
                hold_months: 3,
            }),
            vip_gift: Some(VipTier::Platinum),
        }
    }

    /// The reward rule for a kind of merchant (online merchants have none).
    pub fn reward_for(&self, kind: MerchantKind) -> Option<RewardRule> {
        match kind {
            MerchantKind::Pos => self.pos_reward,
            MerchantKind::Shangyitong => self.shangyitong_reward,
            MerchantKind::Online => None,
        }
    }
}

/// A calendar month in China Standard Time, as months since year 0 (`year * 12 + month - 1`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct YearMonth(pub u32);

impl YearMonth {
    /// Builds a month from a year and a month number 1..=12.
    pub fn new(year: u32, month: u32) -> Option<YearMonth> {
        (1..=12)
            .contains(&month)
            .then(|| YearMonth(year * 12 + month - 1))
    }
    pub fn year(self) -> u32 {
        self.0 / 12
    }
    /// Month number 1..=12.
    pub fn month(self) -> u32 {
        self.0 % 12 + 1
    }
    pub fn next(self) -> YearMonth {
        YearMonth(self.0 + 1)
    }
    pub fn plus(self, months: u32) -> YearMonth {
        YearMonth(self.0 + months)
    }
}

impl fmt::Debug for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year(), self.month())
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Why money moved: every journal row names its cause, and the cause's id where it has one
/// (a deposit, withdrawal or book transfer is identified by the row's request key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Cause {
    /// Cash in: `clearing` → the customer.
    Deposit,
    /// Cash out: the customer → `clearing`.
    Withdrawal,
    /// A book transfer between two customers.
    Transfer,
    /// What an e-Pay payer was debited when the payment settled (after its voucher).
    Payment(PaymentId),
    /// What a card was debited at a terminal (after its voucher).
    Swipe(PaymentId),
    /// A voucher's face value, from `promotions` to the payee, toward a payment or swipe.
    Voucher { payment: PaymentId, pool: PoolId },
    /// A refund's share back to the payer, from the merchant's settlement account.
    Refund(PaymentId),
    /// A refund's share back to `promotions` (the part a voucher had paid).
    RefundVoucher(PaymentId),
    /// A campaign's one-time merchant reward (phone credit): `promotions` → the telecom
    /// settlement account.
    Reward {
        campaign: CampaignId,
        merchant: MerchantId,
    },
    /// A merchant's transfer out of its settlement account.
    MerchantTransfer(MerchantId),
    /// The fee of a merchant's transfer, into `fee_income`.
    Fee(MerchantId),
}

impl Cause {
    /// The payment this row belongs to, if any.
    pub fn payment(self) -> Option<PaymentId> {
        match self {
            Cause::Payment(p)
            | Cause::Swipe(p)
            | Cause::Voucher { payment: p, .. }
            | Cause::Refund(p)
            | Cause::RefundVoucher(p) => Some(p),
            Cause::Deposit
            | Cause::Withdrawal
            | Cause::Transfer
            | Cause::Reward { .. }
            | Cause::MerchantTransfer(_)
            | Cause::Fee(_) => None,
        }
    }

    /// A short lower-case name for statements and CSV files.
    pub fn name(self) -> &'static str {
        match self {
            Cause::Deposit => "deposit",
            Cause::Withdrawal => "withdrawal",
            Cause::Transfer => "transfer",
            Cause::Payment(_) => "payment",
            Cause::Swipe(_) => "swipe",
            Cause::Voucher { .. } => "voucher",
            Cause::Refund(_) => "refund",
            Cause::RefundVoucher(_) => "refund-voucher",
            Cause::Reward { .. } => "reward",
            Cause::MerchantTransfer(_) => "merchant-transfer",
            Cause::Fee(_) => "fee",
        }
    }
}
