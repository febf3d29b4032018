//! Property tests: random sequences of valid and invalid commands, with retries, checked
//! after every step against the ledger's guarantees.

use ledger_core::command::{CampaignFlags, Command, Envelope};
use ledger_core::config::{LedgerConfig, YUAN};
use ledger_core::intake::Secret;
use ledger_core::outcome::{LedgerError, Reply};
use ledger_core::state::PaymentState;
use ledger_core::time::{cst_month, month_start_ms};
use ledger_core::types::{
    AccountStatus, CampaignId, CampaignRules, ChallengeId, Eligibility, MerchantId, MerchantKind,
    Payee, PaymentId, PoolId, RewardRule, VipTier,
};
use ledger_core::{Ledger, MemStore, Outcome};
use ledger_testkit::driver::{Card, Driver};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const CARDS: usize = 5;
/// The prize's price: a 2-yuan e-Pay bill at the promotion's partner earns it.
const PRIZE_POINTS: u64 = 2;

#[derive(Clone, Debug)]
enum Op {
    Deposit(usize, u64),
    Withdraw(usize, u64),
    Transfer(usize, usize, u64),
    Enrol(usize, bool),
    Begin {
        card: usize,
        payee: usize,
        amount_fen: u64,
        order: u8,
    },
    Confirm {
        pick: usize,
        right_code: bool,
    },
    Claim(usize, usize),
    Flags(usize, bool, bool),
    Vip(usize, u8),
    Freeze(usize, bool),
    MerchantTransfer(usize, usize, u64),
    CloseMonth,
    Advance(u64),
    Retry(usize),
    ReuseKey(usize, u64),
    Swipe {
        card: usize,
        merchant: usize,
        amount_fen: u64,
        right_pin: bool,
        receipt: u8,
    },
    Refund {
        pick: usize,
        amount_fen: u64,
    },
    Cancel(usize),
    Redeem(usize),
    /// The leader's expiry of what ledger time has expired.
    Expire,
    /// A merchant registers (true), re-registers or removes (false) its webhook.
    Webhook(usize, bool),
    /// The leader acknowledges the first `count` events waiting for a merchant's webhook,
    /// as delivered or as given up on.
    Deliver {
        merchant: usize,
        count: usize,
        abandon: bool,
    },
    /// A campaign from now for `days` (zero: refused), rewarding POS merchants after
    /// `min_count` settlements (zero: refused) and `min_fen`, with fee tiers or not.
    Campaign {
        days: u64,
        min_count: u64,
        min_fen: u64,
        reward_fen: u64,
        fee_tiers: bool,
    },
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 1..2_000 * YUAN,
        1 => Just(0u64),
        1 => Just(u64::MAX),
        1 => 2_000 * YUAN..20_000 * YUAN,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let card = 0..CARDS;
    prop_oneof![
        4 => (card.clone(), amount()).prop_map(|(c, a)| Op::Deposit(c, a)),
        2 => (card.clone(), amount()).prop_map(|(c, a)| Op::Withdraw(c, a)),
        4 => (card.clone(), card.clone(), amount()).prop_map(|(a, b, x)| Op::Transfer(a, b, x)),
        6 => (card.clone(), prop::bool::weighted(0.7)).prop_map(|(c, ok)| Op::Enrol(c, ok)),
        8 => (card.clone(), 0..4usize, amount(), 0..6u8)
            .prop_map(|(card, payee, amount_fen, order)| Op::Begin { card, payee, amount_fen, order }),
        8 => (any::<usize>(), prop::bool::weighted(0.8))
            .prop_map(|(pick, right_code)| Op::Confirm { pick, right_code }),
        4 => (0..2usize, card.clone()).prop_map(|(p, c)| Op::Claim(p, c)),
        2 => (card.clone(), any::<bool>(), any::<bool>()).prop_map(|(c, e, s)| Op::Flags(c, e, s)),
        1 => (card.clone(), 0..3u8).prop_map(|(c, t)| Op::Vip(c, t)),
        1 => (card.clone(), any::<bool>()).prop_map(|(c, f)| Op::Freeze(c, f)),
        2 => (0..2usize, card.clone(), amount()).prop_map(|(m, c, a)| Op::MerchantTransfer(m, c, a)),
        1 => Just(Op::CloseMonth),
        3 => prop_oneof![1..120_000u64, 1..(3 * 86_400_000u64), Just(31 * 86_400_000u64)].prop_map(Op::Advance),
        4 => any::<usize>().prop_map(Op::Retry),
        1 => (any::<usize>(), 1..100u64).prop_map(|(k, a)| Op::ReuseKey(k, a)),
        4 => (card.clone(), 0..3usize, amount(), prop::bool::weighted(0.85), 0..6u8)
            .prop_map(|(card, merchant, amount_fen, right_pin, receipt)| Op::Swipe { card, merchant, amount_fen, right_pin, receipt }),
        4 => (any::<usize>(), prop_oneof![1..200 * YUAN, Just(0u64), 1..2_000 * YUAN])
            .prop_map(|(pick, amount_fen)| Op::Refund { pick, amount_fen }),
        2 => any::<usize>().prop_map(Op::Cancel),
        4 => card.clone().prop_map(Op::Redeem),
        3 => Just(Op::Expire),
        1 => (0..2usize, prop::bool::weighted(0.8)).prop_map(|(m, on)| Op::Webhook(m, on)),
        3 => (0..2usize, 0..4usize, prop::bool::weighted(0.2))
            .prop_map(|(merchant, count, abandon)| Op::Deliver { merchant, count, abandon }),
        1 => (0..40u64, 0..5u64, 0..300 * YUAN, 0..200 * YUAN, any::<bool>())
            .prop_map(|(days, min_count, min_fen, reward_fen, fee_tiers)| Op::Campaign { days, min_count, min_fen, reward_fen, fee_tiers }),
    ]
}

/// The world a sequence runs in: cards, two merchants (their settlement cards are extra),
/// two small voucher pools, and what has happened so far.
struct World {
    d: Driver,
    cards: Vec<Card>,
    merchants: Vec<MerchantId>,
    pools: Vec<PoolId>,
    pending: Vec<PaymentId>,
    /// Every submission with its outcome and, if recorded, when.
    history: Vec<(Envelope, Outcome, Option<u64>)>,
    settled: BTreeSet<PaymentId>,
    used_challenges: BTreeSet<ChallengeId>,
    next_month_to_close: ledger_core::types::YearMonth,
    /// Every payment that reached its end, as it ended: it must never change (a settled
    /// one only gains refunds).
    ended: BTreeMap<PaymentId, PaymentState>,
}

impl World {
    fn new() -> World {
        let mut d = Driver::new(LedgerConfig::default());
        d.start_journal();
        let cards: Vec<Card> = (0..CARDS as u64)
            .map(|n| d.funded_card(n, 500 * YUAN))
            .collect();
        let mut merchants = Vec::new();
        for (n, kind) in [(100, MerchantKind::Pos), (101, MerchantKind::Shangyitong)] {
            let shop = d.funded_card(n, 0);
            let contact_phone = if kind == MerchantKind::Pos {
                shop.phone.clone()
            } else {
                "0731-84567890".into()
            };
            let Ok(Reply::MerchantRegistered { merchant }) = d.submit(Command::RegisterMerchant {
                kind,
                name: format!("m{n}"),
                settlement_account: shop.account,
                contact_phone,
                terminals: 1,
            }) else {
                panic!("register")
            };
            merchants.push(merchant);
        }
        let mut pools = Vec::new();
        for (face, eligibility) in [
            (50 * YUAN, Eligibility::EtcBound),
            (100 * YUAN, Eligibility::Anyone),
        ] {
            let Ok(Reply::PoolCreated { pool }) = d.submit(Command::CreatePool {
                name: "pool".into(),
                face_value_fen: face,
                capacity: 2,
                eligibility,
                valid_from_ms: d.now_ms,
                valid_until_ms: d.now_ms + 40 * 86_400_000,
            }) else {
                panic!("pool")
            };
            pools.push(pool);
        }
        // A promotion at the POS merchant, and a prize of few points and little stock.
        let now = d.now_ms;
        d.submit(Command::CreatePromotion {
            name: "promotion".into(),
            partners: vec![merchants[0]],
            valid_from_ms: now,
            valid_until_ms: now + 40 * 86_400_000,
            points_per_yuan: 1,
        })
        .unwrap();
        d.submit(Command::CreatePrize {
            name: "prize".into(),
            price_points: PRIZE_POINTS,
            stock: 2,
        })
        .unwrap();
        let next_month_to_close = cst_month(d.now_ms);
        World {
            d,
            cards,
            merchants,
            pools,
            pending: Vec::new(),
            history: Vec::new(),
            settled: BTreeSet::new(),
            used_challenges: BTreeSet::new(),
            next_month_to_close,
            ended: BTreeMap::new(),
        }
    }

    /// Submits under a fresh key and remembers the outcome for later retries.
    fn submit(&mut self, command: Command) -> Outcome {
        let key = self.d.fresh_key();
        let outcome = self.d.submit_with_key(key, command.clone());
        let applied_ms = self.d.ledger.idempotency_record(key).map(|r| r.applied_ms);
        self.history
            .push((Envelope::new(key, 0, command), outcome.clone(), applied_ms));
        outcome
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let before = self.d.ledger.state_hash();
        let journal_len = self.d.journal.as_ref().map_or(0, Vec::len);
        match op {
            Op::Deposit(c, a) => {
                let account = self.cards[*c].account;
                let _ = self.submit(Command::Deposit {
                    account,
                    amount_fen: *a,
                });
            }
            Op::Withdraw(c, a) => {
                let account = self.cards[*c].account;
                let _ = self.submit(Command::Withdraw {
                    account,
                    amount_fen: *a,
                });
            }
            Op::Transfer(a, b, x) => {
                let (source, target) = (self.cards[*a].account, self.cards[*b].account);
                let _ = self.submit(Command::Transfer {
                    source,
                    target,
                    amount_fen: *x,
                });
            }
            Op::Enrol(c, right_password) => {
                let mut card = self.cards[*c].clone();
                if !right_password {
                    card.password = "000000".into();
                }
                let _ = self.d.enrol(&card, "卡");
            }
            Op::Begin {
                card,
                payee,
                amount_fen,
                order,
            } => {
                let payee = match payee {
                    0 | 1 => Payee::Merchant(self.merchants[*payee]),
                    2 => Payee::Account(self.cards[(card + 1) % CARDS].account),
                    _ => Payee::Merchant(ledger_core::types::MerchantId(99)),
                };
                let card = self.cards[*card].clone();
                if let Ok(command) = self.d.begin_payment_command(
                    &card,
                    payee,
                    *amount_fen,
                    &format!("order-{order}"),
                ) {
                    if let Ok(Reply::PaymentPending { payment, .. }) = self.submit(command) {
                        self.pending.push(payment);
                    }
                }
            }
            Op::Confirm { pick, right_code } => {
                if self.pending.is_empty() {
                    return Ok(());
                }
                let payment = self.pending[pick % self.pending.len()];
                let challenge = self
                    .d
                    .ledger
                    .payment(payment)
                    .unwrap()
                    .challenge()
                    .expect("an e-Pay payment");
                let right = self.d.code_for(challenge);
                let code = if *right_code {
                    right.clone()
                } else if right == Secret::new("123456") {
                    Secret::new("654321")
                } else {
                    Secret::new("123456")
                };
                let command = self.d.confirm_command(payment, &code).unwrap();
                if let Ok(Reply::PaymentSettled { payment: p, .. }) = self.submit(command) {
                    prop_assert!(*right_code, "a wrong code settled {p}");
                    prop_assert!(self.settled.insert(p), "payment {p} settled twice");
                    prop_assert!(
                        self.used_challenges.insert(challenge),
                        "challenge {challenge} used twice"
                    );
                }
            }
            Op::Claim(p, c) => {
                let (pool, account) = (self.pools[*p], self.cards[*c].account);
                let _ = self.submit(Command::ClaimVoucher { pool, account });
            }
            Op::Flags(c, etc_bound, savings_product) => {
                let account = self.cards[*c].account;
                let flags = CampaignFlags {
                    etc_bound: *etc_bound,
                    savings_product: *savings_product,
                };
                let _ = self.submit(Command::SetCampaignFlags { account, flags });
            }
            Op::Vip(c, t) => {
                let tier = [VipTier::None, VipTier::Platinum, VipTier::Diamond][*t as usize];
                let account = self.cards[*c].account;
                let _ = self.submit(Command::SetVipTier { account, tier });
            }
            Op::Freeze(c, frozen) => {
                let status = if *frozen {
                    AccountStatus::Frozen
                } else {
                    AccountStatus::Active
                };
                let account = self.cards[*c].account;
                let _ = self.submit(Command::SetAccountStatus { account, status });
            }
            Op::MerchantTransfer(m, c, a) => {
                let (merchant, target) = (self.merchants[*m], self.cards[*c].account);
                let _ = self.submit(Command::MerchantTransfer {
                    merchant,
                    target,
                    amount_fen: *a,
                });
            }
            Op::CloseMonth => {
                let month = self.next_month_to_close;
                if self.d.now_ms >= month_start_ms(month.next()) {
                    let closed = self.submit(Command::CloseMonth { month });
                    prop_assert!(
                        matches!(closed, Ok(Reply::MonthClosed { .. })),
                        "close failed: {:?}",
                        closed
                    );
                    self.next_month_to_close = month.next();
                }
            }
            Op::Advance(ms) => self.d.advance(*ms),
            Op::Retry(k) => {
                if self.history.is_empty() {
                    return Ok(());
                }
                let (envelope, original, applied_ms) = self.history[k % self.history.len()].clone();
                let recorded = self.d.ledger.idempotency_record(envelope.key);
                let again = self
                    .d
                    .submit_with_key(envelope.key, envelope.command.clone());
                if let Some(record) = recorded {
                    // Within the retention window the record is the original application's;
                    // past it a retry applies afresh (the documented bound) and later retries
                    // return that.
                    prop_assert_eq!(&again, &record.outcome, "a retry changed the outcome");
                    if Some(record.applied_ms) == applied_ms {
                        prop_assert_eq!(&again, &original, "a retry changed the original outcome");
                    }
                    prop_assert_eq!(
                        self.d.ledger.state_hash(),
                        before,
                        "a retry changed the state"
                    );
                }
            }
            Op::ReuseKey(k, a) => {
                if self.history.is_empty() {
                    return Ok(());
                }
                let (envelope, _, _) = self.history[k % self.history.len()].clone();
                let other = Command::Deposit {
                    account: self.cards[0].account,
                    amount_fen: *a + 1_000_000_000,
                };
                if self.d.ledger.idempotency_record(envelope.key).is_some()
                    && other != envelope.command
                {
                    let outcome = self.d.submit_with_key(envelope.key, other);
                    prop_assert_eq!(
                        outcome,
                        Err(LedgerError::IdempotencyKeyReused { key: envelope.key })
                    );
                    prop_assert_eq!(self.d.ledger.state_hash(), before);
                }
            }
            Op::Swipe {
                card,
                merchant,
                amount_fen,
                right_pin,
                receipt,
            } => {
                let merchant = self
                    .merchants
                    .get(*merchant)
                    .copied()
                    .unwrap_or(MerchantId(99));
                let card = self.cards[*card].clone();
                let pin = if *right_pin {
                    card.password.clone()
                } else {
                    "999999".into()
                };
                if let Ok(command) = self.d.swipe_command(
                    &card,
                    &pin,
                    merchant,
                    1,
                    *amount_fen,
                    &format!("receipt-{receipt}"),
                ) {
                    if let Ok(Reply::PaymentSettled { payment: p, .. }) = self.submit(command) {
                        prop_assert!(*right_pin, "a wrong PIN settled {p}");
                        prop_assert!(self.settled.insert(p), "payment {p} settled twice");
                    }
                }
            }
            Op::Refund { pick, amount_fen } => {
                let payments = self.d.ledger.meta().next_payment;
                if payments > 1 {
                    let payment = PaymentId(1 + (*pick as u64) % (payments - 1));
                    let was = self.d.ledger.payment(payment).unwrap();
                    let refunded = self.submit(Command::RefundPayment {
                        payment,
                        amount_fen: *amount_fen,
                    });
                    if refunded.is_ok() {
                        prop_assert!(
                            *amount_fen <= was.refundable_fen(),
                            "refunded {} of payment {payment} with {} left",
                            amount_fen,
                            was.refundable_fen()
                        );
                    }
                }
            }
            Op::Cancel(pick) => {
                if !self.pending.is_empty() {
                    let payment = self.pending[pick % self.pending.len()];
                    let _ = self.submit(Command::CancelPayment { payment });
                }
            }
            Op::Redeem(c) => {
                // Points are rare (an e-Pay bill at the partner): redeem for a holder if
                // there is one, else for any card (and be refused).
                let holders: Vec<_> = self
                    .cards
                    .iter()
                    .map(|card| card.account)
                    .filter(|a| self.d.ledger.points(*a) > 0)
                    .collect();
                let account = match holders.len() {
                    0 => self.cards[*c].account,
                    n => holders[c % n],
                };
                let points = self.d.ledger.points(account);
                let redeemed = self.submit(Command::RedeemPrize {
                    prize: ledger_core::types::PrizeId(1),
                    account,
                });
                if let Ok(Reply::PrizeRedeemed { points_left, .. }) = redeemed {
                    prop_assert_eq!(points_left, points - PRIZE_POINTS);
                }
            }
            Op::Campaign {
                days,
                min_count,
                min_fen,
                reward_fen,
                fee_tiers,
            } => {
                let now = self.d.now_ms;
                let article = CampaignRules::article();
                let _ = self.submit(Command::CreateCampaign {
                    name: "random".into(),
                    starts_ms: None,
                    ends_ms: now + days * 86_400_000,
                    rules: CampaignRules {
                        pos_reward: Some(RewardRule {
                            min_count: *min_count,
                            min_fen: *min_fen,
                            reward_fen: *reward_fen,
                        }),
                        fee_tiers: if *fee_tiers { article.fee_tiers } else { None },
                        ..article
                    },
                });
            }
            Op::Expire => {
                let due = self.d.ledger.expired_payments(self.d.now_ms, 1_024);
                let _ = self.submit(Command::ExpirePayments { payments: due });
            }
            Op::Webhook(m, on) => {
                let _ = self.submit(Command::SetWebhook {
                    merchant: self.merchants[*m],
                    url: on.then(|| "https://shop.example/events".to_owned()),
                });
            }
            Op::Deliver {
                merchant,
                count,
                abandon,
            } => {
                let merchant = self.merchants[*merchant];
                let ids: Vec<u64> = self
                    .d
                    .ledger
                    .event_outbox(*count)
                    .into_iter()
                    .filter(|(m, _, _)| *m == merchant)
                    .flat_map(|(_, _, events)| events.into_iter().map(|e| e.id))
                    .collect();
                let (delivered, abandoned) = if *abandon {
                    (Vec::new(), ids)
                } else {
                    (ids, Vec::new())
                };
                let _ = self.submit(Command::AckEvents {
                    merchant,
                    delivered,
                    abandoned,
                });
            }
        }
        // Every change of a merchant payment's state made exactly one event: its end, and
        // each refund.
        let mut events = BTreeMap::<PaymentId, u64>::new();
        for m in &self.merchants {
            let mut after = 0;
            loop {
                let page = self.d.ledger.events(*m, after, 1_000);
                let Some(last) = page.last() else { break };
                after = last.id;
                for e in &page {
                    *events.entry(e.payment).or_default() += 1;
                }
            }
        }
        for id in 1..self.d.ledger.meta().next_payment {
            let payment = self.d.ledger.stored_payment(PaymentId(id)).unwrap();
            let expected = match payment.payee {
                ledger_core::types::Payee::Merchant(_) => {
                    u64::from(payment.state.is_terminal()) + u64::from(payment.refunds.count)
                }
                ledger_core::types::Payee::Account(_) => 0,
            };
            prop_assert_eq!(
                events.get(&PaymentId(id)).copied().unwrap_or(0),
                expected,
                "payment {} in {:?}",
                id,
                payment.state
            );
        }
        // A payment's end never changes; a settled one only gains refunds.
        for id in 1..self.d.ledger.meta().next_payment {
            let payment = self.d.ledger.stored_payment(PaymentId(id)).unwrap();
            if let Some(end) = self.ended.get(&PaymentId(id)) {
                prop_assert_eq!(end, &payment.state, "payment {} changed its end", id);
            } else if payment.state.is_terminal() {
                self.ended.insert(PaymentId(id), payment.state);
            }
        }
        // A refusal that left no record changed nothing.
        let journal = self.d.journal.as_ref().unwrap();
        if journal.len() == journal_len + 1 {
            let (_, envelope) = &journal[journal_len];
            if self.d.ledger.idempotency_record(envelope.key).is_none() {
                prop_assert_eq!(
                    self.d.ledger.state_hash(),
                    before,
                    "an unrecorded refusal changed the state"
                );
            }
        }
        // Every campaign reward was granted once, past its count, and paid in full.
        let mut owed = 0;
        for c in 1..self.d.ledger.meta().next_campaign {
            let campaign = self.d.ledger.campaign(CampaignId(c)).unwrap();
            for (i, m) in self.merchants.iter().enumerate() {
                let kind = [MerchantKind::Pos, MerchantKind::Shangyitong][i];
                let Some(counted) = self.d.ledger.merchant_campaign(*m, CampaignId(c)) else {
                    continue;
                };
                if counted.reward_payment.is_some() {
                    let rule = campaign.rules.reward_for(kind).unwrap();
                    prop_assert!(counted.tx_count >= rule.min_count);
                    owed += rule.reward_fen as i64;
                }
            }
        }
        prop_assert_eq!(
            self.d
                .ledger
                .balance_fen(ledger_core::types::AccountId::TELECOM_SETTLEMENT),
            Some(owed)
        );
        self.d
            .ledger
            .check_invariants()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    /// Money is conserved, no customer goes negative, pools stay within capacity with one
    /// voucher per account, every OTP, voucher and payment is consumed at most once, retries
    /// return the original outcome, and refusals change nothing: after every step.
    #[test]
    fn every_step_keeps_the_ledger_guarantees(ops in prop::collection::vec(op(), 1..80)) {
        let mut world = World::new();
        for op in &ops {
            world.run(op)?;
        }
    }

    /// Two replicas fed the same commands end with equal state hashes, and a snapshot taken
    /// midway, restored and fed the rest, ends there too.
    #[test]
    fn replicas_and_restored_snapshots_agree(ops in prop::collection::vec(op(), 1..80), cut in any::<prop::sample::Index>()) {
        let mut world = World::new();
        for op in &ops {
            world.run(op)?;
        }
        let journal = world.d.journal.clone().unwrap();
        let config = world.d.ledger.config().clone();
        let mut replica = Ledger::genesis(MemStore::new(), config);
        let cut = cut.index(journal.len() + 1);
        let mut restored = None;
        for (i, (ctx, envelope)) in journal.iter().enumerate() {
            if i == cut {
                let bytes = replica.snapshot();
                let copy = Ledger::restore(MemStore::new(), &bytes).unwrap();
                prop_assert_eq!(copy.state_hash(), replica.state_hash());
                prop_assert_eq!(copy.snapshot(), bytes);
                restored = Some(copy);
            }
            let a = replica.apply(ctx, envelope);
            if let Some(copy) = &mut restored {
                prop_assert_eq!(copy.apply(ctx, envelope), a);
            }
        }
        prop_assert_eq!(replica.state_hash(), world.d.ledger.state_hash());
        if let Some(copy) = restored {
            prop_assert_eq!(copy.state_hash(), world.d.ledger.state_hash());
        }
    }
}

/// The generator must reach the interesting paths, or the properties above prove little:
/// settlements with and without vouchers, exhausted pools, wrong and locked codes, retries.
#[test]
fn the_generated_sequences_reach_the_interesting_paths() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = BTreeSet::new();
    for _ in 0..96 {
        let ops = prop::collection::vec(op(), 60..80)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let mut world = World::new();
        for op in &ops {
            world.run(op).unwrap();
        }
        for (_, outcome, _) in &world.history {
            if matches!(outcome, Ok(Reply::PaymentSettled { rewards, .. }) if !rewards.is_empty()) {
                seen.insert("campaign reward");
            }
            let label = match outcome {
                Ok(Reply::PaymentSettled {
                    voucher: Some(_), ..
                }) => "settled with voucher",
                Ok(Reply::PaymentSettled { voucher: None, .. }) => "settled without voucher",
                Ok(Reply::VoucherClaimed { .. }) => "voucher claimed",
                Err(LedgerError::PoolExhausted { .. }) => "pool exhausted",
                Err(LedgerError::WrongOtp { .. }) => "wrong otp",
                Err(LedgerError::InsufficientFunds { .. }) => "insufficient funds",
                Ok(Reply::MonthClosed { .. }) => "month closed",
                Ok(Reply::MerchantTransferred { .. }) => "merchant transferred",
                Ok(Reply::PaymentRefunded { .. }) => "refunded",
                Ok(Reply::PaymentCancelled { .. }) => "cancelled",
                Ok(Reply::PaymentsExpired { expired: 1.. }) => "expired",
                Err(LedgerError::RefundExceedsBill { .. }) => "refund beyond the bill",
                Err(LedgerError::WrongCardPassword { .. }) => "wrong PIN",
                Ok(Reply::PrizeRedeemed { .. }) => "prize redeemed",
                Ok(Reply::CampaignCreated { .. }) => "campaign created",
                Ok(Reply::EventsAcked { delivered: 1.., .. }) => "events delivered",
                Err(
                    LedgerError::InvalidCampaignWindow | LedgerError::InvalidCampaignRule { .. },
                ) => "campaign refused",
                _ => continue,
            };
            seen.insert(label);
        }
    }
    assert_eq!(seen.len(), 18, "reached only {seen:?}");
}
