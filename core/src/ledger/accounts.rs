//! Accounts and postings: opening cards, cash in and out, book transfers, freeze and close,
//! campaign flags and the VIP gift. Every movement of money in the ledger goes through
//! [`post`], the one place that enforces double entry and non-negative customer balances.

use super::{journal, merchants, Apply, Handled};
use crate::command::{CampaignFlags, Command};
use crate::config::MAX_NAME_BYTES;
use crate::outcome::{LedgerError, Reply, TextField};
use crate::state::{Account, Gift, Holder, Key, Value};
use crate::types::{AccountId, AccountStatus, Cause, VipTier};
use crate::validate;

/// An existing account.
pub(super) fn load(a: &Apply<'_>, id: AccountId) -> Result<Account, LedgerError> {
    a.tx.get(Key::Account(id))
        .ok_or(LedgerError::UnknownAccount { account: id })
}

/// An existing, active customer account.
pub(super) fn load_customer(a: &Apply<'_>, id: AccountId) -> Result<Account, LedgerError> {
    if id.is_internal() {
        return Err(LedgerError::InternalAccount { account: id });
    }
    let account = load(a, id)?;
    match account.status {
        AccountStatus::Active => Ok(account),
        status => Err(LedgerError::AccountNotActive {
            account: id,
            status,
        }),
    }
}

/// Refuses an internal account where a customer's is needed, without a look-up.
fn customer_id(id: AccountId) -> Result<AccountId, LedgerError> {
    if id.is_internal() {
        Err(LedgerError::InternalAccount { account: id })
    } else {
        Ok(id)
    }
}

/// Refuses, naming the whole amount, when `account` holds less than `needed_fen`: for a
/// debit made of several postings (a transfer and its fee, a refund split two ways).
pub(super) fn require_balance(
    a: &Apply<'_>,
    account: AccountId,
    needed_fen: u64,
) -> Result<(), LedgerError> {
    let balance_fen = load(a, account)?.balance_fen;
    if balance_fen < needed_fen as i64 {
        return Err(LedgerError::InsufficientFunds {
            account,
            balance_fen,
            needed_fen,
        });
    }
    Ok(())
}

/// Moves `amount_fen` from `source` to `target`: the only way money moves. Refuses (changing
/// nothing) when either side is unknown or not active, the source is a customer who would go
/// negative, or the target would overflow. Keeps merchant balance averages up to date.
/// Records the posting in the journal under `cause`. Returns the new balances of source and
/// target.
pub(super) fn post(
    a: &mut Apply<'_>,
    source: AccountId,
    target: AccountId,
    amount_fen: u64,
    cause: Cause,
) -> Result<(i64, i64), LedgerError> {
    debug_assert!(source != target, "callers refuse self-transfers");
    let amount =
        i64::try_from(amount_fen).map_err(|_| LedgerError::BalanceOverflow { account: target })?;
    let mut from = load(a, source)?;
    let mut to = load(a, target)?;
    for (id, acct) in [(source, &from), (target, &to)] {
        if acct.status != AccountStatus::Active {
            return Err(LedgerError::AccountNotActive {
                account: id,
                status: acct.status,
            });
        }
    }
    let from_balance = from
        .balance_fen
        .checked_sub(amount)
        .ok_or(LedgerError::BalanceOverflow { account: source })?;
    if !source.is_internal() && from_balance < 0 {
        return Err(LedgerError::InsufficientFunds {
            account: source,
            balance_fen: from.balance_fen,
            needed_fen: amount_fen,
        });
    }
    let to_balance = to
        .balance_fen
        .checked_add(amount)
        .ok_or(LedgerError::BalanceOverflow { account: target })?;
    from.balance_fen = from_balance;
    to.balance_fen = to_balance;
    a.tx.put(Key::Account(source), from);
    a.tx.put(Key::Account(target), to);
    for acct in [from, to] {
        if let Some(merchant) = acct.merchant {
            merchants::track_balance(a, merchant, acct.balance_fen);
        }
    }
    journal::record(
        a,
        source,
        target,
        amount_fen,
        cause,
        (from_balance, to_balance),
    );
    Ok((from_balance, to_balance))
}

pub(super) fn open_account(a: &mut Apply<'_>, command: &Command) -> Handled {
    let Command::OpenAccount {
        holder_name,
        pan_digest,
        pan_last4,
        lookup_digest,
        phone,
        password,
        flags,
    } = command
    else {
        unreachable!("dispatched by variant")
    };
    validate::text(TextField::HolderName, holder_name, MAX_NAME_BYTES)?;
    validate::mobile_phone(phone)?;
    if !pan_last4.iter().all(u8::is_ascii_digit) {
        return Err(LedgerError::CardNumberLength.into());
    }
    if a.tx
        .get_account_index(Key::CardIndex(*pan_digest))
        .is_some()
    {
        return Err(LedgerError::DuplicateCard.into());
    }
    let id = AccountId(a.meta.next_account);
    a.meta.next_account += 1;
    a.tx.put(
        Key::Account(id),
        Account {
            status: AccountStatus::Active,
            balance_fen: 0,
            merchant: None,
            flags: *flags,
            vip: VipTier::None,
            pan_last4: *pan_last4,
        },
    );
    a.tx.put(
        Key::Holder(id),
        Holder {
            name: holder_name.clone(),
            pan_digest: *pan_digest,
            lookup_digest: *lookup_digest,
            phone: phone.clone(),
            password: *password,
            password_failures: 0,
        },
    );
    a.tx.put_value(Key::CardIndex(*pan_digest), Some(Value::CardIndex(id)));
    Ok(Reply::AccountOpened { account: id })
}

pub(super) fn deposit(a: &mut Apply<'_>, account: AccountId, amount_fen: u64) -> Handled {
    validate::amount(amount_fen)?;
    let (_, balance_fen) = post(
        a,
        AccountId::CLEARING,
        customer_id(account)?,
        amount_fen,
        Cause::Deposit,
    )?;
    Ok(Reply::Posted {
        account,
        balance_fen,
    })
}

pub(super) fn withdraw(a: &mut Apply<'_>, account: AccountId, amount_fen: u64) -> Handled {
    validate::amount(amount_fen)?;
    let (balance_fen, _) = post(
        a,
        customer_id(account)?,
        AccountId::CLEARING,
        amount_fen,
        Cause::Withdrawal,
    )?;
    Ok(Reply::Posted {
        account,
        balance_fen,
    })
}

pub(super) fn transfer(
    a: &mut Apply<'_>,
    source: AccountId,
    target: AccountId,
    amount_fen: u64,
) -> Handled {
    validate::amount(amount_fen)?;
    if source == target {
        return Err(LedgerError::SameAccount.into());
    }
    let (source_balance_fen, target_balance_fen) = post(
        a,
        customer_id(source)?,
        customer_id(target)?,
        amount_fen,
        Cause::Transfer,
    )?;
    Ok(Reply::Transferred {
        source_balance_fen,
        target_balance_fen,
    })
}

pub(super) fn set_status(a: &mut Apply<'_>, id: AccountId, status: AccountStatus) -> Handled {
    if id.is_internal() {
        return Err(LedgerError::InternalAccount { account: id }.into());
    }
    let mut account = load(a, id)?;
    if account.status == AccountStatus::Closed {
        return Err(LedgerError::AccountClosed { account: id }.into());
    }
    if status == AccountStatus::Closed && account.balance_fen != 0 {
        return Err(LedgerError::AccountNotEmpty {
            account: id,
            balance_fen: account.balance_fen,
        }
        .into());
    }
    account.status = status;
    a.tx.put(Key::Account(id), account);
    // Unfreezing (by the bank) also clears a card password lock-out.
    if status == AccountStatus::Active {
        if let Some(mut holder) = a.tx.get::<Holder>(Key::Holder(id)) {
            if holder.password_failures > 0 {
                holder.password_failures = 0;
                a.tx.put(Key::Holder(id), holder);
            }
        }
    }
    Ok(Reply::StatusSet { status })
}

pub(super) fn set_flags(a: &mut Apply<'_>, id: AccountId, flags: CampaignFlags) -> Handled {
    let mut account = load_customer(a, id)?;
    account.flags = flags;
    a.tx.put(Key::Account(id), account);
    Ok(Reply::FlagsSet)
}

/// Changes the VIP tier. Reaching the gift tier of a running campaign (platinum in the
/// article's) records the commemorative gift, once per account whatever happens to the tier
/// afterwards.
pub(super) fn set_vip_tier(a: &mut Apply<'_>, id: AccountId, tier: VipTier) -> Handled {
    let mut account = load_customer(a, id)?;
    let gift_recorded = super::campaigns::gives_vip_gift(a, account.vip, tier)
        && a.tx.get::<Gift>(Key::Gift(id)).is_none();
    account.vip = tier;
    a.tx.put(Key::Account(id), account);
    if gift_recorded {
        a.tx.put(
            Key::Gift(id),
            Gift {
                recorded_ms: a.now_ms,
                tier,
            },
        );
    }
    Ok(Reply::VipTierSet { gift_recorded })
}
