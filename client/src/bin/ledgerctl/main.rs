//! `ledgerctl`: the operator's and merchant's command line over the client library.
//!
//! Human-readable output by default, `--json` for scripts. Without `--endpoints` it talks to
//! the `ledger-node dev` cluster on 127.0.0.1. This file is the command line and the
//! dispatch; each command group is a module with its arguments, its `run` and its views.

use clap::{Parser, Subcommand};
use ledger_core::types::RequestKey;
use std::path::PathBuf;
use std::process::ExitCode;

mod account;
mod campaign;
mod close_month;
mod demo;
mod epay;
mod failure;
mod merchant;
mod pay;
mod points;
mod pool;
mod records;
mod session;
mod sms;
mod status;
mod view;

use failure::Failure;
use session::Session;

const AFTER_HELP: &str = "\
Failover: a command keeps trying through leader elections for up to --deadline-ms. A write it \
gives up on has an UNKNOWN outcome (it may have been applied): ledgerctl prints its \
idempotency key; run the same command again with --key CLIENT_ID:REQUEST_ID to learn the \
outcome without applying it twice (the ledger keeps it for the nodes' client_session_idle_ms, \
7 days by default). When no node accepts connections, nothing is sent and it fails at once.

Errors: as text on standard error; under --json, as one JSON object on standard output, \
{\"error\": {\"type\", \"message\", \"retryable\", ...}}.

Identity: ledgerctl connects with mutual TLS as the certificate --identity NAME of the \
folder --certs DIR (DIR/NAME.crt, DIR/NAME.key, DIR/ca.crt; by default \
data/dev/certs/operator-ledgerctl, made by `ledger-node dev`); the node answers as the \
principal it names. If data/dev/certs does not exist and neither flag is given, it connects \
in plaintext (--insecure-plaintext says so explicitly). A refused certificate is reported \
with the cause (unknown CA, certificate expired, certificate revoked, bad certificate).

Exit codes: 0 done; 1 failed (refused, not found, or nothing could be sent); 2 bad \
arguments; 3 outcome unknown (retry with --key).";

#[derive(Parser)]
#[command(
    name = "ledgerctl",
    version,
    about = "Command line for the payment ledger: accounts, e-Pay, merchants, vouchers, cluster status.",
    after_help = AFTER_HELP
)]
struct Cli {
    /// Client endpoints of the cluster, comma-separated (default: the dev cluster).
    #[arg(long, global = true, value_delimiter = ',', env = "LEDGER_ENDPOINTS")]
    endpoints: Vec<String>,
    /// Print JSON instead of text (errors too: one JSON object on standard output).
    #[arg(long, global = true)]
    json: bool,
    /// Time allowed for one call to one node, in milliseconds.
    #[arg(long, global = true, default_value_t = 5_000)]
    timeout_ms: u64,
    /// How long a command keeps trying (through leader elections) before it gives up, in
    /// milliseconds. A write given up on has an unknown outcome; its key is printed.
    #[arg(long, global = true, default_value_t = 30_000)]
    deadline_ms: u64,
    /// Idempotency key of an earlier write whose outcome is unknown (as printed by
    /// ledgerctl): the same command with this key answers the original outcome instead of
    /// applying it twice. Only for commands that change the ledger.
    #[arg(long, global = true, value_name = "CLIENT_ID:REQUEST_ID", value_parser = parse_key)]
    key: Option<RequestKey>,
    /// The dev cluster's data directory (where `sms tail` and `demo` read SMS messages).
    #[arg(long, global = true, default_value = "./data/dev")]
    data_dir: PathBuf,
    #[command(flatten)]
    tls: ledger_client::TlsArgs,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show the cluster: leader, term, each node's applied index and lag, health.
    Status,
    #[command(flatten)]
    Account(account::AccountCmd),
    /// e-Pay enrolment and limits (the channel's: `--identity channel-web`).
    #[command(subcommand)]
    Epay(epay::EpayCmd),
    /// Two-step e-Pay payments (the merchant's own: `--identity merchant-N`) and small
    /// transfers (the channel's).
    #[command(subcommand)]
    Pay(pay::PayCmd),
    /// Merchants.
    #[command(subcommand)]
    Merchant(merchant::MerchantCmd),
    /// Merchant campaigns: rewards, fee tiers and the VIP gift over a window.
    #[command(subcommand)]
    Campaign(campaign::CampaignCmd),
    /// Voucher pools.
    #[command(subcommand)]
    Pool(pool::PoolCmd),
    /// Promotions with partner merchants, customers' points, prizes.
    #[command(subcommand)]
    Points(points::PointsCmd),
    /// Close a China Standard Time month (YYYY-MM): merchant figures and fee tiers.
    CloseMonth(close_month::CloseMonthArgs),
    /// The development SMS outbox.
    #[command(subcommand)]
    Sms(sms::SmsCmd),
    /// The journal: every posting in the order it was made (operator, auditor).
    Journal {
        /// Rows after this sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Rows to print (1 to 1000).
        #[arg(long, default_value_t = 100)]
        page_size: u32,
        /// Read from any node, possibly behind the leader.
        #[arg(long)]
        stale: bool,
    },
    /// Play the source article's story against a running cluster, checking every step.
    Demo,
}

impl Cmd {
    /// Whether the command sends a write (the only kind `--key` applies to).
    fn changes_ledger(&self) -> bool {
        match self {
            Cmd::Status | Cmd::Sms(_) | Cmd::Demo | Cmd::Journal { .. } => false,
            Cmd::Account(cmd) => cmd.changes_ledger(),
            Cmd::Epay(cmd) => cmd.changes_ledger(),
            Cmd::Pay(cmd) => cmd.changes_ledger(),
            Cmd::Merchant(cmd) => cmd.changes_ledger(),
            Cmd::Pool(cmd) => cmd.changes_ledger(),
            Cmd::Campaign(cmd) => cmd.changes_ledger(),
            Cmd::Points(cmd) => cmd.changes_ledger(),
            Cmd::CloseMonth(_) => true,
        }
    }
}

/// `CLIENT_ID:REQUEST_ID`, as `Failure::OutcomeUnknown` prints it.
fn parse_key(text: &str) -> Result<RequestKey, String> {
    let bad = || format!("`{text}` is not a key like 1234:5678 (CLIENT_ID:REQUEST_ID)");
    let (client_id, request_id) = text.split_once(':').ok_or_else(bad)?;
    Ok(RequestKey {
        client_id: client_id.parse().map_err(|_| bad())?,
        request_id: request_id.parse().map_err(|_| bad())?,
    })
}

async fn run(cli: Cli) -> Result<(), Failure> {
    if cli.key.is_some() && !cli.command.changes_ledger() {
        return Err(Failure::InvalidArgument {
            message: "--key applies only to commands that change the ledger".into(),
        });
    }
    let tls = cli
        .tls
        .resolve()
        .map_err(|message| Failure::InvalidArgument { message })?;
    let session = Session::new(session::Settings {
        endpoints: cli.endpoints,
        tls,
        certs_dir: cli
            .tls
            .certs
            .unwrap_or_else(|| ledger_client::identity::DEV_CERTS_DIR.into()),
        json: cli.json,
        call_timeout_ms: cli.timeout_ms,
        deadline_ms: cli.deadline_ms,
        key: cli.key,
    });
    match cli.command {
        Cmd::Status => status::run(&session).await,
        Cmd::Account(cmd) => account::run(&session, cmd).await,
        Cmd::Epay(cmd) => epay::run(&session, cmd).await,
        Cmd::Pay(cmd) => pay::run(&session, cmd).await,
        Cmd::Merchant(cmd) => merchant::run(&session, cmd).await,
        Cmd::Pool(cmd) => pool::run(&session, cmd).await,
        Cmd::Campaign(cmd) => campaign::run(&session, cmd).await,
        Cmd::Points(cmd) => points::run(&session, cmd).await,
        Cmd::CloseMonth(args) => close_month::run(&session, args).await,
        Cmd::Sms(cmd) => sms::run(&session, cmd, &cli.data_dir).await,
        Cmd::Journal {
            after,
            page_size,
            stale,
        } => records::journal(&session, after, page_size, stale).await,
        Cmd::Demo => demo::run(&session, &cli.data_dir)
            .await
            .map_err(|message| Failure::DemoFailed { message }),
    }
}

fn main() -> ExitCode {
    let json = std::env::args().any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if json && e.use_stderr() => {
            let failure = Failure::InvalidArgument {
                message: e.to_string().trim().to_owned(),
            };
            failure.report(true);
            return ExitCode::from(failure.exit_code());
        }
        Err(e) => e.exit(),
    };
    let json = cli.json;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            failure.report(json);
            ExitCode::from(failure.exit_code())
        }
    }
}
