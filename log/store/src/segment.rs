//! Memory-mapped segment files and ordered queues of them.
//!
//! A [`MappedFile`] is one fixed-size file mapped shared and writable. It has exactly one writer
//! at a time (the caller guarantees it: the commit log's append lock, or the single dispatcher
//! thread for consume queues). Bytes below the published write position are never modified
//! again, except by recovery before any reader exists, so readers slice them without locks.
//! A reader holds an `Arc<MappedFile>`; deleting the file unlinks it, and the mapping lives
//! until the last reader drops it.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use memmap2::{MmapOptions, MmapRaw};
use parking_lot::RwLock;

use crate::error::{Result, StoreError};
use crate::fsutil;

const PAGE: usize = 4096;
/// Buffers one `pwritev` takes at most (Linux `UIO_MAXIOV`).
const IOV_MAX: usize = 1024;
/// Bytes a segment is warmed by per step (between checks whether it is wanted now).
const WARM_STEP: usize = 8 << 20;
/// Bytes of zeros [`MappedFile::prewrite`] writes and writes back per step.
const PREWRITE_STEP: usize = 256 << 10;

/// One memory-mapped segment file.
#[derive(Debug)]
pub struct MappedFile {
    path: PathBuf,
    file: File,
    base: u64,
    size: usize,
    map: MmapRaw,
    wrote: AtomicUsize,
    flushed: AtomicUsize,
    /// Pages below this are faulted in writable ahead of the appends (see [`Self::prefault_to`]).
    prefaulted: AtomicUsize,
}

impl MappedFile {
    /// Creates a new file of `size` bytes (allocated on disk when the filesystem allows) and maps it.
    pub fn create(path: &Path, base: u64, size: usize) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(StoreError::io("create segment", path))?;
        // Reserve the blocks up front so that first writes through the mapping do not allocate;
        // fall back to a sparse file where the filesystem cannot.
        if rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, size as u64)
            .is_err()
        {
            file.set_len(size as u64)
                .map_err(StoreError::io("size segment", path))?;
        }
        Self::map(path.to_path_buf(), file, base, size)
    }

    /// Opens and maps an existing file, which must be exactly `size` bytes.
    pub fn open(path: &Path, base: u64, size: usize) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(StoreError::io("open segment", path))?;
        let len = file
            .metadata()
            .map_err(StoreError::io("stat segment", path))?
            .len();
        if len != size as u64 {
            return Err(StoreError::Layout {
                path: path.to_path_buf(),
                reason: format!(
                    "file is {len} bytes, expected {size} (was the segment size changed?)"
                ),
            });
        }
        Self::map(path.to_path_buf(), file, base, size)
    }

    fn map(path: PathBuf, file: File, base: u64, size: usize) -> Result<Self> {
        let map = MmapOptions::new()
            .len(size)
            .map_raw(&file)
            .map_err(StoreError::io("map segment", &path))?;
        Ok(MappedFile {
            path,
            file,
            base,
            size,
            map,
            wrote: AtomicUsize::new(0),
            flushed: AtomicUsize::new(0),
            prefaulted: AtomicUsize::new(0),
        })
    }

    /// For a file that is fsynced after every few KiB (SYNC flush): fault in single pages.
    /// With the default read-around the filesystem builds folios of up to 2 MiB; a write fault
    /// dirties the whole folio and every msync writes it all back (measured 0.75-2.2 MiB per
    /// group commit for ~60 KB appended). ASYNC mode keeps read-around: there it makes page
    /// faults cheaper and the periodic flush writes each folio about once.
    pub(crate) fn advise_small_syncs(&self) {
        if let Err(e) = self.map.advise(memmap2::Advice::Random) {
            tracing::debug!(error = %e, path = %self.path.display(), "madvise(MADV_RANDOM) failed");
        }
    }

    /// A full file is only read: give it readahead back for sequential consumers.
    pub(crate) fn advise_sequential_reads(&self) {
        let _ = self.map.advise(memmap2::Advice::Normal);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Offset (in the queue's address space) of the file's first byte.
    pub fn base(&self) -> u64 {
        self.base
    }
    pub fn size(&self) -> usize {
        self.size
    }
    /// Bytes written and published.
    pub fn wrote(&self) -> usize {
        self.wrote.load(Ordering::Acquire)
    }
    /// Bytes known durable.
    pub fn flushed(&self) -> usize {
        self.flushed.load(Ordering::Acquire)
    }
    pub fn remaining(&self) -> usize {
        self.size - self.wrote()
    }
    pub fn is_full(&self) -> bool {
        self.wrote() == self.size
    }

    /// Copies `bytes` in at the write position and publishes them. Returns their position.
    ///
    /// Only one thread may call this (or [`Self::write_at`]) on a file at a time; callers hold
    /// the commit log's append lock or are the dispatcher thread.
    pub fn append(&self, bytes: &[u8]) -> usize {
        let pos = self.wrote.load(Ordering::Relaxed);
        self.write_at(pos, bytes);
        self.wrote.store(pos + bytes.len(), Ordering::Release);
        pos
    }

    /// As [`Self::append`] for the concatenation of `parts`, but through `pwritev(2)` instead
    /// of the mapping: the pages are never mapped writable in this process, so writeback need
    /// not write-protect them. Through the mapping, every dirty page costs a TLB-shootdown IPI to
    /// each other CPU running the process at every sync (measured: ~40 % of a SYNC group
    /// commit's time on a 2-vCPU VM). Readers still read through the mapping: it shows the same
    /// page cache. Nothing is published when the write fails.
    pub(crate) fn append_via_file(&self, parts: &[&[u8]]) -> std::io::Result<usize> {
        let pos = self.wrote.load(Ordering::Relaxed);
        let len = self.write_via_file_at(pos, parts)?;
        self.wrote.store(pos + len, Ordering::Release);
        Ok(pos)
    }

    /// As [`Self::write_at`] through `pwritev(2)` (see [`Self::append_via_file`]). Returns the
    /// bytes written: all of them, or an error.
    pub(crate) fn write_via_file_at(&self, pos: usize, parts: &[&[u8]]) -> std::io::Result<usize> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        assert!(
            pos >= self.wrote.load(Ordering::Relaxed) && pos + len <= self.size,
            "write at {pos}+{len} outside the unwritten part of a {}-byte segment",
            self.size
        );
        let mut slices: Vec<std::io::IoSlice<'_>> =
            parts.iter().map(|p| std::io::IoSlice::new(p)).collect();
        let mut bufs = &mut slices[..];
        let mut at = pos as u64;
        while !bufs.is_empty() {
            let iov = bufs.len().min(IOV_MAX);
            match rustix::io::pwritev(&self.file, &bufs[..iov], at) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    at += n as u64;
                    std::io::IoSlice::advance_slices(&mut bufs, n);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(len)
    }

    /// Copies `bytes` in at `pos` (at or beyond the write position) without publishing them.
    pub fn write_at(&self, pos: usize, bytes: &[u8]) {
        assert!(
            pos >= self.wrote.load(Ordering::Relaxed) && pos + bytes.len() <= self.size,
            "write at {pos}+{} outside the unwritten part of a {}-byte segment",
            bytes.len(),
            self.size
        );
        // SAFETY: the range is inside the mapping (checked above) and at or past the published
        // write position, so no reader looks at it, and the single-writer rule excludes others.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.map.as_mut_ptr().add(pos),
                bytes.len(),
            );
        }
    }

    /// Publishes bytes written with [`Self::write_at`] up to `pos`.
    pub fn set_wrote(&self, pos: usize) {
        assert!(pos <= self.size);
        self.wrote.store(pos, Ordering::Release);
    }

    /// Marks everything up to `pos` as flushed (recovery: the bytes came from disk).
    pub fn set_flushed(&self, pos: usize) {
        self.flushed.store(pos.min(self.size), Ordering::Release);
    }

    /// The published bytes `pos..pos + len`, or `None` when the range is not fully published.
    pub fn slice(&self, pos: usize, len: usize) -> Option<&[u8]> {
        let end = pos.checked_add(len)?;
        if end > self.wrote() {
            return None;
        }
        // SAFETY: published bytes are never written again while the mapping is shared
        // (recovery rewrites only before readers exist), and the range is inside the mapping.
        Some(unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(pos), len) })
    }

    /// The bytes `pos..pos + len` whether published or not: recovery's view of what is on disk.
    pub(crate) fn raw(&self, pos: usize, len: usize) -> &[u8] {
        let pos = pos.min(self.size);
        let len = len.min(self.size - pos);
        // SAFETY: in range; used only during recovery, before any concurrent writer exists.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(pos), len) }
    }

    /// Syncs published bytes not yet flushed. Returns the new flushed position.
    pub fn flush(&self) -> std::io::Result<usize> {
        let wrote = self.wrote();
        let flushed = self.flushed();
        if wrote > flushed {
            let start = flushed / PAGE * PAGE;
            self.map.flush_range(start, wrote - start)?;
            self.flushed.fetch_max(wrote, Ordering::AcqRel);
        }
        Ok(wrote)
    }

    /// Zeroes `from..to`, punching a hole where the filesystem can. Recovery only.
    pub(crate) fn zero_range(&self, from: usize, to: usize) -> Result<()> {
        let to = to.min(self.size);
        if from >= to {
            return Ok(());
        }
        let hole_start = from.div_ceil(PAGE) * PAGE;
        let hole_end = to / PAGE * PAGE;
        let punched = hole_end > hole_start
            && rustix::fs::fallocate(
                &self.file,
                rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE,
                hole_start as u64,
                (hole_end - hole_start) as u64,
            )
            .is_ok();
        let zero = |a: usize, b: usize| {
            // SAFETY: in range; recovery runs before any reader or writer exists.
            unsafe { std::ptr::write_bytes(self.map.as_mut_ptr().add(a), 0, b - a) };
        };
        if punched {
            zero(from, hole_start.min(to));
            if hole_end > from.max(hole_start) {
                zero(hole_end.max(from), to);
            }
        } else {
            zero(from, to);
        }
        self.map
            .flush_range(from / PAGE * PAGE, to - from / PAGE * PAGE)
            .map_err(StoreError::io("sync zeroed range", &self.path))
    }

    /// How far the pages are faulted in ahead of the appends.
    pub(crate) fn prefaulted(&self) -> usize {
        self.prefaulted.load(Ordering::Acquire)
    }

    /// Faults the pages up to `to` in writable, ahead of mapped appends (ASYNC mode), so that
    /// the appends do not take the page faults (allocating and zeroing a page-cache page under
    /// the append lock): `MADV_POPULATE_WRITE` (Linux 5.14+). Where the kernel does not know
    /// that advice, a file no append uses yet (`unused`) has its pages touched instead, and a
    /// file in use is left to fault. Runs on the allocator thread in steps, and stops early when
    /// `hurry` says so. Populating never changes bytes, so it may run beside the appends.
    ///
    /// With [`Prefault::PageCache`] the pages are only read into the page cache
    /// (`POSIX_FADV_WILLNEED`: the filesystem zero-fills preallocated blocks without reading
    /// them), for appends written through the file: a write then finds its page allocated and
    /// up to date, and the page is never mapped writable.
    pub(crate) fn prefault_to(
        &self,
        to: usize,
        unused: bool,
        how: Prefault,
        hurry: impl Fn() -> bool,
    ) {
        let to = to.min(self.size);
        let mut pos = self.prefaulted().max(self.wrote()) / PAGE * PAGE;
        while pos < to && !hurry() {
            let len = WARM_STEP.min(to - pos);
            if how == Prefault::PageCache {
                if let Err(e) = rustix::fs::fadvise(
                    &self.file,
                    pos as u64,
                    std::num::NonZeroU64::new(len as u64),
                    rustix::fs::Advice::WillNeed,
                ) {
                    tracing::debug!(error = %e, "POSIX_FADV_WILLNEED failed; writes will allocate their pages");
                }
            } else if let Err(e) = self
                .map
                .advise_range(memmap2::Advice::PopulateWrite, pos, len)
            {
                if !unused {
                    // Touching pages would race with the appends: let them fault.
                    tracing::debug!(error = %e, "MADV_POPULATE_WRITE failed; appends will fault");
                    self.prefaulted.store(self.size, Ordering::Release);
                    return;
                }
                for page in (pos..pos + len).step_by(PAGE) {
                    // SAFETY: in range, and no append or reader uses the file yet (`unused`).
                    unsafe { std::ptr::write_volatile(self.map.as_mut_ptr().add(page), 0) };
                }
            }
            pos += len;
            self.prefaulted.fetch_max(pos, Ordering::AcqRel);
        }
    }

    /// Writes zeros over the whole file and syncs it, so that the blocks are written rather
    /// than preallocated-unwritten (`prewrite_segments`, SYNC mode). Writing into an unwritten
    /// block converts its extent at writeback, a metadata change that every SYNC group commit's
    /// `fdatasync` then commits to the journal with it: measured on this 2-vCPU VM, 4 device
    /// writes per fsync instead of 1, and 200 µs per 64 KiB fdatasync instead of 115 µs. An
    /// overwrite of written blocks needs no journal commit.
    ///
    /// The file must not be in use yet: no append may run beside this. Zeros go in one page
    /// per `pwrite` (a longer write would make the page cache build large folios, and a group
    /// commit would then write back a whole folio for each small append), and each step is
    /// written back at once and waited for (`sync_file_range`), so that no more than one step
    /// of dirty zeros is ever queued ahead of a group commit's flush. The extent conversions are
    /// committed by one `fdatasync` at the end; until then the journal's own periodic commit
    /// takes them, and no group commit has to (it syncs another file). Stops early, between
    /// steps, when `hurry` says so. Returns the bytes prewritten from the start of the file.
    pub(crate) fn prewrite(&self, hurry: impl Fn() -> bool) -> std::io::Result<usize> {
        assert_eq!(self.wrote(), 0, "prewrite of a segment in use");
        let zeros = [0u8; PAGE];
        let mut pos = 0;
        while pos < self.size && !hurry() {
            let end = (pos + PREWRITE_STEP).min(self.size);
            for page in (pos..end).step_by(PAGE) {
                let len = PAGE.min(end - page);
                self.write_via_file_at(page, &[&zeros[..len]])?;
            }
            // SAFETY: a plain system call on a file descriptor this file owns.
            let rc = unsafe {
                libc::sync_file_range(
                    std::os::fd::AsRawFd::as_raw_fd(&self.file),
                    pos as libc::off64_t,
                    (end - pos) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE
                        | libc::SYNC_FILE_RANGE_WRITE
                        | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                )
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
            pos = end;
        }
        if pos > 0 {
            rustix::fs::fdatasync(&self.file)?;
        }
        Ok(pos)
    }

    /// Unlinks the file. Readers holding the mapping keep reading until they drop it.
    pub fn delete(&self) -> Result<()> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            // Already moved away (quarantine) or deleted.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Io {
                op: "delete segment",
                path: self.path.clone(),
                source: e,
            }),
        }
    }

    /// Last modification time of the file, in ms since the epoch.
    pub fn modified_ms(&self) -> Option<i64> {
        let m = self.file.metadata().ok()?.modified().ok()?;
        Some(m.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64)
    }
}

/// How [`MappedFile::prefault_to`] gets pages ready ahead of the appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefault {
    /// Faulted in writable (`MADV_POPULATE_WRITE`), for copies into the mapping.
    Mapped,
    /// Read into the page cache only, for writes through the file.
    PageCache,
}

/// The ordered, contiguous files of one log: the commit log, or one consume queue.
#[derive(Debug)]
pub struct SegmentQueue {
    dir: PathBuf,
    file_size: u64,
    files: RwLock<Vec<Arc<MappedFile>>>,
    /// Set by [`Self::destroy`] under the `files` lock; no file is created after it.
    destroyed: AtomicBool,
}

impl SegmentQueue {
    /// Loads the files in `dir` (created if missing). Names must be 20-digit start offsets and
    /// the files contiguous; stray `.tmp` files are removed.
    pub fn load(dir: &Path, file_size: u64) -> Result<Self> {
        fsutil::create_dir_durably(dir)?;
        let mut bases = Vec::new();
        for entry in fs::read_dir(dir).map_err(StoreError::io("list directory", dir))? {
            let entry = entry.map_err(StoreError::io("list directory", dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            match fsutil::parse_offset_file_name(&name) {
                Some(base) => bases.push(base),
                None if name.ends_with(".tmp") => {
                    let _ = fs::remove_file(entry.path());
                }
                None => {
                    tracing::warn!(path = %entry.path().display(), "ignoring unexpected file in segment directory");
                }
            }
        }
        bases.sort_unstable();
        let mut files = Vec::with_capacity(bases.len());
        for (i, &base) in bases.iter().enumerate() {
            let path = dir.join(fsutil::offset_file_name(base));
            if base % file_size != 0 {
                return Err(StoreError::Layout {
                    path,
                    reason: format!("start offset is not a multiple of the file size {file_size}"),
                });
            }
            if i > 0 && base != bases[i - 1] + file_size {
                return Err(StoreError::Layout {
                    path,
                    reason: format!("gap after the file starting at {}", bases[i - 1]),
                });
            }
            if bases[i + 1..]
                .iter()
                .all(|&b| Self::never_written(&dir.join(fsutil::offset_file_name(b))))
            {
                Self::restore_short_last_file(&path, file_size)?;
            }
            files.push(Arc::new(MappedFile::open(&path, base, file_size as usize)?));
        }
        Ok(SegmentQueue {
            dir: dir.to_path_buf(),
            file_size,
            files: RwLock::new(files),
            destroyed: AtomicBool::new(false),
        })
    }

    /// Whether a file holds nothing yet (a preallocated next segment): its first bytes are zero.
    fn never_written(path: &Path) -> bool {
        use std::io::Read;
        let mut head = [0u8; 8];
        fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok()
            && head == [0; 8]
    }

    /// The last file with data, shorter than the file size, lost its tail (a torn copy or a
    /// crash while the filesystem extended it): give it back its size with zeros, so that
    /// recovery judges the cut record like any torn write. Only never-written (preallocated)
    /// files may follow it; a short file before real data is a layout error.
    fn restore_short_last_file(path: &Path, file_size: u64) -> Result<()> {
        let len = fs::metadata(path)
            .map_err(StoreError::io("stat segment", path))?
            .len();
        if len < file_size {
            tracing::warn!(path = %path.display(), len, expected = file_size, "last segment is short; extending it with zeros for recovery");
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(StoreError::io("open segment", path))?;
            f.set_len(file_size)
                .map_err(StoreError::io("extend segment", path))?;
            f.sync_all()
                .map_err(StoreError::io("fsync segment", path))?;
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn file_size(&self) -> u64 {
        self.file_size
    }

    /// Path of the file that starts at `base`.
    pub fn path_for(&self, base: u64) -> PathBuf {
        self.dir.join(fsutil::offset_file_name(base))
    }

    /// A snapshot of the files, oldest first.
    pub fn files(&self) -> Vec<Arc<MappedFile>> {
        self.files.read().clone()
    }
    pub fn len(&self) -> usize {
        self.files.read().len()
    }
    pub fn is_empty(&self) -> bool {
        self.files.read().is_empty()
    }
    pub fn first(&self) -> Option<Arc<MappedFile>> {
        self.files.read().first().cloned()
    }
    pub fn last(&self) -> Option<Arc<MappedFile>> {
        self.files.read().last().cloned()
    }

    /// The file holding `offset`, if any.
    pub fn find(&self, offset: u64) -> Option<Arc<MappedFile>> {
        let files = self.files.read();
        let first = files.first()?.base;
        if offset < first {
            return None;
        }
        let idx = ((offset - first) / self.file_size) as usize;
        files.get(idx).cloned()
    }

    /// Offset of the first byte still present (0 for an empty queue).
    pub fn min_offset(&self) -> u64 {
        self.first().map_or(0, |f| f.base)
    }

    /// Appends a file to the queue; it must start where the last one ends.
    pub fn push(&self, file: Arc<MappedFile>) {
        Self::push_locked(&mut self.files.write(), file, self.file_size);
    }

    fn push_locked(files: &mut Vec<Arc<MappedFile>>, file: Arc<MappedFile>, file_size: u64) {
        if let Some(last) = files.last() {
            assert_eq!(
                file.base,
                last.base + file_size,
                "segment queue must stay contiguous"
            );
        }
        files.push(file);
    }

    /// Creates the file that starts at `base` and appends it.
    /// Fails with [`StoreError::Deleted`] once the queue was destroyed, also when the
    /// destruction races with this call (it may have removed the directory under it).
    pub fn create_file(&self, base: u64) -> Result<Arc<MappedFile>> {
        let deleted = || StoreError::Deleted {
            path: self.dir.clone(),
        };
        let destroyed = || self.destroyed.load(Ordering::Acquire);
        if destroyed() {
            return Err(deleted());
        }
        let file = match MappedFile::create(&self.path_for(base), base, self.file_size as usize) {
            Ok(file) => Arc::new(file),
            Err(_) if destroyed() => return Err(deleted()),
            Err(e) => return Err(e),
        };
        {
            let mut files = self.files.write();
            if destroyed() {
                drop(files);
                let _ = file.delete();
                return Err(deleted());
            }
            Self::push_locked(&mut files, file.clone(), self.file_size);
        }
        match fsutil::fsync_dir(&self.dir) {
            Err(_) if destroyed() => Err(deleted()),
            Err(e) => Err(e),
            Ok(()) => Ok(file),
        }
    }

    /// Syncs every file with unflushed bytes. Returns the offset up to which all is durable.
    pub fn flush(&self) -> Result<u64> {
        let files = self.files();
        let mut durable = files.first().map_or(0, |f| f.base);
        for f in &files {
            if f.flushed() < f.wrote() {
                f.flush()
                    .map_err(StoreError::io("flush segment", f.path()))?;
            }
            durable = f.base + f.flushed() as u64;
        }
        Ok(durable)
    }

    /// Drops everything at and after `offset`: later files are deleted, the file holding it is
    /// zeroed from there. Recovery only.
    pub(crate) fn truncate(&self, offset: u64) -> Result<()> {
        let mut files = self.files.write();
        while let Some(last) = files.last() {
            if last.base > offset {
                last.delete()?;
                files.pop();
            } else {
                break;
            }
        }
        if let Some(last) = files.last()
            && offset >= last.base
            && offset < last.base + self.file_size
        {
            let pos = (offset - last.base) as usize;
            let old = last.wrote().max(pos);
            last.zero_range(pos, old)?;
            last.set_wrote(pos);
            last.set_flushed(pos);
        }
        drop(files);
        fsutil::fsync_dir(&self.dir)
    }

    /// Removes the oldest file from the queue (retention). The caller deletes it.
    pub(crate) fn pop_first(&self, expected_base: u64) -> Option<Arc<MappedFile>> {
        let mut files = self.files.write();
        if files.len() > 1 && files.first().map(|f| f.base) == Some(expected_base) {
            Some(files.remove(0))
        } else {
            None
        }
    }

    /// Removes every file (a queue being deleted).
    pub(crate) fn destroy(&self) -> Result<()> {
        let mut files = self.files.write();
        self.destroyed.store(true, Ordering::Release);
        for f in files.drain(..) {
            f.delete()?;
        }
        drop(files);
        let _ = fs::remove_dir(&self.dir);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether any extent of `file` is preallocated but unwritten (`FIEMAP`), or `None` where
    /// the filesystem cannot say.
    fn has_unwritten_extents(file: &File) -> Option<bool> {
        const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
        const FIEMAP_FLAG_SYNC: u32 = 1;
        const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;
        const EXTENTS: usize = 64;
        // struct fiemap (32 bytes) followed by EXTENTS struct fiemap_extent (56 bytes each).
        let mut buf = vec![0u64; (32 + 56 * EXTENTS) / 8];
        buf[1] = u64::MAX; // fm_length
        buf[2] = u64::from(FIEMAP_FLAG_SYNC); // fm_flags; fm_mapped_extents (high half) out
        buf[3] = EXTENTS as u64; // fm_extent_count; fm_reserved (high half)
        // SAFETY: `buf` is a struct fiemap with room for EXTENTS extents, as the ioctl expects.
        let rc = unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(file),
                FS_IOC_FIEMAP,
                buf.as_mut_ptr(),
            )
        };
        if rc != 0 {
            return None;
        }
        let mapped = (buf[2] >> 32) as usize;
        // Extent i is 7 words from word 4; its fe_flags is the low half of its word 5.
        Some((0..mapped.min(EXTENTS)).any(|i| {
            let flags = buf[4 + i * 7 + 5] as u32;
            flags & FIEMAP_EXTENT_UNWRITTEN != 0
        }))
    }

    #[test]
    fn prewrite_turns_preallocated_blocks_into_written_zeros() {
        let dir = tempfile::tempdir().expect("tempdir");
        let size = 3 * PREWRITE_STEP + 2 * PAGE;
        let f = MappedFile::create(&dir.path().join("seg"), 0, size).expect("create");
        let unwritten_before = has_unwritten_extents(&f.file);
        assert_eq!(f.prewrite(|| false).expect("prewrite"), size);
        assert!(f.raw(0, size).iter().all(|&b| b == 0));
        if unwritten_before == Some(true) {
            assert_eq!(
                has_unwritten_extents(&f.file),
                Some(false),
                "blocks still unwritten after the prewrite"
            );
        }
        // Appends overwrite the zeros and read back.
        assert_eq!(
            f.append_via_file(&[b"hello", b" world"]).expect("append"),
            0
        );
        assert_eq!(f.slice(0, 11), Some(&b"hello world"[..]));
        assert_eq!(f.wrote(), 11);
    }

    #[test]
    fn prewrite_stops_between_steps_when_hurried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = MappedFile::create(&dir.path().join("seg"), 0, 4 * PREWRITE_STEP).expect("create");
        let steps = AtomicUsize::new(0);
        let done = f
            .prewrite(|| steps.fetch_add(1, Ordering::Relaxed) >= 2)
            .expect("prewrite");
        assert_eq!(done, 2 * PREWRITE_STEP);
        assert!(f.raw(0, f.size()).iter().all(|&b| b == 0));
        // Nothing at all when hurried from the start.
        let g = MappedFile::create(&dir.path().join("seg2"), 0, PREWRITE_STEP).expect("create");
        assert_eq!(g.prewrite(|| true).expect("prewrite"), 0);
    }

    #[test]
    fn a_destroyed_queue_creates_no_file_and_leaves_no_directory() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("topic").join("0");
        let q = SegmentQueue::load(&dir, 8192).expect("load");
        q.create_file(0).expect("create");
        q.destroy().expect("destroy");
        assert!(!dir.exists());
        // A writer that still holds the queue (the dispatcher, racing a topic deletion).
        assert!(matches!(
            q.create_file(8192),
            Err(StoreError::Deleted { .. })
        ));
        assert!(!dir.exists(), "the deleted queue's directory came back");
    }

    #[test]
    fn append_publish_slice_and_flush() {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = SegmentQueue::load(dir.path(), 8192).expect("load");
        let f = q.create_file(0).expect("create");
        assert_eq!(f.append(b"hello"), 0);
        assert_eq!(f.append(b"world"), 5);
        assert_eq!(f.slice(0, 10), Some(&b"helloworld"[..]));
        assert_eq!(f.slice(5, 6), None, "unpublished bytes are not readable");
        assert_eq!(f.flush().expect("flush"), 10);
        assert_eq!(q.last().map(|f| f.wrote()), Some(10));
        let g = q.create_file(8192).expect("second");
        assert!(Arc::ptr_eq(&q.find(8192 + 3).expect("find"), &g));
        assert!(q.find(3 * 8192).is_none());
        drop((f, g, q));
        // Reload sees both files; nothing is published until recovery says so.
        let q = SegmentQueue::load(dir.path(), 8192).expect("reload");
        assert_eq!(q.len(), 2);
        assert_eq!(q.files()[0].raw(0, 10), b"helloworld");
    }

    #[test]
    fn truncate_zeroes_and_deletes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let q = SegmentQueue::load(dir.path(), 8192).expect("load");
        let f = q.create_file(0).expect("create");
        f.append(&[7u8; 8192]);
        let g = q.create_file(8192).expect("create");
        g.append(&[9u8; 100]);
        q.truncate(5000).expect("truncate");
        assert_eq!(q.len(), 1);
        assert_eq!(f.wrote(), 5000);
        assert!(f.raw(5000, 3192).iter().all(|&b| b == 0));
        assert!(f.raw(0, 5000).iter().all(|&b| b == 7));
        assert!(!g.path().exists());
    }

    #[test]
    fn layout_errors_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A short file before data is a layout error; a short file followed only by
        // never-written (preallocated) files is extended, as is a short last one.
        let name = |b: u64| dir.path().join(fsutil::offset_file_name(b));
        fs::write(name(0), [0u8; 100]).expect("write");
        fs::write(name(8192), [1u8; 8192]).expect("write");
        let err = SegmentQueue::load(dir.path(), 8192).expect_err("wrong size");
        assert!(err.to_string().contains("expected 8192"), "{err}");
        fs::write(name(8192), [0u8; 8192]).expect("write");
        let q = SegmentQueue::load(dir.path(), 8192).expect("short file before a preallocated one");
        assert_eq!(q.files()[0].size(), 8192);
        drop(q);
        fs::remove_file(name(0)).expect("rm");
        fs::write(name(8192), [0u8; 100]).expect("write");
        let q = SegmentQueue::load(dir.path(), 8192).expect("a short last file is extended");
        assert_eq!(q.files()[0].size(), 8192);
        drop(q);
        fs::remove_file(name(8192)).expect("rm");
        fs::write(
            dir.path().join(fsutil::offset_file_name(0)),
            vec![0u8; 8192],
        )
        .expect("write");
        fs::write(
            dir.path().join(fsutil::offset_file_name(16384)),
            vec![0u8; 8192],
        )
        .expect("write");
        let err = SegmentQueue::load(dir.path(), 8192).expect_err("gap");
        assert!(err.to_string().contains("gap"), "{err}");
    }
}
