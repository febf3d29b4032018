//! `ledgerctl close-month`: decide a China Standard Time month's merchant figures and fee
//! tiers.

use crate::failure::Failure;
use crate::session::Session;
use crate::view::{unexpected, View};
use clap::Args;
use ledger_core::command::Command;
use ledger_core::types::YearMonth;
use ledger_core::Reply;
use ledger_wire::api::Operation;
use serde::Serialize;

#[derive(Args)]
pub struct CloseMonthArgs {
    /// The month, like 2014-12.
    month: String,
}

#[derive(Serialize)]
pub struct Closed {
    month: String,
    merchants: u64,
}

impl View for Closed {
    fn text(&self) -> String {
        format!("closed {}: {} merchants rolled", self.month, self.merchants)
    }
}

fn parse_month(text: &str) -> Result<YearMonth, Failure> {
    let bad = || Failure::InvalidArgument {
        message: format!("`{text}` is not a month like 2014-12"),
    };
    let (year, month) = text.split_once('-').ok_or_else(bad)?;
    YearMonth::new(
        year.parse().map_err(|_| bad())?,
        month.parse().map_err(|_| bad())?,
    )
    .ok_or_else(bad)
}

pub async fn run(session: &Session, args: CloseMonthArgs) -> Result<(), Failure> {
    let month = parse_month(&args.month)?;
    match session
        .write(Operation::Command(Command::CloseMonth { month }))
        .await?
    {
        Reply::MonthClosed { merchants, .. } => session.show(&Closed {
            month: month.to_string(),
            merchants,
        }),
        other => return Err(unexpected(other)),
    }
    Ok(())
}
