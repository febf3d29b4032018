//! Who may do what (DOMAIN.md section 10), over real processes with mutual TLS: for every
//! operation of the client API, each role is either allowed or refused as `Forbidden`,
//! exactly as the table says; a refusal changes nothing; and each principal's idempotency
//! keys are its own.

use ledger_client::{Client, ClientError, Consistency, Operation, Query, QueryReply};
use ledger_core::command::{CampaignFlags, Command};
use ledger_core::intake::{OpenAccountRequest, Secret};
use ledger_core::ledger::journal::{Order, StatementRequest};
use ledger_core::outcome::Reply;
use ledger_core::types::{
    AccountId, AccountStatus, CampaignId, CampaignRules, Eligibility, MerchantId, MerchantKind,
    Payee, PaymentId, PoolId, PrizeId, PromotionId, RequestKey, VipTier, YearMonth,
};
use ledger_testkit::driver::{test_pan, test_phone};
use ledger_tests::{serial, Cluster};
use ledger_wire::api::{ApiError, NodeInfo};
use ledger_wire::principal::{Principal, Role};
use ledger_wire::rpc::LedgerRpcClient;

const PASSWORD: &str = "135790";

/// The callers of the matrix, in the order of its columns.
fn callers(merchant: MerchantId) -> Vec<(&'static str, Principal)> {
    vec![
        ("operator", Principal::Operator { name: "ops".into() }),
        ("merchant", Principal::Merchant { merchant }),
        ("channel", Principal::Channel { name: "web".into() }),
        (
            "auditor",
            Principal::Auditor {
                name: "audit".into(),
            },
        ),
    ]
}

/// What the matrix runs against: two merchants with their settlement accounts, an enrolled
/// payer, a pool, and a pending payment to each merchant.
struct World {
    payer: AccountId,
    own: MerchantId,
    own_account: AccountId,
    other: MerchantId,
    own_payment: PaymentId,
    other_payment: PaymentId,
    pool: PoolId,
}

async fn open_account(operator: &Client, n: u64) -> AccountId {
    let request = OpenAccountRequest {
        holder_name: format!("holder {n}"),
        card_number: Secret::new(test_pan(n)),
        card_password: Secret::new(PASSWORD),
        phone: test_phone(n),
        flags: CampaignFlags::default(),
    };
    match operator.submit(Operation::OpenAccount(request)).await {
        Ok(Reply::AccountOpened { account }) => account,
        other => panic!("open account: {other:?}"),
    }
}

async fn register(operator: &Client, settlement_account: AccountId, n: u64) -> MerchantId {
    match operator
        .submit(Operation::Command(Command::RegisterMerchant {
            kind: MerchantKind::Online,
            name: format!("shop {n}"),
            settlement_account,
            contact_phone: test_phone(n),
            terminals: 1,
        }))
        .await
    {
        Ok(Reply::MerchantRegistered { merchant }) => merchant,
        other => panic!("register merchant: {other:?}"),
    }
}

async fn begin(merchant: &Client, payee: MerchantId, order: &str) -> PaymentId {
    match merchant
        .submit(Operation::PaymentBegin {
            phone: test_phone(1),
            last_six: Secret::new(&test_pan(1)[10..]),
            payee: Payee::Merchant(payee),
            amount_fen: 1_000,
            order_id: order.into(),
        })
        .await
    {
        Ok(Reply::PaymentPending { payment, .. }) => payment,
        other => panic!("payment to {payee}: {other:?}"),
    }
}

async fn build_world(cluster: &Cluster) -> World {
    let operator = cluster.client_as(&Principal::Operator {
        name: "setup".into(),
    });
    let channel = cluster.client_as(&Principal::Channel {
        name: "setup".into(),
    });
    let payer = open_account(&operator, 1).await;
    let own_account = open_account(&operator, 2).await;
    let other_account = open_account(&operator, 3).await;
    operator
        .submit(Operation::Command(Command::Deposit {
            account: payer,
            amount_fen: 100_000,
        }))
        .await
        .expect("deposit");
    let own = register(&operator, own_account, 2).await;
    let other = register(&operator, other_account, 3).await;
    let now = ledger_tests::now_ms();
    let Ok(Reply::PoolCreated { pool }) = operator
        .submit(Operation::Command(Command::CreatePool {
            name: "roles".into(),
            face_value_fen: 100,
            capacity: 10,
            eligibility: Eligibility::Anyone,
            valid_from_ms: now - 60_000,
            valid_until_ms: now + 3_600_000,
        }))
        .await
    else {
        panic!("pool")
    };
    // The payer's e-Pay enrolment, through the channel.
    channel
        .submit(Operation::EpayBegin {
            card_number: Secret::new(test_pan(1)),
            phone: test_phone(1),
        })
        .await
        .expect("enrolment step 1");
    channel
        .submit(Operation::EpayChooseAlias {
            account: payer,
            card_password: Secret::new(PASSWORD),
            alias: "roles".into(),
        })
        .await
        .expect("enrolment step 2");
    let Ok(Reply::ChallengeIssued { challenge, .. }) = channel
        .submit(Operation::EpayConfirm { account: payer })
        .await
    else {
        panic!("enrolment step 3")
    };
    let code = cluster.otp(challenge.0).await;
    channel
        .submit(Operation::EpayActivate {
            account: payer,
            code: Secret::new(code),
        })
        .await
        .expect("enrolment step 4");
    let own_payment = begin(
        &cluster.client_as(&Principal::Merchant { merchant: own }),
        own,
        "own",
    )
    .await;
    let other_payment = begin(
        &cluster.client_as(&Principal::Merchant { merchant: other }),
        other,
        "other",
    )
    .await;
    World {
        payer,
        own,
        own_account,
        other,
        own_payment,
        other_payment,
        pool,
    }
}

/// One row of the matrix: a call, and the roles DOMAIN.md section 10 allows it.
struct Row {
    name: &'static str,
    call: Call,
    allowed: &'static [Role],
}

enum Call {
    Submit(Operation),
    Query(Query),
    AddNode(NodeInfo),
    RemoveNode(u64),
    /// `backup_begin` and its chunks, at this client address.
    Backup(String),
}

/// The last day of an account's statement.
fn statement(account: AccountId) -> Query {
    let now = ledger_tests::now_ms();
    Query::Statement(StatementRequest {
        account,
        from_ms: now - ledger_core::time::DAY_MS,
        to_ms: now + 1,
        order: Order::NewestFirst,
        page_size: 10,
        cursor: None,
    })
}

/// Today's reconciliation of a merchant.
fn reconciliation(merchant: MerchantId) -> Query {
    Query::Reconciliation {
        merchant,
        day: ledger_core::time::cst_day(ledger_tests::now_ms()),
        page_size: 10,
        cursor: None,
    }
}

fn command(c: Command) -> Call {
    Call::Submit(Operation::Command(c))
}

use Role::{Auditor, Channel, Merchant, Operator};

fn rows(w: &World, member: NodeInfo) -> Vec<Row> {
    let month = YearMonth::new(2014, 12).unwrap();
    let row = |name, call, allowed| Row {
        name,
        call,
        allowed,
    };
    vec![
        row(
            "open an account",
            Call::Submit(Operation::OpenAccount(OpenAccountRequest {
                holder_name: "matrix".into(),
                card_number: Secret::new(test_pan(50)),
                card_password: Secret::new(PASSWORD),
                phone: test_phone(50),
                flags: CampaignFlags::default(),
            })),
            &[Operator],
        ),
        row(
            "deposit",
            command(Command::Deposit {
                account: w.payer,
                amount_fen: 1,
            }),
            &[Operator],
        ),
        row(
            "withdraw",
            command(Command::Withdraw {
                account: w.payer,
                amount_fen: 1,
            }),
            &[Operator],
        ),
        row(
            "transfer",
            command(Command::Transfer {
                source: w.payer,
                target: w.own_account,
                amount_fen: 1,
            }),
            &[Operator],
        ),
        row(
            "set an account's status",
            command(Command::SetAccountStatus {
                account: w.own_account,
                status: AccountStatus::Active,
            }),
            &[Operator],
        ),
        row(
            "set campaign flags",
            command(Command::SetCampaignFlags {
                account: w.payer,
                flags: CampaignFlags::default(),
            }),
            &[Operator],
        ),
        row(
            "set a VIP tier",
            command(Command::SetVipTier {
                account: w.payer,
                tier: VipTier::None,
            }),
            &[Operator],
        ),
        row(
            "register a merchant",
            command(Command::RegisterMerchant {
                kind: MerchantKind::Pos,
                name: "matrix shop".into(),
                settlement_account: w.own_account,
                contact_phone: test_phone(2),
                terminals: 1,
            }),
            &[Operator],
        ),
        row(
            "create a voucher pool",
            command(Command::CreatePool {
                name: "matrix".into(),
                face_value_fen: 100,
                capacity: 1,
                eligibility: Eligibility::Anyone,
                valid_from_ms: 0,
                valid_until_ms: 1,
            }),
            &[Operator],
        ),
        row(
            "close a month",
            command(Command::CloseMonth { month }),
            &[Operator],
        ),
        row(
            "e-Pay enrolment step 1",
            Call::Submit(Operation::EpayBegin {
                card_number: Secret::new(test_pan(2)),
                phone: test_phone(2),
            }),
            &[Channel],
        ),
        row(
            "e-Pay enrolment step 2",
            Call::Submit(Operation::EpayChooseAlias {
                account: w.own_account,
                card_password: Secret::new(PASSWORD),
                alias: "matrix".into(),
            }),
            &[Channel],
        ),
        row(
            "e-Pay enrolment step 3",
            Call::Submit(Operation::EpayConfirm {
                account: w.own_account,
            }),
            &[Channel],
        ),
        row(
            "e-Pay enrolment step 4",
            Call::Submit(Operation::EpayActivate {
                account: w.own_account,
                code: Secret::new("000000"),
            }),
            &[Channel],
        ),
        row(
            "set e-Pay limits",
            command(Command::SetEpayLimits {
                account: w.payer,
                per_payment_fen: 50_000,
                per_day_fen: 100_000,
            }),
            &[Channel],
        ),
        row(
            "claim a voucher",
            command(Command::ClaimVoucher {
                pool: w.pool,
                account: w.payer,
            }),
            &[Channel],
        ),
        row(
            "begin a payment to itself",
            Call::Submit(Operation::PaymentBegin {
                phone: test_phone(1),
                last_six: Secret::new(&test_pan(1)[10..]),
                payee: Payee::Merchant(w.own),
                amount_fen: 500,
                order_id: "matrix-own".into(),
            }),
            &[Merchant],
        ),
        row(
            "begin a payment to another merchant",
            Call::Submit(Operation::PaymentBegin {
                phone: test_phone(1),
                last_six: Secret::new(&test_pan(1)[10..]),
                payee: Payee::Merchant(w.other),
                amount_fen: 500,
                order_id: "matrix-other".into(),
            }),
            &[],
        ),
        row(
            "begin a small transfer to an account",
            Call::Submit(Operation::PaymentBegin {
                phone: test_phone(1),
                last_six: Secret::new(&test_pan(1)[10..]),
                payee: Payee::Account(w.own_account),
                amount_fen: 500,
                order_id: "matrix-transfer".into(),
            }),
            &[Channel],
        ),
        row(
            "confirm its own payment",
            Call::Submit(Operation::PaymentConfirm {
                payment: w.own_payment,
                code: Secret::new("000000"),
            }),
            &[Merchant],
        ),
        row(
            "confirm another merchant's payment",
            Call::Submit(Operation::PaymentConfirm {
                payment: w.other_payment,
                code: Secret::new("000000"),
            }),
            &[],
        ),
        row(
            "take a card payment at its own terminal",
            Call::Submit(Operation::CardPayment {
                merchant: w.own,
                terminal: 1,
                card_number: Secret::new(test_pan(99)),
                card_password: Secret::new(PASSWORD),
                amount_fen: 500,
                receipt: "matrix-own".into(),
            }),
            &[Merchant],
        ),
        row(
            "take a card payment at another merchant's terminal",
            Call::Submit(Operation::CardPayment {
                merchant: w.other,
                terminal: 1,
                card_number: Secret::new(test_pan(99)),
                card_password: Secret::new(PASSWORD),
                amount_fen: 500,
                receipt: "matrix-other".into(),
            }),
            &[],
        ),
        row(
            "refund its own payment",
            command(Command::RefundPayment {
                payment: w.own_payment,
                amount_fen: 1,
            }),
            &[Merchant],
        ),
        row(
            "refund another merchant's payment",
            command(Command::RefundPayment {
                payment: w.other_payment,
                amount_fen: 1,
            }),
            &[],
        ),
        row(
            "cancel another merchant's payment",
            command(Command::CancelPayment {
                payment: w.other_payment,
            }),
            &[],
        ),
        row(
            "cancel its own payment",
            command(Command::CancelPayment {
                payment: w.own_payment,
            }),
            &[Merchant],
        ),
        row(
            "create a promotion",
            command(Command::CreatePromotion {
                name: "matrix".into(),
                partners: vec![w.own],
                valid_from_ms: 0,
                valid_until_ms: 1,
                points_per_yuan: 1,
            }),
            &[Operator],
        ),
        row(
            "create a campaign",
            command(Command::CreateCampaign {
                name: "matrix".into(),
                starts_ms: None,
                ends_ms: u64::MAX,
                rules: CampaignRules::article(),
            }),
            &[Operator],
        ),
        row(
            "read a campaign",
            Call::Query(Query::Campaign(CampaignId(1))),
            &[Operator, Merchant, Channel, Auditor],
        ),
        row(
            "create a prize",
            command(Command::CreatePrize {
                name: "matrix".into(),
                price_points: 1,
                stock: 1,
            }),
            &[Operator],
        ),
        row(
            "redeem a prize",
            command(Command::RedeemPrize {
                prize: PrizeId(1),
                account: w.payer,
            }),
            &[Channel],
        ),
        row(
            "read a customer's points",
            Call::Query(Query::Points(w.payer)),
            &[Operator, Channel, Auditor],
        ),
        row(
            "read a promotion",
            Call::Query(Query::Promotion(PromotionId(1))),
            &[Operator, Merchant, Channel, Auditor],
        ),
        row(
            "read a prize",
            Call::Query(Query::Prize(PrizeId(1))),
            &[Operator, Merchant, Channel, Auditor],
        ),
        row(
            "transfer out of its own settlement account",
            command(Command::MerchantTransfer {
                merchant: w.own,
                target: w.payer,
                amount_fen: 1,
            }),
            &[Merchant],
        ),
        row(
            "transfer out of another merchant's account",
            command(Command::MerchantTransfer {
                merchant: w.other,
                target: w.payer,
                amount_fen: 1,
            }),
            &[],
        ),
        row(
            "set its own webhook",
            command(Command::SetWebhook {
                merchant: w.own,
                url: Some("https://own.example/events".into()),
            }),
            &[Merchant],
        ),
        row(
            "set another merchant's webhook",
            command(Command::SetWebhook {
                merchant: w.other,
                url: Some("https://other.example/events".into()),
            }),
            &[],
        ),
        row(
            "read its own payment events",
            Call::Query(Query::Events {
                merchant: w.own,
                after_id: 0,
                page_size: 10,
            }),
            &[Operator, Merchant, Auditor],
        ),
        row(
            "read another merchant's payment events",
            Call::Query(Query::Events {
                merchant: w.other,
                after_id: 0,
                page_size: 10,
            }),
            &[Operator, Auditor],
        ),
        row(
            "read its own webhook",
            Call::Query(Query::Webhook(w.own)),
            &[Operator, Merchant, Auditor],
        ),
        row(
            "read its own webhook's signing secret",
            Call::Query(Query::WebhookSecret(w.own)),
            &[Merchant],
        ),
        row(
            "read another merchant's webhook signing secret",
            Call::Query(Query::WebhookSecret(w.other)),
            &[],
        ),
        row(
            "read a customer's account",
            Call::Query(Query::Account(w.payer)),
            &[Operator, Channel, Auditor],
        ),
        row(
            "read its own settlement account",
            Call::Query(Query::Account(w.own_account)),
            &[Operator, Merchant, Channel, Auditor],
        ),
        row(
            "read an e-Pay credential",
            Call::Query(Query::Credential(w.payer)),
            &[Operator, Channel, Auditor],
        ),
        row(
            "read a voucher",
            Call::Query(Query::Voucher(w.payer, w.pool)),
            &[Operator, Channel, Auditor],
        ),
        row(
            "read a voucher pool",
            Call::Query(Query::Pool(w.pool)),
            &[Operator, Merchant, Channel, Auditor],
        ),
        row(
            "read itself as a merchant",
            Call::Query(Query::Merchant(w.own)),
            &[Operator, Merchant, Auditor],
        ),
        row(
            "read another merchant",
            Call::Query(Query::Merchant(w.other)),
            &[Operator, Auditor],
        ),
        row(
            "read its own campaign counters",
            Call::Query(Query::MerchantCampaign(w.own, CampaignId(1))),
            &[Operator, Merchant, Auditor],
        ),
        row(
            "read another merchant's campaign counters",
            Call::Query(Query::MerchantCampaign(w.other, CampaignId(1))),
            &[Operator, Auditor],
        ),
        row(
            "read its own payment",
            Call::Query(Query::Payment(w.own_payment)),
            &[Operator, Merchant, Channel, Auditor],
        ),
        row(
            "read another merchant's payment",
            Call::Query(Query::Payment(w.other_payment)),
            &[Operator, Channel, Auditor],
        ),
        row(
            "read the state hash",
            Call::Query(Query::StateHash),
            &[Operator, Auditor],
        ),
        row(
            "read a range of accounts",
            Call::Query(Query::AccountRange {
                first: AccountId(0),
                count: 8,
            }),
            &[Operator, Auditor],
        ),
        row(
            "read a customer's statement",
            Call::Query(statement(w.payer)),
            &[Operator, Channel, Auditor],
        ),
        row(
            "read its own settlement account's statement",
            Call::Query(statement(w.own_account)),
            &[Operator, Merchant, Channel, Auditor],
        ),
        row(
            "read its own reconciliation",
            Call::Query(reconciliation(w.own)),
            &[Operator, Merchant, Auditor],
        ),
        row(
            "read another merchant's reconciliation",
            Call::Query(reconciliation(w.other)),
            &[Operator, Auditor],
        ),
        row(
            "read the journal",
            Call::Query(Query::Journal {
                after_seq: 0,
                page_size: 10,
            }),
            &[Operator, Auditor],
        ),
        row(
            "take a backup",
            Call::Backup(member.client_addr.clone()),
            &[Operator],
        ),
        row(
            "add a node (an existing member again)",
            Call::AddNode(member),
            &[Operator],
        ),
        row(
            "remove a node (not a member)",
            Call::RemoveNode(99),
            &[Operator],
        ),
    ]
}

/// Whether the call was refused for the caller's role (anything else: allowed, whatever the
/// ledger then said). With `acting_for`, the client is a gateway's calling for that
/// principal (`submit_as`, `query_as`; administration has no delegated form).
async fn forbidden(client: &Client, call: &Call, acting_for: Option<&Principal>) -> bool {
    let is_forbidden =
        |e: &ClientError| matches!(e, ClientError::Rejected(ApiError::Forbidden { .. }));
    match (call, acting_for) {
        (Call::Submit(op), Some(p)) => client
            .submit_as(p, client.new_key(), op.clone())
            .await
            .err()
            .is_some_and(|e| is_forbidden(&e)),
        (Call::Query(q), Some(p)) => client
            .query_as(p, q.clone(), Consistency::Linearizable)
            .await
            .err()
            .is_some_and(|e| is_forbidden(&e)),
        (Call::Submit(op), None) => client
            .submit(op.clone())
            .await
            .err()
            .is_some_and(|e| is_forbidden(&e)),
        (Call::Query(q), None) => client
            .query(q.clone(), Consistency::Linearizable)
            .await
            .err()
            .is_some_and(|e| is_forbidden(&e)),
        (Call::AddNode(n), _) => client
            .add_node(n.clone())
            .await
            .err()
            .is_some_and(|e| is_forbidden(&e)),
        (Call::Backup(endpoint), _) => client
            .backup(endpoint)
            .await
            .err()
            .is_some_and(|e| is_forbidden(&e)),
        (Call::RemoveNode(id), _) => client
            .remove_node(*id)
            .await
            .err()
            .is_some_and(|e| is_forbidden(&e)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_allowed_exactly_to_the_roles_domain_section_10_names() {
    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    let world = build_world(&cluster).await;
    let callers = callers(world.own);
    // Each column: its name, the client, whom it acts for through a gateway, and the role
    // whose row entries it must match (none: refused everywhere).
    let mut columns: Vec<(String, Client, Option<Principal>, Option<Role>)> = callers
        .iter()
        .map(|(name, p)| (name.to_string(), cluster.client_as(p), None, Some(p.role())))
        .collect();
    let gateway = Principal::Gateway {
        name: "http".into(),
    };
    // The gateway by itself may do nothing of the table.
    columns.push(("gateway".into(), cluster.client_as(&gateway), None, None));
    // For a merchant, channel or auditor it may do exactly what they may; for the operator,
    // nothing.
    for (name, p) in &callers {
        let allowed_as = (p.role() != Role::Operator).then(|| p.role());
        columns.push((
            format!("gateway for {name}"),
            cluster.client_as(&gateway),
            Some(p.clone()),
            allowed_as,
        ));
    }
    // Nobody but a gateway may act for another: a merchant trying is refused everywhere.
    columns.push((
        "merchant for channel".into(),
        cluster.client_as(&callers[1].1),
        Some(callers[2].1.clone()),
        None,
    ));
    let member = cluster.info(cluster.leader().await);
    let mut table = format!(
        "| operation |{}\n|---|{}\n",
        columns
            .iter()
            .map(|c| format!(" {} |", c.0))
            .collect::<String>(),
        "---|".repeat(columns.len())
    );
    let mut wrong = Vec::new();
    for row in rows(&world, member) {
        table.push_str(&format!("| {} |", row.name));
        for (name, client, acting_for, allowed_as) in &columns {
            let refused = forbidden(client, &row.call, acting_for.as_ref()).await;
            let expected_refused = !allowed_as.is_some_and(|r| row.allowed.contains(&r));
            table.push_str(if refused {
                " forbidden |"
            } else {
                " allowed |"
            });
            if refused != expected_refused {
                wrong.push(format!(
                    "{name} {} `{}`",
                    if refused {
                        "was refused"
                    } else {
                        "was allowed"
                    },
                    row.name
                ));
            }
        }
        table.push('\n');
    }
    println!("{table}");
    assert!(
        wrong.is_empty(),
        "the role table differs from DOMAIN.md section 10:\n{}",
        wrong.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_request_changes_nothing() {
    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    // A world without codes in flight: no SMS acknowledgement moves the state meanwhile.
    let operator = cluster.client_as(&Principal::Operator {
        name: "setup".into(),
    });
    let payer = open_account(&operator, 1).await;
    let shop = open_account(&operator, 2).await;
    let own = register(&operator, shop, 2).await;
    let hash = cluster.wait_converged(&cluster.ids()).await;
    let merchant = cluster.client_as(&Principal::Merchant { merchant: own });
    let refused = merchant
        .submit(Operation::Command(Command::Deposit {
            account: shop,
            amount_fen: 1_000_000,
        }))
        .await;
    assert!(
        matches!(&refused, Err(ClientError::Rejected(ApiError::Forbidden { principal, operation }))
            if principal == &format!("merchant:{}", own.0) && operation == "deposit"),
        "{refused:?}"
    );
    let enrol = merchant
        .submit(Operation::EpayBegin {
            card_number: Secret::new(test_pan(1)),
            phone: test_phone(1),
        })
        .await;
    assert!(
        matches!(
            &enrol,
            Err(ClientError::Rejected(ApiError::Forbidden { .. }))
        ),
        "{enrol:?}"
    );
    let auditor = cluster.client_as(&Principal::Auditor {
        name: "audit".into(),
    });
    let withdraw = auditor
        .submit(Operation::Command(Command::Withdraw {
            account: payer,
            amount_fen: 1,
        }))
        .await;
    assert!(
        matches!(
            &withdraw,
            Err(ClientError::Rejected(ApiError::Forbidden { .. }))
        ),
        "{withdraw:?}"
    );
    assert_eq!(
        cluster.wait_converged(&cluster.ids()).await,
        hash,
        "the state changed"
    );
    let metrics = cluster.metrics(cluster.leader().await).await;
    assert!(
        metrics.lines().any(|l| l == "ledger_forbidden_total 3"),
        "the three refusals are counted on the leader:\n{metrics}"
    );
}

/// Today's abuse: any client could send requests under another client's id, read its
/// recorded answers and push its retry floor. Keys are the principal's own now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_principal_can_neither_read_nor_retire_another_principals_keys() {
    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    let world = build_world(&cluster).await;
    let mut config = cluster.client_config_as(&Principal::Merchant {
        merchant: world.own,
    });
    config.client_id = Some(7);
    let own = Client::new(config);
    let mut config = cluster.client_config_as(&Principal::Merchant {
        merchant: world.other,
    });
    config.client_id = Some(7);
    let other = Client::new(config);
    let key = RequestKey {
        client_id: 7,
        request_id: 1,
    };
    let begin = |payee: MerchantId| Operation::PaymentBegin {
        phone: test_phone(1),
        last_six: Secret::new(&test_pan(1)[10..]),
        payee: Payee::Merchant(payee),
        amount_fen: 700,
        order_id: "same-key".into(),
    };
    let Ok(Reply::PaymentPending { payment: first, .. }) =
        own.submit_with_key(key, begin(world.own)).await
    else {
        panic!("the first merchant's payment")
    };
    // The other merchant sends the very same key: it gets an answer of its own (a payment to
    // itself), never the first merchant's recorded receipt.
    let Ok(Reply::PaymentPending {
        payment: second, ..
    }) = other.submit_with_key(key, begin(world.other)).await
    else {
        panic!("the second merchant's payment")
    };
    assert_ne!(
        first, second,
        "the second merchant was answered from the first's record"
    );
    // It cannot retire the first merchant's keys either: a floor pushed under client id 7 is
    // its own, and the first merchant's retry still finds its answer.
    let leader = cluster.info(cluster.leader().await);
    let identity = cluster
        .pki()
        .identity(&Principal::Merchant {
            merchant: world.other,
        })
        .expect("a certificate");
    let transport = ledger_wire::transport::connect_tls(
        &leader.client_addr,
        std::time::Duration::from_secs(2),
        identity.client_config(),
    )
    .await
    .expect("connect");
    let raw = LedgerRpcClient::new(tarpc::client::Config::default(), transport).spawn();
    let push = ledger_wire::api::ClientRequest {
        key: RequestKey {
            client_id: 7,
            request_id: 1_000_000,
        },
        acked_below: 999_999,
        operation: begin(world.other),
    };
    let pushed = raw.submit(tarpc::context::current(), vec![push]).await;
    assert!(
        matches!(pushed, Ok(Ok(ref r)) if r.len() == 1),
        "{pushed:?}"
    );
    let retry = own.submit_with_key(key, begin(world.own)).await;
    assert!(
        matches!(retry, Ok(Reply::PaymentPending { payment, .. }) if payment == first),
        "the first merchant's retry: {retry:?}"
    );
    let read = own
        .query(Query::Payment(first), Consistency::Linearizable)
        .await;
    assert!(matches!(read, Ok(QueryReply::Payment(Some(_)))), "{read:?}");
}
