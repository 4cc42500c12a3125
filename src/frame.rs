//! Frame splitting for `application/vnd.amazon.eventstream`, pyo3-free.
//!
//! Layout of a frame (all big-endian):
//! `total_length u32 | headers_length u32 | prelude_crc u32 | headers | payload | message_crc u32`.
//!
//! [`FrameSplitter`] takes reads of any size and hands out complete, checksum-verified frames as
//! borrowed slices. Frames that lie whole inside a read are never copied; only a frame split
//! across reads is buffered, so memory is bounded by one frame plus one read. The caps are
//! checked on the 12-byte prelude, before any of the claimed length is buffered.

use crate::errors::DecodeError;

/// Length of the prelude: total length, headers length, prelude CRC.
pub const PRELUDE_LENGTH: usize = 12;
/// The smallest valid frame: a prelude and a message CRC.
pub const MIN_FRAME_LENGTH: usize = PRELUDE_LENGTH + 4;
/// botocore's `_MAX_HEADERS_LENGTH`.
pub const MAX_HEADERS_LENGTH: u32 = 128 * 1024;
/// botocore's `_MAX_PAYLOAD_LENGTH` (24 MiB since botocore 1.37.27).
pub const MAX_PAYLOAD_LENGTH: u64 = 24 * 1024 * 1024;

/// A complete, checksum-verified frame borrowed from the input or the splitter's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The whole frame, prelude to message CRC.
    pub bytes: &'a [u8],
    /// The raw headers section.
    pub headers: &'a [u8],
    /// The payload.
    pub payload: &'a [u8],
}

/// The validated numbers of a prelude.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prelude {
    /// The whole frame, 16 bytes or more.
    pub total_length: usize,
    /// The headers section, at most `total_length - 16` bytes.
    pub headers_length: usize,
}

/// Frames at least this long have their message CRC verified through [`Detach`], so that the
/// Python binding can release the GIL around it (about 25 µs of CRC work at this size).
pub const DETACH_THRESHOLD: usize = 256 * 1024;

/// Runs the CPU-heavy part of decoding a large frame (its message CRC). The Python binding
/// implements it by releasing the GIL; pure-Rust callers use [`InPlace`].
pub trait Detach {
    /// Run `work` once, to completion, possibly on a thread that does not hold the GIL.
    fn run(&self, work: &mut (dyn FnMut() + Send));
}

/// Runs the work on the calling thread, as is.
#[derive(Debug, Clone, Copy, Default)]
pub struct InPlace;

impl Detach for InPlace {
    fn run(&self, work: &mut (dyn FnMut() + Send)) {
        work();
    }
}

/// [`check_frame`], through `detach` for frames of [`DETACH_THRESHOLD`] bytes or more.
fn verify<'b>(
    bytes: &'b [u8],
    prelude: Prelude,
    detach: &impl Detach,
) -> Result<Frame<'b>, DecodeError> {
    if prelude.total_length < DETACH_THRESHOLD {
        return check_frame(bytes, prelude);
    }
    let mut result = None;
    detach.run(&mut || result = Some(check_frame(bytes, prelude)));
    // A `Detach` that did not run the work is a bug in it; verify here rather than trust it.
    result.unwrap_or_else(|| check_frame(bytes, prelude))
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    // Callers guarantee `b.len() >= at + 4`; this indexing cannot fail on validated ranges.
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Validate a 12-byte prelude: its CRC first (as botocore does), then the length rules and caps.
pub fn parse_prelude(prelude: &[u8; PRELUDE_LENGTH]) -> Result<Prelude, DecodeError> {
    let total_length = be_u32(prelude, 0);
    let headers_length = be_u32(prelude, 4);
    let actual = be_u32(prelude, 8);
    let expected = crc32fast::hash(&prelude[..8]);
    if expected != actual {
        return Err(DecodeError::PreludeChecksum { expected, actual });
    }
    if headers_length > MAX_HEADERS_LENGTH {
        return Err(DecodeError::HeadersTooLarge {
            length: headers_length,
            limit: MAX_HEADERS_LENGTH,
        });
    }
    if (total_length as usize) < MIN_FRAME_LENGTH {
        return Err(DecodeError::FrameTooShort { total_length });
    }
    let body = u64::from(total_length) - MIN_FRAME_LENGTH as u64;
    if u64::from(headers_length) > body || headers_length == 1 {
        return Err(DecodeError::InvalidHeadersLength {
            headers_length,
            total_length,
        });
    }
    let payload_length = body - u64::from(headers_length);
    if payload_length > MAX_PAYLOAD_LENGTH {
        return Err(DecodeError::PayloadTooLarge {
            length: payload_length,
            limit: MAX_PAYLOAD_LENGTH,
        });
    }
    Ok(Prelude {
        total_length: total_length as usize,
        headers_length: headers_length as usize,
    })
}

/// Verify the message CRC of a whole frame whose prelude was validated as `prelude`.
///
/// `bytes` must start with the 12 bytes `prelude` was parsed from by [`parse_prelude`] (whose
/// CRC check is what lets this one start from the prelude CRC), and hold at least
/// `prelude.total_length` bytes; shorter input is reported as a truncated frame, not a panic.
pub fn check_frame(bytes: &[u8], prelude: Prelude) -> Result<Frame<'_>, DecodeError> {
    if bytes.len() < prelude.total_length || prelude.total_length < MIN_FRAME_LENGTH {
        return Err(DecodeError::Truncated {
            buffered: bytes.len(),
            expected: Some(prelude.total_length),
        });
    }
    let crc_at = prelude.total_length - 4;
    let actual = be_u32(bytes, crc_at);
    // The message CRC covers the prelude too; continue from the prelude's own CRC (bytes 8..12,
    // which `parse_prelude` checked against bytes 0..8) instead of hashing those 8 bytes again.
    let mut hasher = crc32fast::Hasher::new_with_initial(be_u32(bytes, 8));
    hasher.update(&bytes[8..crc_at]);
    let expected = hasher.finalize();
    if expected != actual {
        return Err(DecodeError::MessageChecksum { expected, actual });
    }
    let headers_end = PRELUDE_LENGTH + prelude.headers_length;
    Ok(Frame {
        bytes: &bytes[..prelude.total_length],
        headers: &bytes[PRELUDE_LENGTH..headers_end],
        payload: &bytes[headers_end..crc_at],
    })
}

/// Incremental splitter: feed reads, get frames.
///
/// After an error the splitter is poisoned: the stream cannot be resynchronised, so every later
/// call returns the same error.
#[derive(Debug, Default)]
pub struct FrameSplitter {
    /// Bytes of a frame that started in an earlier read (never more than one frame).
    pending: Vec<u8>,
    /// The validated prelude of the pending frame, once its 12 bytes are in.
    pending_prelude: Option<Prelude>,
    failed: Option<DecodeError>,
}

impl FrameSplitter {
    /// A new, empty splitter.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held for a frame that is not complete yet.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// The error that stopped this splitter, if any.
    #[must_use]
    pub fn error(&self) -> Option<&DecodeError> {
        self.failed.as_ref()
    }

    /// Feed one read; call `on_frame` for each frame it completes, in order.
    ///
    /// Frames completed before an error are all handed to `on_frame` before the error is
    /// returned. An error from `on_frame` stops the feed and is returned as is (the splitter
    /// is not poisoned by it; the rest of `data` is dropped).
    pub fn feed<E>(
        &mut self,
        data: &[u8],
        on_frame: impl FnMut(Frame<'_>) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<DecodeError>,
    {
        self.feed_with(data, &InPlace, on_frame)
    }

    /// [`FrameSplitter::feed`], verifying frames of [`DETACH_THRESHOLD`] bytes or more through
    /// `detach` (the Python binding passes one that releases the GIL).
    pub fn feed_with<E>(
        &mut self,
        mut data: &[u8],
        detach: &impl Detach,
        mut on_frame: impl FnMut(Frame<'_>) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<DecodeError>,
    {
        if let Some(err) = &self.failed {
            return Err(err.clone().into());
        }
        // First complete the frame carried over from earlier reads.
        if !self.pending.is_empty() {
            match self.fill_pending(&mut data) {
                Ok(None) => return Ok(()),
                Ok(Some(prelude)) => {
                    let pending = std::mem::take(&mut self.pending);
                    self.pending_prelude = None;
                    match verify(&pending, prelude, detach) {
                        Ok(frame) => on_frame(frame)?,
                        Err(err) => return Err(self.fail(err).into()),
                    }
                    // Keep the allocation for the next split frame, within reason.
                    if pending.capacity() <= 64 * 1024 {
                        self.pending = pending;
                        self.pending.clear();
                    }
                }
                Err(err) => return Err(self.fail(err).into()),
            }
        }
        // Then walk the frames that lie whole inside `data`, without copying them.
        loop {
            if data.len() < PRELUDE_LENGTH {
                self.pending.extend_from_slice(data);
                return Ok(());
            }
            let mut prelude_bytes = [0u8; PRELUDE_LENGTH];
            prelude_bytes.copy_from_slice(&data[..PRELUDE_LENGTH]);
            let prelude = match parse_prelude(&prelude_bytes) {
                Ok(p) => p,
                Err(err) => return Err(self.fail(err).into()),
            };
            if data.len() < prelude.total_length {
                // Nothing is reserved for the declared length: the buffer grows with the bytes
                // that actually arrive.
                self.append(data, prelude.total_length);
                self.pending_prelude = Some(prelude);
                return Ok(());
            }
            let (this, rest) = data.split_at(prelude.total_length);
            match verify(this, prelude, detach) {
                Ok(frame) => on_frame(frame)?,
                Err(err) => return Err(self.fail(err).into()),
            }
            data = rest;
        }
    }

    /// Signal the end of the stream: an error if a partial frame is buffered.
    pub fn finish(&mut self) -> Result<(), DecodeError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let err = DecodeError::Truncated {
            buffered: self.pending.len(),
            expected: self.pending_prelude.map(|p| p.total_length),
        };
        Err(self.fail(err))
    }

    fn fail(&mut self, err: DecodeError) -> DecodeError {
        self.pending = Vec::new();
        self.pending_prelude = None;
        self.failed = Some(err.clone());
        err
    }

    /// Append to `pending`, growing it geometrically (so a frame that arrives in many small
    /// reads is copied a bounded number of times) but never past the declared frame length and
    /// never to more than twice the bytes held: a lying prelude costs no memory.
    fn append(&mut self, bytes: &[u8], total_length: usize) {
        let needed = self.pending.len() + bytes.len();
        if needed > self.pending.capacity() {
            let target = needed
                .max(self.pending.capacity().saturating_mul(2))
                .min(total_length.max(needed));
            self.pending.reserve_exact(target - self.pending.len());
        }
        self.pending.extend_from_slice(bytes);
    }

    /// Move bytes from `data` into `pending` until the pending frame is whole.
    /// Returns its prelude once it is, `None` while more input is needed.
    fn fill_pending(&mut self, data: &mut &[u8]) -> Result<Option<Prelude>, DecodeError> {
        if self.pending_prelude.is_none() {
            let need = PRELUDE_LENGTH - self.pending.len();
            let take = need.min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            *data = &data[take..];
            if self.pending.len() < PRELUDE_LENGTH {
                return Ok(None);
            }
            let mut prelude_bytes = [0u8; PRELUDE_LENGTH];
            prelude_bytes.copy_from_slice(&self.pending[..PRELUDE_LENGTH]);
            let prelude = parse_prelude(&prelude_bytes)?;
            self.pending_prelude = Some(prelude);
        }
        let Some(prelude) = self.pending_prelude else {
            return Ok(None);
        };
        let need = prelude.total_length - self.pending.len();
        let take = need.min(data.len());
        self.append(&data[..take], prelude.total_length);
        *data = &data[take..];
        if self.pending.len() < prelude.total_length {
            return Ok(None);
        }
        Ok(Some(prelude))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    use bytes::Bytes;
    use proptest::prelude::*;

    /// A frame written by aws-smithy-eventstream's encoder (independent of this module).
    fn smithy_frame(headers: &[(&str, HeaderValue)], payload: &[u8]) -> Vec<u8> {
        let headers = headers
            .iter()
            .map(|(n, v)| Header::new((*n).to_owned(), v.clone()))
            .collect();
        let message = Message::new_from_parts(headers, Bytes::copy_from_slice(payload));
        let mut out = Vec::new();
        write_message_to(&message, &mut out).unwrap();
        out
    }

    fn raw_prelude(total: u32, headers: u32) -> [u8; PRELUDE_LENGTH] {
        let mut p = [0u8; PRELUDE_LENGTH];
        p[..4].copy_from_slice(&total.to_be_bytes());
        p[4..8].copy_from_slice(&headers.to_be_bytes());
        let crc = crc32fast::hash(&p[..8]);
        p[8..].copy_from_slice(&crc.to_be_bytes());
        p
    }

    fn sample_stream() -> (Vec<u8>, Vec<Vec<u8>>) {
        let payloads: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"first".to_vec(),
            vec![7u8; 300],
            b"x".to_vec(),
        ];
        let mut stream = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            let n = i32::try_from(i).unwrap();
            stream.extend(smithy_frame(
                &[
                    (":event-type", HeaderValue::String("PayloadPart".into())),
                    ("n", HeaderValue::Int32(n)),
                ],
                p,
            ));
        }
        (stream, payloads)
    }

    /// Split `data` into `chunk`-byte reads; collect every frame's payload or the first error.
    fn split_all(data: &[u8], chunk: usize) -> Result<Vec<Vec<u8>>, DecodeError> {
        let mut splitter = FrameSplitter::new();
        let mut out = Vec::new();
        for piece in data.chunks(chunk.max(1)) {
            splitter.feed(piece, |f| -> Result<(), DecodeError> {
                out.push(f.payload.to_vec());
                Ok(())
            })?;
        }
        splitter.finish()?;
        Ok(out)
    }

    #[test]
    fn chunk_sizes_1_to_11_give_the_same_frames() {
        let (stream, payloads) = sample_stream();
        for chunk in 1..=11 {
            assert_eq!(
                split_all(&stream, chunk).unwrap(),
                payloads,
                "chunk {chunk}"
            );
        }
        assert_eq!(split_all(&stream, stream.len()).unwrap(), payloads);
    }

    #[test]
    fn every_two_way_split_gives_the_same_frames() {
        let (stream, payloads) = sample_stream();
        for cut in 0..=stream.len() {
            let mut splitter = FrameSplitter::new();
            let mut out = Vec::new();
            for piece in [&stream[..cut], &stream[cut..]] {
                splitter
                    .feed(piece, |f| -> Result<(), DecodeError> {
                        out.push(f.payload.to_vec());
                        Ok(())
                    })
                    .unwrap();
            }
            splitter.finish().unwrap();
            assert_eq!(out, payloads, "cut {cut}");
        }
    }

    #[test]
    fn frames_whole_in_a_read_are_borrowed_from_it() {
        let (stream, _) = sample_stream();
        let range = stream.as_ptr_range();
        let mut splitter = FrameSplitter::new();
        splitter
            .feed(&stream, |f| -> Result<(), DecodeError> {
                assert!(range.contains(&f.bytes.as_ptr()));
                Ok(())
            })
            .unwrap();
        assert_eq!(splitter.buffered(), 0);
    }

    #[test]
    fn frame_fields_are_sliced_exactly() {
        let data = smithy_frame(&[("a", HeaderValue::Bool(true))], b"payload");
        let prelude = parse_prelude(&data[..12].try_into().unwrap()).unwrap();
        let frame = check_frame(&data, prelude).unwrap();
        assert_eq!(frame.bytes, &data[..]);
        assert_eq!(frame.headers, b"\x01a\x00");
        assert_eq!(frame.payload, b"payload");
    }

    #[test]
    fn prelude_checks() {
        assert_eq!(
            parse_prelude(&raw_prelude(16, 0)).unwrap(),
            Prelude {
                total_length: 16,
                headers_length: 0
            }
        );
        for total in [0, 5, 12, 15] {
            assert_eq!(
                parse_prelude(&raw_prelude(total, 0)),
                Err(DecodeError::FrameTooShort {
                    total_length: total
                })
            );
        }
        assert!(matches!(
            parse_prelude(&raw_prelude(20, 5)),
            Err(DecodeError::InvalidHeadersLength { .. })
        ));
        assert!(matches!(
            parse_prelude(&raw_prelude(20, 1)),
            Err(DecodeError::InvalidHeadersLength { .. })
        ));
        assert!(matches!(
            parse_prelude(&raw_prelude(u32::MAX, 0)),
            Err(DecodeError::PayloadTooLarge { .. })
        ));
        assert!(matches!(
            parse_prelude(&raw_prelude(u32::MAX, MAX_HEADERS_LENGTH + 1)),
            Err(DecodeError::HeadersTooLarge { .. })
        ));
        // At the caps exactly: accepted.
        let at_caps = 16 + MAX_HEADERS_LENGTH + u32::try_from(MAX_PAYLOAD_LENGTH).unwrap();
        assert!(parse_prelude(&raw_prelude(at_caps, MAX_HEADERS_LENGTH)).is_ok());
        assert!(matches!(
            parse_prelude(&raw_prelude(at_caps + 1, MAX_HEADERS_LENGTH)),
            Err(DecodeError::PayloadTooLarge { .. })
        ));
        let mut bad = raw_prelude(16, 0);
        bad[11] ^= 1;
        assert!(matches!(
            parse_prelude(&bad),
            Err(DecodeError::PreludeChecksum { .. })
        ));
    }

    #[test]
    fn hostile_prelude_is_refused_without_buffering() {
        let mut splitter = FrameSplitter::new();
        let err = splitter
            .feed(&raw_prelude(u32::MAX, 0), |_| -> Result<(), DecodeError> {
                unreachable!()
            })
            .unwrap_err();
        assert!(matches!(err, DecodeError::PayloadTooLarge { .. }));
        assert_eq!(splitter.buffered(), 0);
        assert_eq!(splitter.pending.capacity(), 0);
        // Poisoned: the same error again, and at finish.
        let again = splitter
            .feed(&[0u8; 100], |_| -> Result<(), DecodeError> {
                unreachable!()
            })
            .unwrap_err();
        assert_eq!(again, err);
        assert_eq!(splitter.finish(), Err(err.clone()));
        assert_eq!(splitter.error(), Some(&err));
    }

    #[test]
    fn declared_length_is_not_reserved_before_it_arrives() {
        let total = 16 + u32::try_from(MAX_PAYLOAD_LENGTH).unwrap();
        let mut splitter = FrameSplitter::new();
        let mut first = raw_prelude(total, 0).to_vec();
        first.extend_from_slice(&[0u8; 20]);
        splitter
            .feed(&first, |_| -> Result<(), DecodeError> { unreachable!() })
            .unwrap();
        assert_eq!(splitter.buffered(), 32);
        assert!(splitter.pending.capacity() < 1024);
        // Growth stays within twice what was received.
        for _ in 0..100 {
            splitter
                .feed(&[0u8; 1000], |_| -> Result<(), DecodeError> {
                    unreachable!()
                })
                .unwrap();
            assert!(splitter.pending.capacity() <= 2 * splitter.buffered());
        }
        assert!(matches!(
            splitter.finish(),
            Err(DecodeError::Truncated {
                buffered: 100_032,
                expected: Some(_)
            })
        ));
    }

    #[test]
    fn truncation_at_every_byte() {
        let (stream, payloads) = sample_stream();
        let mut ends = vec![0usize];
        let mut at = 0;
        while at < stream.len() {
            let total = be_u32(&stream, at) as usize;
            at += total;
            ends.push(at);
        }
        for cut in 0..stream.len() {
            let whole = ends.iter().filter(|&&e| e > 0 && e <= cut).count();
            let mut splitter = FrameSplitter::new();
            let mut got = Vec::new();
            splitter
                .feed(&stream[..cut], |f| -> Result<(), DecodeError> {
                    got.push(f.payload.to_vec());
                    Ok(())
                })
                .unwrap();
            assert_eq!(got, payloads[..whole]);
            if ends.contains(&cut) {
                splitter.finish().unwrap();
            } else {
                assert!(matches!(
                    splitter.finish(),
                    Err(DecodeError::Truncated { .. })
                ));
            }
        }
    }

    #[test]
    fn every_single_bit_flip_is_a_checksum_error() {
        let frame = smithy_frame(
            &[
                (":event-type", HeaderValue::String("PayloadPart".into())),
                (
                    "t",
                    HeaderValue::Timestamp(aws_smithy_types::DateTime::from_millis(5)),
                ),
            ],
            b"0123456789",
        );
        for bit in 0..frame.len() * 8 {
            let mut bad = frame.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let err = split_all(&bad, bad.len()).unwrap_err();
            assert!(
                matches!(
                    err,
                    DecodeError::PreludeChecksum { .. } | DecodeError::MessageChecksum { .. }
                ),
                "bit {bit}: {err:?}"
            );
        }
    }

    #[test]
    fn frames_before_an_error_are_delivered_first() {
        let good = smithy_frame(&[], b"good");
        let mut bad = smithy_frame(&[], b"bad!");
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let mut data = good.clone();
        data.extend(&bad);
        data.extend(&good);
        let mut splitter = FrameSplitter::new();
        let mut got = Vec::new();
        let err = splitter
            .feed(&data, |f| -> Result<(), DecodeError> {
                got.push(f.payload.to_vec());
                Ok(())
            })
            .unwrap_err();
        assert_eq!(got, vec![b"good".to_vec()]);
        assert!(matches!(err, DecodeError::MessageChecksum { .. }));
    }

    #[test]
    fn a_callback_error_stops_the_feed_without_poisoning() {
        use crate::errors::{Error, ReassemblyError};
        let (stream, _) = sample_stream();
        let mut splitter = FrameSplitter::new();
        let mut seen = 0;
        let err = splitter
            .feed(&stream, |_| {
                seen += 1;
                Err(Error::from(ReassemblyError::InvalidUtf8 { offset: 0 }))
            })
            .unwrap_err();
        assert_eq!(seen, 1);
        assert!(matches!(err, Error::Reassembly(_)));
        assert!(splitter.error().is_none());
    }

    /// Counts how often the heavy work was handed over.
    struct Counting(std::sync::atomic::AtomicUsize);

    impl Detach for Counting {
        fn run(&self, work: &mut (dyn FnMut() + Send)) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            work();
        }
    }

    #[test]
    fn large_frames_are_verified_through_detach() {
        let big = smithy_frame(&[], &vec![1u8; DETACH_THRESHOLD]);
        let small = smithy_frame(&[], b"small");
        let counting = Counting(std::sync::atomic::AtomicUsize::new(0));
        let mut data = small.clone();
        data.extend(&big);
        data.extend(&small);
        let mut splitter = FrameSplitter::new();
        let mut sizes = Vec::new();
        // Whole in one read, then split across reads (the buffered path).
        splitter
            .feed_with(&data, &counting, |f| -> Result<(), DecodeError> {
                sizes.push(f.payload.len());
                Ok(())
            })
            .unwrap();
        for piece in data.chunks(65536) {
            splitter
                .feed_with(piece, &counting, |f| -> Result<(), DecodeError> {
                    sizes.push(f.payload.len());
                    Ok(())
                })
                .unwrap();
        }
        splitter.finish().unwrap();
        assert_eq!(sizes, [5, DETACH_THRESHOLD, 5, 5, DETACH_THRESHOLD, 5]);
        assert_eq!(counting.0.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    fn arb_header_value() -> impl Strategy<Value = HeaderValue> {
        prop_oneof![
            any::<bool>().prop_map(HeaderValue::Bool),
            any::<i8>().prop_map(HeaderValue::Byte),
            any::<i16>().prop_map(HeaderValue::Int16),
            any::<i32>().prop_map(HeaderValue::Int32),
            any::<i64>().prop_map(HeaderValue::Int64),
            proptest::collection::vec(any::<u8>(), 0..40)
                .prop_map(|b| HeaderValue::ByteArray(Bytes::from(b))),
            ".{0,20}".prop_map(|s: String| HeaderValue::String(s.into())),
            any::<i64>()
                .prop_map(|t| HeaderValue::Timestamp(aws_smithy_types::DateTime::from_millis(t))),
            any::<u128>().prop_map(HeaderValue::Uuid),
        ]
    }

    prop_compose! {
        fn arb_frame()(
            headers in proptest::collection::btree_map("[a-z:-]{0,12}", arb_header_value(), 0..6),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) -> (Vec<u8>, Vec<u8>) {
            let headers: Vec<(String, HeaderValue)> = headers.into_iter().collect();
            let refs: Vec<(&str, HeaderValue)> =
                headers.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
            (smithy_frame(&refs, &payload), payload)
        }
    }

    proptest! {
        #[test]
        fn random_streams_split_anywhere(
            frames in proptest::collection::vec(arb_frame(), 1..8),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
        ) {
            let stream: Vec<u8> = frames.iter().flat_map(|(f, _)| f.clone()).collect();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.push(0);
            cuts.push(stream.len());
            cuts.sort_unstable();
            let mut splitter = FrameSplitter::new();
            let mut got = Vec::new();
            for w in cuts.windows(2) {
                splitter.feed(&stream[w[0]..w[1]], |f| -> Result<(), DecodeError> {
                    got.push((f.bytes.to_vec(), f.payload.to_vec()));
                    Ok(())
                }).unwrap();
            }
            splitter.finish().unwrap();
            let want: Vec<(Vec<u8>, Vec<u8>)> = frames;
            prop_assert_eq!(got, want);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            chunk in 1usize..20,
        ) {
            let _ = split_all(&data, chunk);
        }

        #[test]
        fn arbitrary_bytes_after_a_valid_prelude_never_panic(
            total in 0u32..400,
            headers in 0u32..100,
            body in proptest::collection::vec(any::<u8>(), 0..400),
            chunk in 1usize..20,
        ) {
            let mut data = raw_prelude(total, headers).to_vec();
            data.extend(body);
            let _ = split_all(&data, chunk);
        }
    }
}
