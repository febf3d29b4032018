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
