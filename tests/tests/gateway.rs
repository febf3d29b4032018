//! The HTTP/JSON gateway in front of real node processes, over real sockets: who may come
//! in (API keys and client certificates, and taking either away without a restart), what it
//! may do there (never the operator's work), and what the operator sees (`/metrics`). The
//! whole API is exercised by schemathesis and `scripts/story.py` in CI; these are the
//! security properties a property-based client cannot judge.

use ledger_gateway::server::{self, GatewayConfig, Running};
use ledger_tests::{eventually, free_ports, serial, Cluster};
use ledger_wire::principal::{Principal, Role};
use ledger_wire::tls::{TlsFiles, TlsIdentity};
use std::path::Path;
use std::time::Duration;

async fn start_gateway(cluster: &Cluster, keys: &Path) -> Running {
    let pki = cluster.pki();
    let (cert, key) = pki
        .files(&Principal::new(Role::Gateway, "http").unwrap())
        .expect("gateway certificate");
    let ports = free_ports(2);
    server::start(GatewayConfig {
        listen: format!("127.0.0.1:{}", ports[0]).parse().unwrap(),
        endpoints: cluster
            .ids()
            .iter()
            .map(|id| cluster.info(*id).client_addr)
            .collect(),
        tls: TlsFiles {
            ca: pki.dir().join(ledger_wire::pki::CA_CERT_FILE),
            cert,
            key,
            crl: Some(pki.dir().join(ledger_wire::pki::CRL_FILE)),
        },
        https: None,
        api_keys: Some(keys.to_owned()),
        request_deadline: ledger_gateway::REQUEST_DEADLINE,
        admin: Some(format!("127.0.0.1:{}", ports[1]).parse().unwrap()),
    })
    .await
    .expect("the gateway starts")
}

/// An HTTPS client trusting the cluster CA, presenting no certificate (it sends API keys).
fn keyed_client(cluster: &Cluster) -> reqwest::Client {
    let ca = cluster.pki().dir().join(ledger_wire::pki::CA_CERT_FILE);
    let config = ledger_wire::tls::trusting_client_config(&ca).expect("the CA");
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// An HTTPS client presenting `identity`'s certificate.
fn certified_client(identity: &TlsIdentity) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(identity.client_config().as_ref().clone())
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

async fn status_of(request: reqwest::RequestBuilder) -> Result<(u16, String), String> {
    let response = request.send().await.map_err(|e| format!("{e:?}"))?;
    let status = response.status().as_u16();
    Ok((status, response.text().await.unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_and_certificates_let_in_their_principal_until_taken_away() {
    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    let keys = cluster.data_root().join("api-keys.txt");
    let merchant = Principal::new(Role::Merchant, "7").unwrap();
    let key = ledger_gateway::keys::issue(&keys, &merchant, "shop-7", 0).expect("a key");
    let gateway = start_gateway(&cluster, &keys).await;
    let base = format!("https://localhost:{}/v1", gateway.addr.port());
    let http = keyed_client(&cluster);

    // The key lets merchant 7 in: its own merchant record is its to read (none yet: 404),
    // another merchant's is not (403); no key or a wrong one gets 401.
    let own = || http.get(format!("{base}/merchants/7")).bearer_auth(&key);
    assert_eq!(status_of(own()).await.unwrap().0, 404);
    let other = http.get(format!("{base}/merchants/8")).bearer_auth(&key);
    assert_eq!(status_of(other).await.unwrap().0, 403);
    let (status, body) = status_of(http.get(format!("{base}/status"))).await.unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"error\":\"Unauthenticated\""), "{body}");
    let wrong = http
        .get(format!("{base}/status"))
        .bearer_auth(format!("{key}0"));
    assert_eq!(status_of(wrong).await.unwrap().0, 401);

    // The scheme's name is case-insensitive.
    let lower = http
        .get(format!("{base}/merchants/7"))
        .header("authorization", format!("bearer {key}"));
    assert_eq!(status_of(lower).await.unwrap().0, 404);
    // A merchant sees the cluster's health, not the bank's node addresses.
    let (status, body) = status_of(http.get(format!("{base}/status")).bearer_auth(&key))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).expect("status JSON");
    let nodes = view["nodes"].as_array().expect("nodes");
    assert!(!nodes.is_empty(), "{body}");
    for node in nodes {
        assert!(
            node["endpoint"].is_null() && node["error"].is_null(),
            "{body}"
        );
        assert_eq!(node["reachable"], true, "{body}");
    }

    // Deleting the key's line and reloading revokes it, without a restart.
    std::fs::write(&keys, "").expect("empty the key file");
    gateway.reload().expect("reload");
    assert_eq!(status_of(own()).await.unwrap().0, 401);

    // A merchant's certificate works the same way...
    let identity = cluster.identity(&Principal::new(Role::Merchant, "9").unwrap());
    let certified = certified_client(&identity);
    let mine = || certified.get(format!("{base}/merchants/9"));
    assert_eq!(status_of(mine()).await.unwrap().0, 404);
    // ... until it is revoked: the open connection is cut and new ones are refused.
    cluster.revoke(&Principal::new(Role::Merchant, "9").unwrap());
    gateway.reload().expect("reload the CRL");
    eventually(
        "the revoked certificate to be refused",
        Duration::from_secs(10),
        || {
            let request = mine();
            async move { status_of(request).await.is_err().then_some(()) }
        },
    )
    .await;
    let fresh = certified_client(&identity);
    let refused = status_of(fresh.get(format!("{base}/merchants/9"))).await;
    assert!(
        refused.is_err(),
        "a revoked certificate was served: {refused:?}"
    );
    gateway.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_never_acts_for_the_operator_and_counts_what_it_answers() {
    let _serial = serial().await;
    let cluster = Cluster::start(3).await;
    // A key file with no key yet: only certificates authenticate.
    let keys = cluster.data_root().join("api-keys.txt");
    std::fs::write(&keys, "").expect("an empty key file");
    let gateway = start_gateway(&cluster, &keys).await;
    let base = format!("https://localhost:{}/v1", gateway.addr.port());

    // An operator's certificate is valid at the TLS layer, but the gateway is no way in for
    // the operator's work; nor may a gateway's own certificate call as itself.
    for principal in [
        Principal::new(Role::Operator, "ops").unwrap(),
        Principal::new(Role::Gateway, "other").unwrap(),
    ] {
        let client = certified_client(&cluster.identity(&principal));
        let (status, body) = status_of(client.get(format!("{base}/status")))
            .await
            .unwrap();
        assert_eq!(status, 403, "{principal}: {body}");
    }
    // Nor can an API key be issued for them.
    for role in [Role::Operator, Role::Node, Role::Gateway] {
        let p = Principal::new(role, if role == Role::Node { "1" } else { "x" }).unwrap();
        assert!(
            ledger_gateway::keys::issue(&keys, &p, "k", 0).is_err(),
            "{role}"
        );
    }

    // The operator's admin port counts requests by route template, not by id.
    let channel =
        certified_client(&cluster.identity(&Principal::new(Role::Channel, "web").unwrap()));
    for account in [16, 17, 18] {
        let (status, _) = status_of(channel.get(format!("{base}/accounts/{account}")))
            .await
            .unwrap();
        assert_eq!(status, 404);
    }
    let admin = format!(
        "http://{}/metrics",
        gateway.admin_addr().expect("an admin port")
    );
    let metrics = keyed_client(&cluster)
        .get(admin)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("ledger_gateway_requests_total{")
                && l.contains("route=\"/v1/accounts/{account}\"")
                && l.contains("status=\"404\"")
        })
        .unwrap_or_else(|| panic!("no accounts series in:\n{metrics}"));
    assert!(line.ends_with(" 3"), "{line}");
    assert!(
        !metrics.contains("/v1/accounts/16"),
        "an id in a label:\n{metrics}"
    );
    gateway.shutdown();
}
