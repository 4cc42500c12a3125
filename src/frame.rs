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
    pub total_length: usize,
    pub headers_length: usize,
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
        });
    }
    Ok(Prelude {
        total_length: total_length as usize,
        headers_length: headers_length as usize,
    })
}

/// Verify the message CRC of a whole frame whose prelude was validated as `prelude`.
pub fn check_frame(bytes: &[u8], prelude: Prelude) -> Result<Frame<'_>, DecodeError> {
    let crc_at = prelude.total_length - 4;
    let actual = be_u32(bytes, crc_at);
    let expected = crc32fast::hash(&bytes[..crc_at]);
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
        mut data: &[u8],
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
                    match check_frame(&pending, prelude) {
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
                self.pending.reserve_exact(prelude.total_length);
                self.pending.extend_from_slice(data);
                self.pending_prelude = Some(prelude);
                return Ok(());
            }
            let (this, rest) = data.split_at(prelude.total_length);
            match check_frame(this, prelude) {
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
            self.pending
                .reserve_exact(prelude.total_length - self.pending.len());
            self.pending_prelude = Some(prelude);
        }
        let Some(prelude) = self.pending_prelude else {
            return Ok(None);
        };
        let need = prelude.total_length - self.pending.len();
        let take = need.min(data.len());
        self.pending.extend_from_slice(&data[..take]);
        *data = &data[take..];
        if self.pending.len() < prelude.total_length {
            return Ok(None);
        }
        Ok(Some(prelude))
    }
}
