//! The one place TLS is configured, for the node's two ports and for every client.
//!
//! - Mutual TLS 1.3 only, on rustls with the `ring` provider (no OpenSSL).
//! - Every certificate chains to the cluster's CA, and only to it: a server requires a
//!   client certificate (`WebPkiClientVerifier`, with the CA's revocation list if one is
//!   configured); a client trusts only the cluster CA.
//! - Every node certificate carries the DNS name [`NODE_SERVER_NAME`], and clients verify a
//!   node as that name whatever address they dial, so nodes need no IP addresses in their
//!   certificates (the chaos harness's namespace addresses, a load balancer's address).
//! - Who a peer is comes from its verified certificate: exactly one SAN URI `ledger:...`
//!   ([`Principal::from_uri`]), and its serial number so that a revoked serial can be
//!   refused on connections that are already open ([`NodeTls::revoked`]).

use crate::principal::{Principal, PrincipalError};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;

/// The DNS name in every node certificate, and the name clients verify a node as.
pub const NODE_SERVER_NAME: &str = "ledger-node";
/// The DNS name every gateway certificate carries (with `localhost` and 127.0.0.1).
pub const GATEWAY_SERVER_NAME: &str = "ledger-gateway";
/// Time allowed for a TLS handshake (and the node's one-byte answer after it). A peer that
/// sends nothing, or a trickle, holds a task and a socket for no longer than this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most certificates read from one PEM file (a chain or a CA bundle).
pub const MAX_PEM_CERTIFICATES: usize = 16;

/// A certificate serial number: its big-endian bytes, without leading zeros.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serial(Vec<u8>);

impl Serial {
    pub fn from_bytes(bytes: &[u8]) -> Serial {
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        Serial(bytes[first..].to_vec())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Reads the hexadecimal form `Display` writes.
    pub fn from_hex(text: &str) -> Option<Serial> {
        let text = text.trim();
        if text.is_empty() || !text.len().is_multiple_of(2) || text.len() > 80 {
            return None;
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some(Serial::from_bytes(&bytes))
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("00");
        }
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({self})")
    }
}

/// Who is at the other end of a verified connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    pub principal: Principal,
    pub serial: Serial,
}

/// Why TLS material could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: no certificate in the file")]
    NoCertificate { path: PathBuf },
    #[error("{path}: more than {MAX_PEM_CERTIFICATES} certificates in the file")]
    TooManyCertificates { path: PathBuf },
    #[error("TLS configuration: {0}")]
    Config(String),
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("certificate: {0}")]
    Principal(#[from] PrincipalError),
}

/// Where a node finds its TLS material.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA's certificate (PEM).
    pub ca: PathBuf,
    /// This node's certificate chain (PEM), carrying `ledger:node:<id>` and `ledger-node`.
    pub cert: PathBuf,
    /// This node's private key (PEM).
    pub key: PathBuf,
    /// The CA's certificate revocation list (PEM), re-read on `NodeTls::reload`.
    pub crl: Option<PathBuf>,
}

/// A certificate and key a gateway presents to its HTTPS callers in place of its own
/// (`ledger:gateway:…`, which it still presents to the nodes): one from a CA the merchants'
/// HTTP stacks already trust. Any certificate for the gateway's host name; it names no
/// principal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServingCert {
    /// The certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_error(path: &Path, e: impl fmt::Display) -> TlsError {
    TlsError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| read_error(path, e))? {
        if certs.len() == MAX_PEM_CERTIFICATES {
            return Err(TlsError::TooManyCertificates {
                path: path.to_owned(),
            });
        }
        certs.push(cert.map_err(|e| read_error(path, e))?);
    }
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    // The error names the file and what went wrong, never the key's bytes.
    PrivateKeyDer::from_pem_file(path).map_err(|e| read_error(path, e))
}

fn load_crls(path: Option<&Path>) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    CertificateRevocationListDer::pem_file_iter(path)
        .map_err(|e| read_error(path, e))?
        .take(MAX_PEM_CERTIFICATES)
        .map(|crl| crl.map_err(|e| read_error(path, e)))
        .collect()
}

fn roots(ca_path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca_path)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::Certificate(format!("{}: {e}", ca_path.display())))?;
    }
    Ok(Arc::new(roots))
}

fn config_error(e: impl fmt::Display) -> TlsError {
    TlsError::Config(e.to_string())
}

/// The server configuration for `kind`. A node's ports require a client certificate from
/// the cluster CA, not revoked in `crls`, over TLS 1.3. The gateway's HTTPS makes it optional
/// (a merchant that cannot do mutual TLS sends an API key instead) but checks it the same way
/// when sent, and also speaks TLS 1.2 (the merchants' PHP and Java stacks), HTTP/1.1.
fn server_config(
    kind: ServerKind,
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .with_crls(crls)
        .only_check_end_entity_revocation();
    let (verifier, versions): (_, &[&rustls::SupportedProtocolVersion]) = match kind {
        ServerKind::Node => (verifier, &[&rustls::version::TLS13]),
        ServerKind::Gateway => (
            verifier.allow_unauthenticated(),
            &[&rustls::version::TLS13, &rustls::version::TLS12],
        ),
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(config_error)?
        .with_client_cert_verifier(verifier.build().map_err(config_error)?)
        .with_single_cert(chain, key)
        .map_err(config_error)?;
    if kind == ServerKind::Gateway {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Ok(Arc::new(config))
}

/// A client presenting `chain` that trusts only the cluster CA (and, for a node's Raft
/// connections, refuses peers revoked in `crls`).
fn client_config(
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    crls: Vec<CertificateRevocationListDer<'static>>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
        .with_crls(crls)
        .only_check_end_entity_revocation()
        .build()
        .map_err(config_error)?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_error)?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(config_error)?;
    Ok(Arc::new(config))
}

/// A client that trusts only the CA in `ca_path` and presents no certificate (TLS 1.2 and
/// 1.3): how a caller with an API key reaches the gateway.
pub fn trusting_client_config(ca_path: &Path) -> Result<ClientConfig, TlsError> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_root_certificates(roots(ca_path)?)
        .with_no_client_auth())
}

/// The serials a CRL file revokes (its signature is checked by the verifier that uses it).
fn revoked_serials(
    crls: &[CertificateRevocationListDer<'static>],
) -> Result<BTreeSet<Serial>, TlsError> {
    let mut serials = BTreeSet::new();
    for crl in crls {
        let (_, parsed) = x509_parser::parse_x509_crl(crl)
            .map_err(|e| TlsError::Certificate(format!("revocation list: {e}")))?;
        serials.extend(
            parsed
                .iter_revoked_certificates()
                .map(|r| Serial::from_bytes(r.raw_serial())),
        );
    }
    Ok(serials)
}

/// The configurations built from one reading of a node's files.
struct NodeTrust {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    revoked: Arc<BTreeSet<Serial>>,
}

/// Which server a [`NodeTls`] is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// A payment node's Raft and client ports: a client certificate is required, TLS 1.3.
    Node,
    /// The HTTP/JSON gateway: a client certificate is optional, TLS 1.2 and 1.3.
    Gateway,
}

impl NodeTrust {
    fn load(
        files: &TlsFiles,
        kind: ServerKind,
        serving: Option<&ServingCert>,
    ) -> Result<NodeTrust, TlsError> {
        let roots = roots(&files.ca)?;
        let chain = load_certs(&files.cert)?;
        let own = peer_identity(&chain[0])?;
        let (role, ok) = match kind {
            ServerKind::Node => ("node", matches!(own.principal, Principal::Node { .. })),
            ServerKind::Gateway => (
                "gateway",
                matches!(own.principal, Principal::Gateway { .. }),
            ),
        };
        if !ok {
            return Err(TlsError::Certificate(format!(
                "{} is a {} certificate; a {role} needs a {role} certificate",
                files.cert.display(),
                own.principal.role()
            )));
        }
        let key = load_key(&files.key)?;
        let crls = load_crls(files.crl.as_deref())?;
        let (served_chain, served_key) = match serving {
            Some(s) => (load_certs(&s.cert)?, load_key(&s.key)?),
            None => (chain.clone(), key.clone_key()),
        };
        Ok(NodeTrust {
            server: server_config(kind, roots.clone(), served_chain, served_key, crls.clone())?,
            client: client_config(roots, chain, key, crls.clone())?,
            revoked: Arc::new(revoked_serials(&crls)?),
        })
    }
}

/// A node's TLS (or the gateway's): the server configuration its ports accept with, the
/// client configuration its outgoing connections present, and the revoked serials. `reload`
/// re-reads the files (the CRL after a revocation): new handshakes use the new trust at
/// once, and `revoked` tells open connections to check their serial.
pub struct NodeTls {
    files: TlsFiles,
    kind: ServerKind,
    serving: Option<ServingCert>,
    current: RwLock<(Arc<ServerConfig>, Arc<ClientConfig>)>,
    revoked: watch::Sender<Arc<BTreeSet<Serial>>>,
}

impl NodeTls {
    /// A payment node's TLS: `files.cert` must name a node.
    pub fn load(files: TlsFiles) -> Result<NodeTls, TlsError> {
        NodeTls::load_for(files, ServerKind::Node)
    }

    /// The TLS of a server of `kind` (its certificate must name that role).
    pub fn load_for(files: TlsFiles, kind: ServerKind) -> Result<NodeTls, TlsError> {
        NodeTls::load_serving(files, kind, None)
    }

    /// The gateway's TLS: `files` as for `load_for`, and, if given, `serving` presented to
    /// its HTTPS callers instead of `files.cert` (re-read on `reload` too).
    pub fn load_gateway(
        files: TlsFiles,
        serving: Option<ServingCert>,
    ) -> Result<NodeTls, TlsError> {
        NodeTls::load_serving(files, ServerKind::Gateway, serving)
    }

    fn load_serving(
        files: TlsFiles,
        kind: ServerKind,
        serving: Option<ServingCert>,
    ) -> Result<NodeTls, TlsError> {
        let trust = NodeTrust::load(&files, kind, serving.as_ref())?;
        Ok(NodeTls {
            files,
            kind,
            serving,
            current: RwLock::new((trust.server, trust.client)),
            revoked: watch::Sender::new(trust.revoked),
        })
    }

    /// Re-reads every file. On an error the trust in force stays unchanged.
    /// Returns the number of revoked serials now in force.
    pub fn reload(&self) -> Result<usize, TlsError> {
        let trust = NodeTrust::load(&self.files, self.kind, self.serving.as_ref())?;
        *self.current.write().expect("TLS lock poisoned") = (trust.server, trust.client);
        let count = trust.revoked.len();
        self.revoked.send_replace(trust.revoked);
        Ok(count)
    }

    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current.read().expect("TLS lock poisoned").0.clone()
    }

    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.current.read().expect("TLS lock poisoned").1.clone()
    }

    /// The revoked serials, updated on each `reload`.
    pub fn revoked(&self) -> watch::Receiver<Arc<BTreeSet<Serial>>> {
        self.revoked.subscribe()
    }

    /// Resolves once `serial` is revoked (already, or by a later `reload`): a server races
    /// each connection against it to cut connections whose certificate was revoked.
    pub fn until_revoked(&self, serial: Serial) -> impl std::future::Future<Output = ()> + Send {
        let mut revoked = self.revoked.subscribe();
        async move {
            loop {
                if revoked.borrow_and_update().contains(&serial) {
                    return;
                }
                if revoked.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

/// A client's identity: its certificate and key, and the cluster CA it trusts.
#[derive(Clone)]
pub struct TlsIdentity {
    cert: PathBuf,
    principal: Principal,
    config: Arc<ClientConfig>,
}

impl TlsIdentity {
    /// Loads the CA certificate, this client's certificate (chain) and its key.
    pub fn load(ca: &Path, cert: &Path, key: &Path) -> Result<TlsIdentity, TlsError> {
        let chain = load_certs(cert)?;
        let principal = peer_identity(&chain[0])?.principal;
        let config = client_config(roots(ca)?, chain, load_key(key)?, Vec::new())?;
        Ok(TlsIdentity {
            cert: cert.to_owned(),
            principal,
            config,
        })
    }

    /// Whom the certificate names.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }
}

impl fmt::Debug for TlsIdentity {
    // The key never appears; the certificate's file and principal say which identity it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert", &self.cert)
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

/// The principal and serial of a certificate (DER): exactly one SAN URI `ledger:...`.
pub fn peer_identity(cert_der: &[u8]) -> Result<PeerIdentity, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| TlsError::Certificate(format!("unreadable certificate: {e}")))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| TlsError::Certificate(format!("unreadable subject alternative names: {e}")))?;
    let mut uris = san
        .into_iter()
        .flat_map(|san| san.value.general_names.iter())
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .filter(|uri| uri.starts_with(crate::principal::PRINCIPAL_URI_SCHEME));
    let uri = uris.next().ok_or(PrincipalError::Missing)?;
    if uris.next().is_some() {
        return Err(PrincipalError::Ambiguous.into());
    }
    Ok(PeerIdentity {
        principal: Principal::from_uri(uri)?,
        serial: Serial::from_bytes(cert.raw_serial()),
    })
}

/// A TLS failure in plain words: what the peer objected to, or what we objected to in the
/// node's certificate. `None` when `error` is not a TLS error.
pub fn explain(error: &std::io::Error) -> Option<String> {
    let tls = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(explain_rustls(tls))
}

/// [`explain`] for a rustls error.
pub fn explain_rustls(error: &rustls::Error) -> String {
    use rustls::{AlertDescription as Alert, CertificateError as Cert, Error};
    let refused = |why: &str| format!("the node refused this client certificate: {why}");
    let bad_node = |why: &str| format!("the node's certificate is not acceptable: {why}");
    match error {
        Error::AlertReceived(Alert::UnknownCA) => {
            refused("unknown CA (it is not signed by the cluster's CA)")
        }
        Error::AlertReceived(Alert::DecryptError) => refused(
            "bad signature (not signed by the cluster's CA, or the key does not match the certificate)",
        ),
        Error::AlertReceived(Alert::CertificateExpired) => refused("certificate expired"),
        Error::AlertReceived(Alert::CertificateRevoked) => refused("certificate revoked"),
        Error::AlertReceived(Alert::BadCertificate | Alert::UnsupportedCertificate) => {
            refused("bad certificate")
        }
        Error::AlertReceived(Alert::CertificateRequired) => {
            "the node requires a client certificate".into()
        }
        Error::AlertReceived(Alert::ProtocolVersion) => {
            "the node speaks only TLS 1.3 (protocol version refused)".into()
        }
        Error::AlertReceived(alert) => format!("the node ended the TLS handshake: {alert:?}"),
        Error::InvalidCertificate(Cert::UnknownIssuer) => {
            bad_node("unknown CA (it is not signed by the CA this client trusts)")
        }
        Error::InvalidCertificate(Cert::Expired | Cert::ExpiredContext { .. }) => {
            bad_node("certificate expired")
        }
        Error::InvalidCertificate(Cert::NotValidYet | Cert::NotValidYetContext { .. }) => {
            bad_node("certificate not valid yet")
        }
        Error::InvalidCertificate(Cert::Revoked) => bad_node("certificate revoked"),
        Error::InvalidCertificate(Cert::NotValidForName | Cert::NotValidForNameContext { .. }) => {
            bad_node(&format!("bad certificate (not issued for `{NODE_SERVER_NAME}`)"))
        }
        Error::InvalidCertificate(other) => bad_node(&format!("bad certificate ({other:?})")),
        Error::NoCertificatesPresented => "the peer presented no certificate".into(),
        other => format!("TLS: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Ca, Validity};
    use crate::principal::Role;

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[test]
    fn a_certificate_names_its_principal_and_serial() {
        let ca = Ca::create().unwrap();
        for principal in [
            Principal::new(Role::Merchant, "42").unwrap(),
            Principal::new(Role::Operator, "alice").unwrap(),
            Principal::new(Role::Node, "3").unwrap(),
        ] {
            let issued = ca.issue(&principal, Validity::days(1)).unwrap();
            let peer = peer_identity(&der(&issued.cert_pem)).unwrap();
            assert_eq!(peer.principal, principal);
            assert_eq!(peer.serial, issued.serial);
        }
    }

    #[test]
    fn a_certificate_without_exactly_one_principal_is_refused() {
        let ca = Ca::create().unwrap();
        let none = ca.issue_with_uris(&[], Validity::days(1)).unwrap();
        assert!(matches!(
            peer_identity(&der(&none)),
            Err(TlsError::Principal(PrincipalError::Missing))
        ));
        let two = ca
            .issue_with_uris(
                &["ledger:merchant:1", "ledger:merchant:2"],
                Validity::days(1),
            )
            .unwrap();
        assert!(matches!(
            peer_identity(&der(&two)),
            Err(TlsError::Principal(PrincipalError::Ambiguous))
        ));
        let bad = ca
            .issue_with_uris(&["ledger:king:arthur"], Validity::days(1))
            .unwrap();
        assert!(matches!(
            peer_identity(&der(&bad)),
            Err(TlsError::Principal(PrincipalError::UnknownRole(_)))
        ));
    }

    #[test]
    fn serials_print_and_parse_as_hex_without_leading_zeros() {
        let s = Serial::from_bytes(&[0, 0x0a, 0xff]);
        assert_eq!(s.to_string(), "0aff");
        assert_eq!(Serial::from_hex("000aff"), Some(s));
        assert_eq!(Serial::from_hex("xyz"), None);
    }
}
