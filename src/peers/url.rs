//! What a peer's address and the peer API's prefix may be: peer URLs as
//! golang's `HTTPPool.Set` lists them (the ring hashes the exact string)
//! and the base path every node of a pool serves the peer API under.
//! `--peers`, `--self`, `--base-path`, etcd values and DNS answers all
//! pass through here, and so do an embedder's builder calls.

/// A base path is `/` + one or more `SEGMENT/` of unreserved characters
/// (peers put it into URLs unescaped and match it after decoding, so
/// anything else could never match), and may not shadow the user API,
/// whose other routes (`/stats`, `/peers`, `/healthz`) have no `/` after
/// their name and so cannot be reached by a prefix ending in `/`.
pub(crate) fn base_path_is_valid(base: &str) -> bool {
    let Some(inner) = base
        .strip_prefix('/')
        .and_then(|rest| rest.strip_suffix('/'))
    else {
        return false;
    };
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    !base.starts_with("/cache/")
        && inner
            .split('/')
            .all(|segment| !segment.is_empty() && segment.bytes().all(unreserved))
}

/// The longest peer URL accepted: `http://`, a host name of at most 253
/// bytes (DNS's limit), `:` and a port.
pub(crate) const MAX_PEER_URL_BYTES: usize = 7 + 253 + 6;

/// Why a string is not a peer URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadPeerUrl {
    /// Not `http://host[:port]` or `https://host[:port]`.
    #[error("expected http://host:port or https://host:port with no trailing '/'")]
    Syntax,
    /// Longer than a peer URL can be: `https://`, a host name of at most
    /// 253 bytes and a port.
    #[error("longer than {MAX_PEER_URL_BYTES} bytes")]
    TooLong,
}

/// A peer URL that is not `http(s)://host[:port]`, with why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer URL {url:?}: {error}")]
pub struct InvalidPeerUrl {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub error: BadPeerUrl,
}

/// [`check_peer_url`] on each of `urls`; the first that fails.
pub(crate) fn check_peer_urls<'a>(
    urls: impl IntoIterator<Item = &'a String>,
) -> Result<(), InvalidPeerUrl> {
    for url in urls {
        check_peer_url(url).map_err(|error| InvalidPeerUrl {
            url: url.clone(),
            error,
        })?;
    }
    Ok(())
}

/// Checks that `url` is a peer URL as golang's `HTTPPool.Set` lists them:
/// `http://host[:port]` (or `https://`), with no user info, path or
/// trailing `/`. The ring hashes the exact string, so `http://a:1/` would
/// be a peer no Go node knows. The host is a DNS name (letters, digits,
/// `-` and `_`, no label starting or ending with `-`), an IPv4 address or a
/// bracketed IPv6 address; the port is plain digits, 1–65535. `--peers`,
/// `--self` and every etcd value pass through here.
pub(crate) fn check_peer_url(url: &str) -> Result<(), BadPeerUrl> {
    if url.len() > MAX_PEER_URL_BYTES {
        return Err(BadPeerUrl::TooLong);
    }
    let authority = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or(BadPeerUrl::Syntax)?;
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (ip, rest) = bracketed.split_once(']').ok_or(BadPeerUrl::Syntax)?;
            let port = match rest {
                "" => None,
                rest => Some(rest.strip_prefix(':').ok_or(BadPeerUrl::Syntax)?),
            };
            (ip.parse::<std::net::Ipv6Addr>().is_ok(), port)
        }
        None => {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            let ok = host.parse::<std::net::Ipv4Addr>().is_ok() || is_dns_name(host);
            (ok, port)
        }
    };
    let port_ok = port.is_none_or(|port| {
        (1..=5).contains(&port.len())
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    (host_ok && port_ok).then_some(()).ok_or(BadPeerUrl::Syntax)
}

/// A host name: dot-separated labels of 1–63 letters, digits, `-` or `_`,
/// none starting or ending with `-`.
fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_are_plain_http_authorities() {
        for good in [
            "http://127.0.0.1:8001",
            "http://h:1",
            "http://node-1.example",
            "http://[::1]:8080",
            "http://[::1]",
            "https://h:1",
            "http://10.0.0.1:65535",
            "http://node_1.compose-net:80",
            "http://a:00080",
        ] {
            assert_eq!(check_peer_url(good), Ok(()), "{good}");
        }
        for bad in [
            "not a url at all",
            "http://h:1/",
            "http://h:p",
            "http://h:",
            "http://",
            "http://u@h:1",
            "https://h:1/",
            "ftp://h:1",
            "http://h:1/path",
            "http://h h:1",
            "http://:1",
            "",
            "http://a:+80",
            "http://a:0",
            "http://a:65536",
            "http://a:080000",
            "http://-:1",
            "http://a-.b:1",
            "http://x'+alert(1)+'y:80",
            "http://a..b:1",
            "http://[::1:1",
            "http://[zz]:1",
            "http://[::1]x",
            "http://a:1:2",
            "http://a\n:1",
        ] {
            assert_eq!(check_peer_url(bad), Err(BadPeerUrl::Syntax), "{bad}");
        }
        let long = format!("http://{}:1", "h".repeat(5000));
        assert_eq!(check_peer_url(&long), Err(BadPeerUrl::TooLong));
        let label = "h".repeat(63);
        let longest = format!("http://{label}.{label}.{label}.{}:65535", "h".repeat(61));
        assert_eq!(check_peer_url(&longest), Ok(()));
    }
}
