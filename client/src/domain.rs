//! The client API in the domain's words: one method per operation of the ledger, each a
//! single logical operation under one idempotency key (retried, if need be, with that key).

use crate::client::{Client, ClientError, Transport};
use ledger_core::command::{CampaignFlags, Command};
use ledger_core::intake::{OpenAccountRequest, Secret};
use ledger_core::ledger::journal::{Cursor, Reconciliation, StatementPage, StatementRequest};
use ledger_core::outcome::Reply;
use ledger_core::state::{
    Campaign, CampaignCounters, Credential, Event, Merchant, Payment, Pool, Posting, Prize,
    Promotion, Webhook,
};
use ledger_core::types::{
    AccountId, AccountStatus, CampaignId, CampaignRules, ChallengeId, Eligibility, FeeTier,
    MerchantId, MerchantKind, Payee, PaymentId, PoolId, PrizeId, PromotionId, VipTier, YearMonth,
};
use ledger_wire::api::{AccountView, Consistency, Operation, Query, QueryReply};

/// An OTP challenge the bank has issued; its code arrives by SMS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IssuedChallenge {
    /// The challenge; its SMS carries this id.
    pub challenge: ChallengeId,
    /// When the code stops working (ms since the Unix epoch).
    pub expires_at_ms: u64,
}

/// A payment waiting for the payer's code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PendingPayment {
    /// The payment to confirm.
    pub payment: PaymentId,
    /// Its OTP challenge; the payer's SMS carries this id.
    pub challenge: ChallengeId,
    /// When the code stops working (ms since the Unix epoch).
    pub expires_at_ms: u64,
}

/// A settled payment.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Settlement {
    /// The settled payment.
    pub payment: PaymentId,
    /// The bill.
    pub bill_fen: u64,
    /// What left the payer's account (the bill less the voucher).
    pub debited_fen: u64,
    /// The voucher deducted, by its pool.
    pub voucher: Option<PoolId>,
    /// The campaigns whose one-time reward this settlement earned the merchant.
    pub rewards: Vec<CampaignId>,
}

/// One refund of a settled payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Refund {
    /// The refunded payment.
    pub payment: PaymentId,
    /// This refund.
    pub refund_fen: u64,
    /// What went back to the payer (at most what the payer was debited, over all refunds).
    pub to_payer_fen: u64,
    /// What went back to `promotions`: the share of the bill a voucher paid.
    pub to_promotions_fen: u64,
    /// What is left to refund of the bill.
    pub refundable_fen: u64,
}

/// A `ChallengeIssued` reply as the challenge; a reply of another kind is given back.
impl TryFrom<Reply> for IssuedChallenge {
    type Error = Reply;

    fn try_from(reply: Reply) -> Result<IssuedChallenge, Reply> {
        match reply {
            Reply::ChallengeIssued {
                challenge,
                expires_at_ms,
            } => Ok(IssuedChallenge {
                challenge,
                expires_at_ms,
            }),
            other => Err(other),
        }
    }
}

/// A `PaymentPending` reply as the pending payment; a reply of another kind is given back.
impl TryFrom<Reply> for PendingPayment {
    type Error = Reply;

    fn try_from(reply: Reply) -> Result<PendingPayment, Reply> {
        match reply {
            Reply::PaymentPending {
                payment,
                challenge,
                expires_at_ms,
            } => Ok(PendingPayment {
                payment,
                challenge,
                expires_at_ms,
            }),
            other => Err(other),
        }
    }
}

/// A `PaymentSettled` reply as a settlement; a reply of another kind is given back.
impl TryFrom<Reply> for Settlement {
    type Error = Reply;

    fn try_from(reply: Reply) -> Result<Settlement, Reply> {
        match reply {
            Reply::PaymentSettled {
                payment,
                bill_fen,
                debited_fen,
                voucher,
                rewards,
            } => Ok(Settlement {
                payment,
                bill_fen,
                debited_fen,
                voucher,
                rewards,
            }),
            other => Err(other),
        }
    }
}

/// A `PaymentRefunded` reply as the refund; a reply of another kind is given back.
impl TryFrom<Reply> for Refund {
    type Error = Reply;

    fn try_from(reply: Reply) -> Result<Refund, Reply> {
        match reply {
            Reply::PaymentRefunded {
                payment,
                refund_fen,
                to_payer_fen,
                to_promotions_fen,
                refundable_fen,
            } => Ok(Refund {
                payment,
                refund_fen,
                to_payer_fen,
                to_promotions_fen,
                refundable_fen,
            }),
            other => Err(other),
        }
    }
}

fn unexpected(reply: Reply) -> ClientError {
    ClientError::UnexpectedReply(format!("{reply:?}"))
}

impl<T: Transport> Client<T> {
    /// Opens a card account. The card number and password go to the node's intake, which
    /// keeps only their hashes.
    pub async fn open_account(
        &self,
        request: OpenAccountRequest,
    ) -> Result<AccountId, ClientError> {
        match self.submit(Operation::OpenAccount(request)).await? {
            Reply::AccountOpened { account } => Ok(account),
            other => Err(unexpected(other)),
        }
    }

    async fn posted(&self, command: Command) -> Result<i64, ClientError> {
        match self.submit(Operation::Command(command)).await? {
            Reply::Posted { balance_fen, .. } => Ok(balance_fen),
            other => Err(unexpected(other)),
        }
    }

    /// Cash in; returns the new balance.
    pub async fn deposit(&self, account: AccountId, amount_fen: u64) -> Result<i64, ClientError> {
        self.posted(Command::Deposit {
            account,
            amount_fen,
        })
        .await
    }

    /// Cash out; returns the new balance.
    pub async fn withdraw(&self, account: AccountId, amount_fen: u64) -> Result<i64, ClientError> {
        self.posted(Command::Withdraw {
            account,
            amount_fen,
        })
        .await
    }

    /// A book transfer between two customer accounts; returns both new balances.
    pub async fn transfer(
        &self,
        source: AccountId,
        target: AccountId,
        amount_fen: u64,
    ) -> Result<(i64, i64), ClientError> {
        match self
            .submit(Operation::Command(Command::Transfer {
                source,
                target,
                amount_fen,
            }))
            .await?
        {
            Reply::Transferred {
                source_balance_fen,
                target_balance_fen,
            } => Ok((source_balance_fen, target_balance_fen)),
            other => Err(unexpected(other)),
        }
    }

    async fn plain(&self, command: Command) -> Result<Reply, ClientError> {
        self.submit(Operation::Command(command)).await
    }

    /// Freezes, unfreezes or closes an account.
    pub async fn set_account_status(
        &self,
        account: AccountId,
        status: AccountStatus,
    ) -> Result<(), ClientError> {
        self.plain(Command::SetAccountStatus { account, status })
            .await
            .map(drop)
    }

    /// Records campaign flags (ETC bound, savings product bought).
    pub async fn set_campaign_flags(
        &self,
        account: AccountId,
        flags: CampaignFlags,
    ) -> Result<(), ClientError> {
        self.plain(Command::SetCampaignFlags { account, flags })
            .await
            .map(drop)
    }

    /// Changes the VIP tier; returns whether the commemorative gift was recorded.
    pub async fn set_vip_tier(
        &self,
        account: AccountId,
        tier: VipTier,
    ) -> Result<bool, ClientError> {
        match self.plain(Command::SetVipTier { account, tier }).await? {
            Reply::VipTierSet { gift_recorded } => Ok(gift_recorded),
            other => Err(unexpected(other)),
        }
    }

    /// e-Pay enrolment step 1: the customer accepted the agreement and entered the card
    /// number and the reserved phone. Returns the account being enrolled.
    pub async fn epay_begin(
        &self,
        card_number: Secret,
        phone: &str,
    ) -> Result<AccountId, ClientError> {
        match self
            .submit(Operation::EpayBegin {
                card_number,
                phone: phone.to_owned(),
            })
            .await?
        {
            Reply::EnrolmentStarted { account } => Ok(account),
            other => Err(unexpected(other)),
        }
    }

    /// Step 2: the card password and the alias (the anti-phishing mark shown in every SMS).
    pub async fn epay_choose_alias(
        &self,
        account: AccountId,
        card_password: Secret,
        alias: &str,
    ) -> Result<(), ClientError> {
        self.submit(Operation::EpayChooseAlias {
            account,
            card_password,
            alias: alias.to_owned(),
        })
        .await
        .map(drop)
    }

    /// Step 3: confirm; the bank sends an OTP to the reserved phone.
    pub async fn epay_confirm(&self, account: AccountId) -> Result<IssuedChallenge, ClientError> {
        let reply = self.submit(Operation::EpayConfirm { account }).await?;
        IssuedChallenge::try_from(reply).map_err(unexpected)
    }

    /// Step 4: the OTP from the SMS; the credential becomes active.
    pub async fn epay_activate(&self, account: AccountId, code: Secret) -> Result<(), ClientError> {
        self.submit(Operation::EpayActivate { account, code })
            .await
            .map(drop)
    }

    /// Lowers (or restores, up to the bank's caps) the customer's e-Pay limits.
    pub async fn set_epay_limits(
        &self,
        account: AccountId,
        per_payment_fen: u64,
        per_day_fen: u64,
    ) -> Result<(), ClientError> {
        self.plain(Command::SetEpayLimits {
            account,
            per_payment_fen,
            per_day_fen,
        })
        .await
        .map(drop)
    }

    /// Payment step 1, by the merchant: the payer's phone and the last six digits of the card,
    /// the amount and the order. The bank sends the payer an OTP bound to this payment.
    /// A second call for the same order replaces the first and voids its code.
    pub async fn begin_payment(
        &self,
        phone: &str,
        last_six: Secret,
        payee: Payee,
        amount_fen: u64,
        order_id: &str,
    ) -> Result<PendingPayment, ClientError> {
        let reply = self
            .submit(Operation::PaymentBegin {
                phone: phone.to_owned(),
                last_six,
                payee,
                amount_fen,
                order_id: order_id.to_owned(),
            })
            .await?;
        PendingPayment::try_from(reply).map_err(unexpected)
    }

    /// Payment step 2: the payer's code; the payment settles, the best voucher deducted.
    pub async fn confirm_payment(
        &self,
        payment: PaymentId,
        code: Secret,
    ) -> Result<Settlement, ClientError> {
        let reply = self
            .submit(Operation::PaymentConfirm { payment, code })
            .await?;
        Settlement::try_from(reply).map_err(unexpected)
    }

    /// A card swiped at one of the merchant's terminals (刷卡消费), with the PIN typed on it:
    /// settles at once, the best voucher deducted. Card number and PIN go to the node's
    /// intake, which keeps only their hashes. A receipt number is used once per terminal.
    pub async fn card_payment(
        &self,
        merchant: MerchantId,
        terminal: u32,
        card_number: Secret,
        card_password: Secret,
        amount_fen: u64,
        receipt: &str,
    ) -> Result<Settlement, ClientError> {
        let reply = self
            .submit(Operation::CardPayment {
                merchant,
                terminal,
                card_number,
                card_password,
                amount_fen,
                receipt: receipt.to_owned(),
            })
            .await?;
        Settlement::try_from(reply).map_err(unexpected)
    }

    /// Cancels a pending payment; its code is void from then on.
    pub async fn cancel_payment(&self, payment: PaymentId) -> Result<(), ClientError> {
        match self
            .submit(Operation::Command(Command::CancelPayment { payment }))
            .await?
        {
            Reply::PaymentCancelled { .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Refunds `amount_fen` of a settled payment from the merchant's settlement account.
    pub async fn refund_payment(
        &self,
        payment: PaymentId,
        amount_fen: u64,
    ) -> Result<Refund, ClientError> {
        let command = Command::RefundPayment {
            payment,
            amount_fen,
        };
        let reply = self.submit(Operation::Command(command)).await?;
        Refund::try_from(reply).map_err(unexpected)
    }

    /// Creates a joint promotion: e-Pay payments settled at `partners` within the window
    /// earn `points_per_yuan` points per whole yuan.
    pub async fn create_promotion(
        &self,
        name: &str,
        partners: Vec<MerchantId>,
        valid_from_ms: u64,
        valid_until_ms: u64,
        points_per_yuan: u32,
    ) -> Result<PromotionId, ClientError> {
        let command = Command::CreatePromotion {
            name: name.to_owned(),
            partners,
            valid_from_ms,
            valid_until_ms,
            points_per_yuan,
        };
        match self.submit(Operation::Command(command)).await? {
            Reply::PromotionCreated { promotion } => Ok(promotion),
            other => Err(unexpected(other)),
        }
    }

    /// Creates a merchant campaign with its rules; `starts_ms` of `None` starts it now (ledger
    /// time). Returns the campaign and its first millisecond.
    pub async fn create_campaign(
        &self,
        name: &str,
        starts_ms: Option<u64>,
        ends_ms: u64,
        rules: CampaignRules,
    ) -> Result<(CampaignId, u64), ClientError> {
        let command = Command::CreateCampaign {
            name: name.to_owned(),
            starts_ms,
            ends_ms,
            rules,
        };
        match self.submit(Operation::Command(command)).await? {
            Reply::CampaignCreated {
                campaign,
                starts_ms,
            } => Ok((campaign, starts_ms)),
            other => Err(unexpected(other)),
        }
    }

    /// Creates a prize with a points price and a stock.
    pub async fn create_prize(
        &self,
        name: &str,
        price_points: u64,
        stock: u64,
    ) -> Result<PrizeId, ClientError> {
        let command = Command::CreatePrize {
            name: name.to_owned(),
            price_points,
            stock,
        };
        match self.submit(Operation::Command(command)).await? {
            Reply::PrizeCreated { prize } => Ok(prize),
            other => Err(unexpected(other)),
        }
    }

    /// Redeems one of a prize for an account's points; returns (points left, stock left).
    pub async fn redeem_prize(
        &self,
        prize: PrizeId,
        account: AccountId,
    ) -> Result<(u64, u64), ClientError> {
        let command = Command::RedeemPrize { prize, account };
        match self.submit(Operation::Command(command)).await? {
            Reply::PrizeRedeemed {
                points_left,
                stock_left,
                ..
            } => Ok((points_left, stock_left)),
            other => Err(unexpected(other)),
        }
    }

    /// A small transfer (小额转账) to another account: step 1, confirmed like a payment.
    pub async fn begin_small_transfer(
        &self,
        phone: &str,
        last_six: Secret,
        target: AccountId,
        amount_fen: u64,
        reference: &str,
    ) -> Result<PendingPayment, ClientError> {
        self.begin_payment(
            phone,
            last_six,
            Payee::Account(target),
            amount_fen,
            reference,
        )
        .await
    }

    /// Registers the merchant's webhook (a new signing secret each time; read it with
    /// `webhook_secret`), or removes it with `None`. Returns the secret's version.
    pub async fn set_webhook(
        &self,
        merchant: MerchantId,
        url: Option<&str>,
    ) -> Result<Option<u32>, ClientError> {
        let command = Command::SetWebhook {
            merchant,
            url: url.map(str::to_owned),
        };
        match self.plain(command).await? {
            Reply::WebhookSet { secret_version, .. } => Ok(secret_version),
            other => Err(unexpected(other)),
        }
    }

    /// The merchant's webhook and its delivery counts.
    pub async fn webhook(&self, merchant: MerchantId) -> Result<Option<Webhook>, ClientError> {
        match self.read(Query::Webhook(merchant)).await? {
            QueryReply::Webhook(w) => Ok(w),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// The signing secret of the merchant's current webhook registration, with its version
    /// (the merchant itself only).
    pub async fn webhook_secret(
        &self,
        merchant: MerchantId,
    ) -> Result<Option<(u32, Secret)>, ClientError> {
        match self.read(Query::WebhookSecret(merchant)).await? {
            QueryReply::WebhookSecret(s) => Ok(s),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// The merchant's payment events after `after_id`, oldest first.
    pub async fn events(
        &self,
        merchant: MerchantId,
        after_id: u64,
        page_size: u32,
        consistency: Consistency,
    ) -> Result<Vec<Event>, ClientError> {
        let query = Query::Events {
            merchant,
            after_id,
            page_size,
        };
        match self.query(query, consistency).await? {
            QueryReply::Events { events, .. } => Ok(events),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// Registers a merchant with its settlement account.
    pub async fn register_merchant(
        &self,
        kind: MerchantKind,
        name: &str,
        settlement_account: AccountId,
        contact_phone: &str,
        terminals: u32,
    ) -> Result<MerchantId, ClientError> {
        match self
            .plain(Command::RegisterMerchant {
                kind,
                name: name.to_owned(),
                settlement_account,
                contact_phone: contact_phone.to_owned(),
                terminals,
            })
            .await?
        {
            Reply::MerchantRegistered { merchant } => Ok(merchant),
            other => Err(unexpected(other)),
        }
    }

    /// A merchant transfers out of its settlement account; returns the fee paid and the tier.
    pub async fn merchant_transfer(
        &self,
        merchant: MerchantId,
        target: AccountId,
        amount_fen: u64,
    ) -> Result<(u64, FeeTier), ClientError> {
        match self
            .plain(Command::MerchantTransfer {
                merchant,
                target,
                amount_fen,
            })
            .await?
        {
            Reply::MerchantTransferred { fee_fen, tier } => Ok((fee_fen, tier)),
            other => Err(unexpected(other)),
        }
    }

    /// Closes a CST month: merchants' figures and fee tiers are decided. Returns how many
    /// merchants were rolled into it.
    pub async fn close_month(&self, month: YearMonth) -> Result<u64, ClientError> {
        match self.plain(Command::CloseMonth { month }).await? {
            Reply::MonthClosed { merchants, .. } => Ok(merchants),
            other => Err(unexpected(other)),
        }
    }

    /// Creates a voucher pool.
    pub async fn create_pool(
        &self,
        name: &str,
        face_value_fen: u64,
        capacity: u64,
        eligibility: Eligibility,
        valid_from_ms: u64,
        valid_until_ms: u64,
    ) -> Result<PoolId, ClientError> {
        match self
            .plain(Command::CreatePool {
                name: name.to_owned(),
                face_value_fen,
                capacity,
                eligibility,
                valid_from_ms,
                valid_until_ms,
            })
            .await?
        {
            Reply::PoolCreated { pool } => Ok(pool),
            other => Err(unexpected(other)),
        }
    }

    /// Claims one voucher, first come first served; returns how many remain.
    pub async fn claim_voucher(
        &self,
        pool: PoolId,
        account: AccountId,
    ) -> Result<u64, ClientError> {
        match self.plain(Command::ClaimVoucher { pool, account }).await? {
            Reply::VoucherClaimed { remaining, .. } => Ok(remaining),
            other => Err(unexpected(other)),
        }
    }

    async fn read(&self, query: Query) -> Result<QueryReply, ClientError> {
        self.query(query, Consistency::Linearizable).await
    }

    /// An account as the ledger holds it now (linearizable read).
    pub async fn account(&self, account: AccountId) -> Result<Option<AccountView>, ClientError> {
        match self.read(Query::Account(account)).await? {
            QueryReply::Account(view) => Ok(view),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// An account's balance, in fen.
    pub async fn balance(&self, account: AccountId) -> Result<i64, ClientError> {
        self.account(account)
            .await?
            .map(|a| a.balance_fen)
            .ok_or(ClientError::Refused(
                ledger_core::LedgerError::UnknownAccount { account },
            ))
    }

    /// A customer's e-Pay credential: alias, limits, spent today.
    pub async fn credential(&self, account: AccountId) -> Result<Option<Credential>, ClientError> {
        match self.read(Query::Credential(account)).await? {
            QueryReply::Credential(c) => Ok(c),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// A merchant: its counters, reward and fee tier.
    pub async fn merchant(&self, merchant: MerchantId) -> Result<Option<Merchant>, ClientError> {
        match self.read(Query::Merchant(merchant)).await? {
            QueryReply::Merchant(m) => Ok(m),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// A voucher pool; `capacity - granted` remain.
    pub async fn pool(&self, pool: PoolId) -> Result<Option<Pool>, ClientError> {
        match self.read(Query::Pool(pool)).await? {
            QueryReply::Pool(p) => Ok(p),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// A payment and its state.
    /// An account's promotion points.
    pub async fn points(&self, account: AccountId) -> Result<u64, ClientError> {
        match self.read(Query::Points(account)).await? {
            QueryReply::Points(points) => Ok(points),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// A promotion.
    pub async fn promotion(&self, id: PromotionId) -> Result<Option<Promotion>, ClientError> {
        match self.read(Query::Promotion(id)).await? {
            QueryReply::Promotion(p) => Ok(p),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// A campaign: its window and rules.
    pub async fn campaign(&self, id: CampaignId) -> Result<Option<Campaign>, ClientError> {
        match self.read(Query::Campaign(id)).await? {
            QueryReply::Campaign(c) => Ok(c),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// A merchant's counters in a campaign (`None` until a settlement counts for it).
    pub async fn merchant_campaign(
        &self,
        merchant: MerchantId,
        campaign: CampaignId,
    ) -> Result<Option<CampaignCounters>, ClientError> {
        match self
            .read(Query::MerchantCampaign(merchant, campaign))
            .await?
        {
            QueryReply::MerchantCampaign(c) => Ok(c),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// One page of an account's statement (see `StatementRequest`), read at one applied
    /// index of the node that answers: linearizable, or `Stale` from any node.
    pub async fn statement(
        &self,
        request: StatementRequest,
        consistency: Consistency,
    ) -> Result<StatementPage, ClientError> {
        match self.query(Query::Statement(request), consistency).await? {
            QueryReply::Statement { page, .. } => Ok(page),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// One page of a merchant's reconciliation of a CST day (`ledger_core::time::
    /// cst_day_of_date` makes the day number), with the whole day's totals.
    pub async fn reconcile(
        &self,
        merchant: MerchantId,
        day: u64,
        page_size: u32,
        cursor: Option<Cursor>,
        consistency: Consistency,
    ) -> Result<Reconciliation, ClientError> {
        let query = Query::Reconciliation {
            merchant,
            day,
            page_size,
            cursor,
        };
        match self.query(query, consistency).await? {
            QueryReply::Reconciliation { reconciliation, .. } => Ok(reconciliation),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// Up to `page_size` journal rows after `after_seq`, oldest first (auditors).
    pub async fn journal(
        &self,
        after_seq: u64,
        page_size: u32,
        consistency: Consistency,
    ) -> Result<Vec<Posting>, ClientError> {
        let query = Query::Journal {
            after_seq,
            page_size,
        };
        match self.query(query, consistency).await? {
            QueryReply::Journal { rows, .. } => Ok(rows),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// A prize and its stock.
    pub async fn prize(&self, id: PrizeId) -> Result<Option<Prize>, ClientError> {
        match self.read(Query::Prize(id)).await? {
            QueryReply::Prize(p) => Ok(p),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }

    /// A payment as of ledger time (a pending one past its expiry reads as expired).
    pub async fn payment(&self, payment: PaymentId) -> Result<Option<Payment>, ClientError> {
        match self.read(Query::Payment(payment)).await? {
            QueryReply::Payment(p) => Ok(p),
            other => Err(ClientError::UnexpectedReply(format!("{other:?}"))),
        }
    }
}
