//! Account commands: open, show, deposit, withdraw, transfer, freeze, unfreeze, close,
//! campaign flags, VIP tier.

use crate::failure::Failure;
use crate::session::Session;
use crate::view::{fields, or_dash, parse_yuan, secret, unexpected, yuan, View};
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
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Tier {
    None,
    Platinum,
    Diamond,
}

impl AccountCmd {
    pub fn changes_ledger(&self) -> bool {
        !matches!(self, AccountCmd::Account { .. })
    }
}

#[derive(Serialize)]
pub struct Opened {
    account: u64,
}

impl View for Opened {
    fn text(&self) -> String {
        format!("opened account {}", self.account)
    }
}

/// An account as the ledger holds it (JSON: the record itself).
#[derive(Serialize)]
#[serde(transparent)]
pub struct Shown(AccountView);

impl View for Shown {
    fn text(&self) -> String {
        let a = &self.0;
        fields(&[
            ("account", a.account.to_string()),
            ("holder", a.holder_name.clone()),
            ("card", format!("****{}", a.pan_last4)),
            ("phone", a.phone.clone()),
            ("status", format!("{:?}", a.status)),
            ("balance", format!("{} yuan", yuan(a.balance_fen))),
            ("vip", format!("{:?}", a.vip)),
            ("etc bound", a.flags.etc_bound.to_string()),
            ("savings", a.flags.savings_product.to_string()),
            ("settles merchant", or_dash(a.merchant)),
        ])
    }
}

#[derive(Serialize)]
pub struct Balance {
    account: u64,
    balance_fen: i64,
}

impl View for Balance {
    fn text(&self) -> String {
        format!(
            "account {} balance {} yuan",
            self.account,
            yuan(self.balance_fen)
        )
    }
}

#[derive(Serialize)]
pub struct Transferred {
    #[serde(skip)]
    source: u64,
    #[serde(skip)]
    target: u64,
    source_balance_fen: i64,
    target_balance_fen: i64,
}

impl View for Transferred {
    fn text(&self) -> String {
        format!(
            "account {} balance {} yuan; account {} balance {} yuan",
            self.source,
            yuan(self.source_balance_fen),
            self.target,
            yuan(self.target_balance_fen)
        )
    }
}

#[derive(Serialize)]
pub struct StatusSet {
    account: u64,
    status: AccountStatus,
}

impl View for StatusSet {
    fn text(&self) -> String {
        format!("account {} is {:?}", self.account, self.status)
    }
}

#[derive(Serialize)]
pub struct FlagsSet {
    account: u64,
    etc_bound: bool,
    savings_product: bool,
}

impl View for FlagsSet {
    fn text(&self) -> String {
        format!(
            "account {}: etc {}, savings {}",
            self.account, self.etc_bound, self.savings_product
        )
    }
}

#[derive(Serialize)]
pub struct VipSet {
    account: u64,
    #[serde(skip)]
    tier: VipTier,
    gift_recorded: bool,
}

impl View for VipSet {
    fn text(&self) -> String {
        let gift = if self.gift_recorded {
            "; commemorative gift recorded"
        } else {
            ""
        };
        format!("account {} is {:?}{gift}", self.account, self.tier)
    }
}

async fn command(session: &Session, command: Command) -> Result<Reply, Failure> {
    session.write(Operation::Command(command)).await
}

async fn shown(session: &Session, id: u64) -> Result<AccountView, Failure> {
    session
        .read_record("account", id, || session.client().account(AccountId(id)))
        .await
}

async fn posted(session: &Session, id: u64, command: Command) -> Result<(), Failure> {
    match self::command(session, command).await? {
        Reply::Posted { balance_fen, .. } => session.show(&Balance {
            account: id,
            balance_fen,
        }),
        other => return Err(unexpected(other)),
    }
    Ok(())
}

async fn set_status(session: &Session, id: u64, status: AccountStatus) -> Result<(), Failure> {
    let account = AccountId(id);
    command(session, Command::SetAccountStatus { account, status }).await?;
    session.show(&StatusSet {
        account: id,
        status,
    });
    Ok(())
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
    let account = AccountId(id);
    command(session, Command::SetCampaignFlags { account, flags }).await?;
    session.show(&FlagsSet {
        account: id,
        etc_bound: flags.etc_bound,
        savings_product: flags.savings_product,
    });
    Ok(())
}

async fn set_vip(session: &Session, id: u64, tier: Tier) -> Result<(), Failure> {
    let tier = match tier {
        Tier::None => VipTier::None,
        Tier::Platinum => VipTier::Platinum,
        Tier::Diamond => VipTier::Diamond,
    };
    let account = AccountId(id);
    match command(session, Command::SetVipTier { account, tier }).await? {
        Reply::VipTierSet { gift_recorded } => session.show(&VipSet {
            account: id,
            tier,
            gift_recorded,
        }),
        other => return Err(unexpected(other)),
    }
    Ok(())
}

async fn transfer(session: &Session, from: u64, to: u64, amount: &str) -> Result<(), Failure> {
    let transfer = Command::Transfer {
        source: AccountId(from),
        target: AccountId(to),
        amount_fen: parse_yuan(amount)?,
    };
    match command(session, transfer).await? {
        Reply::Transferred {
            source_balance_fen,
            target_balance_fen,
        } => session.show(&Transferred {
            source: from,
            target: to,
            source_balance_fen,
            target_balance_fen,
        }),
        other => return Err(unexpected(other)),
    }
    Ok(())
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
    match session.write(Operation::OpenAccount(request)).await? {
        Reply::AccountOpened { account } => session.show(&Opened { account: account.0 }),
        other => return Err(unexpected(other)),
    }
    Ok(())
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
            session.show(&Shown(shown(session, id).await?));
            Ok(())
        }
        AccountCmd::Deposit { id, amount } => {
            let amount_fen = parse_yuan(&amount)?;
            let account = AccountId(id);
            posted(
                session,
                id,
                Command::Deposit {
                    account,
                    amount_fen,
                },
            )
            .await
        }
        AccountCmd::Withdraw { id, amount } => {
            let amount_fen = parse_yuan(&amount)?;
            let account = AccountId(id);
            posted(
                session,
                id,
                Command::Withdraw {
                    account,
                    amount_fen,
                },
            )
            .await
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
    }
}
