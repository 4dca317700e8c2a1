//! What only the binary sets on a node builder: the URL it learns when it
//! binds, the clients its TLS flags configure, where its peer list comes
//! from, and the write and load limits of its flags.

use super::NodeBuilder;
use crate::discovery::PeerSource;
use crate::http_client::HttpClient;

impl NodeBuilder {
    /// This node's URL, once the binary knows it (`--self`, or its bound
    /// listener).
    pub(crate) fn self_url(mut self, url: String) -> NodeBuilder {
        self.self_url = Some(url);
        self
    }

    /// The binary's clients for origin loads and peer fetches (their TLS
    /// settings, their deadlines, the load budget they share), instead of
    /// ones made from `fetch_timeout` and `max_conns_per_peer`.
    pub(crate) fn set_clients(&mut self, origin: HttpClient, peer: HttpClient) {
        self.origin_http = Some(origin);
        self.peer_http = Some(peer);
    }

    /// Where the peer list comes from, for `/peers` and the status page.
    pub(crate) fn source(mut self, source: PeerSource) -> NodeBuilder {
        self.source = source;
        self
    }

    /// `--allow-writes` and `--max-value-bytes`.
    pub(crate) fn writes(mut self, allowed: bool, max_value: u64) -> NodeBuilder {
        self.allow_writes = allowed;
        self.max_value = max_value;
        self
    }

    /// `--load-budget`, for the clients the builder makes itself.
    pub(crate) fn load_budget(mut self, budget: u64) -> NodeBuilder {
        self.load_budget = budget;
        self
    }
}
