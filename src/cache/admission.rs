//! TinyLFU admission of hot copies, weighed by size. A copy of another
//! owner's value offered to the hot cache is admitted when there is room,
//! or when its count here (or the count the owner's reported rate stands
//! for) beats the summed counts of every entry the victim rule would evict
//! for it: the hot cache fills with what is asked for most, not with
//! whatever came last, and one large copy cannot push out many entries
//! that are asked for more together.

use crate::cache::entry::Entry;
use crate::cache::heat::Heat;
use crate::cache::list::{Held, List};
use crate::cache::stale::Stale;

/// The most entries a hot copy's admission weighs one by one; beyond them
/// the rest are taken to be as hot, per byte, as those weighed.
const MOST_WEIGHED: usize = 1024;

/// The caches as a hot copy's admission sees them.
pub(super) struct Weighing<'a> {
    pub(super) main: &'a List<Entry>,
    pub(super) hot: &'a List<Entry>,
    pub(super) stale: &'a List<Stale>,
    pub(super) heat: &'a Heat,
    /// The most bytes the lists may be charged together.
    pub(super) limit: u64,
    /// What each entry is charged beyond its key and value.
    pub(super) overhead: u64,
}

impl Weighing<'_> {
    /// Whether a hot copy of the key hashed `hash`, charged `charge` bytes,
    /// may take its room: its own count here, or the count `reported_rate`
    /// (the owner's requests per second) stands for, whichever is larger,
    /// must beat the entries it would evict.
    pub(super) fn admits(&self, hash: u64, charge: u64, reported_rate: Option<f64>) -> bool {
        let own = self.heat.estimate(hash);
        let reported = reported_rate.map_or(0, |rate| self.heat.count_for_rate(rate));
        self.beats_victims(charge, own.max(reported))
    }

    /// Whether a hot copy charged `charge` bytes and asked for `count`
    /// times may take its room: true when there is room (or stale entries
    /// make it), or when `count` beats the summed counts of every entry the
    /// victim rule would evict for it, in the order it would evict them.
    /// False when the rule would evict the copy itself. Past
    /// [`MOST_WEIGHED`] victims, the rest are taken to be as hot per byte
    /// as those weighed.
    fn beats_victims(&self, charge: u64, count: u32) -> bool {
        let overhead = self.overhead;
        let mut hot = self.hot.charged(overhead) + charge;
        let mut main = self.main.charged(overhead);
        let stale = self.stale.charged(overhead);
        let over = (main + hot + stale).saturating_sub(self.limit);
        // Stale entries go first, whatever their heat.
        let Some(over) = over.checked_sub(stale) else {
            return true;
        };
        if over == 0 {
            return true;
        }
        let mut hot_victims = self.hot.entries.iter_oldest_first();
        let mut main_victims = self.main.entries.iter_oldest_first();
        let (mut freed, mut weighed) = (0u64, 0u64);
        for _ in 0..MOST_WEIGHED {
            let from_hot = hot > main / 8;
            let victim = if from_hot {
                hot_victims.next()
            } else {
                main_victims.next()
            };
            // Hot has nothing older: the copy itself would go.
            let Some((key, entry)) = victim else {
                return false;
            };
            let bytes = (key.len() + entry.len()) as u64 + overhead;
            if from_hot {
                hot -= bytes;
            } else {
                main -= bytes;
            }
            weighed += u64::from(self.heat.estimate(Heat::hash(key)));
            if weighed >= u64::from(count) {
                return false;
            }
            freed += bytes;
            if freed >= over {
                return true;
            }
        }
        // Without an overhead (tests), empty entries could free nothing.
        (count as f64) > weighed as f64 * over as f64 / freed.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use crate::cache::tests::{ask, v};
    use crate::cache::{Caches, Which, ENTRY_OVERHEAD};

    #[test]
    fn hot_copies_are_admitted_by_heat() {
        // Room for ten 10-byte entries; five owned values.
        let caches = Caches::without_overhead(100);
        for i in 0..5 {
            caches.add(Which::Main, format!("m{i}").as_bytes(), v(b"01234567"));
        }
        // While there is room, every copy is kept.
        for i in 0..5 {
            let key = format!("h{i}");
            ask(&caches, key.as_bytes(), 5);
            let since = caches.generation(key.as_bytes());
            let offered = caches.offer_hot(key.as_bytes(), v(b"01234567"), since, None);
            assert_eq!(offered.1, Some(true));
        }
        // Full: a key asked for once loses to the coldest hot copy...
        ask(&caches, b"c0", 1);
        let since = caches.generation(b"c0");
        assert_eq!(
            caches.offer_hot(b"c0", v(b"01234567"), since, None).1,
            Some(false)
        );
        assert!(caches.get(b"c0").is_none());
        // ...unless its owner reports it hot.
        let (_, admitted) = caches.offer_hot(b"c0", v(b"01234567"), since, Some(1e6));
        assert_eq!(admitted, Some(true), "the owner's rate counts");
        // A key asked for more than the coldest copy replaces it.
        ask(&caches, b"w0", 20);
        let since = caches.generation(b"w0");
        assert!(caches.offer_hot(b"w0", v(b"01234567"), since, None).1 == Some(true));
        assert!(caches.get(b"w0").is_some());
        // Owned values were never evicted for hot copies.
        for i in 0..5 {
            assert!(caches.get(format!("m{i}").as_bytes()).is_some(), "m{i}");
        }
        let (main, hot, _) = caches.stats();
        assert_eq!((main.items, main.evictions), (5, 0));
        assert_eq!((hot.items, hot.evictions), (5, 2));
    }

    #[test]
    fn a_large_copy_does_not_push_out_many_warmer_entries() {
        // Hot full of 80 entries asked for 5 times each.
        let charge = |key: &[u8], value: usize| key.len() as u64 + value as u64 + ENTRY_OVERHEAD;
        let small = |i: usize| format!("s{i:02}");
        let caches = Caches::new(80 * charge(b"s00", 100));
        for i in 0..80 {
            let key = small(i);
            ask(&caches, key.as_bytes(), 5);
            let since = caches.generation(key.as_bytes());
            let offered = caches.offer_hot(key.as_bytes(), v(&[1; 100]), since, None);
            assert_eq!(offered.1, Some(true), "{key}: room for it");
        }
        // A value the size of 70 of them, asked for 6 times: more than any
        // one of them, less than the 70 together.
        let big = vec![2u8; 70 * charge(b"s00", 100) as usize];
        ask(&caches, b"big", 6);
        let since = caches.generation(b"big");
        let (served, admitted) = caches.offer_hot(b"big", v(&big), since, None);
        assert_eq!(served.bytes.len(), big.len(), "served all the same");
        assert_eq!(admitted, Some(false));
        let (_, hot, _) = caches.stats();
        assert_eq!((hot.items, hot.evictions), (80, 0), "none pushed out");
        // Reported hotter than all of them together, it takes their room.
        let (_, admitted) = caches.offer_hot(b"big", v(&big), since, Some(1e6));
        assert_eq!(admitted, Some(true));
        assert!(caches.get(b"big").is_some());
        assert_eq!(caches.stats().1.evictions, 71);
    }

    #[test]
    fn owned_values_push_hot_copies_out_and_a_write_stops_an_offer() {
        let caches = Caches::without_overhead(100);
        for i in 0..10 {
            let key = format!("h{i}");
            let since = caches.generation(key.as_bytes());
            caches.offer_hot(key.as_bytes(), v(b"01234567"), since, None);
        }
        // Hot holds everything; owned values take its room back.
        for i in 0..8 {
            caches.add(Which::Main, format!("m{i}").as_bytes(), v(b"01234567"));
        }
        let (main, hot, _) = caches.stats();
        assert_eq!((main.items, hot.items), (8, 2));
        // A copy fetched before a write is not kept.
        let since = caches.generation(b"x");
        caches.write(b"x", None).unwrap();
        assert_eq!(caches.offer_hot(b"x", v(b"01234567"), since, None).1, None);
        // The rate of a key follows its lookups.
        ask(&caches, b"m0", 30);
        assert!(caches.rate(b"m0") > caches.rate(b"m1"));
        let top = caches.hot_keys();
        assert_eq!(&*top[0].key, b"m0");
        assert_eq!(top[0].held, Some(Which::Main));
    }
}
