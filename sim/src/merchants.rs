//! The merchants' side of webhooks: the endpoint every node's webhook loop POSTs to. It
//! checks each delivery's signature against the merchant's secret and records the event ids
//! it accepted; with SMS faults on (outbound deliveries), it answers 503 now and then, and
//! the webhook loop must send the event again.

use crate::rng::SimRng;
use crate::trace::lock;
use ledger_core::intake::{self, SecretKeys};
use ledger_core::types::MerchantId;
use ledger_node::webhooks::{PostError, PostFuture, WebhookPost, WebhookTransport};
use ledger_wire::webhook::Delivery;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The URL the simulator's merchant registers (never resolved: the endpoint is in-process).
pub const WEBHOOK_URL: &str = "https://merchant.sim/webhook";

/// What the merchants accepted: per event id, how often; and deliveries refused for a bad
/// signature or body (never expected).
#[derive(Clone, Default)]
pub struct Inboxes(Arc<Mutex<InboxState>>);

#[derive(Default)]
struct InboxState {
    accepted: BTreeMap<u64, u32>,
    bad: Vec<String>,
}

impl Inboxes {
    pub fn received(&self, event: u64) -> bool {
        lock(&self.0).accepted.contains_key(&event)
    }

    /// Deliveries whose signature or body was wrong.
    pub fn bad(&self) -> Vec<String> {
        lock(&self.0).bad.clone()
    }
}

/// The endpoint every node delivers through.
pub struct Endpoints {
    pub inboxes: Inboxes,
    keys: SecretKeys,
    rng: Mutex<SimRng>,
    /// Chance that a merchant answers 503.
    refusal: f64,
}

impl Endpoints {
    pub fn new(inboxes: Inboxes, keys: SecretKeys, rng: SimRng, refusal: f64) -> Endpoints {
        Endpoints {
            inboxes,
            keys,
            rng: Mutex::new(rng),
            refusal,
        }
    }
}

impl WebhookTransport for Endpoints {
    fn post<'a>(&'a self, post: &'a WebhookPost) -> PostFuture<'a> {
        Box::pin(async move {
            if lock(&self.rng).chance(self.refusal) {
                return Err(PostError::Status(503));
            }
            let mut state = lock(&self.inboxes.0);
            let delivery: Delivery = match serde_json::from_slice(&post.body) {
                Ok(d) => d,
                Err(e) => {
                    state.bad.push(format!("event {}: body {e}", post.event_id));
                    return Err(PostError::Status(400));
                }
            };
            // Secret version 1: the simulator's merchant registers once.
            let secret = intake::webhook_secret(&self.keys, MerchantId(delivery.merchant), 1);
            if !intake::verify_webhook_signature(&secret, &post.body, &post.signature)
                || delivery.id != post.event_id
                || delivery.sent_ms != post.sent_ms
            {
                state
                    .bad
                    .push(format!("event {}: bad signature or headers", post.event_id));
                return Err(PostError::Status(401));
            }
            *state.accepted.entry(delivery.id).or_default() += 1;
            Ok(())
        })
    }
}
