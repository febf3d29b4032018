//! The rules of DOMAIN.md section 11 that the core keeps: the journal, account statements and
//! a merchant's daily reconciliation. One test per rule, named after the rule.

mod common;

use common::{claim, deposit, driver, merchant, pool, transfer, withdraw};
use ledger_core::command::Command;
use ledger_core::config::{MAX_STATEMENT_RANGE_MS, MAX_STATEMENT_ROWS, YUAN};
use ledger_core::ledger::journal::{
    Cursor, Order, ReadError, ReconciliationTotals, StatementPage, StatementRequest,
};
use ledger_core::ledger::Ledger;
use ledger_core::outcome::Reply;
use ledger_core::state::{MemStore, Posting};
use ledger_core::time::{cst_day, cst_day_start_ms, DAY_MS};
use ledger_core::types::{AccountId, Cause, Eligibility, MerchantId, MerchantKind, Payee};
use ledger_testkit::driver::{Card, Driver};

/// Every journal row made after row `after`.
fn rows_after(d: &Driver, after: u64) -> Vec<Posting> {
    d.ledger.journal(after, MAX_STATEMENT_ROWS).unwrap()
}

fn last_seq(d: &Driver) -> u64 {
    d.ledger.meta().next_posting - 1
}

fn swiped(d: &mut Driver, card: &Card, m: MerchantId, amount_fen: u64, receipt: &str) {
    match d.swipe(card, m, amount_fen, receipt).unwrap() {
        Reply::PaymentSettled { .. } => {}
        other => panic!("{other:?}"),
    }
}

fn statement(account: AccountId, from_ms: u64, to_ms: u64, order: Order) -> StatementRequest {
    StatementRequest {
        account,
        from_ms,
        to_ms,
        order,
        page_size: MAX_STATEMENT_ROWS,
        cursor: None,
    }
}

/// Every page of a statement, following the cursors.
fn all_pages(ledger: &Ledger<MemStore>, mut request: StatementRequest) -> Vec<StatementPage> {
    let mut pages = Vec::new();
    loop {
        let page = ledger.statement(&request).unwrap();
        request.cursor = page.next.clone();
        pages.push(page);
        if request.cursor.is_none() {
            return pages;
        }
    }
}

#[test]
fn every_posting_is_journaled_once_with_its_accounts_amount_and_cause() {
    let mut d = driver();
    let payer = common::enrolled(&mut d, 1, 5_000 * YUAN);
    let (shop, shop_card) = merchant(&mut d, 9, MerchantKind::Pos);
    let (syt, syt_card) = merchant(&mut d, 8, MerchantKind::Shangyitong);
    let friend = d.funded_card(2, 0);
    let etc = pool(&mut d, 50 * YUAN, 10, Eligibility::Anyone);
    d.submit(claim(etc, payer.account)).unwrap();
    let start = last_seq(&d);

    let Reply::PaymentSettled { payment: paid, .. } = d
        .pay(&payer, Payee::Merchant(shop), 100 * YUAN, "o-1")
        .unwrap()
    else {
        panic!("not settled")
    };
    d.submit(Command::RefundPayment {
        payment: paid,
        amount_fen: 80 * YUAN,
    })
    .unwrap();
    for i in 0..9 {
        swiped(&mut d, &payer, shop, 250 * YUAN, &format!("r-{i}"));
    }
    d.submit(transfer(payer.account, friend.account, 10 * YUAN))
        .unwrap();
    d.submit(withdraw(payer.account, 5 * YUAN)).unwrap();
    d.submit(deposit(syt_card.account, 1_000 * YUAN)).unwrap();
    d.submit(Command::MerchantTransfer {
        merchant: syt,
        target: friend.account,
        amount_fen: 500 * YUAN,
    })
    .unwrap();

    let rows = rows_after(&d, start);
    let (p, s) = (payer.account, shop_card.account);
    let swipes: Vec<_> = rows
        .iter()
        .filter_map(|r| match r.cause {
            Cause::Swipe(id) => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(swipes.len(), 9);
    let campaign = Driver::CAMPAIGN;
    let mut expected = vec![
        (Cause::Payment(paid), p, s, 50 * YUAN),
        (
            Cause::Voucher {
                payment: paid,
                pool: etc,
            },
            AccountId::PROMOTIONS,
            s,
            50 * YUAN,
        ),
        (Cause::Refund(paid), s, p, 50 * YUAN),
        (
            Cause::RefundVoucher(paid),
            s,
            AccountId::PROMOTIONS,
            30 * YUAN,
        ),
    ];
    for id in &swipes {
        expected.push((Cause::Swipe(*id), p, s, 250 * YUAN));
    }
    // The tenth settlement (100 + 9 × 250 yuan, less the refund, is past 2,000 yuan) earns
    // the POS reward: its row follows the swipe's.
    expected.insert(
        expected.len(),
        (
            Cause::Reward {
                campaign,
                merchant: shop,
            },
            AccountId::PROMOTIONS,
            AccountId::TELECOM_SETTLEMENT,
            100 * YUAN,
        ),
    );
    expected.extend([
        (Cause::Transfer, p, friend.account, 10 * YUAN),
        (Cause::Withdrawal, p, AccountId::CLEARING, 5 * YUAN),
        (
            Cause::Deposit,
            AccountId::CLEARING,
            syt_card.account,
            1_000 * YUAN,
        ),
        (
            Cause::MerchantTransfer(syt),
            syt_card.account,
            friend.account,
            500 * YUAN,
        ),
    ]);
    let fee = rows.last().unwrap();
    assert!(matches!(fee.cause, Cause::Fee(m) if m == syt), "{fee:?}");
    assert!(fee.amount_fen > 0);
    let got: Vec<_> = rows[..rows.len() - 1]
        .iter()
        .map(|r| (r.cause, r.source, r.target, r.amount_fen))
        .collect();
    assert_eq!(got, expected);
    // Numbered in order, one after the other, each with the balances it left.
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.seq, start + 1 + i as u64);
    }
    let last_payer_row = rows.iter().rev().find(|r| r.source == p).unwrap();
    assert_eq!(
        last_payer_row.source_balance_fen,
        d.ledger.balance_fen(p).unwrap()
    );
    d.ledger.check_invariants().unwrap();
}

#[test]
fn a_refused_command_journals_nothing() {
    let mut d = driver();
    let card = d.funded_card(1, 10 * YUAN);
    let before = last_seq(&d);
    let e = d.submit(withdraw(card.account, 11 * YUAN)).unwrap_err();
    assert!(matches!(
        e,
        ledger_core::LedgerError::InsufficientFunds { .. }
    ));
    assert_eq!(last_seq(&d), before);
    assert!(rows_after(&d, before).is_empty());
}

#[test]
fn a_journal_row_records_the_log_index_time_and_request_that_made_it() {
    let mut d = driver();
    let card = d.funded_card(1, 0);
    d.advance(DAY_MS);
    let key = d.fresh_key();
    d.submit_with_key(key, deposit(card.account, 7 * YUAN))
        .unwrap();
    let row = *rows_after(&d, 0).last().unwrap();
    assert_eq!(row.request, key);
    assert_eq!(row.at_ms, d.now_ms);
    assert_eq!(row.index, d.index);
    assert_eq!((row.cause, row.amount_fen), (Cause::Deposit, 7 * YUAN));
    // A retry under the same key is answered from the record: no second row.
    d.submit_with_key(key, deposit(card.account, 7 * YUAN))
        .unwrap();
    assert_eq!(last_seq(&d), row.seq);
}

#[test]
fn a_statement_lists_an_accounts_rows_in_a_time_range_with_opening_and_closing_balance() {
    let mut d = driver();
    let card = d.funded_card(1, 100 * YUAN);
    let day_one = d.now_ms;
    d.advance(DAY_MS);
    let from = d.now_ms;
    d.submit(deposit(card.account, 20 * YUAN)).unwrap();
    d.advance(1_000);
    d.submit(withdraw(card.account, 5 * YUAN)).unwrap();
    d.advance(DAY_MS);
    let to = d.now_ms;
    d.submit(deposit(card.account, YUAN)).unwrap();

    let page = d
        .ledger
        .statement(&statement(card.account, from, to, Order::OldestFirst))
        .unwrap();
    assert_eq!(page.opening_balance_fen, 100 * YUAN as i64);
    assert_eq!(page.closing_balance_fen, 115 * YUAN as i64);
    let causes: Vec<_> = page.rows.iter().map(|r| (r.cause, r.amount_fen)).collect();
    assert_eq!(
        causes,
        [(Cause::Deposit, 20 * YUAN), (Cause::Withdrawal, 5 * YUAN)]
    );
    assert_eq!(page.next, None);
    // Newest first: the same rows the other way round.
    let newest = d
        .ledger
        .statement(&statement(card.account, from, to, Order::NewestFirst))
        .unwrap();
    assert_eq!(
        newest.rows,
        page.rows.iter().rev().copied().collect::<Vec<_>>()
    );
    // A range with no rows: opening equals closing, at the balance of that time.
    let quiet = d
        .ledger
        .statement(&statement(
            card.account,
            day_one + 1,
            from,
            Order::OldestFirst,
        ))
        .unwrap();
    assert!(quiet.rows.is_empty());
    assert_eq!(
        (quiet.opening_balance_fen, quiet.closing_balance_fen),
        (100 * YUAN as i64, 100 * YUAN as i64)
    );
    // A range reaching past now closes at the balance now.
    let all = d
        .ledger
        .statement(&statement(
            card.account,
            day_one,
            to + DAY_MS,
            Order::OldestFirst,
        ))
        .unwrap();
    assert_eq!(
        (all.opening_balance_fen, all.closing_balance_fen),
        (0, 116 * YUAN as i64)
    );
    assert_eq!(all.rows.len(), 4);
}

#[test]
fn a_statement_pages_by_cursor_without_losing_or_repeating_a_row() {
    let mut d = driver();
    let t0 = d.now_ms;
    let card = d.funded_card(1, 0);
    for i in 0..25u64 {
        d.submit(deposit(card.account, i + 1)).unwrap();
        // Several rows share a millisecond; the cursor still separates them.
        if i % 3 == 0 {
            d.advance(1);
        }
    }
    for order in [Order::OldestFirst, Order::NewestFirst] {
        let mut request = statement(card.account, t0, d.now_ms + 1, order);
        request.page_size = 10;
        let pages = all_pages(&d.ledger, request);
        assert_eq!(
            pages.iter().map(|p| p.rows.len()).collect::<Vec<_>>(),
            [10, 10, 5]
        );
        let mut amounts: Vec<u64> = pages
            .iter()
            .flat_map(|p| &p.rows)
            .map(|r| r.amount_fen)
            .collect();
        if order == Order::NewestFirst {
            amounts.reverse();
        }
        assert_eq!(amounts, (1..=25).collect::<Vec<u64>>());
        for p in &pages {
            assert_eq!((p.opening_balance_fen, p.closing_balance_fen), (0, 325));
        }
    }
    // A page that ends exactly at the last row has no next cursor.
    let mut request = statement(card.account, t0, d.now_ms + 1, Order::OldestFirst);
    request.page_size = 25;
    assert_eq!(d.ledger.statement(&request).unwrap().next, None);
}

#[test]
fn a_cursor_reads_on_from_where_it_stopped_even_after_new_rows() {
    let mut d = driver();
    let t0 = d.now_ms;
    let card = d.funded_card(1, 0);
    for amount in 1..=3 {
        d.submit(deposit(card.account, amount)).unwrap();
    }
    let mut request = statement(card.account, t0, t0 + DAY_MS, Order::OldestFirst);
    request.page_size = 2;
    let first = d.ledger.statement(&request).unwrap();
    d.submit(deposit(card.account, 4)).unwrap();
    request.cursor = first.next;
    let second = d.ledger.statement(&request).unwrap();
    let amounts: Vec<_> = second.rows.iter().map(|r| r.amount_fen).collect();
    assert_eq!(amounts, [3, 4]);
}

#[test]
fn a_bad_statement_read_gets_a_typed_error() {
    let mut d = driver();
    let t0 = d.now_ms;
    let card = d.funded_card(1, 5);
    let other = d.funded_card(2, 5);
    for _ in 0..3 {
        d.submit(deposit(card.account, 1)).unwrap();
    }
    let base = statement(card.account, t0, d.now_ms + 1, Order::OldestFirst);
    let read = |change: &dyn Fn(&mut StatementRequest)| {
        let mut r = base.clone();
        change(&mut r);
        d.ledger.statement(&r).unwrap_err()
    };
    for size in [0, MAX_STATEMENT_ROWS + 1, 1_000_000] {
        assert_eq!(
            read(&|r| r.page_size = size),
            ReadError::PageSize {
                requested: size,
                max: MAX_STATEMENT_ROWS
            }
        );
    }
    let (from, to) = (base.from_ms, base.to_ms);
    assert_eq!(
        read(&|r| (r.from_ms, r.to_ms) = (to, from)),
        ReadError::ReversedRange {
            from_ms: to,
            to_ms: from
        }
    );
    assert_eq!(
        read(&|r| r.to_ms = r.from_ms + MAX_STATEMENT_RANGE_MS + 1),
        ReadError::RangeTooLong { max_days: 400 }
    );
    assert_eq!(
        read(&|r| r.account = AccountId(999)),
        ReadError::UnknownAccount {
            account: AccountId(999)
        }
    );
    // The longest range is allowed.
    let mut longest = base.clone();
    longest.to_ms = longest.from_ms + MAX_STATEMENT_RANGE_MS;
    assert!(d.ledger.statement(&longest).is_ok());

    let mut paged = base.clone();
    paged.page_size = 1;
    let cursor = d.ledger.statement(&paged).unwrap().next.unwrap();
    // A cursor for another account, another range or another order.
    let mut foreign = statement(other.account, base.from_ms, base.to_ms, Order::OldestFirst);
    foreign.page_size = 1;
    foreign.cursor = Some(cursor.clone());
    assert_eq!(
        d.ledger.statement(&foreign),
        Err(ReadError::CursorForAnotherRead)
    );
    for change in [
        &|r: &mut StatementRequest| r.from_ms += 1,
        &|r: &mut StatementRequest| r.to_ms -= 1,
        &|r: &mut StatementRequest| r.order = Order::NewestFirst,
    ] as [&dyn Fn(&mut StatementRequest); 3]
    {
        let mut r = paged.clone();
        r.cursor = Some(cursor.clone());
        change(&mut r);
        assert_eq!(d.ledger.statement(&r), Err(ReadError::CursorForAnotherRead));
    }
    // A damaged or forged cursor: any changed byte, a shorter or longer one, bad text.
    for i in 0..cursor.0.len() {
        let mut bytes = cursor.0.clone();
        bytes[i] ^= 0x01;
        let mut r = paged.clone();
        r.cursor = Some(Cursor(bytes));
        assert_eq!(
            d.ledger.statement(&r),
            Err(ReadError::BadCursor),
            "byte {i}"
        );
    }
    for bytes in [
        vec![],
        cursor.0[1..].to_vec(),
        [&cursor.0[..], &[0]].concat(),
    ] {
        let mut r = paged.clone();
        r.cursor = Some(Cursor(bytes));
        assert_eq!(d.ledger.statement(&r), Err(ReadError::BadCursor));
    }
    assert_eq!(Cursor::from_text(&cursor.to_text()), Ok(cursor.clone()));
    assert_eq!(
        format!("{cursor:?}"),
        format!("Cursor({})", cursor.to_text())
    );
    for text in ["zz", "abc", &"00".repeat(200)] {
        assert_eq!(Cursor::from_text(text), Err(ReadError::BadCursor));
    }
}

/// A POS merchant's day: two e-Pay payments (one with a voucher), a swipe, a refund of part
/// of the voucher payment, and on the next day a third payment.
#[test]
fn a_reconciliation_totals_a_merchants_day_and_its_net_equals_the_settlement_movement() {
    let mut d = driver();
    let payer = common::enrolled(&mut d, 1, 1_000 * YUAN);
    let (shop, shop_card) = merchant(&mut d, 9, MerchantKind::Pos);
    let etc = pool(&mut d, 50 * YUAN, 10, Eligibility::Anyone);
    d.submit(claim(etc, payer.account)).unwrap();
    d.submit(deposit(shop_card.account, 30 * YUAN)).unwrap();
    // Start the day at 08:00 CST.
    let day = cst_day(d.now_ms) + 1;
    d.now_ms = cst_day_start_ms(day) + 8 * 3_600_000;
    let Reply::PaymentSettled { payment: first, .. } = d
        .pay(&payer, Payee::Merchant(shop), 100 * YUAN, "o-1")
        .unwrap()
    else {
        panic!()
    };
    d.pay(&payer, Payee::Merchant(shop), 40 * YUAN, "o-2")
        .unwrap();
    swiped(&mut d, &payer, shop, 25 * YUAN, "r-1");
    d.submit(Command::RefundPayment {
        payment: first,
        amount_fen: 60 * YUAN,
    })
    .unwrap();
    d.submit(transfer(shop_card.account, payer.account, 3 * YUAN))
        .unwrap();
    // The next day counts for the next day only.
    d.now_ms = cst_day_start_ms(day + 1);
    d.pay(&payer, Payee::Merchant(shop), 7 * YUAN, "o-3")
        .unwrap();

    let r = d
        .ledger
        .reconcile(shop, day, MAX_STATEMENT_ROWS, None)
        .unwrap();
    assert_eq!(r.settlement_account, shop_card.account);
    assert_eq!(
        (r.from_ms, r.to_ms),
        (cst_day_start_ms(day), cst_day_start_ms(day + 1))
    );
    assert_eq!(
        r.totals,
        ReconciliationTotals {
            payments: 2,
            payments_fen: 90 * YUAN,
            swipes: 1,
            swipes_fen: 25 * YUAN,
            vouchers: 1,
            vouchers_fen: 50 * YUAN,
            refunds: 1,
            refunds_to_payers_fen: 50 * YUAN,
            refunds_to_promotions_fen: 10 * YUAN,
            transfers_out: 0,
            transfers_out_fen: 0,
            fees_fen: 0,
            other_in_fen: 0,
            other_out_fen: 3 * YUAN,
            net_fen: (90 + 25 + 50 - 60 - 3) * YUAN as i64,
        }
    );
    assert_eq!(r.page.opening_balance_fen, 30 * YUAN as i64);
    assert_eq!(
        r.page.closing_balance_fen - r.page.opening_balance_fen,
        r.totals.net_fen
    );
    assert_eq!(r.page.rows.len(), 7);
    // Paged, the totals are the day's on every page and the rows are the same rows.
    let mut rows = Vec::new();
    let mut cursor = None;
    loop {
        let page = d.ledger.reconcile(shop, day, 3, cursor).unwrap();
        assert_eq!(page.totals, r.totals);
        rows.extend(page.page.rows);
        cursor = page.page.next;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(rows, r.page.rows);
    // The next day holds the third payment only.
    let next = d
        .ledger
        .reconcile(shop, day + 1, MAX_STATEMENT_ROWS, None)
        .unwrap();
    assert_eq!(
        (next.totals.payments, next.totals.payments_fen),
        (1, 7 * YUAN)
    );
    assert_eq!(next.page.opening_balance_fen, r.page.closing_balance_fen);
    assert_eq!(
        d.ledger.reconcile(MerchantId(77), day, 10, None),
        Err(ReadError::UnknownMerchant {
            merchant: MerchantId(77)
        })
    );
}

#[test]
fn a_merchants_transfers_out_and_their_fees_are_reconciled() {
    let mut d = driver();
    let (syt, card) = merchant(&mut d, 8, MerchantKind::Shangyitong);
    let friend = d.funded_card(2, 0);
    d.submit(deposit(card.account, 1_000 * YUAN)).unwrap();
    let Reply::MerchantTransferred { fee_fen, .. } = d
        .submit(Command::MerchantTransfer {
            merchant: syt,
            target: friend.account,
            amount_fen: 250 * YUAN,
        })
        .unwrap()
    else {
        panic!()
    };
    let r = d
        .ledger
        .reconcile(syt, cst_day(d.now_ms), MAX_STATEMENT_ROWS, None)
        .unwrap();
    assert_eq!(
        (
            r.totals.transfers_out,
            r.totals.transfers_out_fen,
            r.totals.fees_fen
        ),
        (1, 250 * YUAN, fee_fen)
    );
    assert!(fee_fen > 0);
    assert_eq!(r.totals.other_in_fen, 1_000 * YUAN);
    assert_eq!(
        r.totals.net_fen,
        (1_000 * YUAN - 250 * YUAN - fee_fen) as i64
    );
}

#[test]
fn the_journal_travels_in_snapshots_and_the_state_hash() {
    let mut d = driver();
    let card = d.funded_card(1, 10 * YUAN);
    d.submit(withdraw(card.account, 3 * YUAN)).unwrap();
    let restored = Ledger::restore(MemStore::new(), &d.ledger.snapshot()).unwrap();
    assert_eq!(restored.journal(0, 100), d.ledger.journal(0, 100));
    assert_eq!(restored.state_hash(), d.ledger.state_hash());
    let read = statement(
        card.account,
        d.now_ms - DAY_MS,
        d.now_ms + 1,
        Order::NewestFirst,
    );
    assert_eq!(restored.statement(&read), d.ledger.statement(&read));
}

#[test]
fn a_bill_paid_wholly_by_a_voucher_journals_only_the_voucher() {
    let mut d = driver();
    let payer = common::enrolled(&mut d, 1, 0);
    let (shop, _) = merchant(&mut d, 9, MerchantKind::Pos);
    let hundred = pool(&mut d, 100 * YUAN, 10, Eligibility::Anyone);
    let mut paid = Vec::new();
    for swipe in [false, true] {
        // A new card each time: one voucher per card and pool.
        let card = if swipe {
            d.funded_card(2, 0)
        } else {
            payer.clone()
        };
        d.submit(claim(hundred, card.account)).unwrap();
        let start = last_seq(&d);
        let outcome = if swipe {
            d.swipe(&card, shop, 100 * YUAN, "r")
        } else {
            d.pay(&card, Payee::Merchant(shop), 100 * YUAN, "o")
        };
        let Ok(Reply::PaymentSettled { payment, .. }) = outcome else {
            panic!("not settled: {outcome:?}")
        };
        let rows: Vec<_> = rows_after(&d, start)
            .iter()
            .map(|r| (r.cause, r.amount_fen))
            .collect();
        assert_eq!(
            rows,
            [(
                Cause::Voucher {
                    payment,
                    pool: hundred
                },
                100 * YUAN
            )]
        );
        paid.push(payment);
    }
    assert_eq!(paid.len(), 2);
}
