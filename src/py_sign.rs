//! `sagestream._core.sign_preview`: the signed headers a transport would send for a request,
//! signed with given credentials at a given time — what `sagestream._proof` sets beside the
//! request botocore builds, to show that the request path signs exactly as botocore does.

use std::time::{Duration, SystemTime};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::py_args::{self, header_map};
use crate::py_transport::PyTransport;
use crate::sign::Signer;

/// The headers `transport.send` would sign and send for this request (`host`, `x-amz-date`,
/// `authorization`, ...), signed at `epoch` (seconds since 1970) with these credentials rather
/// than the transport's own, in the transport's region and signing name.
#[pyfunction]
#[pyo3(signature = (transport, method, url, headers, body, *, access_key, secret_key, token=None, epoch))]
#[allow(clippy::too_many_arguments)]
pub fn sign_preview(
    transport: &Bound<'_, PyTransport>,
    method: &str,
    url: &str,
    headers: Vec<(String, String)>,
    body: &[u8],
    access_key: &str,
    secret_key: &str,
    token: Option<&str>,
    epoch: f64,
) -> PyResult<Vec<(String, String)>> {
    let method = py_args::method(method)?;
    let uri = py_args::uri(url)?;
    let time = Duration::try_from_secs_f64(epoch)
        .map(|since| SystemTime::UNIX_EPOCH + since)
        .map_err(|e| PyValueError::new_err(format!("invalid epoch {epoch}: {e}")))?;
    let transport = transport.borrow();
    let theirs = transport.signer();
    let signer = Signer::new(theirs.region(), theirs.service());
    signer.set_credentials(access_key, secret_key, token);
    let mut headers = header_map(headers)?;
    signer
        .sign_as_sent(&method, &uri, &mut headers, body, time)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(headers
        .iter()
        .map(|(name, value)| {
            let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), text)
        })
        .collect())
}
