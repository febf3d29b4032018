//! `ledgerctl merchant`: register, show (counters, reward, fee tier), transfer out.

use crate::failure::Failure;
use crate::session::Session;
use crate::view::{fields, parse_yuan, unexpected, yuan_u, View};
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

#[derive(Clone, Copy, ValueEnum)]
pub enum Kind {
    Pos,
    Shangyitong,
    Online,
}

impl MerchantCmd {
    pub fn changes_ledger(&self) -> bool {
        !matches!(self, MerchantCmd::Show { .. })
    }
}

#[derive(Serialize)]
pub struct Registered {
    merchant: u64,
}

impl View for Registered {
    fn text(&self) -> String {
        format!("registered merchant {}", self.merchant)
    }
}

/// A merchant as the ledger holds it (JSON: the record itself).
#[derive(Serialize)]
#[serde(transparent)]
pub struct Shown(Merchant);

impl View for Shown {
    fn text(&self) -> String {
        let m = &self.0;
        let reward = m
            .reward_payment
            .map_or("not yet".into(), |p| format!("granted by payment {p}"));
        fields(&[
            ("name", m.name.clone()),
            ("kind", format!("{:?}", m.kind)),
            ("settles to", format!("account {}", m.settlement_account)),
            ("campaign settlements", m.campaign_tx_count.to_string()),
            (
                "campaign amount",
                format!("{} yuan", yuan_u(m.campaign_amount_fen)),
            ),
            ("reward", reward),
            ("month", m.month.to_string()),
            ("month settlements", m.month_tx_count.to_string()),
            ("fee tier", format!("{:?}", m.fee_tier)),
            ("tier held through", m.tier_held_through.to_string()),
        ])
    }
}

#[derive(Serialize)]
pub struct TransferredOut {
    fee_fen: u64,
    tier: FeeTier,
}

impl View for TransferredOut {
    fn text(&self) -> String {
        format!(
            "transferred; fee {} yuan ({:?})",
            yuan_u(self.fee_fen),
            self.tier
        )
    }
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
    match session.write(Operation::Command(command)).await? {
        Reply::MerchantRegistered { merchant } => session.show(&Registered {
            merchant: merchant.0,
        }),
        other => return Err(unexpected(other)),
    }
    Ok(())
}

async fn transfer(session: &Session, merchant: u64, to: u64, amount: &str) -> Result<(), Failure> {
    let command = Command::MerchantTransfer {
        merchant: MerchantId(merchant),
        target: AccountId(to),
        amount_fen: parse_yuan(amount)?,
    };
    match session.write(Operation::Command(command)).await? {
        Reply::MerchantTransferred { fee_fen, tier } => {
            session.show(&TransferredOut { fee_fen, tier })
        }
        other => return Err(unexpected(other)),
    }
    Ok(())
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
        MerchantCmd::Show { id } => {
            let merchant = session
                .read_record("merchant", id, || session.client().merchant(MerchantId(id)))
                .await?;
            session.show(&Shown(merchant));
            Ok(())
        }
        MerchantCmd::Transfer {
            merchant,
            to,
            amount,
        } => transfer(session, merchant, to, &amount).await,
    }
}
