//! The reader of a response stream: the task that reads the HTTP body, splits it into event
//! frames, maps them to payload parts (SageMaker's events) and queues them on the stream's
//! [`PartStream`], a batch per read.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::errors::DecodeError;
use crate::frame::FrameSplitter;
use crate::sagemaker::{classify, part_meta, Event, PartMeta};
use crate::stream::{Failure, PartStream};
use crate::transport::{Deadline, ResponseBody, TransportError};

/// Payloads below this are copied out of the read they came in: holding a slice of it would
/// keep the whole read buffer alive (up to 256 KiB, see `transport::socket_body`).
const SHARE_FROM: usize = 16 * 1024;

/// The payloads of one read, as parts: a large one that lies inside the read is shared without
/// copying; the others are copied together into one allocation (one `malloc` a read, not one a
/// part), freed once the last of those parts is taken.
struct Payloads<'a> {
    chunk: &'a Bytes,
    /// The copied payloads so far, and where each goes in `parts`: (index, start, end).
    copied: BytesMut,
    places: Vec<(usize, usize, usize)>,
}

impl<'a> Payloads<'a> {
    fn new(chunk: &'a Bytes) -> Self {
        Self {
            chunk,
            copied: BytesMut::new(),
            places: Vec::new(),
        }
    }

    fn push(&mut self, parts: &mut Vec<(Bytes, PartMeta)>, payload: &[u8], meta: PartMeta) {
        let start = self.chunk.as_ptr() as usize;
        let at = payload.as_ptr() as usize;
        let inside = at >= start && at + payload.len() <= start + self.chunk.len();
        if payload.len() >= SHARE_FROM && inside {
            parts.push((self.chunk.slice_ref(payload), meta));
            return;
        }
        if self.copied.capacity() == 0 {
            // Room for what the rest of the read can hold: one allocation a read. (Among large
            // shared parts that is more than the small ones need; what it holds is bounded by
            // the stream's queue, HIGH_WATER, and is freed with the last of them.)
            let rest = if inside {
                start + self.chunk.len() - at
            } else {
                self.chunk.len()
            };
            self.copied.reserve(payload.len().max(rest));
        }
        let from = self.copied.len();
        self.copied.extend_from_slice(payload);
        self.places.push((parts.len(), from, self.copied.len()));
        parts.push((Bytes::new(), meta));
    }

    /// Fill the copied parts in (whatever the decoding's outcome: the parts before a failure
    /// are handed out too).
    fn finish(self, parts: &mut [(Bytes, PartMeta)]) {
        if self.places.is_empty() {
            return;
        }
        let whole = self.copied.freeze();
        for (index, from, to) in self.places {
            if let Some(part) = parts.get_mut(index) {
                part.0 = whole.slice(from..to);
            }
        }
    }
}

/// What a stream's decoder keeps between reads: the frame splitter, and the headers of the last
/// `PayloadPart` frame with what they say (every part of a stream carries the same ones, so a
/// frame whose header bytes equal them is a part without reading them again).
#[derive(Default)]
struct Decoder {
    splitter: FrameSplitter,
    payload_headers: Vec<u8>,
    payload_meta: PartMeta,
    /// Whether parts carry their `DataType` / `CompletionState` (bidirectional streams).
    with_meta: bool,
}

/// Decode one read into `parts`; a frame that ends the stream is returned as its failure.
fn decode(
    decoder: &mut Decoder,
    chunk: &Bytes,
    parts: &mut Vec<(Bytes, PartMeta)>,
) -> Result<(), StreamStop> {
    let Decoder {
        splitter,
        payload_headers,
        payload_meta,
        with_meta,
    } = decoder;
    let mut payloads = Payloads::new(chunk);
    let fed = splitter.feed(chunk, |frame| {
        if !payload_headers.is_empty() && frame.headers == payload_headers.as_slice() {
            payloads.push(parts, frame.payload, payload_meta.clone());
            return Ok(());
        }
        let event = classify(frame)?;
        if let Event::Payload(payload) = event {
            payload_headers.clear();
            payload_headers.extend_from_slice(frame.headers);
            *payload_meta = if *with_meta {
                part_meta(frame.headers)?
            } else {
                PartMeta::default()
            };
            payloads.push(parts, payload, payload_meta.clone());
            return Ok(());
        }
        match event.service_error() {
            Some(err) => Err(StreamStop::Failure(Failure::Service(err))),
            None => Ok(()),
        }
    });
    payloads.finish(parts);
    fed
}

enum StreamStop {
    Decode(DecodeError),
    Failure(Failure),
}

impl From<DecodeError> for StreamStop {
    fn from(err: DecodeError) -> Self {
        Self::Decode(err)
    }
}

/// At most this many payload bytes are decoded from buffered reads before they are handed
/// over (each hand-over takes the lock and wakes the consumer once).
const BATCH: usize = 64 * 1024;

/// What one body read means for the stream.
fn consume(
    stream: &PartStream,
    decoder: &mut Decoder,
    parts: &mut Vec<(Bytes, PartMeta)>,
    chunk: Result<Option<Bytes>, TransportError>,
) -> Option<Result<(), Failure>> {
    match chunk {
        Ok(Some(chunk)) => match decode(decoder, &chunk, parts) {
            Ok(()) => None,
            Err(StreamStop::Decode(err)) => Some(Err(stream.decode_failure(err))),
            Err(StreamStop::Failure(failure)) => Some(Err(failure)),
        },
        Ok(None) => Some(
            decoder
                .splitter
                .finish()
                .map_err(|e| stream.decode_failure(e)),
        ),
        Err(err) => {
            // Cut inside a frame: the stream is truncated, whatever cut it.
            let splitter = &mut decoder.splitter;
            if splitter.buffered() > 0 && matches!(err, TransportError::ConnectionLost { .. }) {
                if let Err(truncated) = splitter.finish() {
                    return Some(Err(stream.decode_failure(truncated)));
                }
            }
            Some(Err(Failure::Transport(err)))
        }
    }
}

/// Read `body` to its end into `stream` (the reader task). Each wait for the socket is followed
/// by the frames hyper already holds (one HTTP chunk per event frame, many per read), handed over
/// together.
pub async fn pump(stream: Arc<PartStream>, mut body: ResponseBody, deadline: Option<Deadline>) {
    let mut decoder = Decoder {
        with_meta: stream.with_meta,
        ..Decoder::default()
    };
    let mut parts = Vec::new();
    let result = 'reading: loop {
        let mut chunk = Some(body.next_chunk(deadline).await);
        let mut end = None;
        let mut batched = 0;
        while let Some(read) = chunk.take() {
            batched += read
                .as_ref()
                .map_or(0, |c| c.as_ref().map_or(0, Bytes::len));
            end = consume(&stream, &mut decoder, &mut parts, read);
            if end.is_some() || batched >= BATCH {
                break;
            }
            chunk = body.ready_chunk().await;
        }
        if !stream.push(&mut parts) {
            return; // closed by the consumer
        }
        if let Some(end) = end {
            break 'reading end;
        }
        let room = async {
            stream.room().await;
            Ok(())
        };
        if let Err(err) = Deadline::bound(deadline, room).await {
            break Err(Failure::Transport(err));
        }
    };
    stream.finish(result);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_payloads_are_shared_and_the_others_copied_together() {
        let chunk = Bytes::from(vec![b'x'; 2 * SHARE_FROM]);
        let mut parts = Vec::new();
        let mut payloads = Payloads::new(&chunk);
        payloads.push(&mut parts, &chunk[..5], PartMeta::default());
        payloads.push(&mut parts, &chunk[SHARE_FROM..], PartMeta::default());
        payloads.push(&mut parts, b"other", PartMeta::default());
        payloads.push(&mut parts, &chunk[5..8], PartMeta::default());
        payloads.finish(&mut parts);
        let got: Vec<&[u8]> = parts.iter().map(|(p, _)| p.as_ref()).collect();
        assert_eq!(got[0], b"xxxxx");
        assert_eq!(got[1].len(), SHARE_FROM);
        assert_eq!(got[2], b"other");
        assert_eq!(got[3], b"xxx");
        // The large one is the read's own bytes; the small ones one copy, side by side.
        assert_eq!(parts[1].0.as_ptr(), chunk[SHARE_FROM..].as_ptr());
        assert_ne!(parts[0].0.as_ptr(), chunk.as_ptr());
        assert_eq!(parts[2].0.as_ptr(), parts[0].0.as_ptr().wrapping_add(5));
        assert_eq!(parts[3].0.as_ptr(), parts[0].0.as_ptr().wrapping_add(10));
    }
}
