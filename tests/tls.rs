//! TLS with real processes: a mixed cluster of groupcached and Go
//! golang/groupcache nodes over `https://` with mutual TLS, the private
//! peer listener, certificate rotation under load, and https origins.
//! Certificates come from test CAs made at test time (`common::tls`).
// These tests start the `groupcached` binary.
#![cfg(feature = "binary")]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::tls::{served_cert, Issued, Pki};
use common::*;

fn https_urls(ports: &[u16]) -> Vec<String> {
    ports
        .iter()
        .map(|p| format!("https://127.0.0.1:{p}"))
        .collect()
}

/// groupcached's flags for an https node of the shared PKI that requires
/// and presents client certificates on the peer API.
fn gc_mtls_args(pki: &Pki, server: &Issued) -> Vec<String> {
    let client = Pki::shared_client();
    let ca = pki.ca.display().to_string();
    let mut args = server.args("--tls-cert", "--tls-key");
    args.extend(client.args("--peer-client-cert", "--peer-client-key"));
    args.extend([
        "--peer-ca".into(),
        ca.clone(),
        "--peer-client-ca".into(),
        ca,
    ]);
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_https_cluster_with_mutual_tls_loads_each_key_once() {
    let pki = Pki::shared();
    let server = pki.issue("mixed-server");
    let client = Pki::shared_client();
    let origin = Origin::start().await;
    let ports = free_ports(4);
    let peers = https_urls(&ports).join(",");
    let group = format!("g={}", origin.template());
    let mut gc = Vec::new();
    for &port in &ports[..2] {
        let mut args = vec![
            "--peers".into(),
            peers.clone(),
            "--group".into(),
            group.clone(),
        ];
        args.extend(gc_mtls_args(pki, &server));
        gc.push(GcNode::start(port, &args).await);
    }
    let ca = pki.ca.display().to_string();
    let mut go = Vec::new();
    for &port in &ports[2..] {
        let mut args = vec![
            "-peers".into(),
            peers.clone(),
            "-group".into(),
            group.clone(),
        ];
        args.extend(server.args("-tls-cert", "-tls-key"));
        args.extend(client.args("-client-cert", "-client-key"));
        args.extend(["-ca".into(), ca.clone(), "-client-ca".into(), ca.clone()]);
        go.push(GoNode::start(port, &args).await);
    }
    let urls: Vec<String> = gc
        .iter()
        .map(|n| n.url.clone())
        .chain(go.iter().map(|n| n.url.clone()))
        .collect();
    assert!(urls.iter().all(|u| u.starts_with("https://")));

    // Every key through every node: right values, one origin load each.
    let keys: Vec<String> = (0..120).map(|i| format!("key-{i}")).collect();
    for round in 0..2 {
        for (i, key) in keys.iter().enumerate() {
            let url = &urls[(i + round) % urls.len()];
            let reply = http_get(&format!("{url}/cache/g/{key}")).await;
            assert_eq!(reply.status, 200, "{url} {key}: {:?}", reply.body);
            assert_eq!(reply.body, value_of(key.as_bytes()), "{url} {key}");
        }
    }
    assert_eq!(origin.repeated(), vec![], "keys loaded more than once");
    assert_eq!(origin.distinct_keys(), keys.len());
    for url in &urls {
        let stats = serde_json::from_slice(&http_get(&format!("{url}/stats")).await.body).unwrap();
        assert!(stat(&stats, "g", "PeerLoads") > 0, "{url}: {stats}");
        assert_eq!(stat(&stats, "g", "PeerErrors"), 0, "{url}: {stats}");
    }

    // A client without a certificate may use the user API but not the
    // peer API, on either kind of node.
    let anonymous = https_client(pki.client_config(None));
    for url in &urls {
        let peer_api = request_with(&anonymous, "GET", &format!("{url}/_groupcache/g/key-1"))
            .await
            .unwrap();
        assert_eq!(peer_api.status, 403, "{url}");
        let user_api = request_with(&anonymous, "GET", &format!("{url}/cache/g/key-1"))
            .await
            .unwrap();
        assert_eq!(user_api.status, 200, "{url}");
    }
    // With the certificate, the peer API answers.
    let reply = http_get(&format!("{}/_groupcache/g/key-1", urls[0])).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_listener_takes_the_peer_api_off_the_main_listener() {
    let pki = Pki::shared();
    let server = pki.issue("peer-listener");
    let origin = Origin::start().await;
    let main_ports = free_ports(2);
    let peer_ports = free_ports(2);
    let peers = https_urls(&peer_ports).join(",");
    let mut nodes = Vec::new();
    for (&port, &peer_port) in main_ports.iter().zip(&peer_ports) {
        let mut args = vec![
            "--peers".into(),
            peers.clone(),
            "--group".into(),
            format!("g={}", origin.template()),
        ];
        args.extend(gc_mtls_args(pki, &server));
        nodes.push(GcNode::start_with_peer_port(port, peer_port, &args).await);
    }
    let reply = nodes[0].get("/peers").await;
    let listed: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        listed["self"],
        format!("https://127.0.0.1:{}", peer_ports[0])
    );

    // The main listener answers users only.
    let reply = nodes[0].get("/_groupcache/g/k").await;
    assert_eq!(reply.status, 404);
    // The peer listener answers peers only, and only with a certificate:
    // without one the handshake fails.
    let peer_url = format!("https://127.0.0.1:{}", peer_ports[0]);
    let reply = http_get(&format!("{peer_url}/_groupcache/g/direct")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        http_get(&format!("{peer_url}/cache/g/direct")).await.status,
        404
    );
    let anonymous = https_client(pki.client_config(None));
    let refused = request_with(&anonymous, "GET", &format!("{peer_url}/_groupcache/g/k")).await;
    assert!(refused.is_err(), "{refused:?}");

    // Users of either node get every key, each loaded once, through the
    // peer listeners.
    let keys: Vec<String> = (0..60).map(|i| format!("key-{i}")).collect();
    for node in &nodes {
        for key in &keys {
            let reply = node.get(&format!("/cache/g/{key}")).await;
            assert_eq!(reply.status, 200, "{key}");
            assert_eq!(reply.body, value_of(key.as_bytes()));
        }
    }
    assert_eq!(origin.repeated(), vec![]);
    for node in &nodes {
        let stats = node.stats().await;
        assert!(stat(&stats, "g", "PeerLoads") > 0, "{stats}");
        assert_eq!(stat(&stats, "g", "PeerErrors"), 0, "{stats}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_certificate_is_served_without_a_failed_request() {
    let pki = Pki::shared();
    let server = pki.issue("rotating");
    let [port] = free_ports(1)[..] else {
        unreachable!()
    };
    let mut args = vec!["--group".into(), "g=echo".into()];
    args.extend(server.args("--tls-cert", "--tls-key"));
    let node = GcNode::start(port, &args).await;
    assert_eq!(served_cert(node.addr, pki).await.unwrap(), server.der);

    // Requests on a kept-alive connection and on new connections run
    // throughout the rotation; none may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for fresh in [false, true] {
        let (stop, done, failed, url) =
            (stop.clone(), done.clone(), failed.clone(), node.url.clone());
        load.push(tokio::spawn(async move {
            let kept = https_client(Pki::shared().client_config(None));
            while !stop.load(SeqCst) {
                let fresh_client;
                let client = if fresh {
                    fresh_client = https_client(Pki::shared().client_config(None));
                    &fresh_client
                } else {
                    &kept
                };
                match request_with(client, "GET", &format!("{url}/cache/g/k")).await {
                    Ok(reply) if reply.status == 200 => done.fetch_add(1, SeqCst),
                    _ => failed.fetch_add(1, SeqCst),
                };
            }
        }));
    }
    poll_until(Duration::from_secs(10), || done.load(SeqCst) > 20).await;
    let rotated = pki.write(&server.cert, &server.key);
    eventually(Duration::from_secs(10), "the new certificate", || async {
        (served_cert(node.addr, pki).await.unwrap() == rotated).then_some(())
    })
    .await;
    let before = done.load(SeqCst);
    poll_until(Duration::from_secs(10), || done.load(SeqCst) > before + 20).await;
    stop.store(true, SeqCst);
    for task in load {
        task.await.unwrap();
    }
    assert_eq!(failed.load(SeqCst), 0, "requests failed during rotation");

    // A half-written pair (a key that does not fit the certificate) is
    // not loaded: the rotated certificate stays.
    std::fs::write(
        &server.key,
        std::fs::read(&Pki::shared_client().key).unwrap(),
    )
    .unwrap();
    node.proc.signal("HUP");
    assert_eq!(http_get(&format!("{}/healthz", node.url)).await.status, 200);
    assert_eq!(served_cert(node.addr, pki).await.unwrap(), rotated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_origins_are_verified() {
    let origin_pki = Pki::new("origin");
    let origin = Origin::start_tls(&origin_pki, &origin_pki.issue("origin")).await;
    assert!(origin.url.starts_with("https://"));
    let ports = free_ports(2);
    let group = format!("g={}", origin.template());
    let trusting = GcNode::start(
        ports[0],
        &[
            "--group".into(),
            group.clone(),
            "--origin-ca".into(),
            origin_pki.ca.display().to_string(),
        ],
    )
    .await;
    let reply = trusting.get("/cache/g/hello").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, value_of(b"hello"));

    // Trusting another CA only: 502 with a one-line reason.
    let other = GcNode::start(
        ports[1],
        &[
            "--group".into(),
            group,
            "--origin-ca".into(),
            Pki::shared().ca.display().to_string(),
        ],
    )
    .await;
    let reply = other.get("/cache/g/hello").await;
    assert_eq!(reply.status, 502);
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    assert_eq!(text.lines().count(), 1, "{text:?}");
    assert!(text.contains("certificate"), "{text:?}");
    assert_eq!(origin.hits(b"hello"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_peer_listener_is_the_default_self() {
    let origin = Origin::start().await;
    let (main_ports, peer_ports) = (free_ports(2), free_ports(2));
    let peers = peer_list(&peer_ports);
    let mut nodes = Vec::new();
    for (&port, &peer_port) in main_ports.iter().zip(&peer_ports) {
        let args = [
            "--peers".into(),
            peers.clone(),
            "--group".into(),
            format!("g={}", origin.template()),
        ];
        nodes.push(GcNode::start_with_peer_port(port, peer_port, &args).await);
    }
    let reply = nodes[1].get("/peers").await;
    let listed: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        listed["self"],
        format!("http://127.0.0.1:{}", peer_ports[1])
    );
    assert_eq!(nodes[1].get("/_groupcache/g/k").await.status, 404);
    for key in (0..40).map(|i| format!("key-{i}")) {
        let reply = nodes[0].get(&format!("/cache/g/{key}")).await;
        assert_eq!(reply.body, value_of(key.as_bytes()));
    }
    assert_eq!(origin.distinct_keys(), 40);
    assert_eq!(origin.repeated(), vec![]);
    let stats = nodes[0].stats().await;
    assert!(stat(&stats, "g", "PeerLoads") > 0, "{stats}");
    assert_eq!(stat(&stats, "g", "PeerErrors"), 0, "{stats}");
}
