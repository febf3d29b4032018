//! Refunds (DOMAIN.md section 9): a merchant gives back a settled payment of its own, in
//! full or in parts that never add up to more than the bill, out of its settlement account.
//! The payer gets back what it paid first (the bill less the voucher); the rest goes back to
//! `promotions`, which funded the voucher; the voucher itself is not given back. The points
//! the payment earned are taken back in proportion to what was refunded (never below zero).

use super::{accounts, merchants, points, Apply, Handled};
use crate::config::MAX_REFUNDS_PER_PAYMENT;
use crate::outcome::{LedgerError, Reply};
use crate::state::{EventKind, Key, Payment, PaymentState};
use crate::types::{AccountId, Cause, Payee, PaymentId};
use crate::validate;

/// One refund of `amount_fen` of a settled merchant payment.
pub(super) fn refund(a: &mut Apply<'_>, id: PaymentId, amount_fen: u64) -> Handled {
    validate::amount(amount_fen)?;
    let mut payment: Payment =
        a.tx.get(Key::Payment(id))
            .ok_or(LedgerError::UnknownPayment { payment: id })?;
    let Payee::Merchant(merchant) = payment.payee else {
        return Err(LedgerError::TransferNotRefundable { payment: id }.into());
    };
    let PaymentState::Settled {
        debited_fen,
        settled_ms,
        ..
    } = payment.state
    else {
        return Err(LedgerError::NotRefundable {
            payment: id,
            state: payment.state.name().to_owned(),
        }
        .into());
    };
    let refundable_fen = payment.refundable_fen();
    if amount_fen > refundable_fen {
        return Err(LedgerError::RefundExceedsBill {
            payment: id,
            refundable_fen,
            requested_fen: amount_fen,
        }
        .into());
    }
    if payment.refunds.count >= MAX_REFUNDS_PER_PAYMENT {
        return Err(LedgerError::TooManyRefunds {
            payment: id,
            max: MAX_REFUNDS_PER_PAYMENT,
        }
        .into());
    }
    let source = merchants::load(a, merchant)?.settlement_account;
    accounts::require_balance(a, source, amount_fen)?;
    let to_payer_fen = amount_fen.min(debited_fen - payment.refunds.to_payer_fen);
    let to_promotions_fen = amount_fen - to_payer_fen;
    if to_payer_fen > 0 {
        accounts::post(a, source, payment.payer, to_payer_fen, Cause::Refund(id))?;
    }
    if to_promotions_fen > 0 {
        accounts::post(
            a,
            source,
            AccountId::PROMOTIONS,
            to_promotions_fen,
            Cause::RefundVoucher(id),
        )?;
    }
    super::campaigns::record_refund(a, merchant, amount_fen, settled_ms);
    payment.refunds.count += 1;
    payment.refunds.total_fen += amount_fen;
    payment.refunds.to_payer_fen += to_payer_fen;
    payment.refunds.points_taken += points::take_back(
        a,
        payment.payer,
        payment.points_earned,
        payment.refunds.points_taken,
        payment.refunds.total_fen,
        payment.amount_fen,
    );
    let refundable_fen = payment.refundable_fen();
    let kind = EventKind::Refunded {
        amount_fen,
        refundable_fen,
    };
    super::events::emit(a, id, &payment, kind);
    a.tx.put(Key::Payment(id), payment);
    Ok(Reply::PaymentRefunded {
        payment: id,
        refund_fen: amount_fen,
        to_payer_fen,
        to_promotions_fen,
        refundable_fen,
    })
}
