//! The consistent-hash ring that decides which peer owns a key.
//!
//! It is golang/groupcache's `consistenthash` bit for bit: every peer gets
//! `replicas` points at CRC-32 (IEEE) of `decimal(i) + peer`, points are
//! sorted in unsigned order, a key belongs to the first point at or after
//! CRC-32 of the key (wrapping to the first point), and when two points
//! collide the peer added last owns both. Nodes that agree on the peer list
//! (same strings, same order) therefore agree on every owner, whatever
//! language they are written in.
//!
//! The two maintained Go forks use another ring ([`Hashing`]): FNV-1 64 of
//! the lower-case hex MD5 of `decimal(i) + peer`, keys by FNV-1 64 of their
//! bytes, both compared as signed 64-bit integers; groupcache-go v3 names
//! each peer by its `host:port` instead of its URL.

use std::collections::HashMap;

use md5::{Digest, Md5};

/// golang/groupcache's `defaultReplicas`.
pub const DEFAULT_REPLICAS: usize = 50;

/// How a ring places peers and keys: golang's way, or one of the forks'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hashing {
    /// golang/groupcache: CRC-32 (IEEE) of `i + peerURL`, unsigned order.
    #[default]
    Golang,
    /// mailgun/groupcache v2: FNV-1 64 of the hex MD5 of `i + peerURL`,
    /// signed order.
    Mailgun,
    /// groupcache-go v3: as mailgun, but a peer is named by its `host:port`.
    GroupcacheGo,
}

impl Hashing {
    /// Where replica `i` of `peer` sits on the ring.
    fn point(self, i: usize, peer: &str) -> i64 {
        match self {
            Hashing::Golang => i64::from(crc32(format!("{i}{peer}").as_bytes())),
            Hashing::Mailgun => fork_point(i, peer),
            Hashing::GroupcacheGo => fork_point(i, host_port(peer)),
        }
    }

    /// Where `key` sits on the ring.
    fn key(self, key: &[u8]) -> i64 {
        match self {
            Hashing::Golang => i64::from(crc32(key)),
            // Go converts the uint64 to int: the same bits, signed.
            Hashing::Mailgun | Hashing::GroupcacheGo => fnv1_64(key) as i64,
        }
    }
}

/// The forks' replica point: FNV-1 64 of the lower-case hex MD5 of `i + name`.
fn fork_point(i: usize, name: &str) -> i64 {
    let digest = Md5::digest(format!("{i}{name}").as_bytes());
    let mut hex = [0u8; 32];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(digest) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 15)];
    }
    fnv1_64(&hex) as i64
}

/// `http://host:port/...` → `host:port`, as groupcache-go v3 names a peer.
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

/// FNV-1 64 (multiply, then XOR), Go's `hash/fnv.New64`.
pub(crate) fn fnv1_64(data: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in data {
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3) ^ u64::from(byte);
    }
    hash
}

/// An immutable ring over a list of peer URLs.
#[derive(Debug, Clone, Default)]
pub struct Ring {
    hashing: Hashing,
    /// (point, index into `peers`), sorted by point.
    points: Vec<(i64, u32)>,
    peers: Vec<String>,
}

impl Ring {
    /// Builds the ring as golang's `New(replicas, nil)` followed by `Add(peers...)`.
    pub fn new(replicas: usize, peers: &[String]) -> Ring {
        Ring::with_hashing(Hashing::Golang, replicas, peers)
    }

    /// Builds a ring that places peers and keys as `hashing` says. Points
    /// that collide belong to the peer added last, as in golang and
    /// mailgun (groupcache-go v3 breaks such ties arbitrarily).
    pub fn with_hashing(hashing: Hashing, replicas: usize, peers: &[String]) -> Ring {
        let mut owner_of_point: HashMap<i64, u32> = HashMap::with_capacity(replicas * peers.len());
        let mut points = Vec::with_capacity(replicas * peers.len());
        for (index, peer) in peers.iter().enumerate() {
            for i in 0..replicas {
                let point = hashing.point(i, peer);
                points.push(point);
                // Last write wins, exactly like golang's `hashMap[hash] = key`.
                owner_of_point.insert(point, index as u32);
            }
        }
        points.sort_unstable();
        let points = points
            .into_iter()
            .map(|point| (point, owner_of_point[&point]))
            .collect();
        Ring {
            hashing,
            points,
            peers: peers.to_vec(),
        }
    }

    /// The peer that owns `key`, or `None` when the ring is empty.
    pub fn get(&self, key: &[u8]) -> Option<&str> {
        if self.points.is_empty() {
            return None;
        }
        let hash = self.hashing.key(key);
        let mut index = self.points.partition_point(|&(point, _)| point < hash);
        if index == self.points.len() {
            index = 0;
        }
        Some(&self.peers[self.points[index].1 as usize])
    }

    /// The peers the ring was built from, in the order given.
    pub fn peers(&self) -> &[String] {
        &self.peers
    }

    /// Each peer's share of the hash space (and so, on average, of the
    /// keys), in the order of [`Ring::peers`]; the shares add up to 1.
    pub fn shares(&self) -> Vec<f64> {
        // golang's points are 32-bit, the forks' span all of i64.
        let space: i128 = match self.hashing {
            Hashing::Golang => 1 << 32,
            Hashing::Mailgun | Hashing::GroupcacheGo => 1 << 64,
        };
        let mut owned = vec![0i128; self.peers.len()];
        // A point owns the hashes after the previous point, up to itself;
        // the first point also owns those after the last, wrapping round.
        let mut previous = match self.points.last() {
            Some(&(last, _)) => i128::from(last) - space,
            None => return vec![0.0; self.peers.len()],
        };
        for &(point, owner) in &self.points {
            owned[owner as usize] += i128::from(point) - previous;
            previous = i128::from(point);
        }
        owned.into_iter().map(|n| n as f64 / space as f64).collect()
    }
}

/// CRC-32 with the IEEE polynomial (Go's `crc32.ChecksumIEEE`, zlib's `crc32`).
pub(crate) fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(list: &[&str]) -> Vec<String> {
        list.iter().map(|p| p.to_string()).collect()
    }

    /// The three peers of the worked example below, 50 replicas each.
    fn three_forked(hashing: Hashing) -> Ring {
        Ring::with_hashing(
            hashing,
            DEFAULT_REPLICAS,
            &peers(&[
                "http://10.0.0.1:8080",
                "http://10.0.0.2:8080",
                "http://10.0.0.3:8080",
            ]),
        )
    }

    fn three() -> Ring {
        three_forked(Hashing::Golang)
    }

    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"foo"), 2356372769);
        assert_eq!(crc32(b"0http://10.0.0.1:8080"), 2090179191);
        assert_eq!(crc32(b"user:42"), 1684999558);
    }

    #[test]
    fn worked_example_points() {
        let ring = three();
        assert_eq!(ring.points.len(), 150);
        assert_eq!(ring.points[0].0, 9116923);
        assert_eq!(
            ring.peers[ring.points[0].1 as usize],
            "http://10.0.0.1:8080"
        );
        let last = ring.points[149];
        assert_eq!(last.0, 4244761782);
        assert_eq!(ring.peers[last.1 as usize], "http://10.0.0.2:8080");
        assert_eq!(ring.points[86].0, 2376637406);
        assert_eq!(ring.points[85].0, 2339746196);
        assert_eq!(
            ring.peers[ring.points[85].1 as usize],
            "http://10.0.0.3:8080"
        );
    }

    #[test]
    fn worked_example_owners() {
        let ring = three();
        for (key, owner) in [
            ("foo", "http://10.0.0.1:8080"),
            ("bar", "http://10.0.0.2:8080"),
            ("hello", "http://10.0.0.3:8080"),
            ("a b", "http://10.0.0.2:8080"),
            ("12345", "http://10.0.0.3:8080"),
            ("user:42", "http://10.0.0.1:8080"),
            ("", "http://10.0.0.1:8080"),
        ] {
            assert_eq!(ring.get(key.as_bytes()), Some(owner), "key {key:?}");
        }
    }

    #[test]
    fn worked_example_spread() {
        let ring = three();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for i in 0..10_000 {
            *counts
                .entry(ring.get(i.to_string().as_bytes()).unwrap())
                .or_default() += 1;
        }
        assert_eq!(counts["http://10.0.0.1:8080"], 3452);
        assert_eq!(counts["http://10.0.0.2:8080"], 3039);
        assert_eq!(counts["http://10.0.0.3:8080"], 3509);
    }

    #[test]
    fn one_replica_wraps_to_first_point() {
        let ring = Ring::new(1, &peers(&["Bill", "Bob", "Bonny"]));
        let points: Vec<i64> = ring.points.iter().map(|p| p.0).collect();
        assert_eq!(points, [1679827945, 2622760538, 3819440399]);
        assert_eq!(ring.get(b"Ben"), Some("Bonny"));
        // A key hashing past the last point wraps around to the first.
        let past_last = (0..)
            .map(|i: u32| i.to_string())
            .find(|k| crc32(k.as_bytes()) > 3819440399)
            .unwrap();
        assert_eq!(ring.get(past_last.as_bytes()), Some("Bonny"));
    }

    #[test]
    fn colliding_points_go_to_the_peer_added_last() {
        // The same peer string twice collides on every point; with distinct
        // strings that collide we cannot construct CRC collisions cheaply, so
        // check the rule through duplicates: the ring keeps both copies and
        // both resolve to the last writer (index 1).
        let ring = Ring::new(3, &peers(&["x", "x"]));
        assert_eq!(ring.points.len(), 6);
        assert!(ring.points.iter().all(|&(_, owner)| owner == 1));
    }

    #[test]
    fn fnv1_and_the_fork_point_match_go() {
        assert_eq!(fnv1_64(b"a"), 0xaf63bd4c8601b7be);
        assert_eq!(fnv1_64(b"foo"), 15621798640163566899);
        // md5("0http://10.0.0.1:8080") = 11a206fb3c4ccca6df16d7cd0df87d41
        assert_eq!(fork_point(0, "http://10.0.0.1:8080"), -3798143233063932755);
        assert_eq!(Hashing::Mailgun.key(b"foo"), -2824945433545984717);
        assert_eq!(Hashing::Mailgun.key(b""), -3750763034362895579);
        assert_eq!(host_port("https://10.0.0.1:8080"), "10.0.0.1:8080");
        assert_eq!(host_port("10.0.0.1:8080"), "10.0.0.1:8080");
    }

    #[test]
    fn mailgun_worked_example_owners() {
        let ring = three_forked(Hashing::Mailgun);
        for (key, owner) in [
            ("foo", "http://10.0.0.2:8080"),
            ("bar", "http://10.0.0.2:8080"),
            ("hello", "http://10.0.0.3:8080"),
            ("a b", "http://10.0.0.2:8080"),
            ("12345", "http://10.0.0.3:8080"),
            ("user:42", "http://10.0.0.1:8080"),
            ("", "http://10.0.0.2:8080"),
        ] {
            assert_eq!(ring.get(key.as_bytes()), Some(owner), "key {key:?}");
        }
        // `hello` hashes past every point but the last.
        let hello = Hashing::Mailgun.key(b"hello");
        assert_eq!(hello, 8883723591023973575);
        assert_eq!(ring.points.partition_point(|&(p, _)| p < hello), 149);
    }

    #[test]
    fn groupcache_go_names_peers_by_host_and_port() {
        let ring = three_forked(Hashing::GroupcacheGo);
        assert_eq!(ring.get(b"foo"), Some("http://10.0.0.1:8080"));
        assert_eq!(ring.get(b"bar"), Some("http://10.0.0.1:8080"));
    }

    #[test]
    fn shares_split_the_whole_hash_space() {
        let ring = Ring::new(1, &peers(&["Bill", "Bob", "Bonny"]));
        // Bill owns the second point, Bob the third, Bonny the first (and
        // the hashes past the last point).
        let space = (1u64 << 32) as f64;
        let want = [
            (2622760538.0 - 1679827945.0) / space,
            (3819440399.0 - 2622760538.0) / space,
            (1679827945.0 + space - 3819440399.0) / space,
        ];
        assert_eq!(ring.shares(), want);
        // The shares predict the spread of real keys.
        let shares = three().shares();
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        for (share, keys) in shares.iter().zip([3452.0, 3039.0, 3509.0]) {
            assert!((share - keys / 10_000.0).abs() < 0.02, "{shares:?}");
        }
        assert_eq!(Ring::new(50, &[]).shares(), Vec::<f64>::new());
        for hashing in [Hashing::Mailgun, Hashing::GroupcacheGo] {
            let ring = Ring::with_hashing(hashing, 50, &peers(&["http://a:1", "http://b:2"]));
            let shares = ring.shares();
            assert!(
                (shares.iter().sum::<f64>() - 1.0).abs() < 1e-9,
                "{shares:?}"
            );
            assert!(shares.iter().all(|s| (0.2..0.8).contains(s)), "{shares:?}");
        }
    }

    #[test]
    fn empty_ring_has_no_owner() {
        assert_eq!(Ring::new(50, &[]).get(b"k"), None);
    }
}
