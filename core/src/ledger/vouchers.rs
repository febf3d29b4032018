//! Voucher pools (刷卡券): capacity, eligibility, one voucher per account per pool, first come
//! first served in commit order, a validity window; and the automatic deduction of the best
//! voucher at payment.

use super::{accounts, Apply, Handled};
use crate::config::{MAX_NAME_BYTES, MAX_POOLS, MAX_POOL_CAPACITY};
use crate::outcome::{LedgerError, Reply, TextField};
use crate::state::{Account, Key, Pool, Value, Voucher};
use crate::types::{AccountId, Cause, Eligibility, PaymentId, PoolId};
use crate::validate;

/// The voucher chosen for a payment.
pub(super) struct Best {
    pub(super) pool: PoolId,
    pub(super) face_value_fen: u64,
    voucher: Voucher,
}

pub(super) fn create_pool(
    a: &mut Apply<'_>,
    name: &str,
    face_value_fen: u64,
    capacity: u64,
    eligibility: Eligibility,
    valid_from_ms: u64,
    valid_until_ms: u64,
) -> Handled {
    validate::text(TextField::PoolName, name, MAX_NAME_BYTES)?;
    validate::amount(face_value_fen)?;
    if capacity == 0 || capacity > MAX_POOL_CAPACITY {
        return Err(LedgerError::InvalidPoolCapacity {
            max: MAX_POOL_CAPACITY,
        }
        .into());
    }
    if valid_until_ms <= valid_from_ms {
        return Err(LedgerError::InvalidPoolWindow.into());
    }
    if a.meta.next_pool > MAX_POOLS {
        return Err(LedgerError::TooManyPools { max: MAX_POOLS }.into());
    }
    let pool = PoolId(a.meta.next_pool);
    a.meta.next_pool += 1;
    a.tx.put(
        Key::Pool(pool),
        Pool {
            name: name.to_owned(),
            face_value_fen,
            capacity,
            granted: 0,
            eligibility,
            valid_from_ms,
            valid_until_ms,
        },
    );
    Ok(Reply::PoolCreated { pool })
}

fn eligible(account: &Account, eligibility: Eligibility) -> bool {
    match eligibility {
        Eligibility::Anyone => true,
        Eligibility::EtcBound => account.flags.etc_bound,
        Eligibility::SavingsProduct => account.flags.savings_product,
        Eligibility::VipAtLeast(tier) => account.vip >= tier,
    }
}

/// Grants one voucher if the pool is open, has some left, and the account is eligible and has
/// none from it yet. Claims are decided in the order they are applied, which is the order
/// the cluster commits them: first come, first served.
pub(super) fn claim(a: &mut Apply<'_>, pool_id: PoolId, account_id: AccountId) -> Handled {
    let mut pool: Pool =
        a.tx.get(Key::Pool(pool_id))
            .ok_or(LedgerError::UnknownPool { pool: pool_id })?;
    let account = accounts::load_customer(a, account_id)?;
    if a.now_ms < pool.valid_from_ms {
        return Err(LedgerError::PoolNotOpen {
            pool: pool_id,
            opens_at_ms: pool.valid_from_ms,
        }
        .into());
    }
    if a.now_ms >= pool.valid_until_ms {
        return Err(LedgerError::PoolClosed {
            pool: pool_id,
            closed_at_ms: pool.valid_until_ms,
        }
        .into());
    }
    if !eligible(&account, pool.eligibility) {
        return Err(LedgerError::NotEligible {
            account: account_id,
            pool: pool_id,
            eligibility: pool.eligibility,
        }
        .into());
    }
    if a.tx
        .get::<Voucher>(Key::Voucher(account_id, pool_id))
        .is_some()
    {
        return Err(LedgerError::AlreadyClaimed {
            account: account_id,
            pool: pool_id,
        }
        .into());
    }
    if pool.granted >= pool.capacity {
        return Err(LedgerError::PoolExhausted {
            pool: pool_id,
            capacity: pool.capacity,
        }
        .into());
    }
    pool.granted += 1;
    let remaining = pool.capacity - pool.granted;
    a.tx.put(
        Key::Voucher(account_id, pool_id),
        Voucher {
            face_value_fen: pool.face_value_fen,
            valid_from_ms: pool.valid_from_ms,
            valid_until_ms: pool.valid_until_ms,
            consumed_by: None,
        },
    );
    a.tx.put(Key::Pool(pool_id), pool);
    Ok(Reply::VoucherClaimed {
        pool: pool_id,
        remaining,
    })
}

/// The best voucher for a bill: unconsumed, valid now, face value at most the bill; the
/// largest face value wins, the oldest pool on a tie.
pub(super) fn best_for(a: &Apply<'_>, payer: AccountId, bill_fen: u64) -> Option<Best> {
    let rows = a.tx.range(
        Key::Voucher(payer, PoolId(0)),
        Key::Voucher(AccountId(payer.0 + 1), PoolId(0)),
        MAX_POOLS as usize,
    );
    let mut best: Option<Best> = None;
    for (key, value) in rows {
        let (Key::Voucher(_, pool), Value::Voucher(voucher)) = (key, value) else {
            unreachable!("range stays inside the payer's vouchers")
        };
        let usable = voucher.consumed_by.is_none()
            && (voucher.valid_from_ms..voucher.valid_until_ms).contains(&a.now_ms)
            && voucher.face_value_fen <= bill_fen;
        if usable
            && best
                .as_ref()
                .is_none_or(|b| voucher.face_value_fen > b.face_value_fen)
        {
            best = Some(Best {
                pool,
                face_value_fen: voucher.face_value_fen,
                voucher,
            });
        }
    }
    best
}

/// Marks the chosen voucher consumed by a payment: once, for good.
/// The money of a settling payment: the payer's debit (`payer_cause`, nothing when a voucher
/// paid the whole bill) and the voucher's face value from `promotions`, which the voucher
/// pays once.
pub(super) fn settle(
    a: &mut Apply<'_>,
    payer: AccountId,
    target: AccountId,
    debited_fen: u64,
    payer_cause: Cause,
    voucher: Option<&Best>,
    payment: PaymentId,
) -> Result<(), LedgerError> {
    if debited_fen > 0 {
        accounts::post(a, payer, target, debited_fen, payer_cause)?;
    }
    if let Some(v) = voucher {
        let cause = Cause::Voucher {
            payment,
            pool: v.pool,
        };
        accounts::post(a, AccountId::PROMOTIONS, target, v.face_value_fen, cause)?;
        consume(a, payer, v, payment);
    }
    Ok(())
}

fn consume(a: &mut Apply<'_>, payer: AccountId, best: &Best, payment: PaymentId) {
    assert!(
        best.voucher.consumed_by.is_none(),
        "a voucher is consumed once"
    );
    let mut voucher = best.voucher;
    voucher.consumed_by = Some(payment);
    a.tx.put(Key::Voucher(payer, best.pool), voucher);
}
