//! Warm restarts: a node's main caches written to a file when it stops and
//! read back before it serves (`--snapshot FILE`).
//!
//! The file holds every group's main cache, from the least to the most
//! recently used entry: key, value and absolute expiry. It is written after
//! the drain to `FILE.tmp`, synced and renamed over `FILE`, so a crash
//! while writing leaves the old file or none, never half of one. At start
//! it is read back before the node serves (and, with etcd, before it
//! registers): entries of groups this node has, not expired, no larger than
//! `--max-value-bytes`, capped by the group's `--max-ttl`, added in order so
//! that when the cache is smaller than it was, the most recently used stay.
//! A file written longer ago than `--snapshot-max-age` is ignored.
//!
//! Bad input never hurts: a missing, truncated, damaged, foreign or
//! other-version file, or one for other groups, is refused whole before any
//! entry is used, and the node starts empty. The checksum is verified in a
//! first pass over the file, so nothing is allocated for a damaged one, and
//! every length is checked against what is left of the file.
//!
//! Format (integers little-endian): `GCSNAP`, u16 format version; i64
//! written-at (Unix ns); u32 group count, then each name (u32 length,
//! bytes); entries, each u32 group index, u32 key length, key, u32 value
//! length, value, i64 expiry (0: never), u32 seconds of `stale-if-error`
//! and of `stale-while-revalidate`; u32 `0xFFFF_FFFF`; u32 CRC-32 (IEEE)
//! of everything before it. Format 1, without the two windows, is read
//! too (its values get their group's windows).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::group::Group;
use crate::node::Node;
use crate::value::{now, now_nanos, Expiry, Grace, Value};

const MAGIC: &[u8; 6] = b"GCSNAP";
/// The format this node writes; it reads this one and format 1.
const FORMAT: u16 = 2;
const END: u32 = u32::MAX;
/// Most groups and longest group name a file may declare.
const MAX_GROUPS: u32 = 100_000;
const MAX_NAME: u32 = 64 << 10;

/// Why a snapshot was not written or not used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
    #[error("not a groupcached snapshot")]
    Foreign,
    #[error("snapshot format {0}, this node reads formats 1 and {FORMAT}")]
    Format(u16),
    #[error("snapshot is damaged: {0}")]
    Damaged(&'static str),
    #[error("snapshot was written {0:?} ago, longer than --snapshot-max-age")]
    TooOld(Duration),
    #[error("snapshot holds none of this node's groups (it has {0})")]
    OtherGroups(String),
}

impl SnapshotError {
    /// True when there was no file to read.
    pub(crate) fn is_missing(&self) -> bool {
        matches!(self, SnapshotError::Io(_, e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// What a write or a restore did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Values written, or restored into the caches.
    pub values: u64,
    /// Their bytes (keys and values).
    pub bytes: u64,
    /// Entries left out: expired, too large, or of groups this node lacks.
    pub skipped: u64,
}

/// Writes `node`'s main caches to `path`, atomically.
pub(crate) fn save(node: &Node, path: &Path) -> Result<Counts, SnapshotError> {
    let temporary = temporary_path(path);
    let written = write_file(node, &temporary).and_then(|counts| {
        std::fs::rename(&temporary, path).map_err(|e| SnapshotError::Io("renaming", e))?;
        Ok(counts)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

fn write_file(node: &Node, path: &Path) -> Result<Counts, SnapshotError> {
    let io = |e| SnapshotError::Io("writing", e);
    // Readable by this user only: the values may be anyone's data.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| SnapshotError::Io("creating", e))?;
    let mut out = Summed {
        inner: BufWriter::new(file),
        crc: crc32fast::Hasher::new(),
    };
    let groups: Vec<&Group> = node.groups().collect();
    out.put(MAGIC).map_err(io)?;
    out.put(&FORMAT.to_le_bytes()).map_err(io)?;
    out.put(&now_nanos().to_le_bytes()).map_err(io)?;
    out.put(&len32(groups.len()).to_le_bytes()).map_err(io)?;
    for group in &groups {
        out.put(&len32(group.name().len()).to_le_bytes())
            .map_err(io)?;
        out.put(group.name().as_bytes()).map_err(io)?;
    }
    let mut counts = Counts::default();
    for (index, group) in groups.iter().enumerate() {
        for (key, value) in group.main_entries() {
            let (Ok(key_len), Ok(value_len)) =
                (u32::try_from(key.len()), u32::try_from(value.bytes.len()))
            else {
                counts.skipped += 1;
                continue;
            };
            if value.expiry.is_expired() {
                counts.skipped += 1;
                continue;
            }
            out.put(&len32(index).to_le_bytes()).map_err(io)?;
            out.put(&key_len.to_le_bytes()).map_err(io)?;
            out.put(&key).map_err(io)?;
            out.put(&value_len.to_le_bytes()).map_err(io)?;
            out.put(&value.bytes).map_err(io)?;
            out.put(&value.expiry.to_wire().unwrap_or(0).to_le_bytes())
                .map_err(io)?;
            let grace = value.grace.unwrap_or_default();
            for window in [grace.if_error(), grace.while_revalidate()] {
                // At most 2^31 seconds, by `Grace`'s own rule.
                let seconds = u32::try_from(window.as_secs()).unwrap_or(u32::MAX);
                out.put(&seconds.to_le_bytes()).map_err(io)?;
            }
            counts.values += 1;
            counts.bytes += (key.len() + value.bytes.len()) as u64;
        }
    }
    out.put(&END.to_le_bytes()).map_err(io)?;
    let crc = out.crc.finalize();
    let mut inner = out.inner;
    inner.write_all(&crc.to_le_bytes()).map_err(io)?;
    let file = inner.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(counts)
}

/// A length that fits a u32 (group counts and names are far smaller).
fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A writer that checksums what it writes.
struct Summed {
    inner: BufWriter<File>,
    crc: crc32fast::Hasher,
}

impl Summed {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.crc.update(bytes);
        self.inner.write_all(bytes)
    }
}

/// Reads `path` back into `node`'s main caches; a file written more than
/// `max_age` ago is refused.
pub(crate) fn restore(
    node: &Node,
    path: &Path,
    max_age: Duration,
) -> Result<Counts, SnapshotError> {
    let io = |e| SnapshotError::Io("reading", e);
    let len = std::fs::metadata(path).map_err(io)?.len();
    verify_checksum(path, len)?;
    let file = File::open(path).map_err(io)?;
    // Everything but the checksum, which has been verified.
    let mut input = Input {
        inner: BufReader::new(file),
        left: len - 4,
    };
    if input.bytes(MAGIC.len() as u64)? != MAGIC {
        return Err(SnapshotError::Foreign);
    }
    let format = u16::from_le_bytes(input.array()?);
    if format != FORMAT && format != 1 {
        return Err(SnapshotError::Format(format));
    }
    let written_at = i64::from_le_bytes(input.array()?);
    let age = Duration::from_nanos(now_nanos().saturating_sub(written_at).max(0).unsigned_abs());
    if age > max_age {
        return Err(SnapshotError::TooOld(age));
    }
    let count = u32::from_le_bytes(input.array()?);
    if count > MAX_GROUPS {
        return Err(SnapshotError::Damaged("too many groups"));
    }
    let mut names = Vec::new();
    let mut groups = Vec::new();
    for _ in 0..count {
        let len = u32::from_le_bytes(input.array()?);
        if len > MAX_NAME {
            return Err(SnapshotError::Damaged("group name too long"));
        }
        let name = input.bytes(u64::from(len))?;
        groups.push(node.group(&name));
        names.push(String::from_utf8_lossy(&name).into_owned());
    }
    if groups.iter().all(Option::is_none) {
        return Err(SnapshotError::OtherGroups(names.join(", ")));
    }
    let max_value = node.max_write_bytes();
    let now = now();
    let mut counts = Counts::default();
    loop {
        let index = u32::from_le_bytes(input.array()?);
        if index == END {
            break;
        }
        let group = groups
            .get(index as usize)
            .ok_or(SnapshotError::Damaged("entry of an undeclared group"))?;
        let key_len = u32::from_le_bytes(input.array()?);
        let key = input.bytes(u64::from(key_len))?;
        let value_len = u32::from_le_bytes(input.array()?);
        let value = input.bytes(u64::from(value_len))?;
        let expiry = Expiry::from_wire(Some(i64::from_le_bytes(input.array()?)));
        let grace = if format == 1 {
            None
        } else {
            let if_error = u32::from_le_bytes(input.array()?);
            let while_revalidate = u32::from_le_bytes(input.array()?);
            let secs = |s: u32| Duration::from_secs(s.into());
            Some(Grace::new(secs(if_error), secs(while_revalidate)))
        };
        let Some(group) = group else {
            counts.skipped += 1;
            continue;
        };
        let expiry = node.ttl_policy(group.name().as_bytes()).cap(expiry, now);
        if expiry.is_expired() || u64::from(value_len) > max_value {
            counts.skipped += 1;
            continue;
        }
        let bytes = (key.len() + value.len()) as u64;
        let value = Value {
            grace,
            ..Value::new(value, expiry)
        };
        if group.restore(&key, value) {
            counts.values += 1;
            counts.bytes += bytes;
        } else {
            counts.skipped += 1;
        }
    }
    if input.left != 0 {
        return Err(SnapshotError::Damaged("bytes after the last entry"));
    }
    Ok(counts)
}

/// Checks the trailing CRC-32 against the rest of the file, reading it in
/// blocks.
fn verify_checksum(path: &Path, len: u64) -> Result<(), SnapshotError> {
    let io = |e| SnapshotError::Io("reading", e);
    // Magic, format, written-at, group count, end marker, checksum.
    if len < 6 + 2 + 8 + 4 + 4 + 4 {
        return Err(SnapshotError::Damaged("truncated"));
    }
    let mut file = BufReader::new(File::open(path).map_err(io)?);
    let mut crc = crc32fast::Hasher::new();
    let mut left = len - 4;
    let mut block = vec![0; 64 << 10];
    while left > 0 {
        let want = left.min(block.len() as u64) as usize;
        file.read_exact(&mut block[..want]).map_err(io)?;
        crc.update(&block[..want]);
        left -= want as u64;
    }
    let mut stored = [0; 4];
    file.read_exact(&mut stored).map_err(io)?;
    if crc.finalize() != u32::from_le_bytes(stored) {
        return Err(SnapshotError::Damaged("checksum mismatch"));
    }
    Ok(())
}

/// The part of the file before its checksum, read with every length
/// checked against what is left.
struct Input {
    inner: BufReader<File>,
    left: u64,
}

impl Input {
    fn bytes(&mut self, len: u64) -> Result<Vec<u8>, SnapshotError> {
        if len > self.left {
            return Err(SnapshotError::Damaged("truncated"));
        }
        self.left -= len;
        // `len` is at most the file's length, which was read whole once.
        let mut bytes = vec![0; len as usize];
        self.inner
            .read_exact(&mut bytes)
            .map_err(|e| SnapshotError::Io("reading", e))?;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        if N as u64 > self.left {
            return Err(SnapshotError::Damaged("truncated"));
        }
        self.left -= N as u64;
        let mut array = [0; N];
        self.inner
            .read_exact(&mut array)
            .map_err(|e| SnapshotError::Io("reading", e))?;
        Ok(array)
    }
}
