//! API keys: how a merchant (or a channel, or an auditor) that cannot present a client
//! certificate authenticates to the gateway. A key is 32 random bytes, shown once when it is
//! issued (`lk_` and 64 hex digits); the gateway keeps only its SHA-256, with the principal
//! it stands for, one line per key in a text file:
//!
//! ```text
//! <sha256 hex> ledger:merchant:42 <issued ms> <label>
//! ```
//!
//! Deleting a line and sending the gateway SIGHUP revokes the key. A plain hash suffices: the
//! keys are random, not chosen by people, so there is nothing to guess from the hash.

use ledger_wire::principal::{Principal, PrincipalError, Role};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What every key starts with, so a leaked one is recognisable (and greppable).
pub const KEY_PREFIX: &str = "lk_";
/// Most keys one file may hold.
pub const MAX_KEYS: usize = 100_000;
/// Most bytes of a key's label.
pub const MAX_LABEL_BYTES: usize = 64;
/// Longest presented key the gateway hashes; anything longer is refused unread.
pub const MAX_PRESENTED_KEY_BYTES: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {reason}")]
    Malformed {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path} holds more than {MAX_KEYS} keys")]
    TooMany { path: PathBuf },
    #[error("an API key is for a merchant, channel or auditor, not a {0}")]
    Role(Role),
    #[error("a label is 1 to {MAX_LABEL_BYTES} letters, digits, `-`, `_` or `.`")]
    BadLabel,
    #[error(transparent)]
    Principal(#[from] PrincipalError),
}

/// The principals an API key may stand for: the ones a gateway may act for.
pub fn may_hold_key(role: Role) -> bool {
    matches!(role, Role::Merchant | Role::Channel | Role::Auditor)
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The keys a gateway accepts, by hash.
#[derive(Default)]
pub struct ApiKeys {
    by_hash: HashMap<[u8; 32], Principal>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.by_hash.len())
    }
}

impl ApiKeys {
    /// Reads the key file a gateway was told to serve: it must exist (a mistyped path must
    /// not silently turn every API key away).
    pub fn load_existing(path: &Path) -> Result<ApiKeys, KeyError> {
        if !path.exists() {
            return Err(KeyError::Io {
                path: path.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such key file (`ledger-gateway keys issue --file` makes it)",
                ),
            });
        }
        ApiKeys::load(path)
    }

    /// Reads a key file; a missing file is an empty set (no API keys accepted).
    pub fn load(path: &Path) -> Result<ApiKeys, KeyError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ApiKeys::default()),
            Err(source) => {
                return Err(KeyError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let mut by_hash = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let malformed = |reason: &str| KeyError::Malformed {
                path: path.to_owned(),
                line: n + 1,
                reason: reason.into(),
            };
            let mut fields = line.split_whitespace();
            let hash = fields
                .next()
                .and_then(unhex)
                .ok_or_else(|| malformed("the first field is not a SHA-256 in hex"))?;
            let principal = fields
                .next()
                .ok_or_else(|| malformed("no principal after the hash"))
                .and_then(|uri| Principal::from_uri(uri).map_err(|e| malformed(&e.to_string())))?;
            if !may_hold_key(principal.role()) {
                return Err(malformed(&KeyError::Role(principal.role()).to_string()));
            }
            if by_hash.len() == MAX_KEYS {
                return Err(KeyError::TooMany {
                    path: path.to_owned(),
                });
            }
            by_hash.insert(hash, principal);
        }
        Ok(ApiKeys { by_hash })
    }

    /// The principal a presented key stands for, if it is one of ours.
    pub fn principal(&self, presented: &str) -> Option<&Principal> {
        if presented.len() > MAX_PRESENTED_KEY_BYTES || !presented.starts_with(KEY_PREFIX) {
            return None;
        }
        self.by_hash.get(&digest(presented))
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// Makes a new key for `principal`, appends its hash to `path` (created 0600 if missing) and
/// returns the key: the only time it exists in clear.
pub fn issue(
    path: &Path,
    principal: &Principal,
    label: &str,
    now_ms: u64,
) -> Result<String, KeyError> {
    if !may_hold_key(principal.role()) {
        return Err(KeyError::Role(principal.role()));
    }
    let label_ok = !label.is_empty()
        && label.len() <= MAX_LABEL_BYTES
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !label_ok {
        return Err(KeyError::BadLabel);
    }
    // Refuse to append to a file that would not load.
    let existing = ApiKeys::load(path)?;
    if existing.len() == MAX_KEYS {
        return Err(KeyError::TooMany {
            path: path.to_owned(),
        });
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let key = format!("{KEY_PREFIX}{}", hex(&bytes));
    let line = format!(
        "{} {} {now_ms} {label}\n",
        hex(&digest(&key)),
        principal.to_uri()
    );
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    file.write_all(line.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(key)
}

/// Writes a key to its own file, readable by its owner only (the development cluster hands
/// its keys to the README's examples and the CI's tests this way).
pub fn save_key(path: &Path, key: &str) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.create_new(true).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    file.write_all(key.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merchant(id: &str) -> Principal {
        Principal::new(Role::Merchant, id).unwrap()
    }

    #[test]
    fn an_issued_key_authenticates_its_principal_and_only_its_hash_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-keys.txt");
        let key = issue(&path, &merchant("7"), "shop-7", 1).unwrap();
        let other = issue(&path, &merchant("8"), "shop-8", 2).unwrap();
        assert!(key.starts_with(KEY_PREFIX) && key.len() == KEY_PREFIX.len() + 64);
        let stored = std::fs::read_to_string(&path).unwrap();
        assert!(!stored.contains(&key[KEY_PREFIX.len()..]), "a key in clear");
        let keys = ApiKeys::load(&path).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.principal(&key), Some(&merchant("7")));
        assert_eq!(keys.principal(&other), Some(&merchant("8")));
        let mut wrong = key.clone();
        wrong.pop();
        wrong.push('x');
        assert_eq!(keys.principal(&wrong), None);
        assert_eq!(keys.principal(&key[KEY_PREFIX.len()..]), None);
    }

    #[test]
    fn operators_nodes_and_gateways_get_no_keys_and_bad_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-keys.txt");
        for (role, name) in [
            (Role::Operator, "alice"),
            (Role::Node, "1"),
            (Role::Gateway, "http"),
        ] {
            let p = Principal::new(role, name).unwrap();
            assert!(matches!(issue(&path, &p, "x", 0), Err(KeyError::Role(_))));
        }
        assert!(matches!(
            issue(&path, &merchant("1"), "a b", 0),
            Err(KeyError::BadLabel)
        ));
        assert!(ApiKeys::load(&path).unwrap().is_empty(), "missing file");
        assert!(
            matches!(ApiKeys::load_existing(&path), Err(KeyError::Io { .. })),
            "a gateway told to serve a missing file refuses to start"
        );
        let hash = "ab".repeat(32);
        for bad in [
            format!("{hash} ledger:operator:alice 0 x"),
            hash.to_string(),
            "zz ledger:merchant:1 0 x".to_string(),
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(matches!(
                ApiKeys::load(&path),
                Err(KeyError::Malformed { line: 1, .. })
            ));
        }
    }
}
