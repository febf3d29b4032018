//! `ledgerctl epay`: e-Pay enrolment in four steps, limits, and the credential.

use crate::failure::Failure;
use crate::session::Session;
use crate::view::{parse_yuan, secret, yuan_u, Line, Table};
use clap::Subcommand;
use ledger_client::IssuedChallenge;
use ledger_core::command::Command;
use ledger_core::state::Credential;
use ledger_core::types::AccountId;
use ledger_core::Reply;
use ledger_wire::api::Operation;
use serde::Serialize;

#[derive(Subcommand)]
pub enum EpayCmd {
    /// Step 1: card number and reserved phone.
    Begin {
        /// Card number; `-` reads it from standard input.
        #[arg(long)]
        card: String,
        #[arg(long)]
        phone: String,
    },
    /// Step 2: card password and alias.
    Alias {
        /// The account being enrolled (printed by step 1).
        #[arg(long)]
        account: u64,
        /// Card password; `-` reads it from standard input.
        #[arg(long)]
        password: String,
        /// The anti-phishing alias shown in every SMS (up to 16 characters).
        #[arg(long)]
        alias: String,
    },
    /// Step 3: confirm; an OTP is sent by SMS.
    Confirm {
        #[arg(long)]
        account: u64,
    },
    /// Step 4: the OTP.
    Activate {
        /// The account being enrolled.
        #[arg(long)]
        account: u64,
        /// The 6-digit code from the SMS; `-` reads it from standard input.
        #[arg(long)]
        code: String,
    },
    /// Lower the limits (yuan), within the bank's caps.
    Limits {
        #[arg(long)]
        account: u64,
        #[arg(long)]
        per_payment: String,
        #[arg(long)]
        per_day: String,
    },
    /// Show a credential.
    Show { account: u64 },
}

impl EpayCmd {
    pub fn changes_ledger(&self) -> bool {
        !matches!(self, EpayCmd::Show { .. })
    }
}

/// The enrolment steps that answer with the account alone.
#[derive(Clone, Copy)]
enum Done {
    Begun,
    AliasChosen,
    Activated,
}

/// Where the enrolment stands after a step, and what to run next.
#[derive(Serialize)]
struct Step {
    account: u64,
}

/// Where the enrolment of `account` stands after the step `done`.
fn step(account: u64, done: Done) -> Line<Step> {
    let a = account;
    let text = match done {
        Done::Begun => format!(
            "enrolling account {a}; next: ledgerctl epay alias --account {a} --password … --alias …"
        ),
        Done::AliasChosen => format!("alias chosen; next: ledgerctl epay confirm --account {a}"),
        Done::Activated => format!("e-Pay active for account {a}"),
    };
    Line::new(Step { account }, text)
}

#[derive(Serialize)]
struct Limits {
    per_payment_fen: u64,
    per_day_fen: u64,
}

async fn limits(
    session: &Session,
    account: u64,
    per_payment: &str,
    per_day: &str,
) -> Result<(), Failure> {
    let (per_payment_fen, per_day_fen) = (parse_yuan(per_payment)?, parse_yuan(per_day)?);
    let command = Command::SetEpayLimits {
        account: AccountId(account),
        per_payment_fen,
        per_day_fen,
    };
    let text = format!(
        "limits: {} yuan per payment, {} yuan per day",
        yuan_u(per_payment_fen),
        yuan_u(per_day_fen)
    );
    let limits = Limits {
        per_payment_fen,
        per_day_fen,
    };
    session
        .write_then_show(Operation::Command(command), Line::new(limits, text))
        .await
}

impl Table for Credential {
    fn rows(&self) -> Vec<(&'static str, String)> {
        vec![
            ("alias", self.alias.clone()),
            (
                "per payment",
                format!("{} yuan", yuan_u(self.per_payment_fen)),
            ),
            ("per day", format!("{} yuan", yuan_u(self.per_day_fen))),
            (
                "spent today",
                format!("{} yuan", yuan_u(self.spent_today_fen)),
            ),
        ]
    }
}

async fn show(session: &Session, account: u64) -> Result<(), Failure> {
    session
        .show_record("e-Pay credential for account", account, || {
            session.client().credential(AccountId(account))
        })
        .await
}

pub async fn run(session: &Session, cmd: EpayCmd) -> Result<(), Failure> {
    match cmd {
        EpayCmd::Begin { card, phone } => {
            let card_number = secret(card)?;
            let operation = Operation::EpayBegin { card_number, phone };
            session
                .write_shown(operation, |reply| match reply {
                    Reply::EnrolmentStarted { account } => Ok(step(account.0, Done::Begun)),
                    other => Err(other),
                })
                .await
        }
        EpayCmd::Alias {
            account,
            password,
            alias,
        } => {
            let card_password = secret(password)?;
            let operation = Operation::EpayChooseAlias {
                account: AccountId(account),
                card_password,
                alias,
            };
            session
                .write_then_show(operation, step(account, Done::AliasChosen))
                .await
        }
        EpayCmd::Confirm { account } => {
            let account = AccountId(account);
            session
                .write_shown(Operation::EpayConfirm { account }, |reply| {
                    let issued = IssuedChallenge::try_from(reply)?;
                    let text = format!(
                        "code sent by SMS (challenge {}); see `ledgerctl sms tail`",
                        issued.challenge
                    );
                    Ok(Line::new(issued, text))
                })
                .await
        }
        EpayCmd::Activate { account, code } => {
            let code = secret(code)?;
            let operation = Operation::EpayActivate {
                account: AccountId(account),
                code,
            };
            session
                .write_then_show(operation, step(account, Done::Activated))
                .await
        }
        EpayCmd::Limits {
            account,
            per_payment,
            per_day,
        } => limits(session, account, &per_payment, &per_day).await,
        EpayCmd::Show { account } => show(session, account).await,
    }
}
