//! The SageMaker Runtime event mapping for InvokeEndpointWithResponseStream, pyo3-free.
//!
//! - `:message-type: event`, `:event-type: PayloadPart` → the payload bytes.
//! - `:message-type: exception`, `:exception-type: ModelStreamError | InternalStreamFailure`
//!   → a modeled error with a JSON payload `{"Message": ..., "ErrorCode": ...}`.
//! - `:message-type: error` → `:error-code` / `:error-message`.
//! - `initial-response` and unknown event types are skipped, as the AWS SDKs do.

use crate::errors::DecodeError;
use crate::frame::Frame;
use crate::headers::{parse_headers, HeaderValueRef};

/// What one frame means to a SageMaker stream consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// A `PayloadPart`: the bytes to hand to the user.
    Payload(&'a [u8]),
    /// A modeled exception (`:message-type: exception`).
    Exception {
        exception_type: &'a str,
        payload: &'a [u8],
    },
    /// An unmodeled error (`:message-type: error`).
    Error { code: &'a str, message: &'a str },
    /// Anything else (`initial-response`, event types this version does not know).
    Skip { event_type: Option<&'a str> },
}

/// Classify a verified frame. Every header is parsed (so a malformed or duplicate header is
/// an error, as in botocore), but nothing is copied.
pub fn classify(frame: Frame<'_>) -> Result<Event<'_>, DecodeError> {
    let mut message_type = None;
    let mut event_type = None;
    let mut exception_type = None;
    let mut error_code = None;
    let mut error_message = None;
    for (name, value) in parse_headers(frame.headers)? {
        let HeaderValueRef::String(s) = value else {
            continue;
        };
        match name {
            ":message-type" => message_type = Some(s),
            ":event-type" => event_type = Some(s),
            ":exception-type" => exception_type = Some(s),
            ":error-code" => error_code = Some(s),
            ":error-message" => error_message = Some(s),
            _ => {}
        }
    }
    Ok(match message_type {
        Some("error") => Event::Error {
            code: error_code.unwrap_or("Unknown"),
            message: error_message.unwrap_or(""),
        },
        Some("exception") => Event::Exception {
            exception_type: exception_type.unwrap_or("Unknown"),
            payload: frame.payload,
        },
        _ => match event_type {
            Some("PayloadPart") => Event::Payload(frame.payload),
            other => Event::Skip { event_type: other },
        },
    })
}
