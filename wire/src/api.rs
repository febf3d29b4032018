//! The client API's wire types: what a merchant or operator sends to a node and gets back.
//!
//! They live in the wire crate, beside the service and its framing, so that the client library
//! and the node share them and neither depends on the other. This is an API boundary: changes are versioned (`API_VERSION`) and additive.
//! Secrets travel here (card numbers, passwords, typed codes) as [`Secret`]s, from the client
//! to the node's intake; they go no further.

use ledger_core::command::{CampaignFlags, Command};
use ledger_core::intake::{OpenAccountRequest, Secret};
use ledger_core::ledger::journal::{
    Cursor, ReadError, Reconciliation, StatementPage, StatementRequest,
};
use ledger_core::outcome::{LedgerError, Reply};
use ledger_core::state::{
    Campaign, CampaignCounters, Credential, Event, Merchant, Payment, Pool, Posting, Prize,
    Promotion, Voucher, Webhook,
};
use ledger_core::types::{
    AccountId, AccountStatus, CampaignId, Digest32, MerchantId, Payee, PaymentId, PoolId, PrizeId,
    PromotionId, RequestKey, VipTier,
};
use serde::{Deserialize, Serialize};

/// Version of these types; a node refuses nothing on it yet, but reports it in its status.
pub const API_VERSION: u32 = 1;
/// Most requests in one `submit` call.
pub const MAX_BATCH: usize = 1_024;
/// Most accounts one `Query::AccountRange` returns.
pub const MAX_ACCOUNT_RANGE: u32 = 1_024;
/// Largest frame a node accepts or sends on the client or Raft port.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// One operation, in the domain's words.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Operation {
    OpenAccount(OpenAccountRequest),
    /// e-Pay enrolment step 1: agreement accepted, card number and reserved phone entered.
    EpayBegin {
        card_number: Secret,
        phone: String,
    },
    /// Step 2: card password and alias.
    EpayChooseAlias {
        account: AccountId,
        card_password: Secret,
        alias: String,
    },
    /// Step 3: confirm; an OTP goes to the reserved phone.
    EpayConfirm {
        account: AccountId,
    },
    /// Step 4: the OTP.
    EpayActivate {
        account: AccountId,
        code: Secret,
    },
    /// Payment step 1, by the merchant: phone + last six digits, amount, order.
    PaymentBegin {
        phone: String,
        last_six: Secret,
        payee: Payee,
        amount_fen: u64,
        order_id: String,
    },
    /// Payment step 2: the payer's OTP.
    PaymentConfirm {
        payment: PaymentId,
        code: Secret,
    },
    /// A card swiped at one of the merchant's terminals (刷卡消费): the card number read from
    /// the card and the PIN typed on the terminal, hashed at the node's intake.
    CardPayment {
        merchant: MerchantId,
        terminal: u32,
        card_number: Secret,
        card_password: Secret,
        amount_fen: u64,
        receipt: String,
    },
    /// Any command that carries no secret (deposits, transfers, merchants, pools, month
    /// close, status and flags). Commands with hashed fields must come through the
    /// operations above, and `AckSms` only from the node itself.
    Command(Command),
}

impl Operation {
    /// Convenience for the flags command.
    pub fn set_flags(account: AccountId, flags: CampaignFlags) -> Operation {
        Operation::Command(Command::SetCampaignFlags { account, flags })
    }
}

/// A request: the idempotency key (created once per logical operation, reused on every
/// retry), the client's lowest request id still waiting for an answer, and the operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientRequest {
    pub key: RequestKey,
    pub acked_below: u64,
    pub operation: Operation,
}

/// A node of the cluster, as clients and operators see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: u64,
    pub raft_addr: String,
    pub client_addr: String,
}

/// Why a node did not apply a request. `is_retryable` says whether the same request may
/// succeed if sent again (to the same or, after `NotLeader`, another node).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApiError {
    #[error("refused: {0}")]
    Ledger(#[from] LedgerError),
    #[error("not the leader; the leader is {leader:?}")]
    NotLeader { leader: Option<NodeInfo> },
    #[error("cluster unavailable: {reason}")]
    Unavailable { reason: String },
    #[error("a batch holds at most {max} requests")]
    BatchTooLarge { max: usize },
    #[error("this command may not be sent by a client: {reason}")]
    NotAllowed { reason: String },
    /// The caller's role does not allow this operation (DOMAIN.md section 10), or the
    /// operation concerns another merchant. Nothing changed.
    #[error("{principal} may not {operation}")]
    Forbidden {
        principal: String,
        operation: String,
    },
    /// A read of the journal was refused (bad range, page size or cursor; unknown account).
    #[error("read refused: {0}")]
    Read(#[from] ReadError),
    /// The leader's disk has less free space than its reserve (`--min-free-disk-mib`): it
    /// takes no writes until space returns. Nothing was applied; reads still work.
    #[error(
        "the leader's disk is nearly full ({free_bytes} bytes free, {reserve_bytes} kept in reserve): nothing was applied, retry later"
    )]
    DiskFull { free_bytes: u64, reserve_bytes: u64 },
}

impl ApiError {
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Ledger(e) => e.is_retryable(),
            ApiError::NotLeader { .. } | ApiError::Unavailable { .. } => true,
            ApiError::DiskFull { .. } => true,
            ApiError::BatchTooLarge { .. }
            | ApiError::NotAllowed { .. }
            | ApiError::Forbidden { .. }
            | ApiError::Read(_) => false,
        }
    }
}

/// The answer to one request.
pub type ClientResult = Result<Reply, ApiError>;

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Consistency {
    /// Confirms leadership with a quorum, then reads at least everything committed before
    /// the read began (read index). The default.
    Linearizable,
    /// Reads whatever this node has applied; may be behind.
    Stale,
}

/// What a client may read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Query {
    Account(AccountId),
    Credential(AccountId),
    Merchant(MerchantId),
    Pool(PoolId),
    Voucher(AccountId, PoolId),
    Payment(PaymentId),
    /// An account's promotion points.
    Points(AccountId),
    Promotion(PromotionId),
    Prize(PrizeId),
    Campaign(CampaignId),
    /// A merchant's counters in one campaign.
    MerchantCampaign(MerchantId, CampaignId),
    /// Applied index and state hash of the node that answers.
    StateHash,
    /// The accounts with ids `first .. first + count` that exist, read at one point of the
    /// log (an atomic snapshot: audits and the chaos harness's bank reads). `count` is at most
    /// `MAX_ACCOUNT_RANGE`.
    AccountRange {
        first: AccountId,
        count: u32,
    },
    /// A page of an account's statement: its journal rows over a time range, with opening
    /// and closing balance.
    Statement(StatementRequest),
    /// A page of a merchant's reconciliation of one CST day (day number since 1970-01-01
    /// CST), with the day's totals.
    Reconciliation {
        merchant: MerchantId,
        day: u64,
        page_size: u32,
        cursor: Option<Cursor>,
    },
    /// Up to `page_size` journal rows after sequence number `after_seq`, oldest first: every
    /// posting the ledger made, for auditors.
    Journal {
        after_seq: u64,
        page_size: u32,
    },
    /// A merchant's payment events after event id `after_id`, oldest first (at most
    /// `page_size`, up to `MAX_EVENT_BATCH`): the cursor a merchant reads instead of, or
    /// besides, its webhook.
    Events {
        merchant: MerchantId,
        after_id: u64,
        page_size: u32,
    },
    /// A merchant's webhook: URL, delivery counts, failing mark.
    Webhook(MerchantId),
    /// The signing secret of the merchant's current webhook registration (the merchant
    /// itself only).
    WebhookSecret(MerchantId),
}

/// An account as clients see it: no hashes, no password material.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub account: AccountId,
    pub holder_name: String,
    pub phone: String,
    pub pan_last4: String,
    pub status: AccountStatus,
    pub balance_fen: i64,
    pub merchant: Option<MerchantId>,
    pub flags: CampaignFlags,
    pub vip: VipTier,
}

/// The answer to a query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryReply {
    Account(Option<AccountView>),
    Credential(Option<Credential>),
    Merchant(Option<Merchant>),
    Pool(Option<Pool>),
    Voucher(Option<Voucher>),
    Payment(Option<Payment>),
    Points(u64),
    Promotion(Option<Promotion>),
    Prize(Option<Prize>),
    Campaign(Option<Campaign>),
    MerchantCampaign(Option<CampaignCounters>),
    StateHash {
        applied_index: u64,
        hash: Digest32,
    },
    /// The accounts, and the log index the node had applied when it read them (all of them
    /// at that one index): a reader can tell a later state from an earlier one.
    Accounts {
        applied_index: u64,
        accounts: Vec<AccountView>,
    },
    /// Each journal read is made at one applied index, given with it.
    Statement {
        applied_index: u64,
        page: StatementPage,
    },
    Reconciliation {
        applied_index: u64,
        reconciliation: Reconciliation,
    },
    Journal {
        applied_index: u64,
        rows: Vec<Posting>,
    },
    Events {
        applied_index: u64,
        events: Vec<Event>,
    },
    Webhook(Option<Webhook>),
    /// `None` when the merchant has no webhook.
    WebhookSecret(Option<(u32, Secret)>),
}

/// Most bytes of a prepared backup one `backup_chunk` call returns.
pub const BACKUP_CHUNK_BYTES: u32 = 4 * 1024 * 1024;

/// A backup a node has prepared (`backup_begin`): a point-in-time copy of its ledger state,
/// held by the node until it is fetched in chunks (`backup_chunk`) or replaced by the next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    /// Names the prepared copy in `backup_chunk` calls.
    pub backup_id: u64,
    /// The node the copy was taken on.
    pub node_id: u64,
    /// The Raft log position the copy holds every entry up to: its term and index.
    pub applied_term: u64,
    pub applied_index: u64,
    /// Whether the node was the leader and confirmed it with a quorum before copying: the
    /// copy then holds every write acknowledged before the backup began.
    pub linearizable: bool,
    /// The ledger's state hash of the copy (what `Query::StateHash` answers).
    pub state_hash: Digest32,
    /// Records in the copy.
    pub records: u64,
    /// Length and SHA-256 of the copy's bytes (the ledger's snapshot encoding).
    pub bytes: u64,
    pub sha256: Digest32,
    /// The node's clock when it took the copy, ms since the Unix epoch.
    pub taken_ms: u64,
}

/// A node's view of the cluster, for `ledgerctl status` and health checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub api_version: u32,
    pub id: u64,
    /// Leader, Follower, Candidate, Learner or Shutdown.
    pub role: String,
    pub term: u64,
    pub leader: Option<u64>,
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// On the leader: each member's matched log index.
    pub replication: Vec<(u64, Option<u64>)>,
    pub members: Vec<NodeInfo>,
    pub voters: Vec<u64>,
}
