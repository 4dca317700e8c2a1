//! The snapshot file's layout, byte for byte. Integers are little-endian:
//! `GCSNAP`, u16 format version; i64 written-at (Unix ns); u32 group
//! count, then each name (u32 length, bytes); entries, each u32 group
//! index, u32 key length, key, u32 value length, value, i64 expiry (0:
//! never), u32 seconds of `stale-if-error` and of
//! `stale-while-revalidate`; u32 `0xFFFF_FFFF`; u32 CRC-32 (IEEE) of
//! everything before it. Format 1, without the two windows, is read too
//! (its values get their group's windows).

use std::time::Duration;

pub(super) const MAGIC: &[u8; 6] = b"GCSNAP";
/// The format this node writes; it reads this one and format 1.
pub(super) const FORMAT: u16 = 2;
pub(super) const END: u32 = u32::MAX;
/// Most groups and longest group name a file may declare.
pub(super) const MAX_GROUPS: u32 = 100_000;
pub(super) const MAX_NAME: u32 = 64 << 10;
/// How far in the future a file may be dated: clocks of the machines a
/// file may move between disagree a little, never by more.
pub(super) const CLOCK_SKEW: Duration = Duration::from_secs(60);
