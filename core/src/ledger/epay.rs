//! e-Pay (工银e支付): the four-step enrolment, customer limits, OTP challenges bound to the
//! transaction, and the two-step payment that settles with the best voucher deducted.

use super::{accounts, merchants, points, vouchers, Apply, Failure, Handled};
use crate::command::{order_digest, ChallengeSeed, OtpProof, TxElements};
use crate::config::LedgerConfig;
use crate::config::{MAX_CARD_PASSWORD_FAILURES, MAX_ORDER_ID_BYTES, MAX_PASSWORD_FAILURES};
use crate::otp::ct_eq;
use crate::outcome::{EnrolmentStep, LedgerError, Reply, TextField};
use crate::state::{
    Challenge, ChallengePurpose, ChallengeState, Credential, Enrolment, EventKind, Holder, Key,
    OtpIssues, Payment, PaymentMethod, PaymentState, Refunds, Value,
};
use crate::time::cst_day;
use crate::types::{AccountId, Cause, ChallengeId, Digest32, Payee, PaymentId};
use crate::validate;

fn load_enrolment(a: &Apply<'_>, account: AccountId) -> Result<Enrolment, LedgerError> {
    a.tx.get(Key::Enrolment(account))
        .ok_or(LedgerError::NotEnrolling { account })
}

fn expect_step(enrolment: &Enrolment, expected: &[EnrolmentStep]) -> Result<(), LedgerError> {
    if expected.contains(&enrolment.step) {
        Ok(())
    } else {
        Err(LedgerError::EnrolmentStepOutOfOrder {
            expected: expected[0],
            actual: enrolment.step,
        })
    }
}

pub(super) fn holder(a: &Apply<'_>, account: AccountId) -> Holder {
    a.tx.get(Key::Holder(account))
        .unwrap_or_else(|| panic!("corrupt state: account {account} has no holder"))
}

/// Voids a challenge that a newer one replaces (same order, or a re-sent enrolment code).
fn void_challenge(a: &mut Apply<'_>, id: ChallengeId) {
    if let Some(mut challenge) = a.tx.get::<Challenge>(Key::Challenge(id)) {
        if challenge.state == ChallengeState::Open {
            challenge.state = ChallengeState::Voided;
            a.tx.put(Key::Challenge(id), challenge);
        }
    }
}

/// The key of a reserved phone's throttle record: the phone as its number (a mobile number
/// of 11 digits, checked when the account was opened).
fn otp_issues_key(phone: &str) -> Key {
    let number = phone
        .parse()
        .unwrap_or_else(|_| panic!("corrupt state: a reserved phone is not a mobile number"));
    Key::OtpIssues(number)
}

/// The throttle against SMS pumping: a phone's issue times with one more issued at `now_ms`,
/// those that left the window dropped; or, when `otp_challenges_per_phone` are still in the
/// window, the refusal with the time until the oldest of them leaves it. An issue at `t`
/// counts while `now_ms < t + otp_throttle_window_ms`.
fn count_issue(
    config: &LedgerConfig,
    issues: OtpIssues,
    phone: &str,
    now_ms: u64,
) -> Result<OtpIssues, LedgerError> {
    let window_ms = config.otp_throttle_window_ms;
    let limit = config.otp_challenges_per_phone as usize;
    let mut issued_ms = issues.issued_ms;
    issued_ms.retain(|&t| t.saturating_add(window_ms) > now_ms);
    if issued_ms.len() >= limit {
        // With `limit` kept at most, this is the oldest; a zero limit frees nothing, ever.
        let frees_at_ms = issued_ms
            .get(issued_ms.len() - limit)
            .map_or(now_ms, |&t| t)
            .saturating_add(window_ms);
        return Err(LedgerError::TooManyChallenges {
            phone_last4: phone[phone.len().saturating_sub(4)..].to_owned(),
            limit: config.otp_challenges_per_phone,
            window_ms,
            retry_after_ms: frees_at_ms - now_ms,
        });
    }
    issued_ms.push(now_ms);
    assert!(issued_ms.len() <= limit && issued_ms.is_sorted());
    Ok(OtpIssues { issued_ms })
}

/// Records a new OTP challenge, counted against the reserved phone that receives its SMS
/// (refused, changing nothing, past the throttle). The code was derived on the leader from
/// the transaction digest and the seed's nonce; the ledger keeps only the verifier.
fn issue_challenge(
    a: &mut Apply<'_>,
    purpose: ChallengePurpose,
    account: AccountId,
    tx_digest: Digest32,
    seed: ChallengeSeed,
) -> Result<(ChallengeId, u64), LedgerError> {
    let phone = holder(a, account).phone;
    let throttle_key = otp_issues_key(&phone);
    let issues = a.tx.get(throttle_key).unwrap_or_default();
    let issues = count_issue(a.config, issues, &phone, a.now_ms)?;
    a.tx.put(throttle_key, issues);
    let id = ChallengeId(a.meta.next_challenge);
    a.meta.next_challenge += 1;
    let expires_ms = a.now_ms.saturating_add(a.config.otp_expiry_ms);
    a.tx.put(
        Key::Challenge(id),
        Challenge {
            purpose,
            account,
            nonce: seed.nonce,
            tx_digest,
            verifier: seed.verifier,
            issued_ms: a.now_ms,
            expires_ms,
            wrong_attempts: 0,
            state: ChallengeState::Open,
        },
    );
    a.tx.put_value(Key::Outbox(id), Some(Value::Outbox));
    Ok((id, expires_ms))
}

/// Checks a typed code against a challenge: open, not expired, computed against this very
/// challenge, and equal to the verifier in constant time. A wrong code uses up an attempt
/// (a recorded failure); the last attempt locks the challenge. A right code marks it used,
/// which stands only if the caller's whole command succeeds.
fn use_challenge(a: &mut Apply<'_>, id: ChallengeId, otp: OtpProof) -> Result<(), Failure> {
    let mut challenge: Challenge =
        a.tx.get(Key::Challenge(id))
            .unwrap_or_else(|| panic!("corrupt state: challenge {id} missing"));
    match challenge.state {
        ChallengeState::Open => {}
        ChallengeState::Used => return Err(LedgerError::OtpAlreadyUsed { challenge: id }.into()),
        ChallengeState::Voided => return Err(LedgerError::OtpSuperseded { challenge: id }.into()),
        ChallengeState::Locked => return Err(LedgerError::OtpLocked { challenge: id }.into()),
    }
    if otp.nonce != challenge.nonce {
        // The proof was computed against an older challenge: not the payer's mistake.
        return Err(LedgerError::OtpSuperseded { challenge: id }.into());
    }
    if a.now_ms >= challenge.expires_ms {
        return Err(LedgerError::OtpExpired {
            issued_at_ms: challenge.issued_ms,
            expired_at_ms: challenge.expires_ms,
        }
        .into());
    }
    if !ct_eq(&otp.proof.0, &challenge.verifier.0) {
        challenge.wrong_attempts += 1;
        let attempts_left = a
            .config
            .otp_max_attempts
            .saturating_sub(challenge.wrong_attempts);
        let error = if attempts_left == 0 {
            challenge.state = ChallengeState::Locked;
            LedgerError::OtpLocked { challenge: id }
        } else {
            LedgerError::WrongOtp { attempts_left }
        };
        a.tx.put(Key::Challenge(id), challenge);
        return Err(Failure::Recorded(error));
    }
    challenge.state = ChallengeState::Used;
    a.tx.put(Key::Challenge(id), challenge);
    Ok(())
}

/// The leader sent (or gave up on, once expired) these challenges' SMS messages.
pub(super) fn ack_sms(a: &mut Apply<'_>, challenges: &[ChallengeId]) -> Handled {
    validate::items(challenges.len(), crate::config::MAX_SMS_ACK)?;
    let mut removed = 0;
    for id in challenges {
        if a.tx.get_value(&Key::Outbox(*id)).is_some() {
            a.tx.delete(Key::Outbox(*id));
            removed += 1;
        }
    }
    Ok(Reply::SmsAcknowledged { removed })
}

/// Step 1: the card and its reserved phone match; an enrolment starts (or restarts).
pub(super) fn begin_enrolment(a: &mut Apply<'_>, pan_digest: Digest32, phone: &str) -> Handled {
    validate::mobile_phone(phone)?;
    let account =
        a.tx.get_account_index(Key::CardIndex(pan_digest))
            .ok_or(LedgerError::UnknownCard)?;
    accounts::load_customer(a, account)?;
    if holder(a, account).phone != phone {
        return Err(LedgerError::PhoneMismatch.into());
    }
    if a.tx.get::<Credential>(Key::Credential(account)).is_some() {
        return Err(LedgerError::AlreadyEnrolled { account }.into());
    }
    if let Some(previous) = a.tx.get::<Enrolment>(Key::Enrolment(account)) {
        if let Some(challenge) = previous.challenge {
            void_challenge(a, challenge);
        }
    }
    a.tx.put(
        Key::Enrolment(account),
        Enrolment {
            step: EnrolmentStep::Started,
            alias: String::new(),
            password_failures: 0,
            challenge: None,
        },
    );
    Ok(Reply::EnrolmentStarted { account })
}

/// Checks a card password (as a proof under the stored salt) against the card's hash. A
/// right one clears the card's count of wrong ones; a wrong one adds to it (the write
/// stands only if the caller records the failure), and the one that reaches
/// `MAX_CARD_PASSWORD_FAILURES` freezes the card until the bank unfreezes it: `CardLocked`.
/// Otherwise `WrongCardPassword` with the tries the card has left.
pub(super) fn check_card_password(
    a: &mut Apply<'_>,
    account: AccountId,
    password_proof: Digest32,
) -> Result<(), LedgerError> {
    let mut card_holder = holder(a, account);
    if ct_eq(&password_proof.0, &card_holder.password.hash.0) {
        if card_holder.password_failures > 0 {
            card_holder.password_failures = 0;
            a.tx.put(Key::Holder(account), card_holder);
        }
        return Ok(());
    }
    card_holder.password_failures = card_holder.password_failures.saturating_add(1);
    let failures = card_holder.password_failures;
    a.tx.put(Key::Holder(account), card_holder);
    if failures >= MAX_CARD_PASSWORD_FAILURES {
        let mut acct = accounts::load(a, account)?;
        acct.status = crate::types::AccountStatus::Frozen;
        a.tx.put(Key::Account(account), acct);
        return Err(LedgerError::CardLocked { account });
    }
    Err(LedgerError::WrongCardPassword {
        failures_left: MAX_CARD_PASSWORD_FAILURES - failures,
    })
}

/// Step 2: the card password (as a proof under the stored salt) and the alias.
pub(super) fn choose_alias(
    a: &mut Apply<'_>,
    account: AccountId,
    password_proof: Digest32,
    chosen: &str,
) -> Handled {
    validate::alias(chosen)?;
    let mut enrolment = load_enrolment(a, account)?;
    expect_step(&enrolment, &[EnrolmentStep::Started])?;
    if let Err(card_error) = check_card_password(a, account, password_proof) {
        // Counted twice: per enrolment (three wrong cancel it) and per card across
        // enrolments and terminals (restarting an enrolment must not reset the count).
        enrolment.password_failures += 1;
        if matches!(card_error, LedgerError::CardLocked { .. }) {
            a.tx.delete(Key::Enrolment(account));
            return Err(Failure::Recorded(card_error));
        }
        let failures_left = MAX_PASSWORD_FAILURES.saturating_sub(enrolment.password_failures);
        if failures_left == 0 {
            a.tx.delete(Key::Enrolment(account));
            return Err(Failure::Recorded(LedgerError::EnrolmentCancelled));
        }
        a.tx.put(Key::Enrolment(account), enrolment);
        return Err(Failure::Recorded(LedgerError::WrongCardPassword {
            failures_left,
        }));
    }
    enrolment.step = EnrolmentStep::AliasChosen;
    enrolment.alias = chosen.to_owned();
    a.tx.put(Key::Enrolment(account), enrolment);
    Ok(Reply::AliasChosen)
}

/// Step 3: the customer confirms; an OTP goes to the reserved phone. Confirming again
/// re-sends a new code and voids the earlier one.
pub(super) fn confirm_enrolment(
    a: &mut Apply<'_>,
    account: AccountId,
    seed: ChallengeSeed,
) -> Handled {
    let mut enrolment = load_enrolment(a, account)?;
    expect_step(
        &enrolment,
        &[EnrolmentStep::AliasChosen, EnrolmentStep::OtpSent],
    )?;
    if let Some(previous) = enrolment.challenge {
        void_challenge(a, previous);
    }
    let digest = TxElements::Enrolment {
        account,
        alias: &enrolment.alias,
    }
    .digest();
    let (challenge, expires_at_ms) = issue_challenge(
        a,
        ChallengePurpose::Enrolment(account),
        account,
        digest,
        seed,
    )?;
    enrolment.step = EnrolmentStep::OtpSent;
    enrolment.challenge = Some(challenge);
    a.tx.put(Key::Enrolment(account), enrolment);
    Ok(Reply::ChallengeIssued {
        challenge,
        expires_at_ms,
    })
}

/// Step 4: the OTP; the credential becomes active with the bank's caps as its limits.
pub(super) fn activate(a: &mut Apply<'_>, account: AccountId, otp: OtpProof) -> Handled {
    let enrolment = load_enrolment(a, account)?;
    expect_step(&enrolment, &[EnrolmentStep::OtpSent])?;
    let lookup = holder(a, account).lookup_digest;
    if a.tx.get_account_index(Key::LookupIndex(lookup)).is_some() {
        return Err(LedgerError::LookupTaken.into());
    }
    let challenge = enrolment.challenge.unwrap_or_else(|| {
        panic!("corrupt state: enrolment {account} at OtpSent has no challenge")
    });
    use_challenge(a, challenge, otp)?;
    a.tx.delete(Key::Enrolment(account));
    a.tx.put(
        Key::Credential(account),
        Credential {
            alias: enrolment.alias,
            per_payment_fen: a.config.epay_cap_fen_per_payment,
            per_day_fen: a.config.epay_cap_fen_per_day,
            day: cst_day(a.now_ms),
            spent_today_fen: 0,
        },
    );
    a.tx.put_value(Key::LookupIndex(lookup), Some(Value::LookupIndex(account)));
    Ok(Reply::EpayActivated { account })
}

/// The customer sets limits within the bank's caps (lowering them, or restoring up to them).
pub(super) fn set_limits(
    a: &mut Apply<'_>,
    account: AccountId,
    per_payment_fen: u64,
    per_day_fen: u64,
) -> Handled {
    validate::amount(per_payment_fen)?;
    validate::amount(per_day_fen)?;
    for (requested_fen, cap_fen) in [
        (per_payment_fen, a.config.epay_cap_fen_per_payment),
        (per_day_fen, a.config.epay_cap_fen_per_day),
    ] {
        if requested_fen > cap_fen {
            return Err(LedgerError::LimitAboveCap {
                requested_fen,
                cap_fen,
            }
            .into());
        }
    }
    if per_payment_fen > per_day_fen {
        return Err(LedgerError::LimitsInconsistent.into());
    }
    accounts::load_customer(a, account)?;
    let mut credential: Credential =
        a.tx.get(Key::Credential(account))
            .ok_or(LedgerError::UnknownCredential)?;
    credential.per_payment_fen = per_payment_fen;
    credential.per_day_fen = per_day_fen;
    a.tx.put(Key::Credential(account), credential);
    Ok(Reply::LimitsSet {
        per_payment_fen,
        per_day_fen,
    })
}

/// Checks a debit against the credential's limits on today's CST day, and returns the
/// credential with the debit counted.
fn spend(
    a: &Apply<'_>,
    mut credential: Credential,
    debit_fen: u64,
) -> Result<Credential, LedgerError> {
    let today = cst_day(a.now_ms);
    if credential.day != today {
        credential.day = today;
        credential.spent_today_fen = 0;
    }
    if debit_fen > credential.per_payment_fen {
        return Err(LedgerError::OverPaymentLimit {
            debit_fen,
            limit_fen: credential.per_payment_fen,
        });
    }
    if credential.spent_today_fen + debit_fen > credential.per_day_fen {
        return Err(LedgerError::OverDailyLimit {
            debit_fen,
            spent_today_fen: credential.spent_today_fen,
            limit_fen: credential.per_day_fen,
        });
    }
    credential.spent_today_fen += debit_fen;
    Ok(credential)
}

/// The account a payee is paid into, checked to be usable.
pub(super) fn payee_account(
    a: &Apply<'_>,
    payer: AccountId,
    payee: Payee,
) -> Result<AccountId, LedgerError> {
    let account = match payee {
        Payee::Merchant(m) => merchants::load(a, m)?.settlement_account,
        Payee::Account(t) => t,
    };
    if account == payer {
        return Err(LedgerError::SameAccount);
    }
    accounts::load_customer(a, account)?;
    Ok(account)
}

/// The voucher a payment would use, and the debit after it. Vouchers apply to merchant
/// payments only, not to small transfers.
fn debit_after_voucher(
    a: &Apply<'_>,
    payer: AccountId,
    payee: Payee,
    amount_fen: u64,
) -> (Option<vouchers::Best>, u64) {
    let best = match payee {
        Payee::Merchant(_) => vouchers::best_for(a, payer, amount_fen),
        Payee::Account(_) => None,
    };
    let face = best.as_ref().map_or(0, |b| b.face_value_fen);
    (best, amount_fen - face)
}

/// When a challenge stops accepting its code.
pub(super) fn challenge_expiry(a: &Apply<'_>, id: ChallengeId) -> u64 {
    a.tx.get::<Challenge>(Key::Challenge(id))
        .unwrap_or_else(|| panic!("corrupt state: challenge {id} missing"))
        .expires_ms
}

/// Ends a pending payment in `end` (superseded, failed, cancelled or expired): it leaves the
/// expiry queue for good.
pub(super) fn end_pending(
    a: &mut Apply<'_>,
    id: PaymentId,
    mut payment: Payment,
    end: PaymentState,
) {
    debug_assert_eq!(payment.state, PaymentState::Pending);
    let challenge = payment.challenge().expect("a pending payment is e-Pay");
    a.tx.delete(Key::PendingPayment(challenge_expiry(a, challenge), id));
    let kind = match end {
        PaymentState::Superseded => EventKind::Superseded,
        PaymentState::Failed => EventKind::Failed,
        PaymentState::Cancelled { .. } => EventKind::Cancelled,
        PaymentState::Expired { .. } => EventKind::Expired,
        PaymentState::Pending | PaymentState::Settled { .. } => {
            unreachable!("a pending payment ends without settling here")
        }
    };
    payment.state = end;
    super::events::emit(a, id, &payment, kind);
    a.tx.put(Key::Payment(id), payment);
}

/// Ends a pending payment as `Expired` if ledger time has passed its challenge's expiry,
/// returning that expiry; otherwise changes nothing.
fn expire_if_due(a: &mut Apply<'_>, id: PaymentId, payment: &Payment) -> Option<u64> {
    let challenge = payment.challenge().expect("a pending payment is e-Pay");
    let expires_ms = challenge_expiry(a, challenge);
    if a.now_ms < expires_ms {
        return None;
    }
    let end = PaymentState::Expired {
        expired_ms: expires_ms,
    };
    end_pending(a, id, payment.clone(), end);
    Some(expires_ms)
}

/// The payee cancels a pending payment: its code is void from then on. One already past its
/// expiry is expired instead (and says so).
pub(super) fn cancel_payment(a: &mut Apply<'_>, id: PaymentId) -> Handled {
    let payment: Payment =
        a.tx.get(Key::Payment(id))
            .ok_or(LedgerError::UnknownPayment { payment: id })?;
    if payment.state != PaymentState::Pending {
        return Err(LedgerError::PaymentNotPending { payment: id }.into());
    }
    let challenge = payment.challenge().expect("a pending payment is e-Pay");
    if let Some(expired_at_ms) = expire_if_due(a, id, &payment) {
        return Err(Failure::Recorded(LedgerError::PaymentExpired {
            payment: id,
            expired_at_ms,
        }));
    }
    void_challenge(a, challenge);
    let end = PaymentState::Cancelled {
        cancelled_ms: a.now_ms,
    };
    end_pending(a, id, payment, end);
    Ok(Reply::PaymentCancelled { payment: id })
}

/// Pending payments whose challenge has expired by ledger time become `Expired`. Named ones
/// that are not pending, or not yet expired, are left alone: the leader's list may be stale.
pub(super) fn expire_payments(a: &mut Apply<'_>, payments: &[PaymentId]) -> Handled {
    validate::items(payments.len(), crate::config::MAX_EXPIRE_BATCH)?;
    let mut expired = 0;
    for &id in payments {
        let Some(payment) = a.tx.get::<Payment>(Key::Payment(id)) else {
            continue;
        };
        if payment.state == PaymentState::Pending && expire_if_due(a, id, &payment).is_some() {
            expired += 1;
        }
    }
    Ok(Reply::PaymentsExpired { expired })
}

/// Payment step 1: look the payer up by phone + last six digits, check the payment could
/// settle now, and issue an OTP bound to payee, amount, currency and order. A new payment for
/// an order that is still pending supersedes it and voids its code.
pub(super) fn begin_payment(
    a: &mut Apply<'_>,
    lookup_digest: Digest32,
    payee: Payee,
    amount_fen: u64,
    order_id: &str,
    seed: ChallengeSeed,
) -> Handled {
    validate::amount(amount_fen)?;
    validate::text(TextField::OrderId, order_id, MAX_ORDER_ID_BYTES)?;
    let payer =
        a.tx.get_account_index(Key::LookupIndex(lookup_digest))
            .ok_or(LedgerError::UnknownCredential)?;
    let payer_account = accounts::load_customer(a, payer)?;
    let credential: Credential =
        a.tx.get(Key::Credential(payer))
            .ok_or(LedgerError::UnknownCredential)?;
    payee_account(a, payer, payee)?;
    let (_, debit_fen) = debit_after_voucher(a, payer, payee, amount_fen);
    spend(a, credential, debit_fen)?;
    if payer_account.balance_fen < debit_fen as i64 {
        return Err(LedgerError::InsufficientFunds {
            account: payer,
            balance_fen: payer_account.balance_fen,
            needed_fen: debit_fen,
        }
        .into());
    }
    let order_key = Key::OrderIndex(payee, order_digest(order_id));
    if let Some(previous_id) = a.tx.get_payment_index(order_key) {
        let previous: Payment = a.tx.get(Key::Payment(previous_id)).unwrap_or_else(|| {
            panic!("corrupt state: order index names missing payment {previous_id}")
        });
        match previous.state {
            PaymentState::Settled { .. } => {
                return Err(LedgerError::OrderAlreadyPaid {
                    payment: previous_id,
                }
                .into())
            }
            PaymentState::Pending => {
                let challenge = previous.challenge().expect("a pending payment is e-Pay");
                void_challenge(a, challenge);
                let expires_ms = challenge_expiry(a, challenge);
                let end = if a.now_ms >= expires_ms {
                    PaymentState::Expired {
                        expired_ms: expires_ms,
                    }
                } else {
                    PaymentState::Superseded
                };
                end_pending(a, previous_id, previous, end);
            }
            _ => {}
        }
    }
    let payment = PaymentId(a.meta.next_payment);
    a.meta.next_payment += 1;
    let digest = TxElements::Payment {
        lookup_digest: &lookup_digest,
        payee,
        amount_fen,
        order_id,
    }
    .digest();
    let (challenge, expires_at_ms) =
        issue_challenge(a, ChallengePurpose::Payment(payment), payer, digest, seed)?;
    a.tx.put(
        Key::Payment(payment),
        Payment {
            payer,
            payee,
            amount_fen,
            order_id: order_id.to_owned(),
            method: PaymentMethod::Epay { challenge },
            state: PaymentState::Pending,
            created_ms: a.now_ms,
            refunds: Refunds::default(),
            points_earned: 0,
        },
    );
    a.tx.put_value(
        Key::PendingPayment(expires_at_ms, payment),
        Some(Value::PendingPayment),
    );
    a.tx.put_value(order_key, Some(Value::OrderIndex(payment)));
    Ok(Reply::PaymentPending {
        payment,
        challenge,
        expires_at_ms,
    })
}

/// Payment step 2: the OTP confirms exactly this payment; it settles with the best voucher
/// deducted in real time. Any refusal after the code was accepted (limits, funds) drops the
/// whole command: the code stays usable and nothing counts.
pub(super) fn confirm_payment(a: &mut Apply<'_>, payment_id: PaymentId, otp: OtpProof) -> Handled {
    let mut payment: Payment =
        a.tx.get(Key::Payment(payment_id))
            .ok_or(LedgerError::UnknownPayment {
                payment: payment_id,
            })?;
    if payment.state != PaymentState::Pending {
        return Err(LedgerError::PaymentNotPending {
            payment: payment_id,
        }
        .into());
    }
    let challenge = payment.challenge().expect("a pending payment is e-Pay");
    match use_challenge(a, challenge, otp) {
        Ok(()) => {}
        Err(Failure::Recorded(e @ LedgerError::OtpLocked { .. })) => {
            // The last wrong code: the payment fails for good; the order may be paid anew.
            end_pending(a, payment_id, payment, PaymentState::Failed);
            return Err(Failure::Recorded(e));
        }
        Err(Failure::Refused(e @ LedgerError::OtpExpired { expired_at_ms, .. })) => {
            // Too late: the payment expired and never settles, whoever asks.
            let end = PaymentState::Expired {
                expired_ms: expired_at_ms,
            };
            end_pending(a, payment_id, payment, end);
            return Err(Failure::Recorded(e));
        }
        Err(e) => return Err(e),
    }
    let payer = payment.payer;
    accounts::load_customer(a, payer)?;
    let target = payee_account(a, payer, payment.payee)?;
    let credential: Credential =
        a.tx.get(Key::Credential(payer))
            .ok_or(LedgerError::UnknownCredential)?;
    let (voucher, debited_fen) = debit_after_voucher(a, payer, payment.payee, payment.amount_fen);
    let credential = spend(a, credential, debited_fen)?;
    let cause = Cause::Payment(payment_id);
    vouchers::settle(
        a,
        payer,
        target,
        debited_fen,
        cause,
        voucher.as_ref(),
        payment_id,
    )?;
    a.tx.put(Key::Credential(payer), credential);
    a.tx.delete(Key::PendingPayment(
        challenge_expiry(a, challenge),
        payment_id,
    ));
    payment.state = PaymentState::Settled {
        debited_fen,
        voucher: voucher.as_ref().map(|v| v.pool),
        settled_ms: a.now_ms,
    };
    let bill_fen = payment.amount_fen;
    let payee = payment.payee;
    if let Payee::Merchant(m) = payee {
        payment.points_earned = points::earn(a, payer, m, bill_fen);
    }
    let kind = EventKind::Settled {
        bill_fen,
        debited_fen,
        voucher_fen: bill_fen - debited_fen,
    };
    super::events::emit(a, payment_id, &payment, kind);
    a.tx.put(Key::Payment(payment_id), payment);
    let rewards = match payee {
        Payee::Merchant(m) => merchants::record_settlement(a, m, bill_fen, payment_id)?,
        Payee::Account(_) => Vec::new(),
    };
    Ok(Reply::PaymentSettled {
        payment: payment_id,
        bill_fen,
        debited_fen,
        voucher: voucher.map(|v| v.pool),
        rewards,
    })
}
