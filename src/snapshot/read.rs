//! Reading a snapshot all-or-nothing: the checksum verified first, every
//! length checked against what is left of the file, and every entry parsed
//! into memory before the first is restored.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use crate::group::Group;
use crate::node::Node;
use crate::snapshot::counts::Counts;
use crate::snapshot::error::SnapshotError;
use crate::snapshot::format::{CLOCK_SKEW, END, FORMAT, MAGIC, MAX_GROUPS, MAX_NAME};
use crate::value::{now, now_nanos, Expiry, Grace, Value};

/// Group names an error shows, and bytes of each.
const NAMES_SHOWN: usize = 5;
const NAME_BYTES_SHOWN: usize = 64;

/// A file read whole and found valid: the entries to restore, in order.
pub(super) struct Parsed<'a> {
    entries: Vec<(&'a Group, Vec<u8>, Value)>,
    /// Entries left out already: expired, too large, of groups this node
    /// lacks.
    skipped: u64,
}

impl Parsed<'_> {
    /// Puts the entries into their groups' main caches, in order.
    pub(super) fn restore(self) -> Counts {
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
pub(super) fn read<'a>(
    node: &'a Node,
    path: &Path,
    max_age: Duration,
) -> Result<Parsed<'a>, SnapshotError> {
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
    let format = header(&mut input, max_age)?;
    let groups = declared_groups(node, &mut input)?;
    let parsed = entries(node, &mut input, &groups, format)?;
    if input.left != 0 {
        return Err(SnapshotError::Damaged("bytes after the last entry"));
    }
    Ok(parsed)
}

/// Reads the magic, the format and the date, and returns the format; a
/// foreign file, an unknown format, and a file too old or dated too far
/// in the future are refused.
fn header(input: &mut Input, max_age: Duration) -> Result<u16, SnapshotError> {
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
    Ok(format)
}

/// Reads the group names the file declares, each as this node's group of
/// that name if it has one; a file with none of its groups is refused.
fn declared_groups<'a>(
    node: &'a Node,
    input: &mut Input,
) -> Result<Vec<Option<&'a Group>>, SnapshotError> {
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
    Ok(groups)
}

/// Reads the entries up to the end marker, leaving out (and counting)
/// those of groups this node lacks, expired ones and ones too large.
fn entries<'a>(
    node: &Node,
    input: &mut Input,
    groups: &[Option<&'a Group>],
    format: u16,
) -> Result<Parsed<'a>, SnapshotError> {
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
    fn group_names_in_errors_are_short_and_one_line() {
        assert_eq!(shown_name(b"users"), "users");
        assert_eq!(shown_name(b"two\nlines"), "two\\nlines");
        let long = shown_name(&[b'x'; 60_000]);
        assert_eq!(long, format!("{}...", "x".repeat(NAME_BYTES_SHOWN)));
    }
}
