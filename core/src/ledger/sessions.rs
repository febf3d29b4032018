//! Idempotency: every request carries a key (client id, request id). A retry of a recorded
//! request returns the original outcome; the same key with another command is refused.
//!
//! Records are bounded per client, not by time: a client acknowledges the answers it has
//! (`Envelope::acked_below`) and the ledger forgets its records below that; a client that
//! never acknowledges keeps at most `idempotency_window_per_client` records. Ids below a
//! client's floor are refused as too old, so a forgotten request is never applied twice.
//! Sessions idle for their owner's idle time are forgotten, one per applied command at most.
//!
//! Two kinds of owner share the machinery (`SessionOwner`): clients, which number their
//! requests (kept `client_session_idle_ms`, at most `max_client_sessions` in all), and the
//! sessions a principal opens through the HTTP gateway, one per `Idempotency-Key` (kept
//! `keyed_session_idle_ms`, at most `max_keyed_sessions_per_principal` per principal, each
//! principal counted under `Key::KeyedSessions`). The idle queue orders both by the time
//! each may be forgotten.

use super::Tx;
use crate::command::{Envelope, SessionOwner};
use crate::config::LedgerConfig;
use crate::outcome::{LedgerError, Outcome};
use crate::state::{IdempotencyRecord, Key, Meta, Session, Value};
use crate::types::RequestKey;

/// A busy session's place in the idle queue is refreshed at most this often.
const SESSION_REQUEUE_MS: u64 = 60_000;

/// Most due sessions a new session looks through, when its quota is full, for one of the
/// same quota to forget in its place. Other owners' due sessions ahead of it are forgotten
/// by the commands that apply meanwhile, one each.
const QUOTA_SCAN: usize = 64;

/// What to do with a request before applying it.
pub(super) enum Admission {
    /// Seen before: answer this, change nothing.
    Replay(Outcome),
    /// New: apply it, then `record` it.
    Admit {
        session: Option<Session>,
        idle: Option<(u64, u64)>,
    },
}

fn request(client_id: u64, request_id: u64) -> Key {
    Key::Idempotency(RequestKey {
        client_id,
        request_id,
    })
}

/// The first key after all of a client's records.
fn client_end(client_id: u64) -> Key {
    match client_id.checked_add(1) {
        Some(next) => request(next, 0),
        None => Key::Session(0),
    }
}

fn session(tx: &Tx<'_>, client_id: u64) -> Option<Session> {
    tx.get(Key::Session(client_id))
}

/// How long a session of `owner` is kept idle.
fn idle_ms(config: &LedgerConfig, owner: SessionOwner) -> u64 {
    match owner {
        SessionOwner::Client => config.client_session_idle_ms,
        SessionOwner::Keyed { .. } => config.keyed_session_idle_ms,
    }
}

/// When a session of `owner` last seen at `seen_ms` may be forgotten.
fn idle_until(config: &LedgerConfig, owner: SessionOwner, seen_ms: u64) -> u64 {
    seen_ms.saturating_add(idle_ms(config, owner))
}

/// How many keyed sessions `principal` holds.
fn keyed_sessions(tx: &Tx<'_>, principal: u64) -> u64 {
    match tx.get_value(&Key::KeyedSessions(principal)) {
        Some(Value::KeyedSessions(n)) => n,
        _ => 0,
    }
}

/// Counts a session of `owner` in or out of its quota.
fn count(tx: &mut Tx<'_>, meta: &mut Meta, owner: SessionOwner, opened: bool) {
    match owner {
        SessionOwner::Client if opened => meta.client_sessions += 1,
        SessionOwner::Client => meta.client_sessions -= 1,
        SessionOwner::Keyed { principal } => {
            let n = keyed_sessions(tx, principal);
            let n = if opened { n + 1 } else { n - 1 };
            let value = (n > 0).then_some(Value::KeyedSessions(n));
            tx.put_value(Key::KeyedSessions(principal), value);
        }
    }
}

/// The refusal for a new session of `owner` when its quota is full, if it is.
fn quota_full(
    tx: &Tx<'_>,
    meta: &Meta,
    config: &LedgerConfig,
    owner: SessionOwner,
) -> Option<LedgerError> {
    match owner {
        SessionOwner::Client => (meta.client_sessions >= config.max_client_sessions).then_some(
            LedgerError::TooManyClients {
                max_sessions: config.max_client_sessions,
            },
        ),
        SessionOwner::Keyed { principal } => (keyed_sessions(tx, principal)
            >= config.max_keyed_sessions_per_principal)
            .then_some(LedgerError::TooManyIdempotencyKeys {
                max_keys: config.max_keyed_sessions_per_principal,
            }),
    }
}

/// Decides whether a request is a replay, too old, or new; and which idle session (if any)
/// this command will expire: the first in the idle queue, if it is due and not the
/// requester's own. `idle_floor_ms` is a lower bound of the queue's due times (the ledger's,
/// in memory): while it is later than now the queue is not read, and each read sets it to
/// the first due time found. The state this reads is the store's as committed (nothing of
/// this command is written yet), so the bound holds whatever the command's fate.
pub(super) fn admit(
    tx: &Tx<'_>,
    meta: &Meta,
    config: &LedgerConfig,
    envelope: &Envelope,
    now_ms: u64,
    idle_floor_ms: &mut u64,
) -> Result<Admission, LedgerError> {
    let key = envelope.key;
    if let Some(record) = tx.get::<IdempotencyRecord>(Key::Idempotency(key)) {
        let same =
            record.command == envelope.command && record.request_digest == envelope.request_digest;
        return Ok(Admission::Replay(if same {
            record.outcome
        } else {
            Err(LedgerError::IdempotencyKeyReused { key })
        }));
    }
    let own = session(tx, key.client_id);
    if let Some(s) = own {
        if key.request_id < s.floor {
            return Err(LedgerError::RequestTooOld {
                key,
                floor: s.floor,
            });
        }
    }
    let due = Key::SessionIdle(now_ms.saturating_add(1), 0);
    let mut idle = None;
    if *idle_floor_ms <= now_ms {
        let queue_end = Key::SessionIdle(u64::MAX, u64::MAX);
        let first = tx.range(Key::SessionIdle(0, 0), queue_end, 1);
        *idle_floor_ms = u64::MAX;
        if let Some((Key::SessionIdle(due_ms, client), _)) = first.first() {
            *idle_floor_ms = *due_ms;
            if *due_ms <= now_ms && *client != key.client_id {
                idle = Some((*due_ms, *client));
            }
        }
    }
    if own.is_none() {
        if let Some(full) = quota_full(tx, meta, config, envelope.owner) {
            // Admitted only if this command forgets a session that frees a place in the
            // same quota: one of the first few due, in place of the first.
            let rows = tx.range(Key::SessionIdle(0, 0), due, QUOTA_SCAN);
            let frees_one = rows.iter().find_map(|(k, _)| match k {
                Key::SessionIdle(due_ms, client) if *client != key.client_id => {
                    session(tx, *client)
                        .is_some_and(|s| {
                            s.owner == envelope.owner
                                && idle_until(config, s.owner, s.last_seen_ms) <= now_ms
                        })
                        .then_some((*due_ms, *client))
                }
                _ => None,
            });
            match frees_one {
                Some(place) => idle = Some(place),
                None => return Err(full),
            }
        }
    }
    Ok(Admission::Admit { session: own, idle })
}

/// Records an applied request's outcome in its client's session, forgets what the client
/// acknowledged or what falls out of its window, and expires one idle session.
#[allow(clippy::too_many_arguments)]
pub(super) fn record(
    tx: &mut Tx<'_>,
    meta: &mut Meta,
    config: &LedgerConfig,
    envelope: &Envelope,
    outcome: &Outcome,
    now_ms: u64,
    index: u64,
    own: Option<Session>,
    idle: Option<(u64, u64)>,
) {
    let window = config.idempotency_window_per_client;
    if let Some((due_ms, client)) = idle {
        let mut s = session(tx, client)
            .unwrap_or_else(|| panic!("corrupt state: idle queue names missing session {client}"));
        tx.delete(Key::SessionIdle(due_ms, client));
        let until = idle_until(config, s.owner, s.last_seen_ms);
        if until <= now_ms {
            for (k, _) in tx.range(request(client, 0), client_end(client), window as usize + 1) {
                tx.delete(k);
            }
            tx.delete(Key::Session(client));
            count(tx, meta, s.owner, false);
        } else {
            s.idle_until_ms = until;
            tx.put(Key::Session(client), s);
            tx.put_value(Key::SessionIdle(until, client), Some(Value::SessionIdle));
        }
    }

    let RequestKey {
        client_id,
        request_id,
    } = envelope.key;
    let mut s = own.unwrap_or_else(|| {
        let owner = envelope.owner;
        count(tx, meta, owner, true);
        let idle_until_ms = idle_until(config, owner, now_ms);
        tx.put_value(
            Key::SessionIdle(idle_until_ms, client_id),
            Some(Value::SessionIdle),
        );
        Session {
            floor: 0,
            records: 0,
            last_seen_ms: now_ms,
            idle_until_ms,
            owner,
        }
    });
    // A client cannot acknowledge the request it is sending.
    let acked = envelope.acked_below.min(request_id);
    if acked > s.floor {
        for (k, _) in tx.range(
            request(client_id, s.floor),
            request(client_id, acked),
            window as usize + 1,
        ) {
            tx.delete(k);
            s.records -= 1;
        }
        s.floor = acked;
    }
    tx.put(
        Key::Idempotency(envelope.key),
        IdempotencyRecord {
            command: envelope.command.clone(),
            request_digest: envelope.request_digest,
            outcome: outcome.clone(),
            applied_ms: now_ms,
            applied_index: index,
        },
    );
    s.records += 1;
    if s.records > window {
        let oldest = tx.range(request(client_id, s.floor), client_end(client_id), 1);
        let Some((Key::Idempotency(oldest), _)) = oldest.first() else {
            panic!("corrupt state: session {client_id} counts records it does not have")
        };
        tx.delete(Key::Idempotency(*oldest));
        s.records -= 1;
        s.floor = oldest.request_id + 1;
    }
    s.last_seen_ms = now_ms;
    let until = idle_until(config, s.owner, now_ms);
    if until.saturating_sub(s.idle_until_ms) >= SESSION_REQUEUE_MS {
        tx.delete(Key::SessionIdle(s.idle_until_ms, client_id));
        tx.put_value(Key::SessionIdle(until, client_id), Some(Value::SessionIdle));
        s.idle_until_ms = until;
    }
    tx.put(Key::Session(client_id), s);
}
