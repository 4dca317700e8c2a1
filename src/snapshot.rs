//! Warm restarts: a node's main caches written to a file when it stops and
//! read back before it serves (`--snapshot FILE`).
//!
//! The file holds every group's main cache, from the least to the most
//! recently used entry: key, value and absolute expiry. It is written after
//! the drain to `FILE.tmp.PID` (created anew, never through a symlink),
//! synced, renamed over `FILE`, and the directory synced, so a crash while
//! writing leaves no file or a whole one. A temporary file left by a process
//! that died while writing is removed at the next start.
//!
//! At start it is read back before the node serves (and, with etcd, before
//! it registers), and read once: the file is removed as soon as it has been
//! read, whether it is used or refused, and it is used only once it is
//! gone. A node that crashes later restarts cold instead of bringing back
//! values that were overwritten after the file was written. Restored are
//! entries of groups this node has, not expired, no larger than
//! `--max-value-bytes`, capped by the group's `--max-ttl`, added in order so
//! that when the cache is smaller than it was, the most recently used stay.
//! A file written longer ago than `--snapshot-max-age`, or dated more than
//! a minute in the future, is refused.
//!
//! One process per path: `FILE.lock` carries an advisory lock (`flock`)
//! held from start to exit, so a second node given the same path does not
//! start, and no live process ever writes the temporary files the start
//! removes.
//!
//! Bad input never hurts: a missing, truncated, damaged, foreign or
//! other-version file, or one for other groups, is refused whole before any
//! entry is used, and the node starts empty. The checksum is verified in a
//! first pass over the file, so nothing is allocated for a damaged one;
//! every length is checked against what is left of the file, and every
//! entry is parsed into memory (so at most a few times the file's length)
//! before the first is restored. Errors name at most a few of the file's
//! group names, each cut short, so a log line stays short.
//!
//! Format (integers little-endian): `GCSNAP`, u16 format version; i64
//! written-at (Unix ns); u32 group count, then each name (u32 length,
//! bytes); entries, each u32 group index, u32 key length, key, u32 value
//! length, value, i64 expiry (0: never), u32 seconds of `stale-if-error`
//! and of `stale-while-revalidate`; u32 `0xFFFF_FFFF`; u32 CRC-32 (IEEE)
//! of everything before it. Format 1, without the two windows, is read
//! too (its values get their group's windows).

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
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
/// How far in the future a file may be dated: clocks of the machines a
/// file may move between disagree a little, never by more.
const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Group names an error shows, and bytes of each.
const NAMES_SHOWN: usize = 5;
const NAME_BYTES_SHOWN: usize = 64;

/// Why a snapshot was not written or not used, or its path not claimed.
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
    #[error(
        "snapshot is dated {0:?} in the future, more than the {CLOCK_SKEW:?} of clock skew allowed"
    )]
    Future(Duration),
    #[error("snapshot holds none of this node's groups (it has {0})")]
    OtherGroups(String),
    #[error("another process uses this path: {0} is locked")]
    InUse(String),
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

/// Temporary files of dead processes removed at start.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Leftovers {
    pub files: u64,
    pub bytes: u64,
}

/// A `--snapshot` path claimed by this process: the lock on `FILE.lock` is
/// held as long as this value lives (the process's life, in the binary).
#[derive(Debug)]
pub(crate) struct SnapshotFile {
    path: PathBuf,
    /// Kept open for its lock, which closing it releases.
    _lock: File,
}

impl SnapshotFile {
    /// Locks `FILE.lock` (created if missing) for this process; fails when
    /// another process holds it or the directory cannot be written.
    pub(crate) fn claim(path: &Path) -> Result<SnapshotFile, SnapshotError> {
        let lock_path = with_suffix(path, ".lock");
        let lock = private()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| SnapshotError::Io("opening the lock file", e))?;
        match lock.try_lock() {
            Ok(()) => Ok(SnapshotFile {
                path: path.to_path_buf(),
                _lock: lock,
            }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(SnapshotError::InUse(lock_path.display().to_string()))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(SnapshotError::Io("locking", e)),
        }
    }

    /// The path given.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Removes `FILE.tmp` and `FILE.tmp.PID` files: no live process
    /// writes them, as this one holds the lock and has not written yet.
    pub(crate) fn remove_leftovers(&self) -> Result<Leftovers, SnapshotError> {
        let io = |e| SnapshotError::Io("removing leftover temporary files", e);
        let mut removed = Leftovers::default();
        let Some(name) = self.path.file_name() else {
            return Ok(removed);
        };
        for entry in std::fs::read_dir(directory_of(&self.path)).map_err(io)? {
            let entry = entry.map_err(io)?;
            if !is_temporary(name.as_bytes(), entry.file_name().as_bytes()) {
                continue;
            }
            // Of the entry itself: a symlink is removed, not followed.
            let bytes = entry.metadata().map_or(0, |m| m.len());
            std::fs::remove_file(entry.path()).map_err(io)?;
            removed.files += 1;
            removed.bytes += bytes;
        }
        Ok(removed)
    }

    /// Writes `node`'s main caches to the file, atomically.
    pub(crate) fn save(&self, node: &Node) -> Result<Counts, SnapshotError> {
        let temporary = with_suffix(&self.path, &format!(".tmp.{}", std::process::id()));
        // Created anew: whatever already has this name (a symlink planted
        // to make this process overwrite another file) makes the write fail.
        let file = private()
            .write(true)
            .create_new(true)
            .open(&temporary)
            .map_err(|e| SnapshotError::Io("creating the temporary file", e))?;
        let written = write_file(node, file).and_then(|counts| {
            std::fs::rename(&temporary, &self.path)
                .map_err(|e| SnapshotError::Io("renaming", e))?;
            sync_directory(&self.path)
                .map_err(|e| SnapshotError::Io("syncing the directory", e))?;
            Ok(counts)
        });
        if written.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        written
    }

    /// Reads the file back into `node`'s main caches, once: the file is
    /// removed after it is read, used or refused, and its entries are used
    /// only when the whole file is valid and its removal is on disk. A file
    /// written more than `max_age` ago is refused.
    pub(crate) fn restore(&self, node: &Node, max_age: Duration) -> Result<Counts, SnapshotError> {
        let parsed = match read(node, &self.path, max_age) {
            Err(e) if e.is_missing() => return Err(e),
            parsed => parsed,
        };
        let removed = std::fs::remove_file(&self.path).and_then(|()| sync_directory(&self.path));
        let parsed = parsed?;
        removed.map_err(|e| SnapshotError::Io("removing it after reading", e))?;
        Ok(parsed.restore())
    }
}

/// Options for the files this module creates: readable by this user only
/// (the values may be anyone's data), never opened through a symlink.
fn private() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    options
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The directory holding `path`.
fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Syncs the directory holding `path`, so that a rename or removal in it
/// survives a power loss.
fn sync_directory(path: &Path) -> std::io::Result<()> {
    File::open(directory_of(path))?.sync_all()
}

/// Whether `candidate` is `{name}.tmp` (an older version's temporary file)
/// or `{name}.tmp.{digits}`.
fn is_temporary(name: &[u8], candidate: &[u8]) -> bool {
    let Some(rest) = candidate
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix(b".tmp"))
    else {
        return false;
    };
    match rest.strip_prefix(b".") {
        None => rest.is_empty(),
        Some(pid) => !pid.is_empty() && pid.iter().all(u8::is_ascii_digit),
    }
}

fn write_file(node: &Node, file: File) -> Result<Counts, SnapshotError> {
    let io = |e| SnapshotError::Io("writing", e);
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

/// A file read whole and found valid: the entries to restore, in order.
struct Parsed<'a> {
    entries: Vec<(&'a Group, Vec<u8>, Value)>,
    /// Entries left out already: expired, too large, of groups this node
    /// lacks.
    skipped: u64,
}

impl Parsed<'_> {
    fn restore(self) -> Counts {
        let mut counts = Counts {
            skipped: self.skipped,
            ..Counts::default()
        };
        for (group, key, value) in self.entries {
            let bytes = (key.len() + value.bytes.len()) as u64;
            if group.restore(&key, value) {
                counts.values += 1;
                counts.bytes += bytes;
            } else {
                counts.skipped += 1;
            }
        }
        counts
    }
}

/// Reads and checks the whole file at `path`, changing nothing.
fn read<'a>(node: &'a Node, path: &Path, max_age: Duration) -> Result<Parsed<'a>, SnapshotError> {
    let io = |e| SnapshotError::Io("reading", e);
    // Non-blocking: a FIFO in its place must not hang the start.
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    if !metadata.is_file() {
        return Err(SnapshotError::Damaged("not a regular file"));
    }
    let len = metadata.len();
    verify_checksum(&mut file, len)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
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
    let now_ns = now_nanos();
    let ahead = Duration::from_nanos(written_at.saturating_sub(now_ns).max(0).unsigned_abs());
    if ahead > CLOCK_SKEW {
        return Err(SnapshotError::Future(ahead));
    }
    let age = Duration::from_nanos(now_ns.saturating_sub(written_at).max(0).unsigned_abs());
    if age > max_age {
        return Err(SnapshotError::TooOld(age));
    }
    let count = u32::from_le_bytes(input.array()?);
    if count > MAX_GROUPS {
        return Err(SnapshotError::Damaged("too many groups"));
    }
    let mut shown = String::new();
    let mut groups = Vec::new();
    for index in 0..count as usize {
        let len = u32::from_le_bytes(input.array()?);
        if len > MAX_NAME {
            return Err(SnapshotError::Damaged("group name too long"));
        }
        let name = input.bytes(u64::from(len))?;
        groups.push(node.group(&name));
        if index < NAMES_SHOWN {
            if index > 0 {
                shown.push_str(", ");
            }
            shown.push_str(&shown_name(&name));
        }
    }
    if groups.iter().all(Option::is_none) {
        if groups.len() > NAMES_SHOWN {
            // Writing to a String cannot fail.
            let _ = write!(shown, " and {} more", groups.len() - NAMES_SHOWN);
        }
        return Err(SnapshotError::OtherGroups(shown));
    }
    let max_value = node.max_write_bytes();
    let now = now();
    let mut parsed = Parsed {
        entries: Vec::new(),
        skipped: 0,
    };
    loop {
        let index = u32::from_le_bytes(input.array()?);
        if index == END {
            break;
        }
        let group = *groups
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
            parsed.skipped += 1;
            continue;
        };
        let expiry = node.ttl_policy(group.name().as_bytes()).cap(expiry, now);
        if expiry.is_expired() || u64::from(value_len) > max_value {
            parsed.skipped += 1;
            continue;
        }
        let value = Value {
            grace,
            ..Value::new(value, expiry)
        };
        parsed.entries.push((group, key, value));
    }
    if input.left != 0 {
        return Err(SnapshotError::Damaged("bytes after the last entry"));
    }
    Ok(parsed)
}

/// A group name as an error shows it: escaped (one line whatever it
/// holds) and cut short.
fn shown_name(name: &[u8]) -> String {
    let cut = &name[..name.len().min(NAME_BYTES_SHOWN)];
    let mut shown = String::from_utf8_lossy(cut).escape_debug().to_string();
    if cut.len() < name.len() {
        shown.push_str("...");
    }
    shown
}

/// Checks the trailing CRC-32 against the rest of the file, reading it in
/// blocks.
fn verify_checksum(file: &mut File, len: u64) -> Result<(), SnapshotError> {
    let io = |e| SnapshotError::Io("reading", e);
    // Magic, format, written-at, group count, end marker, checksum.
    if len < 6 + 2 + 8 + 4 + 4 + 4 {
        return Err(SnapshotError::Damaged("truncated"));
    }
    let mut file = BufReader::new(file);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_temporary_names_of_this_file_are_leftovers() {
        let name = b"cache.snap";
        for leftover in [
            "cache.snap.tmp",
            "cache.snap.tmp.1",
            "cache.snap.tmp.4194303",
        ] {
            assert!(is_temporary(name, leftover.as_bytes()), "{leftover}");
        }
        for kept in [
            "cache.snap",
            "cache.snap.lock",
            "cache.snap.tmp.",
            "cache.snap.tmp.12x",
            "cache.snap.tmp.notes",
            "cache.snap.tmpfoo",
            "other.snap.tmp.1",
        ] {
            assert!(!is_temporary(name, kept.as_bytes()), "{kept}");
        }
    }

    #[test]
    fn group_names_in_errors_are_short_and_one_line() {
        assert_eq!(shown_name(b"users"), "users");
        assert_eq!(shown_name(b"two\nlines"), "two\\nlines");
        let long = shown_name(&[b'x'; 60_000]);
        assert_eq!(long, format!("{}...", "x".repeat(NAME_BYTES_SHOWN)));
    }

    #[test]
    fn a_second_claim_on_one_path_is_refused_until_the_first_ends() {
        let dir = std::env::temp_dir().join(format!("groupcached-claim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cache.snap");
        let first = SnapshotFile::claim(&path).unwrap();
        let second = SnapshotFile::claim(&path).unwrap_err();
        assert!(matches!(second, SnapshotError::InUse(_)), "{second}");
        drop(first);
        assert!(SnapshotFile::claim(&path).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
