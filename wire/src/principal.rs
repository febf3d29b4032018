//! Who is calling (DOMAIN.md section 10). A node derives a [`Principal`] from the client
//! certificate it verified in the TLS handshake; the certificate names it in a SAN URI
//! (`ledger:merchant:42`, `ledger:operator:alice`, `ledger:node:3`). The principal decides
//! which operations a call may make (the node's `roles` module) and namespaces its
//! idempotency keys ([`Principal::namespaced_client_id`]), so that no principal can read or
//! push another's recorded answers.

use ledger_core::types::MerchantId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Most bytes in the name of an operator, channel or auditor principal.
pub const MAX_PRINCIPAL_NAME_BYTES: usize = 64;
/// The scheme of the SAN URI that names a principal in a certificate.
pub const PRINCIPAL_URI_SCHEME: &str = "ledger";

/// What a principal may do, by kind (DOMAIN.md section 10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// The bank's back office: accounts, money in and out, merchants, pools, month close,
    /// cluster administration.
    Operator,
    /// One merchant: its own payments, refunds and reads.
    Merchant,
    /// The bank's own web and phone front for customers: e-Pay enrolment, limits, claims.
    Channel,
    /// Every read, no write.
    Auditor,
    /// A payment node: the Raft port only.
    Node,
    /// The HTTP/JSON gateway: calls the client port for the merchant, channel or auditor an
    /// HTTP request authenticated as, never for itself (`submit_as`, `query_as`).
    Gateway,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Operator,
        Role::Merchant,
        Role::Channel,
        Role::Auditor,
        Role::Node,
        Role::Gateway,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Merchant => "merchant",
            Role::Channel => "channel",
            Role::Auditor => "auditor",
            Role::Node => "node",
            Role::Gateway => "gateway",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = PrincipalError;
    fn from_str(s: &str) -> Result<Role, PrincipalError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| PrincipalError::UnknownRole(s.into()))
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Principal {
    Operator { name: String },
    Merchant { merchant: MerchantId },
    Channel { name: String },
    Auditor { name: String },
    Node { id: u64 },
    Gateway { name: String },
}

/// Why a certificate's principal name was not understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    #[error("the certificate names no principal (no SAN URI starting with `ledger:`)")]
    Missing,
    #[error("the certificate names more than one principal")]
    Ambiguous,
    #[error("unknown role `{0}` (operator, merchant, channel, auditor, node or gateway)")]
    UnknownRole(String),
    #[error("`{0}` is not a principal (expected ledger:<role>:<name or id>)")]
    Malformed(String),
    #[error(
        "a principal's name is 1 to {MAX_PRINCIPAL_NAME_BYTES} letters, digits, `-`, `_` or `.`"
    )]
    BadName,
}

impl Principal {
    pub fn role(&self) -> Role {
        match self {
            Principal::Operator { .. } => Role::Operator,
            Principal::Merchant { .. } => Role::Merchant,
            Principal::Channel { .. } => Role::Channel,
            Principal::Auditor { .. } => Role::Auditor,
            Principal::Node { .. } => Role::Node,
            Principal::Gateway { .. } => Role::Gateway,
        }
    }

    /// Builds a principal of `role` named `name` (a merchant or node id for those roles).
    pub fn new(role: Role, name: &str) -> Result<Principal, PrincipalError> {
        let id = || -> Result<u64, PrincipalError> {
            name.parse::<u64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| PrincipalError::Malformed(format!("{role}:{name}")))
        };
        let text = || -> Result<String, PrincipalError> {
            let ok = !name.is_empty()
                && name.len() <= MAX_PRINCIPAL_NAME_BYTES
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            ok.then(|| name.to_string()).ok_or(PrincipalError::BadName)
        };
        Ok(match role {
            Role::Operator => Principal::Operator { name: text()? },
            Role::Merchant => Principal::Merchant {
                merchant: MerchantId(id()?),
            },
            Role::Channel => Principal::Channel { name: text()? },
            Role::Auditor => Principal::Auditor { name: text()? },
            Role::Node => Principal::Node { id: id()? },
            Role::Gateway => Principal::Gateway { name: text()? },
        })
    }

    /// The name after the role: the operator's name, the merchant's id, ...
    pub fn name(&self) -> String {
        match self {
            Principal::Operator { name }
            | Principal::Channel { name }
            | Principal::Auditor { name }
            | Principal::Gateway { name } => name.clone(),
            Principal::Merchant { merchant } => merchant.0.to_string(),
            Principal::Node { id } => id.to_string(),
        }
    }

    /// The SAN URI a certificate carries for this principal: `ledger:<role>:<name>`.
    pub fn to_uri(&self) -> String {
        format!("{PRINCIPAL_URI_SCHEME}:{}:{}", self.role(), self.name())
    }

    /// Reads a SAN URI written by [`Principal::to_uri`].
    pub fn from_uri(uri: &str) -> Result<Principal, PrincipalError> {
        let malformed = || PrincipalError::Malformed(uri.chars().take(80).collect());
        let rest = uri
            .strip_prefix(PRINCIPAL_URI_SCHEME)
            .and_then(|r| r.strip_prefix(':'))
            .ok_or_else(malformed)?;
        let (role, name) = rest.split_once(':').ok_or_else(malformed)?;
        Principal::new(role.parse()?, name)
    }

    /// The client id under which the ledger keeps this principal's request `client_id`: a
    /// hash of both, below `node_ids_from` (the range the nodes keep for their own keys).
    /// Two principals never share a recorded answer or a retry floor, whatever ids they
    /// send; the same principal gets the same id on every node, so retries find their
    /// answer after a failover.
    pub fn namespaced_client_id(&self, client_id: u64, node_ids_from: u64) -> u64 {
        let mut h = Sha256::new();
        h.update(b"ledger/client-namespace/v1");
        let uri = self.to_uri();
        h.update((uri.len() as u64).to_be_bytes());
        h.update(uri.as_bytes());
        h.update(client_id.to_be_bytes());
        let digest = h.finalize();
        let id = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        id % node_ids_from.max(1)
    }

    /// A 64-bit digest of the principal, the same on every node: how the ledger counts the
    /// idempotency keys a principal holds (`SessionOwner::Keyed`) without storing its name.
    pub fn digest64(&self) -> u64 {
        let mut h = Sha256::new();
        h.update(b"ledger/principal-digest/v1");
        h.update(self.to_uri().as_bytes());
        u64::from_be_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.role(), self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip_for_every_role() {
        for (role, name) in [
            (Role::Operator, "back-office"),
            (Role::Merchant, "42"),
            (Role::Channel, "web"),
            (Role::Auditor, "kpmg.audit"),
            (Role::Node, "3"),
            (Role::Gateway, "http"),
        ] {
            let p = Principal::new(role, name).unwrap();
            assert_eq!(p.role(), role);
            assert_eq!(Principal::from_uri(&p.to_uri()).unwrap(), p);
        }
    }

    #[test]
    fn malformed_principals_are_refused() {
        for bad in [
            "ledger:merchant:0",
            "ledger:merchant:x",
            "ledger:king:arthur",
            "https://example.com",
            "ledger:operator:",
            "ledger:operator:a b",
        ] {
            assert!(Principal::from_uri(bad).is_err(), "{bad} accepted");
        }
        let long = format!(
            "ledger:operator:{}",
            "a".repeat(MAX_PRINCIPAL_NAME_BYTES + 1)
        );
        assert_eq!(Principal::from_uri(&long), Err(PrincipalError::BadName));
    }

    #[test]
    fn digests_tell_principals_apart_and_are_stable() {
        let a = Principal::new(Role::Merchant, "1").unwrap();
        let b = Principal::new(Role::Merchant, "2").unwrap();
        let c = Principal::new(Role::Channel, "1").unwrap();
        assert_eq!(
            a.digest64(),
            Principal::new(Role::Merchant, "1").unwrap().digest64()
        );
        assert_ne!(a.digest64(), b.digest64());
        assert_ne!(a.digest64(), c.digest64());
    }

    #[test]
    fn namespaces_separate_principals_and_stay_below_the_nodes_range() {
        let base = 1u64 << 63;
        let a = Principal::new(Role::Merchant, "1").unwrap();
        let b = Principal::new(Role::Merchant, "2").unwrap();
        assert_ne!(
            a.namespaced_client_id(7, base),
            b.namespaced_client_id(7, base)
        );
        assert_eq!(
            a.namespaced_client_id(7, base),
            a.namespaced_client_id(7, base)
        );
        for id in 0..1_000 {
            assert!(a.namespaced_client_id(id, base) < base);
        }
    }
}
