//! The peer registry as etcd holds it, folded into a peer list: each node
//! puts `{prefix}{url}` = `{url}`, and the peer list is the sorted,
//! de-duplicated set of values, with this node always in it. `discovery::etcd`
//! does the etcd I/O and feeds a [`Registry`] the listing and then each
//! watch event; everything decided about what etcd holds is decided here,
//! without I/O.
//!
//! The registry is open to anyone who can write under the prefix, so a
//! value that is not a peer URL is refused (the key is dropped from the
//! list, and the caller may warn), and the peer list changes are told as
//! what was added and removed, a few URLs each.

use std::collections::BTreeMap;

use crate::discovery;
use crate::peers::url::{self, BadPeerUrl};

/// A change under the prefix: a listing's entry or a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// `key` now holds `value`.
    Put { key: &'a [u8], value: &'a [u8] },
    /// `key` was deleted (or its lease expired).
    Delete { key: &'a [u8] },
}

/// A value put under the prefix that is not a peer URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    /// The key, lossily decoded and cut to 80 characters.
    pub(crate) key: String,
    /// The value, likewise.
    pub(crate) value: String,
    pub(crate) error: BadPeerUrl,
}

/// Where this node's own entry stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OwnEntry {
    /// The key holds this node's URL.
    Registered,
    /// The key is gone.
    Missing,
    /// The key holds something else (shown lossily).
    Overwritten(String),
}

/// The keys under the prefix that hold peer URLs, and this node.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    members: BTreeMap<Vec<u8>, String>,
    own_key: Vec<u8>,
    self_url: String,
}

impl Registry {
    /// An empty registry for the node `self_url` registering under `prefix`.
    pub(crate) fn new(prefix: &str, self_url: &str) -> Registry {
        Registry {
            members: BTreeMap::new(),
            own_key: format!("{prefix}{self_url}").into_bytes(),
            self_url: self_url.to_string(),
        }
    }

    /// This node's key: `{prefix}{self_url}`.
    pub(crate) fn own_key(&self) -> &[u8] {
        &self.own_key
    }

    /// Folds in one change. A put whose value is not a peer URL removes
    /// the key and is returned, for the caller to warn about.
    pub(crate) fn apply(&mut self, event: Event<'_>) -> Option<Refused> {
        match event {
            Event::Delete { key } => {
                self.members.remove(key);
                None
            }
            Event::Put { key, value } => {
                let text = String::from_utf8_lossy(value);
                match url::check_peer_url(&text) {
                    Ok(()) => {
                        self.members.insert(key.to_vec(), text.into_owned());
                        None
                    }
                    Err(error) => {
                        self.members.remove(key);
                        Some(Refused {
                            key: shown(key),
                            value: shown(value),
                            error,
                        })
                    }
                }
            }
        }
    }

    /// Whether this node's key holds this node's URL. A refused value
    /// counts as missing.
    pub(crate) fn own_entry(&self) -> OwnEntry {
        match self.members.get(&self.own_key) {
            None => OwnEntry::Missing,
            Some(url) if *url == self.self_url => OwnEntry::Registered,
            Some(url) => OwnEntry::Overwritten(url.clone()),
        }
    }

    /// The peer list: every value and this node, sorted, de-duplicated.
    pub(crate) fn peers(&self) -> Vec<String> {
        discovery::with_self(self.members.values().cloned().collect(), &self.self_url)
    }
}

/// Bytes from etcd for a log line: lossily decoded, at most 80 characters.
fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "http://10.0.0.1:8080";

    fn registry() -> Registry {
        Registry::new("/gc/", ME)
    }

    fn put<'a>(key: &'a str, value: &'a str) -> Event<'a> {
        Event::Put {
            key: key.as_bytes(),
            value: value.as_bytes(),
        }
    }

    #[test]
    fn self_is_always_in_the_list_even_before_registering() {
        let registry = registry();
        assert_eq!(registry.peers(), [ME]);
        assert_eq!(registry.own_entry(), OwnEntry::Missing);
    }

    #[test]
    fn values_are_the_list_sorted_and_deduplicated() {
        let mut registry = registry();
        for (key, value) in [
            ("/gc/http://b:1", "http://b:1"),
            ("/gc/http://a:1", "http://a:1"),
            // Another key naming a peer already listed (a restart's new key).
            ("/gc/old", "http://a:1"),
            ("/gc/http://10.0.0.1:8080", ME),
        ] {
            assert_eq!(registry.apply(put(key, value)), None);
        }
        assert_eq!(
            registry.peers(),
            ["http://10.0.0.1:8080", "http://a:1", "http://b:1"]
        );
        assert_eq!(registry.own_entry(), OwnEntry::Registered);
    }

    #[test]
    fn a_delete_removes_only_its_key() {
        let mut registry = registry();
        registry.apply(put("/gc/1", "http://a:1"));
        registry.apply(put("/gc/2", "http://a:1"));
        registry.apply(put("/gc/3", "http://b:1"));
        registry.apply(Event::Delete { key: b"/gc/1" });
        registry.apply(Event::Delete { key: b"/gc/3" });
        registry.apply(Event::Delete { key: b"/gc/never" });
        assert_eq!(registry.peers(), ["http://10.0.0.1:8080", "http://a:1"]);
    }

    #[test]
    fn a_value_that_is_not_a_peer_url_is_refused_and_drops_the_key() {
        let mut registry = registry();
        registry.apply(put("/gc/x", "http://a:1"));
        let refused = registry.apply(put("/gc/x", "http://a:0")).expect("refused");
        assert_eq!(
            (refused.key.as_str(), refused.value.as_str()),
            ("/gc/x", "http://a:0")
        );
        assert_eq!(registry.peers(), [ME]);
        let long = "x".repeat(1000);
        let refused = registry.apply(put("/gc/y", &long)).expect("refused");
        assert_eq!(refused.value.len(), 80);
        assert!(registry.apply(put("/gc/z", "not a url\n")).is_some());
        assert_eq!(registry.peers(), [ME]);
    }

    #[test]
    fn an_overwritten_or_refused_own_key_is_seen() {
        let mut registry = registry();
        registry.apply(put("/gc/http://10.0.0.1:8080", "http://evil:1"));
        assert_eq!(
            registry.own_entry(),
            OwnEntry::Overwritten("http://evil:1".into())
        );
        // Self stays in its own list whatever its key says.
        assert!(registry.peers().contains(&ME.to_string()));
        registry.apply(put("/gc/http://10.0.0.1:8080", "garbage"));
        assert_eq!(registry.own_entry(), OwnEntry::Missing);
    }
}
