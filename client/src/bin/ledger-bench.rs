//! `ledger-bench`: a load generator against a running cluster.
//!
//! Concurrent clients do book transfers (or, with `--payments`, full two-step e-Pay payments
//! with the OTP read from the development SMS outbox) for a fixed time, then print the
//! throughput, latency percentiles (p50, p99, p99.9, max), and the nodes' peak memory and
//! disk use. Only ever sends to the endpoints it is given (default: the `ledger-node dev`
//! cluster on 127.0.0.1).

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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
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
    /// Seconds of load after setup.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Accounts to transfer between.
    #[arg(long, default_value_t = 64)]
    accounts: u64,
    /// Requests per submit call (batching in the client protocol).
    #[arg(long, default_value_t = 1)]
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

/// Peak resident memory (VmHWM) of every running ledger-node process, in KiB.
fn node_peak_memory_kib() -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let first = cmdline.split(|b| *b == 0).next().unwrap_or_default();
        if !String::from_utf8_lossy(first).ends_with("ledger-node") {
            continue;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        if let Some(kib) = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
        {
            out.push((pid, kib));
        }
    }
    out
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

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let mut config = ClientConfig::new(args.endpoints.clone());
    config.tls = args.tls.resolve()?;
    config.call_timeout = Duration::from_secs(10);
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
        setup(&client, channel.as_ref().unwrap_or(&client), &args, &tail).await?;
    let worker_config = match merchant {
        Some(Payee::Merchant(merchant)) => as_identity(issued_identity(
            &args.tls.certs_dir(),
            &Principal::Merchant { merchant },
        )?),
        _ => client_config.clone(),
    };
    if let (Some(url), Some(Payee::Merchant(merchant))) = (&args.webhook, merchant) {
        Client::new(worker_config.clone())
            .set_webhook(merchant, Some(url))
            .await
            .map_err(|e| format!("registering the webhook {url}: {e}"))?;
        eprintln!("merchant {merchant} pushes its events to {url}");
    }
    let accounts = Arc::new(accounts);
    eprintln!(
        "running {} for {} s with {} clients, batch {}…",
        if args.payments {
            "two-step payments"
        } else {
            "transfers"
        },
        args.duration,
        args.concurrency,
        args.batch
    );
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..args.concurrency {
        // One client (one idempotency session) per worker, as each merchant has its own.
        let client = Arc::new(Client::new(worker_config.clone()));
        let (accounts, stop, tail) = (accounts.clone(), stop.clone(), tail.clone());
        let (batch, payments) = (args.batch, args.payments);
        tasks.push(tokio::spawn(async move {
            let mut latencies_us = Vec::new();
            let (mut ok, mut failed) = (0u64, 0u64);
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            let mut rng = StdRng::seed_from_u64(worker as u64 + 1);
            let mut order = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                if payments {
                    let (_, n) = accounts[(worker + order as usize * 7) % accounts.len()];
                    order += 1;
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
                        ok += 1;
                        latencies_us.push(t.elapsed().as_micros() as u64);
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
                        for r in &results {
                            match r {
                                Ok(_) => ok += 1,
                                Err(e) => {
                                    failed += 1;
                                    *errors.entry(error_kind(e)).or_default() += 1;
                                }
                            }
                        }
                        latencies_us.push(t.elapsed().as_micros() as u64);
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
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let (mut ok, mut failed) = (0, 0);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for task in tasks {
        let (l, o, f, e) = task.await.map_err(|e| e.to_string())?;
        latencies.extend(l);
        ok += o;
        failed += f;
        for (k, v) in e {
            *errors.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let what = if args.payments {
        "payments"
    } else {
        "transfers"
    };
    println!(
        "{what}: {ok} ok, {failed} failed in {elapsed:.1} s = {:.0} {what}/s (concurrency {}, batch {})",
        ok as f64 / elapsed,
        args.concurrency,
        args.batch
    );
    let unit = if args.payments {
        "payment (both steps)"
    } else {
        "submit call"
    };
    println!(
        "latency per {unit}: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        percentile(&latencies, 0.50) as f64 / 1e3,
        percentile(&latencies, 0.99) as f64 / 1e3,
        percentile(&latencies, 0.999) as f64 / 1e3,
        latencies.last().copied().unwrap_or(0) as f64 / 1e3
    );
    for (error, count) in &errors {
        println!("  {count} failed: {error}");
    }
    for (pid, kib) in node_peak_memory_kib() {
        println!(
            "ledger-node pid {pid}: peak memory {:.1} MiB",
            kib as f64 / 1024.0
        );
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
    Ok(())
}
