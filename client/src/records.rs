//! Journal rows as an account sees them, the one format `ledgerctl` and the HTTP gateway
//! both print: CST times, yuan amounts in CSV, the columns of a reconciliation file.

use ledger_core::state::Posting;
use ledger_core::time::{cst_date, cst_day, cst_day_of_date, DAY_MS};
use ledger_core::types::{AccountId, Cause};
use serde::Serialize;

/// The columns of a statement or reconciliation in CSV.
pub const CSV_HEADER: &str =
    "seq,log_index,at_ms,at_cst,cause,ref,counterparty,amount_yuan,balance_yuan";

/// Formats fen as yuan: `-12.50`.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:02}",
        fen.unsigned_abs() / 100,
        fen.unsigned_abs() % 100
    )
}

/// Parses a CST date `YYYY-MM-DD` into its day number (days since the Unix epoch).
pub fn parse_cst_date(text: &str) -> Option<u64> {
    let mut parts = text.splitn(3, '-').map(|p| p.parse::<u32>().ok());
    let (Some(Some(year)), Some(Some(month)), Some(Some(day))) =
        (parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    cst_day_of_date(year, month, day)
}

/// A CST day number as `YYYY-MM-DD`.
pub fn cst_date_text(day: u64) -> String {
    let (y, m, d) = cst_date(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Epoch ms as CST wall time, `YYYY-MM-DD HH:MM:SS.mmm`.
pub fn cst_time(ms: u64) -> String {
    let day = cst_day(ms);
    let in_day = ms + ledger_core::time::CST_OFFSET_MS - day * DAY_MS;
    let (h, min, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1_000 % 60,
        in_day % 1_000,
    );
    format!("{} {h:02}:{min:02}:{s:02}.{milli:03}", cst_date_text(day))
}

/// The id a row's cause carries, for a column.
pub fn cause_ref(cause: Cause) -> String {
    match cause {
        Cause::Deposit | Cause::Withdrawal | Cause::Transfer => String::new(),
        Cause::Payment(p) | Cause::Swipe(p) | Cause::Refund(p) | Cause::RefundVoucher(p) => {
            format!("payment {p}")
        }
        Cause::Voucher { payment, pool } => format!("payment {payment} pool {pool}"),
        Cause::Reward { campaign, merchant } => format!("campaign {campaign} merchant {merchant}"),
        Cause::MerchantTransfer(m) | Cause::Fee(m) => format!("merchant {m}"),
    }
}

/// One journal row as an account sees it.
#[derive(Clone, Debug, Serialize)]
pub struct StatementRow {
    /// The row's place in the journal.
    pub seq: u64,
    /// The Raft log index of the command that made it.
    pub index: u64,
    /// Ledger time, ms since the Unix epoch.
    pub at_ms: u64,
    /// The same in CST.
    pub at_cst: String,
    /// Why money moved (`payment`, `refund`, `deposit`, ...).
    pub cause: &'static str,
    /// The id the cause carries (`payment 7`).
    #[serde(rename = "ref")]
    pub reference: String,
    /// The other account of the row.
    pub counterparty: AccountId,
    /// Positive in, negative out.
    pub amount_fen: i64,
    /// The account's balance after the row.
    pub balance_fen: i64,
}

impl StatementRow {
    /// `p` as `account` sees it.
    pub fn new(account: AccountId, p: &Posting) -> StatementRow {
        StatementRow {
            seq: p.seq,
            index: p.index,
            at_ms: p.at_ms,
            at_cst: cst_time(p.at_ms),
            cause: p.cause.name(),
            reference: cause_ref(p.cause),
            counterparty: if p.source == account {
                p.target
            } else {
                p.source
            },
            amount_fen: p.delta_for(account),
            balance_fen: p.balance_after(account),
        }
    }

    /// The row under [`CSV_HEADER`].
    pub fn csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{}",
            self.seq,
            self.index,
            self.at_ms,
            self.at_cst,
            self.cause,
            self.reference,
            self.counterparty,
            yuan(self.amount_fen),
            yuan(self.balance_fen)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_bad_ones_are_refused() {
        let day = parse_cst_date("2026-12-03").unwrap();
        assert_eq!(cst_date_text(day), "2026-12-03");
        for bad in ["2026-13-01", "2026-12", "x-1-1", ""] {
            assert_eq!(parse_cst_date(bad), None, "{bad}");
        }
        assert_eq!(yuan(-1250), "-12.50");
    }
}
