//! `ledgerctl close-month`: decide a China Standard Time month's merchant figures and fee
//! tiers.

use crate::failure::Failure;
use crate::session::Session;
use crate::view::Line;
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
struct Closed {
    month: String,
    merchants: u64,
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
    let operation = Operation::Command(Command::CloseMonth { month });
    session
        .write_shown(operation, |reply| match reply {
            Reply::MonthClosed { merchants, .. } => {
                let text = format!("closed {month}: {merchants} merchants rolled");
                let month = month.to_string();
                Ok(Line::new(Closed { month, merchants }, text))
            }
            other => Err(other),
        })
        .await
}
