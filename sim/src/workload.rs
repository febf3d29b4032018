//! The workload: a setup (accounts, deposits, a voucher pool, four cards enrolled in e-Pay,
//! a POS merchant), then clients that transfer, deposit, race for vouchers, close a month and
//! pay in two steps with the code read off the customer's phone (now and then a wrong one).
//! Every client is the real client library on the simulated network. Two kinds of probe
//! check the node's intake: a settled payment's key sent again with another code (must be
//! refused as a reused key) and an order id past its bound (must be refused before it
//! reaches the log).

use crate::clients::{endpoint, ClientNet, SimTransport};
use crate::options::Bug;
use crate::phones::Phones;
use crate::rng::SimRng;
use crate::trace::lock;
use ledger_client::{Client, ClientConfig, ClientError};
use ledger_core::command::{CampaignFlags, Command};
use ledger_core::config::{LedgerConfig, ARTICLE_CAMPAIGN_ENDS_MS, MAX_ORDER_ID_BYTES};
use ledger_core::intake::{OpenAccountRequest, Secret};
use ledger_core::types::{
    AccountId, CampaignRules, Eligibility, MerchantId, MerchantKind, Payee, PaymentId, PoolId,
    RequestKey, RewardRule, YearMonth,
};
use ledger_core::{LedgerError, Outcome, Reply};
use ledger_node::node::NODE_CLIENT_ID_BASE;
use ledger_node::raft_types::NodeId;
use ledger_testkit::driver::{test_pan, test_phone};
use ledger_wire::api::{ApiError, NodeInfo, Operation};
use ledger_wire::principal::Principal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Accounts opened at setup; the first `ENROLLED` are enrolled in e-Pay.
const ACCOUNTS: u64 = 6;
const ENROLLED: u64 = 4;
/// The card password every simulated customer chose.
const CARD_PASSWORD: &str = "123456";
/// Times an application sends an operation whose outcome it did not learn.
const APPLICATION_TRIES: u32 = 3;
/// Times the setup sends one of its operations (under one key) before the run gives up.
const SETUP_TRIES: u32 = 20;
/// Chance that a plain operation is instead a merchant's deposit, which it must be refused.
const FORBIDDEN_PROBE_CHANCE: f64 = 0.03;

/// What an operation was sent to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// An ordinary operation: any answer the ledger's rules allow.
    Normal,
    /// A recorded key sent again with another request: must be refused as reused.
    KeyReused,
    /// A field past its bound: must be refused, and never reach the log.
    FieldTooLong,
    /// An operation outside the sender's role: must be refused as forbidden, and never
    /// reach the log.
    Forbidden,
}

/// One operation as the client saw it.
#[derive(Clone, Debug)]
pub struct Event {
    pub client: u64,
    pub principal: Principal,
    /// The key as the ledger keeps it (in the principal's namespace).
    pub key: RequestKey,
    /// Every key the application used for this one logical operation (as the ledger keeps
    /// them).
    pub keys_tried: Vec<RequestKey>,
    pub operation: Operation,
    pub expect: Expect,
    /// None: the client never learned the outcome.
    pub outcome: Option<Outcome>,
    /// The node refused it for the sender's role.
    pub forbidden: bool,
    pub invoked_ms: u64,
    pub completed_ms: u64,
}

/// Every operation of the run, in completion order.
pub type History = Arc<Mutex<Vec<Event>>>;

/// What the setup made, for the clients to use.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub accounts: Vec<AccountId>,
    pub pool: PoolId,
    pub merchant: MerchantId,
}

/// A client of the real client library on the simulated network.
/// Its wall clock reads virtual time since `started` (the run's start) from `EPOCH_MS`.
pub fn client(
    net: &ClientNet,
    seed: u64,
    (id, principal): (u64, Principal),
    members: &[NodeId],
    started: tokio::time::Instant,
) -> Client<SimTransport> {
    let mut config = ClientConfig::new(members.iter().map(|m| endpoint(*m)));
    config.client_id = Some(id);
    config.call_timeout = Duration::from_secs(1);
    config.max_attempts = 4;
    config.backoff_initial = Duration::from_millis(50);
    config.backoff_max = Duration::from_millis(500);
    Client::with_transport(
        config,
        SimTransport {
            net: net.clone(),
            client: id,
            principal,
            rng: Mutex::new(SimRng::stream(seed, &format!("client{id}"))),
            started,
        },
    )
}

/// The simulator's second campaign: 3 settlements and 30 yuan earn a POS merchant 5 yuan.
pub fn sprint_rules() -> CampaignRules {
    CampaignRules {
        pos_reward: Some(RewardRule {
            min_count: 3,
            min_fen: 3_000,
            reward_fen: 500,
        }),
        shangyitong_reward: None,
        fee_tiers: None,
        vip_gift: None,
    }
}

/// The ledger's configuration: simulated clients acknowledge nothing and the checks want
/// every record, so the per-client window holds a whole run. The clients pay from the 4
/// enrolled phones as fast as the cluster answers (up to about 60 codes a phone in a
/// 10-second run): under the bank's 5 codes per phone per 10 minutes almost every payment
/// would be refused at step 1, leaving the e-Pay checks (settled once, wrong codes, reused
/// keys) little to check. 40 lets most payments through and still throttles the busiest
/// runs, so the throttle's refusals stay in the log the checks replay.
///
/// Codes expire after 3 virtual seconds instead of 5 minutes, so that in a 10-second run
/// payments left unconfirmed (and confirmations slowed by faults) expire, and the leader's
/// expiry runs under faults too.
pub fn genesis_config() -> LedgerConfig {
    LedgerConfig {
        idempotency_window_per_client: 1_000_000,
        otp_challenges_per_phone: 40,
        otp_expiry_ms: 3_000,
        // Journal rows go after 4 virtual seconds: a run compacts under its faults (events
        // stay: the checks read them all).
        journal_retention_ms: 4_000,
        ..LedgerConfig::default()
    }
}

/// Initialises the cluster through the client library (`init_cluster`, as `ledger-node dev`
/// does) and sets up accounts, a pool, e-Pay enrolments and a merchant.
pub async fn set_up(
    setup: &Client<SimTransport>,
    channel: &Client<SimTransport>,
    members: Vec<NodeInfo>,
    phones: &Phones,
    now_ms: u64,
) -> Result<Fixture, String> {
    setup
        .init_cluster(members, genesis_config())
        .await
        .map_err(|e| format!("init: {e}"))?;
    let submit = |operation: Operation| submit_surely(setup, operation);
    let enrol_submit = |operation: Operation| submit_surely(channel, operation);
    let mut accounts = Vec::new();
    for n in 0..ACCOUNTS {
        let request = OpenAccountRequest {
            holder_name: format!("sim {n}"),
            card_number: Secret::new(test_pan(n)),
            card_password: Secret::new(CARD_PASSWORD),
            phone: test_phone(n),
            flags: CampaignFlags::default(),
        };
        match submit(Operation::OpenAccount(request)).await? {
            Reply::AccountOpened { account } => accounts.push(account),
            other => return Err(format!("opening account {n}: {other:?}")),
        }
        let deposit = Command::Deposit {
            account: accounts[n as usize],
            amount_fen: 100_000,
        };
        submit(Operation::Command(deposit)).await?;
    }
    // Two campaigns at once: the article's, and a smaller one whose reward a merchant earns
    // within a run, each with its own counters and reward.
    for (name, rules) in [
        ("心计划", CampaignRules::article()),
        ("sim sprint", sprint_rules()),
    ] {
        match submit(Operation::Command(Command::CreateCampaign {
            name: name.into(),
            starts_ms: None,
            ends_ms: ARTICLE_CAMPAIGN_ENDS_MS,
            rules,
        }))
        .await?
        {
            Reply::CampaignCreated { .. } => {}
            other => return Err(format!("campaign {name}: {other:?}")),
        }
    }
    let pool = match submit(Operation::Command(Command::CreatePool {
        name: "race".into(),
        face_value_fen: 1_000,
        capacity: 3,
        eligibility: Eligibility::Anyone,
        valid_from_ms: now_ms - 1,
        valid_until_ms: now_ms + 86_400_000,
    }))
    .await?
    {
        Reply::PoolCreated { pool } => pool,
        other => return Err(format!("pool: {other:?}")),
    };
    for (n, account) in accounts.iter().enumerate().take(ENROLLED as usize) {
        enrol(&enrol_submit, phones, n as u64, *account)
            .await
            .map_err(|e| format!("enrolling card {n}: {e}"))?;
    }
    let merchant = match submit(Operation::Command(Command::RegisterMerchant {
        kind: MerchantKind::Pos,
        name: "sim shop".into(),
        settlement_account: *accounts.last().expect("accounts"),
        contact_phone: test_phone(99),
        terminals: 1,
    }))
    .await?
    {
        Reply::MerchantRegistered { merchant } => merchant,
        other => return Err(format!("merchant: {other:?}")),
    };
    Ok(Fixture {
        accounts,
        pool,
        merchant,
    })
}

/// The fixture's merchant registers its webhook (`merchants::WEBHOOK_URL`), as itself.
pub async fn register_webhook(
    merchant: &Client<SimTransport>,
    id: MerchantId,
) -> Result<(), String> {
    match submit_surely(
        merchant,
        Operation::Command(Command::SetWebhook {
            merchant: id,
            url: Some(crate::merchants::WEBHOOK_URL.into()),
        }),
    )
    .await?
    {
        Reply::WebhookSet {
            secret_version: Some(1),
            ..
        } => Ok(()),
        other => Err(format!("webhook: {other:?}")),
    }
}

/// One setup operation, one key kept through every retry: the setup learns each outcome once.
async fn submit_surely(
    client: &Client<SimTransport>,
    operation: Operation,
) -> Result<Reply, String> {
    let key = client.new_key();
    let mut last = String::from("no attempt");
    for _ in 0..SETUP_TRIES {
        match client.submit_with_key(key, operation.clone()).await {
            Err(e @ ClientError::Unavailable { .. }) => last = e.to_string(),
            other => return other.map_err(|e| e.to_string()),
        }
    }
    Err(last)
}

/// The four e-Pay enrolment steps for card `n`, with the code the SMS brought.
async fn enrol<F, Fut>(
    submit: &F,
    phones: &Phones,
    n: u64,
    account: AccountId,
) -> Result<(), String>
where
    F: Fn(Operation) -> Fut,
    Fut: std::future::Future<Output = Result<Reply, String>>,
{
    submit(Operation::EpayBegin {
        card_number: Secret::new(test_pan(n)),
        phone: test_phone(n),
    })
    .await?;
    submit(Operation::EpayChooseAlias {
        account,
        card_password: Secret::new(CARD_PASSWORD),
        alias: format!("card {n}"),
    })
    .await?;
    let Reply::ChallengeIssued { challenge, .. } =
        submit(Operation::EpayConfirm { account }).await?
    else {
        return Err("step 3 issued no challenge".into());
    };
    let code = phones.read(challenge).await.ok_or("no enrolment SMS")?;
    submit(Operation::EpayActivate { account, code }).await?;
    Ok(())
}

/// One simulated client: its library clients (one per role it acts in, as an application
/// holds one certificate per role), its random stream, where it records.
pub struct Runner {
    pub id: u64,
    /// The operator: deposits, transfers, month close.
    pub client: Client<SimTransport>,
    /// The channel: voucher claims.
    pub channel: Client<SimTransport>,
    /// The fixture's merchant: its payments, and now and then an operator's operation it
    /// must be refused (`Expect::Forbidden`).
    pub merchant: Client<SimTransport>,
    pub rng: SimRng,
    pub history: History,
    pub phones: Phones,
    pub fixture: Fixture,
    pub bug: Option<Bug>,
    pub started: tokio::time::Instant,
}

impl Runner {
    /// Sends operations until `stop`.
    pub async fn run(mut self, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            let pick = self.rng.below(10);
            if pick < 3 {
                self.pay().await;
            } else if pick == 3 {
                self.swipe().await;
            } else if self.rng.chance(FORBIDDEN_PROBE_CHANCE) {
                let deposit = Command::Deposit {
                    account: self.account(),
                    amount_fen: 1 + self.rng.below(1_000),
                };
                self.send(Operation::Command(deposit), Expect::Forbidden)
                    .await;
            } else {
                let operation = self.plain_operation();
                self.send(operation, Expect::Normal).await;
            }
            tokio::time::sleep(Duration::from_millis(self.rng.below(30))).await;
        }
    }

    fn account(&mut self) -> AccountId {
        let accounts = &self.fixture.accounts;
        accounts[self.rng.below(accounts.len() as u64) as usize]
    }

    fn plain_operation(&mut self) -> Operation {
        let (a, b) = (self.account(), self.account());
        let command = match self.rng.below(10) {
            0..=5 => Command::Transfer {
                source: a,
                target: b,
                amount_fen: 1 + self.rng.below(5_000),
            },
            6 | 7 => Command::Deposit {
                account: a,
                amount_fen: 1 + self.rng.below(1_000),
            },
            8 if self.rng.chance(0.05) => Command::CloseMonth {
                month: YearMonth::new(2014, 12).expect("a month"),
            },
            _ => Command::ClaimVoucher {
                pool: self.fixture.pool,
                account: a,
            },
        };
        Operation::Command(command)
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Sends one logical operation, retrying it (as an application would) while its
    /// outcome is unknown: under the same key, or under a new one with `client-forgets-key`.
    async fn send(&mut self, operation: Operation, expect: Expect) -> Option<Outcome> {
        let key = self.client_for(&operation, expect).new_key();
        self.send_with_key(key, operation, expect).await
    }

    /// The client whose role sends this operation; a `Forbidden` probe goes through the
    /// merchant, which may not send what it sends.
    fn client_for(&self, operation: &Operation, expect: Expect) -> &Client<SimTransport> {
        match operation {
            _ if expect == Expect::Forbidden => &self.merchant,
            Operation::PaymentBegin { .. }
            | Operation::PaymentConfirm { .. }
            | Operation::CardPayment { .. }
            | Operation::Command(Command::CancelPayment { .. })
            | Operation::Command(Command::RefundPayment { .. }) => &self.merchant,
            Operation::Command(Command::ClaimVoucher { .. }) => &self.channel,
            _ => &self.client,
        }
    }

    async fn send_with_key(
        &mut self,
        mut key: RequestKey,
        operation: Operation,
        expect: Expect,
    ) -> Option<Outcome> {
        let invoked_ms = self.elapsed_ms();
        let client = self.client_for(&operation, expect);
        let mut keys_tried = vec![key];
        let mut outcome = None;
        let mut forbidden = false;
        for attempt in 0..APPLICATION_TRIES {
            if attempt > 0 && self.bug == Some(Bug::ClientForgetsKey) {
                key = client.new_key();
                keys_tried.push(key);
            }
            match client.submit_with_key(key, operation.clone()).await {
                Ok(reply) => outcome = Some(Ok(reply)),
                Err(ClientError::Refused(e)) => outcome = Some(Err(e)),
                Err(ClientError::Rejected(ApiError::Forbidden { .. })) => forbidden = true,
                Err(_) => continue,
            }
            break;
        }
        let principal = client.transport().principal.clone();
        let as_kept = |k: RequestKey| RequestKey {
            client_id: principal.namespaced_client_id(k.client_id, NODE_CLIENT_ID_BASE),
            request_id: k.request_id,
        };
        let event = Event {
            client: self.id,
            key: as_kept(key),
            keys_tried: keys_tried.into_iter().map(as_kept).collect(),
            principal,
            operation,
            expect,
            outcome: outcome.clone(),
            forbidden,
            invoked_ms,
            completed_ms: self.elapsed_ms(),
        };
        lock(&self.history).push(event);
        outcome
    }

    /// A two-step e-Pay payment by one of the enrolled cards; now and then the payer
    /// mistypes the code, the merchant sends an over-long order id, or (after a settled
    /// payment) the confirmation's key is sent again with another code.
    async fn pay(&mut self) {
        let n = self.rng.below(ENROLLED);
        let wrong_code = self.rng.chance(0.15);
        let amount_fen = 500 + self.rng.below(3_000);
        let too_long = self.rng.chance(0.05);
        let order_id = if too_long {
            "x".repeat(MAX_ORDER_ID_BYTES + 1 + self.rng.below(64) as usize)
        } else {
            format!("c{}-{}", self.id, self.rng.next_u64())
        };
        let begin = Operation::PaymentBegin {
            phone: test_phone(n),
            last_six: Secret::new(&test_pan(n)[10..]),
            payee: Payee::Merchant(self.fixture.merchant),
            amount_fen,
            order_id,
        };
        let expect = if too_long {
            Expect::FieldTooLong
        } else {
            Expect::Normal
        };
        let Some(Ok(Reply::PaymentPending {
            payment, challenge, ..
        })) = self.send(begin, expect).await
        else {
            return;
        };
        match self.rng.below(10) {
            // The payer walks away: the payment is left to expire.
            0 => return,
            // The merchant cancels it.
            1 => {
                let cancel = Command::CancelPayment { payment };
                self.send(Operation::Command(cancel), Expect::Normal).await;
                return;
            }
            _ => {}
        }
        // The payer reads the code off the phone; no SMS, no confirmation.
        let Some(right) = self.phones.read(challenge).await else {
            return;
        };
        let other = Secret::new(if right == Secret::new("000000") {
            "111111"
        } else {
            "000000"
        });
        let (code, other) = if wrong_code {
            (other, right)
        } else {
            (right, other)
        };
        let key = self.merchant.new_key();
        let confirm = Operation::PaymentConfirm { payment, code };
        let settled = self.send_with_key(key, confirm, Expect::Normal).await;
        if matches!(settled, Some(Ok(Reply::PaymentSettled { .. }))) && self.rng.chance(0.5) {
            let probe = Operation::PaymentConfirm {
                payment,
                code: other,
            };
            self.send_with_key(key, probe, Expect::KeyReused).await;
        }
        if let Some(Ok(Reply::PaymentSettled { payment, .. })) = settled {
            self.maybe_refund(payment, amount_fen).await;
        }
    }

    /// Now and then the merchant refunds part or all of a settled bill, sometimes more than
    /// is left (which must be refused).
    async fn maybe_refund(&mut self, payment: PaymentId, bill_fen: u64) {
        if !self.rng.chance(0.3) {
            return;
        }
        let amount_fen = 1 + self.rng.below(bill_fen);
        let refund = Command::RefundPayment {
            payment,
            amount_fen,
        };
        self.send(Operation::Command(refund), Expect::Normal).await;
    }

    /// A card swiped at the merchant's terminal; now and then with a wrong PIN. A settled
    /// swipe may be refunded like any payment.
    async fn swipe(&mut self) {
        // Every card but the merchant's own settlement account's.
        let n = self.rng.below(ACCOUNTS - 1);
        let pin = if self.rng.chance(0.1) {
            "654321"
        } else {
            CARD_PASSWORD
        };
        let amount_fen = 100 + self.rng.below(3_000);
        let swipe = Operation::CardPayment {
            merchant: self.fixture.merchant,
            terminal: 1,
            card_number: Secret::new(test_pan(n)),
            card_password: Secret::new(pin),
            amount_fen,
            receipt: format!("s{}-{}", self.id, self.rng.next_u64()),
        };
        if let Some(Ok(Reply::PaymentSettled { payment, .. })) =
            self.send(swipe, Expect::Normal).await
        {
            self.maybe_refund(payment, amount_fen).await;
        }
    }
}

/// Whether an outcome is the refusal an `Expect` asks for.
pub fn as_expected(expect: Expect, outcome: &Outcome) -> bool {
    match expect {
        Expect::Normal => true,
        Expect::KeyReused => matches!(outcome, Err(LedgerError::IdempotencyKeyReused { .. })),
        Expect::FieldTooLong => matches!(outcome, Err(LedgerError::TextTooLong { .. })),
        // A forbidden operation has no ledger outcome at all.
        Expect::Forbidden => false,
    }
}
