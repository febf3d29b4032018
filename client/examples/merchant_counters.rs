//! A 商易通 merchant reads its campaign counters, its one-time reward and its fee tier, and
//! transfers out of its settlement account at that tier's fee.
//!
//! `cargo run -p ledger-client --example merchant_counters` (against the dev cluster)

use ledger_client::identity::{dev_identity, DEFAULT_IDENTITY};
use ledger_client::{Client, ClientConfig, DEV_ENDPOINTS};
use ledger_core::command::CampaignFlags;
use ledger_core::intake::{OpenAccountRequest, Secret};
use ledger_core::types::{CampaignId, MerchantKind};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = ClientConfig::new(DEV_ENDPOINTS);
    // The dev cluster's operator certificate, made by `ledger-node dev` in data/dev/certs.
    config.tls = Some(dev_identity(DEFAULT_IDENTITY)?);
    let client = Client::new(config);
    let seed = ledger_client::sample::fresh_base() + 5; // cards +5, +6
    let open = |n: u64, name: &'static str| {
        let client = &client;
        async move {
            client
                .open_account(OpenAccountRequest {
                    holder_name: name.into(),
                    card_number: Secret::new(ledger_client::sample::card_number(n)),
                    card_password: Secret::new("135790"),
                    phone: ledger_client::sample::phone(n),
                    flags: CampaignFlags::default(),
                })
                .await
        }
    };
    let settlement = open(seed, "商易通 shop").await?;
    let supplier = open(seed + 1, "supplier").await?;
    let merchant = client
        .register_merchant(
            MerchantKind::Shangyitong,
            "商易通 shop",
            settlement,
            "0731-84567890",
            1,
        )
        .await?;
    client.deposit(settlement, 1_000_000).await?;
    let (fee_fen, tier) = client
        .merchant_transfer(merchant, supplier, 300_000)
        .await?;
    println!("paid a supplier 3,000 yuan; fee {fee_fen} fen at tier {tier:?}");
    let m = client.merchant(merchant).await?.expect("just registered");
    println!(
        "this month {} settlements; tier {:?} (waived through {:?}, 20% through {:?})",
        m.month_tx_count, m.fee_tier, m.waived_through, m.discount_through
    );
    // The dev cluster's campaign is campaign 1; counters appear with the first settlement.
    let campaign = CampaignId(1);
    let counters = client
        .merchant_campaign(merchant, campaign)
        .await?
        .unwrap_or_default();
    println!(
        "campaign {campaign}: {} settlements, {} fen; reward {:?}",
        counters.tx_count, counters.amount_fen, counters.reward_payment
    );
    Ok(())
}
