//! A gateway in this process with no working cluster behind it: the certificate it shows
//! its HTTPS callers (its own, from the cluster CA, unless it is given one from a CA the
//! merchants already trust), and its answer when the cluster does not answer in time.

use ledger_gateway::server::{self, GatewayConfig};
use ledger_wire::pki::{self, Validity};
use ledger_wire::principal::{Principal, Role};
use ledger_wire::tls::{trusting_client_config, ServingCert, TlsFiles};
use std::path::Path;
use std::time::Duration;

/// An HTTPS client that trusts only the CA in `dir`.
fn trusting(dir: &Path) -> reqwest::Client {
    let config = trusting_client_config(&dir.join(pki::CA_CERT_FILE)).expect("the CA");
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// A CA of its own in `dir`, and a certificate from it for localhost: (cert, key).
fn ca_with_localhost_cert(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    std::fs::create_dir_all(dir).expect("a folder");
    let ca = pki::init_dir(dir).expect("a CA");
    let gateway = Principal::new(Role::Gateway, "http").unwrap();
    pki::issue_to_dir(&ca, dir, &gateway, Validity::days(1)).expect("a certificate")
}

#[tokio::test]
async fn https_callers_see_the_serving_certificate_and_a_reload_replaces_it() {
    let root = tempfile::tempdir().expect("a temporary folder");
    let (cluster, public, next) = (
        root.path().join("cluster"),
        root.path().join("public"),
        root.path().join("next"),
    );
    let (cert, key) = ca_with_localhost_cert(&cluster);
    let (public_cert, public_key) = ca_with_localhost_cert(&public);
    let serving = ServingCert {
        cert: root.path().join("https.crt"),
        key: root.path().join("https.key"),
    };
    std::fs::copy(&public_cert, &serving.cert).expect("copy");
    std::fs::copy(&public_key, &serving.key).expect("copy");
    let gateway = server::start(GatewayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        endpoints: vec!["127.0.0.1:9".into()],
        tls: TlsFiles {
            ca: cluster.join(pki::CA_CERT_FILE),
            cert,
            key,
            crl: Some(cluster.join(pki::CRL_FILE)),
        },
        https: Some(serving.clone()),
        api_keys: None,
        request_deadline: ledger_gateway::REQUEST_DEADLINE,
        admin: None,
    })
    .await
    .expect("the gateway starts");
    let url = format!("https://localhost:{}/openapi.json", gateway.addr.port());
    let get = |client: reqwest::Client| {
        let url = url.clone();
        async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
    };

    // A caller trusting the public CA gets in; one trusting only the cluster CA does not:
    // the gateway's own certificate is not what it shows.
    assert_eq!(
        get(trusting(&public)).await.expect("public CA trusted"),
        200
    );
    assert!(get(trusting(&cluster)).await.is_err());

    // A renewed certificate (here from yet another CA) is shown after a reload.
    let (next_cert, next_key) = ca_with_localhost_cert(&next);
    std::fs::copy(&next_cert, &serving.cert).expect("copy");
    std::fs::copy(&next_key, &serving.key).expect("copy");
    gateway.reload().expect("reload");
    assert_eq!(get(trusting(&next)).await.expect("renewed"), 200);
    assert!(get(trusting(&public)).await.is_err());

    // A serving key that does not belong to its certificate stops the reload, and the
    // certificate in force stays.
    std::fs::copy(&public_key, &serving.key).expect("copy");
    assert!(gateway.reload().is_err());
    assert_eq!(get(trusting(&next)).await.expect("unchanged"), 200);
    gateway.shutdown();
}

#[tokio::test]
async fn a_cluster_that_does_not_answer_gets_503_at_the_deadline_not_after_every_retry() {
    let root = tempfile::tempdir().expect("a temporary folder");
    let cluster = root.path().join("cluster");
    let (cert, key) = ca_with_localhost_cert(&cluster);
    // A node that takes connections and never says a word: each of the client's attempts
    // waits out its timeouts, ten attempts in all.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let keys = root.path().join("api-keys.txt");
    let merchant = Principal::new(Role::Merchant, "7").unwrap();
    let api_key = ledger_gateway::keys::issue(&keys, &merchant, "shop-7", 0).expect("a key");
    let deadline = Duration::from_secs(1);
    let gateway = server::start(GatewayConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        endpoints: vec![silent.local_addr().unwrap().to_string()],
        tls: TlsFiles {
            ca: cluster.join(pki::CA_CERT_FILE),
            cert,
            key,
            crl: None,
        },
        https: None,
        api_keys: Some(keys),
        request_deadline: deadline,
        admin: None,
    })
    .await
    .expect("the gateway starts");
    let base = format!("https://localhost:{}/v1", gateway.addr.port());
    let http = trusting(&cluster);

    let started = std::time::Instant::now();
    let read = http
        .get(format!("{base}/payments/1"))
        .bearer_auth(&api_key)
        .send()
        .await
        .expect("an answer");
    let waited = started.elapsed();
    assert_eq!(read.status().as_u16(), 503);
    assert_eq!(read.headers()["retry-after"], "1");
    let body = read.text().await.unwrap();
    assert!(body.contains("\"error\":\"Unavailable\""), "{body}");
    // The client's first attempt alone waits longer than this.
    assert!(
        waited >= deadline && waited < Duration::from_secs(5),
        "answered after {waited:?}"
    );

    let write = http
        .post(format!("{base}/payments/1/refunds"))
        .bearer_auth(&api_key)
        .header("idempotency-key", "refund-1")
        .header("content-type", "application/json")
        .body(r#"{"amount_fen": 100}"#)
        .send()
        .await
        .expect("an answer");
    assert_eq!(write.status().as_u16(), 503);
    let body = write.text().await.unwrap();
    assert!(body.contains("\"error\":\"OutcomeUnknown\""), "{body}");
    assert!(body.contains("same Idempotency-Key"), "{body}");
    gateway.shutdown();
}
