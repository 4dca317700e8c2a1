//! A cached value and when it stops being served.
//!
//! Every value a getter returns, a cache holds or a peer sends carries an
//! [`Expiry`]: never (golang's semantics), or an absolute wall-clock instant
//! in Unix nanoseconds, as mailgun v2 and groupcache-go v3 put it on the wire
//! (`GetResponse.expire`). An expiry that has already passed means "answer
//! the requests waiting for this value, store it nowhere": that is how a
//! value its origin marks uncacheable travels.
//!
//! A value may also carry a [`Grace`]: how long after its expiry the node
//! that loaded it may still serve it, while the origin fails
//! (`stale-if-error`) or while a fresh copy loads in the background
//! (`stale-while-revalidate`, RFC 5861).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// When a value expires.
///
/// ```
/// use std::time::Duration;
/// use groupcached::Expiry;
///
/// let soon = Expiry::after(Duration::from_secs(60));
/// assert!(!soon.is_expired());
/// assert!(soon.remaining().unwrap() <= Duration::from_secs(60));
/// assert_eq!(Expiry::Never.remaining(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expiry {
    /// Never: the value lives until it is evicted.
    Never,
    /// At this instant, in Unix nanoseconds; a miss from then on.
    At(i64),
}

impl Expiry {
    /// Already expired: for values that must not be stored anywhere. On the
    /// wire it is `expire = 1` (1 ns after the epoch), never the 0 that
    /// means "never" to the forks.
    pub const UNCACHEABLE: Expiry = Expiry::At(1);

    /// `lifetime` from now; a zero lifetime is [`Expiry::UNCACHEABLE`].
    pub fn after(lifetime: Duration) -> Expiry {
        Expiry::after_at(lifetime, now_nanos())
    }

    /// `lifetime` after the instant `now` (Unix nanoseconds).
    pub fn after_at(lifetime: Duration, now: i64) -> Expiry {
        if lifetime.is_zero() {
            return Expiry::UNCACHEABLE;
        }
        let nanos = i64::try_from(lifetime.as_nanos()).unwrap_or(i64::MAX);
        Expiry::At(now.saturating_add(nanos))
    }

    /// The `expire` field of a `GetResponse`: absent or 0 is never.
    pub fn from_wire(expire: Option<i64>) -> Expiry {
        match expire {
            None | Some(0) => Expiry::Never,
            Some(nanos) => Expiry::At(nanos),
        }
    }

    /// The `expire` field to send: none for a value that never expires, so
    /// golang peers get byte-identical replies.
    pub fn to_wire(self) -> Option<i64> {
        match self {
            Expiry::Never => None,
            Expiry::At(nanos) => Some(nanos),
        }
    }

    /// True when the value is a miss at `now` (Unix nanoseconds).
    pub fn is_expired_at(self, now: i64) -> bool {
        matches!(self, Expiry::At(at) if at <= now)
    }

    /// True when the value is a miss now.
    pub fn is_expired(self) -> bool {
        match self {
            Expiry::Never => false,
            Expiry::At(_) => self.is_expired_at(now_nanos()),
        }
    }

    /// How long the value stays fresh from now: `None` when it never
    /// expires, zero when it already has.
    pub fn remaining(self) -> Option<Duration> {
        match self {
            Expiry::Never => None,
            Expiry::At(at) => {
                let left = at.saturating_sub(now_nanos()).max(0);
                Some(Duration::from_nanos(left.unsigned_abs()))
            }
        }
    }
}

/// The wall clock every expiry is computed and checked against. In unit
/// tests it runs [`advance_clock`] ahead of the system's, so an expiry
/// test moves time instead of racing it.
pub(crate) fn now() -> SystemTime {
    let now = SystemTime::now();
    #[cfg(test)]
    let now = now + CLOCK_AHEAD.with(std::cell::Cell::get);
    now
}

/// [`now`] in Unix nanoseconds.
pub(crate) fn now_nanos() -> i64 {
    unix_nanos(now())
}

#[cfg(test)]
thread_local! {
    /// How far this thread's clock runs ahead of the system's.
    static CLOCK_AHEAD: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::ZERO) };
}

/// Moves this thread's clock ([`now`]) forward by `by`: for unit tests on
/// one thread (`#[test]`, or `#[tokio::test]`'s current-thread runtime).
#[cfg(test)]
pub(crate) fn advance_clock(by: Duration) {
    CLOCK_AHEAD.with(|ahead| ahead.set(ahead.get() + by));
}

/// `time` in Unix nanoseconds (0 before 1970, saturating in 2262).
pub(crate) fn unix_nanos(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
    })
}

/// How long past its expiry a value may still be served (RFC 5861), in
/// whole seconds of at most 2^31.
///
/// ```
/// use std::time::Duration;
/// use groupcached::Grace;
///
/// let grace = Grace::new(Duration::from_secs(60), Duration::ZERO);
/// assert_eq!(grace.if_error(), Duration::from_secs(60));
/// assert_eq!(Grace::NONE.while_revalidate(), Duration::ZERO);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Grace {
    if_error: u32,
    while_revalidate: u32,
}

impl Grace {
    /// No grace: an expired value is a miss.
    pub const NONE: Grace = Grace {
        if_error: 0,
        while_revalidate: 0,
    };

    /// Served for `if_error` after expiry when a reload fails, and for
    /// `while_revalidate` while a reload runs in the background. Each is
    /// rounded down to whole seconds and capped at 2^31 s.
    pub fn new(if_error: Duration, while_revalidate: Duration) -> Grace {
        Grace {
            if_error: whole_seconds(if_error),
            while_revalidate: whole_seconds(while_revalidate),
        }
    }

    /// How long after expiry the value answers when a reload fails.
    pub fn if_error(self) -> Duration {
        Duration::from_secs(self.if_error.into())
    }

    /// How long after expiry the value answers at once while one reload
    /// runs in the background.
    pub fn while_revalidate(self) -> Duration {
        Duration::from_secs(self.while_revalidate.into())
    }

    /// True when an expired value is simply a miss.
    pub fn is_none(self) -> bool {
        self == Grace::NONE
    }

    /// The longer of the two windows, in nanoseconds.
    pub(crate) fn longest_nanos(self) -> i64 {
        i64::from(self.if_error.max(self.while_revalidate)) * 1_000_000_000
    }
}

/// `duration` in whole seconds, at most 2^31.
fn whole_seconds(duration: Duration) -> u32 {
    let most = crate::units::MAX_DELTA_SECONDS;
    // At most 2^31, so it fits.
    duration.as_secs().min(most) as u32
}

/// A value and its expiry. A getter whose values never expire can return
/// plain `Bytes`, which converts into a `Value` that never expires.
///
/// ```
/// use std::time::Duration;
/// use bytes::Bytes;
/// use groupcached::{Expiry, Value};
///
/// let forever = Value::from(Bytes::from_static(b"v"));
/// assert_eq!(forever.expiry, Expiry::Never);
/// let brief = Value::expiring_in("v", Duration::from_secs(5));
/// assert_eq!(brief.bytes, forever.bytes);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// The value itself.
    pub bytes: Bytes,
    /// When it stops being served.
    pub expiry: Expiry,
    /// How long past `expiry` it may still be served; `None`: as its
    /// group's `--stale-if-error` and `--stale-while-revalidate` say.
    pub grace: Option<Grace>,
}

impl Value {
    /// `bytes` expiring at `expiry`.
    pub fn new(bytes: impl Into<Bytes>, expiry: Expiry) -> Value {
        Value {
            bytes: bytes.into(),
            expiry,
            grace: None,
        }
    }

    /// This value with its own grace instead of its group's.
    pub fn with_grace(self, grace: Grace) -> Value {
        Value {
            grace: Some(grace),
            ..self
        }
    }

    /// `bytes` expiring `lifetime` from now.
    pub fn expiring_in(bytes: impl Into<Bytes>, lifetime: Duration) -> Value {
        Value::new(bytes, Expiry::after(lifetime))
    }
}

impl From<Bytes> for Value {
    fn from(bytes: Bytes) -> Value {
        Value::new(bytes, Expiry::Never)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_zero_and_absent_mean_never() {
        assert_eq!(Expiry::from_wire(None), Expiry::Never);
        assert_eq!(Expiry::from_wire(Some(0)), Expiry::Never);
        assert_eq!(Expiry::from_wire(Some(7)), Expiry::At(7));
        assert_eq!(Expiry::Never.to_wire(), None);
        assert_eq!(Expiry::UNCACHEABLE.to_wire(), Some(1));
    }

    #[test]
    fn expiry_is_a_point_in_time() {
        let now = 1_000_000_000;
        let expiry = Expiry::after_at(Duration::from_millis(1), now);
        assert_eq!(expiry, Expiry::At(now + 1_000_000));
        assert!(!expiry.is_expired_at(now + 999_999));
        assert!(expiry.is_expired_at(now + 1_000_000));
        assert_eq!(Expiry::after_at(Duration::ZERO, now), Expiry::UNCACHEABLE);
        assert_eq!(
            Expiry::after_at(Duration::MAX, now),
            Expiry::At(i64::MAX),
            "saturates"
        );
        assert!(!Expiry::Never.is_expired());
        assert!(Expiry::UNCACHEABLE.is_expired());
        assert_eq!(Expiry::UNCACHEABLE.remaining(), Some(Duration::ZERO));
        assert_eq!(Expiry::Never.remaining(), None);
        let left = Expiry::after(Duration::from_secs(60)).remaining().unwrap();
        assert!(left > Duration::from_secs(59) && left <= Duration::from_secs(60));
    }
}
