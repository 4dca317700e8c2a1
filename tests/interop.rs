//! groupcached next to real golang/groupcache nodes (`tests/gopeer`, built by
//! `scripts/build-gopeer`), all on loopback: the two agree on the ring,
//! fetch from each other byte-exactly, share a cluster without double loads
//! or bounces, answer bad peer requests identically, and groupcached keeps
//! serving when a Go owner dies.
// These tests start the `groupcached` binary.
#![cfg(feature = "binary")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use groupcached::consistenthash::{Ring, DEFAULT_REPLICAS};

/// splitmix64: a tiny deterministic PRNG, so every run uses the same keys.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn urls(ports: &[u16]) -> Vec<String> {
    ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect()
}

fn url_of(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// What golang's client does to a key on the wire, as the owner sees it:
/// `url.QueryEscape` sends a space as `+`, the server decodes the path only,
/// so the owner loads the key with every space replaced by `+`.
fn go_mangled(key: &[u8]) -> Vec<u8> {
    key.iter()
        .map(|&b| if b == b' ' { b'+' } else { b })
        .collect()
}

/// The test origin's value for `key` (1 MiB for keys starting with `big`).
fn origin_value(key: &[u8]) -> Vec<u8> {
    if key.starts_with(b"big") {
        big_value(key)
    } else {
        value_of(key)
    }
}

fn gc_args(peers: &[String], groups: &[(&str, &Origin)], extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--peers".to_string(), peers.join(",")];
    for (name, origin) in groups {
        args.push("--group".into());
        args.push(format!("{name}={}", origin.template()));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn go_args(peers: &[String], groups: &[(&str, &Origin)]) -> Vec<String> {
    let mut args = vec!["-peers".to_string(), peers.join(",")];
    for (name, origin) in groups {
        args.push("-group".into());
        args.push(format!("{name}={}", origin.template()));
    }
    args
}

/// A `GetResponse` body without its `minute_qps` field (2), and whether it
/// had one right after the value, where groupcached puts it.
fn without_minute_qps(body: &[u8]) -> (Vec<u8>, bool) {
    let Some((&0x0a, rest)) = body.split_first() else {
        return (body.to_vec(), false);
    };
    let (mut len, mut shift, mut at) = (0usize, 0, 0);
    while let Some(&b) = rest.get(at) {
        len |= usize::from(b & 0x7f) << shift;
        at += 1;
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    let end = 1 + at + len;
    match body.get(end..end + 9) {
        Some(field) if field[0] == 0x11 => {
            let mut stripped = body[..end].to_vec();
            stripped.extend_from_slice(&body[end + 9..]);
            (stripped, true)
        }
        _ => (body.to_vec(), false),
    }
}

fn show(key: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(key))
}

/// A reply body for a message: its length and start, as text.
fn preview(body: &[u8]) -> String {
    format!(
        "{} bytes: {}",
        body.len(),
        show(&body[..body.len().min(60)])
    )
}

// ---------------------------------------------------------------------------
// 1. Ring agreement

/// 10,001 keys: the empty key, then random bytes (mostly not UTF-8),
/// ASCII and unicode text.
fn ring_keys() -> Vec<Vec<u8>> {
    let mut rng = Rng(42);
    let mut keys = vec![Vec::new()];
    for i in 0..10_000 {
        let key = match i % 4 {
            0 | 1 => {
                let len = rng.below(33);
                (0..len).map(|_| rng.next() as u8).collect()
            }
            2 => format!("key-{}", rng.next() % 1_000_000).into_bytes(),
            _ => format!("ünïcødé ✓ {i}/{}", rng.below(1000)).into_bytes(),
        };
        keys.push(key);
    }
    assert!(keys.iter().any(|k| std::str::from_utf8(k).is_err()));
    keys
}

/// Every replica string of `peers` (`{i}{peer}`): keys that hash exactly
/// onto a ring point, where an off-by-one in the search would show.
fn replica_strings(peers: &[String], replicas: usize) -> Vec<Vec<u8>> {
    peers
        .iter()
        .flat_map(|peer| (0..replicas).map(move |i| format!("{i}{peer}").into_bytes()))
        .collect()
}

/// Compares groupcached's owners with golang's; returns golang's owners.
fn assert_same_owners(peers: &[String], replicas: usize, keys: &[Vec<u8>]) -> Vec<String> {
    let go = go_ring_owners(peers, replicas, keys);
    let ring = Ring::new(replicas, peers);
    let mismatches: Vec<String> = keys
        .iter()
        .zip(&go)
        .filter(|(key, go_owner)| ring.get(key) != Some(go_owner.as_str()))
        .map(|(key, go_owner)| format!("{}: go {go_owner}, rust {:?}", show(key), ring.get(key)))
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} owners differ from golang's ({} peers, {replicas} replicas), e.g. {:?}",
        mismatches.len(),
        keys.len(),
        peers.len(),
        &mismatches[..mismatches.len().min(5)]
    );
    go
}

#[test]
fn ring_owners_match_golang_for_every_key() {
    let keys = ring_keys();
    let all_peers = urls(&[8001, 8002, 18003, 9004, 40005]);
    for replicas in [1, 7, DEFAULT_REPLICAS, 160] {
        for n in [1, 2, 3, 5] {
            let peers = &all_peers[..n];
            let mut keys = keys.clone();
            keys.extend(replica_strings(peers, replicas));
            let go = assert_same_owners(peers, replicas, &keys);
            // Meaningful only if every peer owns something.
            for peer in peers {
                assert!(
                    go.contains(peer),
                    "{peer} owns no key ({replicas} replicas)"
                );
            }
        }
    }
}

/// When two peers' replica strings hash to the same point, golang gives the
/// point to the peer added last; groupcached must too, or the two would
/// disagree about every key landing on that point.
#[test]
fn ring_collisions_go_to_the_peer_added_last_as_in_golang() {
    // Found by search: replica 12 of A and replica 22 of B share a point
    // (CRC-32 being linear, peers differing only in the port never collide).
    let (a, b) = ("http://127.0.6.9:8080", "http://127.0.85.84:8080");
    let point_key = format!("12{a}").into_bytes();
    // golang's ring hashes with CRC-32 (IEEE), as crc32fast computes it.
    let crc32 = crc32fast::hash;
    assert_eq!(crc32(&point_key), 3_339_789_179);
    assert_eq!(crc32(format!("22{b}").as_bytes()), 3_339_789_179);

    let other = "http://127.0.0.1:8001";
    for peers in [[a, b, other], [b, a, other], [a, other, b], [b, other, a]] {
        let peers: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
        let mut keys = vec![point_key.clone()];
        keys.extend(ring_keys());
        keys.extend(replica_strings(&peers, DEFAULT_REPLICAS));
        let go = assert_same_owners(&peers, DEFAULT_REPLICAS, &keys);
        let last = peers.iter().rev().find(|p| *p == a || *p == b).unwrap();
        assert_eq!(
            &go[0], last,
            "golang gives a shared point to the peer added last ({peers:?})"
        );
    }
}

// ---------------------------------------------------------------------------
// 2 and 3. One node asks the other, across languages

/// Key stems that escaping can get wrong; a suffix is added to each until
/// the ring puts it where a test needs it. The empty key is added separately.
fn awkward_stems() -> Vec<Vec<u8>> {
    let mut stems: Vec<Vec<u8>> = [
        "a b",
        "two  spaces+plus",
        "x+y",
        "p/q/r",
        "/leading-slash",
        "100%",
        "what?x=1&y=2",
        "frag#ment",
        "ünïcødé ✓",
        "big",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    stems.push(vec![0xff, 0xfe, 0x00, 0x80, b'%', b'+']);
    stems
}

/// `stem` plus the first suffix `-N` for which `fits` holds.
fn find_key(stem: &[u8], fits: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    (0..100_000)
        .map(|i| {
            let mut key = stem.to_vec();
            key.extend_from_slice(format!("-{i}").as_bytes());
            key
        })
        .find(|key| fits(key))
        .unwrap_or_else(|| panic!("no key for stem {}", show(stem)))
}

/// `reply` is a 200 carrying the origin's value for `key`.
fn assert_origin_value(key: &[u8], reply: &Reply) {
    assert_eq!(
        reply.status,
        200,
        "key {}: {}",
        show(key),
        preview(&reply.body)
    );
    assert!(
        reply.body[..] == origin_value(key)[..],
        "key {}: wrong value ({})",
        show(key),
        preview(&reply.body)
    );
}

/// GETs `/cache/g/{key}` on each of `nodes` for every key, 16 in flight.
async fn fetch_all(base_urls: Vec<String>, keys: &[Vec<u8>]) -> Vec<(Vec<u8>, Vec<Reply>)> {
    bounded(16, keys.to_vec(), |key| {
        let base_urls = base_urls.clone();
        async move {
            let mut replies = Vec::new();
            for base in &base_urls {
                replies.push(http_get(&format!("{base}/cache/g/{}", esc(&key))).await);
            }
            (key, replies)
        }
    })
    .await
}

/// A Go node that does not own a key fetches it from a groupcached owner.
///
/// golang's client escapes keys with `url.QueryEscape`, which sends a space
/// as `+`; owners decode the path only, so a Go node asking for `a b` makes
/// the owner load `a+b`. That is golang's behaviour, not ours to fix: the
/// test runs the same requests in a second, all-Go cluster and asserts the
/// groupcached owner answers exactly what the Go owner answers, byte for
/// byte, and that both origins saw `a+b` and never `a b`. Keys with a space
/// are chosen so the ring also gives the `+` spelling to the owner: a Go
/// owner would otherwise forward it (groupcached never forwards peer
/// requests), which changes the stats but not the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_node_fetches_from_a_groupcached_owner() {
    let (origin_rs, origin_go) = (Origin::start().await, Origin::start().await);
    let ports = free_ports(4);
    // Cluster R: a Go asker and a groupcached owner. Cluster G: a Go asker
    // and a Go owner. In each, the owner is the node owning the empty key.
    let (peers_r, peers_g) = (urls(&ports[..2]), urls(&ports[2..]));
    let (ring_r, ring_g) = (
        Ring::new(DEFAULT_REPLICAS, &peers_r),
        Ring::new(DEFAULT_REPLICAS, &peers_g),
    );
    let owner_r = ring_r.get(b"").unwrap().to_string();
    let owner_g = ring_g.get(b"").unwrap().to_string();
    let port_of = |url: &str| url.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let asker_r = if owner_r == peers_r[0] {
        ports[1]
    } else {
        ports[0]
    };
    let asker_g = if owner_g == peers_g[0] {
        ports[3]
    } else {
        ports[2]
    };

    let mut keys = vec![Vec::new()];
    for stem in awkward_stems() {
        keys.push(find_key(&stem, |key| {
            let mangled = go_mangled(key);
            [key, &mangled[..]].iter().all(|k| {
                ring_r.get(k) == Some(owner_r.as_str()) && ring_g.get(k) == Some(owner_g.as_str())
            })
        }));
    }
    let n = keys.len() as u64;

    let rust_owner = GcNode::start(
        port_of(&owner_r),
        &gc_args(&peers_r, &[("g", &origin_rs)], &[]),
    )
    .await;
    let go_asker_r = GoNode::start(asker_r, &go_args(&peers_r, &[("g", &origin_rs)])).await;
    let go_owner = GoNode::start(port_of(&owner_g), &go_args(&peers_g, &[("g", &origin_go)])).await;
    let go_asker_g = GoNode::start(asker_g, &go_args(&peers_g, &[("g", &origin_go)])).await;

    let fetched = fetch_all(vec![go_asker_r.url.clone(), go_asker_g.url.clone()], &keys).await;
    for (key, replies) in &fetched {
        let (via_rust, via_go) = (&replies[0], &replies[1]);
        assert_eq!(via_go.status, 200, "all-Go cluster, key {}", show(key));
        assert_eq!(
            via_rust.status,
            200,
            "key {}: {}",
            show(key),
            preview(&via_rust.body)
        );
        assert!(
            via_rust.body == via_go.body,
            "key {}: a Go node got different bytes from a groupcached owner ({} bytes) \
             than from a Go owner ({} bytes)",
            show(key),
            via_rust.body.len(),
            via_go.body.len()
        );
        let loaded = go_mangled(key);
        assert!(
            via_rust.body[..] == origin_value(&loaded)[..],
            "key {}: wrong value ({})",
            show(key),
            preview(&via_rust.body)
        );
        for (origin, which) in [(&origin_rs, "groupcached"), (&origin_go, "Go")] {
            assert_eq!(
                origin.hits(&loaded),
                1,
                "{which} owner, key {}",
                show(&loaded)
            );
            if loaded != *key {
                assert_eq!(origin.hits(key), 0, "{which} owner loaded {}", show(key));
            }
        }
    }
    assert!(fetched.iter().any(|(key, _)| key.contains(&b' ')));
    assert!(fetched
        .iter()
        .any(|(key, replies)| key.starts_with(b"big") && replies[0].body.len() == 1 << 20));

    // Every key went asker → owner over the peer protocol, once.
    let rust_stats = rust_owner.stats().await;
    let asker_stats = go_asker_r.stats().await;
    assert_eq!(stat(&rust_stats, "g", "ServerRequests"), n, "{rust_stats}");
    assert_eq!(stat(&rust_stats, "g", "LocalLoads"), n, "{rust_stats}");
    assert_eq!(stat(&asker_stats, "g", "PeerLoads"), n, "{asker_stats}");
    assert_eq!(stat(&asker_stats, "g", "PeerErrors"), 0, "{asker_stats}");
    assert_eq!(stat(&asker_stats, "g", "LocalLoads"), 0, "{asker_stats}");
    // And the all-Go cluster counted the same.
    let go_owner_stats = go_owner.stats().await;
    assert_eq!(stat(&go_owner_stats, "g", "ServerRequests"), n);
    assert_eq!(stat(&go_owner_stats, "g", "LocalLoads"), n);
    assert_eq!(stat(&go_asker_g.stats().await, "g", "PeerLoads"), n);
}

/// A groupcached node that does not own a key fetches it from a Go owner.
/// groupcached escapes a space as `%20`, so every key, spaces included,
/// reaches the Go owner (and its origin) exactly as the user asked for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groupcached_fetches_from_a_go_owner() {
    let origin = Origin::start().await;
    let ports = free_ports(2);
    let peers = urls(&ports);
    let ring = Ring::new(DEFAULT_REPLICAS, &peers);
    // The Go node is whichever port owns the empty key.
    let (go_port, rust_port) = if ring.get(b"") == Some(peers[0].as_str()) {
        (ports[0], ports[1])
    } else {
        (ports[1], ports[0])
    };
    let go_url = url_of(go_port);
    let mut keys = vec![Vec::new()];
    for stem in awkward_stems() {
        keys.push(find_key(&stem, |key| {
            ring.get(key) == Some(go_url.as_str())
        }));
    }
    let n = keys.len() as u64;

    let go_owner = GoNode::start(go_port, &go_args(&peers, &[("g", &origin)])).await;
    let rust_asker = GcNode::start(rust_port, &gc_args(&peers, &[("g", &origin)], &[])).await;

    for (key, replies) in fetch_all(vec![rust_asker.url.clone()], &keys).await {
        assert_origin_value(&key, &replies[0]);
        assert_eq!(origin.hits(&key), 1, "the Go owner loaded {}", show(&key));
        if key.contains(&b' ') {
            assert_eq!(
                origin.hits(&go_mangled(&key)),
                0,
                "key {} mangled",
                show(&key)
            );
        }
    }
    assert_eq!(origin.total_hits() as u64, n);

    let go_stats = go_owner.stats().await;
    let rust_stats = rust_asker.stats().await;
    assert_eq!(stat(&go_stats, "g", "ServerRequests"), n, "{go_stats}");
    assert_eq!(stat(&go_stats, "g", "LocalLoads"), n, "{go_stats}");
    assert_eq!(stat(&rust_stats, "g", "PeerLoads"), n, "{rust_stats}");
    assert_eq!(stat(&rust_stats, "g", "PeerErrors"), 0, "{rust_stats}");
    assert_eq!(stat(&rust_stats, "g", "LocalLoads"), 0, "{rust_stats}");
}

/// A Go owner whose pool is served through an `http.ServeMux` (as
/// `NewHTTPPool` mounts it) answers `301` to a peer request whose decoded
/// path cleaning changes, such as a key with a leading `/` or with `//`.
/// groupcached does what golang's client does: it does not follow the
/// redirect (the owner never sees the cleaned key), counts a peer error and
/// loads the key itself, so the user still gets the right value. Other keys
/// are fetched from the owner as usual. (Keys with `.` or `..` segments are
/// redirected too, but the local load that follows is then refused with 400
/// by groupcached's HTTP origin, which would resolve them into another path.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groupcached_loads_a_key_itself_when_a_go_owner_redirects() {
    let origin = Origin::start().await;
    let ports = free_ports(2);
    let peers = urls(&ports);
    let ring = Ring::new(DEFAULT_REPLICAS, &peers);
    let (go_port, rust_port) = (ports[0], ports[1]);
    let go_url = url_of(go_port);
    let owned_by_go = |stem: &str| {
        find_key(stem.as_bytes(), |key| {
            ring.get(key) == Some(go_url.as_str())
        })
    };
    let redirected: Vec<Vec<u8>> = ["/lead", "a//b", "//"]
        .into_iter()
        .map(owned_by_go)
        .collect();
    let plain = owned_by_go("plain/key");

    let mut args = go_args(&peers, &[("g", &origin)]);
    args.push("-serve-mux".into());
    let go_owner = GoNode::start(go_port, &args).await;
    let rust_asker = GcNode::start(rust_port, &gc_args(&peers, &[("g", &origin)], &[])).await;

    let mut keys = redirected.clone();
    keys.push(plain.clone());
    for (key, replies) in fetch_all(vec![rust_asker.url.clone()], &keys).await {
        assert_origin_value(&key, &replies[0]);
        assert_eq!(origin.hits(&key), 1, "origin loads of {}", show(&key));
    }
    assert_eq!(origin.total_hits(), keys.len(), "no cleaned key was loaded");

    let go_stats = go_owner.stats().await;
    let rust_stats = rust_asker.stats().await;
    // Only the plain key got past the mux to the pool.
    assert_eq!(stat(&go_stats, "g", "ServerRequests"), 1, "{go_stats}");
    assert_eq!(stat(&go_stats, "g", "LocalLoads"), 1, "{go_stats}");
    assert_eq!(stat(&rust_stats, "g", "PeerLoads"), 1, "{rust_stats}");
    assert_eq!(stat(&rust_stats, "g", "PeerErrors"), 3, "{rust_stats}");
    assert_eq!(stat(&rust_stats, "g", "LocalLoads"), 3, "{rust_stats}");
}

// ---------------------------------------------------------------------------
// 4. A mixed cluster

/// 2,000 keys without spaces (golang's `+` quirk would make a space key
/// loaded through a Go node differ from the same key loaded through
/// groupcached): ASCII, `+`, slashes (also leading), `%`, `?`, `#`,
/// unicode and non-UTF-8 bytes. The first half is asked for in group `g`,
/// the second in `h`.
fn mixed_keys() -> Vec<Vec<u8>> {
    (0..2000u32)
        .map(|i| match i % 8 {
            0 | 1 => format!("key-{i}").into_bytes(),
            2 => format!("plus+{i}+x").into_bytes(),
            3 => format!("sl/ash/{i}/").into_bytes(),
            4 => format!("/lead{i}").into_bytes(),
            5 => format!("ünïcødé-✓-{i}").into_bytes(),
            6 => {
                let mut k = vec![0xff, 0x00, 0x80, b'%'];
                k.extend_from_slice(&i.to_be_bytes());
                k
            }
            _ => format!("q?{i}&x=%#f").into_bytes(),
        })
        .collect()
}

/// Two Go and two groupcached nodes with one peer list and two groups (each
/// on its own origin): every key is loaded exactly once, by its owner,
/// whichever front end it is asked through, and no fetch fails or bounces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_cluster_loads_every_key_once_by_its_owner() {
    let (origin_g, origin_h) = (Origin::start().await, Origin::start().await);
    let groups = [("g", &origin_g), ("h", &origin_h)];
    let ports = free_ports(4);
    let peers = urls(&ports);
    // List order: Go, groupcached, Go, groupcached.
    let go_a = GoNode::start(ports[0], &go_args(&peers, &groups)).await;
    let rs_a = GcNode::start(ports[1], &gc_args(&peers, &groups, &[])).await;
    let go_b = GoNode::start(ports[2], &go_args(&peers, &groups)).await;
    let rs_b = GcNode::start(ports[3], &gc_args(&peers, &groups, &[])).await;
    let fronts = [&go_a.url, &rs_a.url, &go_b.url, &rs_b.url];

    let keys = mixed_keys();
    let (keys_g, keys_h) = keys.split_at(keys.len() / 2);
    let by_group = [("g", keys_g), ("h", keys_h)];
    // Every (front end, group, key), shuffled so the same cold key is often
    // asked through several front ends at once.
    let mut requests = Vec::new();
    for front in fronts {
        for (group, keys) in by_group {
            for key in keys {
                requests.push((front.to_string(), group, key.clone()));
            }
        }
    }
    let mut rng = Rng(7);
    for i in (1..requests.len()).rev() {
        requests.swap(i, rng.below(i + 1));
    }
    let replies = bounded(32, requests, |(front, group, key)| async move {
        let reply = http_get(&format!("{front}/cache/{group}/{}", esc(&key))).await;
        (front, group, key, reply)
    })
    .await;
    for (front, group, key, reply) in &replies {
        assert!(
            reply.status == 200 && reply.body == value_of(key),
            "{front}/cache/{group}/{}: {} {}",
            esc(key),
            reply.status,
            preview(&reply.body)
        );
    }

    for ((group, keys), origin) in by_group.iter().zip([&origin_g, &origin_h]) {
        assert_eq!(
            origin.repeated(),
            vec![],
            "group {group}: keys loaded twice"
        );
        assert_eq!(origin.distinct_keys(), keys.len(), "group {group}");
        assert_eq!(origin.total_hits(), keys.len(), "group {group}");
    }
    // Each node loaded exactly the keys the ring gives it: nothing was
    // loaded by a non-owner (a failed or bounced fetch would do that).
    let ring = Ring::new(DEFAULT_REPLICAS, &peers);
    let stats = [
        go_a.stats().await,
        rs_a.stats().await,
        go_b.stats().await,
        rs_b.stats().await,
    ];
    for (group, keys) in by_group {
        let (mut served, mut fetched, mut loaded) = (0, 0, 0);
        for (peer, stats) in peers.iter().zip(&stats) {
            let owned = keys
                .iter()
                .filter(|k| ring.get(k) == Some(peer.as_str()))
                .count() as u64;
            assert!(owned > 0, "{peer} owns no key of group {group}");
            assert_eq!(stat(stats, group, "PeerErrors"), 0, "{peer}: {stats}");
            assert_eq!(stat(stats, group, "LocalLoadErrs"), 0, "{peer}: {stats}");
            assert_eq!(stat(stats, group, "LocalLoads"), owned, "{peer}: {stats}");
            assert!(stat(stats, group, "ServerRequests") > 0, "{peer}: {stats}");
            served += stat(stats, group, "ServerRequests");
            fetched += stat(stats, group, "PeerLoads");
            loaded += stat(stats, group, "LocalLoads");
        }
        assert_eq!(
            loaded,
            keys.len() as u64,
            "group {group}: LocalLoads summed"
        );
        assert_eq!(
            served, fetched,
            "group {group}: peer requests served vs fetched"
        );
    }
}

// ---------------------------------------------------------------------------
// 5. Error parity on the peer path

/// The same raw peer requests to a Go node and a groupcached node (each
/// alone in its cluster, on one origin) get the same status, body and
/// headers. Only origin-status getter errors are used: transport error
/// texts differ between Go and Rust.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_path_errors_match_golang() {
    let origin = Origin::start().await;
    let ports = free_ports(2);
    let go = GoNode::start(ports[0], &go_args(&urls(&ports[..1]), &[("g", &origin)])).await;
    let rs = GcNode::start(
        ports[1],
        &gc_args(&urls(&ports[1..]), &[("g", &origin)], &[]),
    )
    .await;

    // (method, path, status both must answer)
    let table: &[(&str, &str, u16)] = &[
        ("GET", "/_groupcache/nosuch/k", 404),
        ("GET", "/_groupcache/nosuch", 400),
        ("GET", "/_groupcache/g", 400),
        ("GET", "/_groupcache/", 400),
        ("GET", "/_groupcache/g/a%zz", 400),
        ("GET", "/_groupcache/g/%4", 400),
        ("GET", "/_groupcache/%zz/k", 400),
        ("GET", "/_groupcache/g/missing-parity", 500),
        ("GET", "/_groupcache/g/fail-parity", 500),
        ("POST", "/_groupcache/g/missing-post", 500),
        ("POST", "/_groupcache/g/posted", 200),
        ("PUT", "/_groupcache/g/put", 200),
        ("DELETE", "/_groupcache/g/deleted", 200),
        // What golang's client sends for the key `a b`.
        ("GET", "/_groupcache/g/a+b", 200),
        ("GET", "/_groupcache/g/a%20b", 200),
        ("GET", "/_groupcache/g/", 200),
        ("GET", "/_groupcache/g/trail/", 200),
        ("GET", "/_groupcache/g%2Fx/k", 200),
        ("GET", "/_groupcache/g/%2Flead", 200),
        ("GET", "/_groupcache/g/%E2%82?query=ignored", 200),
    ];
    let mut differences = Vec::new();
    for &(method, path, status) in table {
        let go_reply = http_request(method, &format!("{}{path}", go.url))
            .await
            .unwrap_or_else(|e| panic!("Go node, {method} {path}: {e}"));
        let rs_reply = http_request(method, &format!("{}{path}", rs.url))
            .await
            .unwrap_or_else(|e| panic!("groupcached, {method} {path}: {e}"));
        assert_eq!(go_reply.status, status, "Go node, {method} {path}");
        // groupcached's values carry its rate for the key as `minute_qps`
        // (field 2), which golang decodes and ignores: the only difference.
        let (rs_body, had_rate) = without_minute_qps(&rs_reply.body);
        assert_eq!(
            had_rate,
            status == 200,
            "minute_qps only on values: {method} {path}"
        );
        let rs_reply = Reply {
            body: rs_body.into(),
            ..rs_reply
        };
        // Everything a client can act on; the body as exact bytes.
        let view = |r: &Reply| {
            (
                r.status,
                r.body.clone(),
                r.header("content-type").map(str::to_string),
                r.header("x-content-type-options").map(str::to_string),
                r.header("connection").map(str::to_string),
            )
        };
        if view(&go_reply) != view(&rs_reply) {
            differences.push(format!(
                "{method} {path}:\n  go:   {:?}\n  rust: {:?}",
                view(&go_reply),
                view(&rs_reply)
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "groupcached answers differently from golang:\n{}",
        differences.join("\n")
    );
}

// ---------------------------------------------------------------------------
// 6. The Go owner dies

/// A Go node and a groupcached node; the Go node is SIGKILLed while requests
/// for keys of both owners keep arriving at the groupcached node. Every one
/// of them still gets the right value: fetches from the dead owner fail and
/// groupcached loads those keys itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groupcached_serves_through_a_go_owner_dying() {
    let origin = Origin::start().await;
    let ports = free_ports(2);
    let peers = urls(&ports);
    let ring = Ring::new(DEFAULT_REPLICAS, &peers);
    let mut go = GoNode::start(ports[0], &go_args(&peers, &[("g", &origin)])).await;
    let rs = GcNode::start(
        ports[1],
        &gc_args(&peers, &[("g", &origin)], &["--peer-timeout", "1s"]),
    )
    .await;

    let all: Vec<Vec<u8>> = (0..1200).map(|i| format!("k{i}").into_bytes()).collect();
    let (go_owned, rust_owned): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|k| ring.get(k) == Some(peers[0].as_str()));
    assert!(go_owned.len() >= 300 && rust_owned.len() >= 300);

    // While the Go owner is up, groupcached fetches its keys from it.
    let warm = &go_owned[..20];
    for key in warm {
        let reply = rs.get(&format!("/cache/g/{}", esc(key))).await;
        assert_eq!((reply.status, &reply.body[..]), (200, &value_of(key)[..]));
    }
    let before = rs.stats().await;
    assert_eq!(stat(&before, "g", "PeerLoads"), 20, "{before}");
    assert_eq!(stat(&go.stats().await, "g", "ServerRequests"), 20);

    // 900 requests, 16 in flight: Go-owned keys (fresh ones and the warm
    // ones again) and groupcached-owned keys. The Go node is killed once a
    // third of them are done; those after the 400th wait for the kill, so
    // however the machine schedules us, the kill lands mid-load.
    let mut requests = Vec::new();
    for i in 0..300 {
        requests.push(go_owned[20 + i % (go_owned.len() - 20)].clone());
        requests.push(warm[i % warm.len()].clone());
        requests.push(rust_owned[i].clone());
    }
    let done = Arc::new(AtomicUsize::new(0));
    let (kill, killed) = tokio::sync::watch::channel(false);
    let load = {
        let done = done.clone();
        let url = rs.url.clone();
        let requests = requests.into_iter().enumerate().collect();
        tokio::spawn(async move {
            bounded(16, requests, move |(i, key)| {
                let url = format!("{url}/cache/g/{}", esc(&key));
                let (done, mut killed) = (done.clone(), killed.clone());
                async move {
                    if i >= 400 {
                        let _ = killed.wait_for(|&k| k).await;
                    }
                    let reply = try_get(&url).await;
                    done.fetch_add(1, SeqCst);
                    (key, reply)
                }
            })
            .await
        })
    };
    poll_until(Duration::from_secs(60), || done.load(SeqCst) >= 300).await;
    go.proc.signal("KILL");
    let exit = go.proc.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(exit, Some(-1), "the Go node did not die of SIGKILL");
    let killed_at = done.load(SeqCst);
    kill.send_replace(true);

    for (key, reply) in load.await.unwrap() {
        let reply = reply.unwrap_or_else(|e| panic!("key {}: {e}", show(&key)));
        assert!(
            reply.status == 200 && reply.body == value_of(&key),
            "key {}: {} {} (Go node killed after {killed_at} of 900 requests)",
            show(&key),
            reply.status,
            preview(&reply.body)
        );
    }
    let after = rs.stats().await;
    assert!(
        stat(&after, "g", "PeerErrors") > 0,
        "no failed fetches from the dead owner: {after}"
    );
    assert_eq!(stat(&after, "g", "LocalLoadErrs"), 0, "{after}");
    // After the kill every Go-owned key asked for was loaded by groupcached.
    let post_kill = rs.get(&format!("/cache/g/{}", esc(&go_owned[20]))).await;
    assert_eq!(post_kill.body, value_of(&go_owned[20]));
}
