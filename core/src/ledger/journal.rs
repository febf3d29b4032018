//! The journal (DOMAIN.md section 11): every posting recorded once, in the command that made
//! it, and the reads built on it: an account's statement over a time range, paged by an
//! opaque cursor; a merchant's reconciliation of one CST day; the whole journal in order for
//! auditors.
//!
//! A row lives under `Key::Posting(seq)`; each of its two accounts has an index entry
//! `Key::AccountPosting(account, at_ms, seq)`, so a statement is one range of index entries.
//! Ledger time never runs backwards and sequence numbers only grow, so an account's index
//! entries are in the order its rows were made.

use super::Apply;
use crate::config::{MAX_STATEMENT_RANGE_MS, MAX_STATEMENT_ROWS};
use crate::state::{Account, Key, Merchant, Posting, Store, Value};
use crate::time::{cst_day_start_ms, DAY_MS};
use crate::types::{AccountId, Cause, MerchantId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Records one posting: the row and its two index entries.
pub(super) fn record(
    a: &mut Apply<'_>,
    source: AccountId,
    target: AccountId,
    amount_fen: u64,
    cause: Cause,
    (source_balance_fen, target_balance_fen): (i64, i64),
) {
    let seq = a.meta.next_posting;
    a.meta.next_posting += 1;
    for account in [source, target] {
        a.tx.put_value(
            Key::AccountPosting(account, a.now_ms, seq),
            Some(Value::AccountPosting),
        );
    }
    a.tx.put(
        Key::Posting(seq),
        Posting {
            seq,
            index: a.index,
            at_ms: a.now_ms,
            request: a.request,
            source,
            target,
            amount_fen,
            cause,
            source_balance_fen,
            target_balance_fen,
        },
    );
}

/// Which rows of a range come first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Order {
    OldestFirst,
    NewestFirst,
}

/// Where the next page of a read starts. Opaque to clients: it binds the account, the range
/// and the order it was issued for, and carries a checksum, so a cursor from another read or
/// a damaged one is refused rather than misread. (It grants nothing: who may read an account
/// is decided on the account the request names, never on the cursor.)
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor(pub Vec<u8>);

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cursor({})", self.to_text())
    }
}

const CURSOR_VERSION: u8 = 1;
const CURSOR_BODY: usize = 1 + 8 * 5 + 1;
const CURSOR_CHECK: usize = 8;

/// What a cursor says: the read it belongs to and the last row it delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Position {
    account: AccountId,
    from_ms: u64,
    to_ms: u64,
    order: Order,
    at_ms: u64,
    seq: u64,
}

fn cursor_check(body: &[u8]) -> [u8; CURSOR_CHECK] {
    let mut h = Sha256::new();
    h.update(b"ledger/statement-cursor/v1");
    h.update(body);
    h.finalize()[..CURSOR_CHECK]
        .try_into()
        .expect("digest is longer")
}

impl Cursor {
    fn new(p: Position) -> Cursor {
        let mut bytes = Vec::with_capacity(CURSOR_BODY + CURSOR_CHECK);
        bytes.push(CURSOR_VERSION);
        for field in [p.account.0, p.from_ms, p.to_ms, p.at_ms, p.seq] {
            bytes.extend_from_slice(&field.to_be_bytes());
        }
        bytes.push(match p.order {
            Order::OldestFirst => 0,
            Order::NewestFirst => 1,
        });
        let check = cursor_check(&bytes);
        bytes.extend_from_slice(&check);
        Cursor(bytes)
    }

    fn position(&self) -> Result<Position, ReadError> {
        let bytes = &self.0;
        if bytes.len() != CURSOR_BODY + CURSOR_CHECK || bytes[0] != CURSOR_VERSION {
            return Err(ReadError::BadCursor);
        }
        let (body, check) = bytes.split_at(CURSOR_BODY);
        if cursor_check(body) != check {
            return Err(ReadError::BadCursor);
        }
        let field =
            |i: usize| u64::from_be_bytes(body[1 + 8 * i..9 + 8 * i].try_into().expect("8 bytes"));
        let order = match body[CURSOR_BODY - 1] {
            0 => Order::OldestFirst,
            1 => Order::NewestFirst,
            _ => return Err(ReadError::BadCursor),
        };
        Ok(Position {
            account: AccountId(field(0)),
            from_ms: field(1),
            to_ms: field(2),
            at_ms: field(3),
            seq: field(4),
            order,
        })
    }

    /// The read this cursor continues: account, range and order (a command line that is
    /// given only the cursor reads on with these).
    pub fn read(&self) -> Result<(AccountId, u64, u64, Order), ReadError> {
        let p = self.position()?;
        Ok((p.account, p.from_ms, p.to_ms, p.order))
    }

    /// The cursor as text (lower-case hex), for command lines and URLs.
    pub fn to_text(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses [`Cursor::to_text`]'s form.
    pub fn from_text(text: &str) -> Result<Cursor, ReadError> {
        if !text.len().is_multiple_of(2) || text.len() > 2 * (CURSOR_BODY + CURSOR_CHECK) {
            return Err(ReadError::BadCursor);
        }
        (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or(ReadError::BadCursor)
            })
            .collect::<Result<Vec<u8>, _>>()
            .map(Cursor)
    }
}

/// Why a read of the journal was refused. Reads change nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ReadError {
    #[error("unknown account {account}")]
    UnknownAccount { account: AccountId },
    #[error("unknown merchant {merchant}")]
    UnknownMerchant { merchant: MerchantId },
    #[error("a page holds 1 to {max} rows, not {requested}")]
    PageSize { requested: u32, max: u32 },
    #[error("the time range ends ({to_ms}) before it starts ({from_ms})")]
    ReversedRange { from_ms: u64, to_ms: u64 },
    #[error("a time range spans at most {max_days} days")]
    RangeTooLong { max_days: u64 },
    #[error("the cursor belongs to another read (another account, range or order)")]
    CursorForAnotherRead,
    #[error("the cursor is damaged or was not issued by this ledger")]
    BadCursor,
}

/// What a statement or reconciliation read asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementRequest {
    pub account: AccountId,
    /// First millisecond of the range (inclusive).
    pub from_ms: u64,
    /// End of the range (exclusive).
    pub to_ms: u64,
    pub order: Order,
    /// Rows per page: 1 to [`MAX_STATEMENT_ROWS`].
    pub page_size: u32,
    /// The previous page's `next`; `None` for the first page.
    pub cursor: Option<Cursor>,
}

/// One page of an account's statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementPage {
    pub account: AccountId,
    pub from_ms: u64,
    pub to_ms: u64,
    /// The balance when the range starts and when it ends (the same on every page).
    pub opening_balance_fen: i64,
    pub closing_balance_fen: i64,
    pub rows: Vec<Posting>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// One account's rows in `[from_ms, to_ms)`, a page at a time.
pub(super) fn statement<S: Store>(
    store: &S,
    request: &StatementRequest,
) -> Result<StatementPage, ReadError> {
    let StatementRequest {
        account,
        from_ms,
        to_ms,
        order,
        page_size,
        ref cursor,
    } = *request;
    if page_size == 0 || page_size > MAX_STATEMENT_ROWS {
        return Err(ReadError::PageSize {
            requested: page_size,
            max: MAX_STATEMENT_ROWS,
        });
    }
    if to_ms < from_ms {
        return Err(ReadError::ReversedRange { from_ms, to_ms });
    }
    if to_ms - from_ms > MAX_STATEMENT_RANGE_MS {
        return Err(ReadError::RangeTooLong {
            max_days: MAX_STATEMENT_RANGE_MS / DAY_MS,
        });
    }
    let balance_fen = match store.get(&Key::Account(account)) {
        Some(Value::Account(Account { balance_fen, .. })) => balance_fen,
        _ => return Err(ReadError::UnknownAccount { account }),
    };
    let mut start = Key::AccountPosting(account, from_ms, 0);
    let mut end = Key::AccountPosting(account, to_ms, 0);
    if let Some(cursor) = cursor {
        let p = cursor.position()?;
        if (p.account, p.from_ms, p.to_ms, p.order) != (account, from_ms, to_ms, order) {
            return Err(ReadError::CursorForAnotherRead);
        }
        match order {
            Order::OldestFirst => start = Key::AccountPosting(account, p.at_ms, p.seq + 1),
            Order::NewestFirst => end = Key::AccountPosting(account, p.at_ms, p.seq),
        }
    }
    let limit = page_size as usize + 1;
    let mut keys = match order {
        Order::OldestFirst => store.range(&start, &end, limit),
        Order::NewestFirst => store.range_rev(&start, &end, limit),
    };
    let more = keys.len() > page_size as usize;
    keys.truncate(page_size as usize);
    let rows: Vec<Posting> = keys.iter().map(|(k, _)| posting(store, k)).collect();
    let next = match rows.last() {
        Some(last) if more => Some(Cursor::new(Position {
            account,
            from_ms,
            to_ms,
            order,
            at_ms: last.at_ms,
            seq: last.seq,
        })),
        _ => None,
    };
    Ok(StatementPage {
        account,
        from_ms,
        to_ms,
        opening_balance_fen: balance_at(store, account, from_ms, balance_fen),
        closing_balance_fen: balance_at(store, account, to_ms, balance_fen),
        rows,
        next,
    })
}

/// The row an index entry points at.
fn posting<S: Store>(store: &S, index_key: &Key) -> Posting {
    let Key::AccountPosting(_, _, seq) = index_key else {
        panic!("corrupt state: {index_key:?} in an account's journal range");
    };
    match store.get(&Key::Posting(*seq)) {
        Some(Value::Posting(p)) => *p,
        other => panic!("corrupt state: journal row {seq} is {other:?}"),
    }
}

/// `account`'s balance at the start of millisecond `at_ms`: the balance before its first
/// row at or after `at_ms`, or its balance now if it has none.
fn balance_at<S: Store>(store: &S, account: AccountId, at_ms: u64, now_fen: i64) -> i64 {
    let first = store.range(
        &Key::AccountPosting(account, at_ms, 0),
        &Key::AccountPosting(account, u64::MAX, u64::MAX),
        1,
    );
    match first.first() {
        Some((key, _)) => {
            let row = posting(store, key);
            row.balance_after(account) - row.delta_for(account)
        }
        None => now_fen,
    }
}

/// What a merchant's settlement account saw in one CST day, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconciliationTotals {
    /// e-Pay payments settled into the account: count and what the payers were debited.
    pub payments: u64,
    pub payments_fen: u64,
    /// Card-present payments: count and what the cards were debited.
    pub swipes: u64,
    pub swipes_fen: u64,
    /// Vouchers that paid part of those bills: count and face value (from `promotions`).
    pub vouchers: u64,
    pub vouchers_fen: u64,
    /// Refunds paid out of the account: count of refunds, and the money back to payers and
    /// back to `promotions`.
    pub refunds: u64,
    pub refunds_to_payers_fen: u64,
    pub refunds_to_promotions_fen: u64,
    /// Transfers out of the account and their fees.
    pub transfers_out: u64,
    pub transfers_out_fen: u64,
    pub fees_fen: u64,
    /// Anything else (a book transfer in or out, a deposit): money in and money out.
    pub other_in_fen: u64,
    pub other_out_fen: u64,
    /// Everything in less everything out: equals closing less opening balance.
    pub net_fen: i64,
}

impl ReconciliationTotals {
    fn add(&mut self, account: AccountId, row: &Posting, previous: Option<&Posting>) {
        let amount = row.amount_fen;
        let incoming = row.target == account;
        match row.cause {
            Cause::Payment(_) if incoming => {
                self.payments += 1;
                self.payments_fen += amount;
            }
            Cause::Swipe(_) if incoming => {
                self.swipes += 1;
                self.swipes_fen += amount;
            }
            Cause::Voucher { .. } if incoming => {
                self.vouchers += 1;
                self.vouchers_fen += amount;
            }
            Cause::Refund(p) | Cause::RefundVoucher(p) if !incoming => {
                // A refund's two rows come from one command, one after the other.
                let same_refund = previous.is_some_and(|q| {
                    q.index == row.index
                        && q.request == row.request
                        && matches!(q.cause, Cause::Refund(r) if r == p)
                });
                if !same_refund {
                    self.refunds += 1;
                }
                if matches!(row.cause, Cause::Refund(_)) {
                    self.refunds_to_payers_fen += amount;
                } else {
                    self.refunds_to_promotions_fen += amount;
                }
            }
            Cause::MerchantTransfer(_) if !incoming => {
                self.transfers_out += 1;
                self.transfers_out_fen += amount;
            }
            Cause::Fee(_) if !incoming => self.fees_fen += amount,
            _ if incoming => self.other_in_fen += amount,
            _ => self.other_out_fen += amount,
        }
        self.net_fen += row.delta_for(account);
    }
}

/// One page of a merchant's reconciliation of a CST day: the day's totals (over the whole
/// day, the same on every page), and a page of the settlement account's rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciliation {
    pub merchant: MerchantId,
    pub settlement_account: AccountId,
    /// The CST day (days since 1970-01-01 CST) and its bounds in epoch ms.
    pub day: u64,
    pub from_ms: u64,
    pub to_ms: u64,
    pub totals: ReconciliationTotals,
    /// The statement page of the day: opening and closing balance, rows, next cursor.
    pub page: StatementPage,
}

/// A merchant's CST day: every row of its settlement account that day, and their totals.
pub(super) fn reconcile<S: Store>(
    store: &S,
    merchant: MerchantId,
    day: u64,
    page_size: u32,
    cursor: Option<Cursor>,
) -> Result<Reconciliation, ReadError> {
    let account = match store.get(&Key::Merchant(merchant)) {
        Some(Value::Merchant(m)) => {
            let m: Merchant = *m;
            m.settlement_account
        }
        _ => return Err(ReadError::UnknownMerchant { merchant }),
    };
    let from_ms = cst_day_start_ms(day);
    let to_ms = cst_day_start_ms(day + 1);
    let page = statement(
        store,
        &StatementRequest {
            account,
            from_ms,
            to_ms,
            order: Order::OldestFirst,
            page_size,
            cursor,
        },
    )?;
    let mut totals = ReconciliationTotals::default();
    let mut start = Key::AccountPosting(account, from_ms, 0);
    let end = Key::AccountPosting(account, to_ms, 0);
    let mut previous: Option<Posting> = None;
    loop {
        let keys = store.range(&start, &end, MAX_STATEMENT_ROWS as usize);
        for (key, _) in &keys {
            let row = posting(store, key);
            totals.add(account, &row, previous.as_ref());
            previous = Some(row);
        }
        match (keys.len() == MAX_STATEMENT_ROWS as usize, &previous) {
            (true, Some(last)) => start = Key::AccountPosting(account, last.at_ms, last.seq + 1),
            _ => break,
        }
    }
    Ok(Reconciliation {
        merchant,
        settlement_account: account,
        day,
        from_ms,
        to_ms,
        totals,
        page,
    })
}

/// Rows of the whole journal after `after_seq`, oldest first: the auditor's read.
pub(super) fn rows_after<S: Store>(
    store: &S,
    after_seq: u64,
    page_size: u32,
) -> Result<Vec<Posting>, ReadError> {
    if page_size == 0 || page_size > MAX_STATEMENT_ROWS {
        return Err(ReadError::PageSize {
            requested: page_size,
            max: MAX_STATEMENT_ROWS,
        });
    }
    Ok(store
        .range(
            &Key::Posting(after_seq.saturating_add(1)),
            &Key::AccountPosting(AccountId(0), 0, 0),
            page_size as usize,
        )
        .into_iter()
        .map(|(key, value)| match value {
            Value::Posting(p) => *p,
            other => panic!("corrupt state: {other:?} at {key:?}"),
        })
        .collect())
}
