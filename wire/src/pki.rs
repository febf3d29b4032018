//! The cluster's certificate authority: create it, issue certificates that name a
//! principal, revoke them. `ledger-node certs`, `ledger-node dev` and the test launcher use
//! it; a bank with its own PKI can instead issue certificates with the same contents
//! (a SAN URI `ledger:<role>:<name>`; for nodes also the DNS name `ledger-node`).
//!
//! A CA folder holds `ca.crt`, `ca.key` (mode 0600), `revoked.txt` (one hexadecimal serial
//! a line) and `crl.pem` (the revocation list the nodes load), and the issued
//! `<role>-<name>.crt` / `.key` pairs.

use crate::principal::{Principal, Role};
use crate::tls::{peer_identity, Serial, TlsError, GATEWAY_SERVER_NAME, NODE_SERVER_NAME};
use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The CA certificate's file in a CA folder.
pub const CA_CERT_FILE: &str = "ca.crt";
/// The CA key's file in a CA folder.
pub const CA_KEY_FILE: &str = "ca.key";
/// The revocation list the nodes load (`[tls] crl`).
pub const CRL_FILE: &str = "crl.pem";
/// The revoked serials, one hexadecimal serial a line.
pub const REVOKED_FILE: &str = "revoked.txt";
/// How long a CA certificate is valid.
pub const CA_VALIDITY_DAYS: u64 = 3_650;
/// How long a revocation list is valid; revoking again writes a new one.
pub const CRL_VALIDITY_DAYS: u64 = 3_650;
/// Validity of an issued certificate unless asked otherwise.
pub const DEFAULT_VALIDITY_DAYS: u64 = 365;
/// Most serials a CA folder's revocation list holds.
pub const MAX_REVOKED: usize = 100_000;

/// Why the CA could not do something.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("{path} already holds a CA; refusing to overwrite its key")]
    Exists { path: PathBuf },
    #[error("{path}: line {line} is not a hexadecimal serial")]
    BadRevokedList { path: PathBuf, line: usize },
    #[error("more than {MAX_REVOKED} revoked serials")]
    TooManyRevoked,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

/// When a certificate is valid.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// From an hour ago (clock skew between machines) for `days` days.
    pub fn days(days: u64) -> Validity {
        let now = SystemTime::now();
        Validity {
            not_before: now - Duration::from_secs(3_600),
            not_after: now + Duration::from_secs(days * 86_400),
        }
    }
}

/// A certificate and its key, as PEM.
pub struct Issued {
    pub principal: Principal,
    pub serial: Serial,
    pub cert_pem: String,
    /// The private key. Written only to a 0600 file; never logged.
    pub key_pem: String,
}

/// The cluster's certificate authority, loaded.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn random_serial() -> SerialNumber {
    // 16 random bytes, positive and without a leading zero byte (so its encoding is 16
    // bytes and `Serial` compares equal after DER's sign handling).
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f).max(1);
    SerialNumber::from_slice(&bytes)
}

/// A new CA's parameters. Its name carries a random tag: two clusters' CAs never share a
/// name, so a certificate from another cluster is refused as from an unknown CA (a
/// verifier matches issuers by name before it checks signatures).
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    let mut tag = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut tag);
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    name.push(DnType::CommonName, format!("ledger cluster CA {tag}"));
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.key_identifier_method = KeyIdMethod::Sha256;
    params
}

impl Ca {
    /// A new CA with a fresh key.
    pub fn create() -> Result<Ca, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = ca_params();
        let validity = Validity::days(CA_VALIDITY_DAYS);
        params.not_before = validity.not_before.into();
        params.not_after = validity.not_after.into();
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;
        Ok(Ca { cert, key })
    }

    /// Loads the CA of a folder written by [`Ca::save`].
    pub fn load(dir: &Path) -> Result<Ca, PkiError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let key = KeyPair::from_pem(&key_pem)?;
        // rcgen signs with an issuer's parameters and key; re-deriving the certificate from
        // the stored one keeps the issuer name and key identifier the nodes trust.
        let params = CertificateParams::from_ca_cert_pem(&cert_pem)?;
        let cert = params.self_signed(&key)?;
        Ok(Ca { cert, key })
    }

    /// Writes `ca.crt` and `ca.key` (0600) into `dir`; refuses to overwrite a CA key.
    pub fn save(&self, dir: &Path) -> Result<(), PkiError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let key_path = dir.join(CA_KEY_FILE);
        if key_path.exists() {
            return Err(PkiError::Exists {
                path: dir.to_owned(),
            });
        }
        write_private(&key_path, &self.key.serialize_pem())?;
        let cert_path = dir.join(CA_CERT_FILE);
        std::fs::write(&cert_path, self.cert.pem()).map_err(io(&cert_path))
    }

    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate naming `principal` (a node's also carries the DNS name `ledger-node`;
    /// a gateway's, which is also its HTTPS server certificate, `ledger-gateway`, `localhost`
    /// and 127.0.0.1).
    pub fn issue(&self, principal: &Principal, validity: Validity) -> Result<Issued, PkiError> {
        self.issue_for_hosts(principal, &[], validity)
    }

    /// [`Ca::issue`], the certificate also naming these DNS hosts (a gateway served under
    /// the bank's own name).
    pub fn issue_for_hosts(
        &self,
        principal: &Principal,
        hosts: &[String],
        validity: Validity,
    ) -> Result<Issued, PkiError> {
        let mut sans = vec![SanType::URI(principal.to_uri().try_into()?)];
        match principal.role() {
            Role::Node => sans.push(SanType::DnsName(NODE_SERVER_NAME.try_into()?)),
            Role::Gateway => {
                sans.push(SanType::DnsName(GATEWAY_SERVER_NAME.try_into()?));
                sans.push(SanType::DnsName("localhost".try_into()?));
                sans.push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
            }
            _ => {}
        }
        for host in hosts {
            sans.push(SanType::DnsName(host.as_str().try_into()?));
        }
        let (cert_pem, key_pem) = self.sign(&principal.to_string(), sans, validity)?;
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| TlsError::Certificate(e.to_string()))?;
        let serial = peer_identity(&der)?.serial;
        Ok(Issued {
            principal: principal.clone(),
            serial,
            cert_pem,
            key_pem,
        })
    }

    /// A certificate with exactly these SAN URIs (tests of malformed certificates).
    pub fn issue_with_uris(&self, uris: &[&str], validity: Validity) -> Result<String, PkiError> {
        let sans = uris
            .iter()
            .map(|u| Ok(SanType::URI((*u).try_into()?)))
            .collect::<Result<Vec<_>, PkiError>>()?;
        Ok(self.sign("test", sans, validity)?.0)
    }

    fn sign(
        &self,
        common_name: &str,
        sans: Vec<SanType>,
        validity: Validity,
    ) -> Result<(String, String), PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        params.distinguished_name = name;
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // Every certificate may serve (a node's ports) and authenticate as a client (a
        // node's Raft connections, and every client).
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = validity.not_before.into();
        params.not_after = validity.not_after.into();
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// A revocation list of `revoked`, signed by this CA.
    pub fn crl_pem(&self, revoked: &BTreeSet<Serial>) -> Result<String, PkiError> {
        let now = SystemTime::now();
        let params = CertificateRevocationListParams {
            this_update: now.into(),
            next_update: (now + Duration::from_secs(CRL_VALIDITY_DAYS * 86_400)).into(),
            // Increases with each list written (seconds since the epoch).
            crl_number: SerialNumber::from(
                now.duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(1, |d| d.as_secs()),
            ),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial.as_bytes()),
                    revocation_time: now.into(),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.cert, &self.key)?.pem()?)
    }
}

/// `<role>-<name>`: the file stem of a principal's certificate and key.
pub fn file_stem(principal: &Principal) -> String {
    format!("{}-{}", principal.role(), principal.name())
}

/// Creates a CA in `dir` (refusing to replace one) with an empty revocation list.
pub fn init_dir(dir: &Path) -> Result<Ca, PkiError> {
    let ca = Ca::create()?;
    ca.save(dir)?;
    write_crl(&ca, dir, &BTreeSet::new())?;
    Ok(ca)
}

/// Issues a certificate for `principal` into `dir` as `<role>-<name>.crt` and `.key`
/// (0600); returns both paths.
pub fn issue_to_dir(
    ca: &Ca,
    dir: &Path,
    principal: &Principal,
    validity: Validity,
) -> Result<(PathBuf, PathBuf), PkiError> {
    issue_to_dir_for_hosts(ca, dir, principal, &[], validity)
}

/// [`issue_to_dir`] with extra DNS names (see [`Ca::issue_for_hosts`]).
pub fn issue_to_dir_for_hosts(
    ca: &Ca,
    dir: &Path,
    principal: &Principal,
    hosts: &[String],
    validity: Validity,
) -> Result<(PathBuf, PathBuf), PkiError> {
    let issued = ca.issue_for_hosts(principal, hosts, validity)?;
    let stem = file_stem(principal);
    let cert_path = dir.join(format!("{stem}.crt"));
    let key_path = dir.join(format!("{stem}.key"));
    write_private(&key_path, &issued.key_pem)?;
    std::fs::write(&cert_path, &issued.cert_pem).map_err(io(&cert_path))?;
    Ok((cert_path, key_path))
}

/// Adds the serial of the certificate in `cert_file` to the folder's revoked list and
/// writes a new `crl.pem`; returns the serial and the CRL's path.
pub fn revoke_in_dir(ca: &Ca, dir: &Path, cert_file: &Path) -> Result<(Serial, PathBuf), PkiError> {
    let pem = std::fs::read(cert_file).map_err(io(cert_file))?;
    let der = CertificateDer::from_pem_slice(&pem)
        .map_err(|e| TlsError::Certificate(format!("{}: {e}", cert_file.display())))?;
    let serial = peer_identity(&der)?.serial;
    let mut revoked = read_revoked(dir)?;
    revoked.insert(serial.clone());
    if revoked.len() > MAX_REVOKED {
        return Err(PkiError::TooManyRevoked);
    }
    let path = dir.join(REVOKED_FILE);
    let text: String = revoked.iter().map(|s| format!("{s}\n")).collect();
    std::fs::write(&path, text).map_err(io(&path))?;
    Ok((serial, write_crl(ca, dir, &revoked)?))
}

/// The serials in the folder's `revoked.txt` (none if it does not exist).
pub fn read_revoked(dir: &Path) -> Result<BTreeSet<Serial>, PkiError> {
    let path = dir.join(REVOKED_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(io(&path)(e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            Serial::from_hex(l).ok_or(PkiError::BadRevokedList {
                path: path.clone(),
                line: i + 1,
            })
        })
        .collect()
}

fn write_crl(ca: &Ca, dir: &Path, revoked: &BTreeSet<Serial>) -> Result<PathBuf, PkiError> {
    let path = dir.join(CRL_FILE);
    // Written beside and renamed, so a node reloading on SIGHUP never reads half a list.
    let tmp = dir.join(format!("{CRL_FILE}.tmp"));
    std::fs::write(&tmp, ca.crl_pem(revoked)?).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(path)
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, pem: &str) -> Result<(), PkiError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io(path))?;
    file.write_all(pem.as_bytes()).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_folder_issues_revokes_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        init_dir(dir.path()).unwrap();
        assert!(matches!(init_dir(dir.path()), Err(PkiError::Exists { .. })));
        let ca = Ca::load(dir.path()).unwrap();
        let merchant = Principal::new(Role::Merchant, "42").unwrap();
        let (cert, key) = issue_to_dir(
            &ca,
            dir.path(),
            &merchant,
            Validity::days(DEFAULT_VALIDITY_DAYS),
        )
        .unwrap();
        assert!(cert.ends_with("merchant-42.crt"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let identity =
            crate::tls::TlsIdentity::load(&dir.path().join(CA_CERT_FILE), &cert, &key).unwrap();
        assert_eq!(identity.principal(), &merchant);
        let (serial, crl) = revoke_in_dir(&ca, dir.path(), &cert).unwrap();
        assert_eq!(read_revoked(dir.path()).unwrap(), BTreeSet::from([serial]));
        assert!(std::fs::read_to_string(crl)
            .unwrap()
            .contains("BEGIN X509 CRL"));
    }
}
