//! `ledgerctl`: the operator's and merchant's command line over the client library.
//!
//! Human-readable output by default, `--json` for scripts. Without `--endpoints` it talks to
//! the `ledger-node dev` cluster on 127.0.0.1.

use clap::{Parser, Subcommand, ValueEnum};
use ledger_client::{Client, ClientConfig, ClientError, DEV_ENDPOINTS};
use ledger_core::command::CampaignFlags;
use ledger_core::intake::{OpenAccountRequest, Secret};
use ledger_core::types::{
    AccountId, AccountStatus, Eligibility, MerchantId, MerchantKind, Payee, PaymentId, PoolId,
    VipTier, YearMonth,
};
use ledger_wire::dev_sms::{read_outbox, DevSms, DEV_OUTBOX_FILE};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

mod demo;

#[derive(Parser)]
#[command(
    name = "ledgerctl",
    version,
    about = "Command line for the payment ledger: accounts, e-Pay, merchants, vouchers, cluster status."
)]
struct Cli {
    /// Client endpoints of the cluster, comma-separated (default: the dev cluster).
    #[arg(long, global = true, value_delimiter = ',', env = "LEDGER_ENDPOINTS")]
    endpoints: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Time allowed for one call to one node, in milliseconds.
    #[arg(long, global = true, default_value_t = 5_000)]
    timeout_ms: u64,
    /// The dev cluster's data directory (where `sms tail` and `demo` read SMS messages).
    #[arg(long, global = true, default_value = "./data/dev")]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show the cluster: leader, term, each node's applied index and lag, health.
    Status,
    /// Open a card account.
    OpenAccount {
        #[arg(long)]
        name: String,
        /// Card number (16-19 digits, Luhn-valid); `-` reads it from standard input.
        #[arg(long)]
        card: String,
        /// Card password (6 digits); `-` reads it from standard input.
        #[arg(long)]
        password: String,
        /// Reserved mobile phone (11 digits).
        #[arg(long)]
        phone: String,
        #[arg(long)]
        etc_bound: bool,
        #[arg(long)]
        savings_product: bool,
    },
    /// Show an account.
    Account { id: u64 },
    /// Cash in (amount in yuan, e.g. 100 or 12.34).
    Deposit { id: u64, amount: String },
    /// Cash out.
    Withdraw { id: u64, amount: String },
    /// Book transfer between two accounts.
    Transfer { from: u64, to: u64, amount: String },
    /// Freeze an account.
    Freeze { id: u64 },
    /// Unfreeze an account.
    Unfreeze { id: u64 },
    /// Close an account (its balance must be zero).
    Close { id: u64 },
    /// Set campaign flags (those not given keep their value).
    Flags {
        id: u64,
        /// An ETC device is bound to the card.
        #[arg(long)]
        etc_bound: Option<bool>,
        /// The 中邮期缴 savings product was bought during the campaign.
        #[arg(long)]
        savings_product: Option<bool>,
    },
    /// Set the VIP tier.
    Vip { id: u64, tier: Tier },
    /// e-Pay enrolment and limits.
    #[command(subcommand)]
    Epay(EpayCmd),
    /// Two-step e-Pay payments and small transfers.
    #[command(subcommand)]
    Pay(PayCmd),
    /// Merchants.
    #[command(subcommand)]
    Merchant(MerchantCmd),
    /// Voucher pools.
    #[command(subcommand)]
    Pool(PoolCmd),
    /// Close a China Standard Time month (YYYY-MM): merchant figures and fee tiers.
    CloseMonth { month: String },
    /// The development SMS outbox.
    #[command(subcommand)]
    Sms(SmsCmd),
    /// Play the source article's story against a running cluster, checking every step.
    Demo,
}

#[derive(Subcommand)]
enum EpayCmd {
    /// Step 1: card number and reserved phone.
    Begin {
        /// Card number; `-` reads it from standard input.
        #[arg(long)]
        card: String,
        #[arg(long)]
        phone: String,
    },
    /// Step 2: card password and alias.
    Alias {
        /// The account being enrolled (printed by step 1).
        #[arg(long)]
        account: u64,
        /// Card password; `-` reads it from standard input.
        #[arg(long)]
        password: String,
        /// The anti-phishing alias shown in every SMS (up to 16 characters).
        #[arg(long)]
        alias: String,
    },
    /// Step 3: confirm; an OTP is sent by SMS.
    Confirm {
        #[arg(long)]
        account: u64,
    },
    /// Step 4: the OTP.
    Activate {
        /// The account being enrolled.
        #[arg(long)]
        account: u64,
        /// The 6-digit code from the SMS; `-` reads it from standard input.
        #[arg(long)]
        code: String,
    },
    /// Lower the limits (yuan), within the bank's caps.
    Limits {
        #[arg(long)]
        account: u64,
        #[arg(long)]
        per_payment: String,
        #[arg(long)]
        per_day: String,
    },
    /// Show a credential.
    Show { account: u64 },
}

#[derive(Subcommand)]
enum PayCmd {
    /// Step 1 (merchant): payer's phone and last six card digits, amount, order.
    Begin {
        #[arg(long)]
        phone: String,
        #[arg(long)]
        last_six: String,
        /// Pay a merchant…
        #[arg(
            long,
            conflicts_with = "to_account",
            required_unless_present = "to_account"
        )]
        merchant: Option<u64>,
        /// …or make a small transfer to an account.
        #[arg(long)]
        to_account: Option<u64>,
        /// Amount in yuan.
        #[arg(long)]
        amount: String,
        /// The merchant's order id (a second payment for the same order replaces a pending one).
        #[arg(long)]
        order: String,
    },
    /// Step 2 (payer): the OTP.
    Confirm {
        /// The payment (printed by step 1).
        #[arg(long)]
        payment: u64,
        /// The 6-digit code from the SMS; `-` reads it from standard input.
        #[arg(long)]
        code: String,
    },
    /// Show a payment.
    Show { id: u64 },
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Pos,
    Shangyitong,
    Online,
}

#[derive(Clone, Copy, ValueEnum)]
enum Tier {
    None,
    Platinum,
    Diamond,
}

#[derive(Clone, Copy, ValueEnum)]
enum Who {
    Anyone,
    Etc,
    Savings,
    Platinum,
    Diamond,
}

#[derive(Subcommand)]
enum MerchantCmd {
    /// Register a merchant.
    Register {
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long)]
        name: String,
        /// Settlement account.
        #[arg(long)]
        account: u64,
        /// Mobile (POS, online) or landline like 0731-84567890 (商易通).
        #[arg(long)]
        phone: String,
        #[arg(long, default_value_t = 1)]
        terminals: u32,
    },
    /// Show a merchant's counters, reward and fee tier.
    Show { id: u64 },
    /// Transfer out of the settlement account (商易通 merchants pay their tier's fee).
    Transfer {
        #[arg(long)]
        merchant: u64,
        #[arg(long)]
        to: u64,
        #[arg(long)]
        amount: String,
    },
}

#[derive(Subcommand)]
enum PoolCmd {
    /// Create a pool, open from now for `--days`.
    Create {
        #[arg(long)]
        name: String,
        /// Face value in yuan.
        #[arg(long)]
        face: String,
        #[arg(long)]
        capacity: u64,
        #[arg(long, value_enum, default_value = "anyone")]
        eligibility: Who,
        #[arg(long, default_value_t = 30)]
        days: u64,
    },
    /// Claim a voucher for an account.
    Claim {
        #[arg(long)]
        pool: u64,
        #[arg(long)]
        account: u64,
    },
    /// Show a pool and what remains.
    Show { id: u64 },
}

#[derive(Subcommand)]
enum SmsCmd {
    /// Print the latest messages of the dev cluster's SMS outbox (oldest first).
    Tail {
        /// How many.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: usize,
        /// Keep printing new messages until interrupted.
        #[arg(long)]
        follow: bool,
    },
}

/// A secret argument; `-` reads it from standard input instead, which keeps it out of the
/// process list and the shell history.
fn secret(value: String) -> Result<Secret, String> {
    if value != "-" {
        return Ok(Secret::new(value));
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("reading standard input: {e}"))?;
    Ok(Secret::new(line.trim().to_owned()))
}

/// Parses yuan with at most two decimals into fen, exactly (no floating point).
pub fn parse_yuan(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}` is not an amount in yuan (like 100 or 12.34)");
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let frac: u64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(100)
        .and_then(|f| f.checked_add(frac))
        .ok_or_else(bad)
}

/// Formats fen as yuan.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:02}",
        fen.unsigned_abs() / 100,
        fen.unsigned_abs() % 100
    )
}

/// Prints a result as text or JSON.
struct Out {
    json: bool,
}

impl Out {
    fn show<T: Serialize>(&self, text: impl FnOnce() -> String, value: &T) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value)
                    .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
            );
        } else {
            println!("{}", text());
        }
    }
}

fn client(cli: &Cli) -> Client {
    let endpoints = if cli.endpoints.is_empty() {
        DEV_ENDPOINTS.iter().map(|e| e.to_string()).collect()
    } else {
        cli.endpoints.clone()
    };
    let mut config = ClientConfig::new(endpoints);
    config.call_timeout = Duration::from_millis(cli.timeout_ms);
    config.max_attempts = 6;
    Client::new(config)
}

/// Every SMS in the dev outboxes under `data_dir`, deduplicated by message id, oldest first.
fn outbox(data_dir: &Path) -> Vec<DevSms> {
    let mut messages: Vec<DevSms> = std::fs::read_dir(data_dir)
        .map(|entries| {
            entries
                .flatten()
                .flat_map(|e| read_outbox(&e.path().join(DEV_OUTBOX_FILE)).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    messages.sort_by_key(|m| m.id);
    messages.dedup_by_key(|m| m.id);
    messages
}

fn explain(e: &ClientError) -> String {
    match e {
        ClientError::Unavailable { .. } => format!("{e}\nIs the cluster running? (`cargo run --release -p ledger-node -- dev`, or pass --endpoints)"),
        other => other.to_string(),
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let out = Out { json: cli.json };
    let c = client(&cli);
    let fail = |e: ClientError| explain(&e);
    match cli.command {
        Cmd::Status => {
            let statuses = c.cluster_status().await;
            let leader = statuses
                .iter()
                .find_map(|(_, s)| s.as_ref().ok().and_then(|s| s.leader));
            let leader_log = statuses
                .iter()
                .filter_map(|(_, s)| s.as_ref().ok())
                .filter_map(|s| s.last_log_index)
                .max()
                .unwrap_or(0);
            let rows: Vec<serde_json::Value> = statuses
                .iter()
                .map(|(endpoint, s)| match s {
                    Ok(s) => serde_json::json!({
                        "endpoint": endpoint, "id": s.id, "role": s.role, "term": s.term, "leader": s.leader,
                        "applied": s.applied_index, "lag": leader_log.saturating_sub(s.applied_index.unwrap_or(0)), "healthy": true,
                    }),
                    Err(e) => serde_json::json!({ "endpoint": endpoint, "healthy": false, "error": e }),
                })
                .collect();
            out.show(
                || {
                    let mut t = format!(
                        "leader: {}\n{:<22} {:>4} {:<10} {:>6} {:>10} {:>6}  health\n",
                        leader.map_or("none".into(), |l| format!("node {l}")),
                        "endpoint",
                        "id",
                        "role",
                        "term",
                        "applied",
                        "lag"
                    );
                    for r in &rows {
                        if r["healthy"] == true {
                            let field = |k: &str| match &r[k] {
                                serde_json::Value::String(s) => s.clone(),
                                serde_json::Value::Null => "-".to_owned(),
                                v => v.to_string(),
                            };
                            t += &format!(
                                "{:<22} {:>4} {:<10} {:>6} {:>10} {:>6}  ok\n",
                                field("endpoint"),
                                field("id"),
                                field("role"),
                                field("term"),
                                field("applied"),
                                field("lag")
                            );
                        } else {
                            t += &format!(
                                "{:<22} unreachable: {}\n",
                                r["endpoint"].as_str().unwrap_or(""),
                                r["error"].as_str().unwrap_or("")
                            );
                        }
                    }
                    t.trim_end().to_owned()
                },
                &rows,
            );
            if statuses.iter().all(|(_, s)| s.is_err()) {
                return Err("no node answered; is the cluster running? (`cargo run --release -p ledger-node -- dev`, or pass --endpoints)".into());
            }
        }
        Cmd::OpenAccount {
            name,
            card,
            password,
            phone,
            etc_bound,
            savings_product,
        } => {
            let account = c
                .open_account(OpenAccountRequest {
                    holder_name: name,
                    card_number: secret(card)?,
                    card_password: secret(password)?,
                    phone,
                    flags: CampaignFlags {
                        etc_bound,
                        savings_product,
                    },
                })
                .await
                .map_err(fail)?;
            out.show(
                || format!("opened account {account}"),
                &serde_json::json!({ "account": account.0 }),
            );
        }
        Cmd::Account { id } => {
            let view = c
                .account(AccountId(id))
                .await
                .map_err(fail)?
                .ok_or(format!("no account {id}"))?;
            out.show(
                || {
                    format!(
                        "account {}  {}  card ****{}  phone {}\nstatus {:?}  balance {} yuan  vip {:?}  etc {}  savings {}{}",
                        view.account,
                        view.holder_name,
                        view.pan_last4,
                        view.phone,
                        view.status,
                        yuan(view.balance_fen),
                        view.vip,
                        view.flags.etc_bound,
                        view.flags.savings_product,
                        view.merchant.map_or(String::new(), |m| format!("  settles merchant {m}"))
                    )
                },
                &view,
            );
        }
        Cmd::Deposit { id, amount } => {
            let balance = c
                .deposit(AccountId(id), parse_yuan(&amount)?)
                .await
                .map_err(fail)?;
            out.show(
                || format!("account {id} balance {} yuan", yuan(balance)),
                &serde_json::json!({ "account": id, "balance_fen": balance }),
            );
        }
        Cmd::Withdraw { id, amount } => {
            let balance = c
                .withdraw(AccountId(id), parse_yuan(&amount)?)
                .await
                .map_err(fail)?;
            out.show(
                || format!("account {id} balance {} yuan", yuan(balance)),
                &serde_json::json!({ "account": id, "balance_fen": balance }),
            );
        }
        Cmd::Transfer { from, to, amount } => {
            let (a, b) = c
                .transfer(AccountId(from), AccountId(to), parse_yuan(&amount)?)
                .await
                .map_err(fail)?;
            out.show(
                || {
                    format!(
                        "account {from} balance {} yuan; account {to} balance {} yuan",
                        yuan(a),
                        yuan(b)
                    )
                },
                &serde_json::json!({ "source_balance_fen": a, "target_balance_fen": b }),
            );
        }
        Cmd::Freeze { id } => status(&c, &out, id, AccountStatus::Frozen).await?,
        Cmd::Unfreeze { id } => status(&c, &out, id, AccountStatus::Active).await?,
        Cmd::Close { id } => status(&c, &out, id, AccountStatus::Closed).await?,
        Cmd::Flags {
            id,
            etc_bound,
            savings_product,
        } => {
            if etc_bound.is_none() && savings_product.is_none() {
                return Err(
                    "give --etc-bound true|false and/or --savings-product true|false".into(),
                );
            }
            let view = c
                .account(AccountId(id))
                .await
                .map_err(fail)?
                .ok_or(format!("no account {id}"))?;
            let flags = CampaignFlags {
                etc_bound: etc_bound.unwrap_or(view.flags.etc_bound),
                savings_product: savings_product.unwrap_or(view.flags.savings_product),
            };
            c.set_campaign_flags(AccountId(id), flags)
                .await
                .map_err(fail)?;
            out.show(
                || format!("account {id}: etc {}, savings {}", flags.etc_bound, flags.savings_product),
                &serde_json::json!({ "account": id, "etc_bound": flags.etc_bound, "savings_product": flags.savings_product }),
            );
        }
        Cmd::Vip { id, tier } => {
            let tier = match tier {
                Tier::None => VipTier::None,
                Tier::Platinum => VipTier::Platinum,
                Tier::Diamond => VipTier::Diamond,
            };
            let gift = c.set_vip_tier(AccountId(id), tier).await.map_err(fail)?;
            out.show(
                || {
                    format!(
                        "account {id} is {tier:?}{}",
                        if gift {
                            "; commemorative gift recorded"
                        } else {
                            ""
                        }
                    )
                },
                &serde_json::json!({ "account": id, "gift_recorded": gift }),
            );
        }
        Cmd::Epay(cmd) => epay(&c, &out, cmd).await?,
        Cmd::Pay(cmd) => pay(&c, &out, cmd).await?,
        Cmd::Merchant(cmd) => merchant(&c, &out, cmd).await?,
        Cmd::Pool(cmd) => pool(&c, &out, cmd).await?,
        Cmd::CloseMonth { month } => {
            let bad = || format!("`{month}` is not a month like 2014-12");
            let (y, m) = month.split_once('-').ok_or_else(bad)?;
            let ym = YearMonth::new(y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?)
                .ok_or_else(bad)?;
            let merchants = c.close_month(ym).await.map_err(fail)?;
            out.show(
                || format!("closed {ym}: {merchants} merchants rolled"),
                &serde_json::json!({ "month": month, "merchants": merchants }),
            );
        }
        Cmd::Sms(SmsCmd::Tail { lines, follow }) => {
            let mut shown = 0u64;
            loop {
                let messages = outbox(&cli.data_dir);
                let fresh: Vec<&DevSms> = if shown == 0 {
                    messages.iter().rev().take(lines).rev().collect()
                } else {
                    messages.iter().filter(|m| m.id > shown).collect()
                };
                for m in fresh {
                    if out.json {
                        println!("{}", serde_json::to_string(m).unwrap_or_default());
                    } else {
                        println!("#{} to {}: {}", m.id, m.to, m.text);
                    }
                    shown = shown.max(m.id);
                }
                if !follow {
                    if messages.is_empty() {
                        eprintln!(
                            "no messages in {}/node*/{DEV_OUTBOX_FILE}",
                            cli.data_dir.display()
                        );
                    }
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
        Cmd::Demo => demo::run(&c, &cli.data_dir).await?,
    }
    Ok(())
}

async fn status(c: &Client, out: &Out, id: u64, status: AccountStatus) -> Result<(), String> {
    c.set_account_status(AccountId(id), status)
        .await
        .map_err(|e| explain(&e))?;
    out.show(
        || format!("account {id} is {status:?}"),
        &serde_json::json!({ "account": id, "status": status }),
    );
    Ok(())
}

async fn epay(c: &Client, out: &Out, cmd: EpayCmd) -> Result<(), String> {
    let fail = |e: ClientError| explain(&e);
    match cmd {
        EpayCmd::Begin { card, phone } => {
            let account = c
                .epay_begin(Secret::new(card), &phone)
                .await
                .map_err(fail)?;
            out.show(|| format!("enrolling account {account}; next: ledgerctl epay alias --account {account} --password … --alias …"), &serde_json::json!({ "account": account.0 }));
        }
        EpayCmd::Alias {
            account,
            password,
            alias,
        } => {
            c.epay_choose_alias(AccountId(account), secret(password)?, &alias)
                .await
                .map_err(fail)?;
            out.show(
                || format!("alias chosen; next: ledgerctl epay confirm --account {account}"),
                &serde_json::json!({ "account": account }),
            );
        }
        EpayCmd::Confirm { account } => {
            let issued = c.epay_confirm(AccountId(account)).await.map_err(fail)?;
            out.show(
                || {
                    format!(
                        "code sent by SMS (challenge {}); see `ledgerctl sms tail`",
                        issued.challenge
                    )
                },
                &issued,
            );
        }
        EpayCmd::Activate { account, code } => {
            c.epay_activate(AccountId(account), secret(code)?)
                .await
                .map_err(fail)?;
            out.show(
                || format!("e-Pay active for account {account}"),
                &serde_json::json!({ "account": account }),
            );
        }
        EpayCmd::Limits {
            account,
            per_payment,
            per_day,
        } => {
            let (p, d) = (parse_yuan(&per_payment)?, parse_yuan(&per_day)?);
            c.set_epay_limits(AccountId(account), p, d)
                .await
                .map_err(fail)?;
            out.show(
                || {
                    format!(
                        "limits: {} yuan per payment, {} yuan per day",
                        yuan(p as i64),
                        yuan(d as i64)
                    )
                },
                &serde_json::json!({ "per_payment_fen": p, "per_day_fen": d }),
            );
        }
        EpayCmd::Show { account } => {
            let cred = c
                .credential(AccountId(account))
                .await
                .map_err(fail)?
                .ok_or(format!("account {account} has no e-Pay credential"))?;
            out.show(
                || {
                    format!(
                        "alias {}  limits {} / payment, {} / day  spent today {}",
                        cred.alias,
                        yuan(cred.per_payment_fen as i64),
                        yuan(cred.per_day_fen as i64),
                        yuan(cred.spent_today_fen as i64)
                    )
                },
                &cred,
            );
        }
    }
    Ok(())
}

async fn pay(c: &Client, out: &Out, cmd: PayCmd) -> Result<(), String> {
    let fail = |e: ClientError| explain(&e);
    match cmd {
        PayCmd::Begin {
            phone,
            last_six,
            merchant,
            to_account,
            amount,
            order,
        } => {
            let payee = match (merchant, to_account) {
                (Some(m), _) => Payee::Merchant(MerchantId(m)),
                (None, Some(a)) => Payee::Account(AccountId(a)),
                (None, None) => return Err("give --merchant or --to-account".into()),
            };
            let pending = c
                .begin_payment(
                    &phone,
                    Secret::new(last_six),
                    payee,
                    parse_yuan(&amount)?,
                    &order,
                )
                .await
                .map_err(fail)?;
            out.show(
                || {
                    format!(
                        "payment {} pending; the payer's code is on its way by SMS (challenge {})",
                        pending.payment, pending.challenge
                    )
                },
                &pending,
            );
        }
        PayCmd::Confirm { payment, code } => {
            let s = c
                .confirm_payment(PaymentId(payment), Secret::new(code))
                .await
                .map_err(fail)?;
            out.show(
                || {
                    format!(
                        "payment {} settled: bill {} yuan, debited {} yuan{}{}",
                        s.payment,
                        yuan(s.bill_fen as i64),
                        yuan(s.debited_fen as i64),
                        s.voucher
                            .map_or(String::new(), |p| format!(", voucher of pool {p} used")),
                        if s.reward_granted {
                            "; the merchant earned its reward"
                        } else {
                            ""
                        }
                    )
                },
                &s,
            );
        }
        PayCmd::Show { id } => {
            let p = c
                .payment(PaymentId(id))
                .await
                .map_err(fail)?
                .ok_or(format!("no payment {id}"))?;
            out.show(
                || {
                    format!(
                        "payment {id}: {} yuan from account {} to {:?}, order {}, {:?}",
                        yuan(p.amount_fen as i64),
                        p.payer,
                        p.payee,
                        p.order_id,
                        p.state
                    )
                },
                &p,
            );
        }
    }
    Ok(())
}

async fn merchant(c: &Client, out: &Out, cmd: MerchantCmd) -> Result<(), String> {
    let fail = |e: ClientError| explain(&e);
    match cmd {
        MerchantCmd::Register {
            kind,
            name,
            account,
            phone,
            terminals,
        } => {
            let kind = match kind {
                Kind::Pos => MerchantKind::Pos,
                Kind::Shangyitong => MerchantKind::Shangyitong,
                Kind::Online => MerchantKind::Online,
            };
            let m = c
                .register_merchant(kind, &name, AccountId(account), &phone, terminals)
                .await
                .map_err(fail)?;
            out.show(
                || format!("registered merchant {m}"),
                &serde_json::json!({ "merchant": m.0 }),
            );
        }
        MerchantCmd::Show { id } => {
            let m = c
                .merchant(MerchantId(id))
                .await
                .map_err(fail)?
                .ok_or(format!("no merchant {id}"))?;
            out.show(
                || {
                    format!(
                        "merchant {id} {} ({:?}) settles to account {}\ncampaign: {} settlements, {} yuan; reward {}\nthis month ({}): {} settlements; fee tier {:?} held through {}",
                        m.name,
                        m.kind,
                        m.settlement_account,
                        m.campaign_tx_count,
                        yuan(m.campaign_amount_fen as i64),
                        m.reward_payment.map_or("not yet".into(), |p| format!("granted by payment {p}")),
                        m.month,
                        m.month_tx_count,
                        m.fee_tier,
                        m.tier_held_through
                    )
                },
                &m,
            );
        }
        MerchantCmd::Transfer {
            merchant,
            to,
            amount,
        } => {
            let (fee, tier) = c
                .merchant_transfer(MerchantId(merchant), AccountId(to), parse_yuan(&amount)?)
                .await
                .map_err(fail)?;
            out.show(
                || format!("transferred; fee {} yuan ({tier:?})", yuan(fee as i64)),
                &serde_json::json!({ "fee_fen": fee, "tier": tier }),
            );
        }
    }
    Ok(())
}

async fn pool(c: &Client, out: &Out, cmd: PoolCmd) -> Result<(), String> {
    let fail = |e: ClientError| explain(&e);
    match cmd {
        PoolCmd::Create {
            name,
            face,
            capacity,
            eligibility,
            days,
        } => {
            let eligibility = match eligibility {
                Who::Anyone => Eligibility::Anyone,
                Who::Etc => Eligibility::EtcBound,
                Who::Savings => Eligibility::SavingsProduct,
                Who::Platinum => Eligibility::VipAtLeast(VipTier::Platinum),
                Who::Diamond => Eligibility::VipAtLeast(VipTier::Diamond),
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let p = c
                .create_pool(
                    &name,
                    parse_yuan(&face)?,
                    capacity,
                    eligibility,
                    now,
                    now + days * 86_400_000,
                )
                .await
                .map_err(fail)?;
            out.show(
                || format!("created pool {p}"),
                &serde_json::json!({ "pool": p.0 }),
            );
        }
        PoolCmd::Claim { pool, account } => {
            let remaining = c
                .claim_voucher(PoolId(pool), AccountId(account))
                .await
                .map_err(fail)?;
            out.show(
                || format!("voucher claimed; {remaining} left"),
                &serde_json::json!({ "remaining": remaining }),
            );
        }
        PoolCmd::Show { id } => {
            let p = c
                .pool(PoolId(id))
                .await
                .map_err(fail)?
                .ok_or(format!("no pool {id}"))?;
            out.show(
                || {
                    format!(
                        "pool {id} {}: {} yuan vouchers, {} of {} left, for {:?}",
                        p.name,
                        yuan(p.face_value_fen as i64),
                        p.capacity - p.granted,
                        p.capacity,
                        p.eligibility
                    )
                },
                &p,
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ledgerctl: {e}");
            ExitCode::FAILURE
        }
    }
}
