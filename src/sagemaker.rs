//! The SageMaker Runtime event mapping for `InvokeEndpointWithResponseStream`, pyo3-free.
//!
//! - `:message-type: event`, `:event-type: PayloadPart` → the payload bytes.
//! - `:message-type: exception`, `:exception-type: ModelStreamError | InternalStreamFailure`
//!   → a modeled error with a JSON payload `{"Message": ..., "ErrorCode": ...}`.
//! - `:message-type: error` → `:error-code` / `:error-message`.
//! - `initial-response` and unknown event types are skipped, as the AWS SDKs do.
//!
//! Headers a frame lacks read as empty strings, as botocore's parser reads them.
//!
//! The output parts of `InvokeEndpointWithBidirectionalStream` also carry `DataType` (`UTF8` |
//! `BINARY`) and `CompletionState` (`PARTIAL` | `COMPLETE`) headers: [`part_meta`].

use crate::errors::{DecodeError, ServiceError};
use crate::frame::Frame;
use crate::headers::{visit_headers, HeaderValueRef};

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

impl Event<'_> {
    /// The error an exception or error frame carries, as owned data; `None` for the others.
    #[must_use]
    pub fn service_error(&self) -> Option<ServiceError> {
        match *self {
            Event::Exception {
                exception_type,
                payload,
            } => Some(ServiceError::Exception {
                exception_type: exception_type.to_owned(),
                payload: payload.to_vec(),
            }),
            Event::Error { code, message } => Some(ServiceError::Error {
                code: code.to_owned(),
                message: message.to_owned(),
            }),
            Event::Payload(_) | Event::Skip { .. } => None,
        }
    }
}

/// A header value of a payload part: one the service defines, or another it sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Label {
    /// A value the service model names (`UTF8`, `BINARY`, `PARTIAL`, `COMPLETE`).
    Known(&'static str),
    /// Any other value, kept as sent.
    Other(std::sync::Arc<str>),
}

impl Label {
    fn of(value: &str) -> Self {
        const KNOWN: [&str; 4] = ["UTF8", "BINARY", "PARTIAL", "COMPLETE"];
        match KNOWN.iter().find(|k| **k == value) {
            Some(known) => Self::Known(known),
            None => Self::Other(value.into()),
        }
    }

    /// The value as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Known(s) => s,
            Self::Other(s) => s,
        }
    }
}

/// `DataType` and `CompletionState` of a bidirectional stream's payload part (absent: None).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartMeta {
    pub data_type: Option<Label>,
    pub completion_state: Option<Label>,
}

/// The `DataType` and `CompletionState` string headers of a frame's headers section.
pub fn part_meta(headers: &[u8]) -> Result<PartMeta, DecodeError> {
    let mut meta = PartMeta::default();
    visit_headers(headers, |name, value| {
        if let HeaderValueRef::String(s) = value {
            match name {
                "DataType" => meta.data_type = Some(Label::of(s)),
                "CompletionState" => meta.completion_state = Some(Label::of(s)),
                _ => {}
            }
        }
        Ok(())
    })?;
    Ok(meta)
}

/// Classify a verified frame. Every header is parsed (so a malformed or duplicate header is
/// an error, as in botocore), but nothing is copied or allocated.
pub fn classify(frame: Frame<'_>) -> Result<Event<'_>, DecodeError> {
    let mut message_type = None;
    let mut event_type = None;
    let mut exception_type = None;
    let mut error_code = None;
    let mut error_message = None;
    visit_headers(frame.headers, |name, value| {
        // Only the `:`-prefixed string headers matter; the rest are checked and skipped.
        if let (Some(rest), HeaderValueRef::String(s)) = (name.strip_prefix(':'), value) {
            match rest {
                "message-type" => message_type = Some(s),
                "event-type" => event_type = Some(s),
                "exception-type" => exception_type = Some(s),
                "error-code" => error_code = Some(s),
                "error-message" => error_message = Some(s),
                _ => {}
            }
        }
        Ok(())
    })?;
    Ok(match message_type {
        Some("error") => Event::Error {
            code: error_code.unwrap_or(""),
            message: error_message.unwrap_or(""),
        },
        Some("exception") => Event::Exception {
            exception_type: exception_type.unwrap_or(""),
            payload: frame.payload,
        },
        _ => match event_type {
            Some("PayloadPart") => Event::Payload(frame.payload),
            other => Event::Skip { event_type: other },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{check_frame, parse_prelude, PRELUDE_LENGTH};
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
    use bytes::Bytes;

    fn encoded(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
        let headers = headers
            .iter()
            .map(|(n, v)| Header::new((*n).to_owned(), HeaderValue::String((*v).to_owned().into())))
            .collect();
        let mut out = Vec::new();
        write_message_to(
            &Message::new_from_parts(headers, Bytes::copy_from_slice(payload)),
            &mut out,
        )
        .unwrap();
        out
    }

    fn classify_bytes(data: &[u8]) -> Result<Event<'_>, DecodeError> {
        let prelude = parse_prelude(&data[..PRELUDE_LENGTH].try_into().unwrap())?;
        classify(check_frame(data, prelude)?)
    }

    #[test]
    fn payload_part() {
        let data = encoded(
            &[
                (":event-type", "PayloadPart"),
                (":content-type", "application/octet-stream"),
                (":message-type", "event"),
            ],
            b"tok",
        );
        assert_eq!(classify_bytes(&data), Ok(Event::Payload(b"tok")));
    }

    #[test]
    fn exceptions_and_errors() {
        let data = encoded(
            &[
                (":message-type", "exception"),
                (":exception-type", "ModelStreamError"),
            ],
            b"{}",
        );
        assert_eq!(
            classify_bytes(&data),
            Ok(Event::Exception {
                exception_type: "ModelStreamError",
                payload: b"{}"
            })
        );
        let data = encoded(
            &[
                (":message-type", "error"),
                (":error-code", "Throttled"),
                (":error-message", "slow down"),
            ],
            b"",
        );
        assert_eq!(
            classify_bytes(&data),
            Ok(Event::Error {
                code: "Throttled",
                message: "slow down"
            })
        );
        let data = encoded(&[(":message-type", "error")], b"");
        assert_eq!(
            classify_bytes(&data),
            Ok(Event::Error {
                code: "",
                message: ""
            })
        );
        let data = encoded(&[(":message-type", "exception")], b"{}");
        let event = classify_bytes(&data).unwrap();
        assert_eq!(
            event,
            Event::Exception {
                exception_type: "",
                payload: b"{}"
            }
        );
        assert_eq!(
            event.service_error(),
            Some(ServiceError::Exception {
                exception_type: String::new(),
                payload: b"{}".to_vec()
            })
        );
        assert_eq!(Event::Payload(b"x").service_error(), None);
        assert_eq!(
            Event::Error {
                code: "C",
                message: "m"
            }
            .service_error(),
            Some(ServiceError::Error {
                code: "C".into(),
                message: "m".into()
            })
        );
    }

    #[test]
    fn other_events_are_skipped() {
        let data = encoded(
            &[
                (":message-type", "event"),
                (":event-type", "initial-response"),
            ],
            b"{}",
        );
        assert_eq!(
            classify_bytes(&data),
            Ok(Event::Skip {
                event_type: Some("initial-response")
            })
        );
        assert_eq!(
            classify_bytes(&encoded(&[], b"x")),
            Ok(Event::Skip { event_type: None })
        );
    }

    #[test]
    fn part_meta_reads_data_type_and_completion_state() {
        let data = encoded(
            &[
                (":event-type", "PayloadPart"),
                ("DataType", "UTF8"),
                ("CompletionState", "PARTIAL"),
                ("P", "xx"),
            ],
            b"hi",
        );
        let prelude = parse_prelude(&data[..PRELUDE_LENGTH].try_into().unwrap()).unwrap();
        let frame = check_frame(&data, prelude).unwrap();
        let meta = part_meta(frame.headers).unwrap();
        assert_eq!(meta.data_type, Some(Label::Known("UTF8")));
        assert_eq!(
            meta.completion_state.as_ref().map(Label::as_str),
            Some("PARTIAL")
        );
        let data = encoded(&[("DataType", "AUDIO")], b"");
        let prelude = parse_prelude(&data[..PRELUDE_LENGTH].try_into().unwrap()).unwrap();
        let meta = part_meta(check_frame(&data, prelude).unwrap().headers).unwrap();
        assert_eq!(meta.data_type, Some(Label::Other("AUDIO".into())));
        assert_eq!(meta.completion_state, None);
    }

    #[test]
    fn duplicate_headers_are_errors() {
        let data = encoded(
            &[
                (":event-type", "PayloadPart"),
                (":event-type", "PayloadPart"),
            ],
            b"x",
        );
        assert!(matches!(
            classify_bytes(&data),
            Err(DecodeError::DuplicateHeader { .. })
        ));
    }
}
