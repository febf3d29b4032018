//! Card-present payments at a merchant's terminal (刷卡消费, DOMAIN.md section 7): the card
//! number and PIN arrive hashed, the PIN is checked against the card's stored hash with the
//! card's shared lock-out, the best voucher is deducted, the merchant's counters count it,
//! and a per-card daily cap bounds what a stolen card and PIN can spend at terminals.

use super::{accounts, epay, merchants, vouchers, Apply, Failure, Handled};
use crate::command::receipt_digest;
use crate::config::MAX_RECEIPT_BYTES;
use crate::outcome::{LedgerError, Reply, TextField};
use crate::state::{CardDay, EventKind, Key, Payment, PaymentMethod, PaymentState, Refunds, Value};
use crate::time::cst_day;
use crate::types::{AccountId, Cause, Digest32, MerchantId, MerchantKind, Payee, PaymentId};
use crate::validate;

/// What a swipe carries once the intake hashed it.
pub(super) struct Swipe<'c> {
    pub(super) merchant: MerchantId,
    pub(super) terminal: u32,
    pub(super) pan_digest: Digest32,
    pub(super) password_proof: Digest32,
    pub(super) amount_fen: u64,
    pub(super) receipt: &'c str,
}

/// The card's card-present spending today with `debit_fen` added, or the refusal at the cap.
fn count_against_cap(
    a: &Apply<'_>,
    account: AccountId,
    debit_fen: u64,
) -> Result<CardDay, LedgerError> {
    let today = cst_day(a.now_ms);
    let mut spent =
        a.tx.get::<CardDay>(Key::CardDay(account))
            .filter(|d| d.day == today)
            .unwrap_or(CardDay {
                day: today,
                spent_fen: 0,
            });
    let limit_fen = a.config.card_present_cap_fen_per_day;
    if spent.spent_fen.saturating_add(debit_fen) > limit_fen {
        return Err(LedgerError::OverCardPresentDailyLimit {
            debit_fen,
            spent_today_fen: spent.spent_fen,
            limit_fen,
        });
    }
    spent.spent_fen += debit_fen;
    Ok(spent)
}

/// A swipe: checks the terminal, the card and its PIN, the receipt's uniqueness, the cap and
/// the funds, then settles at once. A wrong PIN is recorded (it counts toward the card's
/// lock-out even though nothing else happens); every other refusal changes nothing.
pub(super) fn swipe(a: &mut Apply<'_>, s: Swipe<'_>) -> Handled {
    validate::amount(s.amount_fen)?;
    validate::text(TextField::Receipt, s.receipt, MAX_RECEIPT_BYTES)?;
    let merchant = merchants::load(a, s.merchant)?;
    if merchant.kind == MerchantKind::Online {
        return Err(LedgerError::NoTerminals {
            merchant: s.merchant,
        }
        .into());
    }
    if !(1..=merchant.terminals).contains(&s.terminal) {
        return Err(LedgerError::UnknownTerminal {
            merchant: s.merchant,
            terminal: s.terminal,
            terminals: merchant.terminals,
        }
        .into());
    }
    let payer =
        a.tx.get_account_index(Key::CardIndex(s.pan_digest))
            .ok_or(LedgerError::UnknownCard)?;
    accounts::load_customer(a, payer)?;
    let payee = Payee::Merchant(s.merchant);
    let target = epay::payee_account(a, payer, payee)?;
    epay::check_card_password(a, payer, s.password_proof).map_err(Failure::Recorded)?;

    let receipt_key = Key::OrderIndex(payee, receipt_digest(s.terminal, s.receipt));
    if let Some(payment) = a.tx.get_payment_index(receipt_key) {
        return Err(LedgerError::DuplicateReceipt { payment }.into());
    }
    let voucher = vouchers::best_for(a, payer, s.amount_fen);
    let debited_fen = s.amount_fen - voucher.as_ref().map_or(0, |v| v.face_value_fen);
    let card_day = count_against_cap(a, payer, debited_fen)?;
    let payment_id = PaymentId(a.meta.next_payment);
    a.meta.next_payment += 1;
    let cause = Cause::Swipe(payment_id);
    vouchers::settle(
        a,
        payer,
        target,
        debited_fen,
        cause,
        voucher.as_ref(),
        payment_id,
    )?;
    a.tx.put(Key::CardDay(payer), card_day);
    a.tx.put(
        Key::Payment(payment_id),
        Payment {
            payer,
            payee,
            amount_fen: s.amount_fen,
            order_id: s.receipt.to_owned(),
            method: PaymentMethod::CardPresent {
                terminal: s.terminal,
            },
            state: PaymentState::Settled {
                debited_fen,
                voucher: voucher.as_ref().map(|v| v.pool),
                settled_ms: a.now_ms,
            },
            created_ms: a.now_ms,
            refunds: Refunds::default(),
            // Promotion points are earned by e-Pay payments only (DOMAIN.md section 8).
            points_earned: 0,
        },
    );
    a.tx.put_value(receipt_key, Some(Value::OrderIndex(payment_id)));
    let settled =
        a.tx.get::<Payment>(Key::Payment(payment_id))
            .expect("just written");
    let kind = EventKind::Settled {
        bill_fen: s.amount_fen,
        debited_fen,
        voucher_fen: s.amount_fen - debited_fen,
    };
    super::events::emit(a, payment_id, &settled, kind);
    let rewards = merchants::record_settlement(a, s.merchant, s.amount_fen, payment_id)?;
    Ok(Reply::PaymentSettled {
        payment: payment_id,
        bill_fen: s.amount_fen,
        debited_fen,
        voucher: voucher.map(|v| v.pool),
        rewards,
    })
}
