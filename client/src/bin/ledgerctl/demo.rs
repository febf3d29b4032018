//! `ledgerctl demo`: the source article's story, played against a running cluster and
//! checked at every step. Codes are read from the development SMS outbox, as the customer
//! would read them from their phone.

use crate::failure::Failure;
use crate::session::Session;
use crate::sms::outbox;
use crate::view::yuan;
use ledger_client::identity::{dev_channel, issued_identity};
use ledger_client::{Client, ClientError, PendingPayment, Settlement};
use ledger_core::command::CampaignFlags;
use ledger_core::config::MAX_CAMPAIGNS;
use ledger_core::intake::{OpenAccountRequest, Secret};
use ledger_core::types::{
    AccountId, CampaignId, CampaignRules, ChallengeId, Eligibility, MerchantId, MerchantKind,
    Payee, PoolId,
};
use ledger_core::LedgerError;
use ledger_wire::api::Operation;
use ledger_wire::principal::Principal;
use std::path::Path;
use std::time::{Duration, Instant};

/// The story's callers, each with its own certificate: the bank's back office (`client`,
/// the operator), its customer front (`channel`: enrolment, voucher claims), and the shop
/// (`Cast::shop`, once it is registered).
struct Story<'a> {
    client: &'a Client,
    channel: Client,
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

/// A record read back, which must exist: `missing` says so when it does not.
fn found<T>(read: Result<Option<T>, ClientError>, missing: &str) -> Result<T, String> {
    read.map_err(e)?.ok_or_else(|| missing.to_owned())
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

/// Who the story is about, as its first steps make them.
struct Cast {
    payer: AccountId,
    shop_account: AccountId,
    merchant: MerchantId,
    /// The article's campaign the shop takes part in.
    campaign: CampaignId,
    /// 小王's reserved phone and the last six digits of the card.
    phone: String,
    last_six: String,
    /// Tells this run's orders from an earlier run's.
    run_tag: u64,
    /// The shop itself: it begins and confirms its payments.
    shop: Client,
}

impl Cast {
    /// The merchant's order `n` of this run.
    fn order(&self, n: u64) -> String {
        format!("demo-{}-{n}", self.run_tag)
    }

    /// Payment step 1: the shop asks 小王 for `amount_fen` for its order `order`.
    async fn begin(&self, amount_fen: u64, order: u64) -> Result<PendingPayment, String> {
        self.shop
            .begin_payment(
                &self.phone,
                Secret::new(&self.last_six),
                Payee::Merchant(self.merchant),
                amount_fen,
                &self.order(order),
            )
            .await
            .map_err(e)
    }
}

pub async fn run(session: &Session, data_dir: &Path) -> Result<(), String> {
    let client = &session.patient_client();
    let certs = session.certs_dir();
    let channel = issued_identity(certs, &dev_channel())?;
    let mut s = Story {
        client,
        channel: session.patient_client_as(Some(channel)),
        data_dir,
        step: 0,
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    // Cards unique to this run, so the demo can be played again on the same cluster.
    let base = (now_ms / 1_000 % 10_000_000) * 10;

    let campaign = s.article_campaign(now_ms).await?;
    let (payer, shop_account) = s.open_accounts(base).await?;
    let merchant = s.register_shop(base, shop_account, campaign).await?;
    let card = s.enrol(base, payer).await?;
    let pool = s.open_pool(now_ms, payer).await?;
    let cast = Cast {
        payer,
        shop_account,
        merchant,
        campaign,
        phone: ledger_client::sample::phone(base),
        last_six: card[card.len() - 6..].to_owned(),
        run_tag: now_ms,
        shop: session.patient_client_as(Some(issued_identity(
            certs,
            &Principal::Merchant { merchant },
        )?)),
    };
    let promotions_after_first = s.first_payment(&cast).await?;
    s.second_payment(&cast).await?;
    s.reward(&cast, promotions_after_first).await?;
    let holder = s.race(base, pool).await?;
    s.swipe_and_refund(&cast, base + 2, holder).await?;
    s.points(&cast, now_ms).await?;

    println!(
        "\nThe story came out as the domain says: 小王 holds {} yuan, the shop {} yuan.",
        yuan(s.balance(payer).await?),
        yuan(s.balance(shop_account).await?)
    );
    Ok(())
}

impl Story<'_> {
    /// 小王's card and the shop's settlement account: (payer, shop account).
    async fn open_accounts(&mut self, base: u64) -> Result<(AccountId, AccountId), String> {
        let client = self.client;
        self.say(
            "小王 opens a card with an ETC device bound; a shop opens its settlement account.",
        );
        let payer = open(client, base, "小王", true).await?;
        let shop_account = open(client, base + 1, "湘江小店", false).await?;
        client.deposit(payer, 100_000).await.map_err(e)?;
        self.check(
            self.balance(payer).await? == 100_000,
            &format!("小王 (account {payer}) holds 1000.00 yuan"),
        )?;
        Ok((payer, shop_account))
    }

    /// The running campaign with the article's rules (the dev cluster creates one), or a
    /// new one for 90 days if there is none.
    async fn article_campaign(&mut self, now_ms: u64) -> Result<CampaignId, String> {
        let client = self.client;
        for id in 1..=MAX_CAMPAIGNS {
            let Some(c) = client.campaign(CampaignId(id)).await.map_err(e)? else {
                break;
            };
            if c.rules == CampaignRules::article()
                && c.runs_at(now_ms)
                && c.runs_at(now_ms + 3_600_000)
            {
                self.say(&format!(
                    "The bank runs the article's campaign \"{}\" (campaign {id}): 10 settlements and 2,000 yuan earn a new POS merchant 100 yuan of phone credit.",
                    c.name
                ));
                return Ok(CampaignId(id));
            }
        }
        self.say("The bank starts the article's campaign for 90 days: 10 settlements and 2,000 yuan earn a new POS merchant 100 yuan of phone credit.");
        let (id, _) = client
            .create_campaign(
                "心计划 (demo)",
                None,
                now_ms + 90 * 86_400_000,
                CampaignRules::article(),
            )
            .await
            .map_err(e)?;
        Ok(id)
    }

    async fn register_shop(
        &mut self,
        base: u64,
        shop_account: AccountId,
        campaign: CampaignId,
    ) -> Result<MerchantId, String> {
        let client = self.client;
        self.say("The shop registers as a new POS merchant during the campaign.");
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
        let m = found(client.merchant(merchant).await, "merchant missing")?;
        let c = found(client.campaign(campaign).await, "campaign missing")?;
        self.check(
            c.runs_at(m.registered_ms),
            &format!("merchant {merchant} is new in campaign {campaign}"),
        )?;
        Ok(merchant)
    }

    /// e-Pay enrolment in its four steps; returns 小王's card number.
    async fn enrol(&mut self, base: u64, payer: AccountId) -> Result<String, String> {
        self.say(
            "小王 enrols in 工银e支付: card and phone, password and alias, then the SMS code.",
        );
        let client = &self.channel;
        let phone = ledger_client::sample::phone(base);
        let card = ledger_client::sample::card_number(base);
        let account = client
            .epay_begin(Secret::new(&card), &phone)
            .await
            .map_err(e)?;
        self.check(account == payer, "the card and its reserved phone match")?;
        client
            .epay_choose_alias(payer, Secret::new("135790"), "小王的卡")
            .await
            .map_err(e)?;
        let issued = client.epay_confirm(payer).await.map_err(e)?;
        let (text, code) = self.sms(issued.challenge).await?;
        self.check(
            text.contains("小王的卡"),
            "the SMS shows the alias, not card data",
        )?;
        client
            .epay_activate(payer, Secret::new(code))
            .await
            .map_err(e)?;
        let credential = found(client.credential(payer).await, "no credential")?;
        self.check(
            credential.per_payment_fen == 100_000 && credential.per_day_fen == 300_000,
            "e-Pay is active with the bank's caps (1,000 / payment, 3,000 / day)",
        )?;
        Ok(card)
    }

    async fn open_pool(&mut self, now_ms: u64, payer: AccountId) -> Result<PoolId, String> {
        let client = self.client;
        self.say(
            "邮储银行 opens a pool of 50-yuan vouchers for ETC card holders; 小王 claims one.",
        );
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
        let remaining = self.channel.claim_voucher(pool, payer).await.map_err(e)?;
        self.check(remaining == 2, "the pool (capacity 3) has 2 vouchers left")?;
        Ok(pool)
    }

    /// The first payment, a wrong code and a retried confirmation on the way; returns the
    /// promotions account's balance after it.
    async fn first_payment(&mut self, cast: &Cast) -> Result<i64, String> {
        let client = &cast.shop;
        self.say(
            "小王 pays a 100-yuan bill at the shop: the merchant sends phone + last six digits.",
        );
        let pending = cast.begin(10_000, 1).await?;
        let (text, code) = self.sms(pending.challenge).await?;
        self.check(
            text.contains("湘江小店") && text.contains("100.00"),
            "the SMS names the payee and the amount",
        )?;
        let wrong = if code == "000000" { "111111" } else { "000000" };
        let refused = client
            .confirm_payment(pending.payment, Secret::new(wrong))
            .await;
        self.check(
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
        self.check(
            first == retry,
            "a retry of the confirmation (same key) returns the same settlement",
        )?;
        let promotions_after_first = self.balance(AccountId::PROMOTIONS).await?;
        self.check(
            self.balance(cast.payer).await? == 95_000,
            "小王 was debited 50.00 yuan once: the voucher paid the other 50.00",
        )?;
        self.check(
            self.balance(cast.shop_account).await? == 10_000,
            "the shop received the full 100.00 yuan",
        )?;
        Ok(promotions_after_first)
    }

    async fn second_payment(&mut self, cast: &Cast) -> Result<(), String> {
        self.say("小王 pays a 40-yuan bill: no voucher left.");
        let settled = self.pay(cast, 4_000, 2).await?;
        self.check(
            settled.voucher.is_none() && settled.debited_fen == 4_000,
            "40.00 yuan debited, no voucher",
        )?;
        self.check(
            self.balance(cast.payer).await? == 91_000
                && self.balance(cast.shop_account).await? == 14_000,
            "小王 holds 910.00 yuan, the shop 140.00 yuan",
        )
    }

    /// Payments up to the shop's tenth settlement, which earns its reward.
    async fn reward(&mut self, cast: &Cast, promotions_after_first: i64) -> Result<(), String> {
        let client = self.client;
        self.say("小王 tops up 2,000 yuan; eight more payments of 240 yuan bring the shop to 10 settlements and 2,060 yuan.");
        client.deposit(cast.payer, 200_000).await.map_err(e)?;
        let telecom_before = self.balance(AccountId::TELECOM_SETTLEMENT).await?;
        let mut rewards = Vec::new();
        for i in 3..=10 {
            let settled = self.pay(cast, 24_000, i).await?;
            rewards.push(settled.rewards.contains(&cast.campaign));
        }
        self.check(
            rewards.iter().filter(|r| **r).count() == 1 && rewards[7],
            "the 10th settlement, and only it, earned the reward",
        )?;
        let m = found(
            client.merchant_campaign(cast.merchant, cast.campaign).await,
            "campaign counters missing",
        )?;
        self.check(
            m.tx_count == 10 && m.amount_fen == 206_000,
            "the shop's counters: 10 settlements, 2060.00 yuan",
        )?;
        self.check(
            self.balance(AccountId::TELECOM_SETTLEMENT).await? - telecom_before == 10_000,
            "100.00 yuan of phone credit went from promotions to telecom settlement",
        )?;
        self.check(
            self.balance(AccountId::PROMOTIONS).await? == promotions_after_first - 10_000,
            "promotions funded it",
        )
    }

    /// Returns the first late comer, who holds a voucher.
    async fn race(&mut self, base: u64, pool: PoolId) -> Result<AccountId, String> {
        let client = self.client;
        self.say("Three more ETC card holders race for the last two vouchers.");
        let mut outcomes = Vec::new();
        let mut late_comers = Vec::new();
        for i in 0..3 {
            let late = open(client, base + 2 + i, &format!("late comer {i}"), true).await?;
            outcomes.push(self.channel.claim_voucher(pool, late).await);
            late_comers.push(late);
        }
        self.check(
            outcomes[0].is_ok() && outcomes[1].is_ok(),
            "the first two get a voucher",
        )?;
        self.check(
            matches!(
                outcomes[2],
                Err(ClientError::Refused(LedgerError::PoolExhausted { .. }))
            ),
            "the third is told: pool exhausted",
        )?;
        let p = found(client.pool(pool).await, "pool missing")?;
        self.check(
            p.granted == p.capacity,
            "never more vouchers than the capacity",
        )?;
        Ok(late_comers[0])
    }

    /// The article's own example at the shop's POS terminal: a 100-yuan bill swiped with
    /// a 50-yuan voucher; then the shop refunds 60 yuan of it.
    async fn swipe_and_refund(
        &mut self,
        cast: &Cast,
        card_n: u64,
        holder: AccountId,
    ) -> Result<(), String> {
        self.say("The first late comer (200 yuan on the card) swipes it at the shop's POS terminal for a 100-yuan bill and types the PIN.");
        self.client.deposit(holder, 20_000).await.map_err(e)?;
        let shop_before = self.balance(cast.shop_account).await?;
        let promotions_before = self.balance(AccountId::PROMOTIONS).await?;
        let card = ledger_client::sample::card_number(card_n);
        let receipt = format!("demo-{}-pos-1", cast.run_tag);
        let wrong_pin = cast
            .shop
            .card_payment(
                cast.merchant,
                1,
                Secret::new(&card),
                Secret::new("000000"),
                10_000,
                &receipt,
            )
            .await;
        self.check(
            matches!(
                wrong_pin,
                Err(ClientError::Refused(LedgerError::WrongCardPassword { .. }))
            ),
            "a wrong PIN is refused and nothing moves",
        )?;
        let swiped = cast
            .shop
            .card_payment(
                cast.merchant,
                1,
                Secret::new(&card),
                Secret::new("135790"),
                10_000,
                &receipt,
            )
            .await
            .map_err(e)?;
        self.check(
            swiped.voucher.is_some() && swiped.debited_fen == 5_000,
            "the 50-yuan voucher was deducted at the swipe: 50.00 yuan debited",
        )?;
        self.check(
            self.balance(holder).await? == 15_000
                && self.balance(cast.shop_account).await? == shop_before + 10_000
                && self.balance(AccountId::PROMOTIONS).await? == promotions_before - 5_000,
            "the card holds 150.00 yuan; the shop received 100.00; promotions funded 50.00",
        )?;

        self.say("The shop refunds 60 yuan of that bill.");
        let refund = cast
            .shop
            .refund_payment(swiped.payment, 6_000)
            .await
            .map_err(e)?;
        self.check(
            refund.to_payer_fen == 5_000 && refund.to_promotions_fen == 1_000,
            "50.00 yuan (all the card paid) back to the card, 10.00 back to promotions",
        )?;
        let too_much = cast.shop.refund_payment(swiped.payment, 4_001).await;
        self.check(
            matches!(
                too_much,
                Err(ClientError::Refused(LedgerError::RefundExceedsBill {
                    refundable_fen: 4_000,
                    ..
                }))
            ),
            "a refund beyond the 40.00 yuan left is refused",
        )?;
        self.check(
            self.balance(holder).await? == 20_000
                && self.balance(cast.shop_account).await? == shop_before + 4_000
                && self.balance(AccountId::PROMOTIONS).await? == promotions_before - 4_000,
            "the card is whole again; the shop keeps 40.00; promotions is out 40.00",
        )
    }

    /// A payment of `amount_fen` for order `order`, confirmed with the code from the SMS.
    /// A joint promotion with the shop: 小王 earns points by e-Pay there and redeems a prize,
    /// the last one in stock.
    async fn points(&mut self, cast: &Cast, now_ms: u64) -> Result<(), String> {
        self.say("The bank runs a joint promotion with the shop (1 point per yuan paid by e-Pay) and offers a prize of 50 points, one in stock.");
        let client = self.client;
        let promotion = client
            .create_promotion(
                "湘江 points",
                vec![cast.merchant],
                now_ms,
                now_ms + 86_400_000,
                1,
            )
            .await
            .map_err(e)?;
        let prize = client
            .create_prize("railway ticket voucher", 50, 1)
            .await
            .map_err(e)?;
        let before = client.points(cast.payer).await.map_err(e)?;
        self.say(&format!(
            "小王 pays an 80-yuan bill by e-Pay at the shop (promotion {promotion})."
        ));
        self.pay(cast, 8_000, 11).await?;
        self.check(
            client.points(cast.payer).await.map_err(e)? == before + 80,
            "the settlement itself earned 80 points",
        )?;
        let (points_left, stock_left) = self
            .channel
            .redeem_prize(prize, cast.payer)
            .await
            .map_err(e)?;
        self.check(
            points_left == before + 30 && stock_left == 0,
            "小王 redeemed the prize: 30 points left, none in stock",
        )?;
        let again = self.channel.redeem_prize(prize, cast.payer).await;
        self.check(
            matches!(
                again,
                Err(ClientError::Refused(LedgerError::PrizeOutOfStock { .. }))
            ),
            "a second redemption is refused: out of stock, first come first served",
        )
    }

    async fn pay(&self, cast: &Cast, amount_fen: u64, order: u64) -> Result<Settlement, String> {
        let pending = cast.begin(amount_fen, order).await?;
        let (_, code) = self.sms(pending.challenge).await?;
        cast.shop
            .confirm_payment(pending.payment, Secret::new(code))
            .await
            .map_err(e)
    }
}
