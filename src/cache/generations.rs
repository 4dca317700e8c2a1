//! Write generations, one per stripe of keys (by hash). A write (a Set or
//! Remove from a user or a peer) bumps the generation of its key's stripe.
//! A load notes the generation before it starts and stores its value only
//! if no write came in between, so a load that began before a write can
//! never put the older value back afterwards. A write to any key of a
//! stripe stops the loads of the stripe's other keys in flight at that
//! moment from being stored too: they are served all the same, which costs
//! a reload and never serves anything stale.

/// How many write generations a group keeps.
const STRIPES: usize = 1024;

/// The write generation of every stripe.
pub(super) struct Generations(Box<[u64; STRIPES]>);

impl Generations {
    pub(super) fn new() -> Generations {
        Generations(Box::new([0; STRIPES]))
    }

    /// The generation of `key`'s stripe.
    pub(super) fn of(&self, key: &[u8]) -> u64 {
        self.0[stripe(key)]
    }

    /// Whether a write of `key`'s stripe came after generation `since`
    /// was read.
    pub(super) fn written_since(&self, key: &[u8], since: u64) -> bool {
        self.of(key) != since
    }

    /// Counts a write of `key`.
    pub(super) fn bump(&mut self, key: &[u8]) {
        self.0[stripe(key)] += 1;
    }
}

fn stripe(key: &[u8]) -> usize {
    (crate::consistenthash::fnv1_64(key) % STRIPES as u64) as usize
}

#[cfg(test)]
mod tests {
    use crate::cache::tests::v;
    use crate::cache::{Caches, Which};

    #[test]
    fn a_write_keeps_an_older_load_out() {
        let caches = Caches::new(1000);
        let before = caches.generation(b"k");
        caches.write(b"k", Some((Which::Main, v(b"new")))).unwrap();
        // A load that began before the write finishes now: served, not stored.
        let loaded = caches.add_unless_written(Which::Main, b"k", v(b"old"), Some(before));
        assert_eq!(loaded.bytes, "old");
        assert_eq!(caches.get(b"k").unwrap().bytes, "new");
        // A load that began after the write is stored.
        let after = caches.generation(b"k");
        caches.write(b"k", None).unwrap();
        assert!(caches.get(b"k").is_none());
        caches.add_unless_written(Which::Main, b"k", v(b"old"), Some(after));
        assert!(caches.get(b"k").is_none(), "removed after that load began");
        let now = caches.generation(b"k");
        caches.add_unless_written(Which::Main, b"k", v(b"fresh"), Some(now));
        assert_eq!(caches.get(b"k").unwrap().bytes, "fresh");
    }
}
