//! Peer discovery through a real DNS server (dnsmasq on a loopback port):
//! groupcached nodes started with `--peers-dns` (A records, one address
//! each on 127.0.0.2-5 and one port) or `--peers-srv` (SRV records, one
//! address and a port each) agree on the ring and load each key once,
//! follow records removed and added within two intervals, keep their list
//! through a DNS outage under load and through bad answers (NXDOMAIN, an
//! empty answer, a huge answer, an SRV port 0), and refuse a second source
//! of peers with exit status 2. A Go node given the same list by hand
//! agrees on every key's owner.
//!
//! A records change by rewriting dnsmasq's hosts file and SIGHUP; SRV
//! records live in its configuration, which dnsmasq reads only at start,
//! so changing them restarts it on the same port (`Dnsmasq::set_conf`).
// These tests start the `groupcached` binary.
#![cfg(feature = "binary")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::dns::*;
use common::etcd::{await_peers_where, get_ok, peer_list_of, peers_of, sorted_urls, url_of};
use common::*;
use groupcached::consistenthash::{Ring, DEFAULT_REPLICAS};

/// The name of the pool's A records.
const NAME: &str = "gc.test";
/// The name of the pool's SRV records, and the host they point at.
const SRV_NAME: &str = "_gc._tcp.gc.test";
const SRV_TARGET: &str = "node.test";
/// The loopback addresses DNS gives nodes at; the first three start.
const ADDRESSES: [&str; 4] = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"];
/// `--dns-interval` of every node here.
const INTERVAL: Duration = Duration::from_secs(1);
/// How soon every node must agree after starting or after DNS recovers: a
/// round or two, and slack for a loaded machine.
const PROMPTLY: Duration = Duration::from_secs(5);

/// `http://IP:PORT` for each of `ips`, sorted: the list every node shows.
fn urls_on(ips: &[&str], port: u16) -> Vec<String> {
    let mut urls: Vec<String> = ips.iter().map(|ip| format!("http://{ip}:{port}")).collect();
    urls.sort();
    urls
}

/// Polls every node's `/peers` until each one's `peers` is `want` and its
/// `dns.last_outcome` starts with `outcome`; how long that took.
async fn await_dns(
    nodes: &[&GcNode],
    want: &[String],
    outcome: &str,
    within: Duration,
) -> Duration {
    let what = format!("after a DNS answer {outcome:?}");
    await_peers_where(nodes, want, &what, within, |p| {
        p["source"] == "dns"
            && p["dns"]["last_outcome"]
                .as_str()
                .is_some_and(|o| o.starts_with(outcome))
    })
    .await
}

/// GETs 60 keys through every node: each is loaded once, by its owner on
/// the ring of `peers`.
async fn each_key_loaded_once_by_its_owner(nodes: &[GcNode], peers: &[String], origin: &Origin) {
    let ring = Ring::new(DEFAULT_REPLICAS, peers);
    let keys: Vec<String> = (0..60).map(|i| format!("key-{i}")).collect();
    for key in &keys {
        for node in nodes {
            get_ok(node, key).await;
        }
    }
    assert_eq!(origin.repeated(), vec![], "keys loaded more than once");
    assert_eq!(origin.total_hits(), keys.len());
    for node in nodes {
        let owned = keys
            .iter()
            .filter(|k| ring.get(k.as_bytes()) == Some(node.url.as_str()))
            .count();
        let stats = node.stats().await;
        assert!(owned > 0, "{} owns no key of 60", node.url);
        assert_eq!(
            stat(&stats, "g", "LocalLoads"),
            owned as u64,
            "{}: origin loads",
            node.url
        );
    }
}

/// dnsmasq options giving [`SRV_NAME`] one record per port, all on
/// [`SRV_TARGET`].
fn srv_records(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|p| format!("srv-host={SRV_NAME},{SRV_TARGET},{p}\n"))
        .collect()
}

/// Three nodes on 127.0.0.2-4 and one port, and dnsmasq giving `NAME`
/// their addresses.
async fn a_record_pool(origin: &Origin) -> (Dnsmasq, Vec<GcNode>, Vec<String>) {
    let (port, listeners) = same_port_on(&ADDRESSES[..3]);
    let dnsmasq = Dnsmasq::start_new(&hosts_file(NAME, &ADDRESSES[..3]), "").await;
    let args = dns_args("--peers-dns", NAME, &dnsmasq, INTERVAL, origin);
    let nodes = start_nodes_on(listeners, &args).await;
    let want = urls_on(&ADDRESSES[..3], port);
    let all: Vec<&GcNode> = nodes.iter().collect();
    await_dns(&all, &want, "ok", PROMPTLY).await;
    (dnsmasq, nodes, want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_given_by_a_records_agree_and_load_each_key_once() {
    let origin = Origin::start().await;
    let (dnsmasq, nodes, want) = a_record_pool(&origin).await;
    for node in &nodes {
        let peers = peers_of(node).await;
        assert_eq!(peers["self"], node.url.as_str());
        let dns = &peers["dns"];
        assert_eq!(dns["record_type"], "A/AAAA", "{peers}");
        assert_eq!(dns["name"], NAME, "{peers}");
        assert_eq!(dns["server"], dnsmasq.server().as_str(), "{peers}");
        assert_eq!(dns["interval_ms"], 1000, "{peers}");
        assert_eq!(dns["ok"], true, "{peers}");
        assert_eq!(dns["last_outcome"], "ok: 3 peers in the answer", "{peers}");
        assert!(
            dns["last_resolved_unix_ms"].as_u64().unwrap() > 0,
            "{peers}"
        );
        assert!(dns["last_error"].is_null(), "{peers}");
        let status: serde_json::Value =
            serde_json::from_slice(&node.get("/status").await.body).expect("/status JSON");
        assert_eq!(status["source"], "dns");
        assert_eq!(status["dns"]["name"], NAME, "{status}");
    }
    each_key_loaded_once_by_its_owner(&nodes, &want, &origin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_given_by_srv_records_agree_and_refuse_port_0() {
    let origin = Origin::start().await;
    let ports = free_ports(3);
    let srv = srv_records;
    let mut dnsmasq =
        Dnsmasq::start_new(&hosts_file(SRV_TARGET, &["127.0.0.1"]), &srv(&ports)).await;
    let args = dns_args("--peers-srv", SRV_NAME, &dnsmasq, INTERVAL, &origin);
    let mut nodes = Vec::new();
    for &port in &ports {
        nodes.push(GcNode::start(port, &args).await);
    }
    let all: Vec<&GcNode> = nodes.iter().collect();
    let want = sorted_urls(&ports);
    await_dns(&all, &want, "ok: 3 peers", PROMPTLY).await;
    assert_eq!(peers_of(&nodes[0]).await["dns"]["record_type"], "SRV");
    each_key_loaded_once_by_its_owner(&nodes, &want, &origin).await;

    // One record more, with port 0: the whole answer is refused.
    let bad = format!("{}srv-host={SRV_NAME},{SRV_TARGET},0\n", srv(&ports));
    dnsmasq.set_conf(&bad).await;
    let refused = format!("refused: an SRV record for {SRV_TARGET}. has port 0");
    await_dns(&all, &want, &refused, PROMPTLY).await;
    dnsmasq.set_conf(&srv(&ports)).await;
    await_dns(&all, &want, "ok: 3 peers", PROMPTLY).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_record_is_dropped_within_two_intervals_and_an_added_one_joins() {
    let origin = Origin::start().await;
    let (port, mut listeners) = same_port_on(&ADDRESSES);
    let fourth = listeners.pop().expect("four listeners");
    let dnsmasq = Dnsmasq::start_new(&hosts_file(NAME, &ADDRESSES[..3]), "").await;
    let args = dns_args("--peers-dns", NAME, &dnsmasq, INTERVAL, &origin);
    let mut nodes = start_nodes_on(listeners, &args).await;
    let all: Vec<&GcNode> = nodes.iter().collect();
    await_dns(&all, &urls_on(&ADDRESSES[..3], port), "ok", PROMPTLY).await;

    // 127.0.0.4 leaves DNS (a pod no longer ready): the others drop it,
    // and it keeps itself in its own list.
    let two = [ADDRESSES[0], ADDRESSES[1]];
    dnsmasq.set_hosts(&hosts_file(NAME, &two)).await;
    let took = await_dns(&all[..2], &urls_on(&two, port), "ok: 2", 2 * INTERVAL).await;
    eprintln!("removed record dropped after {took:?} (--dns-interval {INTERVAL:?})");
    let own = urls_on(&ADDRESSES[..3], port);
    await_dns(&all[2..], &own, "ok: 2", 2 * INTERVAL).await;

    // A node on 127.0.0.5 starts, then DNS has it and 127.0.0.4 again.
    nodes.push(GcNode::start_on_listener(fourth, &args).await);
    dnsmasq.set_hosts(&hosts_file(NAME, &ADDRESSES)).await;
    let all: Vec<&GcNode> = nodes.iter().collect();
    let four = urls_on(&ADDRESSES, port);
    let took = await_dns(&all, &four, "ok: 4", 2 * INTERVAL).await;
    eprintln!("added records joined after {took:?}");
    each_key_loaded_once_by_its_owner(&nodes, &four, &origin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_outage_under_load_fails_no_get_and_keeps_the_list() {
    let origin = Origin::start().await;
    let (mut dnsmasq, nodes, want) = a_record_pool(&origin).await;
    let nodes = Arc::new(nodes);

    // 20 loops GET keys across the nodes for the whole 10 s outage.
    dnsmasq.stop().await;
    let outage = Duration::from_secs(10);
    let load = ReadLoad::start(nodes.clone(), outage);
    // Meanwhile /peers says DNS does not answer, with the last list.
    let all: Vec<&GcNode> = nodes.iter().collect();
    let took = await_dns(&all, &want, "the server did not answer", PROMPTLY).await;
    eprintln!("nodes noticed the outage after {took:?}");
    load.finish_without_failures().await;
    assert_eq!(origin.repeated(), vec![], "keys loaded more than once");
    for node in nodes.iter() {
        let peers = peers_of(node).await;
        assert_eq!(peer_list_of(&peers), want, "{peers}");
        assert_eq!(peers["dns"]["ok"], false, "{peers}");
    }

    dnsmasq.start().await;
    let took = await_dns(&all, &want, "ok: 3", PROMPTLY).await;
    eprintln!("DNS answered again {took:?} after its restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_answers_keep_the_last_list() {
    let origin = Origin::start().await;
    let (mut dnsmasq, nodes, want) = a_record_pool(&origin).await;
    let all: Vec<&GcNode> = nodes.iter().collect();

    // NXDOMAIN: no record of any type for the name.
    dnsmasq.set_hosts("").await;
    await_dns(&all, &want, "NXDOMAIN", PROMPTLY).await;

    // 1,500 addresses: more than anyone runs in one pool.
    let huge: Vec<String> = (0..1500)
        .map(|i| format!("127.1.{}.{}", i / 250, i % 250 + 1))
        .collect();
    let huge: Vec<&str> = huge.iter().map(String::as_str).collect();
    dnsmasq.set_hosts(&hosts_file(NAME, &huge)).await;
    await_dns(&all, &want, "refused: 1500 records", PROMPTLY).await;

    // An empty answer: the name exists (a TXT record) but has no address.
    dnsmasq.set_hosts("").await;
    dnsmasq
        .set_conf(&format!("txt-record={NAME},\"pool\"\n"))
        .await;
    await_dns(&all, &want, "the answer is empty", PROMPTLY).await;

    // A good answer again, with one address less: followed at once.
    let two = &ADDRESSES[..2];
    dnsmasq.set_hosts(&hosts_file(NAME, two)).await;
    let port = nodes[0].addr.port();
    await_dns(&all[..2], &urls_on(two, port), "ok: 2", PROMPTLY).await;
}

/// A Go groupcache node given the same list by hand (as a Go DNS provider
/// that sorts the answer and adds itself would) shares the ring of nodes
/// that read it from SRV records: each key is loaded once, the Go node's
/// keys by the Go node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_node_fed_the_same_list_agrees_on_owners() {
    let origin = Origin::start().await;
    let ports = free_ports(4);
    let (rust_ports, go_port) = (&ports[..3], ports[3]);
    let everyone = sorted_urls(&ports);
    let go_url = url_of(go_port);
    let dnsmasq = Dnsmasq::start_new(
        &hosts_file(SRV_TARGET, &["127.0.0.1"]),
        &srv_records(&ports),
    )
    .await;
    let go_args = [
        "-self".into(),
        go_url.clone(),
        "-peers".into(),
        everyone.join(","),
        "-group".into(),
        format!("g={}", origin.template()),
    ];
    let go = GoNode::start(go_port, &go_args).await;
    let args = dns_args("--peers-srv", SRV_NAME, &dnsmasq, INTERVAL, &origin);
    let mut nodes = Vec::new();
    for &port in rust_ports {
        nodes.push(GcNode::start(port, &args).await);
    }
    let rust: Vec<&GcNode> = nodes.iter().collect();
    await_dns(&rust, &everyone, "ok: 4 peers", PROMPTLY).await;

    go_keys_are_loaded_once_by_go(&nodes, &go, &everyone, &origin).await;
}

#[test]
fn a_second_source_of_peers_exits_2_with_one_line() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--peers-dns", NAME, "--peers-srv", SRV_NAME],
            "--peers-dns and --peers-srv cannot be used together",
        ),
        (
            &["--peers", "http://127.0.0.1:1", "--peers-dns", NAME],
            "--peers and --peers-dns cannot be used together",
        ),
        (
            &["--etcd", "http://127.0.0.1:2379", "--peers-srv", SRV_NAME],
            "--etcd and --peers-srv cannot be used together",
        ),
        (
            &["--dns-server", "127.0.0.1:53"],
            "--dns-server needs --peers-dns or --peers-srv",
        ),
        (&["--peers-dns", "gc.test:0"], "--peers-dns \"gc.test:0\""),
        (
            &["--peers-dns", NAME, "--dns-interval", "10ms"],
            "--dns-interval",
        ),
    ];
    assert_bad_flags(cases);
}
