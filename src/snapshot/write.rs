//! Writing a node's main caches in the snapshot format, checksummed as
//! they go.

use std::fs::File;
use std::io::{BufWriter, Write};

use crate::group::Group;
use crate::node::Node;
use crate::snapshot::counts::Counts;
use crate::snapshot::error::SnapshotError;
use crate::snapshot::format::{END, FORMAT, MAGIC};
use crate::value::now_nanos;

/// Writes `node`'s main caches to `file` and syncs it.
pub(super) fn write_file(node: &Node, file: File) -> Result<Counts, SnapshotError> {
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
