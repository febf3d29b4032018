//! The few ledger operations most end-to-end tests start from, as the test operator.

use ledger_client::{Client, Consistency, Operation, Query, QueryReply};
use ledger_core::command::{CampaignFlags, Command};
use ledger_core::intake::{OpenAccountRequest, Secret};
use ledger_core::outcome::Reply;
use ledger_core::types::AccountId;

/// The account-opening request of test card holder `n` (card password "135790").
pub fn open_account_request(n: u64) -> OpenAccountRequest {
    OpenAccountRequest {
        holder_name: format!("holder {n}"),
        card_number: Secret::new(ledger_testkit::driver::test_pan(n)),
        card_password: Secret::new("135790"),
        phone: ledger_testkit::driver::test_phone(n),
        flags: CampaignFlags::default(),
    }
}

/// Opens test card holder `n`'s account.
pub async fn open_account(client: &Client, n: u64) -> AccountId {
    match client
        .submit(Operation::OpenAccount(open_account_request(n)))
        .await
    {
        Ok(Reply::AccountOpened { account }) => account,
        other => panic!("open account: {other:?}"),
    }
}

/// An account's balance, read linearizably.
pub async fn balance(client: &Client, account: AccountId) -> i64 {
    match client
        .query(Query::Account(account), Consistency::Linearizable)
        .await
    {
        Ok(QueryReply::Account(Some(view))) => view.balance_fen,
        other => panic!("balance of {account}: {other:?}"),
    }
}

/// A deposit into `account`.
pub fn deposit(account: AccountId, amount_fen: u64) -> Operation {
    Operation::Command(Command::Deposit {
        account,
        amount_fen,
    })
}

/// A book transfer between two accounts.
pub fn transfer(source: AccountId, target: AccountId, amount_fen: u64) -> Operation {
    Operation::Command(Command::Transfer {
        source,
        target,
        amount_fen,
    })
}
