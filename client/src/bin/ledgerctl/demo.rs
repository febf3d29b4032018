//! `ledgerctl demo`: the source article's story, played against a running cluster and
//! checked at every step. Codes are read from the development SMS outbox, as the customer
//! would read them from their phone.

use crate::failure::Failure;
use crate::sms::outbox;
use crate::view::yuan;
use ledger_client::{Client, ClientError};
use ledger_core::command::CampaignFlags;
use ledger_core::intake::{OpenAccountRequest, Secret};
use ledger_core::types::{AccountId, ChallengeId, Eligibility, MerchantKind, Payee};
use ledger_core::LedgerError;
use ledger_wire::api::Operation;
use std::path::Path;
use std::time::{Duration, Instant};

struct Story<'a> {
    client: &'a Client,
    data_dir: &'a Path,
    step: u32,
}

impl Story<'_> {
    fn say(&mut self, text: &str) {
        self.step += 1;
        println!("\n{}. {text}", self.step);
    }

    fn check(&self, ok: bool, what: &str) -> Result<(), String> {
        if ok {
            println!("   ✓ {what}");
            Ok(())
        } else {
            Err(format!("step {}: expected {what}", self.step))
        }
    }

    async fn sms(&self, challenge: ChallengeId) -> Result<(String, String), String> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if let Some(m) = outbox(self.data_dir)
                .into_iter()
                .find(|m| m.id == challenge.0)
            {
                let code = m.code().ok_or("an SMS without a code")?;
                println!("   SMS to {}: {}", m.to, m.text);
                return Ok((m.text, code));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "no SMS for challenge {challenge} in {}/node*/sms-outbox.jsonl (is --data-dir the dev cluster's?)",
            self.data_dir.display()
        ))
    }

    async fn balance(&self, account: AccountId) -> Result<i64, String> {
        self.client
            .balance(account)
            .await
            .map_err(|e| e.to_string())
    }
}

fn e(err: ClientError) -> String {
    Failure::answered(err).message()
}

async fn open(client: &Client, n: u64, name: &str, etc_bound: bool) -> Result<AccountId, String> {
    client
        .open_account(OpenAccountRequest {
            holder_name: name.to_owned(),
            card_number: Secret::new(ledger_client::sample::card_number(n)),
            card_password: Secret::new("135790"),
            phone: ledger_client::sample::phone(n),
            flags: CampaignFlags {
                etc_bound,
                savings_product: false,
            },
        })
        .await
        .map_err(e)
}

pub async fn run(client: &Client, data_dir: &Path) -> Result<(), String> {
    let mut s = Story {
        client,
        data_dir,
        step: 0,
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    // Cards unique to this run, so the demo can be played again on the same cluster.
    let base = (now_ms / 1_000 % 10_000_000) * 10;
    let run_tag = now_ms;

    s.say("小王 opens a card with an ETC device bound; a shop opens its settlement account.");
    let payer = open(client, base, "小王", true).await?;
    let shop_account = open(client, base + 1, "湘江小店", false).await?;
    client.deposit(payer, 100_000).await.map_err(e)?;
    s.check(
        s.balance(payer).await? == 100_000,
        &format!("小王 (account {payer}) holds 1000.00 yuan"),
    )?;

    s.say("The shop registers as a new POS merchant during the campaign.");
    let merchant = client
        .register_merchant(
            MerchantKind::Pos,
            "湘江小店",
            shop_account,
            &ledger_client::sample::phone(base + 1),
            1,
        )
        .await
        .map_err(e)?;
    let m = client
        .merchant(merchant)
        .await
        .map_err(e)?
        .ok_or("merchant missing")?;
    s.check(
        m.new_in_campaign,
        &format!("merchant {merchant} is new in the campaign"),
    )?;

    s.say("小王 enrols in 工银e支付: card and phone, password and alias, then the SMS code.");
    let phone = ledger_client::sample::phone(base);
    let card = ledger_client::sample::card_number(base);
    let account = client
        .epay_begin(Secret::new(&card), &phone)
        .await
        .map_err(e)?;
    s.check(account == payer, "the card and its reserved phone match")?;
    client
        .epay_choose_alias(payer, Secret::new("135790"), "小王的卡")
        .await
        .map_err(e)?;
    let issued = client.epay_confirm(payer).await.map_err(e)?;
    let (text, code) = s.sms(issued.challenge).await?;
    s.check(
        text.contains("小王的卡"),
        "the SMS shows the alias, not card data",
    )?;
    client
        .epay_activate(payer, Secret::new(code))
        .await
        .map_err(e)?;
    let credential = client
        .credential(payer)
        .await
        .map_err(e)?
        .ok_or("no credential")?;
    s.check(
        credential.per_payment_fen == 100_000 && credential.per_day_fen == 300_000,
        "e-Pay is active with the bank's caps (1,000 / payment, 3,000 / day)",
    )?;

    s.say("邮储银行 opens a pool of 50-yuan vouchers for ETC card holders; 小王 claims one.");
    let pool = client
        .create_pool(
            "ETC 50 yuan",
            5_000,
            3,
            Eligibility::EtcBound,
            now_ms.saturating_sub(60_000),
            now_ms + 30 * 86_400_000,
        )
        .await
        .map_err(e)?;
    let remaining = client.claim_voucher(pool, payer).await.map_err(e)?;
    s.check(remaining == 2, "the pool (capacity 3) has 2 vouchers left")?;

    s.say("小王 pays a 100-yuan bill at the shop: the merchant sends phone + last six digits.");
    let last_six = &card[card.len() - 6..];
    let pending = client
        .begin_payment(
            &phone,
            Secret::new(last_six),
            Payee::Merchant(merchant),
            10_000,
            &format!("demo-{run_tag}-1"),
        )
        .await
        .map_err(e)?;
    let (text, code) = s.sms(pending.challenge).await?;
    s.check(
        text.contains("湘江小店") && text.contains("100.00"),
        "the SMS names the payee and the amount",
    )?;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = client
        .confirm_payment(pending.payment, Secret::new(wrong))
        .await;
    s.check(
        matches!(
            refused,
            Err(ClientError::Refused(LedgerError::WrongOtp {
                attempts_left: 2
            }))
        ),
        "a wrong code is refused (2 tries left) and nothing moves",
    )?;
    let key = client.new_key();
    let confirm = Operation::PaymentConfirm {
        payment: pending.payment,
        code: Secret::new(&code),
    };
    let first = client
        .submit_with_key(key, confirm.clone())
        .await
        .map_err(e)?;
    let retry = client.submit_with_key(key, confirm).await.map_err(e)?;
    s.check(
        first == retry,
        "a retry of the confirmation (same key) returns the same settlement",
    )?;
    let promotions_after_first = s.balance(AccountId::PROMOTIONS).await?;
    s.check(
        s.balance(payer).await? == 95_000,
        "小王 was debited 50.00 yuan once: the voucher paid the other 50.00",
    )?;
    s.check(
        s.balance(shop_account).await? == 10_000,
        "the shop received the full 100.00 yuan",
    )?;

    s.say("小王 pays a 40-yuan bill: no voucher left.");
    let settled = pay(
        &s,
        &phone,
        last_six,
        merchant,
        4_000,
        &format!("demo-{run_tag}-2"),
    )
    .await?;
    s.check(
        settled.voucher.is_none() && settled.debited_fen == 4_000,
        "40.00 yuan debited, no voucher",
    )?;
    s.check(
        s.balance(payer).await? == 91_000 && s.balance(shop_account).await? == 14_000,
        "小王 holds 910.00 yuan, the shop 140.00 yuan",
    )?;

    s.say("小王 tops up 2,000 yuan; eight more payments of 240 yuan bring the shop to 10 settlements and 2,060 yuan.");
    client.deposit(payer, 200_000).await.map_err(e)?;
    let telecom_before = s.balance(AccountId::TELECOM_SETTLEMENT).await?;
    let mut rewards = Vec::new();
    for i in 3..=10 {
        let settled = pay(
            &s,
            &phone,
            last_six,
            merchant,
            24_000,
            &format!("demo-{run_tag}-{i}"),
        )
        .await?;
        rewards.push(settled.reward_granted);
    }
    s.check(
        rewards.iter().filter(|r| **r).count() == 1 && rewards[7],
        "the 10th settlement, and only it, earned the reward",
    )?;
    let m = client
        .merchant(merchant)
        .await
        .map_err(e)?
        .ok_or("merchant missing")?;
    s.check(
        m.campaign_tx_count == 10 && m.campaign_amount_fen == 206_000,
        "the shop's counters: 10 settlements, 2060.00 yuan",
    )?;
    s.check(
        s.balance(AccountId::TELECOM_SETTLEMENT).await? - telecom_before == 10_000,
        "100.00 yuan of phone credit went from promotions to telecom settlement",
    )?;
    s.check(
        s.balance(AccountId::PROMOTIONS).await? == promotions_after_first - 10_000,
        "promotions funded it",
    )?;

    s.say("Three more ETC card holders race for the last two vouchers.");
    let mut outcomes = Vec::new();
    for i in 0..3 {
        let late = open(client, base + 2 + i, &format!("late comer {i}"), true).await?;
        outcomes.push(client.claim_voucher(pool, late).await);
    }
    s.check(
        outcomes[0].is_ok() && outcomes[1].is_ok(),
        "the first two get a voucher",
    )?;
    s.check(
        matches!(
            outcomes[2],
            Err(ClientError::Refused(LedgerError::PoolExhausted { .. }))
        ),
        "the third is told: pool exhausted",
    )?;
    let p = client.pool(pool).await.map_err(e)?.ok_or("pool missing")?;
    s.check(
        p.granted == p.capacity,
        "never more vouchers than the capacity",
    )?;

    println!(
        "\nThe story came out as the domain says: 小王 holds {} yuan, the shop {} yuan.",
        yuan(s.balance(payer).await?),
        yuan(s.balance(shop_account).await?)
    );
    Ok(())
}

async fn pay(
    s: &Story<'_>,
    phone: &str,
    last_six: &str,
    merchant: ledger_core::types::MerchantId,
    amount_fen: u64,
    order: &str,
) -> Result<ledger_client::Settlement, String> {
    let pending = s
        .client
        .begin_payment(
            phone,
            Secret::new(last_six),
            Payee::Merchant(merchant),
            amount_fen,
            order,
        )
        .await
        .map_err(e)?;
    let (_, code) = s.sms(pending.challenge).await?;
    s.client
        .confirm_payment(pending.payment, Secret::new(code))
        .await
        .map_err(e)
}
