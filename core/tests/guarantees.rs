//! The state rules of DOMAIN.md section 6, What the ledger guarantees: snapshots, ledger
//! time, the SMS outbox, and lock-outs that carry across commands. One test per rule,
//! named after the rule. Every refusal is also checked to leave the state hash unchanged.

mod common;

use common::{
    driver, pan_digest, payer_and_shop, pending, refused, set_status, settled, with_card,
    wrong_code, wrong_password_choice,
};
use ledger_core::command::Command;
use ledger_core::config::YUAN;
use ledger_core::outcome::{LedgerError, Reply};
use ledger_core::state::PaymentState;
use ledger_core::types::{AccountStatus, MerchantKind, Payee, VipTier};

#[test]
fn snapshot_then_restore_gives_the_same_hash_and_the_same_bytes() {
    let (mut d, payer, m) = payer_and_shop(MerchantKind::Pos);
    settled(d.pay(&payer, Payee::Merchant(m), 10 * YUAN, "o"));
    let bytes = d.ledger.snapshot();
    let restored = ledger_core::Ledger::restore(ledger_core::MemStore::new(), &bytes).unwrap();
    assert_eq!(restored.state_hash(), d.ledger.state_hash());
    assert_eq!(restored.snapshot(), bytes);
}

#[test]
fn a_corrupt_snapshot_is_refused() {
    use ledger_core::ledger::SnapshotError;
    let d = driver();
    let mut bytes = d.ledger.snapshot();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    let restore = |b: &[u8]| ledger_core::Ledger::restore(ledger_core::MemStore::new(), b).err();
    assert_eq!(restore(&bytes), Some(SnapshotError::BadChecksum));
    assert_eq!(restore(b"not a snapshot"), Some(SnapshotError::BadHeader));
}

#[test]
fn a_snapshot_is_framed_by_its_magic_a_count_and_a_checksum() {
    use ledger_core::ledger::{decode_snapshot, encode_snapshot, SnapshotError};
    // The smallest snapshot (no record) is exactly magic, count and checksum: 48 bytes.
    let empty = encode_snapshot(Vec::<(Vec<u8>, Vec<u8>)>::new());
    assert_eq!(empty.len(), 48);
    assert_eq!(decode_snapshot(&empty), Ok(Vec::new()));
    // One byte short of that, whatever it holds, has no room for a header.
    assert_eq!(decode_snapshot(&empty[..47]), Err(SnapshotError::BadHeader));
    // Another magic is refused as such, not as a bad checksum.
    let d = driver();
    let mut other = d.ledger.snapshot();
    other[0] ^= 0x20;
    assert_eq!(decode_snapshot(&other), Err(SnapshotError::BadHeader));
    assert!(decode_snapshot(&d.ledger.snapshot()).is_ok_and(|r| !r.is_empty()));
}

#[test]
fn ledger_time_never_runs_backwards() {
    let (mut d, card) = with_card(0);
    let later = d.now_ms;
    d.now_ms -= 3_600_000; // the leader's clock steps back an hour
    d.submit(Command::SetVipTier {
        account: card.account,
        tier: VipTier::Platinum,
    })
    .unwrap();
    assert_eq!(d.ledger.gift(card.account).unwrap().recorded_ms, later);
    assert_eq!(d.ledger.meta().last_now_ms, later);
}

#[test]
fn issued_challenges_wait_in_the_sms_outbox_until_the_leader_acknowledges_them() {
    let (mut d, card, m) = payer_and_shop(MerchantKind::Online);
    let enrolment_challenge = d.ledger.outbox(10)[0];
    let (_, c) = pending(&mut d, &card, m, 12 * YUAN, "o");
    assert_eq!(d.ledger.outbox(10), vec![enrolment_challenge, c]);
    let facts = d.ledger.sms_facts(c).unwrap();
    assert_eq!(
        (facts.alias.as_str(), facts.payee, facts.amount_fen),
        ("小王的卡", Some(Payee::Merchant(m)), Some(1_200))
    );
    assert_eq!(facts.phone, card.phone);
    let ack = Command::AckSms {
        challenges: vec![enrolment_challenge, c, c],
    };
    assert_eq!(d.submit(ack), Ok(Reply::SmsAcknowledged { removed: 2 }));
    assert!(d.ledger.outbox(10).is_empty());
    refused(
        &mut d,
        Command::AckSms {
            challenges: vec![c; 1_025],
        },
        LedgerError::TooManyItems { max: 1_024 },
    );
}

#[test]
fn wrong_card_passwords_across_enrolments_freeze_the_card() {
    let (mut d, card) = with_card(0);
    let pan_digest = pan_digest(&d, &card);
    let choose = wrong_password_choice(&d, &card);
    let mut last = Ok(Reply::AliasChosen);
    for _round in 0..2 {
        d.submit(Command::EpayBegin {
            pan_digest,
            phone: card.phone.clone(),
        })
        .unwrap();
        for _ in 0..3 {
            last = d.submit(choose.clone());
        }
    }
    assert_eq!(
        last,
        Err(LedgerError::CardLocked {
            account: card.account
        })
    );
    assert_eq!(
        d.ledger.account(card.account).unwrap().status,
        AccountStatus::Frozen
    );
    refused(
        &mut d,
        Command::EpayBegin {
            pan_digest,
            phone: card.phone.clone(),
        },
        LedgerError::AccountNotActive {
            account: card.account,
            status: AccountStatus::Frozen,
        },
    );
    // The bank unfreezes the card; the count starts again and the right password works.
    d.submit(set_status(card.account, AccountStatus::Active))
        .unwrap();
    assert_eq!(
        d.enrol(&card, "x"),
        Ok(Reply::EpayActivated {
            account: card.account
        })
    );
}

#[test]
fn a_payment_whose_code_locks_fails_and_its_order_can_be_paid_anew() {
    let (mut d, card, m) = payer_and_shop(MerchantKind::Online);
    let (p, c) = pending(&mut d, &card, m, 10 * YUAN, "o");
    let wrong = wrong_code(&d, c);
    for _ in 0..3 {
        let _ = d.confirm(p, &wrong);
    }
    assert_eq!(d.ledger.payment(p).unwrap().state, PaymentState::Failed);
    settled(d.pay(&card, Payee::Merchant(m), 10 * YUAN, "o"));
}
