//! Voucher pools and claims, prizes and points (the channel claims and redeems for a
//! customer; readers read).

use crate::extract::{Caller, IdempotencyKey, JsonBody, PathParams};
use crate::problem::{Problem, Problems};
use crate::routes::{accounts::variant_name, created};
use crate::App;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use ledger_core::command::Command;
use ledger_core::types::{AccountId, Eligibility, PoolId, PrizeId};
use ledger_core::Reply;
use ledger_wire::api::{Operation, Query, QueryReply};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(get_pool))
        .routes(routes!(claim_voucher))
        .routes(routes!(get_voucher))
        .routes(routes!(get_prize))
        .routes(routes!(redeem_prize))
        .routes(routes!(get_points))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PoolPath {
    pub pool: u64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PrizePath {
    pub prize: u64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VoucherPath {
    pub account: u64,
    pub pool: u64,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AccountPath {
    pub account: u64,
}

/// For whom.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForAccount {
    pub account: u64,
}

/// A voucher pool.
#[derive(Serialize, ToSchema)]
pub struct PoolView {
    pub pool: u64,
    pub name: String,
    pub face_value_fen: u64,
    pub capacity: u64,
    pub granted: u64,
    /// `Anyone`, `EtcBound`, `SavingsProduct`, or `VipAtLeast:<tier>`.
    pub eligibility: String,
    pub valid_from_ms: u64,
    pub valid_until_ms: u64,
}

/// A voucher claimed.
#[derive(Serialize, ToSchema)]
pub struct Claimed {
    pub pool: u64,
    pub account: u64,
    /// Vouchers left in the pool.
    pub remaining: u64,
}

/// An account's voucher from a pool.
#[derive(Serialize, ToSchema)]
pub struct VoucherView {
    pub account: u64,
    pub pool: u64,
    pub face_value_fen: u64,
    pub valid_from_ms: u64,
    pub valid_until_ms: u64,
    /// The payment it paid part of, once used.
    pub consumed_by: Option<u64>,
}

/// A prize bought with points.
#[derive(Serialize, ToSchema)]
pub struct PrizeView {
    pub prize: u64,
    pub name: String,
    pub price_points: u64,
    pub stock: u64,
    pub redeemed: u64,
}

/// A prize redeemed.
#[derive(Serialize, ToSchema)]
pub struct Redeemed {
    pub prize: u64,
    pub account: u64,
    pub points_left: u64,
    pub stock_left: u64,
}

/// An account's points.
#[derive(Serialize, ToSchema)]
pub struct Points {
    pub account: u64,
    pub points: u64,
}

fn eligibility(e: Eligibility) -> String {
    match e {
        Eligibility::VipAtLeast(tier) => format!("VipAtLeast:{}", variant_name(&tier)),
        other => variant_name(&other),
    }
}

/// Read a voucher pool.
#[utoipa::path(get, path = "/pools/{pool}", tag = "reader", operation_id = "getPool",
    params(PoolPath),
    responses((status = 200, body = PoolView), Problems))]
async fn get_pool(
    caller: Caller,
    State(app): State<App>,
    PathParams(path): PathParams<PoolPath>,
) -> Result<Json<PoolView>, Problem> {
    match app.query(&caller, Query::Pool(PoolId(path.pool))).await? {
        QueryReply::Pool(Some(p)) => Ok(Json(PoolView {
            pool: path.pool,
            name: p.name,
            face_value_fen: p.face_value_fen,
            capacity: p.capacity,
            granted: p.granted,
            eligibility: eligibility(p.eligibility),
            valid_from_ms: p.valid_from_ms,
            valid_until_ms: p.valid_until_ms,
        })),
        QueryReply::Pool(None) => Err(Problem::not_found("pool", path.pool)),
        other => Err(Problem::unexpected(other)),
    }
}

/// Claim a voucher from a pool for a customer (one per account per pool).
#[utoipa::path(post, path = "/pools/{pool}/claims", tag = "channel", operation_id = "claimVoucher",
    params(PoolPath, ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe.")),
    request_body = ForAccount,
    responses((status = 201, body = Claimed), Problems))]
async fn claim_voucher(
    caller: Caller,
    key: IdempotencyKey,
    State(app): State<App>,
    PathParams(path): PathParams<PoolPath>,
    JsonBody(body): JsonBody<ForAccount>,
) -> Result<Response, Problem> {
    let op = Operation::Command(Command::ClaimVoucher {
        pool: PoolId(path.pool),
        account: AccountId(body.account),
    });
    match app.submit(&caller, &key, op).await? {
        Reply::VoucherClaimed { pool, remaining } => Ok(created(
            format!("/v1/accounts/{}/vouchers/{}", body.account, pool.0),
            Claimed {
                pool: pool.0,
                account: body.account,
                remaining,
            },
        )),
        other => Err(Problem::unexpected(other)),
    }
}

/// Read an account's voucher from a pool.
#[utoipa::path(get, path = "/accounts/{account}/vouchers/{pool}", tag = "reader", operation_id = "getVoucher",
    params(VoucherPath),
    responses((status = 200, body = VoucherView), Problems))]
async fn get_voucher(
    caller: Caller,
    State(app): State<App>,
    PathParams(path): PathParams<VoucherPath>,
) -> Result<Json<VoucherView>, Problem> {
    let query = Query::Voucher(AccountId(path.account), PoolId(path.pool));
    match app.query(&caller, query).await? {
        QueryReply::Voucher(Some(v)) => Ok(Json(VoucherView {
            account: path.account,
            pool: path.pool,
            face_value_fen: v.face_value_fen,
            valid_from_ms: v.valid_from_ms,
            valid_until_ms: v.valid_until_ms,
            consumed_by: v.consumed_by.map(|p| p.0),
        })),
        QueryReply::Voucher(None) => Err(Problem::not_found(
            "voucher for account",
            format!("{} in pool {}", path.account, path.pool),
        )),
        other => Err(Problem::unexpected(other)),
    }
}

/// Read a prize.
#[utoipa::path(get, path = "/prizes/{prize}", tag = "reader", operation_id = "getPrize",
    params(PrizePath),
    responses((status = 200, body = PrizeView), Problems))]
async fn get_prize(
    caller: Caller,
    State(app): State<App>,
    PathParams(path): PathParams<PrizePath>,
) -> Result<Json<PrizeView>, Problem> {
    match app
        .query(&caller, Query::Prize(PrizeId(path.prize)))
        .await?
    {
        QueryReply::Prize(Some(p)) => Ok(Json(PrizeView {
            prize: path.prize,
            name: p.name,
            price_points: p.price_points,
            stock: p.stock,
            redeemed: p.redeemed,
        })),
        QueryReply::Prize(None) => Err(Problem::not_found("prize", path.prize)),
        other => Err(Problem::unexpected(other)),
    }
}

/// Redeem a prize with a customer's points.
#[utoipa::path(post, path = "/prizes/{prize}/redemptions", tag = "channel", operation_id = "redeemPrize",
    params(PrizePath, ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe.")),
    request_body = ForAccount,
    responses((status = 201, body = Redeemed), Problems))]
async fn redeem_prize(
    caller: Caller,
    key: IdempotencyKey,
    State(app): State<App>,
    PathParams(path): PathParams<PrizePath>,
    JsonBody(body): JsonBody<ForAccount>,
) -> Result<Response, Problem> {
    let op = Operation::Command(Command::RedeemPrize {
        prize: PrizeId(path.prize),
        account: AccountId(body.account),
    });
    match app.submit(&caller, &key, op).await? {
        Reply::PrizeRedeemed {
            prize,
            points_left,
            stock_left,
        } => Ok(created(
            format!("/v1/accounts/{}/points", body.account),
            Redeemed {
                prize: prize.0,
                account: body.account,
                points_left,
                stock_left,
            },
        )),
        other => Err(Problem::unexpected(other)),
    }
}

/// Read an account's points.
#[utoipa::path(get, path = "/accounts/{account}/points", tag = "reader", operation_id = "getPoints",
    params(AccountPath),
    responses((status = 200, body = Points), Problems))]
async fn get_points(
    caller: Caller,
    State(app): State<App>,
    PathParams(path): PathParams<AccountPath>,
) -> Result<Json<Points>, Problem> {
    match app
        .query(&caller, Query::Points(AccountId(path.account)))
        .await?
    {
        QueryReply::Points(points) => Ok(Json(Points {
            account: path.account,
            points,
        })),
        other => Err(Problem::unexpected(other)),
    }
}
