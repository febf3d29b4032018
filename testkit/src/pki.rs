//! A test cluster's certificates: a CA in the cluster's temporary folder, made with the
//! library (`ledger_wire::pki`, what `ledger-node certs` runs), a certificate per node, and
//! any principal's identity on demand, so a test can act as any role.

use ledger_client::TlsIdentity;
use ledger_wire::pki::{self, Ca, PkiError, Validity};
use ledger_wire::principal::Principal;
use ledger_wire::tls::TlsFiles;
use std::path::{Path, PathBuf};

/// Days a test certificate is valid.
const TEST_VALIDITY_DAYS: u64 = 30;
/// The operator the tests act as by default, and the nodes initialise the cluster as.
pub const TEST_OPERATOR: &str = "test";

/// What a node is started with: its TLS files and the operator certificate of `--init`.
#[derive(Clone, Debug)]
pub struct LaunchTls {
    pub files: TlsFiles,
    pub init_cert: PathBuf,
    pub init_key: PathBuf,
}

/// A CA folder for one test cluster.
pub struct ClusterPki {
    dir: PathBuf,
    ca: Ca,
}

impl ClusterPki {
    /// Creates the CA in `dir` (which must not hold one yet).
    pub fn create(dir: &Path) -> Result<ClusterPki, PkiError> {
        let ca = pki::init_dir(dir)?;
        Ok(ClusterPki {
            dir: dir.to_owned(),
            ca,
        })
    }

    /// The CA folder: `ca.crt`, `crl.pem`, `<role>-<name>.crt` / `.key`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The certificate and key files of `principal`, issued on first use.
    pub fn files(&self, principal: &Principal) -> Result<(PathBuf, PathBuf), PkiError> {
        let stem = pki::file_stem(principal);
        let cert = self.dir.join(format!("{stem}.crt"));
        let key = self.dir.join(format!("{stem}.key"));
        if cert.exists() && key.exists() {
            return Ok((cert, key));
        }
        pki::issue_to_dir(
            &self.ca,
            &self.dir,
            principal,
            Validity::days(TEST_VALIDITY_DAYS),
        )
    }

    /// The identity of `principal` (issued on first use), trusting the cluster CA.
    pub fn identity(&self, principal: &Principal) -> Result<TlsIdentity, PkiError> {
        let (cert, key) = self.files(principal)?;
        Ok(TlsIdentity::load(
            &self.dir.join(pki::CA_CERT_FILE),
            &cert,
            &key,
        )?)
    }

    /// The default test identity: operator `test`.
    pub fn operator(&self) -> Result<TlsIdentity, PkiError> {
        self.identity(&operator())
    }

    /// How node `id` is started.
    pub fn node(&self, id: u64) -> Result<LaunchTls, PkiError> {
        let (cert, key) = self.files(&Principal::Node { id })?;
        let (init_cert, init_key) = self.files(&operator())?;
        Ok(LaunchTls {
            files: TlsFiles {
                ca: self.dir.join(pki::CA_CERT_FILE),
                cert,
                key,
                crl: Some(self.dir.join(pki::CRL_FILE)),
            },
            init_cert,
            init_key,
        })
    }

    /// The loaded CA, for tests that issue unusual certificates (expired ones).
    pub fn ca(&self) -> &Ca {
        &self.ca
    }
}

fn operator() -> Principal {
    Principal::Operator {
        name: TEST_OPERATOR.into(),
    }
}
