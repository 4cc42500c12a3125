//! The request path's arguments as Python gives them, checked (methods, URLs, headers, proxy
//! URLs, timeouts and deadlines), and the headers of an answer as Python gets them.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::transport::{header_pairs, Proxy};

/// An HTTP method.
pub(crate) fn method(method: &str) -> PyResult<Method> {
    Method::from_bytes(method.as_bytes())
        .map_err(|e| PyValueError::new_err(format!("invalid method {method:?}: {e}")))
}

/// A URL.
pub(crate) fn uri(url: &str) -> PyResult<Uri> {
    url.parse()
        .map_err(|e| PyValueError::new_err(format!("invalid URL {url:?}: {e}")))
}

/// A deadline in seconds (None: none).
pub(crate) fn deadline(deadline: Option<f64>) -> PyResult<Option<f64>> {
    match deadline {
        Some(d) if !(d.is_finite() && d >= 0.0) => Err(PyValueError::new_err(
            "deadline must be a non-negative number of seconds",
        )),
        _ => Ok(deadline),
    }
}

/// Headers as a dict: names in lower case, repeated headers joined with `", "`.
pub(crate) fn header_dict<'py>(
    py: Python<'py>,
    headers: &HeaderMap,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (name, value) in header_pairs(headers) {
        dict.set_item(name, value)?;
    }
    Ok(dict)
}

/// Header pairs as a `HeaderMap`.
pub(crate) fn header_map(pairs: Vec<(String, String)>) -> PyResult<HeaderMap> {
    let mut map = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| PyValueError::new_err(format!("invalid header name {name:?}: {e}")))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|e| PyValueError::new_err(format!("invalid value for header {name}: {e}")))?;
        map.append(name, value);
    }
    Ok(map)
}

/// A proxy URL (`http://` only) and the `Proxy-Authorization` to send it.
pub(crate) fn proxy(url: Option<String>, authorization: Option<String>) -> PyResult<Option<Proxy>> {
    let Some(url) = url else { return Ok(None) };
    let uri: Uri = url
        .parse()
        .map_err(|e| PyValueError::new_err(format!("invalid proxy URL {url:?}: {e}")))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(PyValueError::new_err(format!(
            "only http:// proxies are supported, got {url:?}"
        )));
    }
    let authorization = authorization
        .map(|a| {
            HeaderValue::from_str(&a)
                .map_err(|e| PyValueError::new_err(format!("invalid proxy authorization: {e}")))
        })
        .transpose()?;
    Ok(Some(Proxy { uri, authorization }))
}

/// A timeout in seconds (None: no bound).
pub(crate) fn seconds(value: Option<f64>, what: &str) -> PyResult<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s.min(1e9)))),
        Some(s) => Err(PyValueError::new_err(format!(
            "{what} must be a positive number of seconds, got {s}"
        ))),
    }
}
