//! What the journal tells afterwards: an account's statement, a merchant's reconciliation of
//! a CST day (text, JSON or CSV), and the journal itself for auditors.

use crate::failure::Failure;
use crate::session::Session;
use crate::view::{yuan, View};
use ledger_client::records::{cause_ref, cst_time, parse_cst_date, StatementRow, CSV_HEADER};
use ledger_client::Consistency;
use ledger_core::config::MAX_STATEMENT_ROWS;
use ledger_core::ledger::journal::{
    Cursor, Order, ReadError, Reconciliation, ReconciliationTotals, StatementPage, StatementRequest,
};
use ledger_core::state::Posting;
use ledger_core::time::{cst_day_start_ms, DAY_MS};
use ledger_core::types::{AccountId, MerchantId};
use serde::Serialize;

/// A statement's default span when `--from` is not given.
const DEFAULT_SPAN_MS: u64 = 30 * DAY_MS;

/// Parses a CST date `YYYY-MM-DD` into its day number.
pub fn parse_day(text: &str) -> Result<u64, Failure> {
    parse_cst_date(text).ok_or_else(|| Failure::InvalidArgument {
        message: format!("`{text}` is not a date like 2026-12-02"),
    })
}

/// A time bound: a CST date (its first millisecond, or with `end_of_day` the first of the
/// next day) or milliseconds since the Unix epoch.
fn parse_bound(text: &str, end_of_day: bool) -> Result<u64, Failure> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| Failure::InvalidArgument {
            message: format!("`{text}` is too large for milliseconds"),
        });
    }
    let day = parse_day(text)?;
    Ok(cst_day_start_ms(day + u64::from(end_of_day)))
}

fn row_text(row: &StatementRow) -> String {
    format!(
        "{:>8}  {}  {:<17} {:>12}  {:>12}  {:<6} {}",
        row.seq,
        row.at_cst,
        row.cause,
        yuan(row.amount_fen),
        yuan(row.balance_fen),
        row.counterparty,
        row.reference
    )
}

const ROW_HEADER: &str =
    "     seq  time (CST)               cause                   amount       balance  with   ref";

/// A statement, or several pages of one, as printed.
#[derive(Serialize)]
struct Statement {
    account: AccountId,
    from_ms: u64,
    to_ms: u64,
    opening_balance_fen: i64,
    closing_balance_fen: i64,
    rows: Vec<StatementRow>,
    /// Where the next page starts (`--cursor`); absent on the last page.
    next_cursor: Option<String>,
}

impl Statement {
    fn new(pages: &[StatementPage]) -> Statement {
        let first = &pages[0];
        let account = first.account;
        Statement {
            account,
            from_ms: first.from_ms,
            to_ms: first.to_ms,
            opening_balance_fen: first.opening_balance_fen,
            closing_balance_fen: first.closing_balance_fen,
            rows: pages
                .iter()
                .flat_map(|p| &p.rows)
                .map(|r| StatementRow::new(account, r))
                .collect(),
            next_cursor: pages
                .last()
                .and_then(|p| p.next.as_ref())
                .map(Cursor::to_text),
        }
    }

    fn lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!(
                "account {}: {} to {} CST",
                self.account,
                cst_time(self.from_ms),
                cst_time(self.to_ms)
            ),
            format!("opening balance {} yuan", yuan(self.opening_balance_fen)),
        ];
        if !self.rows.is_empty() {
            lines.push(ROW_HEADER.into());
            lines.extend(self.rows.iter().map(row_text));
        }
        lines.push(format!(
            "closing balance {} yuan",
            yuan(self.closing_balance_fen)
        ));
        if let Some(cursor) = &self.next_cursor {
            lines.push(format!("more rows: --cursor {cursor}"));
        }
        lines
    }
}

impl View for Statement {
    fn text(&self) -> String {
        self.lines().join("\n")
    }
}

/// What `ledgerctl statement` is asked.
#[derive(clap::Args)]
pub struct StatementArgs {
    /// The account.
    #[arg(value_name = "ID")]
    pub account: u64,
    /// Start: a CST date YYYY-MM-DD or epoch ms (default: 30 days before the end).
    #[arg(long)]
    pub from: Option<String>,
    /// End: a CST date, that day included, or epoch ms, excluded (default: now).
    #[arg(long)]
    pub to: Option<String>,
    /// Newest rows first.
    #[arg(long)]
    pub newest_first: bool,
    /// Rows per page (1 to 1000).
    #[arg(long, default_value_t = 100)]
    pub page_size: u32,
    /// Continue from a previous page (the cursor it printed): its range and order are
    /// those of the first page unless given again.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Follow the cursors and print every page.
    #[arg(long)]
    pub all: bool,
    /// Read from any node, possibly behind the leader.
    #[arg(long)]
    pub stale: bool,
}

fn consistency(stale: bool) -> Consistency {
    if stale {
        Consistency::Stale
    } else {
        Consistency::Linearizable
    }
}

pub async fn statement(session: &Session, args: StatementArgs) -> Result<(), Failure> {
    let invalid = |e: ReadError| Failure::InvalidArgument {
        message: e.to_string(),
    };
    let cursor = args
        .cursor
        .as_deref()
        .map(Cursor::from_text)
        .transpose()
        .map_err(invalid)?;
    // A cursor carries its read's range and order: a later page needs only the cursor.
    let continued = cursor
        .as_ref()
        .map(Cursor::read)
        .transpose()
        .map_err(invalid)?;
    let to_ms = match (&args.to, continued) {
        (Some(text), _) => parse_bound(text, true)?,
        (None, Some((_, _, to_ms, _))) => to_ms,
        (None, None) => now_ms() + 1,
    };
    let from_ms = match (&args.from, continued) {
        (Some(text), _) => parse_bound(text, false)?,
        (None, Some((_, from_ms, _, _))) => from_ms,
        (None, None) => to_ms.saturating_sub(DEFAULT_SPAN_MS),
    };
    let order = match continued {
        Some((_, _, _, order)) => order,
        None if args.newest_first => Order::NewestFirst,
        None => Order::OldestFirst,
    };
    let mut request = StatementRequest {
        account: AccountId(args.account),
        from_ms,
        to_ms,
        order,
        page_size: args.page_size,
        cursor,
    };
    let mut pages = Vec::new();
    loop {
        let page = session
            .read(|| {
                session
                    .client()
                    .statement(request.clone(), consistency(args.stale))
            })
            .await?;
        request.cursor = page.next.clone();
        pages.push(page);
        if !args.all || request.cursor.is_none() {
            break;
        }
    }
    session.show(&Statement::new(&pages));
    Ok(())
}

/// A merchant's day as printed: totals, then the settlement account's rows.
#[derive(Serialize)]
struct Reconciled {
    merchant: MerchantId,
    settlement_account: AccountId,
    day: String,
    totals: ReconciliationTotals,
    statement: Statement,
    /// Closing less opening balance equals the net of the totals.
    balanced: bool,
    #[serde(skip)]
    csv: bool,
}

impl View for Reconciled {
    fn text(&self) -> String {
        if self.csv {
            let mut lines = vec![CSV_HEADER.to_owned()];
            lines.extend(self.statement.rows.iter().map(StatementRow::csv));
            return lines.join("\n");
        }
        let t = &self.totals;
        let mut lines = vec![
            format!(
                "merchant {} (account {}), {} CST",
                self.merchant, self.settlement_account, self.day
            ),
            format!(
                "payments     {:>6}  {:>12} yuan",
                t.payments,
                yuan(t.payments_fen as i64)
            ),
            format!(
                "swipes       {:>6}  {:>12} yuan",
                t.swipes,
                yuan(t.swipes_fen as i64)
            ),
            format!(
                "vouchers     {:>6}  {:>12} yuan",
                t.vouchers,
                yuan(t.vouchers_fen as i64)
            ),
            format!(
                "refunds      {:>6}  {:>12} yuan to payers, {} yuan to promotions",
                t.refunds,
                yuan(t.refunds_to_payers_fen as i64),
                yuan(t.refunds_to_promotions_fen as i64)
            ),
            format!(
                "transfers    {:>6}  {:>12} yuan, fees {} yuan",
                t.transfers_out,
                yuan(t.transfers_out_fen as i64),
                yuan(t.fees_fen as i64)
            ),
            format!(
                "other                {:>12} yuan in, {} yuan out",
                yuan(t.other_in_fen as i64),
                yuan(t.other_out_fen as i64)
            ),
            format!(
                "net                  {:>12} yuan ({})",
                yuan(t.net_fen),
                if self.balanced {
                    "equals the settlement account's movement"
                } else {
                    "DOES NOT equal the settlement account's movement"
                }
            ),
        ];
        lines.extend(self.statement.lines());
        lines.join("\n")
    }
}

/// Reads every page of a merchant's day.
pub async fn reconcile(
    session: &Session,
    merchant: u64,
    day: &str,
    csv: bool,
    stale: bool,
) -> Result<(), Failure> {
    let day_number = parse_day(day)?;
    let mut cursor = None;
    let mut days: Vec<Reconciliation> = Vec::new();
    loop {
        let page = session
            .read(|| {
                session.client().reconcile(
                    MerchantId(merchant),
                    day_number,
                    MAX_STATEMENT_ROWS,
                    cursor.clone(),
                    consistency(stale),
                )
            })
            .await?;
        cursor = page.page.next.clone();
        days.push(page);
        if cursor.is_none() {
            break;
        }
    }
    let first = &days[0];
    let pages: Vec<StatementPage> = days.iter().map(|d| d.page.clone()).collect();
    let statement = Statement::new(&pages);
    let balanced =
        statement.closing_balance_fen - statement.opening_balance_fen == first.totals.net_fen;
    let reconciled = Reconciled {
        merchant: first.merchant,
        settlement_account: first.settlement_account,
        day: day.to_owned(),
        totals: first.totals,
        statement,
        balanced,
        csv,
    };
    session.show(&reconciled);
    if balanced {
        Ok(())
    } else {
        Err(Failure::UnexpectedReply {
            reply: "the day's net does not equal the settlement account's movement".into(),
        })
    }
}

/// Journal rows as printed for an auditor.
#[derive(Serialize)]
struct JournalRows {
    rows: Vec<Posting>,
}

impl View for JournalRows {
    fn text(&self) -> String {
        if self.rows.is_empty() {
            return "no rows".into();
        }
        self.rows
            .iter()
            .map(|p| {
                format!(
                    "{:>8}  {}  {:<17} {:>6} -> {:<6} {:>12}  {}",
                    p.seq,
                    cst_time(p.at_ms),
                    p.cause.name(),
                    p.source,
                    p.target,
                    yuan(p.amount_fen as i64),
                    cause_ref(p.cause)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

pub async fn journal(
    session: &Session,
    after: u64,
    page_size: u32,
    stale: bool,
) -> Result<(), Failure> {
    let rows = session
        .read(|| {
            session
                .client()
                .journal(after, page_size, consistency(stale))
        })
        .await?;
    session.show(&JournalRows { rows });
    Ok(())
}

/// A webhook as printed.
#[derive(Serialize)]
struct HookView {
    merchant: u64,
    webhook: Option<ledger_core::state::Webhook>,
    /// Only right after `set`: the signing secret, to configure on the merchant's server.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl View for HookView {
    fn text(&self) -> String {
        let Some(h) = &self.webhook else {
            return format!("merchant {} has no webhook", self.merchant);
        };
        let mut lines = vec![
            format!("merchant {} webhook {}", self.merchant, h.url),
            format!(
                "secret version {}; {} delivered, {} waiting, {} given up{}",
                h.secret_version,
                h.delivered,
                h.undelivered,
                h.abandoned,
                if h.failing {
                    "; FAILING: pushing paused until the webhook is set again"
                } else {
                    ""
                }
            ),
        ];
        if let Some(secret) = &self.secret {
            lines.push(format!(
                "signing secret (X-Signature = HMAC-SHA256 of the body): {secret}"
            ));
        }
        lines.join("\n")
    }
}

pub async fn webhook(session: &Session, cmd: crate::merchant::WebhookCmd) -> Result<(), Failure> {
    use crate::merchant::WebhookCmd;
    let merchant = match &cmd {
        WebhookCmd::Set { merchant, .. }
        | WebhookCmd::Remove { merchant }
        | WebhookCmd::Show { merchant } => *merchant,
    };
    let m = MerchantId(merchant);
    let mut secret = None;
    match cmd {
        WebhookCmd::Set { url, .. } => {
            let key = session.write_key();
            session
                .write_with_key(
                    key,
                    ledger_client::Operation::Command(ledger_core::command::Command::SetWebhook {
                        merchant: m,
                        url: Some(url),
                    }),
                )
                .await?;
            let read = session.read(|| session.client().webhook_secret(m)).await?;
            secret = read.map(|(_, s)| s.expose().to_owned());
        }
        WebhookCmd::Remove { .. } => {
            let key = session.write_key();
            session
                .write_with_key(
                    key,
                    ledger_client::Operation::Command(ledger_core::command::Command::SetWebhook {
                        merchant: m,
                        url: None,
                    }),
                )
                .await?;
        }
        WebhookCmd::Show { .. } => {}
    }
    let webhook = session.read(|| session.client().webhook(m)).await?;
    session.show(&HookView {
        merchant,
        webhook,
        secret,
    });
    Ok(())
}

/// Events as printed.
#[derive(Serialize)]
struct EventsView {
    events: Vec<ledger_core::state::Event>,
}

impl View for EventsView {
    fn text(&self) -> String {
        if self.events.is_empty() {
            return "no events".into();
        }
        self.events
            .iter()
            .map(|e| {
                format!(
                    "{:>8}  {}  {:<20} payment {:<8} order {}",
                    e.id,
                    cst_time(e.at_ms),
                    e.kind.name(),
                    e.payment,
                    e.order_id
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

pub async fn events(
    session: &Session,
    merchant: u64,
    after: u64,
    page_size: u32,
) -> Result<(), Failure> {
    let events = session
        .read(|| {
            session.client().events(
                MerchantId(merchant),
                after,
                page_size,
                Consistency::Linearizable,
            )
        })
        .await?;
    session.show(&EventsView { events });
    Ok(())
}

/// The wall clock, for a statement's default range (the ledger never reads it).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_bounds_parse_in_china_standard_time() {
        let day = parse_day("2026-12-02").unwrap();
        assert_eq!(cst_day_start_ms(day), 1_796_140_800_000);
        assert_eq!(parse_bound("2026-12-02", false).unwrap(), 1_796_140_800_000);
        assert_eq!(
            parse_bound("2026-12-02", true).unwrap(),
            1_796_140_800_000 + DAY_MS
        );
        assert_eq!(parse_bound("1234", false).unwrap(), 1234);
        for bad in ["2026-13-01", "2026-02-30", "yesterday", "2026-12", ""] {
            assert!(parse_bound(bad, false).is_err(), "{bad}");
        }
        assert_eq!(cst_time(1_796_140_800_000), "2026-12-02 00:00:00.000");
        assert_eq!(cst_time(1_796_140_800_000 - 1), "2026-12-01 23:59:59.999");
    }
}
