//! Where a client finds its certificate: a certificates folder (`ledger-node certs`, or
//! `data/dev/certs` of `ledger-node dev`) holding `ca.crt` and `<NAME>.crt` / `<NAME>.key`,
//! and the command-line flags `ledgerctl`, `ledger-bench` and `ledger-node cluster` share.

use crate::client::{TlsError, TlsIdentity};
use ledger_wire::pki::{self, CA_CERT_FILE};
use ledger_wire::principal::Principal;
use std::path::{Path, PathBuf};

/// The certificates folder `ledger-node dev` writes, and the default of `--certs`.
pub const DEV_CERTS_DIR: &str = "data/dev/certs";
/// The identity `ledgerctl` and `ledger-bench` use unless told otherwise (an operator).
pub const DEFAULT_IDENTITY: &str = "operator-ledgerctl";

/// The identity `name` of the folder `certs_dir`: `NAME.crt`, `NAME.key`, trusting
/// `ca.crt`. For example `identity(dir, "merchant-1")` to act as merchant 1.
pub fn identity(certs_dir: &Path, name: &str) -> Result<TlsIdentity, TlsError> {
    TlsIdentity::load(
        &certs_dir.join(CA_CERT_FILE),
        &certs_dir.join(format!("{name}.crt")),
        &certs_dir.join(format!("{name}.key")),
    )
}

/// The certificate of `principal` in `certs_dir` (`<role>-<name>.crt`), issued there first
/// when the folder holds its CA's key: the dev cluster's folder does, so the demo and the
/// benchmark can act as the channel and as the merchants they register; a production CA's
/// key never sits beside a client, and there the operator issues certificates
/// (`ledger-node certs issue`).
pub fn issued_identity(certs_dir: &Path, principal: &Principal) -> Result<TlsIdentity, String> {
    let name = pki::file_stem(principal);
    let missing = !certs_dir.join(format!("{name}.crt")).exists();
    if missing && certs_dir.join(pki::CA_KEY_FILE).exists() {
        let ca = pki::Ca::load(certs_dir).map_err(|e| e.to_string())?;
        let validity = pki::Validity::days(pki::DEFAULT_VALIDITY_DAYS);
        pki::issue_to_dir(&ca, certs_dir, principal, validity).map_err(|e| e.to_string())?;
    }
    identity(certs_dir, &name).map_err(|e| {
        format!(
            "{principal} has no certificate in {dir}: `ledger-node certs issue --dir {dir} --role {role} ...` ({e})",
            dir = certs_dir.display(),
            role = principal.role(),
        )
    })
}

/// The dev channel's principal (certificate `channel-web`).
pub fn dev_channel() -> Principal {
    Principal::Channel { name: "web".into() }
}

/// The identity `name` of the `ledger-node dev` cluster (`data/dev/certs`, relative to the
/// working directory), for the examples: `dev_identity(DEFAULT_IDENTITY)` is its operator.
pub fn dev_identity(name: &str) -> Result<TlsIdentity, TlsError> {
    identity(Path::new(DEV_CERTS_DIR), name)
}

/// How a command-line client connects: mutual TLS with a certificate from a folder, or
/// plaintext.
#[derive(clap::Args, Clone, Debug)]
pub struct TlsArgs {
    /// Folder of certificates: `ca.crt` and the identity's `NAME.crt` and `NAME.key`.
    /// [default: data/dev/certs; if that folder does not exist and neither --certs nor
    /// --identity is given, the client connects in plaintext, as to a node started with
    /// insecure_plaintext]
    #[arg(long, env = "LEDGER_CERTS", global = true)]
    pub certs: Option<PathBuf>,
    /// Which certificate of the folder to present; the node answers as the principal it
    /// names (operator, merchant, channel, auditor). [default: operator-ledgerctl]
    #[arg(long, env = "LEDGER_IDENTITY", global = true)]
    pub identity: Option<String>,
    /// Connect without TLS (only nodes started with insecure_plaintext accept it).
    #[arg(long, global = true, conflicts_with_all = ["certs", "identity"])]
    pub insecure_plaintext: bool,
}

impl TlsArgs {
    /// The certificates folder: `--certs`, else `data/dev/certs`.
    pub fn certs_dir(&self) -> PathBuf {
        self.certs
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEV_CERTS_DIR))
    }

    /// The identity to connect with, `None` for plaintext.
    pub fn resolve(&self) -> Result<Option<TlsIdentity>, String> {
        if self.insecure_plaintext {
            return Ok(None);
        }
        let dir = match &self.certs {
            Some(dir) => dir.clone(),
            None if self.identity.is_none() && !Path::new(DEV_CERTS_DIR).exists() => {
                return Ok(None)
            }
            None => PathBuf::from(DEV_CERTS_DIR),
        };
        let name = self.identity.as_deref().unwrap_or(DEFAULT_IDENTITY);
        identity(&dir, name)
            .map(Some)
            .map_err(|e| format!("identity `{name}` in {}: {e}", dir.display()))
    }
}
