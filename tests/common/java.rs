//! The remoting protocol as a Java 4.x client writes and reads it, frame by frame: JSON
//! headers, hand-written field for field, so tests check the wire itself and not only what
//! our client sends.

use std::io::{Read, Write};
use std::net::TcpStream;

/// One remoting frame with a JSON header, as Java's `RemotingCommand.encode` writes it:
/// length, serialization type (0 = JSON) and header length, header, body.
pub fn write_frame(stream: &mut TcpStream, header: &serde_json::Value, body: &[u8]) {
    let header = serde_json::to_vec(header).expect("json");
    let mut frame = Vec::new();
    frame.extend_from_slice(&((4 + header.len() + body.len()) as u32).to_be_bytes());
    frame.extend_from_slice(&(header.len() as u32).to_be_bytes());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(body);
    stream.write_all(&frame).expect("write frame");
}

/// The next frame: its JSON header and its body.
pub fn read_frame(stream: &mut TcpStream) -> (serde_json::Value, Vec<u8>) {
    let mut len = [0; 4];
    stream.read_exact(&mut len).expect("frame length");
    let mut frame = vec![0; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut frame).expect("frame");
    let mark = u32::from_be_bytes(frame[..4].try_into().expect("4 bytes"));
    assert_eq!(mark >> 24, 0, "the broker answers a JSON client in JSON");
    let header_len = (mark & 0x00FF_FFFF) as usize;
    let header = serde_json::from_slice(&frame[4..4 + header_len]).expect("json header");
    (header, frame[4 + header_len..].to_vec())
}

/// A request header as Java writes it (`flag` 0: a request expecting an answer).
pub fn java_request(code: i32, opaque: i32, ext: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "code": code, "language": "JAVA", "version": 453, "opaque": opaque, "flag": 0,
        "extFields": ext, "serializeTypeCurrentRPC": "JSON",
    })
}

/// A one-way request header as Java writes it (`flag` bit 1: no answer is sent).
pub fn java_oneway(code: i32, opaque: i32, ext: serde_json::Value) -> serde_json::Value {
    let mut header = java_request(code, opaque, ext);
    header["flag"] = 2.into();
    header
}

/// Sends a request and reads frames until its response (answering nothing else).
pub fn call(
    stream: &mut TcpStream,
    code: i32,
    opaque: i32,
    ext: serde_json::Value,
    body: &[u8],
) -> serde_json::Value {
    write_frame(stream, &java_request(code, opaque, ext), body);
    loop {
        let (h, _) = read_frame(stream);
        if h["opaque"] == opaque && h["flag"].as_i64().unwrap_or(0) & 1 == 1 {
            return h;
        }
    }
}

/// A properties string (`name\x01value\x02…`).
pub fn props(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}\u{1}{v}\u{2}"))
        .collect()
}

/// SEND_MESSAGE_V2 / SEND_REPLY_MESSAGE_V2 fields (`SendMessageRequestHeaderV2`).
pub fn v2_header(group: &str, topic: &str, properties: &str) -> serde_json::Value {
    serde_json::json!({
        "a": group, "b": topic, "c": "TBW102", "d": "4", "e": "-1", "f": "0",
        "g": "1700000000000", "h": "0", "i": properties, "j": "0", "k": "false", "m": "false",
    })
}

/// A raw Java-style producer connection that has heartbeated as `client_id`, a producer of
/// `group`.
pub fn java_producer(broker: &str, client_id: &str, group: &str) -> TcpStream {
    let mut s = TcpStream::connect(broker).expect("connect broker");
    let heartbeat = serde_json::json!({
        "clientID": client_id, "consumerDataSet": [],
        "producerDataSet": [{"groupName": group}],
    });
    let r = call(
        &mut s,
        34,
        1,
        serde_json::json!({}),
        heartbeat.to_string().as_bytes(),
    );
    assert_eq!(r["code"], 0, "{r}");
    s
}
