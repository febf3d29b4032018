//! Mutual TLS on a real 3-node cluster: who is let in on which port, what a refused client
//! is told, and a revocation taking effect on SIGHUP without a restart.

use ledger_client::{Client, ClientError, TlsIdentity};
use ledger_core::command::Command;
use ledger_core::outcome::Reply;
use ledger_core::types::{AccountId, MerchantId};
use ledger_tests::{eventually, serial, workspace_binary, Cluster};
use ledger_wire::api::Operation;
use ledger_wire::pki::{self, Ca, Validity, CA_CERT_FILE};
use ledger_wire::principal::Principal;
use ledger_wire::rpc::LedgerRpcClient;
use ledger_wire::transport;
use std::path::Path;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn merchant(id: u64) -> Principal {
    Principal::Merchant {
        merchant: MerchantId(id),
    }
}

fn deposit(account: u64, amount_fen: u64) -> Operation {
    Operation::Command(Command::Deposit {
        account: AccountId(account),
        amount_fen,
    })
}

/// Connects with `identity` and asks for the node's status: the error text if refused.
async fn refusal(addr: &str, identity: &TlsIdentity) -> String {
    match transport::connect_tls::<tarpc::Response<ledger_wire::rpc::LedgerRpcResponse>, _>(
        addr,
        CONNECT_TIMEOUT,
        identity.client_config(),
    )
    .await
    {
        Ok(framed) => {
            let client = LedgerRpcClient::new(tarpc::client::Config::default(), framed).spawn();
            match client.status(tarpc::context::current()).await {
                Ok(_) => panic!("{addr} served {:?}", identity.principal()),
                Err(e) => e.to_string(),
            }
        }
        Err(e) => e.to_string(),
    }
}

/// Writes a certificate and key into `dir` and loads them, trusting `ca_cert`.
fn identity_from(dir: &Path, ca_cert: &Path, name: &str, issued: &pki::Issued) -> TlsIdentity {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert, &issued.cert_pem).unwrap();
    std::fs::write(&key, &issued.key_pem).unwrap();
    TlsIdentity::load(ca_cert, &cert, &key).expect("load identity")
}

/// A write through the cluster as the test operator (opening an account) succeeds.
async fn assert_serves(client: &Client) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let request = ledger_tests::ops::open_account_request(n);
    match client.submit(Operation::OpenAccount(request)).await {
        Ok(Reply::AccountOpened { .. }) => {}
        other => panic!("the cluster no longer serves TLS clients: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_unknown_ca_expired_and_wrong_port_certificates_are_refused_with_their_cause() {
    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    let client = cluster.client();
    let node = cluster.info(1);
    let elsewhere = tempfile::tempdir().unwrap();
    let ca_cert = cluster.pki().dir().join(CA_CERT_FILE);

    // A plain-TCP client gets nothing; the node keeps serving TLS clients.
    let plain = transport::connect(&node.client_addr, CONNECT_TIMEOUT)
        .await
        .expect("TCP connects");
    let plain = LedgerRpcClient::new(tarpc::client::Config::default(), plain).spawn();
    let answer = tokio::time::timeout(
        Duration::from_secs(15),
        plain.status(tarpc::context::current()),
    )
    .await
    .expect("the node closes a plaintext connection");
    assert!(answer.is_err(), "a plaintext client was served");
    assert_serves(&client).await;

    // A certificate from another CA.
    let stranger = Ca::create().unwrap();
    let foreign = stranger
        .issue(
            &Principal::new(ledger_wire::principal::Role::Operator, "mallory").unwrap(),
            Validity::days(1),
        )
        .unwrap();
    let foreign = identity_from(elsewhere.path(), &ca_cert, "foreign", &foreign);
    let why = refusal(&node.client_addr, &foreign).await;
    assert!(why.contains("unknown CA"), "{why}");
    // The client library gives up at once (nothing was sent) and says why.
    let mut config = cluster.client_config(&[1]);
    config.tls = Some(foreign);
    match Client::new(config).submit(deposit(1, 1)).await {
        Err(ClientError::CertificateRefused { reason, .. }) => {
            assert!(reason.contains("unknown CA"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // So does ledgerctl, as a typed JSON error.
    std::fs::copy(&ca_cert, elsewhere.path().join(CA_CERT_FILE)).unwrap();
    let ledgerctl = std::process::Command::new(workspace_binary("ledger-client", "ledgerctl"))
        .args(["--json", "--endpoints", &node.client_addr, "--certs"])
        .arg(elsewhere.path())
        .args(["--identity", "foreign", "deposit", "16", "1"])
        .output()
        .expect("run ledgerctl");
    let stdout = String::from_utf8_lossy(&ledgerctl.stdout);
    assert!(
        stdout.contains("CertificateRefused") && stdout.contains("unknown CA"),
        "{stdout}"
    );

    // An expired certificate from the cluster's own CA.
    let now = SystemTime::now();
    let expired = cluster
        .pki()
        .ca()
        .issue(
            &merchant(5),
            Validity {
                not_before: now - Duration::from_secs(10 * 86_400),
                not_after: now - Duration::from_secs(86_400),
            },
        )
        .unwrap();
    let expired = identity_from(elsewhere.path(), &ca_cert, "expired", &expired);
    let why = refusal(&node.client_addr, &expired).await;
    assert!(why.contains("certificate expired"), "{why}");

    // A merchant on the Raft port; a node on the client port.
    let why = refusal(&node.raft_addr, &cluster.identity(&merchant(1))).await;
    assert!(why.contains("not served on this port"), "{why}");
    let why = refusal(
        &node.client_addr,
        &cluster.identity(&Principal::Node { id: 2 }),
    )
    .await;
    assert!(why.contains("not served on this port"), "{why}");

    // The refusals were logged, with their cause.
    let log = cluster.log(1);
    assert!(log.contains("TLS connection refused"), "{log}");
    cluster.assert_alive();
    assert_serves(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbled_or_stalled_handshake_is_dropped_while_other_clients_keep_working() {
    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    let client = cluster.client();
    for id in cluster.ids() {
        let info = cluster.info(id);
        for addr in [&info.client_addr, &info.raft_addr] {
            // One connection that never says anything, held open through the rest.
            let _silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
            // 64 KiB of junk where a ClientHello should be: closed by the node.
            let mut junk = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let _ = junk.write_all(&[0x5A; 64 * 1024]).await;
            let mut rest = Vec::new();
            let closed =
                tokio::time::timeout(Duration::from_secs(5), junk.read_to_end(&mut rest)).await;
            assert!(closed.is_ok(), "{addr} kept a garbled handshake open");
            // Meanwhile, TLS clients are served at once.
            tokio::time::timeout(Duration::from_secs(5), assert_serves(&client))
                .await
                .expect("served while a handshake stalls");
        }
    }
    cluster.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_certificate_is_refused_after_sighup_and_its_open_connection_is_cut() {
    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let addr = cluster.info(leader).client_addr;
    let merchant = cluster.identity(&merchant(7));
    let framed = transport::connect_tls(&addr, CONNECT_TIMEOUT, merchant.client_config())
        .await
        .expect("a valid merchant certificate is admitted");
    let open = LedgerRpcClient::new(tarpc::client::Config::default(), framed).spawn();
    open.status(tarpc::context::current())
        .await
        .expect("served before the revocation");

    cluster.revoke(&self::merchant(7));
    for id in cluster.ids() {
        cluster.hangup(id);
    }

    // The open connection is cut...
    eventually(
        "the revoked connection to close",
        Duration::from_secs(10),
        || {
            let open = open.clone();
            async move {
                open.status(tarpc::context::current())
                    .await
                    .is_err()
                    .then_some(())
            }
        },
    )
    .await;
    // ... and new ones are refused, saying why.
    let why = eventually("the revocation to apply", Duration::from_secs(10), || {
        let (addr, merchant) = (addr.clone(), merchant.clone());
        async move {
            let why = refusal(&addr, &merchant).await;
            why.contains("revoked").then_some(why)
        }
    })
    .await;
    assert!(why.contains("certificate revoked"), "{why}");
    // Nobody else is affected, and the nodes were not restarted.
    assert_serves(&cluster.client()).await;
    cluster.assert_alive();
    assert!(cluster.log(leader).contains("TLS files reloaded"));
}
