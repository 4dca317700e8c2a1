//! Compressed copies of a group's values, for groups that send them in a
//! content coding (`--compress`): each made once per value and coding,
//! kept in an LRU bounded in bytes beside the main and hot caches, within
//! the group's `--cache-bytes`.
//!
//! A copy is found by key and coding, and used only for the value it was
//! made from (by the value's hash), so a written or reloaded value never
//! gets another value's copy. A value that did not shrink is remembered
//! as such, so it is not compressed again on every request.

use std::future::Future;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::cache::list::CacheStats;
use crate::singleflight::Flight;

/// The memory a copy takes beyond its key and bytes, charged with them:
/// the LRU's node (key, copy, links: 80 bytes), its share of the index,
/// the shared header its bytes get when first sent, and the allocator's
/// rounding.
pub(crate) const COPY_OVERHEAD: u64 = 160;

/// A copy of one value in one coding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompressedCopy {
    /// The hash of the value it was made from.
    pub(crate) source: u64,
    /// The compressed bytes and their hash; `None`: the value did not
    /// shrink.
    pub(crate) coded: Option<(Bytes, u64)>,
}

/// The copies of one group, at most `limit` bytes of them (keys, copies
/// and [`COPY_OVERHEAD`] each).
pub(crate) struct CompressedCopies {
    limit: u64,
    inner: Mutex<Inner>,
    /// Copies being made: one per key and coding at a time.
    making: Flight<CompressedCopy>,
}

struct Inner {
    /// Keyed by the value's key with the coding's tag after it.
    copies: ::lru::LruCache<Box<[u8]>, CompressedCopy>,
    stats: CacheStats,
}

impl CompressedCopies {
    pub(crate) fn new(limit: u64) -> CompressedCopies {
        CompressedCopies {
            limit,
            inner: Mutex::new(Inner {
                copies: ::lru::LruCache::unbounded(),
                stats: CacheStats::default(),
            }),
            making: Flight::default(),
        }
    }

    /// The copy of the value of `key` whose hash is `source` in the
    /// coding `tag`: the one kept, or one `make` makes and this keeps.
    /// Requests that ask at once wait for one `make`. `None` only when
    /// `make` panicked.
    pub(crate) async fn get_or_make<F, Fut>(
        &self,
        key: &[u8],
        tag: u8,
        source: u64,
        make: F,
    ) -> Option<CompressedCopy>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = CompressedCopy> + Send + 'static,
    {
        if let Some(copy) = self.get(key, tag, source) {
            return Some(copy);
        }
        let copy = self.making.run(&id(key, tag), make).await?;
        // Whoever asked at once keeps the same copy: the first put stores
        // it and the others replace it with itself. A copy of another
        // value (a write raced the request) is neither kept nor sent.
        if copy.source != source {
            return None;
        }
        self.put(key, tag, copy.clone());
        Some(copy)
    }

    /// The copy of the value of `key` whose hash is `source`, in the
    /// coding `tag`, if one is kept.
    pub(crate) fn get(&self, key: &[u8], tag: u8, source: u64) -> Option<CompressedCopy> {
        let id = id(key, tag);
        let mut inner = self.inner.lock();
        inner.stats.gets += 1;
        let copy = inner
            .copies
            .get(&id)
            .filter(|c| c.source == source)
            .cloned();
        inner.stats.hits += u64::from(copy.is_some());
        copy
    }

    /// Keeps `copy` for `key` in the coding `tag`, replacing an older one
    /// and evicting the least recently used copies to make room. A copy
    /// larger than the whole budget is not kept.
    pub(crate) fn put(&self, key: &[u8], tag: u8, copy: CompressedCopy) {
        let id = id(key, tag);
        let size = charge(&id, &copy);
        if size > self.limit {
            return;
        }
        let mut inner = self.inner.lock();
        if let Some(old) = inner.copies.put(id.clone(), copy) {
            inner.stats.bytes -= charge(&id, &old);
            inner.stats.items -= 1;
        }
        inner.stats.bytes += size;
        inner.stats.items += 1;
        while inner.stats.bytes > self.limit {
            // The budget is over only while some copy is held.
            let (old_id, old) = inner.copies.pop_lru().expect("a copy is held");
            inner.stats.bytes -= charge(&old_id, &old);
            inner.stats.items -= 1;
            inner.stats.evictions += 1;
        }
    }

    /// The most bytes the copies take.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// The copies' counters: bytes and items held, lookups, hits,
    /// evictions.
    pub(crate) fn stats(&self) -> CacheStats {
        self.inner.lock().stats
    }
}

fn id(key: &[u8], tag: u8) -> Box<[u8]> {
    let mut id = Vec::with_capacity(key.len() + 1);
    id.extend_from_slice(key);
    id.push(tag);
    id.into_boxed_slice()
}

/// What a copy counts against the budget.
fn charge(id: &[u8], copy: &CompressedCopy) -> u64 {
    let coded = copy.coded.as_ref().map_or(0, |(bytes, _)| bytes.len());
    (id.len() + coded) as u64 + COPY_OVERHEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(source: u64, len: usize) -> CompressedCopy {
        CompressedCopy {
            source,
            coded: Some((Bytes::from(vec![0; len]), source + 1)),
        }
    }

    #[test]
    fn a_copy_serves_only_the_value_it_was_made_from() {
        let copies = CompressedCopies::new(10_000);
        copies.put(b"k", 1, copy(7, 10));
        assert_eq!(copies.get(b"k", 1, 7), Some(copy(7, 10)));
        assert_eq!(copies.get(b"k", 1, 8), None, "another value");
        assert_eq!(copies.get(b"k", 2, 7), None, "another coding");
        assert_eq!(copies.get(b"j", 1, 7), None);
        copies.put(b"k", 1, copy(8, 20));
        assert_eq!(copies.get(b"k", 1, 8), Some(copy(8, 20)));
        let stats = copies.stats();
        assert_eq!((stats.items, stats.gets, stats.hits), (1, 5, 2));
        assert_eq!(stats.bytes, 2 + 20 + COPY_OVERHEAD);
        let flat = CompressedCopy {
            source: 9,
            coded: None,
        };
        copies.put(b"flat", 1, flat.clone());
        assert_eq!(copies.get(b"flat", 1, 9), Some(flat));
    }

    #[test]
    fn copies_stay_within_their_budget_least_recently_used_first_out() {
        let each = 2 + 100 + COPY_OVERHEAD;
        let copies = CompressedCopies::new(3 * each);
        for key in [b"a", b"b", b"c"] {
            copies.put(key, 1, copy(1, 100));
        }
        assert!(copies.get(b"a", 1, 1).is_some());
        copies.put(b"d", 1, copy(1, 100));
        assert!(
            copies.get(b"b", 1, 1).is_none(),
            "the least recently used went"
        );
        assert!(copies.get(b"a", 1, 1).is_some());
        let stats = copies.stats();
        assert_eq!(
            (stats.items, stats.bytes, stats.evictions),
            (3, 3 * each, 1)
        );
        copies.put(b"huge", 1, copy(1, 10_000));
        assert!(
            copies.get(b"huge", 1, 1).is_none(),
            "larger than the budget"
        );
        assert_eq!(copies.stats().items, 3);
    }
}
