//! The checkpoint file: how far each part of the store is known durable.
//!
//! Layout (big-endian, 4 KiB file): physic_ts i64 | logics_ts i64 | index_ts i64 |
//! physic_flushed_offset i64 | logics_offset i64 | crc32 of the preceding 40 bytes (u32).
//! The first three fields are RocketMQ's. Written with temp file + rename, so a torn write
//! leaves the previous version; a CRC mismatch reads as "no checkpoint".

use std::path::Path;

use crate::error::{Result, StoreError};
use crate::fsutil;

const LEN: usize = 4096;
const BODY: usize = 40;

/// Durable progress of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checkpoint {
    /// Store timestamp of the last durable commit log record.
    pub physic_timestamp: i64,
    /// Store timestamp of the last record whose consume queue unit is durable.
    pub logics_timestamp: i64,
    /// Store timestamp of the last record whose index entries are durable.
    pub index_timestamp: i64,
    /// Commit log bytes below this offset are durable.
    pub physic_flushed_offset: u64,
    /// Consume queues and index files are durable for every record below this offset.
    pub logics_offset: u64,
}

impl Checkpoint {
    /// Reads the checkpoint; `Ok(None)` when missing or damaged (logged).
    pub fn read(path: &Path) -> Result<Option<Checkpoint>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(StoreError::Io {
                    op: "read checkpoint",
                    path: path.into(),
                    source: e,
                });
            }
        };
        if bytes.len() < BODY + 4 {
            tracing::warn!(path = %path.display(), len = bytes.len(), "checkpoint too short; recovering without it");
            return Ok(None);
        }
        let crc = u32::from_be_bytes([
            bytes[BODY],
            bytes[BODY + 1],
            bytes[BODY + 2],
            bytes[BODY + 3],
        ]);
        if crc32fast::hash(&bytes[..BODY]) != crc {
            tracing::warn!(path = %path.display(), "checkpoint CRC mismatch; recovering without it");
            return Ok(None);
        }
        let f = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            i64::from_be_bytes(b)
        };
        Ok(Some(Checkpoint {
            physic_timestamp: f(0),
            logics_timestamp: f(1),
            index_timestamp: f(2),
            physic_flushed_offset: f(3) as u64,
            logics_offset: f(4) as u64,
        }))
    }

    /// Writes the checkpoint durably.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut bytes = vec![0u8; LEN];
        for (i, v) in [
            self.physic_timestamp,
            self.logics_timestamp,
            self.index_timestamp,
            self.physic_flushed_offset as i64,
            self.logics_offset as i64,
        ]
        .into_iter()
        .enumerate()
        {
            bytes[i * 8..i * 8 + 8].copy_from_slice(&v.to_be_bytes());
        }
        let crc = crc32fast::hash(&bytes[..BODY]);
        bytes[BODY..BODY + 4].copy_from_slice(&crc.to_be_bytes());
        fsutil::write_durably(path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_damage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("checkpoint");
        assert_eq!(Checkpoint::read(&path).expect("read"), None);
        let cp = Checkpoint {
            physic_timestamp: 1,
            logics_timestamp: 2,
            index_timestamp: 3,
            physic_flushed_offset: 4,
            logics_offset: 5,
        };
        cp.write(&path).expect("write");
        assert_eq!(Checkpoint::read(&path).expect("read"), Some(cp));
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[9] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(
            Checkpoint::read(&path).expect("read"),
            None,
            "a damaged checkpoint is ignored"
        );
    }
}
