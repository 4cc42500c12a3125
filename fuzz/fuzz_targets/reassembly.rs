//! Fuzz line and Server-Sent Events reassembly: arbitrary text, cut into arbitrary parts.
//!
//! The first byte picks the bound (a small one, so that it is hit, or none), the second the
//! part sizes; the rest is the stream. Asserts that nothing panics; that the way the stream is
//! cut changes neither the lines nor the events nor the verdict (the same error at the same
//! offset); that memory held between parts stays within the bound; and that, without a bound,
//! `\n`-ended lines are exactly those of `split(b'\n')` with the `\r` of each `\r\n` stripped.

#![no_main]

use _core::errors::ReassemblyError;
use _core::reassembly::{IncompleteEvent, LineEnding, LineSplitter, SseEvent, SseParser};
use libfuzzer_sys::fuzz_target;

/// What a run produced: every item, then the verdict.
type Outcome<T> = (Vec<T>, Result<(), ReassemblyError>);

/// `data` cut into parts whose sizes cycle through a pattern taken from `seed`.
fn parts(data: &[u8], seed: u8) -> Vec<&[u8]> {
    let sizes = [1 + usize::from(seed & 7), 1 + usize::from(seed >> 3 & 7), 1 + usize::from(seed >> 6)];
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let (head, tail) = rest.split_at(sizes[i % sizes.len()].min(rest.len()));
        out.push(head);
        rest = tail;
        i += 1;
    }
    out
}

fn lines(parts: &[&[u8]], max: usize, ending: LineEnding) -> Outcome<(Vec<u8>, u64)> {
    let mut splitter = LineSplitter::new(max, ending);
    let mut got = Vec::new();
    for part in parts {
        let fed = splitter.feed(part, |line, offset| -> Result<(), ReassemblyError> {
            got.push((line.to_vec(), offset));
            Ok(())
        });
        if let Err(err) = fed {
            return (got, Err(err));
        }
        // Between parts only an unfinished line is held: within the bound (plus a `\r` that
        // may be half of a `\r\n`).
        assert!(splitter.buffered() <= max.saturating_add(1), "held {} > {max}", splitter.buffered());
    }
    let end = splitter.finish(|line, offset| -> Result<(), ReassemblyError> {
        got.push((line.to_vec(), offset));
        Ok(())
    });
    (got, end)
}

fn events(parts: &[&[u8]], max: usize, incomplete: IncompleteEvent) -> Outcome<SseEvent> {
    let mut parser = SseParser::new(max, incomplete);
    let mut got = Vec::new();
    for part in parts {
        let fed = parser.feed(part, |event| -> Result<(), ReassemblyError> {
            got.push(event);
            Ok(())
        });
        if let Err(err) = fed {
            return (got, Err(err));
        }
    }
    let end = parser.finish(|event| -> Result<(), ReassemblyError> {
        got.push(event);
        Ok(())
    });
    (got, end)
}

/// `\n`-ended lines as Python's `bytes.split(b"\n")` sees them, with the `\r` of a `\r\n`
/// stripped; the unterminated last one kept as it is, dropped when empty.
fn reference_lines(data: &[u8]) -> Vec<(Vec<u8>, u64)> {
    let mut out = Vec::new();
    let mut start = 0u64;
    let pieces: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let last = pieces.len() - 1;
    for (i, piece) in pieces.into_iter().enumerate() {
        if i < last {
            out.push((piece.strip_suffix(b"\r").unwrap_or(piece).to_vec(), start));
        } else if !piece.is_empty() {
            out.push((piece.to_vec(), start));
        }
        start += piece.len() as u64 + 1;
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let [bound, seed, data @ ..] = input else {
        return;
    };
    let max = if *bound == 0xFF { usize::MAX } else { usize::from(*bound & 63) };
    let whole = [data];
    let cut = parts(data, *seed);
    for ending in [LineEnding::Lf, LineEnding::Any] {
        let once = lines(&whole, max, ending);
        assert_eq!(lines(&cut, max, ending), once, "{ending:?}");
        if max == usize::MAX && ending == LineEnding::Lf {
            assert_eq!(once, (reference_lines(data), Ok(())));
        }
    }
    for incomplete in [IncompleteEvent::Dispatch, IncompleteEvent::Discard] {
        assert_eq!(events(&cut, max, incomplete), events(&whole, max, incomplete), "{incomplete:?}");
    }
});
