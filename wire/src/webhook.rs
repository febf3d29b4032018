//! The webhook delivery contract, shared by the node that sends and the merchant's client
//! that receives: the body the leader POSTs for one payment event, its headers, and the
//! retry schedule.
//!
//! Each delivery is one event, as JSON, with `X-Signature` = HMAC-SHA256 of the exact body
//! bytes under the merchant's signing secret (64 lower-case hex digits;
//! `ledger_core::intake::verify_webhook_signature` checks it), `X-Event-Id` = the event's
//! stable id (the receiver deduplicates by it: delivery is at least once) and `X-Timestamp`
//! = when this attempt was sent, which the body repeats so the signature covers it.

use ledger_core::state::{Event, EventKind};
use serde::{Deserialize, Serialize};

pub const SIGNATURE_HEADER: &str = "X-Signature";
pub const EVENT_ID_HEADER: &str = "X-Event-Id";
pub const TIMESTAMP_HEADER: &str = "X-Timestamp";

/// One delivery's body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The event's id: the same on every attempt, and after a leader change.
    pub id: u64,
    /// `payment.settled`, `payment.refunded`, `payment.cancelled`, ...
    #[serde(rename = "type")]
    pub kind_name: String,
    pub merchant: u64,
    pub payment: u64,
    pub order_id: String,
    /// When the payment changed (ledger time, ms since the Unix epoch).
    pub at_ms: u64,
    /// When this attempt was sent (the leader's clock); equals `X-Timestamp`.
    pub sent_ms: u64,
    pub event: EventKind,
}

impl Delivery {
    pub fn new(event: &Event, sent_ms: u64) -> Delivery {
        Delivery {
            id: event.id,
            kind_name: event.kind.name().to_owned(),
            merchant: event.merchant.0,
            payment: event.payment.0,
            order_id: event.order_id.clone(),
            at_ms: event.at_ms,
            sent_ms,
            event: event.kind,
        }
    }

    /// The exact bytes sent and signed.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a delivery always encodes")
    }
}

/// Exponential back-off with jitter between attempts at one merchant's webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub first_ms: u64,
    pub max_ms: u64,
}

impl Backoff {
    /// The production schedule: 1 s, doubling, at most 10 minutes between attempts.
    pub const DEFAULT: Backoff = Backoff {
        first_ms: 1_000,
        max_ms: 600_000,
    };

    /// The wait after `failures` failed attempts in a row (at least one), with `jitter` in
    /// [0, 1) drawn by the sender: between half and all of the exponential step, so merchants
    /// that failed together do not retry together.
    pub fn delay_ms(&self, failures: u32, jitter: f64) -> u64 {
        let step = self
            .first_ms
            .saturating_mul(1u64 << failures.saturating_sub(1).min(40))
            .min(self.max_ms);
        let half = step / 2;
        half + (half as f64 * jitter.clamp(0.0, 1.0)) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::types::{MerchantId, PaymentId};

    #[test]
    fn a_delivery_body_names_the_event_and_is_what_gets_signed() {
        let event = Event {
            id: 42,
            merchant: MerchantId(3),
            payment: PaymentId(9),
            order_id: "o-9".into(),
            kind: EventKind::Refunded {
                amount_fen: 500,
                refundable_fen: 1_500,
            },
            at_ms: 1_000,
            index: 77,
        };
        let body = Delivery::new(&event, 2_000).body();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["id"], 42);
        assert_eq!(json["type"], "payment.refunded");
        assert_eq!(json["event"]["Refunded"]["amount_fen"], 500);
        assert_eq!(json["sent_ms"], 2_000);
        let back: Delivery = serde_json::from_slice(&body).unwrap();
        assert_eq!(back, Delivery::new(&event, 2_000));
    }

    #[test]
    fn back_off_doubles_up_to_its_bound_with_jitter_in_the_upper_half() {
        let b = Backoff::DEFAULT;
        assert_eq!(b.delay_ms(1, 0.0), 500);
        assert_eq!(b.delay_ms(1, 0.999_999), 999);
        assert_eq!(b.delay_ms(2, 0.0), 1_000);
        assert_eq!(b.delay_ms(5, 0.0), 8_000);
        assert_eq!(b.delay_ms(30, 0.0), 300_000);
        assert_eq!(b.delay_ms(u32::MAX, 1.0), 600_000);
        assert_eq!(b.delay_ms(0, 0.0), 500);
    }
}
