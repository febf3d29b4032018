//! The node's configuration: one loader for a TOML file, environment variables and flags
//! (flags win over the environment, which wins over the file, which wins over defaults).

use clap::{Args, ValueEnum};
use ledger_core::config::LedgerConfig;
use ledger_core::intake::{SecretKeys, PASSWORD_ITERATIONS};
use ledger_wire::api::NodeInfo;
use ledger_wire::tls::TlsFiles;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// `ledger-node run` settings as flags and environment variables; every one may also come
/// from the TOML file given with `--config`.
#[derive(Args, Debug, Default)]
pub struct RunArgs {
    /// TOML file with any of the settings below (flag names with `_` for `-`).
    #[arg(long, env = "LEDGER_CONFIG")]
    pub config: Option<PathBuf>,
    /// This node's id, unique in the cluster (1 or more).
    #[arg(long, env = "LEDGER_NODE_ID")]
    pub id: Option<u64>,
    /// Address for Raft traffic from the other nodes.
    #[arg(long, env = "LEDGER_RAFT_ADDR")]
    pub raft_addr: Option<SocketAddr>,
    /// Address for clients (merchants, ledgerctl).
    #[arg(long, env = "LEDGER_CLIENT_ADDR")]
    pub client_addr: Option<SocketAddr>,
    /// Address of the admin HTTP port (/health, /ready, /metrics).
    #[arg(long, env = "LEDGER_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,
    /// Where this node keeps its database, snapshots and SMS outbox.
    #[arg(long, env = "LEDGER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// A member of the initial cluster, `ID=RAFT_ADDR,CLIENT_ADDR` (each IP:PORT or
    /// HOST:PORT); repeat for each (this node included). Used with `--init`.
    #[arg(long = "peer", env = "LEDGER_PEERS", value_delimiter = ';')]
    pub peers: Vec<String>,
    /// Initialise the cluster with `--peer` members on start, unless already initialised.
    #[arg(long, env = "LEDGER_INIT")]
    pub init: bool,
    /// File holding the cluster's master secret (at least 32 bytes; the same on every node).
    #[arg(long, env = "LEDGER_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// PBKDF2 rounds for new card password hashes.
    #[arg(long, env = "LEDGER_PASSWORD_ITERATIONS")]
    pub password_iterations: Option<u32>,
    /// Bank cap per e-Pay payment, in fen (used at cluster initialisation).
    #[arg(long, env = "LEDGER_EPAY_CAP_PER_PAYMENT_FEN")]
    pub epay_cap_per_payment_fen: Option<u64>,
    /// Bank cap per e-Pay day (China Standard Time), in fen (used at initialisation).
    #[arg(long, env = "LEDGER_EPAY_CAP_PER_DAY_FEN")]
    pub epay_cap_per_day_fen: Option<u64>,
    /// Cap on what one card may pay at terminals (card-present) per China Standard Time
    /// day, in fen (at initialisation; default 5000000, 50,000 yuan).
    #[arg(long, env = "LEDGER_CARD_PRESENT_CAP_PER_DAY_FEN")]
    pub card_present_cap_per_day_fen: Option<u64>,
    /// How long an OTP code may be answered, in milliseconds; a pending payment expires
    /// with its code (at initialisation; default 300000, five minutes).
    #[arg(long, env = "LEDGER_OTP_EXPIRY_MS")]
    pub otp_expiry_ms: Option<u64>,
    /// SMS gateway: `exec:PROGRAM` hands each message, as JSON on standard input, to a
    /// program that sends it; `dev` writes messages (codes in clear) to `sms-outbox.jsonl` in
    /// the data directory and to standard output, and needs --allow-dev-sms.
    #[arg(long, env = "LEDGER_SMS")]
    pub sms: Option<String>,
    /// Accept the `dev` SMS gateway outside `ledger-node dev` (tests, demos; never production).
    #[arg(long, env = "LEDGER_ALLOW_DEV_SMS")]
    pub allow_dev_sms: bool,
    /// A PEM file of CAs trusted for merchants' https webhooks besides the system's trust
    /// store (a bank's own CA).
    #[arg(long, env = "LEDGER_WEBHOOK_CA")]
    pub webhook_ca: Option<PathBuf>,
    /// Also deliver webhooks to plain `http://` URLs (development, tests; by default only
    /// https is posted to, and an http webhook's events wait, counted as failed deliveries).
    #[arg(long, env = "LEDGER_WEBHOOK_PLAIN_HTTP")]
    pub webhook_plain_http: bool,
    /// How long an undelivered webhook event is retried before it is given up on, in
    /// milliseconds (at initialisation; default 259200000, three days).
    #[arg(long, env = "LEDGER_EVENT_RETRY_MS")]
    pub event_retry_ms: Option<u64>,
    /// Undelivered events one merchant may have before its webhook is marked failing and
    /// pushing pauses (at initialisation; default 10000).
    #[arg(long, env = "LEDGER_MAX_UNDELIVERED_EVENTS")]
    pub max_undelivered_events: Option<u64>,
    /// How long journal rows are kept, in milliseconds of ledger time; older ones are
    /// compacted away (at initialisation; default 34560000000, 400 days).
    #[arg(long, env = "LEDGER_JOURNAL_RETENTION_MS")]
    pub journal_retention_ms: Option<u64>,
    /// How long a payment event is kept once no webhook delivery waits for it, in
    /// milliseconds (at initialisation; default 604800000, seven days).
    #[arg(long, env = "LEDGER_EVENT_RETENTION_MS")]
    pub event_retention_ms: Option<u64>,
    /// How long an ended payment is kept from its creation, in milliseconds; older ones are
    /// compacted away with their challenge and can no longer be read or refunded (at
    /// initialisation; default 34560000000, 400 days).
    #[arg(long, env = "LEDGER_PAYMENT_RETENTION_MS")]
    pub payment_retention_ms: Option<u64>,
    /// sled page cache in MiB.
    #[arg(long, env = "LEDGER_CACHE_MB")]
    pub cache_mb: Option<u64>,
    /// Free space, in MiB, the filesystem of the node's database (DATA_DIR/sled) must keep:
    /// below it the node, when leader, refuses client writes (DiskFull, retryable; reads go
    /// on) until space returns (default 256).
    #[arg(long, env = "LEDGER_MIN_FREE_DISK_MIB")]
    pub min_free_disk_mib: Option<u64>,
    /// Log format.
    #[arg(long, env = "LEDGER_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Build a snapshot (and purge the log behind it) every this many log entries.
    #[arg(long, env = "LEDGER_SNAPSHOT_EVERY")]
    pub snapshot_every: Option<u64>,
    #[command(flatten)]
    pub raft_timing: RaftTimingArgs,
    /// Most OTP codes sent to one reserved phone per --otp-throttle-window-ms of ledger time
    /// (at initialisation; default 5, against SMS pumping).
    #[arg(long, env = "LEDGER_OTP_CODES_PER_PHONE")]
    pub otp_codes_per_phone: Option<u32>,
    /// The OTP throttle's sliding window in milliseconds (at initialisation; default
    /// 600000, ten minutes).
    #[arg(long, env = "LEDGER_OTP_THROTTLE_WINDOW_MS")]
    pub otp_throttle_window_ms: Option<u64>,
    /// The cluster CA's certificate (PEM): peers and clients must present a certificate it
    /// signed. With --tls-cert and --tls-key; `[tls] ca` in the --config file.
    #[arg(long, env = "LEDGER_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// This node's certificate (PEM), naming `ledger:node:<id>` and `ledger-node`.
    #[arg(long, env = "LEDGER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// This node's private key (PEM).
    #[arg(long, env = "LEDGER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// The CA's certificate revocation list (PEM); re-read on SIGHUP.
    #[arg(long, env = "LEDGER_TLS_CRL")]
    pub tls_crl: Option<PathBuf>,
    /// An operator certificate (PEM) the node uses to initialise the cluster with --init.
    #[arg(long, env = "LEDGER_TLS_INIT_CERT")]
    pub tls_init_cert: Option<PathBuf>,
    /// The key of --tls-init-cert.
    #[arg(long, env = "LEDGER_TLS_INIT_KEY")]
    pub tls_init_key: Option<PathBuf>,
    /// Serve both ports without TLS, every client as an operator. Allowed only when the
    /// Raft and client addresses are loopback (development, tests). `[tls]
    /// insecure_plaintext = true` in the --config file.
    #[arg(long, env = "LEDGER_INSECURE_PLAINTEXT")]
    pub insecure_plaintext: bool,
    /// TEST ONLY, breaks linearizability: answer linearizable reads from this node's local
    /// state without confirming leadership. The chaos harness uses it to prove its checkers
    /// catch stale reads. Flag only (not in the --config file).
    #[arg(long, hide = true)]
    pub unsafe_local_reads: bool,
}

/// The same settings in a TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    id: Option<u64>,
    raft_addr: Option<SocketAddr>,
    client_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    peers: Option<Vec<String>>,
    init: Option<bool>,
    master_key_file: Option<PathBuf>,
    password_iterations: Option<u32>,
    epay_cap_per_payment_fen: Option<u64>,
    epay_cap_per_day_fen: Option<u64>,
    card_present_cap_per_day_fen: Option<u64>,
    otp_expiry_ms: Option<u64>,
    sms: Option<String>,
    allow_dev_sms: Option<bool>,
    webhook_ca: Option<PathBuf>,
    webhook_plain_http: Option<bool>,
    event_retry_ms: Option<u64>,
    max_undelivered_events: Option<u64>,
    journal_retention_ms: Option<u64>,
    event_retention_ms: Option<u64>,
    payment_retention_ms: Option<u64>,
    cache_mb: Option<u64>,
    min_free_disk_mib: Option<u64>,
    log_format: Option<LogFormat>,
    snapshot_every: Option<u64>,
    heartbeat_ms: Option<u64>,
    election_timeout_min_ms: Option<u64>,
    election_timeout_max_ms: Option<u64>,
    otp_codes_per_phone: Option<u32>,
    otp_throttle_window_ms: Option<u64>,
    tls: Option<FileTls>,
}

/// The `[tls]` section of the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    crl: Option<PathBuf>,
    init_cert: Option<PathBuf>,
    init_key: Option<PathBuf>,
    insecure_plaintext: Option<bool>,
}

/// How the node's Raft and client ports are secured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortSecurity {
    /// Mutual TLS: `files` for both ports; `init_identity` (certificate and key of an
    /// operator) for `--init`, which initialises the cluster through the client port.
    Tls {
        files: TlsFiles,
        init_identity: Option<(PathBuf, PathBuf)>,
    },
    /// No TLS, on loopback addresses only; every client is an operator.
    InsecurePlaintext,
}

/// A complete, checked node configuration.
#[derive(Debug)]
pub struct NodeConfig {
    pub id: u64,
    pub raft_addr: SocketAddr,
    pub client_addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub peers: Vec<NodeInfo>,
    pub init: bool,
    pub master_key_file: PathBuf,
    pub password_iterations: u32,
    pub ledger: LedgerConfig,
    pub sms: String,
    /// Extra CAs for https webhooks (`--webhook-ca`).
    pub webhook_ca: Option<PathBuf>,
    /// Whether http:// webhooks are posted to (`--webhook-plain-http`).
    pub webhook_plain_http: bool,
    pub cache_bytes: u64,
    /// Free space the database's filesystem must keep before client writes are refused.
    pub min_free_disk_bytes: u64,
    pub log_format: LogFormat,
    /// Log entries between snapshots.
    pub snapshot_every: u64,
    /// Heartbeats and election timeouts.
    pub raft_timing: RaftTiming,
    /// TLS on both ports, or explicitly none.
    pub security: PortSecurity,
    /// TEST ONLY (`--unsafe-local-reads`).
    pub unsafe_local_reads: bool,
}

/// Log entries between snapshots unless configured.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 10_000;

/// The Raft timing flags, shared by `ledger-node run` (where the --config file may set them
/// too) and `ledger-node dev`.
#[derive(Args, Clone, Debug, Default)]
pub struct RaftTimingArgs {
    /// How often the leader sends heartbeats, in ms (default 200). It is also openraft's
    /// deadline for one AppendEntries call, a follower's fsync included.
    #[arg(long, env = "LEDGER_HEARTBEAT_MS")]
    pub heartbeat_ms: Option<u64>,
    /// Shortest election timeout, in ms (default 1000): at least 3 heartbeats.
    #[arg(long, env = "LEDGER_ELECTION_TIMEOUT_MIN_MS")]
    pub election_timeout_min_ms: Option<u64>,
    /// Longest election timeout, in ms (default 2000), above the shortest. It is also the
    /// leader's lease: a follower that heard from its leader within it refuses to vote, so
    /// a dead leader is replaced about this long plus one election timeout after its last
    /// heartbeat.
    #[arg(long, env = "LEDGER_ELECTION_TIMEOUT_MAX_MS")]
    pub election_timeout_max_ms: Option<u64>,
}

/// How often a leader sends heartbeats and how long a follower waits without one before it
/// stands for election, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaftTiming {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
}

/// Shortest heartbeat interval accepted: below it a TLS round trip and a follower's fsync
/// miss openraft's AppendEntries deadline (the heartbeat interval) even on an idle machine.
pub const MIN_HEARTBEAT_MS: u64 = 20;
/// Heartbeats an election timeout must span at least, so that a follower stands for
/// election only after missing more than two of them.
pub const MIN_HEARTBEATS_PER_ELECTION_TIMEOUT: u64 = 3;
/// Longest election timeout accepted: past it a dead leader goes unnoticed for minutes.
pub const MAX_ELECTION_TIMEOUT_MS: u64 = 60_000;

impl Default for RaftTiming {
    /// The node's defaults, which `node::default_raft_config` applies.
    fn default() -> Self {
        RaftTiming {
            heartbeat_ms: 200,
            election_timeout_min_ms: 1_000,
            election_timeout_max_ms: 2_000,
        }
    }
}

impl RaftTiming {
    /// Flags (or environment) over the file's settings over the defaults, checked.
    fn resolve(flags: &RaftTimingArgs, file: &RaftTimingArgs) -> Result<Self, ConfigError> {
        let default = RaftTiming::default();
        let pick = |flag: Option<u64>, file: Option<u64>, default| flag.or(file).unwrap_or(default);
        RaftTiming {
            heartbeat_ms: pick(flags.heartbeat_ms, file.heartbeat_ms, default.heartbeat_ms),
            election_timeout_min_ms: pick(
                flags.election_timeout_min_ms,
                file.election_timeout_min_ms,
                default.election_timeout_min_ms,
            ),
            election_timeout_max_ms: pick(
                flags.election_timeout_max_ms,
                file.election_timeout_max_ms,
                default.election_timeout_max_ms,
            ),
        }
        .checked()
    }

    /// The timing of `ledger-node dev` (flags only).
    pub fn from_args(flags: &RaftTimingArgs) -> Result<Self, ConfigError> {
        Self::resolve(flags, &RaftTimingArgs::default())
    }

    /// Itself if every limit holds, else which one it breaks.
    pub fn checked(self) -> Result<Self, ConfigError> {
        let bad = |reason| {
            Err(ConfigError::RaftTiming {
                timing: self,
                reason,
            })
        };
        if self.heartbeat_ms < MIN_HEARTBEAT_MS {
            return bad(format!(
                "the heartbeat interval is below MIN_HEARTBEAT_MS ({MIN_HEARTBEAT_MS} ms)"
            ));
        }
        if self.election_timeout_min_ms < MIN_HEARTBEATS_PER_ELECTION_TIMEOUT * self.heartbeat_ms {
            return bad(format!(
                "the shortest election timeout spans fewer than \
                 {MIN_HEARTBEATS_PER_ELECTION_TIMEOUT} heartbeats"
            ));
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            return bad("the longest election timeout is not above the shortest".to_owned());
        }
        if self.election_timeout_max_ms > MAX_ELECTION_TIMEOUT_MS {
            return bad(format!(
                "the longest election timeout is above MAX_ELECTION_TIMEOUT_MS \
                 ({MAX_ELECTION_TIMEOUT_MS} ms)"
            ));
        }
        Ok(self)
    }

    /// `config` with this timing.
    pub fn apply(&self, config: openraft::Config) -> openraft::Config {
        openraft::Config {
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            ..config
        }
    }
}

/// What is wrong with a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("missing setting `{0}` (flag --{1}, or in the --config file)")]
    Missing(&'static str, &'static str),
    #[error(
        "bad peer `{0}`: expected ID=RAFT_ADDR,CLIENT_ADDR, each address IP:PORT or HOST:PORT"
    )]
    BadPeer(String),
    #[error("unknown SMS gateway `{0}`: use `exec:PROGRAM`, or `dev` with --allow-dev-sms")]
    BadSms(String),
    #[error("the `dev` SMS gateway writes OTP codes in clear to disk; pass --allow-dev-sms if this is not production, or use `exec:PROGRAM`")]
    DevSmsNotAllowed,
    #[error("no TLS configured: set [tls] ca, cert and key (flags --tls-ca, --tls-cert, --tls-key), or insecure_plaintext = true on loopback addresses")]
    NoTls,
    #[error("[tls] insecure_plaintext is allowed only on loopback addresses, and {0} is not one; configure ca, cert and key")]
    PlaintextNotLoopback(SocketAddr),
    #[error("[tls] has both insecure_plaintext and certificates; choose one")]
    TlsAndPlaintext,
    #[error("[tls] init_cert and init_key go together")]
    InitIdentityHalf,
    #[error("master key file {path}: {reason}")]
    MasterKey { path: PathBuf, reason: String },
    #[error(
        "Raft timing (heartbeat {} ms, election timeout {}..{} ms): {reason}",
        timing.heartbeat_ms,
        timing.election_timeout_min_ms,
        timing.election_timeout_max_ms
    )]
    RaftTiming { timing: RaftTiming, reason: String },
}

/// Parses `ID=RAFT_ADDR,CLIENT_ADDR`; each address is `IP:PORT` or `HOST:PORT` (a DNS name,
/// looked up at each connection: a Kubernetes pod's stable name whose address changes).
pub fn parse_peer(text: &str) -> Result<NodeInfo, ConfigError> {
    let bad = || ConfigError::BadPeer(text.to_owned());
    let (id, addrs) = text.split_once('=').ok_or_else(bad)?;
    let (raft, client) = addrs.split_once(',').ok_or_else(bad)?;
    Ok(NodeInfo {
        id: id.trim().parse().map_err(|_| bad())?,
        raft_addr: peer_addr(raft).ok_or_else(bad)?,
        client_addr: peer_addr(client).ok_or_else(bad)?,
    })
}

/// Longest DNS name a peer address may carry.
const MAX_HOST_NAME_BYTES: usize = 253;

/// `IP:PORT` in its canonical form, or `HOST:PORT` with a well-formed DNS name (lower case).
fn peer_addr(text: &str) -> Option<String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.to_string());
    }
    let (host, port) = text.rsplit_once(':')?;
    port.parse::<u16>().ok().filter(|p| *p != 0)?;
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let name_ok = host.len() <= MAX_HOST_NAME_BYTES
        && host.split('.').all(label_ok)
        // A dotted quad that did not parse as an address is a typo, not a name.
        && !host.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit()));
    name_ok.then(|| format!("{}:{port}", host.to_ascii_lowercase()))
}

impl RunArgs {
    /// Merges flags and environment over the file over defaults, and checks the result.
    pub fn resolve(self) -> Result<NodeConfig, ConfigError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source,
                })?
            }
            None => FileConfig::default(),
        };
        let data_dir = self
            .data_dir
            .or(file.data_dir)
            .ok_or(ConfigError::Missing("data_dir", "data-dir"))?;
        let peers = if self.peers.is_empty() {
            file.peers.unwrap_or_default()
        } else {
            self.peers
        };
        let mut ledger = LedgerConfig::default();
        if let Some(cap) = self
            .epay_cap_per_payment_fen
            .or(file.epay_cap_per_payment_fen)
        {
            ledger.epay_cap_fen_per_payment = cap;
        }
        if let Some(cap) = self.epay_cap_per_day_fen.or(file.epay_cap_per_day_fen) {
            ledger.epay_cap_fen_per_day = cap;
        }
        if let Some(cap) = self
            .card_present_cap_per_day_fen
            .or(file.card_present_cap_per_day_fen)
        {
            ledger.card_present_cap_fen_per_day = cap;
        }
        if let Some(ms) = self.otp_expiry_ms.or(file.otp_expiry_ms) {
            ledger.otp_expiry_ms = ms;
        }
        if let Some(n) = self.otp_codes_per_phone.or(file.otp_codes_per_phone) {
            ledger.otp_challenges_per_phone = n;
        }
        if let Some(ms) = self.otp_throttle_window_ms.or(file.otp_throttle_window_ms) {
            ledger.otp_throttle_window_ms = ms;
        }
        if let Some(ms) = self.event_retry_ms.or(file.event_retry_ms) {
            ledger.event_retry_ms = ms;
        }
        if let Some(n) = self.max_undelivered_events.or(file.max_undelivered_events) {
            ledger.max_undelivered_events = n;
        }
        if let Some(ms) = self.journal_retention_ms.or(file.journal_retention_ms) {
            ledger.journal_retention_ms = ms;
        }
        if let Some(ms) = self.event_retention_ms.or(file.event_retention_ms) {
            ledger.event_retention_ms = ms;
        }
        if let Some(ms) = self.payment_retention_ms.or(file.payment_retention_ms) {
            ledger.payment_retention_ms = ms;
        }
        let sms = self
            .sms
            .or(file.sms)
            .ok_or(ConfigError::Missing("sms", "sms"))?;
        let allow_dev_sms = self.allow_dev_sms || file.allow_dev_sms.unwrap_or(false);
        match sms.as_str() {
            "dev" if !allow_dev_sms => return Err(ConfigError::DevSmsNotAllowed),
            "dev" => {}
            s if s.starts_with("exec:") && s.len() > 5 => {}
            _ => return Err(ConfigError::BadSms(sms)),
        }
        let raft_addr = self
            .raft_addr
            .or(file.raft_addr)
            .ok_or(ConfigError::Missing("raft_addr", "raft-addr"))?;
        let client_addr = self
            .client_addr
            .or(file.client_addr)
            .ok_or(ConfigError::Missing("client_addr", "client-addr"))?;
        let file_tls = file.tls.unwrap_or_default();
        let security = port_security(
            TlsSettings {
                ca: self.tls_ca.or(file_tls.ca),
                cert: self.tls_cert.or(file_tls.cert),
                key: self.tls_key.or(file_tls.key),
                crl: self.tls_crl.or(file_tls.crl),
                init_cert: self.tls_init_cert.or(file_tls.init_cert),
                init_key: self.tls_init_key.or(file_tls.init_key),
                insecure_plaintext: self.insecure_plaintext
                    || file_tls.insecure_plaintext.unwrap_or(false),
            },
            [raft_addr, client_addr],
        )?;
        Ok(NodeConfig {
            id: self
                .id
                .or(file.id)
                .ok_or(ConfigError::Missing("id", "id"))?,
            raft_addr,
            client_addr,
            admin_addr: self.admin_addr.or(file.admin_addr),
            master_key_file: self
                .master_key_file
                .or(file.master_key_file)
                .ok_or(ConfigError::Missing("master_key_file", "master-key-file"))?,
            data_dir,
            peers: peers
                .iter()
                .map(|p| parse_peer(p))
                .collect::<Result<_, _>>()?,
            init: self.init || file.init.unwrap_or(false),
            password_iterations: self
                .password_iterations
                .or(file.password_iterations)
                .unwrap_or(PASSWORD_ITERATIONS),
            ledger,
            sms,
            webhook_ca: self.webhook_ca.or(file.webhook_ca),
            webhook_plain_http: self.webhook_plain_http || file.webhook_plain_http.unwrap_or(false),
            cache_bytes: self.cache_mb.or(file.cache_mb).unwrap_or(256) * 1024 * 1024,
            min_free_disk_bytes: self
                .min_free_disk_mib
                .or(file.min_free_disk_mib)
                .unwrap_or(crate::disk::DEFAULT_MIN_FREE_DISK_MIB)
                .saturating_mul(1024 * 1024),
            log_format: self
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Human),
            snapshot_every: self
                .snapshot_every
                .or(file.snapshot_every)
                .unwrap_or(DEFAULT_SNAPSHOT_EVERY)
                .max(1),
            raft_timing: RaftTiming::resolve(
                &self.raft_timing,
                &RaftTimingArgs {
                    heartbeat_ms: file.heartbeat_ms,
                    election_timeout_min_ms: file.election_timeout_min_ms,
                    election_timeout_max_ms: file.election_timeout_max_ms,
                },
            )?,
            security,
            unsafe_local_reads: self.unsafe_local_reads,
        })
    }
}

/// The TLS settings, merged from flags and file.
struct TlsSettings {
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    crl: Option<PathBuf>,
    init_cert: Option<PathBuf>,
    init_key: Option<PathBuf>,
    insecure_plaintext: bool,
}

/// TLS with all three files, or plaintext asked for explicitly and only on loopback
/// addresses: a node never falls back to plaintext because a setting is missing.
fn port_security(tls: TlsSettings, listen: [SocketAddr; 2]) -> Result<PortSecurity, ConfigError> {
    let any_file = tls.ca.is_some() || tls.cert.is_some() || tls.key.is_some();
    if tls.insecure_plaintext {
        if any_file {
            return Err(ConfigError::TlsAndPlaintext);
        }
        if let Some(addr) = listen.into_iter().find(|a| !a.ip().is_loopback()) {
            return Err(ConfigError::PlaintextNotLoopback(addr));
        }
        return Ok(PortSecurity::InsecurePlaintext);
    }
    let (Some(ca), Some(cert), Some(key)) = (tls.ca, tls.cert, tls.key) else {
        return Err(ConfigError::NoTls);
    };
    let init_identity = match (tls.init_cert, tls.init_key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => return Err(ConfigError::InitIdentityHalf),
    };
    Ok(PortSecurity::Tls {
        files: TlsFiles {
            ca,
            cert,
            key,
            crl: tls.crl,
        },
        init_identity,
    })
}

/// Smallest master secret accepted.
pub const MIN_MASTER_KEY_BYTES: usize = 32;

/// Reads the cluster's master secret and derives the keys from it.
pub fn load_keys(path: &Path, password_iterations: u32) -> Result<SecretKeys, ConfigError> {
    let bytes = std::fs::read(path).map_err(|e| ConfigError::MasterKey {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if bytes.len() < MIN_MASTER_KEY_BYTES {
        return Err(ConfigError::MasterKey {
            path: path.to_owned(),
            reason: format!(
                "{} bytes; at least {MIN_MASTER_KEY_BYTES} needed",
                bytes.len()
            ),
        });
    }
    Ok(SecretKeys::derive(&bytes, password_iterations))
}

/// Creates a master key file with fresh random bytes if none exists (development only).
pub fn ensure_dev_master_key(path: &Path) -> std::io::Result<()> {
    use rand::RngCore;
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    std::fs::write(path, key)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(sms: &str, allow_dev_sms: bool) -> RunArgs {
        RunArgs {
            id: Some(1),
            raft_addr: Some("127.0.0.1:7101".parse().unwrap()),
            client_addr: Some("127.0.0.1:7201".parse().unwrap()),
            data_dir: Some("/tmp/x".into()),
            master_key_file: Some("/tmp/x/key".into()),
            sms: Some(sms.into()),
            allow_dev_sms,
            insecure_plaintext: true,
            ..RunArgs::default()
        }
    }

    #[test]
    fn the_dev_sms_gateway_needs_an_explicit_allowance_outside_dev() {
        assert!(matches!(
            args("dev", false).resolve(),
            Err(ConfigError::DevSmsNotAllowed)
        ));
        assert_eq!(args("dev", true).resolve().unwrap().sms, "dev");
        assert_eq!(
            args("exec:/usr/local/bin/send", false)
                .resolve()
                .unwrap()
                .sms,
            "exec:/usr/local/bin/send"
        );
        assert!(matches!(
            args("carrier-pigeon", false).resolve(),
            Err(ConfigError::BadSms(_))
        ));
        assert!(matches!(
            args("exec:", false).resolve(),
            Err(ConfigError::BadSms(_))
        ));
    }

    #[test]
    fn plaintext_must_be_asked_for_and_stays_on_loopback() {
        let mut no_tls = args("dev", true);
        no_tls.insecure_plaintext = false;
        assert!(matches!(no_tls.resolve(), Err(ConfigError::NoTls)));
        assert_eq!(
            args("dev", true).resolve().unwrap().security,
            PortSecurity::InsecurePlaintext
        );
        let mut public = args("dev", true);
        public.client_addr = Some("10.0.0.1:7201".parse().unwrap());
        assert!(matches!(
            public.resolve(),
            Err(ConfigError::PlaintextNotLoopback(_))
        ));
        let mut tls = args("dev", true);
        tls.insecure_plaintext = false;
        tls.tls_ca = Some("/c/ca.crt".into());
        tls.tls_cert = Some("/c/node-1.crt".into());
        tls.tls_key = Some("/c/node-1.key".into());
        assert!(matches!(
            tls.resolve().unwrap().security,
            PortSecurity::Tls {
                init_identity: None,
                ..
            }
        ));
    }

    #[test]
    fn raft_timing_comes_from_flags_over_the_file_over_defaults_and_every_limit_is_checked() {
        assert_eq!(
            args("dev", true).resolve().unwrap().raft_timing,
            RaftTiming::default()
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            "heartbeat_ms = 100\nelection_timeout_min_ms = 400\nelection_timeout_max_ms = 600\n",
        )
        .unwrap();
        let mut from_file = args("dev", true);
        from_file.config = Some(file);
        from_file.raft_timing.election_timeout_max_ms = Some(700);
        let timing = from_file.resolve().unwrap().raft_timing;
        assert_eq!(
            (
                timing.heartbeat_ms,
                timing.election_timeout_min_ms,
                timing.election_timeout_max_ms
            ),
            (100, 400, 700)
        );
        let raft = timing.apply(openraft::Config::default());
        assert_eq!(
            (
                raft.heartbeat_interval,
                raft.election_timeout_min,
                raft.election_timeout_max
            ),
            (100, 400, 700)
        );
        raft.validate().expect("openraft accepts a checked timing");
        for (heartbeat_ms, min, max, reason) in [
            (19, 100, 200, "MIN_HEARTBEAT_MS"),
            (100, 299, 600, "fewer than 3 heartbeats"),
            (100, 400, 400, "not above the shortest"),
            (100, 400, 60_001, "MAX_ELECTION_TIMEOUT_MS"),
        ] {
            let mut bad = args("dev", true);
            bad.raft_timing = RaftTimingArgs {
                heartbeat_ms: Some(heartbeat_ms),
                election_timeout_min_ms: Some(min),
                election_timeout_max_ms: Some(max),
            };
            let error = bad.resolve().unwrap_err();
            assert!(
                matches!(&error, ConfigError::RaftTiming { reason: r, .. } if r.contains(reason)),
                "{heartbeat_ms} {min} {max}: {error}"
            );
        }
    }

    #[test]
    fn the_example_configuration_in_deploy_resolves_as_documented() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/node1.toml");
        let config = RunArgs {
            config: Some(example),
            ..RunArgs::default()
        }
        .resolve()
        .expect("deploy/node1.toml resolves");
        assert_eq!((config.id, config.peers.len()), (1, 3));
        assert_eq!(config.raft_timing, RaftTiming::default());
        assert!(matches!(config.security, PortSecurity::Tls { .. }));
    }

    #[test]
    fn peers_parse_and_bad_ones_are_named() {
        let p = parse_peer("2=127.0.0.1:7102,127.0.0.1:7202").unwrap();
        assert_eq!(
            (p.id, p.raft_addr.as_str(), p.client_addr.as_str()),
            (2, "127.0.0.1:7102", "127.0.0.1:7202")
        );
        let named = parse_peer("3=Ledger-2.ledger.payments.svc:7101,ledger-2.ledger:7201").unwrap();
        assert_eq!(named.raft_addr, "ledger-2.ledger.payments.svc:7101");
        assert_eq!(named.client_addr, "ledger-2.ledger:7201");
        for bad in [
            "2=nowhere",
            "2=host:0,host:7201",
            "2=host:7101,host",
            "2=-host:7101,host:7201",
            "2=ho_st:7101,host:7201",
            "2=10.0.0.300:7101,host:7201",
            "2=a..b:7101,host:7201",
            "x=host:7101,host:7201",
        ] {
            assert!(
                matches!(parse_peer(bad), Err(ConfigError::BadPeer(_))),
                "{bad}"
            );
        }
    }
}
