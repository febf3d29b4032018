//! What a handler takes from a request, each refusal a problem+json: who calls (`Caller`),
//! the JSON body (`JsonBody`, whose errors name the field, never the value: a card number
//! sent as a number must not come back in an error), the path and query (`PathParams`,
//! `QueryParams`) and the `Idempotency-Key`.

use crate::problem::Problem;
use crate::App;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use ledger_core::types::{MerchantId, RequestKey};
use ledger_wire::principal::Principal;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// Most bytes of a request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Most bytes of a too-large body read (and dropped) before answering 413, so that a client
/// which sends its whole body before reading the answer gets the answer rather than a reset.
/// A body declared larger is answered at once and the connection closed.
pub const MAX_DRAIN_BYTES: usize = 8 * 1024 * 1024;
/// Time allowed for a request body to arrive.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn too_large() -> Problem {
    Problem::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "BodyTooLarge",
        format!("a request body holds at most {MAX_BODY_BYTES} bytes"),
    )
}

/// Middleware: reads every request's body before anything answers (at most
/// `MAX_BODY_BYTES` kept, up to `MAX_DRAIN_BYTES` read and dropped, within `BODY_TIMEOUT`).
/// An answer given while the client is still sending (a 401, a 413) would otherwise close
/// the connection under it: schemathesis saw `EOF occurred in violation of protocol` on
/// a 1 MB body.
pub async fn read_body_first(
    request: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use futures::StreamExt;
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_DRAIN_BYTES as u64) {
        return too_large().into_response();
    }
    let read = async move {
        let mut stream = body.into_data_stream();
        let (mut kept, mut total) = (Vec::new(), 0usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| ())?;
            total += chunk.len();
            if total <= MAX_BODY_BYTES {
                kept.extend_from_slice(&chunk);
            } else if total > MAX_DRAIN_BYTES {
                break;
            }
        }
        Ok::<_, ()>((kept, total))
    };
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Err(_) => Problem::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "BodyTimeout",
            format!(
                "the body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        )
        .into_response(),
        Ok(Err(())) => {
            Problem::bad_request("BodyUnreadable", "the body could not be read").into_response()
        }
        Ok(Ok((_, total))) if total > MAX_BODY_BYTES => too_large().into_response(),
        Ok(Ok((kept, _))) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(kept)))
                .await
        }
    }
}
/// Most characters of an `Idempotency-Key` (printable ASCII).
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// The principal a TLS client certificate named, put on each request of its connection.
#[derive(Clone, Debug)]
pub struct CertPrincipal(pub Option<Principal>);

/// Who calls: from the client certificate, else from `Authorization: Bearer <API key>`.
#[derive(Clone, Debug)]
pub struct Caller(pub Principal);

impl Caller {
    /// The merchant calling, for operations only a merchant makes (for itself).
    pub fn merchant(&self, operation: &str) -> Result<MerchantId, Problem> {
        match &self.0 {
            Principal::Merchant { merchant } => Ok(*merchant),
            other => Err(Problem::forbidden(format!("{other} may not {operation}"))),
        }
    }
}

impl FromRequestParts<App> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Caller, Problem> {
        let from_cert = parts
            .extensions
            .get::<CertPrincipal>()
            .and_then(|c| c.0.clone());
        let from_key = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(value) => {
                // The scheme's name is case-insensitive (RFC 9110, section 11.1).
                let key = value
                    .to_str()
                    .ok()
                    .and_then(|v| v.split_once(' '))
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, key)| key)
                    .ok_or_else(|| {
                        Problem::unauthorized("Authorization must be `Bearer <API key>`")
                    })?;
                let principal = app
                    .keys
                    .read()
                    .expect("keys lock")
                    .principal(key.trim())
                    .cloned()
                    .ok_or_else(|| Problem::unauthorized("unknown API key"))?;
                Some(principal)
            }
        };
        let principal = match (from_cert, from_key) {
            (None, None) => {
                return Err(Problem::unauthorized(
                    "no credentials: present a client certificate or send \
                     `Authorization: Bearer <API key>`",
                ))
            }
            (Some(p), None) | (None, Some(p)) => p,
            (Some(cert), Some(key)) if cert == key => cert,
            (Some(_), Some(_)) => {
                return Err(Problem::unauthorized(
                    "the client certificate and the API key name different principals",
                ))
            }
        };
        if !crate::keys::may_hold_key(principal.role()) {
            return Err(Problem::forbidden(format!(
                "{principal} may not use the HTTP gateway (merchants, channels and auditors)"
            )));
        }
        Ok(Caller(principal))
    }
}

/// A JSON request body of at most `MAX_BODY_BYTES`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<App> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, app: &App) -> Result<JsonBody<T>, Problem> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(Problem::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "the body must be application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, app)
            .await
            .map_err(|_| too_large())?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|_| Problem::bad_request("MalformedJson", "the body is not JSON"))?;
        if let Some(path) = beyond_int64(&value, "") {
            return Err(Problem::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "InvalidBody",
                format!("the integer at `{path}` does not fit a signed 64-bit integer"),
            ));
        }
        serde_path_to_error::deserialize(value)
            .map(JsonBody)
            .map_err(|e| {
                // The path only: serde's message may quote the value (a card number).
                let path = e.path().to_string();
                Problem::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    "InvalidBody",
                    format!("the body does not fit the schema at `{path}`"),
                )
            })
    }
}

/// Whether a decimal integer in a path, query or body fits a signed 64-bit integer (a Java
/// `long`): the API's integers are documented as int64 and no id, amount or time comes near
/// the limit, so a larger one is refused rather than read as a u64.
fn fits_int64(text: &str) -> bool {
    text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) || text.parse::<i64>().is_ok()
}

/// The path of the first integer in `value` beyond int64, if any.
fn beyond_int64(value: &serde_json::Value, path: &str) -> Option<String> {
    match value {
        serde_json::Value::Number(n) => n
            .as_u64()
            .filter(|v| *v > i64::MAX as u64)
            .map(|_| path.to_owned()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| beyond_int64(v, &format!("{path}[{i}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            let path = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            beyond_int64(v, &path)
        }),
        _ => None,
    }
}

/// Path parameters, a 400 problem when they do not parse.
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<App> for PathParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Problem> {
        let invalid = || Problem::bad_request("InvalidPath", "a path parameter is not valid");
        let raw = axum::extract::RawPathParams::from_request_parts(parts, app)
            .await
            .map_err(|_| invalid())?;
        if raw.iter().any(|(_, v)| !fits_int64(v)) {
            return Err(invalid());
        }
        axum::extract::Path::<T>::from_request_parts(parts, app)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|_| invalid())
    }
}

/// Query parameters, a 400 problem when they do not parse.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<App> for QueryParams<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Problem> {
        let invalid = || Problem::bad_request("InvalidQuery", "a query parameter is not valid");
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).map_err(|_| invalid())?;
        if pairs.iter().any(|(_, v)| !fits_int64(v)) {
            return Err(invalid());
        }
        axum::extract::Query::<T>::from_request_parts(parts, app)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|_| invalid())
    }
}

/// The `Idempotency-Key` header, if sent: the same key with the same request returns the
/// first answer; with another request, 409 `IdempotencyKeyReused`.
#[derive(Clone, Debug, Default)]
pub struct IdempotencyKey(pub Option<String>);

impl FromRequestParts<App> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &App) -> Result<Self, Problem> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let text = value.to_str().ok().filter(|t| {
            !t.is_empty()
                && t.len() <= MAX_IDEMPOTENCY_KEY_CHARS
                && t.bytes().all(|b| b.is_ascii_graphic())
        });
        match text {
            Some(t) => Ok(IdempotencyKey(Some(t.to_owned()))),
            None => Err(Problem::bad_request(
                "InvalidIdempotencyKey",
                format!(
                    "an Idempotency-Key is 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII \
                     characters"
                ),
            )),
        }
    }
}

/// The ledger key an `Idempotency-Key` stands for: a client id of its own (a hash of the key,
/// below 2^62, far from the nodes' own ids from 2^63), request 1. The node then keeps it in the caller's namespace, so two merchants' equal keys never
/// meet. One session per key: a session's records are evicted lowest id first, so many keys
/// in one session would push each other out.
pub fn http_request_key(key: &str) -> RequestKey {
    let mut h = Sha256::new();
    h.update(b"ledger/http-idempotency/v1");
    h.update(key.as_bytes());
    let digest = h.finalize();
    RequestKey {
        client_id: u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) >> 2,
        request_id: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_beyond_int64_are_found_wherever_they_are() {
        assert!(fits_int64("9223372036854775807") && fits_int64("abc") && fits_int64(""));
        assert!(!fits_int64("9223372036854775808"));
        let body = serde_json::json!({"a": 1, "b": [1, {"c": 9223372036854775808u64}]});
        assert_eq!(beyond_int64(&body, "").as_deref(), Some("b[1].c"));
        assert_eq!(beyond_int64(&serde_json::json!({"a": i64::MAX}), ""), None);
    }

    #[test]
    fn an_idempotency_key_maps_to_one_ledger_key_of_its_own() {
        let a = http_request_key("order-1");
        assert_eq!(a, http_request_key("order-1"));
        assert_ne!(a.client_id, http_request_key("order-2").client_id);
        assert_eq!(a.request_id, 1);
        assert!(a.client_id < 1 << 62);
    }
}
