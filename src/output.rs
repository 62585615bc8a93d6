//! Output of the client commands (`topic`, `produce`, `consume`, `group`): aligned tables for
//! people, JSON for scripts, and the few helpers they share.

use std::io::Write;

use anyhow::{Context, Result};
use serde::Serialize;
use tributary_client::{ClientConfig, ClientError, MessageExt};

use crate::cli::ClientArgs;

/// The client configuration of `--namesrv`.
pub fn client_config(args: &ClientArgs) -> Result<ClientConfig> {
    let config = ClientConfig::new(&args.namesrv);
    if config.namesrv_addrs.is_empty() {
        anyhow::bail!(
            "no NameServer address: pass --namesrv host:port (several separated by `;`) or set NAMESRV_ADDR"
        );
    }
    Ok(config)
}

/// A table printed with aligned columns: a header line, then one line per row. Columns are
/// separated by two spaces; numeric columns are right-aligned.
#[derive(Debug)]
pub struct Table {
    headers: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers; a header starting with `>` is right-aligned (the
    /// `>` is not printed).
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            right: headers.iter().map(|h| h.starts_with('>')).collect(),
            headers: headers.iter().map(|h| h.trim_start_matches('>')).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells print empty, extra cells are ignored).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, every line ending in `\n`.
    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        for cells in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (width, right)) in widths.iter().zip(&self.right).enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                let pad = width.saturating_sub(cell.chars().count());
                if i > 0 {
                    line.push_str("  ");
                }
                if *right {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if i + 1 < columns {
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// Prints the table on stdout.
    pub fn print(&self) -> Result<()> {
        print_text(&self.render())
    }
}

/// Writes text to stdout.
pub fn print_text(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("write to stdout")
}

/// Prints one JSON document on stdout (pretty, ending in a newline).
pub fn print_json(value: &impl Serialize) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).context("encode JSON")?;
    text.push('\n');
    print_text(&text)
}

/// Milliseconds since the epoch as an RFC 3339 UTC time with milliseconds.
pub fn format_time_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// Permission bits as `rw`, `r`, `w` or `-` (the `--perm` spelling).
pub fn perm_name(perm: i32) -> &'static str {
    use tributary_protocol::perm::{is_readable, is_writeable};
    match (is_readable(perm), is_writeable(perm)) {
        (true, true) => "rw",
        (true, false) => "r",
        (false, true) => "w",
        (false, false) => "-",
    }
}

/// Turns "no route" into the error a person expects for a topic that does not exist.
pub fn topic_error(topic: &str, namesrv: &str, error: ClientError) -> anyhow::Error {
    match error {
        ClientError::NoRoute { .. } => anyhow::anyhow!(
            "topic {topic} does not exist: no NameServer at {namesrv} has a route for it (see `tributary topic list`)"
        ),
        e => anyhow::Error::new(e).context(format!("look up topic {topic}")),
    }
}

/// A message as JSON (`consume --json`, `message show|get|query --json`).
#[derive(Debug, Serialize)]
pub struct JsonMessage<'a> {
    pub topic: &'a str,
    pub broker: &'a str,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub msg_id: &'a str,
    pub offset_msg_id: &'a str,
    pub tags: Option<&'a str>,
    pub keys: Vec<&'a str>,
    /// The body as UTF-8 (invalid bytes replaced).
    pub body: String,
    /// The body in hexadecimal, when it is not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_hex: Option<String>,
    pub born_timestamp: i64,
    pub born_host: String,
    pub store_timestamp: i64,
    pub store_time: String,
    pub store_host: String,
    pub reconsume_times: i32,
    pub commit_log_offset: i64,
    pub store_size: i32,
    pub sys_flag: i32,
    pub flag: i32,
    pub properties: &'a std::collections::BTreeMap<String, String>,
}

impl<'a> JsonMessage<'a> {
    pub fn new(m: &'a MessageExt) -> Self {
        Self {
            topic: &m.topic,
            broker: &m.broker_name,
            queue_id: m.queue_id,
            queue_offset: m.queue_offset,
            msg_id: m.msg_id(),
            offset_msg_id: &m.offset_msg_id,
            tags: m.tags(),
            keys: m.keys(),
            body: String::from_utf8_lossy(&m.body).into_owned(),
            body_hex: std::str::from_utf8(&m.body).is_err().then(|| hex(&m.body)),
            born_timestamp: m.born_timestamp,
            born_host: m.born_host.to_string(),
            store_timestamp: m.store_timestamp,
            store_time: format_time_ms(m.store_timestamp),
            store_host: m.store_host.to_string(),
            reconsume_times: m.reconsume_times,
            commit_log_offset: m.commit_log_offset,
            store_size: m.store_size,
            sys_flag: m.sys_flag,
            flag: m.flag,
            properties: &m.properties,
        }
    }
}

/// Bytes as lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Text for a person: invalid UTF-8 replaced, control characters escaped, so that a value
/// always prints on one line.
pub fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let mut t = Table::new(&["TOPIC", ">QUEUES", "PERM"]);
        t.row(vec!["orders".into(), "8".into(), "rw".into()]);
        t.row(vec!["a".into(), "16".into(), "r".into()]);
        assert_eq!(
            t.render(),
            "TOPIC   QUEUES  PERM\norders       8  rw\na           16  r\n"
        );
        let empty = Table::new(&["GROUP"]);
        assert_eq!(empty.render(), "GROUP\n");
    }

    #[test]
    fn values_print_on_one_line() {
        let cases: [(&[u8], &str); 5] = [
            (b"plain text", "plain text"),
            (b"two\nlines\r\n", "two\\nlines\\r\\n"),
            (b"tab\there", "tab\\there"),
            (b"bell\x07", "bell\\u{7}"),
            (b"bad \xff byte", "bad \u{fffd} byte"),
        ];
        for (input, expect) in cases {
            assert_eq!(printable(input), expect);
        }
    }

    #[test]
    fn times_and_perms() {
        assert_eq!(format_time_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_time_ms(1_714_564_800_123),
            "2024-05-01T12:00:00.123Z"
        );
        assert_eq!(perm_name(6), "rw");
        assert_eq!(perm_name(4), "r");
        assert_eq!(perm_name(2), "w");
        assert_eq!(perm_name(0), "-");
    }
}
