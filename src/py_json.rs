//! JSON text → Python values, with exactly the results of Python's `json.loads`: the JSON lines
//! decoder's per-line parse and `ServerSentEvent.json()`.
//!
//! The fast path parses with `serde_json` straight into Python objects (measured ~1.7x faster
//! than the C scanner of Python's `json` module on TGI-style token lines, which is itself ~1.8x
//! faster than calling `json.loads`). Where `serde_json` and Python could disagree, the text goes
//! to the C scanner: integers of 19+ digits (`serde_json` would make them floats), `-0` (an int
//! in Python), and every text `serde_json` refuses (`NaN`, `Infinity`, lone surrogate escapes,
//! out-of-range floats, deep nesting) — so Python's error message is the one reported.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyString;

use crate::errors::{JsonSyntax, ReassemblyError};
use crate::py_queue::HeldError;
use crate::reassembly::decode_strict;

static JSON_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `json._default_decoder.scan_once`, looked up once.
fn scan_once(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static SCAN_ONCE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    SCAN_ONCE
        .get_or_try_init(py, || {
            let decoder = py.import("json")?.getattr("_default_decoder")?;
            Ok::<_, PyErr>(decoder.getattr("scan_once")?.unbind())
        })
        .map(|f| f.bind(py))
}

/// `text` parsed as `json.loads(text)` would, raising what `json.loads` raises when it is not
/// JSON.
pub(crate) fn loads<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyAny>> {
    if json_fast::agrees_with_python(text.as_bytes()) {
        if let Ok(value) = json_fast::loads(py, text.as_bytes()) {
            return Ok(value);
        }
    }
    JSON_LOADS.import(py, "json", "loads")?.call1((text,))
}

/// How at most this many characters of a bad line are quoted in an error message.
const QUOTE_CHARS: usize = 120;

fn quote_line(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(QUOTE_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}... ({} bytes)", line.len())
    } else {
        format!("{head:?}")
    }
}

/// `json.JSONDecodeError`, looked up once.
pub(crate) fn decode_error_class(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    CLASS.import(py, "json", "JSONDecodeError")
}

/// The fields of `err` if it is a `json.JSONDecodeError`.
fn json_syntax(py: Python<'_>, err: &PyErr) -> Option<JsonSyntax> {
    let class = decode_error_class(py).ok()?;
    let value = err.value(py);
    if !value.is_instance(class).ok()? {
        return None;
    }
    Some(JsonSyntax {
        msg: value.getattr("msg").ok()?.extract().ok()?,
        doc: value.getattr("doc").ok()?.extract().ok()?,
        pos: value.getattr("pos").ok()?.extract().ok()?,
    })
}

/// One JSON line (line `number`, starting at stream `offset`) as its Python value; invalid
/// UTF-8 or JSON is a [`ReassemblyError`] naming the line, with Python's reason.
pub(crate) fn parse_line<'py>(
    py: Python<'py>,
    line: &[u8],
    offset: u64,
    number: u64,
) -> Result<Bound<'py, PyAny>, HeldError> {
    let text = decode_strict(line, offset)?;
    if json_fast::agrees_with_python(line) {
        if let Ok(value) = json_fast::loads(py, line) {
            return Ok(value);
        }
    }
    let held = |e| HeldError::from_py(py, e);
    let trimmed = text.trim_matches(|c| matches!(c, ' ' | '\t' | '\r'));
    let s = PyString::new(py, trimmed);
    let scan_once = scan_once(py).map_err(held)?;
    // `json._default_decoder.scan_once`: the C scanner behind `json.loads`, without the two
    // Python-level frames and regular expressions `json.loads` adds around it.
    if let Ok(found) = scan_once.call1((&s, 0usize)) {
        if let Ok((value, end)) = found.extract::<(Bound<'py, PyAny>, usize)>() {
            if end == s.len().map_err(held)? {
                return Ok(value);
            }
        }
    }
    let err = match JSON_LOADS
        .import(py, "json", "loads")
        .map_err(held)?
        .call1((&s,))
    {
        Ok(value) => return Ok(value),
        Err(err) => err,
    };
    let reason = err
        .value(py)
        .str()
        .map_or_else(|_| String::new(), |s| s.to_string());
    Err(ReassemblyError::InvalidJson {
        line_number: number,
        offset,
        reason,
        quoted: quote_line(line),
        syntax: json_syntax(py, &err),
    }
    .into())
}

/// `serde_json` → Python objects without an intermediate `serde_json::Value`.
mod json_fast {
    use std::borrow::Cow;
    use std::fmt;

    use pyo3::prelude::*;
    use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};
    use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};

    /// False when `serde_json`'s value could differ from Python's for this text: a run of 19 or
    /// more digits (a possible integer beyond 64 bits, which `serde_json` turns into a float) or
    /// `-0` not followed by a fraction or exponent (an int 0 in Python, -0.0 in `serde_json`).
    /// Conservative: digits inside strings also count.
    pub(super) fn agrees_with_python(line: &[u8]) -> bool {
        let mut run = 0usize;
        for (i, &b) in line.iter().enumerate() {
            if b.is_ascii_digit() {
                run += 1;
                if run >= 19 {
                    return false;
                }
                let after_minus = i.checked_sub(1).and_then(|j| line.get(j)) == Some(&b'-');
                if b == b'0'
                    && run == 1
                    && after_minus
                    && !matches!(line.get(i + 1), Some(b'.' | b'e' | b'E'))
                {
                    return false;
                }
            } else {
                run = 0;
            }
        }
        true
    }

    /// Parse a whole JSON text (surrounding whitespace allowed).
    pub(super) fn loads<'py>(
        py: Python<'py>,
        text: &[u8],
    ) -> Result<Bound<'py, PyAny>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(text);
        let value = Seed(py).deserialize(&mut de)?;
        de.end()?;
        Ok(value)
    }

    struct Seed<'py>(Python<'py>);

    impl<'de, 'py> DeserializeSeed<'de> for Seed<'py> {
        type Value = Bound<'py, PyAny>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    fn py_err<E: serde::de::Error>(err: &PyErr) -> E {
        E::custom(err)
    }

    impl<'de, 'py> Visitor<'de> for Seed<'py> {
        type Value = Bound<'py, PyAny>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
            Ok(PyBool::new(self.0, v).to_owned().into_any())
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(PyInt::new(self.0, v).into_any())
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(PyInt::new(self.0, v).into_any())
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(PyFloat::new(self.0, v).into_any())
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(PyString::new(self.0, v).into_any())
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(self.0.None().into_bound(self.0))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let list = PyList::empty(self.0);
            while let Some(item) = seq.next_element_seed(Seed(self.0))? {
                list.append(item).map_err(|e| py_err::<A::Error>(&e))?;
            }
            Ok(list.into_any())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let dict = PyDict::new(self.0);
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                let value = map.next_value_seed(Seed(self.0))?;
                dict.set_item(key.as_ref(), value)
                    .map_err(A::Error::custom)?;
            }
            Ok(dict.into_any())
        }
    }
}
