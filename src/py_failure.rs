//! The one mapping of the request path's failures ([`TransportError`], [`Failure`]) to the
//! exception classes of `sagestream/exceptions.py`. A fresh exception is made each time one is
//! raised: the failure itself stays plain Rust data.

use pyo3::prelude::*;

use crate::errors::decode_error;
use crate::py_stream::{stream_error, stream_exception};
use crate::sign::SignError;
use crate::stream::Failure;
use crate::transport::{ConnectKind, TransportError};

/// The Python classes; these names must match `python/sagestream/exceptions.py`.
mod exc {
    pyo3::import_exception!(sagestream.exceptions, ConnectError);
    pyo3::import_exception!(sagestream.exceptions, ConnectTimeoutError);
    pyo3::import_exception!(sagestream.exceptions, ConnectionLostError);
    pyo3::import_exception!(sagestream.exceptions, ReadTimeoutError);
    pyo3::import_exception!(sagestream.exceptions, DeadlineExceededError);
    pyo3::import_exception!(sagestream.exceptions, InvalidFrameError);
    pyo3::import_exception!(sagestream.exceptions, TransportError);
    pyo3::import_exception!(sagestream.exceptions, SigningError);
}

/// The Python exception for a transport failure.
pub(crate) fn transport_error(err: &TransportError) -> PyErr {
    let message = err.to_string();
    match err {
        TransportError::Connect {
            kind: ConnectKind::Timeout,
            ..
        } => exc::ConnectTimeoutError::new_err((message, ConnectKind::Timeout.as_str())),
        TransportError::Connect { kind, .. } => {
            exc::ConnectError::new_err((message, kind.as_str()))
        }
        TransportError::ConnectionLost { .. } => exc::ConnectionLostError::new_err(message),
        TransportError::ReadTimeout { .. } => exc::ReadTimeoutError::new_err(message),
        TransportError::Deadline { .. } => exc::DeadlineExceededError::new_err(message),
        TransportError::InvalidResponse { .. } => exc::InvalidFrameError::new_err(message),
        TransportError::InvalidRequest { .. } => pyo3::exceptions::PyValueError::new_err(message),
        TransportError::BodyTooLarge { .. } => exc::TransportError::new_err(message),
    }
}

/// The Python exception for a signing failure.
pub(crate) fn sign_error(err: &SignError) -> PyErr {
    exc::SigningError::new_err(err.to_string())
}

/// The Python exception that ends a stream.
pub(crate) fn stream_failure(py: Python<'_>, failure: &Failure) -> PyErr {
    match failure {
        Failure::Decode { error, hint } => decode_error(error, hint.as_deref()),
        Failure::Exception {
            exception_type,
            payload,
        } => stream_exception(py, exception_type, payload),
        Failure::ErrorFrame { code, message } => stream_error(
            py,
            code.as_deref().unwrap_or_default(),
            message.as_deref().unwrap_or_default(),
        ),
        Failure::Transport(err) => transport_error(err),
    }
}
