//! Criterion benchmarks of the pure-Rust decoding path (no Python):
//! `cargo bench --no-default-features --bench decode`.
//!
//! Splits a stream of SageMaker `PayloadPart` frames and classifies every frame, as
//! `PayloadDecoder` does before it creates the payload `bytes`, two ways side by side on the
//! same reads: sagestream's `frame.rs` + `sagemaker.rs`, and aws-smithy-eventstream's
//! `MessageFrameDecoder` over a `BytesMut` of the reads (the way the crate is driven by its own
//! users), looking up `:event-type` in each decoded `Message`. Also the bare CRC32 over the same
//! bytes, the floor of any decoder that checks them.

use std::hint::black_box;

use _core::errors::DecodeError;
use _core::frame::FrameSplitter;
use _core::sagemaker::{classify, Event};
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::HeaderValue;
use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn string_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(name.as_bytes());
    out.push(7);
    out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(value.as_bytes());
}

/// One `PayloadPart` frame as SageMaker sends it.
fn payload_part(payload: &[u8]) -> Vec<u8> {
    let mut headers = Vec::new();
    string_header(&mut headers, ":event-type", "PayloadPart");
    string_header(&mut headers, ":content-type", "application/octet-stream");
    string_header(&mut headers, ":message-type", "event");
    let total = u32::try_from(16 + headers.len() + payload.len()).unwrap_or(u32::MAX);
    let headers_len = u32::try_from(headers.len()).unwrap_or(u32::MAX);
    let mut frame = Vec::with_capacity(total as usize);
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(&headers_len.to_be_bytes());
    let prelude_crc = crc32fast::hash(&frame);
    frame.extend_from_slice(&prelude_crc.to_be_bytes());
    frame.extend_from_slice(&headers);
    frame.extend_from_slice(payload);
    let crc = crc32fast::hash(&frame);
    frame.extend_from_slice(&crc.to_be_bytes());
    frame
}

/// Decode `data` in `read`-byte reads; returns the payload bytes seen.
fn decode(data: &[u8], read: usize) -> usize {
    let mut splitter = FrameSplitter::new();
    let mut bytes = 0;
    for chunk in data.chunks(read) {
        let fed = splitter.feed(chunk, |frame| -> Result<(), DecodeError> {
            if let Event::Payload(p) = classify(frame)? {
                bytes += black_box(p).len();
            }
            Ok(())
        });
        if fed.is_err() {
            return 0;
        }
    }
    if splitter.finish().is_err() {
        return 0;
    }
    bytes
}

/// The same work on aws-smithy-eventstream's decoder: the reads appended to one buffer, every
/// complete frame decoded into a `Message` (headers parsed into owned values, payload copied),
/// the payload of each `PayloadPart` counted.
fn decode_smithy(data: &[u8], read: usize) -> usize {
    let mut decoder = MessageFrameDecoder::new();
    let mut buffer = BytesMut::new();
    let mut bytes = 0;
    for chunk in data.chunks(read) {
        buffer.extend_from_slice(chunk);
        loop {
            match decoder.decode_frame(&mut buffer) {
                Ok(DecodedFrame::Complete(message)) => {
                    let is_part = message.headers().iter().any(|h| {
                        h.name().as_str() == ":event-type"
                            && matches!(h.value(), HeaderValue::String(s) if s.as_str() == "PayloadPart")
                    });
                    if is_part {
                        bytes += black_box(message.payload()).len();
                    }
                }
                Ok(DecodedFrame::Incomplete) => break,
                Err(_) => return 0,
            }
        }
    }
    if buffer.is_empty() {
        bytes
    } else {
        0
    }
}

fn bench(c: &mut Criterion) {
    let small: Vec<u8> = (0..20_000u32)
        .flat_map(|i| payload_part(&[u8::try_from(i % 251).unwrap_or(0); 100]))
        .collect();
    let large: Vec<u8> = (0..16u8)
        .flat_map(|i| payload_part(&vec![i; 1024 * 1024]))
        .collect();
    let mut group = c.benchmark_group("decode");
    for (name, data, frames) in [("100B", &small, 20_000u64), ("1MiB", &large, 16)] {
        group.throughput(Throughput::Elements(frames));
        for (reads, size) in [("64KiB-reads", 64 * 1024), ("one-read", data.len())] {
            assert_eq!(decode(data, size), decode_smithy(data, size));
            group.bench_with_input(
                BenchmarkId::new(format!("{name}/{reads}"), "frame.rs"),
                data,
                |b, data| b.iter(|| decode(data, size)),
            );
            group.bench_with_input(
                BenchmarkId::new(format!("{name}/{reads}"), "smithy"),
                data,
                |b, data| b.iter(|| decode_smithy(data, size)),
            );
        }
        group.bench_with_input(BenchmarkId::new(name, "crc32-floor"), data, |b, data| {
            b.iter(|| crc32fast::hash(black_box(data)));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
