//! The node's intake: a retry under the same key must carry the same request, secrets
//! included. Another OTP code or card number under a recorded key is refused as a reused
//! key, never answered with the first request's receipt.

use ledger_core::command::{Command, Context, Envelope};
use ledger_core::config::LedgerConfig;
use ledger_core::intake::{Secret, SecretKeys};
use ledger_core::outcome::LedgerError;
use ledger_core::types::{PaymentId, RequestKey};
use ledger_core::Ledger;
use ledger_node::intake::{request_digest, CpuWork, Intake};
use ledger_node::planted::PlantedBug;
use ledger_node::state_store::SledState;
use ledger_wire::api::{ApiError, Operation};

fn keys() -> SecretKeys {
    SecretKeys::derive(b"intake test key", 1)
}

fn confirm(code: &str) -> Operation {
    Operation::PaymentConfirm {
        payment: PaymentId(7),
        code: Secret::new(code),
    }
}

/// A sled-backed ledger that has recorded one request under `key`, digested by `intake`.
fn ledger_with_record(
    intake: &Intake,
    key: RequestKey,
    operation: &Operation,
) -> Ledger<SledState> {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let mut ledger = Ledger::genesis(
        SledState::new(db.open_tree("state").unwrap()),
        LedgerConfig::default(),
    );
    // Closing a month applies, so the request is recorded with the digest the intake made.
    let command = Command::CloseMonth {
        month: ledger_core::types::YearMonth::new(2014, 12).unwrap(),
    };
    let envelope = Envelope {
        key,
        acked_below: 0,
        command,
        request_digest: intake.digest(operation),
        owner: ledger_core::SessionOwner::Client,
    };
    ledger
        .apply(
            &Context {
                index: 1,
                now_ms: 1_420_041_600_000,
            },
            &envelope,
        )
        .ok();
    assert!(
        ledger.idempotency_record(key).is_some(),
        "the request is recorded"
    );
    ledger
}

fn intake(planted: Option<PlantedBug>) -> Intake {
    Intake {
        keys: keys(),
        cpu: CpuWork::Inline,
        planted,
        plain_http_webhooks: false,
    }
}

/// The key the tests record a confirmation under.
const KEY: RequestKey = RequestKey {
    client_id: 1,
    request_id: 1,
};

#[test]
fn a_retry_with_another_code_under_the_same_key_is_refused_as_reused() {
    let intake = intake(None);
    let key = KEY;
    let ledger = ledger_with_record(&intake, key, &confirm("123456"));
    let same = intake.recorded_answer(&ledger, key, intake.digest(&confirm("123456")));
    assert!(matches!(same, Some(Ok(_))), "{same:?}");
    let other = intake.recorded_answer(&ledger, key, intake.digest(&confirm("654321")));
    assert_eq!(
        other,
        Some(Err(ApiError::Ledger(LedgerError::IdempotencyKeyReused {
            key
        })))
    );
}

#[test]
fn request_digests_differ_in_every_secret_and_are_keyed() {
    let k = keys();
    let begin = |card: &str| Operation::EpayBegin {
        card_number: Secret::new(card),
        phone: "13800000001".into(),
    };
    assert_ne!(
        request_digest(&k, &begin("6222020200000000001")),
        request_digest(&k, &begin("6222020200000000002"))
    );
    assert_ne!(
        request_digest(&k, &confirm("123456")),
        request_digest(&SecretKeys::derive(b"another bank", 1), &confirm("123456")),
        "without the bank's key the digest cannot be recomputed (or a code searched for)"
    );
}

#[test]
fn the_planted_intake_bug_answers_another_code_with_the_first_receipt() {
    let intake = intake(Some(PlantedBug::IntakeIgnoresSecretOnRetry));
    let key = KEY;
    let ledger = ledger_with_record(&intake, key, &confirm("123456"));
    let other = intake.recorded_answer(&ledger, key, intake.digest(&confirm("654321")));
    assert!(matches!(other, Some(Ok(_))), "{other:?}");
}

#[test]
fn node_commands_and_commands_with_hashed_fields_are_not_a_clients_to_send() {
    let intake = intake(None);
    let ledger = ledger_with_record(&intake, KEY, &confirm("123456"));
    let swipe = Command::CardPayment {
        merchant: ledger_core::types::MerchantId(1),
        terminal: 1,
        pan_digest: ledger_core::types::Digest32([0; 32]),
        password_proof: ledger_core::types::Digest32([0; 32]),
        amount_fen: 100,
        receipt: "r".into(),
    };
    let node_only = [
        Command::ExpirePayments {
            payments: vec![PaymentId(1)],
        },
        Command::AckSms { challenges: vec![] },
        swipe,
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for command in node_only {
        let key = RequestKey {
            client_id: 2,
            request_id: 1,
        };
        let answer =
            runtime.block_on(intake.command(&ledger, key, Operation::Command(command.clone())));
        assert!(
            matches!(answer, Err(ApiError::NotAllowed { .. })),
            "{command:?}: {answer:?}"
        );
    }
}

#[test]
fn a_swipe_with_an_unknown_card_is_refused_at_the_intake() {
    let intake = intake(None);
    let ledger = ledger_with_record(&intake, KEY, &confirm("123456"));
    let swipe = Operation::CardPayment {
        merchant: ledger_core::types::MerchantId(1),
        terminal: 1,
        card_number: Secret::new(ledger_client::sample::card_number(5)),
        card_password: Secret::new("135790"),
        amount_fen: 100,
        receipt: "r".into(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let answer = runtime.block_on(intake.command(&ledger, KEY, swipe));
    assert_eq!(answer, Err(ApiError::Ledger(LedgerError::UnknownCard)));
}
