//! How often each key is asked for: a count-min sketch with aging (the
//! frequency estimate of TinyLFU), and the hottest keys.
//!
//! Every get at a node touches its key: four 16-bit counters, one per row,
//! picked by one 64-bit hash of the key; the estimate is the smallest of
//! the four (never less than the true count, and rarely much more while
//! the rows are wider than the keys in use). After `window` touches every
//! counter is halved, so the counts follow what is asked for now and old
//! favourites fade. A count converts to a rate with the length of the
//! last window: a key asked `r` times a second settles between `r·T` and
//! `2r·T` for a window of `T` seconds, so the rate is taken as
//! `count / 1.5T`.
//!
//! The memory is fixed when the group is made: `4 × width` counters of two
//! bytes, `width` a power of two near the number of entries the cache can
//! hold (at most 2^20), and the [`TOP_KEYS`] hottest keys.
//!
//! A count-min sketch was chosen over a decayed counter in each cache
//! entry because keys that are *not* cached need an estimate too (a hot
//! copy is admitted by comparing the candidate with the entry it would
//! evict), and because it keeps cache entries as small as they were.

use std::time::{Duration, Instant};

/// How many of the hottest keys are kept for `/status`.
pub(crate) const TOP_KEYS: usize = 16;

/// Counters per row for a cache of `entries` entries.
fn width_for(entries: u64) -> usize {
    entries.clamp(1 << 10, 1 << 20).next_power_of_two() as usize
}

/// The estimate of how often keys are asked for.
pub(crate) struct Heat {
    /// Four rows of `mask + 1` counters, one after the other.
    counters: Box<[u16]>,
    mask: usize,
    /// Touches since the last halving, and how many make a window.
    touches: u64,
    window: u64,
    started: Instant,
    /// How long the last complete window took.
    last_window: Option<Duration>,
    /// The hottest keys seen: (hash, key, count), hottest first after
    /// [`Heat::top`] sorts them.
    top: Vec<(u64, Box<[u8]>, u32)>,
    /// The smallest count in a full `top`.
    top_min: u32,
}

impl Heat {
    /// A sketch sized for a cache of about `entries` entries.
    pub(crate) fn new(entries: u64) -> Heat {
        let width = width_for(entries);
        Heat {
            counters: vec![0; 4 * width].into_boxed_slice(),
            mask: width - 1,
            touches: 0,
            window: 10 * width as u64,
            started: Instant::now(),
            last_window: None,
            top: Vec::with_capacity(TOP_KEYS),
            top_min: 0,
        }
    }

    /// The sketch's hash of `key`.
    pub(crate) fn hash(key: &[u8]) -> u64 {
        mix(crate::consistenthash::fnv1_64(key))
    }

    /// Counts one request for `key` (whose [`Heat::hash`] is `hash`) and
    /// returns its estimate.
    pub(crate) fn touch(&mut self, key: &[u8], hash: u64) -> u32 {
        let mut estimate = u16::MAX;
        for index in self.indexes(hash) {
            let counter = &mut self.counters[index];
            *counter = counter.saturating_add(1);
            estimate = estimate.min(*counter);
        }
        let estimate = u32::from(estimate);
        self.note_top(key, hash, estimate);
        self.touches += 1;
        if self.touches >= self.window {
            self.age();
        }
        estimate
    }

    /// The estimate of `key`'s count, from its hash.
    pub(crate) fn estimate(&self, hash: u64) -> u32 {
        let counts = self.indexes(hash).map(|index| self.counters[index]);
        u32::from(counts.into_iter().min().unwrap_or(0))
    }

    /// Requests per second that a count stands for.
    pub(crate) fn rate(&self, count: u32) -> f64 {
        f64::from(count) / self.seconds_per_count()
    }

    /// The count that stands for `rate` requests per second (saturating).
    pub(crate) fn count_for_rate(&self, rate: f64) -> u32 {
        let count = rate * self.seconds_per_count();
        if count.is_finite() && count > 0.0 {
            count.min(f64::from(u32::MAX)) as u32
        } else {
            0
        }
    }

    /// `1.5 T` for the last complete window `T`; before the first one, the
    /// time since the start (a key's count is then all of its requests).
    fn seconds_per_count(&self) -> f64 {
        let seconds = match self.last_window {
            Some(window) => 1.5 * window.as_secs_f64(),
            None => self.started.elapsed().as_secs_f64(),
        };
        // At least a second: a count of a few in the first milliseconds
        // is not thousands of requests a second.
        seconds.max(1.0)
    }

    /// The hottest keys with their counts, hottest first.
    pub(crate) fn top(&self) -> Vec<(Box<[u8]>, u32)> {
        let mut top: Vec<_> = self.top.iter().map(|(_, k, c)| (k.clone(), *c)).collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top
    }

    /// The counters' memory, in bytes.
    #[cfg(test)]
    fn counter_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.counters)
    }

    /// One counter per row (Kirsch-Mitzenmacher: row `i` at `h1 + i·h2`).
    fn indexes(&self, hash: u64) -> [usize; 4] {
        let width = self.mask + 1;
        let (h1, h2) = (hash as usize, (hash >> 32) as usize | 1);
        std::array::from_fn(|row| row * width + (h1.wrapping_add(row.wrapping_mul(h2)) & self.mask))
    }

    /// Keeps `key` among the hottest if its count beats the coldest there.
    /// Counts only grow between halvings, so a count below the coldest
    /// cannot be one of them: most touches stop at the first comparison.
    fn note_top(&mut self, key: &[u8], hash: u64, count: u32) {
        let full = self.top.len() == TOP_KEYS;
        if full && count < self.top_min {
            return;
        }
        if let Some(slot) = self
            .top
            .iter_mut()
            .find(|(h, k, _)| *h == hash && **k == *key)
        {
            let was_coldest = slot.2 == self.top_min;
            slot.2 = count;
            if full && was_coldest {
                self.top_min = self.coldest().map_or(0, |i| self.top[i].2);
            }
            return;
        }
        if !full {
            self.top.push((hash, key.into(), count));
        } else if let Some(i) = self.coldest().filter(|&i| self.top[i].2 < count) {
            self.top[i] = (hash, key.into(), count);
        }
        if self.top.len() == TOP_KEYS {
            self.top_min = self.coldest().map_or(0, |i| self.top[i].2);
        }
    }

    fn coldest(&self) -> Option<usize> {
        (0..self.top.len()).min_by_key(|&i| self.top[i].2)
    }

    /// Halves every count: the window is over.
    fn age(&mut self) {
        for counter in self.counters.iter_mut() {
            *counter /= 2;
        }
        for slot in &mut self.top {
            slot.2 /= 2;
        }
        self.top_min /= 2;
        self.touches = 0;
        self.last_window = Some(self.started.elapsed());
        self.started = Instant::now();
    }
}

/// splitmix64's finalizer: spreads FNV's weak low bits over the word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(heat: &mut Heat, key: &[u8]) -> u32 {
        heat.touch(key, Heat::hash(key))
    }

    #[test]
    fn counts_what_is_asked_for() {
        let mut heat = Heat::new(1000);
        for _ in 0..5 {
            touch(&mut heat, b"a");
        }
        touch(&mut heat, b"b");
        assert_eq!(heat.estimate(Heat::hash(b"a")), 5);
        assert_eq!(heat.estimate(Heat::hash(b"b")), 1);
        assert_eq!(heat.estimate(Heat::hash(b"never")), 0);
    }

    #[test]
    fn halving_forgets_old_favourites() {
        let mut heat = Heat::new(1000);
        let window = heat.window;
        // An old favourite, then a window of other keys: it decays.
        for _ in 0..200 {
            touch(&mut heat, b"old");
        }
        for i in 0..window - 200 {
            touch(&mut heat, format!("k{}", i % 5000).as_bytes());
        }
        assert_eq!(heat.touches, 0, "a window went by");
        // Halved from 200 (plus what colliding keys added: a count-min
        // sketch never counts less than the truth).
        let old = heat.estimate(Heat::hash(b"old"));
        assert!((100..=110).contains(&old), "{old}");
        assert!(heat.last_window.is_some());
        // Rates and counts convert both ways.
        let count = heat.count_for_rate(heat.rate(old));
        assert!((old - 1..=old).contains(&count), "{count}");
        assert_eq!(heat.count_for_rate(f64::NAN), 0);
        assert_eq!(heat.count_for_rate(-3.0), 0);
    }

    #[test]
    fn heavy_hitters_are_found_in_a_zipf_stream() {
        // Zipf(1.01) over 100,000 keys, by inverse transform on the
        // cumulative weights, from a fixed splitmix64 stream.
        let n = 100_000;
        let weights: Vec<f64> = (1..=n)
            .map(|rank| 1.0 / f64::powf(rank as f64, 1.01))
            .collect();
        let total: f64 = weights.iter().sum();
        let mut cumulative = Vec::with_capacity(n);
        let mut sum = 0.0;
        for w in &weights {
            sum += w / total;
            cumulative.push(sum);
        }
        let mut state = 42u64;
        let mut heat = Heat::new(30_000);
        for _ in 0..500_000 {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let u = (mix(state) >> 11) as f64 / (1u64 << 53) as f64;
            let rank = cumulative.partition_point(|&c| c < u);
            touch(&mut heat, format!("key-{rank}").as_bytes());
        }
        // The ten most asked-for keys are the top ten, in order of rank
        // give or take neighbours of nearly equal weight.
        let top: Vec<String> = heat
            .top()
            .iter()
            .take(10)
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect();
        for rank in 0..5 {
            assert!(
                top.contains(&format!("key-{rank}")),
                "key-{rank} not in {top:?}"
            );
        }
        assert_eq!(top[0], "key-0");
        // Estimates of hot keys are far above those of the tail.
        let hot = heat.estimate(Heat::hash(b"key-0"));
        let cold = heat.estimate(Heat::hash(b"key-99999"));
        assert!(hot > 50 * cold.max(1), "{hot} vs {cold}");
    }

    #[test]
    fn memory_is_fixed_by_the_cache_size() {
        assert_eq!(Heat::new(0).counter_bytes(), 4 * 1024 * 2);
        assert_eq!(Heat::new(100_000).counter_bytes(), 4 * 131_072 * 2);
        assert_eq!(
            Heat::new(u64::MAX).counter_bytes(),
            4 * (1 << 20) * 2,
            "at most 8 MiB"
        );
        let mut heat = Heat::new(1000);
        for i in 0..100_000 {
            touch(&mut heat, format!("k{i}").as_bytes());
        }
        assert_eq!(heat.top.len(), TOP_KEYS, "the top list stays short");
        assert_eq!(heat.counter_bytes(), 4 * 1024 * 2);
    }
}
