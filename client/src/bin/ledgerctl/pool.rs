//! `ledgerctl pool`: voucher pools: create, claim, show.

use crate::failure::Failure;
use crate::session::Session;
use crate::view::{parse_yuan, yuan_u, Line, Table};
use clap::{Args, Subcommand, ValueEnum};
use ledger_core::command::Command;
use ledger_core::state::Pool;
use ledger_core::types::{AccountId, Eligibility, PoolId, VipTier};
use ledger_core::Reply;
use ledger_wire::api::Operation;
use serde::Serialize;

const DAY_MS: u64 = 86_400_000;

#[derive(Subcommand)]
pub enum PoolCmd {
    /// Create a pool, open from now for `--days` (with `--key`: from when the key was
    /// first issued, so the retried command is the same command).
    Create(CreateArgs),
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

#[derive(Args)]
pub struct CreateArgs {
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
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Who {
    Anyone,
    Etc,
    Savings,
    Platinum,
    Diamond,
}

impl PoolCmd {
    pub fn changes_ledger(&self) -> bool {
        !matches!(self, PoolCmd::Show { .. })
    }
}

#[derive(Serialize)]
struct Created {
    pool: u64,
}

async fn create(session: &Session, args: CreateArgs) -> Result<(), Failure> {
    let eligibility = match args.eligibility {
        Who::Anyone => Eligibility::Anyone,
        Who::Etc => Eligibility::EtcBound,
        Who::Savings => Eligibility::SavingsProduct,
        Who::Platinum => Eligibility::VipAtLeast(VipTier::Platinum),
        Who::Diamond => Eligibility::VipAtLeast(VipTier::Diamond),
    };
    let key = session.write_key();
    // The client's request ids are the wall clock in µs when the client started, so the
    // key says when the operation was first issued; a retry under `--key` builds the same
    // command from it.
    let issued_ms = key.request_id / 1_000;
    let command = Command::CreatePool {
        name: args.name,
        face_value_fen: parse_yuan(&args.face)?,
        capacity: args.capacity,
        eligibility,
        valid_from_ms: issued_ms,
        valid_until_ms: issued_ms.saturating_add(args.days.saturating_mul(DAY_MS)),
    };
    session
        .write_shown_with_key(key, Operation::Command(command), |reply| match reply {
            Reply::PoolCreated { pool } => {
                let pool = pool.0;
                Ok(Line::new(Created { pool }, format!("created pool {pool}")))
            }
            other => Err(other),
        })
        .await
}

#[derive(Serialize)]
struct Claimed {
    remaining: u64,
}

async fn claim(session: &Session, pool: u64, account: u64) -> Result<(), Failure> {
    let command = Command::ClaimVoucher {
        pool: PoolId(pool),
        account: AccountId(account),
    };
    session
        .write_shown(Operation::Command(command), |reply| match reply {
            Reply::VoucherClaimed { remaining, .. } => {
                let text = format!("voucher claimed; {remaining} left");
                Ok(Line::new(Claimed { remaining }, text))
            }
            other => Err(other),
        })
        .await
}

impl Table for Pool {
    fn rows(&self) -> Vec<(&'static str, String)> {
        vec![
            ("name", self.name.clone()),
            (
                "face value",
                format!("{} yuan", yuan_u(self.face_value_fen)),
            ),
            (
                "left",
                format!("{} of {}", self.capacity - self.granted, self.capacity),
            ),
            ("for", format!("{:?}", self.eligibility)),
            ("valid from (ms)", self.valid_from_ms.to_string()),
            ("valid until (ms)", self.valid_until_ms.to_string()),
        ]
    }
}

async fn show(session: &Session, id: u64) -> Result<(), Failure> {
    session
        .show_record("pool", id, || session.client().pool(PoolId(id)))
        .await
}

pub async fn run(session: &Session, cmd: PoolCmd) -> Result<(), Failure> {
    match cmd {
        PoolCmd::Create(args) => create(session, args).await,
        PoolCmd::Claim { pool, account } => claim(session, pool, account).await,
        PoolCmd::Show { id } => show(session, id).await,
    }
}
