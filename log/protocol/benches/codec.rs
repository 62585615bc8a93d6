//! What one send costs the codec on each side: decoding a SEND_MESSAGE_V2 frame with its typed
//! header, and encoding the response, in the JSON and binary serializations.

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, criterion_group, criterion_main};
use tributary_protocol::header::{
    SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
};
use tributary_protocol::{FrameCodec, RemotingCommand, SerializeType, codes};

fn send_frame(serialize_type: SerializeType) -> BytesMut {
    let header = SendMessageRequestHeader {
        producer_group: "bench_producer".into(),
        topic: "BenchTopic".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 8,
        queue_id: 3,
        sys_flag: 0,
        born_timestamp: 1_763_700_000_000,
        flag: 0,
        properties: Some("UNIQ_KEY\u{1}7F0000014675ECEBBFDF697521E00000\u{2}WAIT\u{1}true\u{2}TAGS\u{1}TagA\u{2}".into()),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        batch: Some(false),
        max_reconsume_times: None,
        broker_name: None,
    };
    let mut request = RemotingCommand::new_request(codes::request::SEND_MESSAGE_V2, 42)
        .with_header(&SendMessageRequestHeaderV2::from(header))
        .with_body(Bytes::from(vec![b'x'; 1024]));
    request.serialize_type = serialize_type;
    let mut wire = BytesMut::new();
    FrameCodec::default()
        .encode(&request, &mut wire)
        .expect("encodes");
    wire
}

fn bench(c: &mut Criterion) {
    let codec = FrameCodec::default();
    for (name, st) in [
        ("json", SerializeType::Json),
        ("rocketmq", SerializeType::RocketMq),
    ] {
        let frame = send_frame(st);
        c.bench_function(&format!("decode send_v2 + header ({name})"), |b| {
            b.iter(|| {
                let mut wire = frame.clone();
                let cmd = codec.decode(&mut wire).expect("ok").expect("frame");
                SendMessageRequestHeader::from_command(&cmd).expect("header")
            })
        });
        c.bench_function(&format!("encode send response ({name})"), |b| {
            let mut out = BytesMut::with_capacity(4096);
            b.iter(|| {
                let mut response = RemotingCommand::new_response(codes::response::SUCCESS, None)
                    .with_header(&SendMessageResponseHeader {
                        msg_id: "7F00000100002A9F0000000000001234".into(),
                        queue_id: 3,
                        queue_offset: 123_456,
                        transaction_id: None,
                        batch_uniq_id: None,
                        recall_handle: None,
                    });
                response.serialize_type = st;
                response.ext_fields.insert("MSG_REGION", "DefaultRegion");
                response.ext_fields.insert("TRACE_ON", "true");
                out.clear();
                codec.encode(&response, &mut out).expect("encodes");
                out.len()
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
