//! ConsumeQueue: per topic and queue, a dense array of 20-byte units pointing into the commit
//! log (`phy_offset i64 | size i32 | tags_code i64`), indexed by logical offset. Written only by
//! the dispatcher thread; read by anyone.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::error::{Result, StoreError};
use crate::segment::SegmentQueue;

/// Bytes per unit.
pub const CQ_UNIT: u64 = 20;
/// Size of the filler units written before the first real unit of a queue created mid-stream.
const BLANK_SIZE: i32 = i32::MAX;

/// One consume queue unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqUnit {
    pub phy_offset: i64,
    pub size: i32,
    pub tags_code: i64,
}

impl CqUnit {
    fn encode(&self) -> [u8; CQ_UNIT as usize] {
        let mut b = [0u8; CQ_UNIT as usize];
        b[..8].copy_from_slice(&self.phy_offset.to_be_bytes());
        b[8..12].copy_from_slice(&self.size.to_be_bytes());
        b[12..].copy_from_slice(&self.tags_code.to_be_bytes());
        b
    }
    fn decode(b: &[u8]) -> CqUnit {
        let mut p = [0u8; 8];
        p.copy_from_slice(&b[..8]);
        let mut s = [0u8; 4];
        s.copy_from_slice(&b[8..12]);
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[12..20]);
        CqUnit {
            phy_offset: i64::from_be_bytes(p),
            size: i32::from_be_bytes(s),
            tags_code: i64::from_be_bytes(t),
        }
    }
    fn is_blank(&self) -> bool {
        self.size == BLANK_SIZE
    }
    fn is_empty(&self) -> bool {
        self.size == 0
    }
}

/// The consume queue of one topic and queue id.
#[derive(Debug)]
pub struct ConsumeQueue {
    topic: String,
    queue_id: i32,
    files: SegmentQueue,
    /// First logical offset still present (moves with retention).
    min_logical: AtomicI64,
}

impl ConsumeQueue {
    /// Opens (or creates) the queue in `dir`; nothing is published until [`Self::recover`].
    pub fn load(dir: &Path, topic: &str, queue_id: i32, units_per_file: u64) -> Result<Self> {
        Ok(ConsumeQueue {
            topic: topic.to_string(),
            queue_id,
            files: SegmentQueue::load(dir, units_per_file * CQ_UNIT)?,
            min_logical: AtomicI64::new(0),
        })
    }

    fn unit_on_disk(&self, logical: u64) -> Option<CqUnit> {
        let pos = logical * CQ_UNIT;
        let file = self.files.find(pos)?;
        let at = (pos - file.base()) as usize;
        Some(CqUnit::decode(file.raw(at, CQ_UNIT as usize)))
    }

    /// Finds the written end on disk, drops units pointing at or past `cut` (commit log bytes
    /// that no longer exist or will be dispatched again), and publishes the rest.
    pub fn recover(&self, cut: u64) -> Result<()> {
        let files = self.files.files();
        let (Some(first), Some(last)) = (files.first(), files.last()) else {
            return Ok(());
        };
        let unit_count = |f: &crate::segment::MappedFile| f.size() as u64 / CQ_UNIT;
        let first_logical = first.base() / CQ_UNIT;
        // Units are written in order, so "written" is a prefix: binary search for its end.
        let (mut lo, mut hi) = (first_logical, last.base() / CQ_UNIT + unit_count(last));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.unit_on_disk(mid) {
                Some(u) if !u.is_empty() => lo = mid + 1,
                _ => hi = mid,
            }
        }
        let written = lo;
        for f in &files {
            let wrote = (written * CQ_UNIT)
                .saturating_sub(f.base())
                .min(f.size() as u64) as usize;
            f.set_wrote(wrote);
            f.set_flushed(wrote);
        }
        // Drop units at or past the cut: they point at commit log bytes recovery will replay.
        let (mut lo, mut hi) = (first_logical, written);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.unit_on_disk(mid) {
                Some(u) if u.is_blank() || (u.phy_offset as u64) + u.size as u64 <= cut => {
                    lo = mid + 1
                }
                _ => hi = mid,
            }
        }
        let end = lo;
        if end < written {
            tracing::debug!(topic = %self.topic, queue_id = self.queue_id, from = end, to = written, "dropping consume queue units past the recovery point");
            self.files.truncate(end * CQ_UNIT)?;
        }
        // Skip the blank prefix of a queue that was created mid-stream.
        let (mut lo, mut hi) = (first_logical, end);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.unit_on_disk(mid) {
                Some(u) if u.is_blank() => lo = mid + 1,
                _ => hi = mid,
            }
        }
        self.min_logical.store(lo as i64, Ordering::Release);
        Ok(())
    }

    /// Writes the unit for `logical`. Units already present (a replay after recovery) are kept;
    /// a queue first seen mid-stream is padded with blank units so offsets stay positional.
    ///
    /// A queue deleted with its topic takes nothing more: a message of the topic that was
    /// still being dispatched when the topic was deleted is dropped from it.
    pub fn put(&self, logical: i64, unit: CqUnit) -> Result<()> {
        match self.put_unit(logical, unit) {
            Err(StoreError::Deleted { .. }) => {
                tracing::debug!(topic = %self.topic, queue_id = self.queue_id, logical, "unit for a deleted queue dropped");
                Ok(())
            }
            other => other,
        }
    }

    fn put_unit(&self, logical: i64, unit: CqUnit) -> Result<()> {
        let logical = logical.max(0) as u64;
        let end = self.max_logical() as u64;
        if logical < end && !self.files.is_empty() {
            return Ok(());
        }
        let pos = logical * CQ_UNIT;
        if self.files.is_empty() {
            let base = pos - pos % self.files.file_size();
            self.files.create_file(base)?;
            self.min_logical.store(logical as i64, Ordering::Release);
        } else if logical > end {
            tracing::warn!(topic = %self.topic, queue_id = self.queue_id, expected = end, got = logical, "gap in consume queue; padding with blank units");
        }
        let blank = CqUnit {
            phy_offset: 0,
            size: BLANK_SIZE,
            tags_code: 0,
        }
        .encode();
        let mut at = self.max_write_byte();
        while at < pos {
            self.append_unit(at, &blank)?;
            at += CQ_UNIT;
        }
        self.append_unit(pos, &unit.encode())?;
        Ok(())
    }

    /// Byte offset where the next unit goes.
    fn max_write_byte(&self) -> u64 {
        match self.files.last() {
            Some(f) => f.base() + f.wrote() as u64,
            None => 0,
        }
    }

    fn append_unit(&self, pos: u64, bytes: &[u8; CQ_UNIT as usize]) -> Result<()> {
        let file = match self.files.last() {
            Some(f) if pos < f.base() + f.size() as u64 => f,
            Some(f) => self.files.create_file(f.base() + f.size() as u64)?,
            None => self.files.create_file(pos - pos % self.files.file_size())?,
        };
        let at = (pos - file.base()) as usize;
        if at > file.wrote() {
            file.set_wrote(at);
        }
        file.append(bytes);
        Ok(())
    }

    /// The unit at `logical`, if it exists and is not a blank.
    pub fn get(&self, logical: i64) -> Option<CqUnit> {
        if logical < self.min_offset() || logical >= self.max_logical() {
            return None;
        }
        let pos = logical as u64 * CQ_UNIT;
        let file = self.files.find(pos)?;
        let bytes = file.slice((pos - file.base()) as usize, CQ_UNIT as usize)?;
        Some(CqUnit::decode(bytes)).filter(|u| !u.is_blank())
    }

    /// Up to `max` units from `logical` on, stopping at the end of one file.
    pub fn units(&self, logical: i64, max: usize) -> Vec<(i64, CqUnit)> {
        let mut out = Vec::new();
        let end = self.max_logical();
        let mut at = logical.max(self.min_offset());
        let Some(file) = self.files.find(at as u64 * CQ_UNIT) else {
            return out;
        };
        let file_end = ((file.base() + file.size() as u64) / CQ_UNIT) as i64;
        while at < end && at < file_end && out.len() < max {
            let pos = (at as u64 * CQ_UNIT - file.base()) as usize;
            let Some(b) = file.slice(pos, CQ_UNIT as usize) else {
                break;
            };
            let u = CqUnit::decode(b);
            if !u.is_blank() {
                out.push((at, u));
            }
            at += 1;
        }
        out
    }

    /// First logical offset present.
    pub fn min_offset(&self) -> i64 {
        self.min_logical.load(Ordering::Acquire)
    }

    /// One past the last logical offset written.
    pub fn max_logical(&self) -> i64 {
        (self.max_write_byte() / CQ_UNIT) as i64
    }

    pub fn flush(&self) -> Result<()> {
        self.files.flush().map(|_| ())
    }

    /// Deletes files whose every unit points below `min_phy` (the commit log's start).
    pub fn delete_expired(&self, min_phy: u64) -> Result<usize> {
        let mut deleted = 0;
        for f in self.files.files() {
            if self.files.len() <= 1 || !f.is_full() {
                break;
            }
            let last = CqUnit::decode(f.raw(f.size() - CQ_UNIT as usize, CQ_UNIT as usize));
            if last.is_blank() || (last.phy_offset as u64) < min_phy {
                if let Some(f) = self.files.pop_first(f.base()) {
                    f.delete()?;
                    deleted += 1;
                    let next = (f.base() + f.size() as u64) / CQ_UNIT;
                    self.min_logical.fetch_max(next as i64, Ordering::AcqRel);
                }
            } else {
                break;
            }
        }
        // Within the first file, units below the commit log's start are gone too.
        let mut lo = self.min_offset();
        let hi = self.max_logical();
        while lo < hi {
            match self.get(lo) {
                Some(u) if (u.phy_offset as u64) < min_phy => lo += 1,
                _ => break,
            }
        }
        self.min_logical.fetch_max(lo, Ordering::AcqRel);
        Ok(deleted)
    }

    /// Removes the whole queue from disk.
    pub fn destroy(&self) -> Result<()> {
        self.files.destroy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(i: i64) -> CqUnit {
        CqUnit {
            phy_offset: i * 100,
            size: 100,
            tags_code: i,
        }
    }

    #[test]
    fn units_for_a_deleted_queue_are_dropped_without_error() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("t").join("0");
        let q = ConsumeQueue::load(&dir, "t", 0, 4).expect("load");
        q.put(0, unit(0)).expect("put");
        q.destroy().expect("destroy");
        q.put(1, unit(1))
            .expect("a late unit is dropped, not an error");
        q.put(9, unit(9)).expect("one that needs a new file too");
        assert!(!dir.exists());
    }

    #[test]
    fn put_get_across_files_and_recover() {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = ConsumeQueue::load(dir.path(), "t", 0, 4).expect("load");
        for i in 0..10 {
            q.put(i, unit(i)).expect("put");
        }
        q.put(3, unit(99)).expect("replayed unit is ignored");
        assert_eq!(q.max_logical(), 10);
        assert_eq!(q.get(3), Some(unit(3)));
        assert_eq!(q.get(10), None);
        assert_eq!(q.units(2, 100).len(), 2, "units stop at the end of a file");
        drop(q);
        let q = ConsumeQueue::load(dir.path(), "t", 0, 4).expect("reload");
        q.recover(650).expect("recover");
        assert_eq!(
            q.max_logical(),
            6,
            "units reaching past the cut are dropped"
        );
        assert_eq!(q.get(5), Some(unit(5)));
        q.put(6, unit(6)).expect("put after recovery");
        assert_eq!(q.get(6), Some(unit(6)));
    }

    #[test]
    fn queue_created_mid_stream_starts_at_its_first_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = ConsumeQueue::load(dir.path(), "t", 1, 4).expect("load");
        q.put(6, unit(6)).expect("put");
        q.put(7, unit(7)).expect("put");
        assert_eq!((q.min_offset(), q.max_logical()), (6, 8));
        assert_eq!(q.get(5), None);
        drop(q);
        let q = ConsumeQueue::load(dir.path(), "t", 1, 4).expect("reload");
        q.recover(u64::MAX).expect("recover");
        assert_eq!((q.min_offset(), q.max_logical()), (6, 8));
    }

    #[test]
    fn expired_files_are_deleted_and_min_offset_moves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = ConsumeQueue::load(dir.path(), "t", 0, 4).expect("load");
        for i in 0..10 {
            q.put(i, unit(i)).expect("put");
        }
        assert_eq!(q.delete_expired(550).expect("delete"), 1);
        assert_eq!(q.min_offset(), 6);
        assert_eq!(q.get(5), None);
        assert_eq!(q.get(6), Some(unit(6)));
    }
}
