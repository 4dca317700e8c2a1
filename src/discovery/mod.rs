//! Where the peer list comes from: a static list, etcd ([`etcd`], its
//! keys folded into a list by [`registry`]) or DNS records ([`dns`]).
//! Here, what every source shares: [`PeerSource`] and its status, shown by
//! `/peers`, `/status` and `/metrics` (so the core needs no knowledge of
//! etcd's or DNS's clients), and the rules that turn an answer into a
//! peer list and a change into a log line.

#[cfg(feature = "dns")]
pub(crate) mod dns;
#[cfg(feature = "etcd")]
pub(crate) mod etcd;
#[cfg(feature = "etcd")]
pub(crate) mod registry;

#[cfg(any(feature = "etcd", feature = "dns"))]
use std::collections::HashSet;

/// Where the peer list comes from, for `GET /peers`.
#[derive(Clone)]
pub(crate) enum PeerSource {
    Static,
    /// etcd discovery's latest status.
    #[cfg(feature = "etcd")]
    Etcd(tokio::sync::watch::Receiver<EtcdStatus>),
    /// DNS discovery's latest status.
    #[cfg(feature = "dns")]
    Dns(tokio::sync::watch::Receiver<DnsStatus>),
}

/// A [`PeerSource`] as the views show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceView {
    /// `static`, `etcd` or `dns`.
    pub name: &'static str,
    /// With etcd, discovery's latest status.
    pub etcd: Option<EtcdStatus>,
    /// With DNS, discovery's latest status.
    pub dns: Option<DnsStatus>,
}

impl PeerSource {
    /// The source's name and, with discovery, its latest status.
    pub(crate) fn describe(&self) -> SourceView {
        match self {
            PeerSource::Static => SourceView {
                name: "static",
                etcd: None,
                dns: None,
            },
            #[cfg(feature = "etcd")]
            PeerSource::Etcd(status) => SourceView {
                name: "etcd",
                etcd: Some(status.borrow().clone()),
                dns: None,
            },
            #[cfg(feature = "dns")]
            PeerSource::Dns(status) => SourceView {
                name: "dns",
                etcd: None,
                dns: Some(status.borrow().clone()),
            },
        }
    }
}

/// What `GET /peers` shows about etcd.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct EtcdStatus {
    pub endpoints: Vec<String>,
    pub prefix: String,
    /// True while a session is registered and watching.
    pub connected: bool,
    /// The lease this node's key is attached to.
    pub lease_id: Option<i64>,
    /// The etcd revision of the last peer list seen.
    pub revision: i64,
    /// Why the last session ended, if it did.
    pub last_error: Option<String>,
}

/// What `GET /peers` shows about DNS discovery.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct DnsStatus {
    /// `A/AAAA` (`--peers-dns`) or `SRV` (`--peers-srv`).
    pub record_type: &'static str,
    /// The name asked.
    pub name: String,
    /// `system` (the system resolver) or the `--dns-server` address.
    pub server: String,
    /// `--dns-interval`, in milliseconds.
    pub interval_ms: u64,
    /// True while the last resolution gave a usable answer.
    pub ok: bool,
    /// `ok: N peers in the answer`, or why the last resolution kept the
    /// last list; none before the first.
    pub last_outcome: Option<String>,
    /// When the last resolution ended, in milliseconds since the Unix
    /// epoch; none before the first.
    pub last_resolved_unix_ms: Option<u64>,
    /// Why the last resolution kept the last list, if it did.
    pub last_error: Option<String>,
}

/// `urls` and `self_url`, sorted and de-duplicated: the peer list every
/// node that sees the same `urls` builds alike, whether it is in them yet
/// or not (the rule of etcd and DNS discovery).
#[cfg(any(feature = "etcd", feature = "dns"))]
pub(crate) fn with_self(mut urls: Vec<String>, self_url: &str) -> Vec<String> {
    urls.push(self_url.to_string());
    urls.sort();
    urls.dedup();
    urls
}

/// A change of peer list, as a log line tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg(any(feature = "etcd", feature = "dns"))]
pub(crate) struct Diff {
    /// Up to five URLs added, then how many more: `[a,b] and 3 more`.
    pub(crate) added: String,
    /// The same for the URLs removed.
    pub(crate) removed: String,
}

/// What `new` adds to and removes from `old`; `None` when they are equal.
#[cfg(any(feature = "etcd", feature = "dns"))]
pub(crate) fn diff(old: &[String], new: &[String]) -> Option<Diff> {
    if old == new {
        return None;
    }
    let (old_set, new_set): (HashSet<&String>, HashSet<&String>) =
        (old.iter().collect(), new.iter().collect());
    Some(Diff {
        added: few(new.iter().filter(|url| !old_set.contains(url))),
        removed: few(old.iter().filter(|url| !new_set.contains(url))),
    })
}

/// Up to five of `urls`, then how many more: a log field that stays short
/// however many peers change at once.
#[cfg(any(feature = "etcd", feature = "dns"))]
fn few<'a>(urls: impl Iterator<Item = &'a String>) -> String {
    const SHOWN: usize = 5;
    let urls: Vec<&String> = urls.collect();
    let shown: Vec<&str> = urls.iter().take(SHOWN).map(|url| url.as_str()).collect();
    let mut text = format!("[{}]", shown.join(","));
    if urls.len() > SHOWN {
        text.push_str(&format!(" and {} more", urls.len() - SHOWN));
    }
    text
}

#[cfg(all(test, any(feature = "etcd", feature = "dns")))]
mod tests {
    use super::*;

    #[test]
    fn a_diff_names_a_few_urls_and_counts_the_rest() {
        let urls = |range: std::ops::Range<u32>| -> Vec<String> {
            range.map(|i| format!("http://p{i:02}:1")).collect()
        };
        assert_eq!(diff(&urls(0..3), &urls(0..3)), None);
        let change = diff(&urls(0..3), &urls(1..4)).expect("a change");
        assert_eq!(change.added, "[http://p03:1]");
        assert_eq!(change.removed, "[http://p00:1]");
        let change = diff(&[], &urls(0..4000)).expect("a change");
        assert_eq!(
            change.added,
            "[http://p00:1,http://p01:1,http://p02:1,http://p03:1,http://p04:1] and 3995 more"
        );
        assert_eq!(change.removed, "[]");
    }
}
