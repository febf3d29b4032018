//! `ledgerctl merchant`: register, show (month figures, fee tier), transfer out. A
//! merchant's campaign counters and rewards: `ledgerctl campaign counters`.

use crate::failure::Failure;
use crate::session::Session;
use crate::view::{parse_yuan, yuan_u, Line, Table};
use clap::{Subcommand, ValueEnum};
use ledger_core::command::Command;
use ledger_core::state::Merchant;
use ledger_core::types::{AccountId, FeeTier, MerchantId, MerchantKind};
use ledger_core::Reply;
use ledger_wire::api::Operation;
use serde::Serialize;

#[derive(Subcommand)]
pub enum MerchantCmd {
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
    /// Show a merchant's month figures and fee tier.
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
    /// The merchant's webhook: where payment events are pushed, signed with HMAC-SHA256.
    #[command(subcommand)]
    Webhook(WebhookCmd),
    /// The merchant's payment events after an event id, oldest first (the cursor to read
    /// instead of, or besides, the webhook).
    Events {
        id: u64,
        /// Events after this id (0: from the first).
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Events to print (1 to 1000).
        #[arg(long, default_value_t = 100)]
        page_size: u32,
    },
    /// A merchant's reconciliation of one CST day: settled payments, swipes, vouchers,
    /// refunds, transfers and fees, their totals and the net, checked against the settlement
    /// account's movement (exit 1 if they differ).
    Reconcile {
        id: u64,
        /// The CST day, YYYY-MM-DD.
        #[arg(long)]
        day: String,
        /// The day's rows as CSV instead of the report.
        #[arg(long)]
        csv: bool,
        /// Read from any node, possibly behind the leader.
        #[arg(long)]
        stale: bool,
    },
}

#[derive(Subcommand)]
pub enum WebhookCmd {
    /// Register (or re-register) the webhook; prints the new signing secret.
    Set {
        merchant: u64,
        #[arg(long)]
        url: String,
    },
    /// Remove the webhook (events stay readable with `merchant events`).
    Remove { merchant: u64 },
    /// Show the webhook and its delivery counts.
    Show { merchant: u64 },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Kind {
    Pos,
    Shangyitong,
    Online,
}

impl MerchantCmd {
    pub fn changes_ledger(&self) -> bool {
        !matches!(
            self,
            MerchantCmd::Show { .. }
                | MerchantCmd::Reconcile { .. }
                | MerchantCmd::Events { .. }
                | MerchantCmd::Webhook(WebhookCmd::Show { .. })
        )
    }
}

#[derive(Serialize)]
struct Registered {
    merchant: u64,
}

async fn register(
    session: &Session,
    kind: Kind,
    name: String,
    account: u64,
    phone: String,
    terminals: u32,
) -> Result<(), Failure> {
    let kind = match kind {
        Kind::Pos => MerchantKind::Pos,
        Kind::Shangyitong => MerchantKind::Shangyitong,
        Kind::Online => MerchantKind::Online,
    };
    let command = Command::RegisterMerchant {
        kind,
        name,
        settlement_account: AccountId(account),
        contact_phone: phone,
        terminals,
    };
    session
        .write_shown(Operation::Command(command), |reply| match reply {
            Reply::MerchantRegistered { merchant } => {
                let merchant = merchant.0;
                let text = format!("registered merchant {merchant}");
                Ok(Line::new(Registered { merchant }, text))
            }
            other => Err(other),
        })
        .await
}

impl Table for Merchant {
    fn rows(&self) -> Vec<(&'static str, String)> {
        vec![
            ("name", self.name.clone()),
            ("kind", format!("{:?}", self.kind)),
            ("settles to", format!("account {}", self.settlement_account)),
            ("month", self.month.to_string()),
            ("month settlements", self.month_tx_count.to_string()),
            ("fee tier", format!("{:?}", self.fee_tier)),
            ("waived through", held(self.waived_through)),
            ("20% tier through", held(self.discount_through)),
        ]
    }
}

/// A tier's hold, for a person.
fn held(through: Option<ledger_core::types::YearMonth>) -> String {
    through.map_or("not earned".into(), |m| m.to_string())
}

async fn show(session: &Session, id: u64) -> Result<(), Failure> {
    session
        .show_record("merchant", id, || session.client().merchant(MerchantId(id)))
        .await
}

#[derive(Serialize)]
struct TransferredOut {
    fee_fen: u64,
    tier: FeeTier,
}

async fn transfer(session: &Session, merchant: u64, to: u64, amount: &str) -> Result<(), Failure> {
    let command = Command::MerchantTransfer {
        merchant: MerchantId(merchant),
        target: AccountId(to),
        amount_fen: parse_yuan(amount)?,
    };
    session
        .write_shown(Operation::Command(command), |reply| match reply {
            Reply::MerchantTransferred { fee_fen, tier } => {
                let text = format!("transferred; fee {} yuan ({tier:?})", yuan_u(fee_fen));
                Ok(Line::new(TransferredOut { fee_fen, tier }, text))
            }
            other => Err(other),
        })
        .await
}

pub async fn run(session: &Session, cmd: MerchantCmd) -> Result<(), Failure> {
    match cmd {
        MerchantCmd::Register {
            kind,
            name,
            account,
            phone,
            terminals,
        } => register(session, kind, name, account, phone, terminals).await,
        MerchantCmd::Show { id } => show(session, id).await,
        MerchantCmd::Transfer {
            merchant,
            to,
            amount,
        } => transfer(session, merchant, to, &amount).await,
        MerchantCmd::Webhook(cmd) => crate::records::webhook(session, cmd).await,
        MerchantCmd::Events {
            id,
            after,
            page_size,
        } => crate::records::events(session, id, after, page_size).await,
        MerchantCmd::Reconcile {
            id,
            day,
            csv,
            stale,
        } => crate::records::reconcile(session, id, &day, csv, stale).await,
    }
}
