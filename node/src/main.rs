//! `ledger-node`: the payment node.
//!
//! - `ledger-node dev`: a 3-node development cluster on 127.0.0.1, initialised, until Ctrl-C.
//! - `ledger-node run`: one node of a real deployment.
//! - `ledger-node cluster …`: initialise a cluster, add or remove nodes, show status.
//! - `ledger-node certs …`: the cluster's certificate authority (create, issue, revoke).
//! - `ledger-node backup` / `restore`: a running node's ledger into a file, and a file into
//!   a new cluster's data directories.

use clap::{Parser, Subcommand};
use ledger_client::{Client, ClientConfig, NodeInfo, TlsArgs, TlsIdentity};
use ledger_core::config::LedgerConfig;
use ledger_node::admin;
use ledger_node::backup;
use ledger_node::certs::{self, CertsCommand};
use ledger_node::config::{
    ensure_dev_master_key, load_keys, parse_peer, LogFormat, NodeConfig, PortSecurity, RaftTiming,
    RaftTimingArgs, RunArgs,
};
use ledger_node::node::{self, default_raft_config, NodeOptions, RunningNode};
use ledger_node::sms::{DevGateway, ExecGateway, SmsGateway};
use ledger_node::stamp::SystemStamper;
use ledger_node::webhooks::{HttpTransport, WebhookOptions};
use ledger_wire::pki;
use ledger_wire::principal::{Principal, Role};
use ledger_wire::tls::{NodeTls, TlsFiles};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// mimalloc, not the system's malloc: under glibc's, a quarter of the node's cycles went to
/// allocating and freeing (sled's copy-on-write pages, across threads); ARCHITECTURE has the
/// figures, and what it costs in memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ledger-node",
    version,
    about = "A replicated payment ledger node (openraft on sled, over tarpc)."
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Start a 3-node development cluster on 127.0.0.1 with mutual TLS (certificates in
    /// DATA_DIR/certs, made on first start), initialise it, and run until Ctrl-C.
    Dev(DevArgs),
    /// Run one node of a cluster (configured by --config, flags and LEDGER_* variables).
    Run(Box<RunArgs>),
    /// Administer a running cluster (as an operator: see --certs and --identity).
    Cluster(ClusterArgs),
    /// The cluster's certificate authority: create it, issue and revoke certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Copy a running node's ledger into a backup file (as an operator): a consistent state
    /// at one log position, checksummed. Taken on the leader, it holds every write
    /// acknowledged before it began.
    Backup(BackupArgs),
    /// Write one node's data directory of a new cluster from a backup file. Restore every
    /// member from the same file, then start them with `run` (without --init).
    Restore(RestoreArgs),
    /// Check a stopped node's storage: read every log entry, Raft marker and state record and
    /// its checksum, and the snapshot file. Exits 1 at the first corrupt value; wipe such a
    /// node and let it rejoin (ARCHITECTURE.md, "Corrupted storage").
    Scrub(ScrubArgs),
}

#[derive(clap::Args)]
struct ScrubArgs {
    /// The node's data directory (the node must be stopped: its database is locked).
    #[arg(long)]
    data_dir: PathBuf,
}

#[derive(clap::Args)]
struct BackupArgs {
    /// The client address of the node to copy (any member; the leader's copy is
    /// linearizable).
    #[arg(long)]
    endpoint: String,
    /// The backup file to write (never overwritten).
    #[arg(long)]
    to: PathBuf,
    /// How long to wait for each call (the copy, then each 4 MiB chunk), in seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    #[command(flatten)]
    tls: TlsArgs,
}

#[derive(clap::Args)]
struct RestoreArgs {
    /// The backup file.
    #[arg(long)]
    from: PathBuf,
    /// The new node's data directory (must not hold a node's data yet).
    #[arg(long)]
    data_dir: PathBuf,
    /// This node's id in the new cluster.
    #[arg(long)]
    id: u64,
    /// Each member of the new cluster as ID=RAFT_ADDR,CLIENT_ADDR, addresses IP:PORT or
    /// HOST:PORT (this node included).
    #[arg(long = "member", required = true)]
    members: Vec<String>,
}

#[derive(clap::Args)]
struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
    #[command(flatten)]
    tls: TlsArgs,
}

#[derive(clap::Args)]
struct DevArgs {
    /// Where the three nodes keep their data.
    #[arg(long, default_value = "./data/dev")]
    data_dir: PathBuf,
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Ports: node i listens on BASE+i (Raft), BASE+100+i (clients), BASE+200+i (admin);
    /// the HTTP/JSON gateway on BASE+300 (HTTPS) and BASE+304 (its metrics).
    #[arg(long, default_value_t = 7100)]
    base_port: u16,
    /// PBKDF2 rounds for card passwords.
    #[arg(long, default_value_t = ledger_core::intake::PASSWORD_ITERATIONS)]
    password_iterations: u32,
    /// Log format.
    #[arg(long, value_enum, default_value = "human")]
    log_format: LogFormat,
    /// Serve without TLS, every client as an operator (for measuring what TLS costs:
    /// `ledger-bench --insecure-plaintext`). Payments need TLS, for the merchant's and the
    /// channel's certificates.
    #[arg(long)]
    insecure_plaintext: bool,
    #[command(flatten)]
    raft_timing: RaftTimingArgs,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Initialise a new cluster with these members and the default ledger configuration.
    Init {
        /// A node's client address to send the request to (any member).
        #[arg(long, required = true)]
        endpoint: Vec<String>,
        /// Each member as ID=RAFT_ADDR,CLIENT_ADDR.
        #[arg(long = "member", required = true)]
        members: Vec<String>,
    },
    /// Add a node (it must be running): learner first, voter once its log is within 256
    /// entries of the leader's (until then the call fails, retryable, and it stays a learner).
    Add {
        #[arg(long, required = true)]
        endpoint: Vec<String>,
        /// The new node as ID=RAFT_ADDR,CLIENT_ADDR.
        #[arg(long)]
        node: String,
    },
    /// Remove a node from the membership (a voter, or a learner whose add never finished).
    Remove {
        #[arg(long, required = true)]
        endpoint: Vec<String>,
        #[arg(long)]
        id: u64,
    },
    /// Show each node's view of the cluster.
    Status {
        #[arg(long, required = true)]
        endpoint: Vec<String>,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,openraft=error,sled=warn,tarpc=error")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The node's TLS, reloaded on SIGHUP (a new revocation list applies without a restart).
fn load_tls(config: &NodeConfig) -> Result<Option<Arc<NodeTls>>, String> {
    let files = match &config.security {
        PortSecurity::Tls { files, .. } => files.clone(),
        PortSecurity::InsecurePlaintext => {
            tracing::warn!(
                raft = %config.raft_addr,
                client = %config.client_addr,
                "INSECURE PLAINTEXT: no TLS on the Raft and client ports; every client is \
                 answered as an operator (loopback development and tests only)"
            );
            return Ok(None);
        }
    };
    let tls = Arc::new(NodeTls::load(files).map_err(|e| format!("TLS: {e}"))?);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup =
            signal(SignalKind::hangup()).map_err(|e| format!("SIGHUP handler: {e}"))?;
        let reloaded = tls.clone();
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                match reloaded.reload() {
                    Ok(revoked) => tracing::info!(revoked, "SIGHUP: TLS files reloaded"),
                    Err(e) => tracing::error!(
                        error = %e,
                        "SIGHUP: TLS reload failed; the previous trust stays in force"
                    ),
                }
            }
        });
    }
    Ok(Some(tls))
}

async fn start_node(config: &NodeConfig) -> Result<RunningNode, String> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("{}: {e}", config.data_dir.display()))?;
    let keys = load_keys(&config.master_key_file, config.password_iterations)
        .map_err(|e| e.to_string())?;
    let outbox = config.data_dir.join(ledger_wire::dev_sms::DEV_OUTBOX_FILE);
    if config.unsafe_local_reads {
        tracing::warn!(
            "--unsafe-local-reads: linearizable reads are answered locally without a leadership \
             check; stale reads WILL happen (test only, never production)"
        );
    }
    let tls = load_tls(config)?;
    let running = node::start(NodeOptions {
        id: config.id,
        raft_addr: config.raft_addr,
        client_addr: config.client_addr,
        data_dir: config.data_dir.clone(),
        keys,
        raft_config: config.raft_timing.apply(openraft::Config {
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: config.snapshot_every / 10,
            ..default_raft_config()
        }),
        stamper: Arc::new(SystemStamper),
        sms: match config.sms.strip_prefix("exec:") {
            Some(program) => Arc::new(ExecGateway::new(program.into())) as Arc<dyn SmsGateway>,
            None => Arc::new(DevGateway::new(outbox, config.id)),
        },
        sms_interval: Duration::from_millis(100),
        webhooks: Arc::new(
            HttpTransport::new(config.webhook_ca.as_deref(), config.webhook_plain_http)
                .map_err(|e| e.to_string())?,
        ),
        webhook_options: WebhookOptions::default(),
        cache_bytes: config.cache_bytes,
        min_free_disk_bytes: config.min_free_disk_bytes,
        unsafe_local_reads: config.unsafe_local_reads,
        tls,
    })
    .await
    .map_err(|e| e.to_string())?;
    if let Some(addr) = config.admin_addr {
        admin::serve(addr, running.shared.clone())
            .await
            .map_err(|e| format!("admin port {addr}: {e}"))?;
    }
    Ok(running)
}

/// Initialises the cluster through whichever member leads, retrying while it elects.
async fn initialise(
    members: Vec<NodeInfo>,
    ledger: LedgerConfig,
    tls: Option<TlsIdentity>,
) -> Result<(), String> {
    let mut config = ClientConfig::new(members.iter().map(|m| m.client_addr.clone()));
    config.tls = tls;
    config.max_attempts = 40;
    config.call_timeout = Duration::from_secs(15);
    Client::new(config)
        .init_cluster(members, ledger)
        .await
        .map_err(|e| e.to_string())
}

/// How long the dev cluster's campaign runs from its creation.
const DEV_CAMPAIGN_DAYS: u64 = 90;

/// The dev cluster runs the article's campaign (its rules, from when the cluster was first
/// created for 90 days, since the article's own ended in 2015), so that rewards, fee tiers
/// and gifts can be tried now. Created once: a restarted dev cluster keeps its campaigns.
async fn ensure_dev_campaign(members: &[NodeInfo], tls: Option<TlsIdentity>) -> Result<(), String> {
    let mut config = ClientConfig::new(members.iter().map(|m| m.client_addr.clone()));
    config.tls = tls;
    config.max_attempts = 40;
    config.call_timeout = Duration::from_secs(15);
    let client = Client::new(config);
    let first = ledger_core::types::CampaignId(1);
    if client
        .campaign(first)
        .await
        .map_err(|e| e.to_string())?
        .is_some()
    {
        return Ok(());
    }
    let now_ms = ledger_node::stamp::Stamper::now_ms(&SystemStamper);
    client
        .create_campaign(
            "心计划 (dev)",
            None,
            now_ms + DEV_CAMPAIGN_DAYS * 86_400_000,
            ledger_core::types::CampaignRules::article(),
        )
        .await
        .map_err(|e| format!("creating the dev campaign: {e}"))?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            biased;
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// OTP codes per phone per throttle window on the dev cluster.
const DEV_OTP_CODES_PER_PHONE: u32 = 100_000;

async fn dev(args: DevArgs) -> Result<(), String> {
    init_logging(args.log_format);
    let raft_timing = RaftTiming::from_args(&args.raft_timing).map_err(|e| e.to_string())?;
    let key_file = args.data_dir.join("master.key");
    ensure_dev_master_key(&key_file).map_err(|e| format!("{}: {e}", key_file.display()))?;
    let certs_dir = args.data_dir.join("certs");
    if certs::ensure_dev_certs(&certs_dir, args.nodes)? {
        println!("Created a CA and certificates in {}", certs_dir.display());
    }
    let operator =
        ledger_client::identity(&certs_dir, &format!("operator-{}", certs::DEV_OPERATOR))
            .map_err(|e| e.to_string())?;
    let members: Vec<NodeInfo> = (1..=args.nodes)
        .map(|i| NodeInfo {
            id: i,
            raft_addr: format!("127.0.0.1:{}", args.base_port as u64 + i),
            client_addr: format!("127.0.0.1:{}", args.base_port as u64 + 100 + i),
        })
        .collect();
    // The dev cluster lets the demo and the benchmarks send many codes to a few phones: a
    // production cluster keeps the default of 5 per phone per 10 minutes.
    let ledger_config = LedgerConfig {
        otp_challenges_per_phone: DEV_OTP_CODES_PER_PHONE,
        ..LedgerConfig::default()
    };
    let mut nodes = Vec::new();
    for m in &members {
        let config = NodeConfig {
            id: m.id,
            raft_addr: m.raft_addr.parse().expect("valid address"),
            client_addr: m.client_addr.parse().expect("valid address"),
            admin_addr: Some(
                format!("127.0.0.1:{}", args.base_port as u64 + 200 + m.id)
                    .parse()
                    .expect("valid address"),
            ),
            data_dir: args.data_dir.join(format!("node{}", m.id)),
            peers: members.clone(),
            init: true,
            master_key_file: key_file.clone(),
            password_iterations: args.password_iterations,
            ledger: ledger_config.clone(),
            sms: "dev".into(),
            // The dev cluster is on loopback; a merchant trying webhooks runs a local server.
            webhook_ca: None,
            webhook_plain_http: true,
            cache_bytes: 64 * 1024 * 1024,
            min_free_disk_bytes: ledger_node::disk::DEFAULT_MIN_FREE_DISK_MIB * 1024 * 1024,
            log_format: args.log_format,
            snapshot_every: ledger_node::config::DEFAULT_SNAPSHOT_EVERY,
            raft_timing,
            security: if args.insecure_plaintext {
                PortSecurity::InsecurePlaintext
            } else {
                PortSecurity::Tls {
                    files: TlsFiles {
                        ca: certs_dir.join(pki::CA_CERT_FILE),
                        cert: certs_dir.join(format!("node-{}.crt", m.id)),
                        key: certs_dir.join(format!("node-{}.key", m.id)),
                        crl: Some(certs_dir.join(pki::CRL_FILE)),
                    },
                    init_identity: None,
                }
            },
            unsafe_local_reads: false,
        };
        nodes.push((start_node(&config).await?, config));
    }
    let init_identity = (!args.insecure_plaintext).then_some(operator);
    initialise(members.clone(), ledger_config, init_identity.clone()).await?;
    ensure_dev_campaign(&members, init_identity).await?;
    let gateway = if args.insecure_plaintext {
        None
    } else {
        Some(start_dev_gateway(&args, &certs_dir, &members).await?)
    };
    println!("Development cluster of {} nodes is up.", members.len());
    for (node, config) in &nodes {
        println!(
            "  node {}: clients {}  raft {}  admin http://{}/metrics  data {}",
            node.shared.id,
            config.client_addr,
            config.raft_addr,
            config.admin_addr.expect("set above"),
            config.data_dir.display()
        );
    }
    println!(
        "SMS messages (OTP codes) are printed here and appended to {}/node*/{}",
        args.data_dir.display(),
        ledger_wire::dev_sms::DEV_OUTBOX_FILE
    );
    println!(
        "Endpoints: {}",
        members
            .iter()
            .map(|m| m.client_addr.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    println!(
        "Certificates (mutual TLS) are in {dir}: ledgerctl and ledger-bench use \
         {dir}/operator-{op}.crt by default (--certs DIR --identity NAME to act as \
         merchant-1..{m}, channel-web or auditor-audit); `ledger-node certs revoke --dir {dir} \
         --cert FILE` then SIGHUP revokes one.",
        dir = certs_dir.display(),
        op = certs::DEV_OPERATOR,
        m = certs::DEV_MERCHANTS,
    );
    if let Some(gateway) = &gateway {
        println!(
            "HTTP/JSON gateway: https://localhost:{port}/v1 (OpenAPI at /openapi.json, a page \
             at /docs; CA {dir}/ca.crt; metrics at http://127.0.0.1:{admin}/metrics). API \
             keys: {dir}/merchant-1.apikey, {dir}/channel-web.apikey, {dir}/auditor-audit.apikey",
            port = gateway.addr.port(),
            admin = gateway.addr.port() + 4,
            dir = certs_dir.display(),
        );
    }
    println!("Press Ctrl-C to stop.");
    shutdown_signal().await;
    if let Some(gateway) = gateway {
        gateway.shutdown();
    }
    for (node, _) in nodes {
        node.shutdown().await;
    }
    Ok(())
}

/// The dev cluster's gateway on BASE+300, with API keys for merchant 1, the web channel and
/// the auditor (made on first start, kept in DATA_DIR/certs/<principal>.apikey, 0600).
async fn start_dev_gateway(
    args: &DevArgs,
    certs_dir: &std::path::Path,
    members: &[NodeInfo],
) -> Result<ledger_gateway::server::Running, String> {
    let keys_file = certs_dir.join("api-keys.txt");
    for principal in [
        Principal::new(Role::Merchant, "1"),
        Principal::new(Role::Channel, "web"),
        Principal::new(Role::Auditor, "audit"),
    ] {
        let principal = principal.map_err(|e| e.to_string())?;
        let key_file = certs_dir.join(format!("{}.apikey", pki::file_stem(&principal)));
        if key_file.exists() {
            continue;
        }
        let key = ledger_gateway::keys::issue(&keys_file, &principal, "dev", 0)
            .map_err(|e| e.to_string())?;
        ledger_gateway::keys::save_key(&key_file, &key).map_err(|e| e.to_string())?;
    }
    let gateway_stem = pki::file_stem(
        &Principal::new(Role::Gateway, certs::DEV_GATEWAY).map_err(|e| e.to_string())?,
    );
    ledger_gateway::server::start(ledger_gateway::server::GatewayConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], args.base_port + 300)),
        endpoints: members.iter().map(|m| m.client_addr.clone()).collect(),
        tls: TlsFiles {
            ca: certs_dir.join(pki::CA_CERT_FILE),
            cert: certs_dir.join(format!("{gateway_stem}.crt")),
            key: certs_dir.join(format!("{gateway_stem}.key")),
            crl: Some(certs_dir.join(pki::CRL_FILE)),
        },
        https: None,
        api_keys: Some(keys_file),
        request_deadline: ledger_gateway::REQUEST_DEADLINE,
        admin: Some(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            args.base_port + 304,
        ))),
    })
    .await
}

async fn run(args: RunArgs) -> Result<(), String> {
    let config = args.resolve().map_err(|e| e.to_string())?;
    init_logging(config.log_format);
    // --init initialises through the client port, as an operator.
    let init_identity = match (&config.security, config.init) {
        (_, false) | (PortSecurity::InsecurePlaintext, true) => None,
        (
            PortSecurity::Tls {
                files,
                init_identity,
            },
            true,
        ) => {
            let (cert, key) = init_identity.as_ref().ok_or(
                "--init with TLS needs an operator certificate: [tls] init_cert and init_key",
            )?;
            Some(TlsIdentity::load(&files.ca, cert, key).map_err(|e| format!("TLS: {e}"))?)
        }
    };
    let node = start_node(&config).await?;
    if config.init {
        if config.peers.is_empty() {
            return Err("--init needs the --peer members".into());
        }
        let (members, ledger) = (config.peers.clone(), config.ledger.clone());
        tokio::spawn(async move {
            match initialise(members, ledger, init_identity).await {
                Ok(()) => tracing::info!("cluster initialised"),
                Err(e) => tracing::error!(error = %e, "cluster initialisation failed"),
            }
        });
    }
    tokio::select! {
        _ = shutdown_signal() => {}
        fatal = node.failed() => {
            tracing::error!(error = %fatal, "the node exits (restart it once the cause is fixed: it recovers from what is durable)");
            return Err(fatal);
        }
    }
    node.shutdown().await;
    Ok(())
}

async fn cluster(args: ClusterArgs) -> Result<(), String> {
    let tls = args.tls.resolve()?;
    let client = |endpoints: Vec<String>| {
        let mut config = ClientConfig::new(endpoints);
        config.tls = tls.clone();
        Client::new(config)
    };
    match args.command {
        ClusterCommand::Init { endpoint, members } => {
            let members = members
                .iter()
                .map(|m| parse_peer(m))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            initialise_at(endpoint, members, tls).await
        }
        ClusterCommand::Add { endpoint, node } => {
            let node = parse_peer(&node).map_err(|e| e.to_string())?;
            client(endpoint)
                .add_node(node)
                .await
                .map_err(|e| e.to_string())
        }
        ClusterCommand::Remove { endpoint, id } => client(endpoint)
            .remove_node(id)
            .await
            .map_err(|e| e.to_string()),
        ClusterCommand::Status { endpoint } => {
            for (endpoint, status) in client(endpoint).cluster_status().await {
                match status {
                    Ok(s) => println!(
                        "{endpoint}: node {} {} term {} leader {:?} applied {:?} voters {:?}",
                        s.id, s.role, s.term, s.leader, s.applied_index, s.voters
                    ),
                    Err(e) => println!("{endpoint}: unreachable ({e})"),
                }
            }
            Ok(())
        }
    }
}

async fn initialise_at(
    endpoints: Vec<String>,
    members: Vec<NodeInfo>,
    tls: Option<TlsIdentity>,
) -> Result<(), String> {
    let mut config = ClientConfig::new(endpoints);
    config.tls = tls;
    config.max_attempts = 40;
    config.call_timeout = Duration::from_secs(15);
    Client::new(config)
        .init_cluster(members, LedgerConfig::default())
        .await
        .map_err(|e| e.to_string())
}

async fn backup(args: BackupArgs) -> Result<(), String> {
    let mut config = ClientConfig::new(vec![args.endpoint.clone()]);
    config.tls = args.tls.resolve()?;
    config.call_timeout = Duration::from_secs(args.timeout_secs);
    let (manifest, bytes) = Client::new(config)
        .backup(&args.endpoint)
        .await
        .map_err(|e| e.to_string())?;
    backup::write_file(&args.to, &manifest, &bytes).map_err(|e| e.to_string())?;
    println!(
        "{}: node {} at term {} index {} ({}), {} records, {} bytes\nstate hash {}\nsha256 {}",
        args.to.display(),
        manifest.node_id,
        manifest.applied_term,
        manifest.applied_index,
        if manifest.linearizable {
            "the leader's, linearizable"
        } else {
            "a follower's applied state"
        },
        manifest.records,
        manifest.bytes,
        manifest.state_hash.to_hex(),
        manifest.sha256.to_hex(),
    );
    Ok(())
}

fn scrub(args: ScrubArgs) -> Result<(), String> {
    let sled_path = args.data_dir.join("sled");
    if !sled_path.is_dir() {
        return Err(format!("{}: no node database here", sled_path.display()));
    }
    let db = sled::Config::new()
        .path(&sled_path)
        .open()
        .map_err(|e| format!("{}: {e}", sled_path.display()))?;
    let scrubbed = ledger_node::checksum::scrub(&db, &args.data_dir)
        .map_err(|e| format!("{}: {e}", args.data_dir.display()))?;
    for (tree, values) in &scrubbed.values {
        println!("{tree}: {values} values, every checksum good");
    }
    match scrubbed.snapshot {
        Some(at) => println!("snapshot: at index {}, checksum good", at.index),
        None => println!("snapshot: none"),
    }
    Ok(())
}

fn restore(args: RestoreArgs) -> Result<(), String> {
    let members = args
        .members
        .iter()
        .map(|m| parse_peer(m))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let restored = backup::restore(&args.from, &args.data_dir, args.id, &members)
        .map_err(|e| e.to_string())?;
    println!(
        "{}: node {} of {} members restored at term {} index {}, {} records, state hash {}",
        args.data_dir.display(),
        args.id,
        members.len(),
        restored.manifest.applied_term,
        restored.manifest.applied_index,
        restored.records,
        restored.manifest.state_hash.to_hex(),
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async move {
        match cli.command {
            Commands::Dev(args) => dev(args).await,
            Commands::Run(args) => run(*args).await,
            Commands::Cluster(args) => cluster(args).await,
            Commands::Certs(command) => certs::run(command),
            Commands::Backup(args) => backup(args).await,
            Commands::Restore(args) => restore(args),
            Commands::Scrub(args) => scrub(args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ledger-node: {e}");
            ExitCode::FAILURE
        }
    }
}
