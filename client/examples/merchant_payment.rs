//! A merchant takes an e-Pay payment: phone + last six card digits, amount and order; the
//! payer reads the code from the SMS and types it in; the payment settles.
//!
//! Against the dev cluster (`cargo run --release -p ledger-node -- dev` in another terminal):
//! `cargo run -p ledger-client --example merchant_payment`

use ledger_client::identity::{dev_identity, DEFAULT_IDENTITY};
use ledger_client::{Client, ClientConfig, DEV_ENDPOINTS};
use ledger_core::command::CampaignFlags;
use ledger_core::intake::{OpenAccountRequest, Secret};
use ledger_core::types::{MerchantKind, Payee};
use ledger_wire::dev_sms::read_outbox;
use std::time::Duration;

/// Reads the code of a challenge from the dev cluster's SMS outbox, as the payer would from
/// their phone.
async fn code_from_sms(challenge: u64) -> String {
    for _ in 0..100 {
        for node in 1..=3 {
            let path = format!("./data/dev/node{node}/sms-outbox.jsonl");
            if let Some(code) = read_outbox(path.as_ref())
                .unwrap_or_default()
                .iter()
                .filter(|m| m.id == challenge)
                .find_map(|m| m.code())
            {
                return code;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no SMS for challenge {challenge}; is the dev cluster running from this directory?");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = ClientConfig::new(DEV_ENDPOINTS);
    // The dev cluster's operator certificate, made by `ledger-node dev` in data/dev/certs.
    config.tls = Some(dev_identity(DEFAULT_IDENTITY)?);
    let client = Client::new(config);
    let seed = ledger_client::sample::fresh_base();
    let (pan, phone) = (
        ledger_client::sample::card_number(seed),
        ledger_client::sample::phone(seed),
    );

    // The payer: a card, money on it, e-Pay enrolled (four steps, the last with the SMS code).
    let payer = client
        .open_account(OpenAccountRequest {
            holder_name: "小王".into(),
            card_number: Secret::new(&pan),
            card_password: Secret::new("135790"),
            phone: phone.clone(),
            flags: CampaignFlags::default(),
        })
        .await?;
    client.deposit(payer, 50_000).await?;
    client.epay_begin(Secret::new(&pan), &phone).await?;
    client
        .epay_choose_alias(payer, Secret::new("135790"), "小王的卡")
        .await?;
    let issued = client.epay_confirm(payer).await?;
    client
        .epay_activate(payer, Secret::new(code_from_sms(issued.challenge.0).await))
        .await?;

    // The merchant, with its settlement account.
    let settlement = client
        .open_account(OpenAccountRequest {
            holder_name: "网店".into(),
            card_number: Secret::new(ledger_client::sample::card_number(seed + 1)),
            card_password: Secret::new("135790"),
            phone: ledger_client::sample::phone(seed + 1),
            flags: CampaignFlags::default(),
        })
        .await?;
    let merchant = client
        .register_merchant(
            MerchantKind::Online,
            "网店",
            settlement,
            &ledger_client::sample::phone(seed + 1),
            1,
        )
        .await?;

    // Step 1, by the merchant; step 2, by the payer with the code from the SMS.
    let pending = client
        .begin_payment(
            &phone,
            Secret::new(&pan[pan.len() - 6..]),
            Payee::Merchant(merchant),
            12_800,
            &format!("order-{seed}"),
        )
        .await?;
    let code = code_from_sms(pending.challenge.0).await;
    let settled = client
        .confirm_payment(pending.payment, Secret::new(code))
        .await?;
    println!(
        "payment {} settled: {} fen debited; merchant balance {} fen",
        settled.payment,
        settled.debited_fen,
        client.balance(settlement).await?
    );
    Ok(())
}
