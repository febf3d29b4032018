//! A merchant's records: the merchant, its reconciliation of a CST day (JSON or the CSV file
//! `ledgerctl reconcile --csv` writes), its payment events, and its webhook.

use crate::extract::{Caller, IdempotencyKey, JsonBody, PathParams, QueryParams};
use crate::problem::{Problem, Problems};
use crate::routes::accounts::{variant_name, Statement, DEFAULT_PAGE_SIZE};
use crate::App;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledger_client::records::{cst_date_text, parse_cst_date, StatementRow, CSV_HEADER};
use ledger_core::command::Command;
use ledger_core::config::{MAX_EVENT_BATCH, MAX_STATEMENT_ROWS};
use ledger_core::ledger::journal::{Cursor, ReconciliationTotals};
use ledger_core::state::{Event, Webhook};
use ledger_core::types::MerchantId;
use ledger_core::Reply;
use ledger_wire::api::{Operation, Query, QueryReply};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

/// Most rows one CSV download holds (pages of `MAX_STATEMENT_ROWS` are read until then).
pub const MAX_CSV_ROWS: usize = 100_000;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(get_merchant))
        .routes(routes!(get_reconciliation))
        .routes(routes!(get_reconciliation_csv))
        .routes(routes!(get_events))
        .routes(routes!(get_webhook, set_webhook, delete_webhook))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MerchantPath {
    pub merchant: u64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DayPath {
    pub merchant: u64,
    /// A CST date, `YYYY-MM-DD`.
    #[param(example = "2026-12-03")]
    pub day: String,
}

/// A merchant as the ledger holds it.
#[derive(Serialize, ToSchema)]
pub struct MerchantView {
    pub merchant: u64,
    /// `Pos`, `Shangyitong` or `Online`.
    pub kind: String,
    pub name: String,
    pub settlement_account: u64,
    pub contact_phone: String,
    pub terminals: u32,
    pub registered_ms: u64,
    /// The current month, `YYYY-MM`.
    pub month: String,
    pub month_tx_count: u64,
    /// `List`, `TwentyPercent` or `Waived`.
    pub fee_tier: String,
}

/// A day's totals over the settlement account's rows, in fen.
#[derive(Serialize, ToSchema)]
pub struct Totals {
    pub payments: u64,
    pub payments_fen: u64,
    pub swipes: u64,
    pub swipes_fen: u64,
    pub vouchers: u64,
    pub vouchers_fen: u64,
    pub refunds: u64,
    pub refunds_to_payers_fen: u64,
    pub refunds_to_promotions_fen: u64,
    pub transfers_out: u64,
    pub transfers_out_fen: u64,
    pub fees_fen: u64,
    pub other_in_fen: u64,
    pub other_out_fen: u64,
    /// Equals the closing less the opening balance.
    pub net_fen: i64,
}

impl From<ReconciliationTotals> for Totals {
    fn from(t: ReconciliationTotals) -> Totals {
        Totals {
            payments: t.payments,
            payments_fen: t.payments_fen,
            swipes: t.swipes,
            swipes_fen: t.swipes_fen,
            vouchers: t.vouchers,
            vouchers_fen: t.vouchers_fen,
            refunds: t.refunds,
            refunds_to_payers_fen: t.refunds_to_payers_fen,
            refunds_to_promotions_fen: t.refunds_to_promotions_fen,
            transfers_out: t.transfers_out,
            transfers_out_fen: t.transfers_out_fen,
            fees_fen: t.fees_fen,
            other_in_fen: t.other_in_fen,
            other_out_fen: t.other_out_fen,
            net_fen: t.net_fen,
        }
    }
}

/// A merchant's CST day: the totals, and one page of its settlement account's rows.
#[derive(Serialize, ToSchema)]
pub struct ReconciliationView {
    pub merchant: u64,
    pub settlement_account: u64,
    /// `YYYY-MM-DD` (CST).
    pub day: String,
    pub totals: Totals,
    pub statement: Statement,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1 to 1000 (default 100).
    pub page_size: Option<u32>,
    /// The `next_cursor` of the page before.
    pub cursor: Option<String>,
}

/// One payment event, in the shape of a webhook delivery's body (without `sent_ms`).
#[derive(Serialize, ToSchema)]
pub struct EventView {
    pub id: u64,
    /// `payment.settled`, `payment.refunded`, `payment.cancelled`, ...
    #[serde(rename = "type")]
    pub kind_name: String,
    pub merchant: u64,
    pub payment: u64,
    pub order_id: String,
    pub at_ms: u64,
    /// The event's fields, as in the webhook body: `{"Settled": {...}}`, `"Cancelled"`.
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> EventView {
        EventView {
            id: e.id,
            kind_name: e.kind.name().into(),
            merchant: e.merchant.0,
            payment: e.payment.0,
            order_id: e.order_id.clone(),
            at_ms: e.at_ms,
            event: serde_json::to_value(e.kind).unwrap_or_default(),
        }
    }
}

/// A page of events.
#[derive(Serialize, ToSchema)]
pub struct Events {
    pub events: Vec<EventView>,
    /// Pass as `after_id` for the next page.
    pub next_after_id: u64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Events after this id (default 0: from the oldest kept).
    pub after_id: Option<u64>,
    /// 1 to 1000 (default 100).
    pub page_size: Option<u32>,
}

/// Where the merchant's payment events are POSTed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetWebhook {
    /// `https://...` (at most 512 bytes).
    #[schema(example = "https://shop.example.com/ledger-events")]
    pub url: String,
}

/// A merchant's webhook.
#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    pub url: String,
    /// Which signing secret signs the deliveries (a new one each time the URL is set).
    pub secret_version: u32,
    pub registered_ms: u64,
    pub undelivered: u64,
    pub delivered: u64,
    pub abandoned: u64,
    /// Whether the last deliveries failed.
    pub failing: bool,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> WebhookView {
        WebhookView {
            url: w.url,
            secret_version: w.secret_version,
            registered_ms: w.registered_ms,
            undelivered: w.undelivered,
            delivered: w.delivered,
            abandoned: w.abandoned,
            failing: w.failing,
        }
    }
}

/// A webhook just set, with the secret its deliveries are signed with (shown here, and on
/// each set; keep it: `X-Signature` is HMAC-SHA256 of the body under it).
#[derive(Serialize, ToSchema)]
pub struct WebhookSet {
    pub url: String,
    pub secret_version: u32,
    pub secret: String,
}

/// Read a merchant (itself, auditors).
#[utoipa::path(get, path = "/merchants/{merchant}", tag = "reader", operation_id = "getMerchant",
    params(MerchantPath),
    responses((status = 200, body = MerchantView), Problems))]
async fn get_merchant(
    caller: Caller,
    State(app): State<App>,
    PathParams(path): PathParams<MerchantPath>,
) -> Result<Json<MerchantView>, Problem> {
    match app
        .query(&caller, Query::Merchant(MerchantId(path.merchant)))
        .await?
    {
        QueryReply::Merchant(Some(m)) => Ok(Json(MerchantView {
            merchant: path.merchant,
            kind: variant_name(&m.kind),
            name: m.name,
            settlement_account: m.settlement_account.0,
            contact_phone: m.contact_phone,
            terminals: m.terminals,
            registered_ms: m.registered_ms,
            month: m.month.to_string(),
            month_tx_count: m.month_tx_count,
            fee_tier: variant_name(&m.fee_tier),
        })),
        QueryReply::Merchant(None) => Err(Problem::not_found("merchant", path.merchant)),
        other => Err(Problem::unexpected(other)),
    }
}

fn parse_day(text: &str) -> Result<u64, Problem> {
    parse_cst_date(text)
        .ok_or_else(|| Problem::bad_request("InvalidDate", "the day is a CST date like 2026-12-03"))
}

fn parse_cursor(text: Option<&str>) -> Result<Option<Cursor>, Problem> {
    text.map(Cursor::from_text)
        .transpose()
        .map_err(|e| Problem::bad_request("BadCursor", e.to_string()))
}

async fn reconciliation_page(
    app: &App,
    caller: &Caller,
    merchant: u64,
    day: u64,
    page_size: u32,
    cursor: Option<Cursor>,
) -> Result<ReconciliationView, Problem> {
    let query = Query::Reconciliation {
        merchant: MerchantId(merchant),
        day,
        page_size,
        cursor,
    };
    match app.query(caller, query).await? {
        QueryReply::Reconciliation {
            applied_index,
            reconciliation: r,
        } => Ok(ReconciliationView {
            merchant: r.merchant.0,
            settlement_account: r.settlement_account.0,
            day: cst_date_text(r.day),
            totals: r.totals.into(),
            statement: Statement::new(r.page, applied_index),
        }),
        other => Err(Problem::unexpected(other)),
    }
}

/// A merchant's reconciliation of a CST day: totals and one page of rows (itself, auditors).
#[utoipa::path(get, path = "/merchants/{merchant}/reconciliation/{day}", tag = "reader", operation_id = "getReconciliation",
    params(DayPath, PageParams),
    responses((status = 200, body = ReconciliationView), Problems))]
async fn get_reconciliation(
    caller: Caller,
    State(app): State<App>,
    PathParams(path): PathParams<DayPath>,
    QueryParams(params): QueryParams<PageParams>,
) -> Result<Json<ReconciliationView>, Problem> {
    let day = parse_day(&path.day)?;
    let cursor = parse_cursor(params.cursor.as_deref())?;
    let page_size = params.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    reconciliation_page(&app, &caller, path.merchant, day, page_size, cursor)
        .await
        .map(Json)
}

/// The same day as a CSV file, every row (amounts in yuan, the columns of
/// `ledgerctl reconcile --csv`).
#[utoipa::path(get, path = "/merchants/{merchant}/reconciliation/{day}/csv", tag = "reader", operation_id = "getReconciliationCsv",
    params(DayPath),
    responses((status = 200, content_type = "text/csv", body = String), Problems))]
async fn get_reconciliation_csv(
    caller: Caller,
    State(app): State<App>,
    PathParams(path): PathParams<DayPath>,
) -> Result<Response, Problem> {
    let day = parse_day(&path.day)?;
    let mut lines = vec![CSV_HEADER.to_owned()];
    let mut cursor = None;
    loop {
        let query = Query::Reconciliation {
            merchant: MerchantId(path.merchant),
            day,
            page_size: MAX_STATEMENT_ROWS,
            cursor,
        };
        let page = match app.query(&caller, query).await? {
            QueryReply::Reconciliation { reconciliation, .. } => reconciliation.page,
            other => return Err(Problem::unexpected(other)),
        };
        lines.extend(
            page.rows
                .iter()
                .map(|p| StatementRow::new(page.account, p).csv()),
        );
        if lines.len() > MAX_CSV_ROWS {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "TooManyRows",
                format!("the day has more than {MAX_CSV_ROWS} rows: read it as JSON, page by page"),
            ));
        }
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    let mut body = lines.join("\n");
    body.push('\n');
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    Ok(response)
}

/// A merchant's payment events, oldest first (itself, auditors): what its webhook receives,
/// for a merchant that polls instead or catches up.
#[utoipa::path(get, path = "/merchants/{merchant}/events", tag = "reader", operation_id = "getEvents",
    params(MerchantPath, EventParams),
    responses((status = 200, body = Events), Problems))]
async fn get_events(
    caller: Caller,
    State(app): State<App>,
    PathParams(path): PathParams<MerchantPath>,
    QueryParams(params): QueryParams<EventParams>,
) -> Result<Json<Events>, Problem> {
    let page_size = params.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if page_size == 0 || page_size as usize > MAX_EVENT_BATCH {
        return Err(Problem::bad_request(
            "PageSize",
            format!("a page holds 1 to {MAX_EVENT_BATCH} events"),
        ));
    }
    let after_id = params.after_id.unwrap_or(0);
    let query = Query::Events {
        merchant: MerchantId(path.merchant),
        after_id,
        page_size,
    };
    match app.query(&caller, query).await? {
        QueryReply::Events { events, .. } => Ok(Json(Events {
            next_after_id: events.last().map_or(after_id, |e| e.id),
            events: events.iter().map(EventView::from).collect(),
        })),
        other => Err(Problem::unexpected(other)),
    }
}

/// Read the calling merchant's webhook.
#[utoipa::path(get, path = "/merchants/{merchant}/webhook", tag = "reader", operation_id = "getWebhook",
    params(MerchantPath),
    responses((status = 200, body = WebhookView), Problems))]
async fn get_webhook(
    caller: Caller,
    State(app): State<App>,
    PathParams(path): PathParams<MerchantPath>,
) -> Result<Json<WebhookView>, Problem> {
    match app
        .query(&caller, Query::Webhook(MerchantId(path.merchant)))
        .await?
    {
        QueryReply::Webhook(Some(w)) => Ok(Json(w.into())),
        QueryReply::Webhook(None) => Err(Problem::not_found("webhook of merchant", path.merchant)),
        other => Err(Problem::unexpected(other)),
    }
}

/// Set the calling merchant's webhook; the answer carries the signing secret.
#[utoipa::path(put, path = "/merchants/{merchant}/webhook", tag = "merchant", operation_id = "setWebhook",
    params(MerchantPath, ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe.")),
    request_body = SetWebhook,
    responses((status = 200, body = WebhookSet), Problems))]
async fn set_webhook(
    caller: Caller,
    key: IdempotencyKey,
    State(app): State<App>,
    PathParams(path): PathParams<MerchantPath>,
    JsonBody(body): JsonBody<SetWebhook>,
) -> Result<Response, Problem> {
    let merchant = MerchantId(path.merchant);
    let op = Operation::Command(Command::SetWebhook {
        merchant,
        url: Some(body.url.clone()),
    });
    match app.submit(&caller, &key, op).await? {
        Reply::WebhookSet { .. } => {}
        other => return Err(Problem::unexpected(other)),
    }
    let (secret_version, secret) = match app.query(&caller, Query::WebhookSecret(merchant)).await? {
        QueryReply::WebhookSecret(Some((version, secret))) => (version, secret),
        QueryReply::WebhookSecret(None) => {
            return Err(Problem::not_found("webhook of merchant", path.merchant))
        }
        other => return Err(Problem::unexpected(other)),
    };
    let mut response = Json(WebhookSet {
        url: body.url,
        secret_version,
        secret: secret.expose().to_owned(),
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Remove the calling merchant's webhook (its waiting deliveries are dropped).
#[utoipa::path(delete, path = "/merchants/{merchant}/webhook", tag = "merchant", operation_id = "deleteWebhook",
    params(MerchantPath, ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe.")),
    responses((status = 204, description = "Removed (or there was none)"), Problems))]
async fn delete_webhook(
    caller: Caller,
    key: IdempotencyKey,
    State(app): State<App>,
    PathParams(path): PathParams<MerchantPath>,
) -> Result<StatusCode, Problem> {
    let op = Operation::Command(Command::SetWebhook {
        merchant: MerchantId(path.merchant),
        url: None,
    });
    match app.submit(&caller, &key, op).await? {
        Reply::WebhookSet { .. } => Ok(StatusCode::NO_CONTENT),
        other => Err(Problem::unexpected(other)),
    }
}
