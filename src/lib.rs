//! sagestream's Rust core: AWS event stream (`application/vnd.amazon.eventstream`) framing with
//! CRC32 validation and size caps, the SageMaker Runtime event mapping, reassembly of payload
//! parts into lines, Server-Sent Events and JSON lines, and (with the default `python` feature)
//! the `sagestream._core` extension module.
//!
//! Decoding runs on sagestream's own code, pyo3-free and tested without libpython
//! (`cargo test --no-default-features`): [`frame`] splits reads into checksum-verified frames
//! (borrowed from the read when whole inside it, caps checked on the prelude), [`headers`]
//! reads their headers in place, [`sagemaker`] maps them to payloads and error frames.
//! `aws-smithy-eventstream` encodes (`sagestream.eventstream.encode`, the emulator's frames) and
//! is the oracle of the decode fuzz target; its `MessageFrameDecoder` is not used to decode
//! because it copies every frame and allocates its headers (see `benches/decode.rs` and the
//! README's codec section for the measured difference).
//!
//! Every decoder hands out what it completed before an error, then the error, on every later
//! call too: [`sticky::StickyQueue`], with the errors of [`errors`].

pub mod duplex;
pub mod errors;
pub mod fair;
pub mod frame;
pub mod headers;
pub mod pump;
pub mod reassembly;
pub mod request_path;
pub mod runtime;
pub mod sagemaker;
pub mod sign;
pub mod sticky;
pub mod stream;
pub mod transport;
pub mod wakeup;

#[cfg(feature = "python")]
mod py_args;
#[cfg(feature = "python")]
mod py_body;
#[cfg(feature = "python")]
mod py_duplex;
#[cfg(feature = "python")]
mod py_errors;
#[cfg(feature = "python")]
mod py_hub;
#[cfg(feature = "python")]
mod py_json;
#[cfg(feature = "python")]
mod py_message;
#[cfg(feature = "python")]
mod py_parts;
#[cfg(feature = "python")]
mod py_payload;
#[cfg(feature = "python")]
mod py_queue;
#[cfg(feature = "python")]
mod py_reassembly;
#[cfg(feature = "python")]
mod py_response;
#[cfg(feature = "python")]
mod py_sign;
#[cfg(feature = "python")]
mod py_sse;
#[cfg(feature = "python")]
mod py_transport;
#[cfg(feature = "python")]
mod py_wait;
#[cfg(feature = "python")]
mod py_watch;

#[cfg(feature = "python")]
#[pyo3::pymodule(gil_used = false)]
mod _core {
    use pyo3::prelude::*;

    #[pymodule_export]
    use crate::py_body::PyBodyStream;
    #[pymodule_export]
    use crate::py_duplex::{PyDone, PyDuplex};
    #[pymodule_export]
    use crate::py_hub::PyHub;
    #[pymodule_export]
    use crate::py_message::{decode, encode, PyDecoder, PyMessage};
    #[pymodule_export]
    use crate::py_parts::{PyAsyncParts, PyParts};
    #[pymodule_export]
    use crate::py_payload::{PyPayloadDecoder, PyPayloadIterator};
    #[pymodule_export]
    use crate::py_reassembly::{
        PyJsonLinesDecoder, PyLineDecoder, PyReassemblyIterator, PySseDecoder,
    };
    #[pymodule_export]
    use crate::py_response::{PyPending, PyResponse};
    #[pymodule_export]
    use crate::py_sign::sign_preview;
    #[pymodule_export]
    use crate::py_sse::PyServerSentEvent;
    #[pymodule_export]
    use crate::py_transport::PyTransport;
    #[pymodule_export]
    use crate::stream::Metrics;

    /// A random (version 4) UUID as text: botocore's `amz-sdk-invocation-id`, without a
    /// system call per request.
    #[pyfunction]
    fn invocation_id() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add(
            "__version__",
            env!("CARGO_PKG_VERSION")
                .replace("-alpha", "a")
                .replace("-beta", "b"),
        )?;
        m.add("MAX_HEADERS_LENGTH", crate::frame::MAX_HEADERS_LENGTH)?;
        m.add("MAX_PAYLOAD_LENGTH", crate::frame::MAX_PAYLOAD_LENGTH)?;
        // Stream metrics are compared with Python's own `time.monotonic()` readings.
        let py = m.py();
        let now: f64 = py.import("time")?.call_method0("monotonic")?.extract()?;
        crate::runtime::anchor_monotonic(now);
        Ok(())
    }
}
