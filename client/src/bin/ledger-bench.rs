//! `ledger-bench`: a load generator against a running cluster.
//!
//! Concurrent clients do book transfers (or, with `--payments`, full two-step e-Pay payments
//! with the OTP read from the development SMS outbox) for a fixed time, then print the
//! throughput, latency percentiles (p50, p99, p99.9, max), the CPU time the node processes
//! and the bench itself spent meanwhile (and the nodes' per committed operation), and the
//! processes' peak memory and the disk use. `--sweep` runs the standard loads one after
//! another and prints them as one table. Only ever sends to the endpoints it is given
//! (default: the `ledger-node dev` cluster on 127.0.0.1).

use clap::Parser;
use ledger_client::identity::{dev_channel, issued_identity};
use ledger_client::{
    Client, ClientConfig, Consistency, Operation, Query, QueryReply, DEV_ENDPOINTS,
};
use ledger_core::command::{CampaignFlags, Command};
use ledger_core::intake::{OpenAccountRequest, Secret};
use ledger_core::outcome::Reply;
use ledger_core::types::{AccountId, MerchantKind, Payee};
use ledger_wire::dev_sms::{DevSms, DEV_OUTBOX_FILE};
use ledger_wire::principal::Principal;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io::{BufRead, Seek};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "ledger-bench",
    version,
    about = "Load generator for a payment ledger cluster."
)]
struct Args {
    #[command(flatten)]
    tls: ledger_client::TlsArgs,
    /// Client endpoints of the cluster (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = DEV_ENDPOINTS.map(String::from))]
    endpoints: Vec<String>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Multibatching: the workers share one client, which coalesces their concurrent calls
    /// into requests, at most this many out at once (`ClientConfig::coalesce`). 0 (the
    /// default): a client of its own for each worker.
    #[arg(long, default_value_t = 0)]
    coalesce: usize,
    /// Seconds of load after setup.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Accounts to transfer between.
    #[arg(long, default_value_t = 64)]
    accounts: u64,
    /// Requests per submit call (batching in the client protocol), at most 1024 (the
    /// protocol's `MAX_BATCH`).
    #[arg(long, default_value_t = 1, value_parser = batch_size)]
    batch: usize,
    /// Full two-step e-Pay payments instead of book transfers.
    #[arg(long)]
    payments: bool,
    /// Data directory of the dev cluster: its nodes' SMS outboxes (for --payments) and disk use.
    #[arg(long, default_value = "./data/dev")]
    data_dir: PathBuf,
    /// Card numbers are derived from this (default: from the clock), so repeated runs on
    /// one cluster do not collide.
    #[arg(long)]
    card_seed: Option<u64>,
    /// With --payments: the bench merchant registers this webhook URL first, so every
    /// settlement is also pushed to it (point it at a slow or hanging endpoint to measure
    /// what a bad merchant costs the ledger).
    #[arg(long, requires = "payments")]
    webhook: Option<String>,
    /// With --payments: the bench merchant's webhook is a listener this process opens on
    /// 127.0.0.1 that accepts connections and never answers (the cluster must allow
    /// http:// webhooks, as `ledger-node dev` does). Measures what a hanging merchant costs.
    #[arg(long, requires = "payments", conflicts_with = "webhook")]
    hanging_webhook: bool,
    /// With --payments: the bench merchant's webhook is an HTTP server this process runs on
    /// 127.0.0.1 that answers every POST 204 at once: a healthy merchant, to compare with.
    #[arg(
        long,
        requires = "payments",
        conflicts_with_all = ["webhook", "hanging_webhook"]
    )]
    accepting_webhook: bool,
    /// With --payments: the merchant takes its payments through the HTTP/JSON gateway at
    /// this base URL (`https://localhost:7400/v1` on the dev cluster) with its client
    /// certificate, instead of the Rust client; with --phases, only in the B phases, so one
    /// run compares the two.
    #[arg(
        long,
        requires = "payments",
        conflicts_with_all = ["webhook", "hanging_webhook", "accepting_webhook"]
    )]
    http: Option<String>,
    /// Splits the run into this many equal phases, each reported on its own. With a webhook
    /// it is registered only in phases 2, 3, 6, 7, 10, 11, … and removed after each (the
    /// order A B B A A B B A cancels a steady drift), so that one cluster and one merchant
    /// compare the ledger with and without it; with --http, payments go through the gateway
    /// in those phases.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100))]
    phases: u64,
    /// Runs the standard loads one after another, each for --duration seconds, and prints
    /// them as one table: transfers at 1 client, at 128 clients, at 32 clients x batch 64 and
    /// at 8 clients x batch 1024, 128 callers sharing one client that coalesces their calls
    /// (4 requests out at most), then two-step e-Pay payments at 64 clients (with TLS
    /// certificates; skipped with --insecure-plaintext). Each load opens accounts of its own.
    #[arg(long, conflicts_with_all = ["payments", "webhook", "hanging_webhook", "accepting_webhook", "http", "phases"])]
    sweep: bool,
}

/// One load of `--sweep`: its name, clients (callers), requests per call, `--coalesce`,
/// payments or transfers.
const SWEEP: [(&str, usize, usize, usize, bool); 6] = [
    ("1 client, batch 1", 1, 1, 0, false),
    ("128 clients, batch 1", 128, 1, 0, false),
    ("32 clients x batch 64", 32, 64, 0, false),
    ("8 clients x batch 1024", 8, 1024, 0, false),
    ("128 callers, one client coalescing", 128, 1, 4, false),
    ("e-Pay payments, 64 clients", 64, 1, 0, true),
];

/// What one run measured.
struct Measured {
    ok_per_s: f64,
    /// p50, p99, p99.9 and max latency, ms.
    latency_ms: [f64; 4],
    /// CPU seconds (user + system) the node processes and this one spent during the load.
    node_cpu_s: f64,
    bench_cpu_s: f64,
    ok: u64,
    /// Peak resident memory of the largest node process, MiB.
    node_peak_mib: f64,
}

/// Connections the hanging webhook holds open at once; older ones are dropped (the node
/// opens one at a time per merchant, so this is never reached in practice).
const HANGING_CONNECTIONS_HELD: usize = 256;

/// A listener on a free port of 127.0.0.1, and the webhook URL that points at it.
async fn webhook_listener() -> Result<(tokio::net::TcpListener, String), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("opening the bench's webhook listener: {e}"))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    Ok((listener, format!("http://{address}/hook")))
}

/// Opens a listener on 127.0.0.1 that accepts every connection and never answers, for as
/// long as this process runs. Returns the URL to register.
async fn hanging_webhook() -> Result<String, String> {
    let (listener, url) = webhook_listener().await?;
    tokio::spawn(async move {
        let mut held = std::collections::VecDeque::new();
        while let Ok((stream, _)) = listener.accept().await {
            if held.len() == HANGING_CONNECTIONS_HELD {
                held.pop_front();
            }
            held.push_back(stream);
        }
    });
    Ok(url)
}

/// Runs an HTTP server on 127.0.0.1 that answers every request 204 No Content, for as long
/// as this process runs. Returns the URL to register.
async fn accepting_webhook() -> Result<String, String> {
    use hyper::{Response, StatusCode};
    let (listener, url) = webhook_listener().await?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    let mut answer = Response::new(String::new());
                    *answer.status_mut() = StatusCode::NO_CONTENT;
                    Ok::<_, std::convert::Infallible>(answer)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(url)
}

/// A payment through the HTTP gateway, both steps, as a merchant's program would make it.
async fn http_payment(
    http: &reqwest::Client,
    base: &str,
    tail: &Mutex<SmsTail>,
    phone: String,
    last_six: &str,
    order_id: String,
) -> Result<(), String> {
    let post = |path: String, body: serde_json::Value| {
        http.post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let begun = post(
        "/payments".into(),
        serde_json::json!({"phone": phone, "last_six": last_six, "amount_fen": 100, "order_id": order_id}),
    )
    .await
    .map_err(|e| format!("HttpError({})", e.without_url()))?;
    if begun.status() != reqwest::StatusCode::CREATED {
        return Err(format!("HttpStatus({})", begun.status().as_u16()));
    }
    let pending: serde_json::Value =
        serde_json::from_slice(&begun.bytes().await.map_err(|e| format!("HttpError({e})"))?)
            .map_err(|e| format!("HttpBody({e})"))?;
    let (Some(payment), Some(challenge)) =
        (pending["payment"].as_u64(), pending["challenge"].as_u64())
    else {
        return Err("HttpBody(no payment)".into());
    };
    let code = code_for(tail, challenge, Duration::from_secs(10))
        .await
        .ok_or("NoSms")?;
    let confirmed = post(
        format!("/payments/{payment}/confirm"),
        serde_json::json!({ "code": code }),
    )
    .await
    .map_err(|e| format!("HttpError({})", e.without_url()))?;
    match confirmed.status() {
        reqwest::StatusCode::OK => Ok(()),
        other => Err(format!("HttpStatus({})", other.as_u16())),
    }
}

/// Whether the webhook is registered in phase `p` (0-based) of `phases`: all along in a
/// single phase, else in the B phases of A B B A A B B A ….
fn hooked_in(p: usize, phases: usize) -> bool {
    phases == 1 || matches!(p % 4, 1 | 2)
}

/// The kind of an error (its variant names), so that failures can be counted by kind.
fn error_kind(e: &ledger_client::ClientError) -> String {
    let debug = format!("{e:?}");
    let end = debug.find([' ', '{']).unwrap_or(debug.len());
    debug[..end].trim_end_matches('(').to_owned()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Follows the nodes' SMS outbox files and keeps the latest code per message id.
struct SmsTail {
    files: Vec<PathBuf>,
    offsets: Vec<u64>,
    codes: BTreeMap<u64, String>,
}

impl SmsTail {
    fn new(data_dir: &std::path::Path) -> Self {
        let files: Vec<PathBuf> = std::fs::read_dir(data_dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path().join(DEV_OUTBOX_FILE))
                    .collect()
            })
            .unwrap_or_default();
        let offsets = files
            .iter()
            .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
            .collect();
        SmsTail {
            files,
            offsets,
            codes: BTreeMap::new(),
        }
    }

    fn refresh(&mut self) {
        for (file, offset) in self.files.iter().zip(self.offsets.iter_mut()) {
            let Ok(mut f) = std::fs::File::open(file) else {
                continue;
            };
            if f.seek(std::io::SeekFrom::Start(*offset)).is_err() {
                continue;
            }
            let mut reader = std::io::BufReader::new(f);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                if !line.ends_with('\n') {
                    break;
                }
                *offset += line.len() as u64;
                if let Ok(sms) = serde_json::from_str::<DevSms>(&line) {
                    if let Some(code) = sms.code() {
                        self.codes.insert(sms.id, code);
                    }
                }
                line.clear();
            }
        }
    }
}

async fn code_for(tail: &Mutex<SmsTail>, id: u64, deadline: Duration) -> Option<String> {
    let started = Instant::now();
    while started.elapsed() < deadline {
        {
            let mut t = tail.lock().expect("tail");
            if let Some(code) = t.codes.remove(&id) {
                return Some(code);
            }
            t.refresh();
            if let Some(code) = t.codes.remove(&id) {
                return Some(code);
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

fn card_seed(args: &Args) -> u64 {
    args.card_seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() % 900 + 100)
    })
}

fn pan(n: u64) -> String {
    ledger_client::sample::card_number(n)
}

/// Opens (and for payments enrols, through `channel`) the accounts, funded.
async fn setup(
    client: &Client,
    channel: &Client,
    args: &Args,
    tail: &Mutex<SmsTail>,
) -> Result<(Vec<(AccountId, u64)>, Option<Payee>), String> {
    let mut accounts = Vec::new();
    for i in 0..args.accounts {
        let n = card_seed(args) * 1_000_000 + i;
        let request = OpenAccountRequest {
            holder_name: format!("bench {n}"),
            card_number: Secret::new(pan(n)),
            card_password: Secret::new("246810"),
            phone: ledger_client::sample::phone(n),
            flags: CampaignFlags::default(),
        };
        let account = match client.submit(Operation::OpenAccount(request)).await {
            Ok(Reply::AccountOpened { account }) => account,
            other => return Err(format!("opening account {n}: {other:?}")),
        };
        client
            .submit(Operation::Command(Command::Deposit {
                account,
                amount_fen: 1_000_000_000,
            }))
            .await
            .map_err(|e| e.to_string())?;
        if args.payments {
            let phone = ledger_client::sample::phone(n);
            channel
                .submit(Operation::EpayBegin {
                    card_number: Secret::new(pan(n)),
                    phone,
                })
                .await
                .map_err(|e| format!("enrol step 1: {e}"))?;
            channel
                .submit(Operation::EpayChooseAlias {
                    account,
                    card_password: Secret::new("246810"),
                    alias: "bench".into(),
                })
                .await
                .map_err(|e| format!("enrol step 2: {e}"))?;
            let Ok(Reply::ChallengeIssued { challenge, .. }) =
                channel.submit(Operation::EpayConfirm { account }).await
            else {
                return Err("enrol step 3".into());
            };
            let code = code_for(tail, challenge.0, Duration::from_secs(10))
                .await
                .ok_or("no enrolment SMS")?;
            channel
                .submit(Operation::EpayActivate {
                    account,
                    code: Secret::new(code),
                })
                .await
                .map_err(|e| format!("enrol step 4: {e}"))?;
        }
        accounts.push((account, n));
    }
    let merchant = if args.payments {
        let (settlement, _) = accounts.pop().ok_or("need at least two accounts")?;
        match client
            .submit(Operation::Command(Command::RegisterMerchant {
                kind: MerchantKind::Online,
                name: "bench shop".into(),
                settlement_account: settlement,
                contact_phone: "13900000000".into(),
                terminals: 1,
            }))
            .await
        {
            Ok(Reply::MerchantRegistered { merchant }) => Some(Payee::Merchant(merchant)),
            other => return Err(format!("register merchant: {other:?}")),
        }
    } else {
        None
    };
    Ok((accounts, merchant))
}

/// The processes listening on the endpoints' ports (the nodes under load: not other
/// ledger-node processes on the machine), from /proc's sockets.
fn endpoint_processes(endpoints: &[String]) -> Vec<u32> {
    let ports: Vec<u16> = endpoints
        .iter()
        .filter_map(|e| e.rsplit_once(':')?.1.parse().ok())
        .collect();
    // Listening sockets (state 0A) on those ports: their inodes.
    let mut inodes = std::collections::BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if *state == "0A" && port.is_some_and(|p| ports.contains(&p)) {
                inodes.insert(format!("socket:[{inode}]"));
            }
        }
    }
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let listens = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|target| inodes.contains(target.to_string_lossy().as_ref()))
        });
        if listens {
            pids.push(pid);
        }
    }
    pids
}

/// Peak resident memory of each node process (`endpoint_processes`), in KiB.
fn node_peak_memory_kib(nodes: &[u32]) -> Vec<(u32, u64)> {
    nodes
        .iter()
        .filter_map(|pid| Some((*pid, peak_memory_kib(&pid.to_string())?)))
        .collect()
}

/// Peak resident memory (VmHWM) of process `pid` ("self" for this one), in KiB.
fn peak_memory_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// `--batch`: 1 to `MAX_BATCH`.
fn batch_size(text: &str) -> Result<usize, String> {
    let batch: usize = text.parse().map_err(|e| format!("{e}"))?;
    if (1..=ledger_wire::api::MAX_BATCH).contains(&batch) {
        Ok(batch)
    } else {
        Err(format!(
            "a batch holds 1 to {} requests (the protocol's MAX_BATCH)",
            ledger_wire::api::MAX_BATCH
        ))
    }
}

/// CPU time (user + system) of process `pid` ("self" for this one) so far, in seconds.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces, within parentheses).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((utime + stime) as f64 / ticks)
}

/// CPU seconds so far of each node process.
fn node_cpu_seconds(nodes: &[u32]) -> BTreeMap<u32, f64> {
    nodes
        .iter()
        .filter_map(|pid| Some((*pid, cpu_seconds(&pid.to_string())?)))
        .collect()
}

/// CPU seconds the node processes spent since `before` (a node that started meanwhile
/// counts from zero).
fn node_cpu_since(nodes: &[u32], before: &BTreeMap<u32, f64>) -> f64 {
    node_cpu_seconds(nodes)
        .into_iter()
        .map(|(pid, now)| now - before.get(&pid).copied().unwrap_or(0.0))
        .sum()
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    if args.sweep {
        return sweep(&args).await;
    }
    run(&args).await.map(|_| ())
}

/// `--sweep`: every load of `SWEEP`, then the table.
async fn sweep(args: &Args) -> Result<(), String> {
    let base_seed = card_seed(args);
    let mut rows = Vec::new();
    for (row, (name, concurrency, batch, coalesce, payments)) in SWEEP.into_iter().enumerate() {
        if payments && args.tls.resolve()?.is_none() {
            eprintln!("skipping {name}: payments need TLS certificates");
            continue;
        }
        println!("== {name}");
        let load = Args {
            concurrency,
            batch,
            coalesce,
            payments,
            // Each load opens cards of its own.
            card_seed: Some(base_seed + row as u64),
            sweep: false,
            ..args.clone()
        };
        rows.push((name, run(&load).await?));
        println!();
    }
    println!(
        "| load | ok/s | p50 ms | p99 ms | p99.9 ms | max ms | node CPU s | bench CPU s | node CPU µs/op | node peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (name, m) in rows {
        let [p50, p99, p999, max] = m.latency_ms;
        println!(
            "| {name} | {:.0} | {p50:.2} | {p99:.2} | {p999:.2} | {max:.2} | {:.1} | {:.1} | {:.1} | {:.0} |",
            m.ok_per_s,
            m.node_cpu_s,
            m.bench_cpu_s,
            m.node_cpu_s * 1e6 / m.ok.max(1) as f64,
            m.node_peak_mib
        );
    }
    Ok(())
}

/// One load: setup, the run, what it measured (printed, and returned).
async fn run(args: &Args) -> Result<Measured, String> {
    let mut config = ClientConfig::new(args.endpoints.clone());
    config.tls = args.tls.resolve()?;
    config.call_timeout = Duration::from_secs(10);
    // Each worker has a client of its own: room for its whole batch at once (a batch above
    // the in-flight bound is refused, and the run would measure nothing but refusals).
    config.max_in_flight = config.max_in_flight.max(args.batch);
    let client_config = config.clone();
    let client = Arc::new(Client::new(config));
    let tail = Arc::new(Mutex::new(SmsTail::new(&args.data_dir)));
    // Payments act in their roles: the channel enrols the cards, the merchant takes the
    // payments (certificates from --certs; the dev CA issues the merchant's).
    let as_identity = |tls| {
        let mut config = client_config.clone();
        config.tls = Some(tls);
        config
    };
    let channel = match (args.payments, &client_config.tls) {
        (false, _) => None,
        (true, None) => return Err(
            "--payments acts as the channel and a merchant: it needs TLS certificates (--certs)"
                .into(),
        ),
        (true, Some(_)) => {
            let dir = args.tls.certs_dir();
            let channel = issued_identity(&dir, &dev_channel())?;
            Some(Client::new(as_identity(channel)))
        }
    };
    eprintln!("setting up {} accounts…", args.accounts);
    let (accounts, merchant) =
        setup(&client, channel.as_ref().unwrap_or(&client), args, &tail).await?;
    let worker_config = match merchant {
        Some(Payee::Merchant(merchant)) => as_identity(issued_identity(
            &args.tls.certs_dir(),
            &Principal::Merchant { merchant },
        )?),
        _ => client_config.clone(),
    };
    let webhook = if args.hanging_webhook {
        Some(hanging_webhook().await?)
    } else if args.accepting_webhook {
        Some(accepting_webhook().await?)
    } else {
        args.webhook.clone()
    };
    // The merchant's HTTPS client for --http: its certificate, the cluster CA.
    let http = match (&args.http, &worker_config.tls) {
        (None, _) => None,
        (Some(_), None) => return Err("--http needs the merchant's certificate (--certs)".into()),
        (Some(base), Some(identity)) => {
            let client = reqwest::Client::builder()
                .tls_backend_preconfigured(identity.client_config().as_ref().clone())
                .no_proxy()
                .pool_max_idle_per_host(args.concurrency)
                .timeout(Duration::from_secs(30))
                .build()
                .map_err(|e| format!("the HTTP client: {e}"))?;
            Some((client, base.trim_end_matches('/').to_owned()))
        }
    };
    let hook_client = Client::new(worker_config.clone());
    let set_hook = |on: bool| {
        let (client, url) = (&hook_client, webhook.clone());
        async move {
            let (Some(url), Some(Payee::Merchant(merchant))) = (url, merchant) else {
                return Ok(());
            };
            client
                .set_webhook(merchant, on.then_some(url.as_str()))
                .await
                .map(|_| ())
                .map_err(|e| format!("setting the webhook {url} (on: {on}): {e}"))
        }
    };
    if let Some(url) = &webhook {
        eprintln!("the bench merchant pushes its events to {url}");
    }
    let accounts = Arc::new(accounts);
    eprintln!(
        "running {} for {} s with {} clients, batch {}{}…",
        if args.payments {
            "two-step payments"
        } else {
            "transfers"
        },
        args.duration,
        args.concurrency,
        args.batch,
        if args.coalesce > 0 {
            format!(
                ", one client coalescing them into {} requests at most",
                args.coalesce
            )
        } else {
            String::new()
        }
    );
    let nodes = endpoint_processes(&args.endpoints);
    let nodes_cpu_before = node_cpu_seconds(&nodes);
    let bench_cpu_before = cpu_seconds("self").unwrap_or(0.0);
    let stop = Arc::new(AtomicBool::new(false));
    let phase = Arc::new(AtomicUsize::new(0));
    let phases = args.phases as usize;
    let started = Instant::now();
    let mut tasks = Vec::new();
    // With --coalesce, one client for all (multibatching).
    let shared = (args.coalesce > 0).then(|| {
        Arc::new(Client::new(ClientConfig {
            coalesce: args.coalesce,
            ..worker_config.clone()
        }))
    });
    for worker in 0..args.concurrency {
        // Else one client (one idempotency session) per worker, as each merchant has its own.
        let client = shared
            .clone()
            .unwrap_or_else(|| Arc::new(Client::new(worker_config.clone())));
        let (accounts, stop, tail) = (accounts.clone(), stop.clone(), tail.clone());
        let (phase, http) = (phase.clone(), http.clone());
        let (batch, payments) = (args.batch, args.payments);
        tasks.push(tokio::spawn(async move {
            // Per phase: latencies, and requests that succeeded.
            let mut latencies_us = vec![Vec::new(); phases];
            let mut ok = vec![0u64; phases];
            let mut failed = 0u64;
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            let mut rng = StdRng::seed_from_u64(worker as u64 + 1);
            let mut order = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                if payments {
                    let (_, n) = accounts[(worker + order as usize * 7) % accounts.len()];
                    order += 1;
                    let p = phase.load(Ordering::Relaxed);
                    if let Some((http, base)) = http.as_ref().filter(|_| hooked_in(p, phases)) {
                        let outcome = http_payment(
                            http,
                            base,
                            &tail,
                            ledger_client::sample::phone(n),
                            &pan(n)[10..],
                            format!("w{worker}-{order}"),
                        )
                        .await;
                        match outcome {
                            Ok(()) => {
                                ok[p] += 1;
                                latencies_us[p].push(t.elapsed().as_micros() as u64);
                            }
                            Err(kind) => {
                                failed += 1;
                                *errors.entry(kind).or_default() += 1;
                            }
                        }
                        continue;
                    }
                    let begin = Operation::PaymentBegin {
                        phone: ledger_client::sample::phone(n),
                        last_six: Secret::new(&pan(n)[10..]),
                        payee: merchant.expect("merchant"),
                        amount_fen: 100,
                        order_id: format!("w{worker}-{order}"),
                    };
                    let settled = match client.submit(begin).await {
                        Ok(Reply::PaymentPending {
                            payment, challenge, ..
                        }) => match code_for(&tail, challenge.0, Duration::from_secs(10)).await {
                            Some(code) => client
                                .submit(Operation::PaymentConfirm {
                                    payment,
                                    code: Secret::new(code),
                                })
                                .await
                                .is_ok(),
                            None => false,
                        },
                        _ => false,
                    };
                    if settled {
                        let p = phase.load(Ordering::Relaxed);
                        ok[p] += 1;
                        latencies_us[p].push(t.elapsed().as_micros() as u64);
                    } else {
                        failed += 1;
                    }
                    continue;
                }
                let ops: Vec<Operation> = (0..batch)
                    .map(|_| {
                        let a = rng.gen::<u64>() as usize % accounts.len();
                        let b = (a + 1 + rng.gen::<u64>() as usize % (accounts.len() - 1))
                            % accounts.len();
                        Operation::Command(Command::Transfer {
                            source: accounts[a].0,
                            target: accounts[b].0,
                            amount_fen: 1,
                        })
                    })
                    .collect();
                match client.submit_batch(ops).await {
                    Ok(results) => {
                        let p = phase.load(Ordering::Relaxed);
                        for r in &results {
                            match r {
                                Ok(_) => ok[p] += 1,
                                Err(e) => {
                                    failed += 1;
                                    *errors.entry(error_kind(e)).or_default() += 1;
                                }
                            }
                        }
                        latencies_us[p].push(t.elapsed().as_micros() as u64);
                    }
                    Err(e) => {
                        failed += batch as u64;
                        *errors.entry(error_kind(&e)).or_default() += batch as u64;
                    }
                }
            }
            (latencies_us, ok, failed, errors)
        }));
    }
    // A bar over the run's seconds when standard error is a terminal (nothing otherwise).
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(args.duration),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} s")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    let ticker = {
        let (bar, stop) = (bar.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                bar.set_position(started.elapsed().as_secs());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    // Each phase's length: the webhook is switched at its start and end, outside it.
    let mut phase_secs = Vec::with_capacity(phases);
    let phase_length = Duration::from_secs(args.duration) / phases as u32;
    for p in 0..phases {
        let hooked = hooked_in(p, phases);
        if hooked && (p == 0 || !hooked_in(p - 1, phases)) {
            set_hook(true).await?;
        }
        phase.store(p, Ordering::Relaxed);
        let began = Instant::now();
        tokio::time::sleep(phase_length).await;
        phase_secs.push(began.elapsed().as_secs_f64());
        if hooked && phases > 1 && !hooked_in(p + 1, phases) {
            set_hook(false).await?;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = ticker.await;
    bar.finish_and_clear();
    let mut latencies = vec![Vec::new(); phases];
    let mut ok = vec![0u64; phases];
    let mut failed = 0;
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for task in tasks {
        let (l, o, f, e) = task.await.map_err(|e| e.to_string())?;
        for p in 0..phases {
            latencies[p].extend(&l[p]);
            ok[p] += o[p];
        }
        failed += f;
        for (k, v) in e {
            *errors.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Processes that listen on the endpoints now (a node restarted meanwhile included).
    let nodes = endpoint_processes(&args.endpoints);
    let node_cpu_s = node_cpu_since(&nodes, &nodes_cpu_before);
    let bench_cpu_s = cpu_seconds("self").unwrap_or(0.0) - bench_cpu_before;
    let what = if args.payments {
        "payments"
    } else {
        "transfers"
    };
    let all_ok: u64 = ok.iter().sum();
    println!(
        "{what}: {all_ok} ok, {failed} failed in {elapsed:.1} s = {:.0} {what}/s (concurrency {}, batch {})",
        all_ok as f64 / elapsed,
        args.concurrency,
        args.batch
    );
    let unit = if args.payments {
        "payment (both steps)"
    } else {
        "submit call"
    };
    let latency_line = |sorted: &[u64]| {
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            percentile(sorted, 0.50) as f64 / 1e3,
            percentile(sorted, 0.99) as f64 / 1e3,
            percentile(sorted, 0.999) as f64 / 1e3,
            sorted.last().copied().unwrap_or(0) as f64 / 1e3
        )
    };
    let mut everything: Vec<u64> = latencies.iter().flatten().copied().collect();
    everything.sort_unstable();
    println!("latency per {unit}: {}", latency_line(&everything));
    let alternates = webhook.is_some() || http.is_some();
    if phases > 1 {
        let (plain_name, hooked_name) = if http.is_some() {
            ("the Rust client", "the HTTP gateway")
        } else if args.hanging_webhook {
            ("no webhook", "a hanging webhook")
        } else if args.accepting_webhook {
            ("no webhook", "an accepting webhook")
        } else {
            ("no webhook", "the webhook")
        };
        let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let mut pooled: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
        for p in 0..phases {
            let hooked = alternates && hooked_in(p, phases);
            latencies[p].sort_unstable();
            let rate = ok[p] as f64 / phase_secs[p];
            rates[usize::from(hooked)].push(rate);
            pooled[usize::from(hooked)].extend(&latencies[p]);
            println!(
                "phase {} ({}): {rate:.0} {what}/s, {}",
                p + 1,
                if hooked { hooked_name } else { plain_name },
                latency_line(&latencies[p])
            );
        }
        if alternates {
            let [without, with] = rates.map(|r| r.iter().sum::<f64>() / r.len() as f64);
            println!(
                "mean of the phases: {without:.0} {what}/s with {plain_name}, {with:.0} with \
                 {hooked_name} ({:+.1}%)",
                (with / without - 1.0) * 100.0
            );
            for (name, mut all) in [plain_name, hooked_name].into_iter().zip(pooled) {
                all.sort_unstable();
                println!("latency per {unit} with {name}: {}", latency_line(&all));
            }
        }
    }
    for (error, count) in &errors {
        println!("  {count} failed: {error}");
    }
    if nodes.is_empty() {
        println!(
            "(no process on this machine listens on the endpoints: node CPU and memory unknown)"
        );
    }
    println!(
        "CPU during the load: ledger-node processes {node_cpu_s:.1} s ({:.1} µs per {}), ledger-bench {bench_cpu_s:.1} s",
        node_cpu_s * 1e6 / all_ok.max(1) as f64,
        what.trim_end_matches('s')
    );
    let peaks = node_peak_memory_kib(&nodes);
    for (pid, kib) in &peaks {
        println!(
            "node process {pid}: peak memory {:.1} MiB",
            *kib as f64 / 1024.0
        );
    }
    if let Some(kib) = peak_memory_kib("self") {
        println!("ledger-bench: peak memory {:.1} MiB", kib as f64 / 1024.0);
    }
    if args.data_dir.exists() {
        println!(
            "disk use of {}: {:.1} MiB",
            args.data_dir.display(),
            dir_size(&args.data_dir) as f64 / 1048576.0
        );
    }
    // A consistency spot check: the cluster still answers a linearizable read.
    if let Some((account, _)) = accounts.first() {
        if let Ok(QueryReply::Account(Some(view))) = client
            .query(Query::Account(*account), Consistency::Linearizable)
            .await
        {
            println!(
                "spot check: account {} balance {} fen",
                view.account, view.balance_fen
            );
        }
    }
    Ok(Measured {
        ok_per_s: all_ok as f64 / elapsed,
        latency_ms: [0.50, 0.99, 0.999, 1.0].map(|p| percentile(&everything, p) as f64 / 1e3),
        node_cpu_s,
        bench_cpu_s,
        ok: all_ok,
        node_peak_mib: peaks.iter().map(|(_, kib)| *kib).max().unwrap_or(0) as f64 / 1024.0,
    })
}
