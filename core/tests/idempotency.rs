//! The exactly-once rules of DOMAIN.md section 6, What the ledger guarantees: idempotency
//! keys, acknowledgements and client sessions. One test per rule, named after the rule.
//! Every refusal is also checked to leave the state hash unchanged.

mod common;

use common::{balance, deposit, driver, driver_with, refused, transfer, unchanged, with_card};
use ledger_core::command::{Command, Context, Envelope, SessionOwner};
use ledger_core::config::YUAN;
use ledger_core::outcome::LedgerError;
use ledger_core::time::DAY_MS;
use ledger_core::types::{Digest32, RequestKey};
use ledger_testkit::driver::{Card, Driver};

/// Card 1 holding 100 yuan and card 2 holding nothing.
fn two_cards(d: &mut Driver) -> (Card, Card) {
    let a = d.funded_card(1, 100 * YUAN);
    let b = d.funded_card(2, 0);
    (a, b)
}

/// A retry of `first`'s command after the ledger forgot it: refused as too old, unchanged.
fn too_old(d: &mut Driver, first: RequestKey, command: Command) {
    let floor = first.request_id + 1;
    assert_eq!(
        unchanged(d, |d| d.submit_with_key(first, command)),
        Err(LedgerError::RequestTooOld { key: first, floor })
    );
}

#[test]
fn a_retry_returns_the_original_outcome_and_charges_once() {
    let mut d = driver();
    let (a, b) = two_cards(&mut d);
    let key = d.fresh_key();
    let command = transfer(a.account, b.account, 30 * YUAN);
    let first = d.submit_with_key(key, command.clone());
    d.advance(60_000);
    assert_eq!(
        unchanged(&mut d, |d| d.submit_with_key(key, command)),
        first
    );
    assert_eq!(balance(&d, b.account), 30 * YUAN as i64);
}

#[test]
fn the_same_key_with_a_different_body_is_refused() {
    let mut d = driver();
    let (a, b) = two_cards(&mut d);
    let key = d.fresh_key();
    d.submit_with_key(key, transfer(a.account, b.account, 1))
        .unwrap();
    let reused = transfer(a.account, b.account, 2);
    assert_eq!(
        unchanged(&mut d, |d| d.submit_with_key(key, reused)),
        Err(LedgerError::IdempotencyKeyReused { key })
    );
}

#[test]
fn acknowledged_records_are_forgotten_and_their_retries_refused_never_reapplied() {
    let mut d = driver();
    let (a, b) = two_cards(&mut d);
    let first = d.fresh_key();
    let command = transfer(a.account, b.account, 1);
    d.submit_with_key(first, command.clone()).unwrap();
    d.acked_below = first.request_id + 1;
    d.submit(deposit(a.account, 1)).unwrap();
    assert!(
        d.ledger.idempotency_record(first).is_none(),
        "acknowledged, so forgotten"
    );
    too_old(&mut d, first, command);
    assert_eq!(balance(&d, b.account), 1);
}

#[test]
fn a_client_that_never_acknowledges_keeps_a_bounded_window() {
    let mut d = driver_with(|c| c.idempotency_window_per_client = 4);
    let a = d.funded_card(1, 100 * YUAN);
    let first = d.fresh_key();
    let one_fen = deposit(a.account, 1);
    d.submit_with_key(first, one_fen.clone()).unwrap();
    for _ in 0..4 {
        d.submit(one_fen.clone()).unwrap();
    }
    assert!(d.ledger.idempotency_record(first).is_none());
    too_old(&mut d, first, one_fen);
    d.ledger.check_invariants().unwrap();
}

#[test]
fn idle_client_sessions_expire_after_seven_days() {
    let (mut d, a) = with_card(100 * YUAN);
    let old_client_key = d.fresh_key();
    d.submit_with_key(old_client_key, deposit(a.account, 1))
        .unwrap();
    assert_eq!(d.ledger.meta().client_sessions, 1);
    d.client_id = 8;
    d.advance(7 * DAY_MS);
    d.submit(deposit(a.account, 1)).unwrap();
    assert!(d.ledger.idempotency_record(old_client_key).is_none());
    assert_eq!(d.ledger.meta().client_sessions, 1);
    d.ledger.check_invariants().unwrap();
}

#[test]
fn too_many_clients_are_refused_until_an_idle_session_expires() {
    let mut d = driver_with(|c| c.max_client_sessions = 2);
    let a = d.funded_card(1, 100 * YUAN); // client 7
    d.client_id = 8;
    d.submit(deposit(a.account, 1)).unwrap();
    d.client_id = 9;
    let one_fen = deposit(a.account, 1);
    refused(
        &mut d,
        one_fen.clone(),
        LedgerError::TooManyClients { max_sessions: 2 },
    );
    assert!(LedgerError::TooManyClients { max_sessions: 2 }.is_retryable());
    d.advance(7 * DAY_MS);
    d.submit(one_fen).unwrap();
    d.ledger.check_invariants().unwrap();
}

#[test]
fn the_same_key_and_command_with_other_secrets_is_refused() {
    let mut d = driver();
    let (a, b) = two_cards(&mut d);
    let key = d.fresh_key();
    let command = transfer(a.account, b.account, 1);
    d.submit_with_key(key, command.clone()).unwrap();
    // The intake received another request (another card number or code, say) that became
    // the same command: its request digest differs.
    let mut envelope = Envelope::new(key, 0, command);
    envelope.request_digest = Digest32([7; 32]);
    let ctx = Context {
        index: d.index + 1,
        now_ms: d.now_ms,
    };
    assert_eq!(
        unchanged(&mut d, |d| d.ledger.apply(&ctx, &envelope)),
        Err(LedgerError::IdempotencyKeyReused { key })
    );
}

#[test]
fn a_request_at_the_acknowledged_floor_is_new_and_one_below_it_too_old() {
    let (mut d, a) = with_card(100 * YUAN);
    let key = |request_id| RequestKey {
        client_id: d.client_id,
        request_id,
    };
    let (first, floor, later) = (key(1_000), key(1_001), key(1_002));
    d.submit_with_key(first, deposit(a.account, 1)).unwrap();
    // Request 1,002 acknowledges everything below 1,001, before 1,001 itself was sent.
    d.acked_below = floor.request_id;
    d.submit_with_key(later, deposit(a.account, 1)).unwrap();
    assert_eq!(
        d.ledger.session(d.client_id).unwrap().floor,
        floor.request_id
    );
    d.submit_with_key(floor, deposit(a.account, 1)).unwrap();
    too_old(&mut d, first, deposit(a.account, 1));
    assert_eq!(balance(&d, a.account), 100 * YUAN as i64 + 3);
    d.ledger.check_invariants().unwrap();
}

#[test]
fn acknowledging_a_whole_window_at_once_forgets_every_record_of_it() {
    let mut d = driver_with(|c| c.idempotency_window_per_client = 4);
    let a = d.funded_card(1, 100 * YUAN);
    d.client_id = 8;
    let keys: Vec<RequestKey> = (0..4)
        .map(|_| {
            let key = d.fresh_key();
            d.submit_with_key(key, deposit(a.account, 1)).unwrap();
            key
        })
        .collect();
    assert_eq!(d.ledger.session(8).unwrap().records, 4);
    d.acked_below = u64::MAX;
    d.submit(deposit(a.account, 1)).unwrap();
    assert!(keys
        .iter()
        .all(|k| d.ledger.idempotency_record(*k).is_none()));
    assert_eq!(d.ledger.session(8).unwrap().records, 1);
    d.ledger.check_invariants().unwrap();
}

#[test]
fn an_idle_client_with_a_full_window_expires_with_all_its_records() {
    let mut d = driver_with(|c| c.idempotency_window_per_client = 4);
    let a = d.funded_card(1, 100 * YUAN); // client 7
    d.client_id = 8;
    for _ in 0..4 {
        d.submit(deposit(a.account, 1)).unwrap();
    }
    assert_eq!(d.ledger.session(8).unwrap().records, 4);
    d.advance(7 * DAY_MS);
    d.client_id = 9;
    // Each command expires one idle session, the longest idle first: 7, then 8.
    for _ in 0..2 {
        d.submit(deposit(a.account, 1)).unwrap();
    }
    assert!(d.ledger.session(7).is_none() && d.ledger.session(8).is_none());
    assert_eq!(d.ledger.meta().client_sessions, 1);
    d.ledger.check_invariants().unwrap();
}

#[test]
fn a_client_seen_within_the_week_is_not_taken_for_idle() {
    let mut d = driver_with(|c| c.max_client_sessions = 2);
    let a = d.funded_card(1, 100 * YUAN); // client 7, now
    d.advance(1);
    d.client_id = 8;
    d.submit(deposit(a.account, 1)).unwrap();
    // Client 7 comes back just before its week is up; client 8 never does.
    d.advance(7 * DAY_MS - 2);
    d.client_id = 7;
    d.submit(deposit(a.account, 1)).unwrap();
    d.advance(3);
    // A new client takes the place of 8, the idle one, not of 7.
    d.client_id = 9;
    d.submit(deposit(a.account, 1)).unwrap();
    assert!(d.ledger.session(8).is_none());
    assert!(d.ledger.session(7).is_some());
    d.ledger.check_invariants().unwrap();
}

/// An HTTP `Idempotency-Key` of principal `p`: a session of its own.
fn keyed(d: &mut Driver, p: u64, client_id: u64) {
    d.owner = SessionOwner::Keyed { principal: p };
    d.client_id = client_id;
}

#[test]
fn a_principal_at_its_key_quota_is_refused_and_nobody_else_is() {
    let mut d = driver_with(|c| c.max_keyed_sessions_per_principal = 2);
    let a = d.funded_card(1, 100 * YUAN); // client 7
    keyed(&mut d, 1, 100);
    let first = d.fresh_key();
    d.submit_with_key(first, deposit(a.account, 1)).unwrap();
    keyed(&mut d, 1, 101);
    d.submit(deposit(a.account, 1)).unwrap();
    assert_eq!(d.ledger.keyed_sessions(1), 2);
    keyed(&mut d, 1, 102);
    let full = LedgerError::TooManyIdempotencyKeys { max_keys: 2 };
    refused(&mut d, deposit(a.account, 1), full.clone());
    assert!(!full.is_retryable());
    // A retry of a key it holds still answers, from the record.
    let before = balance(&d, a.account);
    keyed(&mut d, 1, 100);
    d.submit_with_key(first, deposit(a.account, 1)).unwrap();
    assert_eq!(balance(&d, a.account), before);
    // Another principal and the client library's sessions are not held up.
    keyed(&mut d, 2, 200);
    d.submit(deposit(a.account, 1)).unwrap();
    d.owner = SessionOwner::Client;
    d.client_id = 8;
    d.submit(deposit(a.account, 1)).unwrap();
    assert_eq!(
        (d.ledger.keyed_sessions(1), d.ledger.keyed_sessions(2)),
        (2, 1)
    );
    assert_eq!(d.ledger.meta().client_sessions, 2);
    d.ledger.check_invariants().unwrap();
}

#[test]
fn keyed_sessions_are_forgotten_after_a_day_and_client_sessions_after_a_week() {
    let mut d = driver();
    let a = d.funded_card(1, 100 * YUAN); // client 7
    keyed(&mut d, 1, 100);
    let key = d.fresh_key();
    d.submit_with_key(key, deposit(a.account, 1)).unwrap();
    d.advance(DAY_MS);
    keyed(&mut d, 2, 200);
    d.submit(deposit(a.account, 1)).unwrap();
    assert!(d.ledger.session(100).is_none());
    assert!(d.ledger.idempotency_record(key).is_none());
    assert_eq!(d.ledger.keyed_sessions(1), 0);
    assert!(d.ledger.session(7).is_some());
    // The key is new again after a day: applied once more.
    let before = balance(&d, a.account);
    keyed(&mut d, 1, 100);
    d.submit_with_key(key, deposit(a.account, 1)).unwrap();
    assert_eq!(balance(&d, a.account), before + 1);
    // A week after client 7 was last seen, each command forgets one due session, soonest
    // due first: the two keys (due a day after their use), then client 7.
    d.advance(6 * DAY_MS);
    d.owner = SessionOwner::Client;
    d.client_id = 8;
    d.submit(deposit(a.account, 1)).unwrap();
    d.submit(deposit(a.account, 1)).unwrap();
    assert_eq!(d.ledger.keyed_sessions(1) + d.ledger.keyed_sessions(2), 0);
    assert!(d.ledger.session(7).is_some());
    d.submit(deposit(a.account, 1)).unwrap();
    assert!(d.ledger.session(7).is_none());
    d.ledger.check_invariants().unwrap();
}

#[test]
fn a_full_principal_takes_the_place_of_its_own_idle_key_behind_another_owners() {
    let mut d = driver_with(|c| c.max_keyed_sessions_per_principal = 1);
    let a = d.funded_card(1, 100 * YUAN); // client 7
    keyed(&mut d, 1, 100);
    d.submit(deposit(a.account, 1)).unwrap();
    d.advance(1);
    keyed(&mut d, 2, 200);
    d.submit(deposit(a.account, 1)).unwrap();
    d.advance(DAY_MS);
    // Principal 1's idle key is due first; principal 2's new key forgets its own.
    keyed(&mut d, 2, 201);
    d.submit(deposit(a.account, 1)).unwrap();
    assert!(d.ledger.session(200).is_none());
    assert!(d.ledger.session(100).is_some());
    assert_eq!(
        (d.ledger.keyed_sessions(1), d.ledger.keyed_sessions(2)),
        (1, 1)
    );
    d.ledger.check_invariants().unwrap();
}

mod sessions_under_load {
    //! Random traffic from clients and from two principals' keys, time jumping between
    //! requests, against small quotas: after every step the quotas hold, the invariants
    //! hold, a refusal changes nothing and comes only at a full quota, and a session used
    //! within its idle time is never forgotten (its retry gets the first answer).

    use super::*;
    use ledger_core::ledger::Ledger;
    use ledger_core::state::MemStore;
    use ledger_core::{LedgerConfig, Outcome};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const HOUR_MS: u64 = 3_600_000;
    const MAX_CLIENTS: u64 = 3;
    const MAX_KEYS: u64 = 2;

    /// One step: who sends (0: a client, 1 and 2: a principal's keys), which of its
    /// sessions, how long after the previous step, and whether it retries its last request.
    #[derive(Clone, Debug)]
    struct Step {
        owner: u64,
        session: u64,
        after_ms: u64,
        retry: bool,
    }

    fn step() -> impl Strategy<Value = Step> {
        let after = prop_oneof![
            Just(0),
            Just(HOUR_MS),
            Just(12 * HOUR_MS),
            Just(DAY_MS - 1),
            Just(DAY_MS),
            Just(3 * DAY_MS),
            Just(7 * DAY_MS),
        ];
        (0..3u64, 0..4u64, after, any::<bool>()).prop_map(|(owner, session, after_ms, retry)| {
            Step {
                owner,
                session,
                after_ms,
                retry,
            }
        })
    }

    fn owner_of(owner: u64) -> SessionOwner {
        match owner {
            0 => SessionOwner::Client,
            p => SessionOwner::Keyed { principal: p },
        }
    }

    /// The session's last applied request: when, its key, its command and its answer.
    type Last = (u64, RequestKey, Command, Outcome);

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn quotas_and_idle_times_hold(steps in prop::collection::vec(step(), 1..60)) {
            let mut d = driver_with(|c| {
                c.max_client_sessions = MAX_CLIENTS;
                c.max_keyed_sessions_per_principal = MAX_KEYS;
            });
            d.start_journal();
            let a = d.funded_card(1, 0); // client 7: a client session from the start
            let mut last: BTreeMap<u64, Last> = BTreeMap::new();
            for (i, s) in steps.iter().enumerate() {
                d.advance(s.after_ms);
                let owner = owner_of(s.owner);
                let idle_ms = match owner {
                    SessionOwner::Client => LedgerConfig::default().client_session_idle_ms,
                    SessionOwner::Keyed { .. } => LedgerConfig::default().keyed_session_idle_ms,
                };
                d.owner = owner;
                d.client_id = 100 * (s.owner + 1) + s.session;
                let fresh = last
                    .get(&d.client_id)
                    .filter(|(at, ..)| d.now_ms - at < idle_ms)
                    .cloned();
                if let (true, Some((_, key, command, first))) = (s.retry, fresh) {
                    // Used within its idle time: still remembered, the same answer.
                    prop_assert!(d.ledger.session(d.client_id).is_some(), "step {i}: forgotten early");
                    let again = unchanged(&mut d, |d| d.submit_with_key(key, command));
                    prop_assert_eq!(again, first, "step {}: another answer on retry", i);
                    continue;
                }
                let held = match owner {
                    SessionOwner::Client => d.ledger.meta().client_sessions,
                    SessionOwner::Keyed { principal } => d.ledger.keyed_sessions(principal),
                };
                let opens = d.ledger.session(d.client_id).is_none();
                let before = d.ledger.state_hash();
                let key = d.fresh_key();
                let command = deposit(a.account, 1);
                let outcome = d.submit_with_key(key, command.clone());
                match &outcome {
                    Ok(_) => {
                        last.insert(d.client_id, (d.now_ms, key, command, outcome.clone()));
                    }
                    Err(LedgerError::TooManyClients { .. } | LedgerError::TooManyIdempotencyKeys { .. }) => {
                        prop_assert!(opens, "step {i}: a held session refused");
                        prop_assert_eq!(held, match owner {
                            SessionOwner::Client => MAX_CLIENTS,
                            SessionOwner::Keyed { .. } => MAX_KEYS,
                        }, "step {}: refused below the quota", i);
                        prop_assert_eq!(d.ledger.state_hash(), before, "step {}: a refusal changed the state", i);
                    }
                    Err(e) => prop_assert!(false, "step {i}: unexpected {e:?}"),
                }
                prop_assert!(d.ledger.meta().client_sessions <= MAX_CLIENTS);
                prop_assert!(d.ledger.keyed_sessions(1) <= MAX_KEYS && d.ledger.keyed_sessions(2) <= MAX_KEYS);
                if let Err(e) = d.ledger.check_invariants() {
                    prop_assert!(false, "step {i}: {e:?}");
                }
            }
            // A replica opened afresh before every command (it reads the idle queue each
            // time, knowing no bound) answers and ends the same.
            let config = d.ledger.config().clone();
            let mut running = Ledger::genesis(MemStore::new(), config.clone());
            let mut reopened = Ledger::genesis(MemStore::new(), config);
            for (i, (ctx, envelope)) in d.journal.clone().unwrap().iter().enumerate() {
                reopened = Ledger::open(reopened.store().clone()).unwrap();
                let answer = running.apply(ctx, envelope);
                prop_assert_eq!(reopened.apply(ctx, envelope), answer, "command {}", i);
            }
            prop_assert_eq!(running.state_hash(), d.ledger.state_hash());
            prop_assert_eq!(reopened.state_hash(), d.ledger.state_hash());
        }
    }
}
