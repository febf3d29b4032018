//! The SMS side: the operator's gateway as the nodes' outbox loops see it, and the customers'
//! phones it delivers to. A message the gateway accepts lands on the phone, by challenge id;
//! with SMS faults on, the gateway refuses some messages (the outbox must send them again).

use crate::rng::SimRng;
use crate::trace::lock;
use ledger_core::intake::Secret;
use ledger_core::types::ChallengeId;
use ledger_node::sms::{Delivery, SmsError, SmsGateway, SmsMessage};
use ledger_wire::dev_sms;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a customer waits for an SMS before giving up, virtual ms.
pub const SMS_PATIENCE_MS: u64 = 5_000;

/// Every SMS delivered, by challenge id: its code and how often it came.
#[derive(Clone, Default)]
pub struct Phones(Arc<Mutex<BTreeMap<ChallengeId, (Secret, u32)>>>);

impl Phones {
    /// Waits (up to `SMS_PATIENCE_MS`) for the SMS of a challenge and returns its code.
    pub async fn read(&self, challenge: ChallengeId) -> Option<Secret> {
        for _ in 0..SMS_PATIENCE_MS / 20 {
            if let Some((code, _)) = lock(&self.0).get(&challenge) {
                return Some(code.clone());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    pub fn received(&self, challenge: ChallengeId) -> bool {
        lock(&self.0).contains_key(&challenge)
    }
}

/// The gateway every node's outbox loop delivers through.
pub struct Gateway {
    pub phones: Phones,
    rng: Mutex<SimRng>,
    /// Chance that the gateway refuses a message.
    refusal: f64,
}

impl Gateway {
    pub fn new(phones: Phones, rng: SimRng, refusal: f64) -> Gateway {
        Gateway {
            phones,
            rng: Mutex::new(rng),
            refusal,
        }
    }
}

impl SmsGateway for Gateway {
    fn deliver<'a>(&'a self, message: &'a SmsMessage) -> Delivery<'a> {
        Box::pin(async move {
            if lock(&self.rng).chance(self.refusal) {
                return Err(SmsError("the simulated gateway is busy".into()));
            }
            let code = dev_sms::code_in(&message.text)
                .ok_or_else(|| SmsError("no code in the message".into()))?;
            lock(&self.phones.0)
                .entry(ChallengeId(message.id))
                .or_insert((Secret::new(code), 0))
                .1 += 1;
            Ok(())
        })
    }
}
