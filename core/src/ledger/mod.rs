//! The ledger: applies one command at a time, `(state, command, context) -> outcome`.
//!
//! `Ledger::apply` owns the control flow every command shares (ledger time, idempotency,
//! atomic commit); the per-domain modules compute what a command changes. A command's reads
//! and writes go through a [`Tx`] overlay: a refusal drops the overlay, so a refused command
//! changes nothing, however far it got.

mod accounts;
mod campaigns;
mod epay;
mod events;
pub mod journal;
mod merchants;
mod points;
mod refunds;
mod retention;
mod sessions;
mod terminals;
pub use merchants::transfer_fee_fen;
mod vouchers;

use crate::command::{Command, Context, Envelope};
use crate::config::LedgerConfig;
use crate::outcome::{LedgerError, Outcome, Reply};
use crate::state::{
    Account, Challenge, Credential, Enrolment, Gift, Holder, IdempotencyRecord, Key, Merchant,
    Meta, Payment, PaymentState, Pool, Store, Value, Voucher, WriteSet,
};
use crate::types::{
    AccountId, AccountStatus, ChallengeId, Digest32, MerchantId, PaymentId, PoolId, RequestKey,
    VipTier,
};
use sha2::{Digest, Sha256};

/// A record type that lives under one `Key` variant.
pub(crate) trait Record: Sized {
    fn from_value(value: Value) -> Option<Self>;
    fn into_value(self) -> Value;
}

macro_rules! record {
    ($t:ty, $variant:ident) => {
        impl Record for $t {
            fn from_value(value: Value) -> Option<Self> {
                match value {
                    Value::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn into_value(self) -> Value {
                Value::$variant(self)
            }
        }
    };
    ($t:ty, $variant:ident, boxed) => {
        impl Record for $t {
            fn from_value(value: Value) -> Option<Self> {
                match value {
                    Value::$variant(v) => Some(*v),
                    _ => None,
                }
            }
            fn into_value(self) -> Value {
                Value::$variant(Box::new(self))
            }
        }
    };
}

record!(Meta, Meta);
record!(Account, Account);
record!(Voucher, Voucher);
record!(Gift, Gift);
record!(LedgerConfig, Config, boxed);
record!(Holder, Holder, boxed);
record!(Enrolment, Enrolment, boxed);
record!(Credential, Credential, boxed);
record!(Challenge, Challenge, boxed);
record!(Payment, Payment, boxed);
record!(Merchant, Merchant, boxed);
record!(Pool, Pool, boxed);
record!(IdempotencyRecord, Idempotency, boxed);
record!(crate::state::Session, Session);
record!(crate::state::OtpIssues, OtpIssues);
record!(crate::state::CardDay, CardDay);
record!(crate::state::Promotion, Promotion, boxed);
record!(crate::state::Prize, Prize, boxed);
record!(crate::state::Campaign, Campaign, boxed);
record!(crate::state::CampaignCounters, MerchantCampaign);
record!(crate::state::Posting, Posting, boxed);
record!(crate::state::Webhook, Webhook, boxed);
record!(crate::state::Event, Event, boxed);

/// A command's view of the state: the store plus the command's own uncommitted writes (a
/// map, so that a command writing thousands of records, a `Compact`, stays linear).
pub(crate) struct Tx<'s> {
    store: &'s dyn Store,
    writes: std::collections::BTreeMap<Key, Option<Value>>,
}

impl<'s> Tx<'s> {
    fn new(store: &'s dyn Store) -> Self {
        Tx {
            store,
            writes: std::collections::BTreeMap::new(),
        }
    }

    pub(crate) fn get_value(&self, key: &Key) -> Option<Value> {
        match self.writes.get(key) {
            Some(v) => v.clone(),
            None => self.store.get(key),
        }
    }

    /// A typed record. A record of the wrong type under a key means the state is corrupt:
    /// crash rather than serve wrong money.
    pub(crate) fn get<T: Record>(&self, key: Key) -> Option<T> {
        self.get_value(&key).map(|v| {
            T::from_value(v)
                .unwrap_or_else(|| panic!("corrupt state: wrong record type at {key:?}"))
        })
    }

    /// An index entry pointing at an account.
    pub(crate) fn get_account_index(&self, key: Key) -> Option<AccountId> {
        match self.get_value(&key)? {
            Value::CardIndex(a) | Value::LookupIndex(a) => Some(a),
            other => panic!("corrupt state: {other:?} at {key:?}"),
        }
    }

    pub(crate) fn get_payment_index(&self, key: Key) -> Option<PaymentId> {
        match self.get_value(&key)? {
            Value::OrderIndex(p) => Some(p),
            other => panic!("corrupt state: {other:?} at {key:?}"),
        }
    }

    pub(crate) fn put_value(&mut self, key: Key, value: Option<Value>) {
        self.writes.insert(key, value);
    }

    pub(crate) fn put<T: Record>(&mut self, key: Key, record: T) {
        self.put_value(key, Some(record.into_value()));
    }

    pub(crate) fn delete(&mut self, key: Key) {
        self.put_value(key, None);
    }

    /// Records in `[from, to)` in key order, this command's writes included.
    pub(crate) fn range(&self, from: Key, to: Key, limit: usize) -> Vec<(Key, Value)> {
        if from >= to {
            return Vec::new();
        }
        let pending: Vec<(&Key, &Option<Value>)> = self.writes.range(from..to).collect();
        let mut rows = self
            .store
            .range(&from, &to, limit.saturating_add(pending.len()));
        for (key, value) in pending {
            rows.retain(|(k, _)| k != key);
            if let Some(v) = value {
                rows.push((*key, v.clone()));
            }
        }
        rows.sort_by_key(|row| row.0);
        rows.truncate(limit);
        rows
    }
}

/// Why a command failed, and whether its writes stand.
pub(crate) enum Failure {
    /// Nothing changes, nothing is recorded: a retry evaluates afresh.
    Refused(LedgerError),
    /// The writes stand and the outcome is recorded: a wrong OTP uses up an attempt, and a
    /// network retry of the same request must not use up another.
    Recorded(LedgerError),
}

impl From<LedgerError> for Failure {
    fn from(e: LedgerError) -> Self {
        Failure::Refused(e)
    }
}

pub(crate) type Handled = Result<Reply, Failure>;

/// Everything a handler needs: the overlay, the ledger's counters, its configuration and
/// the ledger time of this command.
pub(crate) struct Apply<'s> {
    pub(crate) tx: Tx<'s>,
    pub(crate) meta: Meta,
    pub(crate) config: &'s LedgerConfig,
    pub(crate) now_ms: u64,
    /// The Raft log index of the command (journal rows record it).
    pub(crate) index: u64,
    /// The request being applied (journal rows record it).
    pub(crate) request: crate::types::RequestKey,
}

/// Why a snapshot could not be restored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a ledger snapshot (bad magic or version)")]
    BadHeader,
    #[error("snapshot is truncated or has trailing bytes")]
    BadLength,
    #[error("snapshot checksum does not match its contents")]
    BadChecksum,
    #[error("snapshot record {index} does not decode")]
    BadRecord { index: u64 },
    #[error("snapshot keys are not strictly increasing at record {index}")]
    Unordered { index: u64 },
    #[error("snapshot holds no ledger configuration")]
    NoConfig,
    #[error("restore needs an empty store")]
    StoreNotEmpty,
}

/// What an OTP's SMS needs: recipient, alias, payee and amount, and the inputs from which
/// the sender derives the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmsFacts {
    pub challenge: ChallengeId,
    pub phone: String,
    pub alias: String,
    /// None for an enrolment code.
    pub payee: Option<crate::types::Payee>,
    pub amount_fen: Option<u64>,
    pub nonce: u64,
    pub tx_digest: Digest32,
    pub expires_ms: u64,
}

/// A broken invariant: the state holds wrong money. Found by [`Ledger::check_invariants`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ledger invariant broken: {0}")]
pub struct InvariantViolation(pub String);

const SNAPSHOT_MAGIC: &[u8; 8] = b"LEDGSNP1";

/// Encodes one record as the snapshot and the state hash see it.
pub fn encode_record(key: &Key, value: &Value) -> (Vec<u8>, Vec<u8>) {
    let value = bincode::serialize(value).expect("state values always serialize");
    (key.encode(), value)
}

/// Decodes one record encoded by [`encode_record`].
pub fn decode_record(key: &[u8], value: &[u8]) -> Option<(Key, Value)> {
    let key = Key::decode(key).ok()?;
    let value = bincode::deserialize(value).ok()?;
    Some((key, value))
}

fn push_framed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The state hash (`Ledger::state_hash`) of records fed in key order, encoded as
/// [`encode_record`] encodes them: a store that holds them so (the node's sled tree) hashes
/// a copy of its records without decoding them.
pub struct StateHasher {
    hash: Sha256,
    buf: Vec<u8>,
}

impl Default for StateHasher {
    fn default() -> Self {
        let mut hash = Sha256::new();
        hash.update(b"ledger/state/v1");
        StateHasher {
            hash,
            buf: Vec::new(),
        }
    }
}

impl StateHasher {
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        self.buf.clear();
        push_framed(&mut self.buf, key);
        push_framed(&mut self.buf, value);
        self.hash.update(&self.buf);
    }

    pub fn finish(self) -> Digest32 {
        Digest32(self.hash.finalize().into())
    }
}

/// Snapshot bytes from encoded records in key order: magic, record count, length-framed
/// records, and a SHA-256 of all that. Any store that holds records in the encoding of
/// [`encode_record`] (the node's sled trees do) builds its snapshot with this.
pub fn encode_snapshot<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    records: impl IntoIterator<Item = (K, V)>,
) -> Vec<u8> {
    let mut body = SNAPSHOT_MAGIC.to_vec();
    body.extend_from_slice(&[0; 8]);
    let mut count = 0u64;
    for (k, v) in records {
        push_framed(&mut body, k.as_ref());
        push_framed(&mut body, v.as_ref());
        count += 1;
    }
    body[8..16].copy_from_slice(&count.to_be_bytes());
    let checksum = Sha256::digest(&body);
    body.extend_from_slice(&checksum);
    body
}

/// Checks snapshot bytes' header and checksum, without decoding the records; returns the
/// bytes the checksum covers.
pub fn verify_snapshot(snapshot: &[u8]) -> Result<&[u8], SnapshotError> {
    if snapshot.len() < 8 + 8 + 32 || &snapshot[..8] != SNAPSHOT_MAGIC {
        return Err(SnapshotError::BadHeader);
    }
    let (body, checksum) = snapshot.split_at(snapshot.len() - 32);
    if Sha256::digest(body).as_slice() != checksum {
        return Err(SnapshotError::BadChecksum);
    }
    Ok(body)
}

/// Checks snapshot bytes (header, checksum, framing, decodable records in strictly
/// increasing key order) and returns the records.
pub fn decode_snapshot(snapshot: &[u8]) -> Result<Vec<(Key, Value)>, SnapshotError> {
    let body = verify_snapshot(snapshot)?;
    let count = u64::from_be_bytes(body[8..16].try_into().expect("8 bytes"));
    let mut at = 16;
    let take = |at: &mut usize| -> Option<&[u8]> {
        let len = u32::from_be_bytes(body.get(*at..*at + 4)?.try_into().ok()?) as usize;
        let bytes = body.get(*at + 4..*at + 4 + len)?;
        *at += 4 + len;
        Some(bytes)
    };
    let mut records = Vec::new();
    let mut previous: Option<Key> = None;
    for index in 0..count {
        let key = take(&mut at).ok_or(SnapshotError::BadLength)?;
        let value = take(&mut at).ok_or(SnapshotError::BadLength)?;
        let (key, value) = decode_record(key, value).ok_or(SnapshotError::BadRecord { index })?;
        if previous.is_some_and(|p| p >= key) {
            return Err(SnapshotError::Unordered { index });
        }
        previous = Some(key);
        records.push((key, value));
    }
    if at != body.len() {
        return Err(SnapshotError::BadLength);
    }
    Ok(records)
}

/// The ledger core over a store. Clones (of a memory store) serve as the chaos harness's
/// sequential model, whose search backtracks.
#[derive(Clone)]
pub struct Ledger<S: Store> {
    store: S,
    config: LedgerConfig,
    /// No session in the idle queue is due before this (ledger ms): a lower bound, lowered
    /// by every queue entry this ledger writes, so that a command does not look through the
    /// queue (a range read of the store) while none can be due. In memory only, never in
    /// the state: a ledger opened afresh starts at 0 and looks. What a command decides is
    /// the same with it or without it (`sessions::admit`).
    idle_floor_ms: u64,
}

impl<S: Store> Ledger<S> {
    /// A new ledger on an empty store: configuration, counters and the bank's internal
    /// accounts.
    pub fn genesis(mut store: S, config: LedgerConfig) -> Self {
        let mut empty = true;
        store.scan(&mut |_, _| empty = false);
        assert!(empty, "genesis needs an empty store");
        let meta = Meta {
            last_now_ms: 0,
            next_account: AccountId::FIRST_CUSTOMER,
            next_merchant: 1,
            next_pool: 1,
            next_challenge: 1,
            next_payment: 1,
            next_promotion: 1,
            next_prize: 1,
            next_campaign: 1,
            client_sessions: 0,
            last_closed_month: None,
            next_posting: 1,
            next_event: 1,
            first_posting: 1,
            first_payment: 1,
            first_challenge: 1,
        };
        let mut writes: WriteSet = vec![
            (Key::Config, Some(config.clone().into_value())),
            (Key::Meta, Some(meta.into_value())),
        ];
        for id in AccountId::INTERNAL {
            let account = Account {
                status: AccountStatus::Active,
                balance_fen: 0,
                merchant: None,
                flags: Default::default(),
                vip: VipTier::None,
                pan_last4: *b"0000",
            };
            writes.push((Key::Account(id), Some(account.into_value())));
        }
        store.write(writes);
        Ledger {
            store,
            config,
            idle_floor_ms: 0,
        }
    }

    /// Opens a ledger on a store that already holds one (after a restart).
    pub fn open(store: S) -> Option<Self> {
        let config = Tx::new(&store).get::<LedgerConfig>(Key::Config)?;
        Some(Ledger {
            store,
            config,
            idle_floor_ms: 0,
        })
    }

    /// Restores a ledger from snapshot bytes into an empty store.
    pub fn restore(mut store: S, snapshot: &[u8]) -> Result<Self, SnapshotError> {
        let mut probe = false;
        store.scan(&mut |_, _| probe = true);
        if probe {
            return Err(SnapshotError::StoreNotEmpty);
        }
        let records = decode_snapshot(snapshot)?;
        store.write(records.into_iter().map(|(k, v)| (k, Some(v))).collect());
        Ledger::open(store).ok_or(SnapshotError::NoConfig)
    }

    /// The whole state as snapshot bytes (see [`encode_snapshot`]). Two equal states give
    /// identical bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut records = Vec::new();
        self.store
            .scan(&mut |k, v| records.push(encode_record(k, v)));
        encode_snapshot(records)
    }

    /// A stable hash of the whole state: equal on replicas that applied the same commands.
    pub fn state_hash(&self) -> Digest32 {
        let mut h = StateHasher::default();
        self.store.scan(&mut |k, v| {
            let (k, v) = encode_record(k, v);
            h.add(&k, &v);
        });
        h.finish()
    }

    /// Applies one command. Deterministic: the outcome and the new state depend only on the
    /// state, the envelope and the context.
    pub fn apply(&mut self, ctx: &Context, envelope: &Envelope) -> Outcome {
        let tx = Tx::new(&self.store);
        let meta: Meta = tx.get(Key::Meta).expect("state has meta");
        let now_ms = meta.last_now_ms.max(ctx.now_ms);

        let admission = sessions::admit(
            &tx,
            &meta,
            &self.config,
            envelope,
            now_ms,
            &mut self.idle_floor_ms,
        );
        let (session, idle) = match admission {
            Ok(sessions::Admission::Replay(outcome)) => return outcome,
            Ok(sessions::Admission::Admit { session, idle }) => (session, idle),
            Err(e) => return Err(e),
        };

        let mut apply = Apply {
            tx,
            meta,
            config: &self.config,
            now_ms,
            index: ctx.index,
            request: envelope.key,
        };
        let outcome = match dispatch(&mut apply, &envelope.command) {
            Ok(reply) => Ok(reply),
            Err(Failure::Recorded(e)) => Err(e),
            Err(Failure::Refused(e)) => return Err(e),
        };

        let Apply {
            mut tx, mut meta, ..
        } = apply;
        sessions::record(
            &mut tx,
            &mut meta,
            &self.config,
            envelope,
            &outcome,
            now_ms,
            ctx.index,
            session,
            idle,
        );
        meta.last_now_ms = now_ms;
        tx.put(Key::Meta, meta);
        for (key, value) in &tx.writes {
            if let (Key::SessionIdle(due_ms, _), Some(_)) = (key, value) {
                self.idle_floor_ms = self.idle_floor_ms.min(*due_ms);
            }
        }
        self.store.write(tx.writes.into_iter().collect());
        outcome
    }

    fn read<T: Record>(&self, key: Key) -> Option<T> {
        Tx::new(&self.store).get(key)
    }

    pub fn config(&self) -> &LedgerConfig {
        &self.config
    }
    /// The store, mutably: only for a persistence layer to commit what `apply` wrote (the
    /// node drains its sled overlay into one batch per Raft batch). Never to change records.
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }
    pub fn store(&self) -> &S {
        &self.store
    }
    /// Gives the store back (a node hands it to its persistence layer).
    pub fn into_store(self) -> S {
        self.store
    }
    pub fn meta(&self) -> Meta {
        self.read(Key::Meta).expect("state has meta")
    }
    pub fn account(&self, id: AccountId) -> Option<Account> {
        self.read(Key::Account(id))
    }
    /// The holder record: name, phone and the stored hashes (never the card or password).
    pub fn holder(&self, id: AccountId) -> Option<Holder> {
        self.read(Key::Holder(id))
    }
    pub fn balance_fen(&self, id: AccountId) -> Option<i64> {
        self.account(id).map(|a| a.balance_fen)
    }
    pub fn enrolment(&self, id: AccountId) -> Option<Enrolment> {
        self.read(Key::Enrolment(id))
    }
    pub fn credential(&self, id: AccountId) -> Option<Credential> {
        self.read(Key::Credential(id))
    }
    /// The account behind an e-Pay look-up digest (phone + last six digits).
    pub fn credential_by_lookup(&self, lookup: Digest32) -> Option<AccountId> {
        Tx::new(&self.store).get_account_index(Key::LookupIndex(lookup))
    }
    /// The account behind a card-number digest.
    pub fn account_by_card(&self, pan_digest: Digest32) -> Option<AccountId> {
        Tx::new(&self.store).get_account_index(Key::CardIndex(pan_digest))
    }
    pub fn challenge(&self, id: ChallengeId) -> Option<Challenge> {
        self.read(Key::Challenge(id))
    }
    /// A payment as of ledger time: a pending one whose challenge has expired reads as
    /// `Expired` even before the leader's `ExpirePayments` records it so.
    pub fn payment(&self, id: PaymentId) -> Option<Payment> {
        let mut payment: Payment = self.read(Key::Payment(id))?;
        if payment.state == PaymentState::Pending {
            let challenge = payment.challenge().and_then(|c| self.challenge(c))?;
            if self.meta().last_now_ms >= challenge.expires_ms {
                payment.state = PaymentState::Expired {
                    expired_ms: challenge.expires_ms,
                };
            }
        }
        Some(payment)
    }

    /// A payment as it is stored (a pending one stays pending until it is recorded expired).
    pub fn stored_payment(&self, id: PaymentId) -> Option<Payment> {
        self.read(Key::Payment(id))
    }

    /// Pending payments whose challenge expires at or before `now_ms`, soonest first: what
    /// the leader proposes to expire.
    pub fn expired_payments(&self, now_ms: u64, limit: usize) -> Vec<PaymentId> {
        self.store
            .range(
                &Key::PendingPayment(0, PaymentId(0)),
                &Key::PendingPayment(now_ms.saturating_add(1), PaymentId(0)),
                limit,
            )
            .into_iter()
            .filter_map(|(k, _)| match k {
                Key::PendingPayment(_, p) => Some(p),
                _ => None,
            })
            .collect()
    }
    pub fn merchant(&self, id: MerchantId) -> Option<Merchant> {
        self.read(Key::Merchant(id))
    }
    pub fn pool(&self, id: PoolId) -> Option<Pool> {
        self.read(Key::Pool(id))
    }
    pub fn voucher(&self, account: AccountId, pool: PoolId) -> Option<Voucher> {
        self.read(Key::Voucher(account, pool))
    }
    pub fn promotion(&self, id: crate::types::PromotionId) -> Option<crate::state::Promotion> {
        self.read(Key::Promotion(id))
    }
    pub fn prize(&self, id: crate::types::PrizeId) -> Option<crate::state::Prize> {
        self.read(Key::Prize(id))
    }
    pub fn campaign(&self, id: crate::types::CampaignId) -> Option<crate::state::Campaign> {
        self.read(Key::Campaign(id))
    }
    /// A merchant's counters in a campaign (none until a settlement counts for it).
    pub fn merchant_campaign(
        &self,
        merchant: MerchantId,
        campaign: crate::types::CampaignId,
    ) -> Option<crate::state::CampaignCounters> {
        self.read(Key::MerchantCampaign(merchant, campaign))
    }
    /// An account's promotion points (zero if it never earned any).
    pub fn points(&self, account: AccountId) -> u64 {
        match Tx::new(&self.store).get_value(&Key::Points(account)) {
            Some(Value::Points(p)) => p,
            _ => 0,
        }
    }
    pub fn gift(&self, account: AccountId) -> Option<Gift> {
        self.read(Key::Gift(account))
    }
    pub fn idempotency_record(&self, key: RequestKey) -> Option<IdempotencyRecord> {
        self.read(Key::Idempotency(key))
    }
    /// One page of an account's statement: its journal rows over a time range.
    pub fn statement(
        &self,
        request: &journal::StatementRequest,
    ) -> Result<journal::StatementPage, journal::ReadError> {
        journal::statement(&self.store, request)
    }
    /// A merchant's reconciliation of one CST day (day number, see `time::cst_day`): the
    /// day's totals and one page of its settlement account's rows.
    pub fn reconcile(
        &self,
        merchant: MerchantId,
        day: u64,
        page_size: u32,
        cursor: Option<journal::Cursor>,
    ) -> Result<journal::Reconciliation, journal::ReadError> {
        journal::reconcile(&self.store, merchant, day, page_size, cursor)
    }
    /// The journal's rows after `after_seq`, in the order they were made.
    pub fn journal(
        &self,
        after_seq: u64,
        page_size: u32,
    ) -> Result<Vec<crate::state::Posting>, journal::ReadError> {
        journal::rows_after(&self.store, after_seq, page_size)
    }
    /// A merchant's payment events after `after_id`, oldest first (at most
    /// `MAX_EVENT_BATCH`).
    pub fn events(
        &self,
        merchant: MerchantId,
        after_id: u64,
        limit: usize,
    ) -> Vec<crate::state::Event> {
        events::events_after(&self.store, merchant, after_id, limit)
    }
    pub fn webhook(&self, merchant: MerchantId) -> Option<crate::state::Webhook> {
        self.read(Key::Webhook(merchant))
    }
    /// For the leader: each merchant whose webhook has events waiting and is not failing,
    /// with up to `per_merchant` of them, oldest first.
    pub fn event_outbox(
        &self,
        per_merchant: usize,
    ) -> Vec<(MerchantId, crate::state::Webhook, Vec<crate::state::Event>)> {
        events::outbox(&self.store, per_merchant)
    }
    /// Whether a `Command::Compact` at `now_ms` would remove anything (the leader proposes
    /// one while this holds).
    pub fn compaction_due(&self, now_ms: u64) -> bool {
        retention::due(&self.store, &self.meta(), &self.config, now_ms)
    }
    /// How many merchants have a webhook, and how many of those are marked failing.
    pub fn webhook_counts(&self) -> (u64, u64) {
        events::webhook_counts(&self.store)
    }
    /// A client's idempotency session: its floor (ids below it are refused as too old).
    pub fn session(&self, client_id: u64) -> Option<crate::state::Session> {
        self.read(Key::Session(client_id))
    }

    /// How many keyed sessions (HTTP `Idempotency-Key`s) the principal with this digest holds.
    pub fn keyed_sessions(&self, principal: u64) -> u64 {
        match self.store.get(&Key::KeyedSessions(principal)) {
            Some(Value::KeyedSessions(n)) => n,
            _ => 0,
        }
    }

    /// Challenges whose SMS is still to be sent (or confirmed sent), oldest first.
    pub fn outbox(&self, limit: usize) -> Vec<ChallengeId> {
        self.store
            .range(
                &Key::Outbox(ChallengeId(0)),
                &Key::Outbox(ChallengeId(u64::MAX)),
                limit,
            )
            .into_iter()
            .filter_map(|(k, _)| match k {
                Key::Outbox(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    /// What the SMS of a challenge says and where it goes: the alias (the anti-phishing
    /// mark), the payee and the amount. Never the code: the sender derives it.
    pub fn sms_facts(&self, id: ChallengeId) -> Option<SmsFacts> {
        let challenge = self.challenge(id)?;
        let holder = self.holder(challenge.account)?;
        let (alias, payee, amount_fen) = match challenge.purpose {
            crate::state::ChallengePurpose::Enrolment(account) => (
                self.enrolment(account).map(|e| e.alias).unwrap_or_default(),
                None,
                None,
            ),
            crate::state::ChallengePurpose::Payment(p) => {
                let payment = self.payment(p)?;
                let alias = self
                    .credential(payment.payer)
                    .map(|c| c.alias)
                    .unwrap_or_default();
                (alias, Some(payment.payee), Some(payment.amount_fen))
            }
        };
        Some(SmsFacts {
            challenge: id,
            phone: holder.phone,
            alias,
            payee,
            amount_fen,
            nonce: challenge.nonce,
            tx_digest: challenge.tx_digest,
            expires_ms: challenge.expires_ms,
        })
    }

    /// Checks the money invariants over the whole state: the sum of all balances is zero (it
    /// starts at zero and every posting is double entry), no customer balance is negative, no
    /// pool granted more than its capacity or disagrees with its vouchers, every consumed
    /// voucher belongs to exactly one settled payment, the idempotency counters agree, no
    /// phone's OTP throttle holds more issue times than the limit, refunds never exceed the
    /// bill (nor the payer's share what the payer paid), and exactly the pending payments
    /// wait in the expiry queue.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let mut sum: i128 = 0;
        let mut problems = Vec::new();
        let mut vouchers_per_pool = std::collections::BTreeMap::<PoolId, u64>::new();
        let mut consumed = Vec::new();
        let mut records_per_client = std::collections::BTreeMap::<u64, (u64, u64)>::new();
        let mut sessions = Vec::new();
        let mut idle_queue = std::collections::BTreeSet::new();
        let mut keyed_counters = std::collections::BTreeMap::<u64, u64>::new();
        let mut pending = std::collections::BTreeSet::new();
        let mut pending_queue = std::collections::BTreeSet::new();
        let mut balances = std::collections::BTreeMap::<AccountId, i64>::new();
        let mut rows = std::collections::BTreeMap::<u64, crate::state::Posting>::new();
        let mut account_rows = Vec::new();
        let mut hooks = std::collections::BTreeMap::<MerchantId, u64>::new();
        let mut waiting = std::collections::BTreeMap::<MerchantId, u64>::new();
        let mut events = std::collections::BTreeSet::<(MerchantId, u64)>::new();
        self.store.scan(&mut |k, v| match (k, v) {
            (Key::Webhook(m), Value::Webhook(h)) => {
                hooks.insert(*m, h.undelivered);
            }
            (Key::Event(m, id), Value::Event(e)) => {
                events.insert((*m, *id));
                if e.id != *id || e.merchant != *m {
                    problems.push(format!("event ({m}, {id}) holds {e:?}"));
                }
            }
            (Key::EventOutbox(m, id), _) => {
                *waiting.entry(*m).or_default() += 1;
                if !events.contains(&(*m, *id)) {
                    problems.push(format!("outbox names missing event ({m}, {id})"));
                }
            }
            (Key::Posting(seq), Value::Posting(p)) => {
                rows.insert(*seq, **p);
            }
            (Key::AccountPosting(account, at_ms, seq), _) => {
                account_rows.push((*account, *at_ms, *seq));
            }
            (Key::Payment(id), Value::Payment(p)) => {
                if p.state == PaymentState::Pending {
                    pending.insert(*id);
                }
                let (bill, debited) = match p.state {
                    PaymentState::Settled { debited_fen, .. } => (p.amount_fen, debited_fen),
                    _ => (0, 0),
                };
                if p.refunds.total_fen > bill
                    || p.refunds.to_payer_fen > debited
                    || p.refunds.to_payer_fen > p.refunds.total_fen
                {
                    problems.push(format!("payment {id}: refunds {:?} of {p:?}", p.refunds));
                }
            }
            (Key::PendingPayment(_, id), _) => {
                pending_queue.insert(*id);
            }
            (Key::Prize(id), Value::Prize(p)) if p.redeemed > p.stock => {
                problems.push(format!(
                    "prize {id}: {} redeemed of {}",
                    p.redeemed, p.stock
                ));
            }
            (Key::Account(id), Value::Account(a)) => {
                balances.insert(*id, a.balance_fen);
                sum += i128::from(a.balance_fen);
                if !id.is_internal() && a.balance_fen < 0 {
                    problems.push(format!("account {id} is negative: {}", a.balance_fen));
                }
            }
            (Key::Voucher(account, pool), Value::Voucher(v)) => {
                *vouchers_per_pool.entry(*pool).or_default() += 1;
                if let Some(p) = v.consumed_by {
                    consumed.push((*account, *pool, p));
                }
            }
            (Key::Idempotency(k), _) => {
                let entry = records_per_client
                    .entry(k.client_id)
                    .or_insert((0, u64::MAX));
                entry.0 += 1;
                entry.1 = entry.1.min(k.request_id);
            }
            (Key::Session(client), Value::Session(s)) => sessions.push((*client, *s)),
            (Key::SessionIdle(due_ms, client), _) => {
                idle_queue.insert((*due_ms, *client));
            }
            (Key::KeyedSessions(principal), Value::KeyedSessions(n)) => {
                keyed_counters.insert(*principal, *n);
            }
            (Key::OtpIssues(phone), Value::OtpIssues(issues)) => {
                let limit = self.config.otp_challenges_per_phone as usize;
                if issues.issued_ms.len() > limit || !issues.issued_ms.is_sorted() {
                    problems.push(format!("phone {phone}: OTP issue times {issues:?}"));
                }
            }
            _ => {}
        });
        if sum != 0 {
            problems.push(format!("balances sum to {sum}, not 0"));
        }
        for (pool_id, count) in &vouchers_per_pool {
            match self.pool(*pool_id) {
                Some(pool) if pool.granted == *count && pool.granted <= pool.capacity => {}
                Some(pool) => problems.push(format!(
                    "pool {pool_id}: granted {} capacity {} vouchers {count}",
                    pool.granted, pool.capacity
                )),
                None => problems.push(format!("vouchers of unknown pool {pool_id}")),
            }
        }
        let first_payment = self.meta().first_payment;
        // A voucher's payment may have been compacted away; the voucher stays consumed.
        for (account, pool, payment) in consumed.into_iter().filter(|c| c.2 .0 >= first_payment) {
            match self.payment(payment).map(|p| (p.payer, p.state)) {
                Some((
                    payer,
                    crate::state::PaymentState::Settled {
                        voucher: Some(v), ..
                    },
                )) if payer == account && v == pool => {}
                other => problems.push(format!(
                    "voucher ({account}, {pool}) consumed by payment {payment}: {other:?}"
                )),
            }
        }
        let meta = self.meta();
        journal_problems(&meta, &balances, &rows, &account_rows, &mut problems);
        if events.iter().any(|(_, id)| *id >= meta.next_event) {
            problems.push(format!("an event id at or past {}", meta.next_event));
        }
        for (m, n) in &waiting {
            if hooks.get(m) != Some(n) {
                problems.push(format!(
                    "merchant {m}: {n} events waiting, webhook {:?}",
                    hooks.get(m)
                ));
            }
        }
        for (m, n) in &hooks {
            if *n > 0 && !waiting.contains_key(m) {
                problems.push(format!(
                    "merchant {m}: webhook counts {n} waiting, none are"
                ));
            }
        }
        let mut keyed = std::collections::BTreeMap::<u64, u64>::new();
        for (_, s) in &sessions {
            if let crate::command::SessionOwner::Keyed { principal } = s.owner {
                *keyed.entry(principal).or_default() += 1;
            }
        }
        let clients = sessions.len() as u64 - keyed.values().sum::<u64>();
        if clients != meta.client_sessions || idle_queue.len() != sessions.len() {
            problems.push(format!(
                "sessions {} ({clients} of clients, counter {}), idle queue {}",
                sessions.len(),
                meta.client_sessions,
                idle_queue.len(),
            ));
        }
        if keyed != keyed_counters {
            problems.push(format!(
                "keyed sessions per principal {keyed:?}, counters {keyed_counters:?}"
            ));
        }
        for (client, s) in sessions {
            let (count, lowest) = records_per_client.remove(&client).unwrap_or((0, u64::MAX));
            let window = self.config.idempotency_window_per_client;
            if count != s.records || count > window || lowest < s.floor {
                problems.push(format!(
                    "client {client}: {count} records (lowest {lowest}), session {s:?}"
                ));
            }
            if !idle_queue.contains(&(s.idle_until_ms, client)) {
                problems.push(format!("client {client} missing from the idle queue"));
            }
        }
        if pending != pending_queue {
            problems.push(format!(
                "pending payments {pending:?} but expiry queue {pending_queue:?}"
            ));
        }
        if !records_per_client.is_empty() {
            problems.push(format!("records without a session: {records_per_client:?}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(InvariantViolation(problems.join("; ")))
        }
    }
}

/// The journal is the accounts' history: every row indexed under both its accounts (and
/// only there), numbered below `next_posting`, each account's rows a chain of balances that
/// ends at its balance now (an account with no rows never held money).
fn journal_problems(
    meta: &Meta,
    balances: &std::collections::BTreeMap<AccountId, i64>,
    rows: &std::collections::BTreeMap<u64, crate::state::Posting>,
    account_rows: &[(AccountId, u64, u64)],
    problems: &mut Vec<String>,
) {
    let mut last = std::collections::BTreeMap::<AccountId, i64>::new();
    let mut indexed = std::collections::BTreeMap::<u64, u8>::new();
    // Index entries come in key order: account, then time, then sequence number.
    for &(account, at_ms, seq) in account_rows {
        let Some(row) = rows.get(&seq) else {
            problems.push(format!(
                "journal index ({account}, {at_ms}, {seq}) has no row"
            ));
            continue;
        };
        if row.at_ms != at_ms || (row.source != account && row.target != account) {
            problems.push(format!(
                "journal index ({account}, {at_ms}, {seq}) for {row:?}"
            ));
            continue;
        }
        *indexed.entry(seq).or_default() += 1;
        let after = row.balance_after(account);
        if let Some(before) = last.insert(account, after) {
            if before + row.delta_for(account) != after {
                problems.push(format!(
                    "account {account}: journal row {seq} goes from {before} to {after}"
                ));
            }
        }
    }
    for (seq, row) in rows {
        if *seq >= meta.next_posting
            || *seq < meta.first_posting
            || indexed.get(seq) != Some(&2)
            || row.seq != *seq
        {
            problems.push(format!(
                "journal row {seq} ({row:?}) badly numbered or indexed"
            ));
        }
    }
    for (account, balance) in balances {
        // Once rows were compacted away, an account whose rows all went has no chain left.
        let compacted = meta.first_posting > 1 && !last.contains_key(account);
        if !compacted && last.get(account).copied().unwrap_or(0) != *balance {
            problems.push(format!(
                "account {account} holds {balance}, its journal ends at {:?}",
                last.get(account)
            ));
        }
    }
}

fn dispatch(a: &mut Apply<'_>, command: &Command) -> Handled {
    match command {
        Command::OpenAccount { .. } => accounts::open_account(a, command),
        Command::Deposit {
            account,
            amount_fen,
        } => accounts::deposit(a, *account, *amount_fen),
        Command::Withdraw {
            account,
            amount_fen,
        } => accounts::withdraw(a, *account, *amount_fen),
        Command::Transfer {
            source,
            target,
            amount_fen,
        } => accounts::transfer(a, *source, *target, *amount_fen),
        Command::SetAccountStatus { account, status } => accounts::set_status(a, *account, *status),
        Command::SetCampaignFlags { account, flags } => accounts::set_flags(a, *account, *flags),
        Command::SetVipTier { account, tier } => accounts::set_vip_tier(a, *account, *tier),
        Command::EpayBegin { pan_digest, phone } => epay::begin_enrolment(a, *pan_digest, phone),
        Command::EpayChooseAlias {
            account,
            password_proof,
            alias,
        } => epay::choose_alias(a, *account, *password_proof, alias),
        Command::EpayConfirm { account, challenge } => {
            epay::confirm_enrolment(a, *account, *challenge)
        }
        Command::EpayActivate { account, otp } => epay::activate(a, *account, *otp),
        Command::SetEpayLimits {
            account,
            per_payment_fen,
            per_day_fen,
        } => epay::set_limits(a, *account, *per_payment_fen, *per_day_fen),
        Command::PaymentBegin {
            lookup_digest,
            payee,
            amount_fen,
            order_id,
            challenge,
        } => epay::begin_payment(a, *lookup_digest, *payee, *amount_fen, order_id, *challenge),
        Command::PaymentConfirm { payment, otp } => epay::confirm_payment(a, *payment, *otp),
        Command::RegisterMerchant {
            kind,
            name,
            settlement_account,
            contact_phone,
            terminals,
        } => merchants::register(
            a,
            *kind,
            name,
            *settlement_account,
            contact_phone,
            *terminals,
        ),
        Command::MerchantTransfer {
            merchant,
            target,
            amount_fen,
        } => merchants::transfer_out(a, *merchant, *target, *amount_fen),
        Command::CloseMonth { month } => merchants::close_month(a, *month),
        Command::CreatePool {
            name,
            face_value_fen,
            capacity,
            eligibility,
            valid_from_ms,
            valid_until_ms,
        } => vouchers::create_pool(
            a,
            name,
            *face_value_fen,
            *capacity,
            *eligibility,
            *valid_from_ms,
            *valid_until_ms,
        ),
        Command::ClaimVoucher { pool, account } => vouchers::claim(a, *pool, *account),
        Command::AckSms { challenges } => epay::ack_sms(a, challenges),
        Command::SetWebhook { merchant, url } => events::set_webhook(a, *merchant, url.as_deref()),
        Command::AckEvents {
            merchant,
            delivered,
            abandoned,
        } => events::ack_events(a, *merchant, delivered, abandoned),
        Command::CardPayment {
            merchant,
            terminal,
            pan_digest,
            password_proof,
            amount_fen,
            receipt,
        } => terminals::swipe(
            a,
            terminals::Swipe {
                merchant: *merchant,
                terminal: *terminal,
                pan_digest: *pan_digest,
                password_proof: *password_proof,
                amount_fen: *amount_fen,
                receipt,
            },
        ),
        Command::CancelPayment { payment } => epay::cancel_payment(a, *payment),
        Command::RefundPayment {
            payment,
            amount_fen,
        } => refunds::refund(a, *payment, *amount_fen),
        Command::ExpirePayments { payments } => epay::expire_payments(a, payments),
        Command::Compact => retention::compact(a),
        Command::CreatePromotion {
            name,
            partners,
            valid_from_ms,
            valid_until_ms,
            points_per_yuan,
        } => points::create_promotion(
            a,
            name,
            partners,
            *valid_from_ms,
            *valid_until_ms,
            *points_per_yuan,
        ),
        Command::CreatePrize {
            name,
            price_points,
            stock,
        } => points::create_prize(a, name, *price_points, *stock),
        Command::RedeemPrize { prize, account } => points::redeem(a, *prize, *account),
        Command::CreateCampaign {
            name,
            starts_ms,
            ends_ms,
            rules,
        } => campaigns::create(a, name, *starts_ms, *ends_ms, rules),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MemStore;

    fn key(n: u64) -> Key {
        Key::Payment(PaymentId(n))
    }

    /// A command's range read sees its own writes inside `[from, to)` and nothing at `to`.
    #[test]
    fn a_command_reads_its_own_writes_in_a_half_open_range() {
        let mut store = MemStore::new();
        store.write(vec![(key(1), Some(Value::OrderIndex(PaymentId(1))))]);
        let mut tx = Tx::new(&store);
        for n in [2, 3, 5] {
            tx.put_value(key(n), Some(Value::OrderIndex(PaymentId(n))));
        }
        let keys = |rows: Vec<(Key, Value)>| rows.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(keys(tx.range(key(1), key(5), 10)), [key(1), key(2), key(3)]);
        assert_eq!(keys(tx.range(key(2), key(3), 10)), [key(2)]);
        assert_eq!(keys(tx.range(key(3), key(6), 10)), [key(3), key(5)]);
        tx.delete(key(1));
        assert_eq!(keys(tx.range(key(0), key(3), 10)), [key(2)]);
        assert_eq!(keys(tx.range(key(0), key(9), 2)), [key(2), key(3)]);
    }
}
