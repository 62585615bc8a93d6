//! Offset message ids: the store host and commit log offset of a stored message, as upper-case
//! hex. IPv4: 4 address bytes + i32 port + i64 offset (32 hex digits); IPv6: 16 address bytes
//! + i32 port + i64 offset (56 hex digits).
//!
//! Clients also generate a *unique* message id (`UNIQ_KEY`) of their own; it has no structure
//! the broker relies on and is handled as an opaque string.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use crate::error::ProtocolError;

/// Where a message is stored: the broker's store address and the commit log offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OffsetMessageId {
    /// Store host of the broker.
    pub store_host: SocketAddr,
    /// Physical offset in the commit log.
    pub commit_log_offset: i64,
}

impl OffsetMessageId {
    /// An id for a message stored at `commit_log_offset` on `store_host`.
    pub fn new(store_host: SocketAddr, commit_log_offset: i64) -> Self {
        Self {
            store_host,
            commit_log_offset,
        }
    }

    /// Decodes an id (hex digits of either case).
    pub fn decode(id: &str) -> Result<Self, ProtocolError> {
        let invalid = |reason| ProtocolError::InvalidMessageId {
            id: id.chars().take(64).collect(),
            reason,
        };
        let mut bytes = [0u8; 28];
        let len = match id.len() {
            32 => 16,
            56 => 28,
            _ => return Err(invalid("expected 32 (IPv4) or 56 (IPv6) hex digits")),
        };
        for (i, pair) in id.as_bytes().chunks_exact(2).enumerate() {
            let high = hex_value(pair[0]).ok_or_else(|| invalid("not hexadecimal"))?;
            let low = hex_value(pair[1]).ok_or_else(|| invalid("not hexadecimal"))?;
            bytes[i] = (high << 4) | low;
        }
        let bytes = &bytes[..len];
        let (ip, rest) = bytes.split_at(len - 12);
        let ip = match ip.len() {
            4 => IpAddr::V4(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3])),
            _ => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(ip);
                IpAddr::V6(Ipv6Addr::from(octets))
            }
        };
        let (port, offset) = rest.split_at(4);
        let port = i32::from_be_bytes([port[0], port[1], port[2], port[3]]);
        let port = u16::try_from(port).map_err(|_| invalid("port out of range"))?;
        let mut offset_bytes = [0u8; 8];
        offset_bytes.copy_from_slice(offset);
        Ok(Self {
            store_host: SocketAddr::new(ip, port),
            commit_log_offset: i64::from_be_bytes(offset_bytes),
        })
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

impl OffsetMessageId {
    /// Writes the id into `buf` (long enough for an IPv6 id) and returns it: upper-case hex, as
    /// Java's `UtilAll.bytes2string`. A broker makes one per message stored, so this formats
    /// with a table rather than the formatting machinery.
    pub fn encode<'b>(&self, buf: &'b mut [u8; 56]) -> &'b str {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut raw = [0u8; 28];
        let ip_len = match self.store_host.ip() {
            IpAddr::V4(ip) => {
                raw[..4].copy_from_slice(&ip.octets());
                4
            }
            IpAddr::V6(ip) => {
                raw[..16].copy_from_slice(&ip.octets());
                16
            }
        };
        raw[ip_len..ip_len + 4].copy_from_slice(&i32::from(self.store_host.port()).to_be_bytes());
        raw[ip_len + 4..ip_len + 12].copy_from_slice(&self.commit_log_offset.to_be_bytes());
        let len = ip_len + 12;
        for (pair, byte) in buf.chunks_exact_mut(2).zip(&raw[..len]) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0xf)];
        }
        // Only ASCII hex digits were written.
        std::str::from_utf8(&buf[..2 * len]).unwrap_or_default()
    }
}

impl fmt::Display for OffsetMessageId {
    /// Upper-case hex, as Java's `UtilAll.bytes2string`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encode(&mut [0; 56]))
    }
}

impl FromStr for OffsetMessageId {
    type Err = ProtocolError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::decode(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_id_matches_java_layout() {
        let id = OffsetMessageId::new("10.0.0.1:10911".parse().expect("addr"), 0x1234);
        let text = id.to_string();
        assert_eq!(text, "0A00000100002A9F0000000000001234");
        assert_eq!(OffsetMessageId::decode(&text).ok(), Some(id));
        assert_eq!(OffsetMessageId::decode(&text.to_lowercase()).ok(), Some(id));
    }

    #[test]
    fn ipv6_id_round_trips() {
        let id = OffsetMessageId::new("[fe80::1]:10911".parse().expect("addr"), i64::MAX);
        let text = id.to_string();
        assert_eq!(text.len(), 56);
        assert_eq!(text.parse::<OffsetMessageId>().ok(), Some(id));
    }

    #[test]
    fn malformed_ids_are_errors() {
        let cases = [
            "",
            "0A000001",
            "0A00000100002A9F000000000000123",
            "0A00000100002A9F000000000000123G",
            "0A000001FFFFFFFF0000000000001234",
            "ÄÄ00000100002A9F00000000000012",
        ];
        for id in cases {
            assert!(OffsetMessageId::decode(id).is_err(), "{id:?}");
        }
    }
}
