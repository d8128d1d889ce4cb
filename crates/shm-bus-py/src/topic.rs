//! The topic language of `shm-bus-topic`, for the Python `Topic` classes
//! (which wrap a [`NativeTopic`]).

use std::collections::HashMap;

use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use shm_bus_topic::{FormatError, Part, Topic, TopicError, match_topics};

/// Part kinds as PyEventEngine's `TopicType` numbers them (`Rest` is ours).
pub(crate) const KIND_EXACT: u8 = 0;
pub(crate) const KIND_ANY: u8 = 1;
pub(crate) const KIND_RANGE: u8 = 2;
pub(crate) const KIND_PATTERN: u8 = 3;
pub(crate) const KIND_REST: u8 = 4;

pub(crate) fn topic_error(e: TopicError) -> PyErr {
    PyValueError::new_err(format!("invalid topic: {e}"))
}

fn format_error(e: FormatError) -> PyErr {
    match e {
        FormatError::MissingValue { .. } => PyKeyError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// A parsed topic (immutable).
#[pyclass(module = "shm_bus._native", frozen, name = "NativeTopic")]
pub(crate) struct NativeTopic {
    pub(crate) topic: Topic,
}

fn part_from(kind: u8, value: &Bound<'_, PyAny>) -> PyResult<Part> {
    let part = match kind {
        KIND_EXACT => Part::exact(&value.extract::<String>()?),
        KIND_ANY => Part::any(&value.extract::<String>()?),
        KIND_RANGE => Part::range(value.extract::<Vec<String>>()?),
        KIND_PATTERN => Part::pattern(&value.extract::<String>()?),
        KIND_REST => Ok(Part::rest()),
        other => return Err(PyValueError::new_err(format!("unknown part type {other}"))),
    };
    part.map_err(topic_error)
}

fn part_to<'py>(py: Python<'py>, part: &Part) -> PyResult<Bound<'py, PyTuple>> {
    let (kind, value): (u8, Bound<'py, PyAny>) = match part {
        Part::Exact(s) => (KIND_EXACT, PyString::new(py, s).into_any()),
        Part::Any(n) => (KIND_ANY, PyString::new(py, n).into_any()),
        Part::Range(opts) => (
            KIND_RANGE,
            PyList::new(py, opts.iter().map(|o| &**o))?.into_any(),
        ),
        Part::Pattern(p) => (KIND_PATTERN, PyString::new(py, p.as_str()).into_any()),
        Part::Rest => (KIND_REST, PyString::new(py, "**").into_any()),
    };
    PyTuple::new(py, [kind.into_pyobject(py)?.into_any(), value])
}

#[pymethods]
impl NativeTopic {
    /// Parses a topic; `ValueError` names what is wrong and where.
    #[staticmethod]
    fn parse(text: &str) -> PyResult<NativeTopic> {
        Topic::parse(text)
            .map(|topic| NativeTopic { topic })
            .map_err(topic_error)
    }

    /// An exact topic from literal parts.
    #[staticmethod]
    fn join(parts: Vec<String>) -> PyResult<NativeTopic> {
        Topic::join(parts)
            .map(|topic| NativeTopic { topic })
            .map_err(topic_error)
    }

    /// A topic from `(kind, value)` pairs as `parts()` gives them.
    #[staticmethod]
    fn from_parts(parts: &Bound<'_, PyAny>) -> PyResult<NativeTopic> {
        let mut built = Vec::new();
        for item in parts.try_iter()? {
            let item = item?;
            let (kind, value): (u8, Bound<'_, PyAny>) = item.extract()?;
            built.push(part_from(kind, &value)?);
        }
        Topic::from_parts(built)
            .map(|topic| NativeTopic { topic })
            .map_err(topic_error)
    }

    /// The canonical literal.
    #[getter]
    fn literal(&self) -> &str {
        self.topic.as_str()
    }

    #[getter]
    fn is_exact(&self) -> bool {
        self.topic.is_exact()
    }

    fn __len__(&self) -> usize {
        self.topic.len()
    }

    /// `[(kind, value)]`: value is the literal, the wildcard name, the list
    /// of options, the regex, or `"**"`.
    fn parts<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        self.topic.iter().map(|p| part_to(py, p)).collect()
    }

    /// Whether a part's regex (kind 3) finds a match in `text`; for other
    /// parts whether the part accepts `text` as one part.
    #[staticmethod]
    fn part_accepts(kind: u8, value: &Bound<'_, PyAny>, text: &str) -> PyResult<bool> {
        Ok(part_from(kind, value)?.accepts(text))
    }

    /// Symmetric match: `(matched, nodes, captures)`, nodes as
    /// `(matched, index_in_self | None, index_in_other | None, literal)`.
    fn match_<'py>(
        &self,
        py: Python<'py>,
        other: &NativeTopic,
    ) -> PyResult<(bool, Bound<'py, PyList>, Bound<'py, PyDict>)> {
        let result = match_topics(&self.topic, &other.topic);
        let nodes = PyList::empty(py);
        let index =
            |t: &Topic, p: Option<&Part>| p.and_then(|p| t.iter().position(|q| std::ptr::eq(q, p)));
        for node in result.nodes() {
            nodes.append((
                node.matched,
                index(&self.topic, node.a),
                index(&other.topic, node.b),
                node.literal,
            ))?;
        }
        let captures = PyDict::new(py);
        for (k, v) in result.captures() {
            captures.set_item(*k, *v)?;
        }
        Ok((result.matched(), nodes, captures))
    }

    /// Whether the two topics match (either may be the pattern).
    fn matches(&self, other: &NativeTopic) -> bool {
        shm_bus_topic::matches(&self.topic, &other.topic)
    }

    /// Replaces `{name}` parts by values from `mapping` (str -> str);
    /// `KeyError` for a missing name when strict, `ValueError` otherwise.
    fn format_map(&self, mapping: &Bound<'_, PyAny>, strict: bool) -> PyResult<NativeTopic> {
        let mut values: HashMap<String, String> = HashMap::new();
        for name in self.topic.wildcard_names() {
            match mapping.get_item(name) {
                Ok(v) => {
                    let v = v.str().map_err(|_| {
                        PyTypeError::new_err(format!("value for `{{{name}}}` is not printable"))
                    })?;
                    values.insert(name.to_owned(), v.to_cow()?.into_owned());
                }
                Err(e) if e.is_instance_of::<PyKeyError>(mapping.py()) => {}
                Err(e) => return Err(e),
            }
        }
        self.topic
            .format_map(&values, strict)
            .map(|topic| NativeTopic { topic })
            .map_err(format_error)
    }

    /// `self` followed by `other`'s parts.
    fn concat(&self, other: &NativeTopic) -> NativeTopic {
        NativeTopic {
            topic: self.topic.concat(&other.topic),
        }
    }
}
