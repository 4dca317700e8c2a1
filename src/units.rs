//! Sizes, durations and TTLs as flags and queries write them (`64MiB`,
//! `500ms`, `2h`), and the ranges every number a node takes must lie in.
//! The command line, the builder and a write's `?ttl=` all read them here.

use std::time::Duration;

/// The largest delta-seconds value a cache must handle (RFC 9111 §1.2.2);
/// larger values are taken as this. It is also the longest TTL a flag or a
/// user's write may give.
pub(crate) const MAX_DELTA_SECONDS: u64 = 1 << 31;

/// The ranges every number and duration flag is checked against. Beyond
/// them a value cannot work (a zero timeout fails every load), turns a
/// deadline off in effect, or costs memory and start-up time out of
/// proportion (the ring holds `replicas` points per peer).
pub(crate) mod limits {
    use std::time::Duration;

    pub(crate) const REPLICAS: (u64, u64) = (1, 10_000);
    pub(crate) const MAX_CONNS_PER_PEER: (u64, u64) = (1, 100_000);
    pub(crate) const MAX_CONNECTIONS: (u64, u64) = (1, 10_000_000);
    pub(crate) const CACHE_BYTES: (u64, u64) = (0, 1 << 40);
    #[cfg(feature = "binary")] // a flag only the binary has
    pub(crate) const PEER_TIMEOUT: (Duration, Duration) =
        (Duration::from_millis(1), Duration::from_secs(3600));
    /// `0` turns probes off.
    pub(crate) const PROBE_TIMEOUT: (Duration, Duration) =
        (Duration::ZERO, Duration::from_secs(3600));
    /// `0` answers a stale value at once.
    pub(crate) const STALE_WAIT: (Duration, Duration) = (Duration::ZERO, Duration::from_secs(3600));
    /// At most the ten minutes for which writes are replayed to a peer
    /// that joins, so a restored snapshot never predates what is replayed.
    #[cfg(feature = "binary")] // a flag only the binary has
    pub(crate) const SNAPSHOT_MAX_AGE: (Duration, Duration) =
        (Duration::from_secs(1), Duration::from_secs(600));
    pub(crate) const HEADER_READ_TIMEOUT: (Duration, Duration) =
        (Duration::from_millis(100), Duration::from_secs(600));
    pub(crate) const BODY_READ_TIMEOUT: (Duration, Duration) =
        (Duration::from_millis(100), Duration::from_secs(600));
    #[cfg(feature = "binary")] // a flag only the binary has
    pub(crate) const ETCD_TTL: (Duration, Duration) =
        (Duration::from_secs(1), Duration::from_secs(86_400));
    #[cfg(feature = "binary")] // a flag only the binary has
    pub(crate) const DNS_INTERVAL: (Duration, Duration) =
        (Duration::from_secs(1), Duration::from_secs(3600));
    #[cfg(feature = "binary")] // a flag only the binary has
    pub(crate) const ORIGIN_TIMEOUT: (Duration, Duration) =
        (Duration::from_millis(1), Duration::from_secs(3600));
    #[cfg(feature = "binary")] // a flag only the binary has
    pub(crate) const MAX_VALUE_BYTES: (u64, u64) = (1, 1 << 30);
    #[cfg(feature = "binary")] // a flag only the binary has
    pub(crate) const LOAD_BUDGET: (u64, u64) = (1, 1 << 40);
    /// The longest TTL (`--default-ttl`, `--max-ttl`, a write's `?ttl=`):
    /// the longest lifetime an origin can give, about 68 years.
    pub(crate) const MAX_TTL: Duration = Duration::from_secs(super::MAX_DELTA_SECONDS);
}

/// The default `--max-value-bytes` (when `--cache-bytes` is larger).
pub(crate) const DEFAULT_MAX_VALUE_BYTES: u64 = 16 << 20;

/// "64MiB", "64M", "512k", "1G", "1048576" → bytes (binary multiples).
#[cfg(feature = "binary")]
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = split_number(text, "a size like 64MiB")?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{text:?}: unknown size unit {unit:?}")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Why a TTL above [`limits::MAX_TTL`] is refused.
const TTL_TOO_LONG: &str = "longer than the longest TTL, 2147483648s (about 68 years)";

/// `ttl` if it is at most [`limits::MAX_TTL`], else why not.
pub(crate) fn check_ttl(ttl: Duration) -> Result<Duration, &'static str> {
    if ttl > limits::MAX_TTL {
        Err(TTL_TOO_LONG)
    } else {
        Ok(ttl)
    }
}

/// A TTL: a duration of at most [`limits::MAX_TTL`].
pub(crate) fn parse_ttl(text: &str) -> Result<Duration, String> {
    check_ttl(parse_duration(text)?).map_err(|reason| format!("{text:?} is {reason}"))
}

/// "500ms", "2s", "1m", "1h", "3" (seconds) → a duration.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(text, "a duration like 2s")?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "" | "s" => Ok(Duration::from_secs(number)),
        "m" | "h" => number
            .checked_mul(if unit == "m" { 60 } else { 3600 })
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{text:?} is too large")),
        _ => Err(format!(
            "{text:?}: unknown unit {unit:?} (use ms, s, m or h)"
        )),
    }
}

/// "64MiB" → (64, "MiB"); `expected` describes a good value for the error.
fn split_number<'a>(text: &'a str, expected: &str) -> Result<(u64, &'a str), String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number = number
        .parse()
        .map_err(|_| format!("{text:?} is not {expected}"))?;
    Ok((number, unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "binary")]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("7"), Ok(7));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("9Q").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("2d").is_err());
    }
}
