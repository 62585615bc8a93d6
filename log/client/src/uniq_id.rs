//! Client-side unique message ids (`UNIQ_KEY`), generated as Java's `MessageClientIDSetter`:
//! upper-case hex of
//!
//! | bytes | content |
//! |---|---|
//! | 4 (16 for IPv6) | client IP |
//! | 2 | process id (low 16 bits) |
//! | 4 | a per-generator random number (Java: the class loader's hash code) |
//! | 4 | milliseconds since the start of the current month, local time |
//! | 2 | a counter |
//!
//! so an id is 32 hex digits (56 with an IPv6 address), and the time a message was sent can
//! be read back from its id ([`nearly_time_from_id`]).

use std::fmt::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{Datelike, Local, TimeZone};
use parking_lot::Mutex;

/// Generates unique message ids for one client instance.
#[derive(Debug)]
pub struct UniqIdGenerator {
    prefix: String,
    month: Mutex<MonthWindow>,
    counter: AtomicU32,
}

/// The current month, in ms since the epoch: `[start, next_start)`.
#[derive(Debug, Clone, Copy)]
struct MonthWindow {
    start: i64,
    next_start: i64,
}

impl UniqIdGenerator {
    /// A generator for a client at `ip`.
    pub fn new(ip: IpAddr) -> Self {
        let mut prefix = String::with_capacity(2 * 22);
        match ip {
            IpAddr::V4(v4) => v4.octets().iter().for_each(|b| push_hex(&mut prefix, *b)),
            IpAddr::V6(v6) => v6.octets().iter().for_each(|b| push_hex(&mut prefix, *b)),
        }
        let pid = std::process::id() as u16;
        pid.to_be_bytes()
            .iter()
            .for_each(|b| push_hex(&mut prefix, *b));
        let salt: u32 = rand::random();
        salt.to_be_bytes()
            .iter()
            .for_each(|b| push_hex(&mut prefix, *b));
        Self {
            prefix,
            month: Mutex::new(month_window(now_ms())),
            counter: AtomicU32::new(0),
        }
    }

    /// A fresh id.
    pub fn next_id(&self) -> String {
        self.id_at(now_ms())
    }

    /// The id for a send at `now_ms` (ms since the epoch).
    fn id_at(&self, now_ms: i64) -> String {
        let start = {
            let mut month = self.month.lock();
            if now_ms >= month.next_start {
                *month = month_window(now_ms);
            }
            month.start
        };
        let mut diff = now_ms.wrapping_sub(start) as i32;
        if diff < 0 && diff > -1_000_000 {
            // The clock went back across a month start (NTP): Java clamps the same way.
            diff = 0;
        }
        let count = self.counter.fetch_add(1, Ordering::Relaxed) as u16;
        let mut id = String::with_capacity(self.prefix.len() + 12);
        id.push_str(&self.prefix);
        let _ = write!(id, "{:08X}{:04X}", diff as u32, count);
        id
    }
}

fn push_hex(out: &mut String, b: u8) {
    let _ = write!(out, "{b:02X}");
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The month (local time) that contains `now_ms`.
fn month_window(now_ms: i64) -> MonthWindow {
    let Some(now) = Local.timestamp_millis_opt(now_ms).earliest() else {
        return MonthWindow {
            start: now_ms,
            next_start: now_ms + 86_400_000,
        };
    };
    let (year, month) = (now.year(), now.month());
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let local_midnight = |y: i32, m: u32| {
        Local
            .with_ymd_and_hms(y, m, 1, 0, 0, 0)
            .earliest()
            .map(|t| t.timestamp_millis())
    };
    match (
        local_midnight(year, month),
        local_midnight(next_year, next_month),
    ) {
        (Some(start), Some(next_start)) => MonthWindow { start, next_start },
        _ => MonthWindow {
            start: now_ms,
            next_start: now_ms + 86_400_000,
        },
    }
}

/// The approximate send time (ms since the epoch) encoded in a unique id, assuming it was
/// made in this month or the last (as Java's `getNearlyTimeFromID`). `None` for ids that
/// are not 32 or 56 hex digits.
pub fn nearly_time_from_id(id: &str, now_ms: i64) -> Option<i64> {
    let ip_hex = match id.len() {
        32 => 8,
        56 => 32,
        _ => return None,
    };
    let at = ip_hex + 4 + 8;
    let span = u32::from_str_radix(id.get(at..at + 8)?, 16).ok()?;
    let this_month = month_window(now_ms);
    let mut start = this_month.start;
    if start + i64::from(span) >= now_ms {
        start = month_window(start - 1).start;
    }
    Some(start + i64::from(span))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    #[test]
    fn ids_have_java_layout() {
        let generator = UniqIdGenerator::new(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
        let id = generator.next_id();
        assert_eq!(id.len(), 32);
        assert!(id.starts_with("0A010203"), "{id}");
        assert_eq!(
            &id[8..12],
            format!("{:04X}", std::process::id() as u16),
            "{id}"
        );
        assert!(
            id.chars()
                .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
        );
        let v6 = UniqIdGenerator::new("fe80::1".parse().expect("ip")).next_id();
        assert_eq!(v6.len(), 56);
    }

    #[test]
    fn ids_are_unique_and_count_up() {
        let generator = UniqIdGenerator::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let ids: Vec<String> = (0..10_000).map(|_| generator.next_id()).collect();
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        let first = u16::from_str_radix(&ids[0][28..], 16).expect("hex");
        let second = u16::from_str_radix(&ids[1][28..], 16).expect("hex");
        assert_eq!(second, first.wrapping_add(1));
    }

    #[test]
    fn send_time_reads_back() {
        let generator = UniqIdGenerator::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let sent = now_ms() - 5_000;
        let id = generator.id_at(sent);
        assert_eq!(nearly_time_from_id(&id, sent + 10_000), Some(sent));
        assert_eq!(nearly_time_from_id("xyz", sent), None);
    }

    #[test]
    fn months_roll_over() {
        let generator = UniqIdGenerator::new(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let now = now_ms();
        let next = month_window(now).next_start;
        let id = generator.id_at(next + 1);
        assert_eq!(&id[20..28], "00000001", "{id}");
    }
}
