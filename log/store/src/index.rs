//! IndexFile: a hash index from `topic#key` to commit log offsets, RocketMQ's layout.
//!
//! ```text
//! header (40 B): begin_ts i64 | end_ts i64 | begin_phy i64 | end_phy i64 | slot_count i32 | index_count i32
//! slots:   slots × i32            (number of the newest entry with that hash slot, 0 = none)
//! entries: entries × 20 B         (key_hash i32 | phy_offset i64 | time_diff_s i32 | prev i32)
//! ```
//! Entry 0 is never used. Written only by the dispatcher thread. A reader follows a slot to
//! the newest entry and the `prev` chain back; an entry is fully written before the slot that
//! publishes it is stored (release), and header and slots are atomics over the mapping.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};

use memmap2::{MmapOptions, MmapRaw};
use parking_lot::RwLock;

use crate::error::{Result, StoreError};
use crate::fsutil;

const HEADER: usize = 40;
const ENTRY: usize = 20;

/// RocketMQ's non-negative key hash of `topic#key`.
pub fn key_hash(topic: &str, key: &str) -> i32 {
    let units = topic
        .encode_utf16()
        .chain("#".encode_utf16())
        .chain(key.encode_utf16());
    let h = crate::record::java_hash_utf16(units).wrapping_abs();
    if h < 0 { 0 } else { h }
}

/// One index file.
#[derive(Debug)]
pub struct IndexFile {
    path: PathBuf,
    map: MmapRaw,
    slots: u32,
    entries: u32,
}

impl IndexFile {
    fn size(slots: u32, entries: u32) -> usize {
        HEADER + slots as usize * 4 + entries as usize * ENTRY
    }

    fn open(path: &Path, slots: u32, entries: u32, create: bool) -> Result<Self> {
        let size = Self::size(slots, entries);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(create)
            .open(path)
            .map_err(StoreError::io("open index file", path))?;
        if create {
            file.set_len(size as u64)
                .map_err(StoreError::io("size index file", path))?;
        } else {
            let len = file
                .metadata()
                .map_err(StoreError::io("stat index file", path))?
                .len();
            if len != size as u64 {
                return Err(StoreError::Layout {
                    path: path.to_path_buf(),
                    reason: format!(
                        "index file is {len} bytes, expected {size} (were index_slots/index_entries changed?)"
                    ),
                });
            }
        }
        let map = MmapOptions::new()
            .len(size)
            .map_raw(&file)
            .map_err(StoreError::io("map index file", path))?;
        let f = IndexFile {
            path: path.to_path_buf(),
            map,
            slots,
            entries,
        };
        if create {
            f.set_index_count(1);
        } else if f.index_count() < 1 || f.index_count() as u32 > entries {
            return Err(StoreError::Layout {
                path: path.to_path_buf(),
                reason: format!("index count {} out of range", f.index_count()),
            });
        }
        Ok(f)
    }

    /// Creates a file at `path`: sized and its header written under a temporary name, then
    /// renamed, so that a crash never leaves a file without a header under an index name.
    fn create(path: &Path, slots: u32, entries: u32) -> Result<Self> {
        let tmp = path.with_extension("tmp");
        let mut f = Self::open(&tmp, slots, entries, true)?;
        fs::rename(&tmp, path).map_err(StoreError::io("rename index file", path))?;
        f.path = path.to_path_buf();
        Ok(f)
    }

    /// Whether the header of the file at `path` is all zeros: sized but never initialized
    /// (created before index files were renamed into place, or a rename that reached the disk
    /// before the header did). Such a file holds no entries.
    fn never_written(path: &Path) -> Result<bool> {
        use std::io::Read;
        let mut header = [0u8; HEADER];
        let read = fs::File::open(path)
            .and_then(|mut file| file.read_exact(&mut header))
            .map_err(StoreError::io("read index header", path));
        Ok(read.is_ok() && header.iter().all(|b| *b == 0))
    }

    fn i64_at(&self, pos: usize) -> &AtomicI64 {
        assert!(pos + 8 <= HEADER && pos.is_multiple_of(8));
        // SAFETY: in the header, 8-aligned (the mapping is page-aligned), and only ever accessed
        // atomically.
        unsafe { AtomicI64::from_ptr(self.map.as_mut_ptr().add(pos).cast()) }
    }
    fn i32_at(&self, pos: usize) -> &AtomicI32 {
        assert!(pos + 4 <= HEADER + self.slots as usize * 4 && pos.is_multiple_of(4));
        // SAFETY: header or slot area, 4-aligned, only ever accessed atomically.
        unsafe { AtomicI32::from_ptr(self.map.as_mut_ptr().add(pos).cast()) }
    }
    fn get64(&self, pos: usize) -> i64 {
        i64::from_be(self.i64_at(pos).load(Ordering::Acquire))
    }
    fn set64(&self, pos: usize, v: i64) {
        self.i64_at(pos).store(v.to_be(), Ordering::Release)
    }
    fn get32(&self, pos: usize) -> i32 {
        i32::from_be(self.i32_at(pos).load(Ordering::Acquire))
    }
    fn set32(&self, pos: usize, v: i32) {
        self.i32_at(pos).store(v.to_be(), Ordering::Release)
    }

    pub fn begin_timestamp(&self) -> i64 {
        self.get64(0)
    }
    pub fn end_timestamp(&self) -> i64 {
        self.get64(8)
    }
    pub fn end_phy_offset(&self) -> i64 {
        self.get64(24)
    }
    fn slot_count(&self) -> i32 {
        self.get32(32)
    }
    /// Entries used plus one (entry 0 is never used).
    pub fn index_count(&self) -> i32 {
        self.get32(36)
    }
    fn set_index_count(&self, v: i32) {
        self.set32(36, v)
    }

    fn slot_pos(&self, hash: i32) -> usize {
        HEADER + (hash as u32 % self.slots) as usize * 4
    }
    fn entry_pos(&self, n: i32) -> usize {
        HEADER + self.slots as usize * 4 + n as usize * ENTRY
    }
    fn entry(&self, n: i32) -> (i32, i64, i32, i32) {
        let pos = self.entry_pos(n);
        // SAFETY: n < index_count <= entries, so in range; entries below index_count are never
        // written again while readers exist.
        let b = unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(pos), ENTRY) };
        let i32_at = |o: usize| i32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let mut p = [0u8; 8];
        p.copy_from_slice(&b[4..12]);
        (i32_at(0), i64::from_be_bytes(p), i32_at(12), i32_at(16))
    }

    /// Adds an entry. Returns false when the file is full.
    fn put(&self, hash: i32, phy: i64, store_ts: i64) -> bool {
        let n = self.index_count();
        if n as u32 >= self.entries {
            return false;
        }
        let slot = self.slot_pos(hash);
        let mut prev = self.get32(slot);
        if prev <= 0 || prev >= n {
            prev = 0;
        }
        if n == 1 {
            self.set64(0, store_ts);
            self.set64(16, phy);
        }
        let diff = ((store_ts - self.begin_timestamp()) / 1000).clamp(0, i32::MAX as i64) as i32;
        let mut e = [0u8; ENTRY];
        e[..4].copy_from_slice(&hash.to_be_bytes());
        e[4..12].copy_from_slice(&phy.to_be_bytes());
        e[12..16].copy_from_slice(&diff.to_be_bytes());
        e[16..].copy_from_slice(&prev.to_be_bytes());
        // SAFETY: entry n is past index_count, so no reader looks at it; single writer.
        unsafe {
            std::ptr::copy_nonoverlapping(
                e.as_ptr(),
                self.map.as_mut_ptr().add(self.entry_pos(n)),
                ENTRY,
            );
        }
        if prev == 0 {
            self.set32(32, self.slot_count() + 1);
        }
        self.set64(8, store_ts);
        self.set64(24, phy);
        self.set_index_count(n + 1);
        self.set32(slot, n);
        true
    }

    /// Commit log offsets of entries with `hash` stored within `begin..=end` (ms), newest first.
    fn select(&self, hash: i32, begin: i64, end: i64, max: usize, out: &mut Vec<u64>) {
        let count = self.index_count();
        let mut n = self.get32(self.slot_pos(hash));
        let base = self.begin_timestamp();
        let mut steps = 0;
        while n > 0 && n < count && out.len() < max && steps < count {
            let (h, phy, diff, prev) = self.entry(n);
            let ts = base + diff as i64 * 1000;
            // Time diffs are in whole seconds: compare at that precision.
            if ts + 999 < begin {
                break;
            }
            if h == hash && ts <= end {
                out.push(phy as u64);
            }
            if prev <= 0 || prev >= n {
                break;
            }
            n = prev;
            steps += 1;
        }
    }

    /// Removes the entries pointing at or past `cut` (they are a suffix), unlinking them from
    /// their slot chains. Recovery only.
    fn truncate(&self, cut: u64) -> usize {
        let mut n = self.index_count() - 1;
        let mut removed = 0;
        while n >= 1 {
            let (h, phy, _, prev) = self.entry(n);
            if (phy as u64) < cut {
                break;
            }
            let slot = self.slot_pos(h);
            if self.get32(slot) == n {
                self.set32(slot, prev);
                if prev == 0 {
                    self.set32(32, (self.slot_count() - 1).max(0));
                }
            }
            // SAFETY: in range; recovery has no concurrent readers.
            unsafe {
                std::ptr::write_bytes(self.map.as_mut_ptr().add(self.entry_pos(n)), 0, ENTRY)
            };
            n -= 1;
            removed += 1;
        }
        self.set_index_count(n + 1);
        if n >= 1 {
            let (_, phy, diff, _) = self.entry(n);
            self.set64(8, self.begin_timestamp() + diff as i64 * 1000);
            self.set64(24, phy);
        } else {
            for pos in [0, 8, 16, 24] {
                self.set64(pos, 0);
            }
        }
        removed
    }

    fn flush(&self) -> Result<()> {
        self.map
            .flush()
            .map_err(StoreError::io("flush index file", &self.path))
    }
}

/// All index files, oldest first; the last one takes new entries.
#[derive(Debug)]
pub struct IndexService {
    dir: PathBuf,
    slots: u32,
    entries: u32,
    files: RwLock<Vec<Arc<IndexFile>>>,
}

fn file_name(ms: i64) -> String {
    // yyyyMMddHHmmssSSS in UTC, as RocketMQ names index files (it uses local time).
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}{:03}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

impl IndexService {
    pub fn load(dir: &Path, slots: u32, entries: u32) -> Result<Self> {
        fsutil::create_dir_durably(dir)?;
        let mut names = Vec::new();
        for e in fs::read_dir(dir).map_err(StoreError::io("list directory", dir))? {
            let e = e.map_err(StoreError::io("list directory", dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.len() == 17 && name.bytes().all(|b| b.is_ascii_digit()) {
                names.push(name);
            } else if name.len() == 21 && name.ends_with(".tmp") {
                // A file being created when the process stopped.
                fs::remove_file(e.path())
                    .map_err(StoreError::io("remove index file", &e.path()))?;
            }
        }
        names.sort();
        let mut files = Vec::with_capacity(names.len());
        for name in &names {
            let path = dir.join(name);
            if IndexFile::never_written(&path)? {
                tracing::warn!(path = %path.display(), "removing an index file whose header was never written; recovery re-indexes its messages");
                fs::remove_file(&path).map_err(StoreError::io("remove index file", &path))?;
                continue;
            }
            files.push(Arc::new(IndexFile::open(&path, slots, entries, false)?));
        }
        Ok(IndexService {
            dir: dir.to_path_buf(),
            slots,
            entries,
            files: RwLock::new(files),
        })
    }

    /// Indexes `key` of `topic` for the record at `phy`. Dispatcher thread only.
    pub fn put(&self, topic: &str, key: &str, phy: u64, store_ts: i64) -> Result<()> {
        let hash = key_hash(topic, key);
        let last = self.files.read().last().cloned();
        if let Some(f) = last {
            if f.put(hash, phy as i64, store_ts) {
                return Ok(());
            }
            f.flush()?;
        }
        let mut ms = store_ts.max(1);
        let mut path = self.dir.join(file_name(ms));
        while path.exists() {
            ms += 1;
            path = self.dir.join(file_name(ms));
        }
        let f = Arc::new(IndexFile::create(&path, self.slots, self.entries)?);
        fsutil::fsync_dir(&self.dir)?;
        let ok = f.put(hash, phy as i64, store_ts);
        debug_assert!(ok);
        self.files.write().push(f);
        Ok(())
    }

    /// Commit log offsets that may hold `key` in `topic`, stored within `begin..=end` ms, newest
    /// first, at most `max`. Hash collisions are possible: the caller checks the messages.
    pub fn query(&self, topic: &str, key: &str, max: usize, begin: i64, end: i64) -> Vec<u64> {
        let hash = key_hash(topic, key);
        let mut out = Vec::new();
        let files = self.files.read().clone();
        for f in files.iter().rev() {
            if out.len() >= max {
                break;
            }
            if f.index_count() <= 1 || f.end_timestamp() < begin || f.begin_timestamp() > end {
                continue;
            }
            f.select(hash, begin, end, max, &mut out);
        }
        out
    }

    /// Drops entries pointing at or past `cut`. Recovery only.
    pub fn truncate(&self, cut: u64) -> Result<usize> {
        let mut files = self.files.write();
        let mut removed = 0;
        while let Some(f) = files.last() {
            removed += f.truncate(cut);
            if f.index_count() <= 1 {
                let f = files.pop().expect("checked above");
                fs::remove_file(&f.path).map_err(StoreError::io("delete index file", &f.path))?;
            } else {
                f.flush()?;
                break;
            }
        }
        Ok(removed)
    }

    pub fn flush(&self) -> Result<()> {
        if let Some(f) = self.files.read().last().cloned() {
            f.flush()?;
        }
        Ok(())
    }

    /// Deletes whole files whose entries all point below `min_phy`; the newest file stays.
    pub fn delete_expired(&self, min_phy: u64) -> Result<usize> {
        let mut files = self.files.write();
        let mut deleted = 0;
        while files.len() > 1 && (files[0].end_phy_offset() as u64) < min_phy {
            let f = files.remove(0);
            fs::remove_file(&f.path).map_err(StoreError::io("delete index file", &f.path))?;
            deleted += 1;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::java_string_hash;

    #[test]
    fn file_names_are_utc_timestamps() {
        assert_eq!(file_name(0), "19700101000000000");
        assert_eq!(file_name(1_763_719_845_123), "20251121101045123");
    }

    #[test]
    fn files_left_half_created_by_a_crash_are_removed_at_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let idx = IndexService::load(dir.path(), 7, 5).expect("load");
        idx.put("t", "k", 100, 1_700_000_000_000).expect("put");
        drop(idx);
        let size = IndexFile::size(7, 5) as u64;
        // Sized but without a header (a crash between sizing and writing it), and a stale
        // temporary file.
        let zeroed = dir.path().join(file_name(1_700_000_100_000));
        fs::File::create(&zeroed)
            .and_then(|f| f.set_len(size))
            .expect("zeroed");
        let tmp = dir
            .path()
            .join(format!("{}.tmp", file_name(1_700_000_200_000)));
        fs::File::create(&tmp)
            .and_then(|f| f.set_len(size))
            .expect("tmp");
        let idx = IndexService::load(dir.path(), 7, 5).expect("reload");
        assert!(!zeroed.exists() && !tmp.exists());
        assert_eq!(idx.files.read().len(), 1);
        assert_eq!(idx.query("t", "k", 10, 0, i64::MAX), vec![100]);
        idx.put("t", "k", 200, 1_700_000_300_000)
            .expect("put after");
        assert_eq!(idx.query("t", "k", 10, 0, i64::MAX), vec![200, 100]);
        // A damaged header that is not all zeros is still refused.
        drop(idx);
        let bad = dir.path().join(file_name(1_700_000_400_000));
        let mut header = vec![0u8; IndexFile::size(7, 5)];
        header[0] = 1;
        fs::write(&bad, header).expect("bad");
        assert!(IndexService::load(dir.path(), 7, 5).is_err());
    }

    #[test]
    fn put_query_roll_and_truncate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let idx = IndexService::load(dir.path(), 7, 5).expect("load");
        let t0 = 1_700_000_000_000;
        for i in 0..10u64 {
            let key = if i % 2 == 0 { "even" } else { "odd" };
            idx.put("t", key, i * 100, t0 + i as i64 * 1000)
                .expect("put");
        }
        assert_eq!(
            idx.files.read().len(),
            3,
            "4 entries per file of 5 (entry 0 unused)"
        );
        assert_eq!(
            idx.query("t", "even", 100, 0, i64::MAX),
            vec![800, 600, 400, 200, 0]
        );
        assert_eq!(idx.query("t", "odd", 2, 0, i64::MAX), vec![900, 700]);
        assert_eq!(
            idx.query("t", "odd", 100, t0 + 2000, t0 + 5000),
            vec![500, 300]
        );
        assert!(idx.query("other", "odd", 100, 0, i64::MAX).is_empty());
        drop(idx);
        let idx = IndexService::load(dir.path(), 7, 5).expect("reload");
        assert_eq!(
            idx.query("t", "odd", 100, 0, i64::MAX),
            vec![900, 700, 500, 300, 100]
        );
        idx.truncate(450).expect("truncate");
        assert_eq!(idx.query("t", "even", 100, 0, i64::MAX), vec![400, 200, 0]);
        assert_eq!(idx.query("t", "odd", 100, 0, i64::MAX), vec![300, 100]);
        idx.put("t", "odd", 500, t0 + 5000)
            .expect("put after truncate");
        assert_eq!(idx.query("t", "odd", 100, 0, i64::MAX), vec![500, 300, 100]);
    }

    #[test]
    fn key_hash_is_rocketmq_abs_java_hash() {
        assert_eq!(key_hash("t", "k"), java_string_hash("t#k").wrapping_abs());
        assert!(key_hash("TopicTest", "OrderID188") >= 0);
    }
}
