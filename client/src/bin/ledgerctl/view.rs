//! How answers print: every command's answer is a typed view that renders as text (a line,
//! or a table for records) or, under `--json`, as JSON. Also the argument formats that many
//! commands share: amounts in yuan, secrets, timestamps.

use crate::failure::Failure;
use ledger_core::intake::Secret;
use serde::Serialize;

/// A command's answer.
pub trait View: Serialize {
    /// The answer for a person reading a terminal.
    fn text(&self) -> String;

    fn print(&self, json: bool) {
        if json {
            match serde_json::to_string_pretty(self) {
                Ok(text) => out(&text),
                Err(e) => Failure::UnexpectedReply {
                    reply: format!("cannot print as JSON: {e}"),
                }
                .report(true),
            }
        } else {
            out(&self.text());
        }
    }
}

/// An answer of one line of text; under `--json`, `data` itself.
#[derive(Serialize)]
#[serde(transparent)]
pub struct Line<T> {
    data: T,
    #[serde(skip)]
    text: String,
}

impl<T: Serialize> Line<T> {
    pub fn new(data: T, text: impl Into<String>) -> Line<T> {
        Line {
            data,
            text: text.into(),
        }
    }
}

impl<T: Serialize> View for Line<T> {
    fn text(&self) -> String {
        self.text.clone()
    }
}

/// A record the ledger holds, shown as a table of its fields.
pub trait Table: Serialize {
    /// The table's rows: a label and a value each.
    fn rows(&self) -> Vec<(&'static str, String)>;
}

/// A record as the ledger holds it: a table of its fields (JSON: the record itself).
#[derive(Serialize)]
#[serde(transparent)]
pub struct Record<T>(pub T);

impl<T: Table> View for Record<T> {
    fn text(&self) -> String {
        fields(&self.0.rows())
    }
}

/// Prints a line on standard output; a closed pipe (`ledgerctl ... | head`) is not an error
/// worth a panic.
pub fn out(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// A two-column table of a record's fields, labels aligned.
pub fn fields(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(label, value)| format!("{label:<width$}  {value}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An optional value, `-` when absent.
pub fn or_dash(value: Option<impl std::fmt::Display>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// A secret argument; `-` reads it from standard input instead, which keeps it out of the
/// process list and the shell history.
pub fn secret(value: String) -> Result<Secret, Failure> {
    if value != "-" {
        return Ok(Secret::new(value));
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| Failure::InvalidArgument {
            message: format!("reading standard input: {e}"),
        })?;
    Ok(Secret::new(line.trim().to_owned()))
}

/// Parses yuan with at most two decimals into fen, exactly (no floating point).
pub fn parse_yuan(text: &str) -> Result<u64, Failure> {
    let bad = || Failure::InvalidArgument {
        message: format!("`{text}` is not an amount in yuan (like 100 or 12.34)"),
    };
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
pub use ledger_client::records::yuan;

/// Formats unsigned fen as yuan.
pub fn yuan_u(fen: u64) -> String {
    yuan(i64::try_from(fen).unwrap_or(i64::MAX))
}

/// A reply of another kind than the operation produces: a version mismatch.
pub fn unexpected(reply: impl std::fmt::Debug) -> Failure {
    Failure::UnexpectedReply {
        reply: format!("{reply:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_parses_exactly_and_formats_back() {
        assert_eq!(parse_yuan("12.34").ok(), Some(1_234));
        assert_eq!(parse_yuan("100").ok(), Some(10_000));
        assert_eq!(parse_yuan("0.5").ok(), Some(50));
        assert!(parse_yuan("1.234").is_err());
        assert!(parse_yuan("-1").is_err());
        assert!(parse_yuan(".5").is_err());
        assert!(parse_yuan("184467440737095516.16").is_err());
        assert_eq!(yuan(-1_234), "-12.34");
        assert_eq!(yuan_u(5), "0.05");
    }
}
