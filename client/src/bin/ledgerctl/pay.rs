//! `ledgerctl pay`: two-step e-Pay payments and small transfers, card-present payments at
//! a terminal, cancels and refunds, and a payment's state.

use crate::failure::Failure;
use crate::session::Session;
use crate::view::{parse_yuan, secret, yuan_u, Line, Table};
use clap::{Args, Subcommand};
use ledger_client::{PendingPayment, Refund, Settlement};
use ledger_core::command::Command;
use ledger_core::outcome::Reply;
use ledger_core::state::Payment;
use ledger_core::types::{AccountId, MerchantId, Payee, PaymentId};
use ledger_wire::api::Operation;

#[derive(Subcommand)]
pub enum PayCmd {
    /// Step 1 (merchant): payer's phone and last six card digits, amount, order.
    Begin(BeginArgs),
    /// Step 2 (payer): the OTP.
    Confirm {
        /// The payment (printed by step 1).
        #[arg(long)]
        payment: u64,
        /// The 6-digit code from the SMS; `-` reads it from standard input.
        #[arg(long)]
        code: String,
    },
    /// A card swiped at the merchant's terminal (merchant): card number, PIN, amount,
    /// terminal and receipt. Settles at once, the best voucher deducted.
    Swipe(SwipeArgs),
    /// Cancel a pending payment (merchant): its code is void from then on.
    Cancel {
        /// The pending payment.
        #[arg(long)]
        payment: u64,
    },
    /// Refund (part of) a settled payment (merchant) from its settlement account.
    Refund {
        /// The settled payment.
        #[arg(long)]
        payment: u64,
        /// Amount in yuan; at most what is left to refund of the bill.
        #[arg(long)]
        amount: String,
    },
    /// Show a payment.
    Show { id: u64 },
}

#[derive(Args)]
pub struct SwipeArgs {
    /// The merchant whose terminal reads the card.
    #[arg(long)]
    merchant: u64,
    /// The terminal's number (1 to the merchant's terminal count).
    #[arg(long, default_value_t = 1)]
    terminal: u32,
    /// The card number read from the card; `-` reads it from standard input (a line).
    #[arg(long)]
    card: String,
    /// The 6-digit PIN typed on the terminal; `-` reads it from standard input (a line,
    /// after the card number's if both are `-`).
    #[arg(long)]
    pin: String,
    /// Amount in yuan.
    #[arg(long)]
    amount: String,
    /// The terminal's receipt number: used once per terminal.
    #[arg(long)]
    receipt: String,
}

#[derive(Args)]
pub struct BeginArgs {
    #[arg(long)]
    phone: String,
    /// The last six digits of the payer's card; `-` reads them from standard input.
    #[arg(long)]
    last_six: String,
    /// Pay a merchant…
    #[arg(
        long,
        conflicts_with = "to_account",
        required_unless_present = "to_account"
    )]
    merchant: Option<u64>,
    /// …or make a small transfer to an account.
    #[arg(long)]
    to_account: Option<u64>,
    /// Amount in yuan.
    #[arg(long)]
    amount: String,
    /// The merchant's order id (a second payment for the same order replaces a pending one).
    #[arg(long)]
    order: String,
}

impl PayCmd {
    pub fn changes_ledger(&self) -> bool {
        !matches!(self, PayCmd::Show { .. })
    }
}

async fn begin(session: &Session, args: BeginArgs) -> Result<(), Failure> {
    let payee = match (args.merchant, args.to_account) {
        (Some(m), _) => Payee::Merchant(MerchantId(m)),
        (None, Some(a)) => Payee::Account(AccountId(a)),
        (None, None) => {
            return Err(Failure::InvalidArgument {
                message: "give --merchant or --to-account".into(),
            })
        }
    };
    let operation = Operation::PaymentBegin {
        phone: args.phone,
        last_six: secret(args.last_six)?,
        payee,
        amount_fen: parse_yuan(&args.amount)?,
        order_id: args.order,
    };
    session
        .write_shown(operation, |reply| {
            let pending = PendingPayment::try_from(reply)?;
            let text = format!(
                "payment {} pending; the payer's code is on its way by SMS (challenge {})",
                pending.payment, pending.challenge
            );
            Ok(Line::new(pending, text))
        })
        .await
}

/// A settlement in words.
fn settled(s: &Settlement) -> String {
    let voucher = s
        .voucher
        .map_or(String::new(), |p| format!(", voucher of pool {p} used"));
    let reward = match s.rewards.as_slice() {
        [] => String::new(),
        campaigns => {
            let names: Vec<String> = campaigns.iter().map(|c| c.to_string()).collect();
            format!(
                "; the merchant earned its reward of campaign {}",
                names.join(", ")
            )
        }
    };
    format!(
        "payment {} settled: bill {} yuan, debited {} yuan{voucher}{reward}",
        s.payment,
        yuan_u(s.bill_fen),
        yuan_u(s.debited_fen)
    )
}

async fn swipe(session: &Session, args: SwipeArgs) -> Result<(), Failure> {
    let operation = Operation::CardPayment {
        merchant: MerchantId(args.merchant),
        terminal: args.terminal,
        card_number: secret(args.card)?,
        card_password: secret(args.pin)?,
        amount_fen: parse_yuan(&args.amount)?,
        receipt: args.receipt,
    };
    session
        .write_shown(operation, |reply| {
            let settlement = Settlement::try_from(reply)?;
            let text = settled(&settlement);
            Ok(Line::new(settlement, text))
        })
        .await
}

async fn cancel(session: &Session, payment: u64) -> Result<(), Failure> {
    let payment = PaymentId(payment);
    let operation = Operation::Command(Command::CancelPayment { payment });
    session
        .write_shown(operation, |reply| match reply {
            Reply::PaymentCancelled { payment } => Ok(Line::new(
                serde_json::json!({ "payment": payment.0, "state": "cancelled" }),
                format!("payment {payment} cancelled; its code no longer works"),
            )),
            other => Err(other),
        })
        .await
}

async fn refund(session: &Session, payment: u64, amount: String) -> Result<(), Failure> {
    let command = Command::RefundPayment {
        payment: PaymentId(payment),
        amount_fen: parse_yuan(&amount)?,
    };
    session
        .write_shown(Operation::Command(command), |reply| {
            let r = Refund::try_from(reply)?;
            let text = format!(
                "payment {} refunded {} yuan: {} yuan to the payer, {} yuan to promotions; {} yuan left to refund",
                r.payment,
                yuan_u(r.refund_fen),
                yuan_u(r.to_payer_fen),
                yuan_u(r.to_promotions_fen),
                yuan_u(r.refundable_fen)
            );
            Ok(Line::new(r, text))
        })
        .await
}

async fn confirm(session: &Session, payment: u64, code: String) -> Result<(), Failure> {
    let operation = Operation::PaymentConfirm {
        payment: PaymentId(payment),
        code: secret(code)?,
    };
    session
        .write_shown(operation, |reply| {
            let settlement = Settlement::try_from(reply)?;
            let text = settled(&settlement);
            Ok(Line::new(settlement, text))
        })
        .await
}

impl Table for Payment {
    fn rows(&self) -> Vec<(&'static str, String)> {
        vec![
            ("amount", format!("{} yuan", yuan_u(self.amount_fen))),
            ("payer", format!("account {}", self.payer)),
            ("payee", format!("{:?}", self.payee)),
            ("order", self.order_id.clone()),
            ("method", format!("{:?}", self.method)),
            ("state", format!("{:?}", self.state)),
            (
                "refunded",
                format!(
                    "{} yuan in {} refunds ({} yuan to the payer)",
                    yuan_u(self.refunds.total_fen),
                    self.refunds.count,
                    yuan_u(self.refunds.to_payer_fen)
                ),
            ),
        ]
    }
}

async fn show(session: &Session, id: u64) -> Result<(), Failure> {
    session
        .show_record("payment", id, || session.client().payment(PaymentId(id)))
        .await
}

pub async fn run(session: &Session, cmd: PayCmd) -> Result<(), Failure> {
    match cmd {
        PayCmd::Begin(args) => begin(session, args).await,
        PayCmd::Confirm { payment, code } => confirm(session, payment, code).await,
        PayCmd::Swipe(args) => swipe(session, args).await,
        PayCmd::Cancel { payment } => cancel(session, payment).await,
        PayCmd::Refund { payment, amount } => refund(session, payment, amount).await,
        PayCmd::Show { id } => show(session, id).await,
    }
}
