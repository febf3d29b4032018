//! A voucher campaign: the bank opens a small pool for ETC card holders; card holders claim
//! first come, first served; the late comer is told the pool is exhausted.
//!
//! `cargo run -p ledger-client --example voucher_campaign` (against the dev cluster)

use ledger_client::identity::{dev_identity, DEFAULT_IDENTITY};
use ledger_client::{Client, ClientConfig, ClientError, DEV_ENDPOINTS};
use ledger_core::command::CampaignFlags;
use ledger_core::intake::{OpenAccountRequest, Secret};
use ledger_core::types::Eligibility;
use ledger_core::LedgerError;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = ClientConfig::new(DEV_ENDPOINTS);
    // The dev cluster's operator certificate, made by `ledger-node dev` in data/dev/certs.
    config.tls = Some(dev_identity(DEFAULT_IDENTITY)?);
    let client = Client::new(config);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let pool = client
        .create_pool(
            "ETC 50 yuan",
            5_000,
            2,
            Eligibility::EtcBound,
            now_ms,
            now_ms + 30 * 86_400_000,
        )
        .await?;
    let seed = now_ms / 1_000 % 1_000_000 * 10 + 2; // cards +2..+4 of this second
    for i in 0..3 {
        let account = client
            .open_account(OpenAccountRequest {
                holder_name: format!("ETC holder {i}"),
                card_number: Secret::new(ledger_client::sample::card_number(seed + i)),
                card_password: Secret::new("135790"),
                phone: ledger_client::sample::phone(seed + i),
                flags: CampaignFlags {
                    etc_bound: true,
                    savings_product: false,
                },
            })
            .await?;
        match client.claim_voucher(pool, account).await {
            Ok(remaining) => println!("account {account} got a voucher; {remaining} left"),
            Err(ClientError::Refused(LedgerError::PoolExhausted { capacity, .. })) => {
                println!("account {account} is too late: all {capacity} vouchers are claimed")
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
