//! Account commands: open, show, deposit, withdraw, transfer, freeze, unfreeze, close,
//! campaign flags, VIP tier.

use crate::failure::Failure;
use crate::session::Session;
use crate::view::{or_dash, parse_yuan, secret, yuan, Line, Record, Table, View};
use clap::{Subcommand, ValueEnum};
use ledger_core::command::{CampaignFlags, Command};
use ledger_core::intake::OpenAccountRequest;
use ledger_core::types::{AccountId, AccountStatus, VipTier};
use ledger_core::Reply;
use ledger_wire::api::{AccountView, Operation};
use serde::Serialize;

#[derive(Subcommand)]
pub enum AccountCmd {
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
    /// An account's statement: its postings over a time range with opening and closing
    /// balance (default: the last 30 days). Dates are CST (YYYY-MM-DD, --to inclusive) or
    /// epoch milliseconds.
    Statement(crate::records::StatementArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Tier {
    None,
    Platinum,
    Diamond,
}

impl AccountCmd {
    pub fn changes_ledger(&self) -> bool {
        !matches!(self, AccountCmd::Account { .. } | AccountCmd::Statement(_))
    }
}

/// Applies `command` and prints the answer `view` makes of its reply.
async fn command<V: View>(
    session: &Session,
    command: Command,
    view: impl FnOnce(Reply) -> Result<V, Reply>,
) -> Result<(), Failure> {
    session.write_shown(Operation::Command(command), view).await
}

#[derive(Serialize)]
struct Opened {
    account: u64,
}

async fn open(
    session: &Session,
    name: String,
    card: String,
    password: String,
    phone: String,
    flags: CampaignFlags,
) -> Result<(), Failure> {
    let request = OpenAccountRequest {
        holder_name: name,
        card_number: secret(card)?,
        card_password: secret(password)?,
        phone,
        flags,
    };
    let operation = Operation::OpenAccount(request);
    session
        .write_shown(operation, |reply| match reply {
            Reply::AccountOpened { account } => {
                let account = account.0;
                Ok(Line::new(
                    Opened { account },
                    format!("opened account {account}"),
                ))
            }
            other => Err(other),
        })
        .await
}

impl Table for AccountView {
    fn rows(&self) -> Vec<(&'static str, String)> {
        vec![
            ("account", self.account.to_string()),
            ("holder", self.holder_name.clone()),
            ("card", format!("****{}", self.pan_last4)),
            ("phone", self.phone.clone()),
            ("status", format!("{:?}", self.status)),
            ("balance", format!("{} yuan", yuan(self.balance_fen))),
            ("vip", format!("{:?}", self.vip)),
            ("etc bound", self.flags.etc_bound.to_string()),
            ("savings", self.flags.savings_product.to_string()),
            ("settles merchant", or_dash(self.merchant)),
        ]
    }
}

async fn shown(session: &Session, id: u64) -> Result<AccountView, Failure> {
    session
        .read_record("account", id, || session.client().account(AccountId(id)))
        .await
}

/// Which way money moves in `posted`.
enum Posting {
    Deposit,
    Withdraw,
}

#[derive(Serialize)]
struct Balance {
    account: u64,
    balance_fen: i64,
}

/// A deposit or a withdrawal, and the new balance.
async fn posted(session: &Session, id: u64, amount: &str, posting: Posting) -> Result<(), Failure> {
    let (account, amount_fen) = (AccountId(id), parse_yuan(amount)?);
    let posting = match posting {
        Posting::Deposit => Command::Deposit {
            account,
            amount_fen,
        },
        Posting::Withdraw => Command::Withdraw {
            account,
            amount_fen,
        },
    };
    command(session, posting, |reply| match reply {
        Reply::Posted { balance_fen, .. } => {
            let text = format!("account {id} balance {} yuan", yuan(balance_fen));
            let balance = Balance {
                account: id,
                balance_fen,
            };
            Ok(Line::new(balance, text))
        }
        other => Err(other),
    })
    .await
}

#[derive(Serialize)]
struct Transferred {
    source_balance_fen: i64,
    target_balance_fen: i64,
}

async fn transfer(session: &Session, from: u64, to: u64, amount: &str) -> Result<(), Failure> {
    let transfer = Command::Transfer {
        source: AccountId(from),
        target: AccountId(to),
        amount_fen: parse_yuan(amount)?,
    };
    command(session, transfer, |reply| match reply {
        Reply::Transferred {
            source_balance_fen,
            target_balance_fen,
        } => {
            let balances = Transferred {
                source_balance_fen,
                target_balance_fen,
            };
            let (from_yuan, to_yuan) = (yuan(source_balance_fen), yuan(target_balance_fen));
            let text = format!(
                "account {from} balance {from_yuan} yuan; account {to} balance {to_yuan} yuan"
            );
            Ok(Line::new(balances, text))
        }
        other => Err(other),
    })
    .await
}

#[derive(Serialize)]
struct StatusSet {
    account: u64,
    status: AccountStatus,
}

async fn set_status(session: &Session, id: u64, status: AccountStatus) -> Result<(), Failure> {
    let command = Command::SetAccountStatus {
        account: AccountId(id),
        status,
    };
    let set = StatusSet {
        account: id,
        status,
    };
    let view = Line::new(set, format!("account {id} is {status:?}"));
    session
        .write_then_show(Operation::Command(command), view)
        .await
}

#[derive(Serialize)]
struct FlagsSet {
    account: u64,
    etc_bound: bool,
    savings_product: bool,
}

async fn set_flags(
    session: &Session,
    id: u64,
    etc_bound: Option<bool>,
    savings_product: Option<bool>,
) -> Result<(), Failure> {
    if etc_bound.is_none() && savings_product.is_none() {
        return Err(Failure::InvalidArgument {
            message: "give --etc-bound true|false and/or --savings-product true|false".into(),
        });
    }
    let now = shown(session, id).await?.flags;
    let flags = CampaignFlags {
        etc_bound: etc_bound.unwrap_or(now.etc_bound),
        savings_product: savings_product.unwrap_or(now.savings_product),
    };
    let command = Command::SetCampaignFlags {
        account: AccountId(id),
        flags,
    };
    let text = format!(
        "account {id}: etc {}, savings {}",
        flags.etc_bound, flags.savings_product
    );
    let set = FlagsSet {
        account: id,
        etc_bound: flags.etc_bound,
        savings_product: flags.savings_product,
    };
    session
        .write_then_show(Operation::Command(command), Line::new(set, text))
        .await
}

#[derive(Serialize)]
struct VipSet {
    account: u64,
    gift_recorded: bool,
}

async fn set_vip(session: &Session, id: u64, tier: Tier) -> Result<(), Failure> {
    let tier = match tier {
        Tier::None => VipTier::None,
        Tier::Platinum => VipTier::Platinum,
        Tier::Diamond => VipTier::Diamond,
    };
    let account = AccountId(id);
    command(session, Command::SetVipTier { account, tier }, |reply| {
        let Reply::VipTierSet { gift_recorded } = reply else {
            return Err(reply);
        };
        let gift = if gift_recorded {
            "; commemorative gift recorded"
        } else {
            ""
        };
        let text = format!("account {id} is {tier:?}{gift}");
        let set = VipSet {
            account: id,
            gift_recorded,
        };
        Ok(Line::new(set, text))
    })
    .await
}

pub async fn run(session: &Session, cmd: AccountCmd) -> Result<(), Failure> {
    match cmd {
        AccountCmd::OpenAccount {
            name,
            card,
            password,
            phone,
            etc_bound,
            savings_product,
        } => {
            let flags = CampaignFlags {
                etc_bound,
                savings_product,
            };
            open(session, name, card, password, phone, flags).await
        }
        AccountCmd::Account { id } => {
            session.show(&Record(shown(session, id).await?));
            Ok(())
        }
        AccountCmd::Deposit { id, amount } => posted(session, id, &amount, Posting::Deposit).await,
        AccountCmd::Withdraw { id, amount } => {
            posted(session, id, &amount, Posting::Withdraw).await
        }
        AccountCmd::Transfer { from, to, amount } => transfer(session, from, to, &amount).await,
        AccountCmd::Freeze { id } => set_status(session, id, AccountStatus::Frozen).await,
        AccountCmd::Unfreeze { id } => set_status(session, id, AccountStatus::Active).await,
        AccountCmd::Close { id } => set_status(session, id, AccountStatus::Closed).await,
        AccountCmd::Flags {
            id,
            etc_bound,
            savings_product,
        } => set_flags(session, id, etc_bound, savings_product).await,
        AccountCmd::Vip { id, tier } => set_vip(session, id, tier).await,
        AccountCmd::Statement(args) => crate::records::statement(session, args).await,
    }
}
