//! Python face of the kubelet payload decoders: body bytes in, encoded `NodeSample` bytes out,
//! failures as `DecodeError(ValueError)` with `kind`, `offset` and `field`. Also the
//! `describe_sample`/`encode_sample` pair that turns encoded samples into plain data and back,
//! for tests and the simulator's self-checks (not the hot path).

use kubemetrics_core::error::DecodeError as PayloadError;
use kubemetrics_core::sample::{ContainerSample, NodeSample, PodSample, ResourcePoint};
use kubemetrics_core::{resource, summary};
use pyo3::create_exception;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

/// Default cap on one kubelet body. The largest real summary seen is 93 KB for 17 pods and a
/// 250-pod node is about 1.2 MB, so 64 MiB only stops a runaway or hostile response from being
/// parsed.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

create_exception!(
    kubemetrics._native,
    DecodeError,
    PyValueError,
    "A kubelet payload could not be decoded; `kind`, `offset` and `field` say how and where."
);

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let decode_error = py.get_type::<DecodeError>();
    // Class-level defaults, so an instance raised by Python code (a test double) has them too.
    decode_error.setattr("kind", "")?;
    decode_error.setattr("offset", 0)?;
    decode_error.setattr("field", "")?;
    m.add("DecodeError", decode_error)?;
    m.add("DEFAULT_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?;
    m.add_function(wrap_pyfunction!(decode_summary, m)?)?;
    m.add_function(wrap_pyfunction!(decode_resource_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(describe_sample, m)?)?;
    m.add_function(wrap_pyfunction!(encode_sample, m)?)?;
    Ok(())
}

/// Decodes a `/stats/summary` body into an encoded NodeSample, without holding the interpreter.
#[pyfunction]
#[pyo3(signature = (body, node, scrape_time_unix_nanos, max_body_bytes = DEFAULT_MAX_BODY_BYTES))]
fn decode_summary<'py>(
    py: Python<'py>,
    body: &[u8],
    node: &str,
    scrape_time_unix_nanos: i64,
    max_body_bytes: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    // `bytes` are immutable, so reading the buffer while detached is safe.
    let encoded = py.detach(|| {
        summary::decode_summary(body, node, scrape_time_unix_nanos, max_body_bytes)
            .map(|sample| sample.to_bytes())
    });
    match encoded {
        Ok(bytes) => Ok(PyBytes::new(py, &bytes)),
        Err(error) => Err(decode_error(py, "/stats/summary", node, &error)),
    }
}

/// Decodes a `/metrics/resource` body into an encoded NodeSample, without holding the interpreter.
#[pyfunction]
#[pyo3(signature = (body, node, scrape_time_unix_nanos, max_body_bytes = DEFAULT_MAX_BODY_BYTES))]
fn decode_resource_metrics<'py>(
    py: Python<'py>,
    body: &[u8],
    node: &str,
    scrape_time_unix_nanos: i64,
    max_body_bytes: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    // `bytes` are immutable, so reading the buffer while detached is safe.
    let encoded = py.detach(|| {
        resource::decode_resource_metrics(body, node, scrape_time_unix_nanos, max_body_bytes)
            .map(|sample| sample.to_bytes())
    });
    match encoded {
        Ok(bytes) => Ok(PyBytes::new(py, &bytes)),
        Err(error) => Err(decode_error(py, "/metrics/resource", node, &error)),
    }
}

/// `DecodeError` for a body from `endpoint` of `node`, e.g. `decode /stats/summary of node "n1":
/// wrong_type at byte 1234 (field pods[3].containers[0].startTime): invalid value: ...`.
pub(crate) fn decode_error(
    py: Python<'_>,
    endpoint: &str,
    node: &str,
    error: &PayloadError,
) -> PyErr {
    let exception = DecodeError::new_err(format!("decode {endpoint} of node {node:?}: {error}"));
    let value = exception.value(py);
    let details = value
        .setattr("kind", error.kind().as_str())
        .and_then(|()| value.setattr("offset", error.offset()))
        .and_then(|()| value.setattr("field", error.field()));
    match details {
        Ok(()) => exception,
        Err(setattr_error) => setattr_error,
    }
}

// ---------------------------------------------------------------------------------------------
// describe_sample: encoded NodeSample → plain Python data.

#[pyfunction]
fn describe_sample<'py>(py: Python<'py>, sample: &[u8]) -> PyResult<Bound<'py, PyDict>> {
    let sample = NodeSample::from_bytes(sample)
        .map_err(|error| PyValueError::new_err(format!("not an encoded NodeSample: {error}")))?;
    let described = PyDict::new(py);
    described.set_item("node", &sample.node)?;
    described.set_item("scrape_time_unix_nanos", sample.scrape_time_unix_nanos)?;
    described.set_item(
        "node_point",
        describe_point(py, sample.node_point.as_ref())?,
    )?;
    let pods = PyList::empty(py);
    for pod in &sample.pods {
        pods.append(describe_pod(py, pod)?)?;
    }
    described.set_item("pods", pods)?;
    Ok(described)
}

fn describe_pod<'py>(py: Python<'py>, pod: &PodSample) -> PyResult<Bound<'py, PyDict>> {
    let described = PyDict::new(py);
    described.set_item("namespace", &pod.namespace)?;
    described.set_item("name", &pod.name)?;
    let containers = PyList::empty(py);
    for container in &pod.containers {
        let described_container = PyDict::new(py);
        described_container.set_item("name", &container.name)?;
        described_container.set_item("point", describe_point(py, container.point.as_ref())?)?;
        containers.append(described_container)?;
    }
    described.set_item("containers", containers)?;
    Ok(described)
}

fn describe_point<'py>(
    py: Python<'py>,
    point: Option<&ResourcePoint>,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let Some(point) = point else {
        return Ok(None);
    };
    let described = PyDict::new(py);
    described.set_item("timestamp_unix_nanos", point.timestamp_unix_nanos)?;
    described.set_item("cumulative_cpu_nanos", point.cumulative_cpu_nanos)?;
    described.set_item("memory_working_set_bytes", point.memory_working_set_bytes)?;
    described.set_item("start_time_unix_nanos", point.start_time_unix_nanos)?;
    Ok(Some(described))
}

// ---------------------------------------------------------------------------------------------
// encode_sample: the inverse. Keys that describe_sample always writes may be left out when their
// value is the default (None, [] or 0), except names and times; errors name the path of the
// offending value.

#[pyfunction]
fn encode_sample<'py>(
    py: Python<'py>,
    sample: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let node_sample = NodeSample {
        node: required(sample, "node", "")?,
        scrape_time_unix_nanos: required(sample, "scrape_time_unix_nanos", "")?,
        node_point: match optional_value(sample, "node_point")? {
            Some(point) => Some(point_from(&point, "node_point")?),
            None => None,
        },
        pods: items(sample, "pods", "", pod_from)?,
    };
    Ok(PyBytes::new(py, &node_sample.to_bytes()))
}

fn pod_from(pod: &Bound<'_, PyAny>, path: &str) -> PyResult<PodSample> {
    Ok(PodSample {
        namespace: required(pod, "namespace", path)?,
        name: required(pod, "name", path)?,
        containers: items(pod, "containers", path, container_from)?,
    })
}

fn container_from(container: &Bound<'_, PyAny>, path: &str) -> PyResult<ContainerSample> {
    Ok(ContainerSample {
        name: required(container, "name", path)?,
        point: match optional_value(container, "point")? {
            Some(point) => Some(point_from(&point, &join(path, "point"))?),
            None => None,
        },
    })
}

fn point_from(point: &Bound<'_, PyAny>, path: &str) -> PyResult<ResourcePoint> {
    Ok(ResourcePoint {
        timestamp_unix_nanos: required(point, "timestamp_unix_nanos", path)?,
        cumulative_cpu_nanos: optional(point, "cumulative_cpu_nanos", path)?,
        memory_working_set_bytes: optional(point, "memory_working_set_bytes", path)?,
        start_time_unix_nanos: optional(point, "start_time_unix_nanos", path)?.unwrap_or(0),
    })
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `mapping[key]`, or None when the key is absent or its value is None.
fn optional_value<'py>(
    mapping: &Bound<'py, PyAny>,
    key: &str,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = mapping.py();
    match mapping.get_item(key) {
        Ok(value) if value.is_none() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(error) if error.is_instance_of::<pyo3::exceptions::PyKeyError>(py) => Ok(None),
        Err(error) => Err(error),
    }
}

fn optional<T>(mapping: &Bound<'_, PyAny>, key: &str, path: &str) -> PyResult<Option<T>>
where
    T: for<'a, 'py> FromPyObject<'a, 'py>,
{
    match optional_value(mapping, key)? {
        Some(value) => value.extract::<T>().map(Some).map_err(|error| {
            let cause: PyErr = error.into();
            PyTypeError::new_err(format!("encode_sample: {}: {cause}", join(path, key)))
        }),
        None => Ok(None),
    }
}

fn required<T>(mapping: &Bound<'_, PyAny>, key: &str, path: &str) -> PyResult<T>
where
    T: for<'a, 'py> FromPyObject<'a, 'py>,
{
    optional(mapping, key, path)?.ok_or_else(|| {
        PyValueError::new_err(format!("encode_sample: {} is missing", join(path, key)))
    })
}

/// Converts each element of the sequence `mapping[key]` (absent or None = empty).
fn items<T>(
    mapping: &Bound<'_, PyAny>,
    key: &str,
    path: &str,
    convert: fn(&Bound<'_, PyAny>, &str) -> PyResult<T>,
) -> PyResult<Vec<T>> {
    let Some(sequence) = optional_value(mapping, key)? else {
        return Ok(Vec::new());
    };
    let mut converted = Vec::with_capacity(sequence.len().unwrap_or(0));
    for (index, item) in sequence.try_iter()?.enumerate() {
        converted.push(convert(&item?, &format!("{}[{index}]", join(path, key)))?);
    }
    Ok(converted)
}
