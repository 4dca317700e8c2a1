//! An entry as the caches hold it, in its slot of an [`Lru`]: its value
//! (or a not-found's message) in a buffer of exactly the value's length
//! ([`Payload`]), shared with the replies that send it, and its expiry and
//! grace packed into 24 bytes besides the key and that buffer.
//!
//! [`Lru`]: crate::cache::lru::Lru

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::cache::lookup::{Lookup, Which};
use crate::value::{Expiry, Grace, Value};

/// An entry as a cache holds it: 24 bytes besides the key and the value's
/// buffer.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// The value, or a not-found's message.
    pub(super) payload: Payload,
    /// Unix nanoseconds; 0: never.
    pub(super) expires: i64,
    /// Seconds of `stale-if-error`.
    if_error: u32,
    /// Seconds of `stale-while-revalidate`; [`NOT_FOUND`] for a not-found.
    pub(super) while_revalidate: u32,
}

/// Marks a not-found entry (no grace is this long: they stop at 2^31 s).
const NOT_FOUND: u32 = u32::MAX;

impl Entry {
    pub(super) fn new(value: Value) -> Entry {
        let grace = value.grace.unwrap_or_default();
        // Seconds of at most 2^31, by `Grace`'s own rule.
        let seconds = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX - 1);
        Entry {
            payload: Payload::new(value.bytes),
            expires: expires(value.expiry),
            if_error: seconds(grace.if_error()),
            while_revalidate: seconds(grace.while_revalidate()),
        }
    }

    pub(super) fn not_found(message: &str, expiry: Expiry) -> Entry {
        Entry {
            payload: Payload::copy(message.as_bytes()),
            expires: expires(expiry),
            if_error: 0,
            while_revalidate: NOT_FOUND,
        }
    }

    pub(super) fn is_not_found(&self) -> bool {
        self.while_revalidate == NOT_FOUND
    }

    fn expiry(&self) -> Expiry {
        Expiry::from_wire(Some(self.expires))
    }

    fn grace(&self) -> Grace {
        if self.is_not_found() {
            return Grace::NONE;
        }
        let secs = |s: u32| Duration::from_secs(s.into());
        Grace::new(secs(self.if_error), secs(self.while_revalidate))
    }

    /// What a lookup that finds it live answers, in the cache `which`.
    pub(super) fn found(&self, which: Which) -> Lookup {
        if self.is_not_found() {
            let message = String::from_utf8_lossy(self.payload.as_ref()).into_owned();
            return Lookup::NotFound(message, self.expiry());
        }
        Lookup::Hit(self.value(), which)
    }

    /// The value, sharing the entry's buffer.
    pub(super) fn value(&self) -> Value {
        Value::new(self.payload.to_bytes(), self.expiry()).with_grace(self.grace())
    }

    /// True when it is a miss at `now`, grace or not.
    pub(super) fn is_expired_at(&self, now: i64) -> bool {
        self.expires != 0 && self.expires <= now
    }

    /// The instant its grace ends (Unix nanoseconds), when it has one.
    pub(super) fn grace_ends(&self) -> Option<i64> {
        let grace = self.grace();
        (self.expires != 0 && !grace.is_none())
            .then(|| self.expires.saturating_add(grace.longest_nanos()))
    }
}

/// A value's bytes as a cache keeps them: one buffer of exactly their
/// length, shared by reference count with the replies that send it.
#[derive(Debug, Clone)]
pub(super) struct Payload(Arc<Box<[u8]>>);

impl Payload {
    /// Keeps `bytes` without copying them when they alone own a buffer of
    /// their exact length (a body the HTTP client read), and copies them
    /// once otherwise: a slice of a larger buffer (a peer's reply, a
    /// request body) would keep all of it, and a buffer with room to spare
    /// takes a larger size class of the allocator.
    fn new(bytes: Bytes) -> Payload {
        let bytes = Vec::from(bytes);
        if bytes.len() == bytes.capacity() {
            Payload(Arc::new(bytes.into_boxed_slice()))
        } else {
            Payload::copy(&bytes)
        }
    }

    fn copy(bytes: &[u8]) -> Payload {
        Payload(Arc::new(bytes.into()))
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    /// The bytes, shared rather than copied: each call allocates a
    /// `Bytes`' small header that holds one count of the buffer.
    fn to_bytes(&self) -> Bytes {
        Bytes::from_owner(self.clone())
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// An expiry as an entry keeps it: 0 for never (an expiry at the epoch
/// itself has passed like any other, so it becomes 1).
fn expires(expiry: Expiry) -> i64 {
    expiry.to_wire().map_or(0, |at| at.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Caches;

    #[test]
    fn a_value_alone_in_a_buffer_of_its_size_is_kept_and_others_are_copied() {
        let caches = Caches::new(10_000);
        let alone = Bytes::from(vec![1u8; 1024]);
        let at = alone.as_ptr();
        let served = caches.add(Which::Main, b"alone", Value::from(alone));
        assert_eq!(served.bytes.as_ptr(), at, "not copied");
        let hit = caches.get(b"alone").unwrap().bytes;
        assert_eq!(hit.as_ptr(), at, "hits share it");
        // A value sliced out of a larger buffer, such as a peer's reply.
        let slice = Bytes::from(vec![2u8; 2048]).slice(100..1124);
        let at = slice.as_ptr();
        let served = caches.add(Which::Main, b"slice", Value::from(slice));
        assert_ne!(served.bytes.as_ptr(), at, "copied out");
        assert_eq!(served.bytes, vec![2u8; 1024]);
        let hit = caches.get(b"slice").unwrap().bytes;
        assert_eq!(hit.as_ptr(), served.bytes.as_ptr());
    }

    #[test]
    fn an_entry_takes_24_bytes_of_its_slot() {
        assert_eq!(std::mem::size_of::<Entry>(), 24);
    }
}
