//! `ledgerctl epay`: e-Pay enrolment in four steps, limits, and the credential.

use crate::failure::Failure;
use crate::session::Session;
use crate::view::{fields, parse_yuan, secret, unexpected, yuan_u, View};
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
pub enum Done {
    Begun,
    AliasChosen,
    Activated,
}

/// Where the enrolment stands after a step, and what to run next.
#[derive(Serialize)]
pub struct Step {
    account: u64,
    #[serde(skip)]
    done: Done,
}

impl View for Step {
    fn text(&self) -> String {
        let a = self.account;
        match self.done {
            Done::Begun => format!(
                "enrolling account {a}; next: ledgerctl epay alias --account {a} --password … --alias …"
            ),
            Done::AliasChosen => {
                format!("alias chosen; next: ledgerctl epay confirm --account {a}")
            }
            Done::Activated => format!("e-Pay active for account {a}"),
        }
    }
}

#[derive(Serialize)]
#[serde(transparent)]
pub struct CodeSent(IssuedChallenge);

impl View for CodeSent {
    fn text(&self) -> String {
        format!(
            "code sent by SMS (challenge {}); see `ledgerctl sms tail`",
            self.0.challenge
        )
    }
}

#[derive(Serialize)]
pub struct Limits {
    per_payment_fen: u64,
    per_day_fen: u64,
}

impl View for Limits {
    fn text(&self) -> String {
        format!(
            "limits: {} yuan per payment, {} yuan per day",
            yuan_u(self.per_payment_fen),
            yuan_u(self.per_day_fen)
        )
    }
}

/// A credential as the ledger holds it (JSON: the record itself).
#[derive(Serialize)]
#[serde(transparent)]
pub struct Shown(Credential);

impl View for Shown {
    fn text(&self) -> String {
        let c = &self.0;
        fields(&[
            ("alias", c.alias.clone()),
            ("per payment", format!("{} yuan", yuan_u(c.per_payment_fen))),
            ("per day", format!("{} yuan", yuan_u(c.per_day_fen))),
            ("spent today", format!("{} yuan", yuan_u(c.spent_today_fen))),
        ])
    }
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
    session.write(Operation::Command(command)).await?;
    session.show(&Limits {
        per_payment_fen,
        per_day_fen,
    });
    Ok(())
}

async fn show(session: &Session, account: u64) -> Result<(), Failure> {
    let credential = session
        .read_record("e-Pay credential for account", account, || {
            session.client().credential(AccountId(account))
        })
        .await?;
    session.show(&Shown(credential));
    Ok(())
}

pub async fn run(session: &Session, cmd: EpayCmd) -> Result<(), Failure> {
    match cmd {
        EpayCmd::Begin { card, phone } => {
            let card_number = secret(card)?;
            match session
                .write(Operation::EpayBegin { card_number, phone })
                .await?
            {
                Reply::EnrolmentStarted { account } => session.show(&Step {
                    account: account.0,
                    done: Done::Begun,
                }),
                other => return Err(unexpected(other)),
            }
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
            session.write(operation).await?;
            session.show(&Step {
                account,
                done: Done::AliasChosen,
            });
        }
        EpayCmd::Confirm { account } => {
            let account = AccountId(account);
            match session.write(Operation::EpayConfirm { account }).await? {
                Reply::ChallengeIssued {
                    challenge,
                    expires_at_ms,
                } => session.show(&CodeSent(IssuedChallenge {
                    challenge,
                    expires_at_ms,
                })),
                other => return Err(unexpected(other)),
            }
        }
        EpayCmd::Activate { account, code } => {
            let code = secret(code)?;
            let operation = Operation::EpayActivate {
                account: AccountId(account),
                code,
            };
            session.write(operation).await?;
            session.show(&Step {
                account,
                done: Done::Activated,
            });
        }
        EpayCmd::Limits {
            account,
            per_payment,
            per_day,
        } => return limits(session, account, &per_payment, &per_day).await,
        EpayCmd::Show { account } => return show(session, account).await,
    }
    Ok(())
}
