//! `ledger-node`: the payment node.
//!
//! - `ledger-node dev`: a 3-node development cluster on 127.0.0.1, initialised, until Ctrl-C.
//! - `ledger-node run`: one node of a real deployment.
//! - `ledger-node cluster …`: initialise a cluster, add or remove nodes, show status.

use clap::{Parser, Subcommand};
use ledger_client::{Client, ClientConfig, NodeInfo};
use ledger_core::config::LedgerConfig;
use ledger_node::admin;
use ledger_node::config::{
    ensure_dev_master_key, load_keys, parse_peer, LogFormat, NodeConfig, RunArgs,
};
use ledger_node::node::{self, default_raft_config, NodeOptions, RunningNode};
use ledger_node::sms::{DevGateway, ExecGateway, SmsGateway};
use ledger_node::stamp::SystemStamper;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

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
    /// Start a 3-node development cluster on 127.0.0.1, initialise it, and run until Ctrl-C.
    Dev(DevArgs),
    /// Run one node of a cluster (configured by --config, flags and LEDGER_* variables).
    Run(Box<RunArgs>),
    /// Administer a running cluster.
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

#[derive(clap::Args)]
struct DevArgs {
    /// Where the three nodes keep their data.
    #[arg(long, default_value = "./data/dev")]
    data_dir: PathBuf,
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
    /// Ports: node i listens on BASE+i (Raft), BASE+100+i (clients), BASE+200+i (admin).
    #[arg(long, default_value_t = 7100)]
    base_port: u16,
    /// PBKDF2 rounds for card passwords.
    #[arg(long, default_value_t = ledger_core::intake::PASSWORD_ITERATIONS)]
    password_iterations: u32,
    /// Log format.
    #[arg(long, value_enum, default_value = "human")]
    log_format: LogFormat,
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
    /// Add a node (it must be running): learner first, voter once caught up.
    Add {
        #[arg(long, required = true)]
        endpoint: Vec<String>,
        /// The new node as ID=RAFT_ADDR,CLIENT_ADDR.
        #[arg(long)]
        node: String,
    },
    /// Remove a voter.
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
    let running = node::start(NodeOptions {
        id: config.id,
        raft_addr: config.raft_addr,
        client_addr: config.client_addr,
        data_dir: config.data_dir.clone(),
        keys,
        raft_config: openraft::Config {
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_every),
            max_in_snapshot_log_to_keep: config.snapshot_every / 10,
            ..default_raft_config()
        },
        stamper: Arc::new(SystemStamper),
        sms: match config.sms.strip_prefix("exec:") {
            Some(program) => Arc::new(ExecGateway::new(program.into())) as Arc<dyn SmsGateway>,
            None => Arc::new(DevGateway::new(outbox, config.id)),
        },
        sms_interval: Duration::from_millis(100),
        cache_bytes: config.cache_bytes,
        unsafe_local_reads: config.unsafe_local_reads,
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
async fn initialise(members: Vec<NodeInfo>, ledger: LedgerConfig) -> Result<(), String> {
    let mut config = ClientConfig::new(members.iter().map(|m| m.client_addr.clone()));
    config.max_attempts = 40;
    config.call_timeout = Duration::from_secs(15);
    Client::new(config)
        .init_cluster(members, ledger)
        .await
        .map_err(|e| e.to_string())
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

async fn dev(args: DevArgs) -> Result<(), String> {
    init_logging(args.log_format);
    let key_file = args.data_dir.join("master.key");
    ensure_dev_master_key(&key_file).map_err(|e| format!("{}: {e}", key_file.display()))?;
    let members: Vec<NodeInfo> = (1..=args.nodes)
        .map(|i| NodeInfo {
            id: i,
            raft_addr: format!("127.0.0.1:{}", args.base_port as u64 + i),
            client_addr: format!("127.0.0.1:{}", args.base_port as u64 + 100 + i),
        })
        .collect();
    // The dev cluster's campaign runs from a day before it was first created for 90 days,
    // so rewards and gifts can be tried now (the article's campaign ended in 2015).
    let now_ms = ledger_node::stamp::Stamper::now_ms(&SystemStamper);
    let ledger_config = LedgerConfig {
        campaign_start_ms: now_ms.saturating_sub(86_400_000),
        campaign_end_ms: now_ms + 90 * 86_400_000,
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
            cache_bytes: 64 * 1024 * 1024,
            log_format: args.log_format,
            snapshot_every: ledger_node::config::DEFAULT_SNAPSHOT_EVERY,
            unsafe_local_reads: false,
        };
        nodes.push((start_node(&config).await?, config));
    }
    initialise(members.clone(), ledger_config).await?;
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
    println!("Press Ctrl-C to stop.");
    shutdown_signal().await;
    for (node, _) in nodes {
        node.shutdown().await;
    }
    Ok(())
}

async fn run(args: RunArgs) -> Result<(), String> {
    let config = args.resolve().map_err(|e| e.to_string())?;
    init_logging(config.log_format);
    let node = start_node(&config).await?;
    if config.init {
        if config.peers.is_empty() {
            return Err("--init needs the --peer members".into());
        }
        let (members, ledger) = (config.peers.clone(), config.ledger.clone());
        tokio::spawn(async move {
            match initialise(members, ledger).await {
                Ok(()) => tracing::info!("cluster initialised"),
                Err(e) => tracing::error!(error = %e, "cluster initialisation failed"),
            }
        });
    }
    shutdown_signal().await;
    node.shutdown().await;
    Ok(())
}

async fn cluster(command: ClusterCommand) -> Result<(), String> {
    let client = |endpoints: Vec<String>| Client::new(ClientConfig::new(endpoints));
    match command {
        ClusterCommand::Init { endpoint, members } => {
            let members = members
                .iter()
                .map(|m| parse_peer(m))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            initialise_at(endpoint, members).await
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

async fn initialise_at(endpoints: Vec<String>, members: Vec<NodeInfo>) -> Result<(), String> {
    let mut config = ClientConfig::new(endpoints);
    config.max_attempts = 40;
    config.call_timeout = Duration::from_secs(15);
    Client::new(config)
        .init_cluster(members, LedgerConfig::default())
        .await
        .map_err(|e| e.to_string())
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
            Commands::Cluster(command) => cluster(command).await,
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
