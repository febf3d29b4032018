//! Payments: an e-Pay payment (begin; the payer's SMS code confirms it), a card swiped at a
//! terminal, cancel, refund, and reading one payment. A transfer between two customers (the
//! channel's) is a payment to an account, confirmed the same way.

use crate::extract::{Caller, IdempotencyKey, JsonBody, PathParams};
use crate::problem::{Problem, Problems};
use crate::routes::created;
use crate::App;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use ledger_core::command::Command;
use ledger_core::intake::Secret;
use ledger_core::state::{Payment, PaymentMethod, PaymentState};
use ledger_core::types::{AccountId, Payee, PaymentId};
use ledger_core::Reply;
use ledger_wire::api::{Operation, Query, QueryReply};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(begin_payment))
        .routes(routes!(begin_transfer))
        .routes(routes!(get_payment))
        .routes(routes!(confirm_payment))
        .routes(routes!(cancel_payment))
        .routes(routes!(refund_payment))
        .routes(routes!(swipe))
}

/// Step 1 of an e-Pay payment to the calling merchant: the payer's reserved phone and the
/// last six digits of the card, the amount and the merchant's order id. An SMS code goes to
/// the phone.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginPayment {
    /// The payer's reserved mobile phone.
    #[schema(example = "13800138000")]
    pub phone: String,
    /// The last six digits of the payer's card.
    #[schema(value_type = String, format = Password, example = "345678")]
    pub last_six: Secret,
    /// In fen.
    #[schema(minimum = 1, maximum = 1_000_000_000, example = 12_800)]
    pub amount_fen: u64,
    /// The merchant's order id (at most 64 bytes; one payment per order).
    #[schema(example = "order-20261203-0001")]
    pub order_id: String,
}

/// Step 1 of a transfer between two customers (the channel's): like a payment, to an account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginTransfer {
    #[schema(example = "13800138000")]
    pub phone: String,
    #[schema(value_type = String, format = Password, example = "345678")]
    pub last_six: Secret,
    /// The account the money goes to.
    pub payee_account: u64,
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub amount_fen: u64,
    pub order_id: String,
}

/// A payment waiting for the payer's code.
#[derive(Serialize, ToSchema)]
pub struct PaymentPending {
    pub payment: u64,
    /// The SMS challenge the code answers.
    pub challenge: u64,
    /// The code is good until then (ms since the Unix epoch).
    pub expires_at_ms: u64,
}

/// Step 2: the code the payer received by SMS.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmPayment {
    #[schema(value_type = String, format = Password, example = "123456")]
    pub code: Secret,
}

/// A settled payment.
#[derive(Serialize, ToSchema)]
pub struct PaymentSettled {
    pub payment: u64,
    /// The bill.
    pub bill_fen: u64,
    /// What the payer's account paid (the bill less a voucher).
    pub debited_fen: u64,
    /// The voucher pool whose voucher paid part of it.
    pub voucher_pool: Option<u64>,
    /// Campaigns whose reward this payment earned the merchant.
    pub rewards: Vec<u64>,
}

/// A card swiped at one of the calling merchant's terminals, with the PIN typed there.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Swipe {
    /// The terminal's number (1 to the merchant's terminal count).
    pub terminal: u32,
    /// As read from the card.
    #[schema(value_type = String, format = Password, example = "6222020200112233445")]
    pub card_number: Secret,
    /// The card password typed on the terminal.
    #[schema(value_type = String, format = Password, example = "135790")]
    pub pin: Secret,
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub amount_fen: u64,
    /// The terminal's receipt number (at most 32 bytes; one payment per receipt).
    pub receipt: String,
}

/// A refund of part or all of a settled payment.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub amount_fen: u64,
}

/// A refund made.
#[derive(Serialize, ToSchema)]
pub struct Refunded {
    pub payment: u64,
    pub refund_fen: u64,
    /// Back to the payer's account.
    pub to_payer_fen: u64,
    /// Back to the promotion that paid a voucher's share.
    pub to_promotions_fen: u64,
    /// What may still be refunded.
    pub refundable_fen: u64,
}

/// A cancelled payment.
#[derive(Serialize, ToSchema)]
pub struct Cancelled {
    pub payment: u64,
    pub state: String,
}

/// A payment as the ledger holds it.
#[derive(Serialize, ToSchema)]
pub struct PaymentView {
    pub payment: u64,
    pub payer_account: u64,
    /// The merchant paid, for a payment to a merchant.
    pub payee_merchant: Option<u64>,
    /// The account paid, for a transfer between customers.
    pub payee_account: Option<u64>,
    pub amount_fen: u64,
    pub order_id: String,
    /// `epay` or `card_present`.
    pub method: String,
    /// The terminal, for a card-present payment.
    pub terminal: Option<u32>,
    /// `pending`, `settled`, `superseded`, `failed`, `cancelled` or `expired`.
    pub state: String,
    pub created_ms: u64,
    /// When it settled, was cancelled or expired.
    pub closed_ms: Option<u64>,
    /// What the payer's account paid, once settled.
    pub debited_fen: Option<u64>,
    pub voucher_pool: Option<u64>,
    pub refunds: u32,
    pub refunded_fen: u64,
    pub refundable_fen: u64,
    pub points_earned: u64,
}

impl PaymentView {
    fn new(id: PaymentId, p: &Payment) -> PaymentView {
        let (payee_merchant, payee_account) = match p.payee {
            Payee::Merchant(m) => (Some(m.0), None),
            Payee::Account(a) => (None, Some(a.0)),
        };
        let (method, terminal) = match p.method {
            PaymentMethod::Epay { .. } => ("epay", None),
            PaymentMethod::CardPresent { terminal } => ("card_present", Some(terminal)),
        };
        let (closed_ms, debited_fen, voucher_pool) = match p.state {
            PaymentState::Settled {
                debited_fen,
                voucher,
                settled_ms,
            } => (Some(settled_ms), Some(debited_fen), voucher.map(|v| v.0)),
            PaymentState::Cancelled { cancelled_ms } => (Some(cancelled_ms), None, None),
            PaymentState::Expired { expired_ms } => (Some(expired_ms), None, None),
            PaymentState::Pending | PaymentState::Superseded | PaymentState::Failed => {
                (None, None, None)
            }
        };
        PaymentView {
            payment: id.0,
            payer_account: p.payer.0,
            payee_merchant,
            payee_account,
            amount_fen: p.amount_fen,
            order_id: p.order_id.clone(),
            method: method.into(),
            terminal,
            state: p.state.name().into(),
            created_ms: p.created_ms,
            closed_ms,
            debited_fen,
            voucher_pool,
            refunds: p.refunds.count,
            refunded_fen: p.refunds.total_fen,
            refundable_fen: p.refundable_fen(),
            points_earned: p.points_earned,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PaymentPath {
    /// The payment's id.
    pub payment: u64,
}

fn pending(reply: Reply) -> Result<Response, Problem> {
    match reply {
        Reply::PaymentPending {
            payment,
            challenge,
            expires_at_ms,
        } => Ok(created(
            format!("/v1/payments/{}", payment.0),
            PaymentPending {
                payment: payment.0,
                challenge: challenge.0,
                expires_at_ms,
            },
        )),
        other => Err(Problem::unexpected(other)),
    }
}

fn settled(reply: Reply) -> Result<PaymentSettled, Problem> {
    match reply {
        Reply::PaymentSettled {
            payment,
            bill_fen,
            debited_fen,
            voucher,
            rewards,
        } => Ok(PaymentSettled {
            payment: payment.0,
            bill_fen,
            debited_fen,
            voucher_pool: voucher.map(|v| v.0),
            rewards: rewards.into_iter().map(|c| c.0).collect(),
        }),
        other => Err(Problem::unexpected(other)),
    }
}

/// Begin a payment to the calling merchant.
#[utoipa::path(post, path = "/payments", tag = "merchant", operation_id = "beginPayment",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and request give the first answer.")),
    request_body = BeginPayment,
    responses((status = 201, description = "Waiting for the payer's SMS code", body = PaymentPending,
        links(("GetPayment" = (operation_id = "getPayment", parameters(("payment" = "$response.body#/payment")))),
              ("ConfirmPayment" = (operation_id = "confirmPayment", parameters(("payment" = "$response.body#/payment")))),
              ("CancelPayment" = (operation_id = "cancelPayment", parameters(("payment" = "$response.body#/payment")))))),
        Problems))]
async fn begin_payment(
    caller: Caller,
    key: IdempotencyKey,
    State(app): State<App>,
    JsonBody(body): JsonBody<BeginPayment>,
) -> Result<Response, Problem> {
    let merchant = caller.merchant("begin a payment to a merchant")?;
    let op = Operation::PaymentBegin {
        phone: body.phone,
        last_six: body.last_six,
        payee: Payee::Merchant(merchant),
        amount_fen: body.amount_fen,
        order_id: body.order_id,
    };
    pending(app.submit(&caller, &key, op).await?)
}

/// Begin a transfer between two customers (the channel's).
#[utoipa::path(post, path = "/transfers", tag = "channel", operation_id = "beginTransfer",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe.")),
    request_body = BeginTransfer,
    responses((status = 201, description = "Waiting for the payer's SMS code", body = PaymentPending,
        links(("GetPayment" = (operation_id = "getPayment", parameters(("payment" = "$response.body#/payment")))),
              ("ConfirmPayment" = (operation_id = "confirmPayment", parameters(("payment" = "$response.body#/payment")))))),
        Problems))]
async fn begin_transfer(
    caller: Caller,
    key: IdempotencyKey,
    State(app): State<App>,
    JsonBody(body): JsonBody<BeginTransfer>,
) -> Result<Response, Problem> {
    let op = Operation::PaymentBegin {
        phone: body.phone,
        last_six: body.last_six,
        payee: Payee::Account(AccountId(body.payee_account)),
        amount_fen: body.amount_fen,
        order_id: body.order_id,
    };
    pending(app.submit(&caller, &key, op).await?)
}

/// Read a payment (its merchant, channels, auditors).
#[utoipa::path(get, path = "/payments/{payment}", tag = "reader", operation_id = "getPayment",
    params(PaymentPath),
    responses((status = 200, body = PaymentView), Problems))]
async fn get_payment(
    caller: Caller,
    State(app): State<App>,
    PathParams(path): PathParams<PaymentPath>,
) -> Result<Json<PaymentView>, Problem> {
    let id = PaymentId(path.payment);
    match app.query(&caller, Query::Payment(id)).await? {
        QueryReply::Payment(Some(p)) => Ok(Json(PaymentView::new(id, &p))),
        QueryReply::Payment(None) => Err(Problem::not_found("payment", id.0)),
        other => Err(Problem::unexpected(other)),
    }
}

/// Confirm a payment with the payer's SMS code: it settles.
#[utoipa::path(post, path = "/payments/{payment}/confirm", tag = "merchant", operation_id = "confirmPayment",
    params(PaymentPath, ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe.")),
    request_body = ConfirmPayment,
    responses((status = 200, description = "Settled", body = PaymentSettled), Problems))]
async fn confirm_payment(
    caller: Caller,
    key: IdempotencyKey,
    State(app): State<App>,
    PathParams(path): PathParams<PaymentPath>,
    JsonBody(body): JsonBody<ConfirmPayment>,
) -> Result<Json<PaymentSettled>, Problem> {
    let op = Operation::PaymentConfirm {
        payment: PaymentId(path.payment),
        code: body.code,
    };
    settled(app.submit(&caller, &key, op).await?).map(Json)
}

/// Cancel a payment still waiting for its code.
#[utoipa::path(post, path = "/payments/{payment}/cancel", tag = "merchant", operation_id = "cancelPayment",
    params(PaymentPath, ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe.")),
    responses((status = 200, body = Cancelled), Problems))]
async fn cancel_payment(
    caller: Caller,
    key: IdempotencyKey,
    State(app): State<App>,
    PathParams(path): PathParams<PaymentPath>,
) -> Result<Json<Cancelled>, Problem> {
    let op = Operation::Command(Command::CancelPayment {
        payment: PaymentId(path.payment),
    });
    match app.submit(&caller, &key, op).await? {
        Reply::PaymentCancelled { payment } => Ok(Json(Cancelled {
            payment: payment.0,
            state: "cancelled".into(),
        })),
        other => Err(Problem::unexpected(other)),
    }
}

/// Refund part or all of a settled payment, to the payer (and a voucher's share to its
/// promotion).
#[utoipa::path(post, path = "/payments/{payment}/refunds", tag = "merchant", operation_id = "refundPayment",
    params(PaymentPath, ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: a retried refund is made once.")),
    request_body = RefundRequest,
    responses((status = 201, body = Refunded), Problems))]
async fn refund_payment(
    caller: Caller,
    key: IdempotencyKey,
    State(app): State<App>,
    PathParams(path): PathParams<PaymentPath>,
    JsonBody(body): JsonBody<RefundRequest>,
) -> Result<Response, Problem> {
    let op = Operation::Command(Command::RefundPayment {
        payment: PaymentId(path.payment),
        amount_fen: body.amount_fen,
    });
    match app.submit(&caller, &key, op).await? {
        Reply::PaymentRefunded {
            payment,
            refund_fen,
            to_payer_fen,
            to_promotions_fen,
            refundable_fen,
        } => Ok(created(
            format!("/v1/payments/{}", payment.0),
            Refunded {
                payment: payment.0,
                refund_fen,
                to_payer_fen,
                to_promotions_fen,
                refundable_fen,
            },
        )),
        other => Err(Problem::unexpected(other)),
    }
}

/// A card swiped at one of the calling merchant's terminals: settled at once.
#[utoipa::path(post, path = "/swipes", tag = "merchant", operation_id = "swipe",
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe.")),
    request_body = Swipe,
    responses((status = 201, description = "Settled", body = PaymentSettled,
        links(("GetPayment" = (operation_id = "getPayment", parameters(("payment" = "$response.body#/payment")))),
              ("RefundPayment" = (operation_id = "refundPayment", parameters(("payment" = "$response.body#/payment")))))),
        Problems))]
async fn swipe(
    caller: Caller,
    key: IdempotencyKey,
    State(app): State<App>,
    JsonBody(body): JsonBody<Swipe>,
) -> Result<Response, Problem> {
    let merchant = caller.merchant("take a card payment at a terminal")?;
    let op = Operation::CardPayment {
        merchant,
        terminal: body.terminal,
        card_number: body.card_number,
        card_password: body.pin,
        amount_fen: body.amount_fen,
        receipt: body.receipt,
    };
    let s = settled(app.submit(&caller, &key, op).await?)?;
    Ok(created(format!("/v1/payments/{}", s.payment), s))
}
