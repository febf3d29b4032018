//! Idempotency: every request carries a key (client id, request id). A retry of a recorded
//! request returns the original outcome; the same key with another command is refused.
//!
//! Records are bounded per client, not by time: a client acknowledges the answers it has
//! (`Envelope::acked_below`) and the ledger forgets its records below that; a client that
//! never acknowledges keeps at most `idempotency_window_per_client` records. Ids below a
//! client's floor are refused as too old, so a forgotten request is never applied twice.
//! Sessions idle for `client_session_idle_ms` are forgotten, one per applied command at most.

use super::Tx;
use crate::command::Envelope;
use crate::config::LedgerConfig;
use crate::outcome::{LedgerError, Outcome};
use crate::state::{IdempotencyRecord, Key, Meta, Session, Value};
use crate::types::RequestKey;

/// A busy session's place in the idle queue is refreshed at most this often.
const SESSION_REQUEUE_MS: u64 = 60_000;

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

/// Decides whether a request is a replay, too old, or new; and which idle session (if any)
/// this command will expire.
pub(super) fn admit(
    tx: &Tx<'_>,
    meta: &Meta,
    config: &LedgerConfig,
    envelope: &Envelope,
    now_ms: u64,
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
    let horizon = now_ms.checked_sub(config.client_session_idle_ms);
    let idle = horizon.and_then(|h| {
        let rows = tx.range(Key::SessionIdle(0, 0), Key::SessionIdle(h + 1, 0), 1);
        match rows.first() {
            Some((Key::SessionIdle(queued_ms, client), _)) if *client != key.client_id => {
                Some((*queued_ms, *client))
            }
            _ => None,
        }
    });
    if own.is_none() && meta.client_sessions >= config.max_client_sessions {
        let frees_one = idle.is_some_and(|(_, client)| {
            session(tx, client).is_some_and(|s| horizon.is_some_and(|h| s.last_seen_ms <= h))
        });
        if !frees_one {
            return Err(LedgerError::TooManyClients {
                max_sessions: config.max_client_sessions,
            });
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
    if let Some((queued_ms, client)) = idle {
        let mut s = session(tx, client)
            .unwrap_or_else(|| panic!("corrupt state: idle queue names missing session {client}"));
        tx.delete(Key::SessionIdle(queued_ms, client));
        if now_ms.saturating_sub(s.last_seen_ms) >= config.client_session_idle_ms {
            for (k, _) in tx.range(request(client, 0), client_end(client), window as usize + 1) {
                tx.delete(k);
            }
            tx.delete(Key::Session(client));
            meta.client_sessions -= 1;
        } else {
            s.queued_ms = s.last_seen_ms;
            tx.put(Key::Session(client), s);
            tx.put_value(
                Key::SessionIdle(s.queued_ms, client),
                Some(Value::SessionIdle),
            );
        }
    }

    let RequestKey {
        client_id,
        request_id,
    } = envelope.key;
    let mut s = own.unwrap_or_else(|| {
        meta.client_sessions += 1;
        tx.put_value(
            Key::SessionIdle(now_ms, client_id),
            Some(Value::SessionIdle),
        );
        Session {
            floor: 0,
            records: 0,
            last_seen_ms: now_ms,
            queued_ms: now_ms,
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
    if now_ms - s.queued_ms >= SESSION_REQUEUE_MS {
        tx.delete(Key::SessionIdle(s.queued_ms, client_id));
        tx.put_value(
            Key::SessionIdle(now_ms, client_id),
            Some(Value::SessionIdle),
        );
        s.queued_ms = now_ms;
    }
    tx.put(Key::Session(client_id), s);
}
