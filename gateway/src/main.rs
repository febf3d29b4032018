//! `ledger-gateway`: the HTTP/JSON gateway in front of a payment cluster.
//!
//! - `ledger-gateway serve`: serve HTTPS for merchants, channels and auditors.
//! - `ledger-gateway keys issue`: make an API key for a principal (printed once; only its
//!   hash is stored).

use clap::{Parser, Subcommand};
use ledger_gateway::server::{self, GatewayConfig};
use ledger_wire::principal::{Principal, Role};
use ledger_wire::tls::{ServingCert, TlsFiles};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ledger-gateway",
    version,
    about = "The HTTP/JSON gateway of the payment ledger: OpenAPI 3.1 at /openapi.json, a human page at /docs"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Serve HTTPS: /v1 (the API), /openapi.json, /docs, /health. SIGHUP re-reads the TLS
    /// files (the CRL, the certificates) and the API key file.
    Serve(ServeArgs),
    /// API keys for principals that cannot present a client certificate.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to serve HTTPS on.
    #[arg(long, env = "LEDGER_GATEWAY_LISTEN", default_value = "127.0.0.1:7400")]
    listen: std::net::SocketAddr,
    /// The nodes' client ports (comma separated or repeated).
    #[arg(
        long,
        env = "LEDGER_GATEWAY_ENDPOINTS",
        value_delimiter = ',',
        required = true
    )]
    endpoints: Vec<String>,
    /// The cluster CA certificate (PEM).
    #[arg(long, env = "LEDGER_GATEWAY_CA")]
    ca: PathBuf,
    /// The gateway's certificate (role gateway, from `ledger-node certs issue --role gateway`).
    #[arg(long, env = "LEDGER_GATEWAY_CERT")]
    cert: PathBuf,
    /// The gateway's private key.
    #[arg(long, env = "LEDGER_GATEWAY_KEY")]
    key: PathBuf,
    /// The CA's revocation list (re-read on SIGHUP).
    #[arg(long, env = "LEDGER_GATEWAY_CRL")]
    crl: Option<PathBuf>,
    /// A certificate chain (PEM) for HTTPS callers, from a CA their HTTP stacks already
    /// trust (a public one), presented instead of --cert, which the nodes still see. Re-read
    /// on SIGHUP. Needs --https-key.
    #[arg(long, env = "LEDGER_GATEWAY_HTTPS_CERT", requires = "https_key")]
    https_cert: Option<PathBuf>,
    /// The private key of --https-cert.
    #[arg(long, env = "LEDGER_GATEWAY_HTTPS_KEY", requires = "https_cert")]
    https_key: Option<PathBuf>,
    /// The API key file (`ledger-gateway keys issue`); without it only client certificates
    /// authenticate.
    #[arg(long, env = "LEDGER_GATEWAY_API_KEYS")]
    api_keys: Option<PathBuf>,
    /// Longest a request waits for the cluster, in seconds, before the gateway answers 503
    /// (a write's outcome is then unknown: retry it with the same Idempotency-Key).
    #[arg(long, env = "LEDGER_GATEWAY_REQUEST_DEADLINE_SECS", default_value_t = ledger_gateway::REQUEST_DEADLINE.as_secs(), value_parser = clap::value_parser!(u64).range(1..=600))]
    request_deadline_secs: u64,
    /// Serve plain-HTTP /metrics (OpenMetrics: requests by route and status, latency by
    /// route) and /health here, for the operator; keep it off the public network.
    #[arg(long, env = "LEDGER_GATEWAY_ADMIN")]
    admin: Option<std::net::SocketAddr>,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a key for a merchant, channel or auditor: prints the key once, appends its hash
    /// to FILE. Send the gateway SIGHUP to accept it; delete its line (and SIGHUP) to revoke.
    Issue {
        /// The key file the gateway reads (`--api-keys`).
        #[arg(long)]
        file: PathBuf,
        /// merchant, channel or auditor.
        #[arg(long)]
        role: Role,
        /// The merchant id, or the channel's or auditor's name.
        #[arg(long)]
        name: String,
        /// What the key is for, to find its line again (letters, digits, `-`, `_`, `.`).
        #[arg(long, default_value = "key")]
        label: String,
    },
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tarpc=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let running = server::start(GatewayConfig {
        listen: args.listen,
        endpoints: args.endpoints,
        tls: TlsFiles {
            ca: args.ca,
            cert: args.cert,
            key: args.key,
            crl: args.crl,
        },
        https: args
            .https_cert
            .zip(args.https_key)
            .map(|(cert, key)| ServingCert { cert, key }),
        api_keys: args.api_keys,
        request_deadline: std::time::Duration::from_secs(args.request_deadline_secs),
        admin: args.admin,
    })
    .await?;
    tracing::info!(addr = %running.addr, "gateway serving https");
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| e.to_string())?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    loop {
        tokio::select! {
            _ = hup.recv() => match running.reload() {
                Ok(what) => tracing::info!(%what, "reloaded"),
                Err(e) => tracing::error!(error = %e, "reload failed; the old trust stays"),
            },
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    running.shutdown();
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Commands::Serve(args) => tokio::runtime::Runtime::new()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(serve(args))),
        Commands::Keys(KeysCommand::Issue {
            file,
            role,
            name,
            label,
        }) => Principal::new(role, &name)
            .map_err(|e| e.to_string())
            .and_then(|p| {
                ledger_gateway::keys::issue(&file, &p, &label, now_ms())
                    .map_err(|e| e.to_string())
                    .map(|key| {
                        println!("{key}");
                        eprintln!(
                            "issued an API key for {} (its hash is in {}; the key is shown only now)",
                            p.to_uri(),
                            file.display()
                        );
                    })
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ledger-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}
