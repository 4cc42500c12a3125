//! The transport's arguments as Python gives them, checked: headers, proxy URLs, timeouts.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::transport::Proxy;

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

pub(crate) fn seconds(value: Option<f64>, what: &str) -> PyResult<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s.min(1e9)))),
        Some(s) => Err(PyValueError::new_err(format!(
            "{what} must be a positive number of seconds, got {s}"
        ))),
    }
}
