//! `ledgerctl pool`: voucher pools: create, claim, show.

use crate::failure::Failure;
use crate::session::Session;
use crate::view::{fields, parse_yuan, unexpected, yuan_u, View};
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
pub struct Created {
    pool: u64,
}

impl View for Created {
    fn text(&self) -> String {
        format!("created pool {}", self.pool)
    }
}

#[derive(Serialize)]
pub struct Claimed {
    remaining: u64,
}

impl View for Claimed {
    fn text(&self) -> String {
        format!("voucher claimed; {} left", self.remaining)
    }
}

/// A pool as the ledger holds it (JSON: the record itself).
#[derive(Serialize)]
#[serde(transparent)]
pub struct Shown(Pool);

impl View for Shown {
    fn text(&self) -> String {
        let p = &self.0;
        fields(&[
            ("name", p.name.clone()),
            ("face value", format!("{} yuan", yuan_u(p.face_value_fen))),
            (
                "left",
                format!("{} of {}", p.capacity - p.granted, p.capacity),
            ),
            ("for", format!("{:?}", p.eligibility)),
            ("valid from (ms)", p.valid_from_ms.to_string()),
            ("valid until (ms)", p.valid_until_ms.to_string()),
        ])
    }
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
    match session
        .write_with_key(key, Operation::Command(command))
        .await?
    {
        Reply::PoolCreated { pool } => session.show(&Created { pool: pool.0 }),
        other => return Err(unexpected(other)),
    }
    Ok(())
}

async fn claim(session: &Session, pool: u64, account: u64) -> Result<(), Failure> {
    let command = Command::ClaimVoucher {
        pool: PoolId(pool),
        account: AccountId(account),
    };
    match session.write(Operation::Command(command)).await? {
        Reply::VoucherClaimed { remaining, .. } => session.show(&Claimed { remaining }),
        other => return Err(unexpected(other)),
    }
    Ok(())
}

pub async fn run(session: &Session, cmd: PoolCmd) -> Result<(), Failure> {
    match cmd {
        PoolCmd::Create(args) => create(session, args).await,
        PoolCmd::Claim { pool, account } => claim(session, pool, account).await,
        PoolCmd::Show { id } => {
            let pool = session
                .read_record("pool", id, || session.client().pool(PoolId(id)))
                .await?;
            session.show(&Shown(pool));
            Ok(())
        }
    }
}
