//! Fuzz the frame decoder: arbitrary bytes, split into arbitrary reads.
//!
//! Asserts that nothing panics; that splitting the input into reads changes neither the frames
//! nor the verdict; and that every frame the decoder accepts is accepted by
//! aws-smithy-eventstream's `read_message_from` with the same headers and payload, and
//! re-encodes byte for byte with its `write_message_to`.

#![no_main]

use aws_smithy_eventstream::frame::{read_message_from, write_message_to};
use aws_smithy_types::event_stream::HeaderValue;
use libfuzzer_sys::fuzz_target;
use _core::errors::DecodeError;
use _core::frame::{Frame, FrameSplitter};
use _core::headers::{parse_headers, HeaderValueRef};
use _core::sagemaker::classify;

/// Every frame of `data` read in `chunk`-byte pieces, and the verdict at the end.
fn run(data: &[u8], chunk: usize) -> (Vec<Vec<u8>>, Result<(), DecodeError>) {
    let mut splitter = FrameSplitter::new();
    let mut frames = Vec::new();
    for piece in data.chunks(chunk) {
        let fed = splitter.feed(piece, |frame| -> Result<(), DecodeError> {
            check_frame(frame);
            frames.push(frame.bytes.to_vec());
            Ok(())
        });
        if let Err(err) = fed {
            return (frames, Err(err));
        }
    }
    let end = splitter.finish();
    (frames, end)
}

fn same_value(ours: HeaderValueRef<'_>, theirs: &HeaderValue) -> bool {
    match (ours, theirs) {
        (HeaderValueRef::Bool(a), HeaderValue::Bool(b)) => a == *b,
        (HeaderValueRef::Byte(a), HeaderValue::Byte(b)) => a == *b,
        (HeaderValueRef::Int16(a), HeaderValue::Int16(b)) => a == *b,
        (HeaderValueRef::Int32(a), HeaderValue::Int32(b)) => a == *b,
        (HeaderValueRef::Int64(a), HeaderValue::Int64(b)) => a == *b,
        (HeaderValueRef::Bytes(a), HeaderValue::ByteArray(b)) => a == b.as_ref(),
        (HeaderValueRef::String(a), HeaderValue::String(b)) => a == b.as_str(),
        (HeaderValueRef::Timestamp(a), HeaderValue::Timestamp(b)) => b.to_millis().is_ok_and(|ms| ms == a),
        (HeaderValueRef::Uuid(a), HeaderValue::Uuid(b)) => u128::from_be_bytes(a) == *b,
        _ => false,
    }
}

fn check_frame(frame: Frame<'_>) {
    let _ = classify(frame);
    let Ok(headers) = parse_headers(frame.headers) else {
        return;
    };
    let message = read_message_from(frame.bytes)
        .unwrap_or_else(|e| panic!("aws-smithy-eventstream rejects an accepted frame: {e}"));
    assert_eq!(message.payload().as_ref(), frame.payload);
    assert_eq!(message.headers().len(), headers.len());
    for ((name, value), header) in headers.iter().zip(message.headers()) {
        assert_eq!(*name, header.name().as_str());
        assert!(same_value(*value, header.value()), "{name}: {value:?} vs {:?}", header.value());
    }
    let mut encoded = Vec::new();
    write_message_to(&message, &mut encoded).expect("re-encoding an accepted frame");
    assert_eq!(encoded, frame.bytes, "re-encoding is not byte-identical");
}

fuzz_target!(|input: &[u8]| {
    let Some((&chunk, data)) = input.split_first() else {
        return;
    };
    let whole = run(data, data.len().max(1));
    let split = run(data, usize::from(chunk).max(1));
    assert_eq!(whole, split, "splitting the input changed the result");
});
