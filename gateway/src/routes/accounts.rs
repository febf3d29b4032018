//! Accounts and their statements: the journal rows of a time range, page by page.

use crate::extract::{Caller, PathParams, QueryParams};
use crate::problem::{Problem, Problems};
use crate::App;
use axum::extract::State;
use axum::Json;
use ledger_client::records::StatementRow;
use ledger_core::config::MAX_STATEMENT_ROWS;
use ledger_core::ledger::journal::{Cursor, Order, StatementPage, StatementRequest};
use ledger_core::time::DAY_MS;
use ledger_core::types::AccountId;
use ledger_wire::api::{Query, QueryReply};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

/// A statement's span when `from_ms` is not given.
pub const DEFAULT_STATEMENT_SPAN_MS: u64 = 30 * DAY_MS;
/// Rows per page when `page_size` is not given.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(get_account))
        .routes(routes!(get_statement))
}

/// The serde name of a unit variant (`Active`, `Platinum`, `Pos`).
pub fn variant_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(serde_json::Value::Object(map)) => map.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

/// An account: no hashes, no card number, no password material.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    pub account: u64,
    pub holder_name: String,
    pub phone: String,
    /// The card number's last four digits.
    pub pan_last4: String,
    /// `Active`, `Frozen` or `Closed`.
    pub status: String,
    pub balance_fen: i64,
    /// The merchant this account settles, if it is a settlement account.
    pub merchant: Option<u64>,
    pub etc_bound: bool,
    pub savings_product: bool,
    /// `None`, `Platinum` or `Diamond`.
    pub vip: String,
}

/// One journal row as the account sees it.
#[derive(Serialize, ToSchema)]
pub struct Row {
    pub seq: u64,
    /// The Raft log index of the command that made it.
    pub log_index: u64,
    pub at_ms: u64,
    /// The same time in China Standard Time.
    pub at_cst: String,
    /// `payment`, `swipe`, `voucher`, `refund`, `deposit`, ...
    pub cause: String,
    /// The id the cause carries (`payment 7`).
    #[serde(rename = "ref")]
    pub reference: String,
    pub counterparty: u64,
    /// Positive in, negative out.
    pub amount_fen: i64,
    pub balance_fen: i64,
}

impl From<StatementRow> for Row {
    fn from(r: StatementRow) -> Row {
        Row {
            seq: r.seq,
            log_index: r.index,
            at_ms: r.at_ms,
            at_cst: r.at_cst,
            cause: r.cause.into(),
            reference: r.reference,
            counterparty: r.counterparty.0,
            amount_fen: r.amount_fen,
            balance_fen: r.balance_fen,
        }
    }
}

/// One page of an account's statement.
#[derive(Serialize, ToSchema)]
pub struct Statement {
    pub account: u64,
    pub from_ms: u64,
    pub to_ms: u64,
    /// The balance at `from_ms`.
    pub opening_balance_fen: i64,
    /// The balance at `to_ms`.
    pub closing_balance_fen: i64,
    pub rows: Vec<Row>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
    /// The Raft log index the page was read at.
    pub applied_index: u64,
}

impl Statement {
    pub fn new(page: StatementPage, applied_index: u64) -> Statement {
        let account = page.account;
        Statement {
            account: account.0,
            from_ms: page.from_ms,
            to_ms: page.to_ms,
            opening_balance_fen: page.opening_balance_fen,
            closing_balance_fen: page.closing_balance_fen,
            rows: page
                .rows
                .iter()
                .map(|p| StatementRow::new(account, p).into())
                .collect(),
            next_cursor: page.next.as_ref().map(Cursor::to_text),
            applied_index,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AccountPath {
    pub account: u64,
}

/// Which rows: a time range (ms since the Unix epoch, `to_ms` excluded; at most 400 days),
/// the order, the page size, and the cursor of the page before. A cursor carries its range
/// and order: the next page needs only the cursor.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatementParams {
    /// Default: 30 days before `to_ms`.
    pub from_ms: Option<u64>,
    /// Default: now.
    pub to_ms: Option<u64>,
    /// Newest rows first.
    pub newest_first: Option<bool>,
    /// 1 to 1000 (default 100).
    pub page_size: Option<u32>,
    pub cursor: Option<String>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Read an account (its holder's channel, auditors; a merchant its settlement account).
#[utoipa::path(get, path = "/accounts/{account}", tag = "reader", operation_id = "getAccount",
    params(AccountPath),
    responses((status = 200, body = AccountView), Problems))]
async fn get_account(
    caller: Caller,
    State(app): State<App>,
    PathParams(path): PathParams<AccountPath>,
) -> Result<Json<AccountView>, Problem> {
    match app
        .query(&caller, Query::Account(AccountId(path.account)))
        .await?
    {
        QueryReply::Account(Some(a)) => Ok(Json(AccountView {
            account: a.account.0,
            holder_name: a.holder_name,
            phone: a.phone,
            pan_last4: a.pan_last4,
            status: variant_name(&a.status),
            balance_fen: a.balance_fen,
            merchant: a.merchant.map(|m| m.0),
            etc_bound: a.flags.etc_bound,
            savings_product: a.flags.savings_product,
            vip: variant_name(&a.vip),
        })),
        QueryReply::Account(None) => Err(Problem::not_found("account", path.account)),
        other => Err(Problem::unexpected(other)),
    }
}

/// One page of an account's statement.
#[utoipa::path(get, path = "/accounts/{account}/statement", tag = "reader", operation_id = "getStatement",
    params(AccountPath, StatementParams),
    responses((status = 200, body = Statement), Problems))]
async fn get_statement(
    caller: Caller,
    State(app): State<App>,
    PathParams(path): PathParams<AccountPath>,
    QueryParams(params): QueryParams<StatementParams>,
) -> Result<Json<Statement>, Problem> {
    let cursor = params
        .cursor
        .as_deref()
        .map(Cursor::from_text)
        .transpose()
        .map_err(|e| Problem::bad_request("BadCursor", e.to_string()))?;
    let continued = cursor
        .as_ref()
        .map(Cursor::read)
        .transpose()
        .map_err(|e| Problem::bad_request("BadCursor", e.to_string()))?;
    let to_ms = match (params.to_ms, continued) {
        (Some(t), _) => t,
        (None, Some((_, _, to_ms, _))) => to_ms,
        (None, None) => now_ms() + 1,
    };
    let from_ms = match (params.from_ms, continued) {
        (Some(f), _) => f,
        (None, Some((_, from_ms, _, _))) => from_ms,
        (None, None) => to_ms.saturating_sub(DEFAULT_STATEMENT_SPAN_MS),
    };
    let order = match (params.newest_first, continued) {
        (Some(true), _) => Order::NewestFirst,
        (Some(false), _) => Order::OldestFirst,
        (None, Some((_, _, _, order))) => order,
        (None, None) => Order::OldestFirst,
    };
    let request = StatementRequest {
        account: AccountId(path.account),
        from_ms,
        to_ms,
        order,
        page_size: params
            .page_size
            .unwrap_or(DEFAULT_PAGE_SIZE.min(MAX_STATEMENT_ROWS)),
        cursor,
    };
    match app.query(&caller, Query::Statement(request)).await? {
        QueryReply::Statement {
            applied_index,
            page,
        } => Ok(Json(Statement::new(page, applied_index))),
        other => Err(Problem::unexpected(other)),
    }
}
