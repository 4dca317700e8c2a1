//! A least-recently-used map from byte-string keys to values: the caches'
//! bookkeeping, like golang's `lru` package, laid out for millions of small
//! entries.
//!
//! Entries live in the slots of a slab that grows by chunks of [`CHUNK`]
//! slots, one allocation each, so growing never copies slots nor leaves a
//! doubled buffer half empty; the slot of an entry taken out is the next
//! one used. The recency list links slots by 32-bit slot number, and the
//! index is a hash table of slot numbers (4 bytes a bucket) by a seeded
//! hash of the key. A key of up to [`SHORT_KEY`] bytes is kept in its
//! slot, a longer one in an allocation of its own. Getting, putting,
//! removing and popping the oldest entry take constant time. The slab does
//! not shrink: the slots of entries taken out wait for the next ones.

use std::hash::BuildHasher;
use std::ops::Deref;

use hashbrown::{DefaultHashBuilder, HashTable};

/// Slots per chunk of the slab.
const CHUNK: usize = 1024;

/// The slot number that stands for no slot.
const NIL: u32 = u32::MAX;

/// The most entries a map can hold: one per slot number but [`NIL`].
const MAX_LEN: usize = NIL as usize;

/// Keys of at most this many bytes are kept in their slot.
const SHORT_KEY: usize = 22;

/// Values `V` by key, newest to oldest.
pub(crate) struct Lru<V> {
    slab: Slab<V>,
    /// Slot numbers, by the hash of their key.
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// The most recently used slot, and the least; [`NIL`] when empty.
    newest: u32,
    oldest: u32,
    /// Entries at most: [`MAX_LEN`], fewer in tests.
    capacity: usize,
}

/// What [`Lru::push`] took out.
#[derive(Debug, PartialEq)]
pub(crate) enum Pushed<V> {
    /// Nothing: the key is new, and there was room.
    New,
    /// The key's previous value.
    Replaced(V),
    /// The oldest entry, to make room: the map was full.
    Evicted(Key, V),
}

impl<V> Lru<V> {
    pub(crate) fn new() -> Lru<V> {
        Lru::with_capacity(MAX_LEN)
    }

    /// A map of at most `capacity` entries (up to [`MAX_LEN`]).
    fn with_capacity(capacity: usize) -> Lru<V> {
        Lru {
            slab: Slab::default(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            newest: NIL,
            oldest: NIL,
            capacity: capacity.min(MAX_LEN),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// The value of `key`, which becomes the most recently used.
    pub(crate) fn get(&mut self, key: &[u8]) -> Option<&mut V> {
        let slot = self.find(key)?;
        self.unlink(slot);
        self.link_newest(slot);
        Some(&mut self.slab.node_mut(slot).value)
    }

    /// The value of `key`, leaving the order alone.
    #[cfg(test)]
    pub(crate) fn peek(&self, key: &[u8]) -> Option<&V> {
        let slot = self.find(key)?;
        Some(&self.slab.node(slot).value)
    }

    /// [`Lru::peek`], to change the value in place.
    pub(crate) fn peek_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let slot = self.find(key)?;
        Some(&mut self.slab.node_mut(slot).value)
    }

    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        self.find(key).is_some()
    }

    /// Puts `value` under `key` as the most recently used entry, and says
    /// what it took out: the key's previous value, or the oldest entry
    /// when the map was full.
    pub(crate) fn push(&mut self, key: &[u8], value: V) -> Pushed<V> {
        if let Some(slot) = self.find(key) {
            self.unlink(slot);
            self.link_newest(slot);
            let old = std::mem::replace(&mut self.slab.node_mut(slot).value, value);
            return Pushed::Replaced(old);
        }
        let evicted = if self.len() >= self.capacity {
            self.pop_oldest()
        } else {
            None
        };
        let slot = self.slab.insert(Node {
            key: Key::new(key),
            value,
            newer: NIL,
            older: NIL,
        });
        self.link_newest(slot);
        let (slab, hasher) = (&self.slab, &self.hasher);
        let hash = hasher.hash_one(key);
        let rehash = |&slot: &u32| hasher.hash_one(slab.key(slot));
        self.index.insert_unique(hash, slot, rehash);
        match evicted {
            Some((key, value)) => Pushed::Evicted(key, value),
            None => Pushed::New,
        }
    }

    /// Takes `key`'s entry out.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<(Key, V)> {
        let hash = self.hasher.hash_one(key);
        let slab = &self.slab;
        let found = self.index.find_entry(hash, |&slot| slab.key(slot) == key);
        let (slot, _) = found.ok()?.remove();
        Some(self.take(slot))
    }

    /// Takes the least recently used entry out.
    pub(crate) fn pop_oldest(&mut self) -> Option<(Key, V)> {
        let slot = self.oldest;
        if slot == NIL {
            return None;
        }
        let hash = self.hasher.hash_one(self.slab.key(slot));
        // Always found: every entry's slot is in the index.
        if let Ok(found) = self.index.find_entry(hash, |&other| other == slot) {
            found.remove();
        }
        Some(self.take(slot))
    }

    /// The least recently used entry.
    #[cfg(test)]
    pub(crate) fn peek_oldest(&self) -> Option<(&[u8], &V)> {
        (self.oldest != NIL).then(|| self.slab.entry(self.oldest))
    }

    /// The entries, least recently used first.
    pub(crate) fn iter_oldest_first(&self) -> impl Iterator<Item = (&[u8], &V)> + '_ {
        let first = (self.oldest != NIL).then_some(self.oldest);
        let newer = |&slot: &u32| {
            let newer = self.slab.node(slot).newer;
            (newer != NIL).then_some(newer)
        };
        std::iter::successors(first, newer).map(|slot| self.slab.entry(slot))
    }

    /// The slot holding `key`.
    fn find(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        let found = self.index.find(hash, |&slot| self.slab.key(slot) == key);
        found.copied()
    }

    /// Takes the entry of `slot`, already out of the index, off the list
    /// and out of the slab.
    fn take(&mut self, slot: u32) -> (Key, V) {
        self.unlink(slot);
        let node = self.slab.remove(slot);
        (node.key, node.value)
    }

    /// Takes `slot` off the recency list.
    fn unlink(&mut self, slot: u32) {
        let Node { newer, older, .. } = *self.slab.node(slot);
        match newer {
            NIL => self.newest = older,
            newer => self.slab.node_mut(newer).older = older,
        }
        match older {
            NIL => self.oldest = newer,
            older => self.slab.node_mut(older).newer = newer,
        }
    }

    /// Puts `slot`, off the list, at its newest end.
    fn link_newest(&mut self, slot: u32) {
        let previous = self.newest;
        let node = self.slab.node_mut(slot);
        node.newer = NIL;
        node.older = previous;
        match previous {
            NIL => self.oldest = slot,
            previous => self.slab.node_mut(previous).newer = slot,
        }
        self.newest = slot;
    }
}

/// A key's bytes: in its slot when short, else in an allocation of their
/// own.
#[derive(Debug, PartialEq)]
pub(crate) enum Key {
    Short { len: u8, bytes: [u8; SHORT_KEY] },
    Long(Box<[u8]>),
}

impl Key {
    fn new(key: &[u8]) -> Key {
        if key.len() > SHORT_KEY {
            return Key::Long(key.into());
        }
        let mut bytes = [0; SHORT_KEY];
        bytes[..key.len()].copy_from_slice(key);
        // At most SHORT_KEY: the length fits a byte.
        let len = key.len() as u8;
        Key::Short { len, bytes }
    }
}

impl Deref for Key {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Key::Short { len, bytes } => &bytes[..usize::from(*len)],
            Key::Long(bytes) => bytes,
        }
    }
}

/// An entry, and its neighbours on the recency list.
struct Node<V> {
    key: Key,
    value: V,
    /// The slot used next after this one, or [`NIL`].
    newer: u32,
    /// The slot used last before this one, or [`NIL`].
    older: u32,
}

enum Slot<V> {
    Used(Node<V>),
    /// Free, and the next free slot (or [`NIL`]).
    Free(u32),
}

/// Slots in chunks of [`CHUNK`], and a list of the free ones.
struct Slab<V> {
    chunks: Vec<Vec<Slot<V>>>,
    /// The first free slot, or [`NIL`].
    free: u32,
}

impl<V> Default for Slab<V> {
    fn default() -> Slab<V> {
        Slab {
            chunks: Vec::new(),
            free: NIL,
        }
    }
}

impl<V> Slab<V> {
    /// Puts `node` in a free slot, or in a new one; the map's capacity
    /// keeps the new slot's number below [`NIL`].
    fn insert(&mut self, node: Node<V>) -> u32 {
        if self.free != NIL {
            let slot = self.free;
            // The free list holds free slots only.
            if let Slot::Free(next) = std::mem::replace(self.slot_mut(slot), Slot::Used(node)) {
                self.free = next;
            }
            return slot;
        }
        if self.chunks.last().is_none_or(|chunk| chunk.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let full_chunks = self.chunks.len() - 1;
        let chunk = &mut self.chunks[full_chunks];
        let slot = full_chunks * CHUNK + chunk.len();
        chunk.push(Slot::Used(node));
        slot as u32
    }

    /// Frees `slot`, returning its node.
    fn remove(&mut self, slot: u32) -> Node<V> {
        let next = self.free;
        let free = std::mem::replace(self.slot_mut(slot), Slot::Free(next));
        self.free = slot;
        match free {
            Slot::Used(node) => node,
            Slot::Free(_) => unreachable!("slot {slot} was free"),
        }
    }

    fn slot_mut(&mut self, slot: u32) -> &mut Slot<V> {
        let slot = slot as usize;
        &mut self.chunks[slot / CHUNK][slot % CHUNK]
    }

    // The slot numbers in the index and on the recency list are those of
    // used slots: `node` and `node_mut` are never asked for a free one.

    fn node(&self, slot: u32) -> &Node<V> {
        let at = slot as usize;
        match &self.chunks[at / CHUNK][at % CHUNK] {
            Slot::Used(node) => node,
            Slot::Free(_) => unreachable!("slot {slot} is free"),
        }
    }

    fn node_mut(&mut self, slot: u32) -> &mut Node<V> {
        match self.slot_mut(slot) {
            Slot::Used(node) => node,
            Slot::Free(_) => unreachable!("slot {slot} is free"),
        }
    }

    fn key(&self, slot: u32) -> &[u8] {
        &self.node(slot).key
    }

    fn entry(&self, slot: u32) -> (&[u8], &V) {
        let node = self.node(slot);
        (&node.key, &node.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys, oldest first.
    fn order(lru: &Lru<u32>) -> Vec<Vec<u8>> {
        lru.iter_oldest_first()
            .map(|(key, _)| key.to_vec())
            .collect()
    }

    fn keys(keys: &[&str]) -> Vec<Vec<u8>> {
        keys.iter().map(|key| key.as_bytes().to_vec()).collect()
    }

    #[test]
    fn gets_make_entries_the_newest_and_peeks_do_not() {
        let mut lru = Lru::new();
        for (value, key) in ["a", "b", "c"].iter().enumerate() {
            assert_eq!(lru.push(key.as_bytes(), value as u32), Pushed::New);
        }
        assert_eq!(order(&lru), keys(&["a", "b", "c"]));
        assert_eq!(lru.get(b"a"), Some(&mut 0));
        assert_eq!(order(&lru), keys(&["b", "c", "a"]));
        assert_eq!(lru.peek(b"b"), Some(&1));
        *lru.peek_mut(b"b").unwrap() = 7;
        assert_eq!(order(&lru), keys(&["b", "c", "a"]));
        assert_eq!(lru.peek_oldest(), Some((&b"b"[..], &7)));
        assert_eq!(lru.get(b"x"), None);
        assert!(lru.contains(b"c") && !lru.contains(b"x"));
        assert_eq!(lru.len(), 3);
    }

    #[test]
    fn a_push_replaces_the_value_and_makes_it_the_newest() {
        let mut lru = Lru::new();
        lru.push(b"a", 1);
        lru.push(b"b", 2);
        assert_eq!(lru.push(b"a", 3), Pushed::Replaced(1));
        assert_eq!(order(&lru), keys(&["b", "a"]));
        assert_eq!(lru.peek(b"a"), Some(&3));
        assert_eq!(lru.len(), 2);
    }

    #[test]
    fn removes_from_anywhere_in_the_order() {
        let mut lru = Lru::new();
        for key in ["a", "b", "c", "d"] {
            lru.push(key.as_bytes(), 0);
        }
        let (key, _) = lru.remove(b"b").unwrap();
        assert_eq!(&*key, b"b");
        assert_eq!(order(&lru), keys(&["a", "c", "d"]));
        lru.remove(b"d");
        assert_eq!(order(&lru), keys(&["a", "c"]));
        lru.remove(b"a");
        assert_eq!(order(&lru), keys(&["c"]));
        assert_eq!(lru.remove(b"a"), None);
        lru.remove(b"c");
        assert_eq!((lru.len(), lru.peek_oldest()), (0, None));
        lru.push(b"e", 0);
        assert_eq!(order(&lru), keys(&["e"]));
    }

    #[test]
    fn pops_the_oldest_first() {
        let mut lru = Lru::new();
        for (value, key) in ["a", "b", "c"].iter().enumerate() {
            lru.push(key.as_bytes(), value as u32);
        }
        lru.get(b"a");
        let popped: Vec<_> = std::iter::from_fn(|| lru.pop_oldest())
            .map(|(key, value)| (key.to_vec(), value))
            .collect();
        assert_eq!(
            popped,
            [(b"b".to_vec(), 1), (b"c".to_vec(), 2), (b"a".to_vec(), 0)]
        );
        assert_eq!(lru.pop_oldest(), None);
        assert!(!lru.contains(b"a"), "out of the index too");
    }

    #[test]
    fn a_full_map_evicts_its_oldest_entry_to_make_room() {
        let mut lru = Lru::with_capacity(2);
        lru.push(b"a", 1);
        lru.push(b"b", 2);
        lru.get(b"a");
        assert_eq!(lru.push(b"a", 3), Pushed::Replaced(1), "no room needed");
        assert_eq!(lru.push(b"c", 4), Pushed::Evicted(Key::new(b"b"), 2));
        assert_eq!(order(&lru), keys(&["a", "c"]));
        assert_eq!(lru.len(), 2);
    }

    #[test]
    fn freed_slots_are_used_again_before_new_ones() {
        let mut lru = Lru::new();
        for i in 0..10u32 {
            lru.push(&i.to_be_bytes(), i);
        }
        for i in [3u32, 7, 5] {
            lru.remove(&i.to_be_bytes());
        }
        for i in 10..13u32 {
            lru.push(&i.to_be_bytes(), i);
        }
        assert_eq!(lru.slab.chunks[0].len(), 10, "no slot added");
        assert_eq!(lru.slab.free, NIL);
        // The last freed slot is the first used again.
        assert_eq!(lru.find(&10u32.to_be_bytes()), Some(5));
        lru.push(&13u32.to_be_bytes(), 13);
        assert_eq!(lru.slab.chunks[0].len(), 11);
    }

    #[test]
    fn short_keys_live_in_the_slot_and_long_ones_apart() {
        let short = [7u8; SHORT_KEY];
        let long = [8u8; SHORT_KEY + 1];
        assert!(matches!(Key::new(&short), Key::Short { .. }));
        assert!(matches!(Key::new(&long), Key::Long(_)));
        assert!(matches!(Key::new(&[9u8; 300]), Key::Long(_)));
        let mut lru = Lru::new();
        for key in [&short[..], &long[..], b"", &[9u8; 300][..]] {
            lru.push(key, key.len() as u32);
        }
        for key in [&short[..], &long[..], b"", &[9u8; 300][..]] {
            assert_eq!(lru.peek(key), Some(&(key.len() as u32)));
        }
        assert_eq!(lru.peek(&short[1..]), None, "a prefix is another key");
    }

    #[test]
    fn many_entries_across_chunks_keep_their_values_and_order() {
        let mut lru = Lru::new();
        let n = 5 * CHUNK as u32 + 17;
        for i in 0..n {
            lru.push(format!("key-{i}").as_bytes(), i);
        }
        assert_eq!(lru.slab.chunks.len(), 6);
        // Every third key read: those become the newest, in that order.
        for i in (0..n).step_by(3) {
            assert_eq!(lru.get(format!("key-{i}").as_bytes()).copied(), Some(i));
        }
        for i in (1..n).step_by(3) {
            lru.remove(format!("key-{i}").as_bytes());
        }
        let expected: Vec<u32> = (2..n).step_by(3).chain((0..n).step_by(3)).collect();
        assert_eq!(lru.len(), expected.len());
        let values: Vec<u32> = lru.iter_oldest_first().map(|(_, &v)| v).collect();
        assert_eq!(values, expected);
        let mut popped = Vec::new();
        while let Some((key, value)) = lru.pop_oldest() {
            assert_eq!(&*key, format!("key-{value}").as_bytes());
            popped.push(value);
        }
        assert_eq!(popped, expected);
        assert_eq!(lru.len(), 0);
    }

    #[test]
    fn a_slot_holds_a_short_key_a_value_and_two_links_in_56_bytes() {
        // 24 bytes of key, 24 of value (the caches' entries), 8 of links.
        assert_eq!(std::mem::size_of::<Slot<[u64; 3]>>(), 56);
    }
}
