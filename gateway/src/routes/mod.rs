//! The `/v1` operations, one file per resource. Each operation is tagged with the role that
//! calls it (`merchant`, `channel`) or `reader` (merchants for their own records, channels,
//! auditors); the node's role table decides, the gateway only maps HTTP to operations.

pub mod accounts;
pub mod epay;
pub mod merchants;
pub mod payments;
pub mod rewards;
pub mod status;

use crate::problem::ProblemBody;
use crate::App;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

/// The OpenAPI document's fixed parts; the operations come from the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ledger payment API",
        version = "1",
        description = "Payments confirmed by SMS one-time codes, card-present swipes, refunds, \
            e-Pay enrolment, statements, reconciliation, payment events, vouchers and points. \
            Amounts are integers in fen (1 yuan = 100 fen). Authenticate with a client \
            certificate from the cluster CA or `Authorization: Bearer <API key>`. Writes take \
            an optional `Idempotency-Key` header: the same key with the same request returns \
            the first answer, with another request 409. Errors are RFC 9457 \
            `application/problem+json` whose `error` names the typed error."
    ),
    modifiers(&Security),
    security(("bearer" = []), ("mutualTLS" = [])),
    tags(
        (name = "merchant", description = "A merchant's payments, swipes, refunds and webhook."),
        (name = "channel", description = "The bank's web and phone channel: e-Pay enrolment, limits, transfers between customers, voucher claims and prize redemptions."),
        (name = "reader", description = "Reads: merchants (their own records), channels and auditors."),
    ),
    components(schemas(ProblemBody))
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "mutualTLS",
            SecurityScheme::MutualTls {
                description: None,
                extensions: None,
            },
        );
    }
}

/// Every `/v1` operation.
pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .merge(payments::router())
        .merge(epay::router())
        .merge(accounts::router())
        .merge(merchants::router())
        .merge(rewards::router())
        .merge(status::router())
}

/// 201 with the new record's address.
pub fn created<T: Serialize>(location: String, body: T) -> Response {
    let mut response = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
