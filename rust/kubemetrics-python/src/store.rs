//! `MetricsStore`, `StoreStats`, `LabelSelectorError` and the `format_*` helpers.
//!
//! The store sits behind a `RwLock` and every method detaches from the interpreter before taking
//! it, so a long render (150k pods) never holds the GIL and a caller never waits for the lock while
//! holding it.

use std::collections::{BTreeMap, HashSet};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use kubemetrics_core::format;
use kubemetrics_core::render::freshness::FRESHNESS_BUCKETS;
use kubemetrics_core::render::table::{MetaVersion, RowObject, TableOptions};
use kubemetrics_core::render::views::{Encoding, View};
use kubemetrics_core::render::RequestTime;
use kubemetrics_core::sample::NodeSample;
use kubemetrics_core::selector::LabelSelector;
use kubemetrics_core::store::{
    Labels, MetricsStore as Store, NodeSelection, PodKey, PodSelection, StoreConfig,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

create_exception!(
    kubemetrics._native,
    LabelSelectorError,
    PyValueError,
    "A labelSelector string that Kubernetes would reject (message as the apiserver words it)."
);

/// Counts for self-metrics and readiness.
#[pyclass(module = "kubemetrics._native", name = "StoreStats", frozen, get_all)]
pub struct StoreStats {
    nodes: usize,
    node_points: usize,
    pods: usize,
    containers: usize,
    container_points: usize,
}

#[pymethods]
impl StoreStats {
    fn __repr__(&self) -> String {
        format!(
            "StoreStats(nodes={}, node_points={}, pods={}, containers={}, container_points={})",
            self.nodes, self.node_points, self.pods, self.containers, self.container_points
        )
    }
}

/// How a response represents the selected metrics: the objects (JSON or protobuf), a `Table`, or
/// metadata only. Built once per request from the negotiated media type.
#[pyclass(module = "kubemetrics._native", name = "ResponseView", frozen)]
pub struct ResponseView {
    view: View,
}

fn parse_encoding(encoding: &str) -> PyResult<Encoding> {
    match encoding {
        "json" => Ok(Encoding::Json),
        "protobuf" => Ok(Encoding::Protobuf),
        other => Err(PyValueError::new_err(format!(
            "encoding must be \"json\" or \"protobuf\", got {other:?}"
        ))),
    }
}

fn parse_meta_version(meta_version: &str) -> PyResult<MetaVersion> {
    match meta_version {
        "v1" => Ok(MetaVersion::V1),
        "v1beta1" => Ok(MetaVersion::V1beta1),
        other => Err(PyValueError::new_err(format!(
            "meta_version must be \"v1\" or \"v1beta1\", got {other:?}"
        ))),
    }
}

fn parse_row_object(include_object: &str) -> PyResult<RowObject> {
    match include_object {
        "" | "Metadata" => Ok(RowObject::Metadata),
        "None" => Ok(RowObject::Nothing),
        "Object" => Ok(RowObject::Object),
        other => Err(PyValueError::new_err(format!(
            "include_object must be \"Metadata\", \"Object\", \"None\" or empty, got {other:?}"
        ))),
    }
}

fn encoding_name(encoding: Encoding) -> &'static str {
    match encoding {
        Encoding::Json => "json",
        Encoding::Protobuf => "protobuf",
    }
}

fn meta_version_name(version: MetaVersion) -> &'static str {
    match version {
        MetaVersion::V1 => "v1",
        MetaVersion::V1beta1 => "v1beta1",
    }
}

#[pymethods]
impl ResponseView {
    #[new]
    #[pyo3(signature = (shape, *, encoding = "json", meta_version = "v1", include_object = "Metadata"))]
    fn new(
        shape: &str,
        encoding: &str,
        meta_version: &str,
        include_object: &str,
    ) -> PyResult<Self> {
        let encoding = parse_encoding(encoding)?;
        let view = match shape {
            "object" => View::Object(encoding),
            "table" if encoding == Encoding::Json => View::Table(TableOptions {
                version: parse_meta_version(meta_version)?,
                row_object: parse_row_object(include_object)?,
            }),
            "table" => {
                return Err(PyValueError::new_err(
                    "a Table is served as JSON only (as the apiserver allows it)",
                ))
            }
            "metadata" => View::Metadata(parse_meta_version(meta_version)?, encoding),
            other => {
                return Err(PyValueError::new_err(format!(
                    "shape must be \"object\", \"table\" or \"metadata\", got {other:?}"
                )))
            }
        };
        Ok(Self { view })
    }

    fn __repr__(&self) -> String {
        match self.view {
            View::Object(encoding) => {
                format!(
                    "ResponseView('object', encoding='{}')",
                    encoding_name(encoding)
                )
            }
            View::Table(options) => format!(
                "ResponseView('table', meta_version='{}', include_object='{}')",
                meta_version_name(options.version),
                match options.row_object {
                    RowObject::Nothing => "None",
                    RowObject::Metadata => "Metadata",
                    RowObject::Object => "Object",
                }
            ),
            View::Metadata(version, encoding) => format!(
                "ResponseView('metadata', encoding='{}', meta_version='{}')",
                encoding_name(encoding),
                meta_version_name(version)
            ),
        }
    }
}

/// Names (or namespaces) a `!=` field selector excludes; `None` excludes nothing.
fn extract_exclusions(values: Option<&Bound<'_, PyAny>>) -> PyResult<HashSet<String>> {
    let Some(values) = values else {
        return Ok(HashSet::new());
    };
    values
        .try_iter()?
        .map(|value| value?.extract::<String>())
        .collect()
}

/// How many samples `ingest` decodes before applying them under one write lock.
const INGEST_CHUNK: usize = 32;

/// Two points per node and container with metrics-server's storage semantics.
#[pyclass(module = "kubemetrics._native", name = "MetricsStore", frozen)]
pub struct MetricsStore {
    store: RwLock<Store>,
}

impl MetricsStore {
    // A panic while the lock was held (none is expected) must not turn every later request into
    // an error: the store is still structurally sound, so keep using it.
    fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(PoisonError::into_inner)
    }
}

fn parse_selector(selector: Option<&str>) -> Result<LabelSelector, String> {
    match selector {
        None => Ok(LabelSelector::everything()),
        Some(text) => LabelSelector::parse(text).map_err(|error| error.message().to_string()),
    }
}

/// A `Mapping[str, str]` as labels: a dict directly, any other mapping through `items()`.
fn extract_labels(labels: &Bound<'_, PyAny>) -> PyResult<Labels> {
    let mut map = BTreeMap::new();
    if let Ok(dict) = labels.cast::<PyDict>() {
        for (key, value) in dict.iter() {
            map.insert(key.extract::<String>()?, value.extract::<String>()?);
        }
    } else {
        for item in labels.call_method0("items")?.try_iter()? {
            let (key, value): (String, String) = item?.extract()?;
            map.insert(key, value);
        }
    }
    Ok(Labels::new(map))
}

fn into_bytes(py: Python<'_>, body: Vec<u8>) -> Py<PyBytes> {
    PyBytes::new(py, &body).unbind()
}

#[pymethods]
impl MetricsStore {
    #[new]
    #[pyo3(signature = (
        metric_resolution_seconds,
        *,
        require_pod_metadata = false,
        keep_zero_memory_containers = false
    ))]
    fn new(
        metric_resolution_seconds: f64,
        require_pod_metadata: bool,
        keep_zero_memory_containers: bool,
    ) -> PyResult<Self> {
        if !(metric_resolution_seconds.is_finite() && metric_resolution_seconds > 0.0) {
            return Err(PyValueError::new_err(format!(
                "metric_resolution_seconds must be a positive number of seconds, got {metric_resolution_seconds}"
            )));
        }
        let config = StoreConfig {
            resolution_nanos: (metric_resolution_seconds * 1e9).round() as i64,
            require_pod_metadata,
            keep_zero_memory_containers,
        };
        Ok(Self {
            store: RwLock::new(Store::with_config(config)),
        })
    }

    /// Decodes the samples a chunk at a time and applies each chunk's good ones under one write lock.
    fn ingest(&self, py: Python<'_>, samples: &Bound<'_, PyAny>) -> PyResult<usize> {
        let mut objects = Vec::new();
        for (index, item) in samples.try_iter()?.enumerate() {
            let item = item?;
            let bytes = item.cast_into::<PyBytes>().map_err(|error| {
                PyTypeError::new_err(format!(
                    "samples[{index}] must be bytes (an encoded NodeSample), got {}",
                    error
                        .into_inner()
                        .get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            })?;
            objects.push(bytes);
        }
        let encoded: Vec<&[u8]> = objects.iter().map(|bytes| bytes.as_bytes()).collect();
        let (stored, first_error) = py.detach(|| {
            let mut stored = 0;
            let mut first_error = None;
            // Decoded samples hold every pod's strings: decode a few at a time, so the memory they
            // take at once stays small whatever the batch (the store keeps far less per pod).
            for (chunk_index, chunk) in encoded.chunks(INGEST_CHUNK).enumerate() {
                let mut decoded = Vec::with_capacity(chunk.len());
                for (offset, bytes) in chunk.iter().enumerate() {
                    match NodeSample::from_bytes(bytes) {
                        Ok(sample) => decoded.push(sample),
                        Err(error) if first_error.is_none() => {
                            let index = chunk_index * INGEST_CHUNK + offset;
                            first_error = Some((index, bytes.len(), error))
                        }
                        Err(_) => {}
                    }
                }
                stored += decoded.len();
                let mut store = self.write();
                for sample in decoded {
                    store.ingest(sample);
                }
            }
            (stored, first_error)
        });
        match first_error {
            Some((index, length, error)) => Err(PyValueError::new_err(format!(
                "samples[{index}] ({length} bytes) is not an encoded NodeSample: {error}; \
                 the {stored} valid samples were stored"
            ))),
            None => Ok(stored),
        }
    }

    fn forget_node(&self, py: Python<'_>, node: &str) {
        py.detach(|| {
            self.write().forget_node(node);
        });
    }

    fn retain_nodes(&self, py: Python<'_>, nodes: &Bound<'_, PyAny>) -> PyResult<usize> {
        let keep = nodes
            .try_iter()?
            .map(|node| node?.extract::<String>())
            .collect::<PyResult<Vec<String>>>()?;
        Ok(py.detach(|| self.write().retain_nodes(keep.iter().map(String::as_str))))
    }

    fn set_node_metadata(
        &self,
        py: Python<'_>,
        node: &str,
        labels: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let labels = extract_labels(labels)?;
        py.detach(|| self.write().set_node_metadata(node, labels));
        Ok(())
    }

    fn remove_node_metadata(&self, py: Python<'_>, node: &str) {
        py.detach(|| self.write().remove_node_metadata(node));
    }

    fn set_pod_metadata(
        &self,
        py: Python<'_>,
        namespace: &str,
        name: &str,
        labels: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let labels = extract_labels(labels)?;
        let key = PodKey::new(namespace, name);
        py.detach(|| self.write().set_pod_metadata(key, labels));
        Ok(())
    }

    fn remove_pod_metadata(&self, py: Python<'_>, namespace: &str, name: &str) {
        let key = PodKey::new(namespace, name);
        py.detach(|| self.write().remove_pod_metadata(&key));
    }

    fn has_node_metadata(&self, py: Python<'_>, node: &str) -> bool {
        py.detach(|| self.read().has_node_metadata(node))
    }

    fn has_pod_metadata(&self, py: Python<'_>, namespace: &str, name: &str) -> bool {
        let key = PodKey::new(namespace, name);
        py.detach(|| self.read().has_pod_metadata(&key))
    }

    #[pyo3(signature = (now_unix_seconds, label_selector = None, name = None))]
    fn render_node_list(
        &self,
        py: Python<'_>,
        now_unix_seconds: f64,
        label_selector: Option<&str>,
        name: Option<&str>,
    ) -> PyResult<Py<PyBytes>> {
        let now = RequestTime::from_unix_seconds_f64(now_unix_seconds);
        let body: Result<Vec<u8>, String> = py.detach(|| {
            let selector = parse_selector(label_selector)?;
            Ok(self.read().render_node_list(&selector, name, now))
        });
        body.map(|body| into_bytes(py, body))
            .map_err(LabelSelectorError::new_err)
    }

    fn render_node(
        &self,
        py: Python<'_>,
        now_unix_seconds: f64,
        node: &str,
    ) -> Option<Py<PyBytes>> {
        let now = RequestTime::from_unix_seconds_f64(now_unix_seconds);
        let body = py.detach(|| self.read().render_node(node, now));
        body.map(|body| into_bytes(py, body))
    }

    #[pyo3(signature = (now_unix_seconds, namespace = None, label_selector = None, name = None))]
    fn render_pod_list(
        &self,
        py: Python<'_>,
        now_unix_seconds: f64,
        namespace: Option<&str>,
        label_selector: Option<&str>,
        name: Option<&str>,
    ) -> PyResult<Py<PyBytes>> {
        let now = RequestTime::from_unix_seconds_f64(now_unix_seconds);
        let body: Result<Vec<u8>, String> = py.detach(|| {
            let selector = parse_selector(label_selector)?;
            Ok(self.read().render_pod_list(namespace, &selector, name, now))
        });
        body.map(|body| into_bytes(py, body))
            .map_err(LabelSelectorError::new_err)
    }

    fn render_pod(
        &self,
        py: Python<'_>,
        now_unix_seconds: f64,
        namespace: &str,
        name: &str,
    ) -> Option<Py<PyBytes>> {
        let now = RequestTime::from_unix_seconds_f64(now_unix_seconds);
        let body = py.detach(|| self.read().render_pod(namespace, name, now));
        body.map(|body| into_bytes(py, body))
    }

    #[pyo3(signature = (view, now_unix_seconds, label_selector = None, name = None, excluded_names = None))]
    fn render_node_list_view(
        &self,
        py: Python<'_>,
        view: &ResponseView,
        now_unix_seconds: f64,
        label_selector: Option<&str>,
        name: Option<&str>,
        excluded_names: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyBytes>> {
        let now = RequestTime::from_unix_seconds_f64(now_unix_seconds);
        let view = view.view;
        let excluded_names = extract_exclusions(excluded_names)?;
        let body: Result<Vec<u8>, String> = py.detach(|| {
            let selector = parse_selector(label_selector)?;
            let selection = NodeSelection {
                excluded_names: Some(&excluded_names).filter(|names| !names.is_empty()),
                ..NodeSelection::new(&selector, name)
            };
            Ok(self.read().render_node_list_view(view, &selection, now))
        });
        body.map(|body| into_bytes(py, body))
            .map_err(LabelSelectorError::new_err)
    }

    fn render_node_view(
        &self,
        py: Python<'_>,
        view: &ResponseView,
        now_unix_seconds: f64,
        node: &str,
    ) -> Option<Py<PyBytes>> {
        let now = RequestTime::from_unix_seconds_f64(now_unix_seconds);
        let view = view.view;
        let body = py.detach(|| self.read().render_node_view(view, node, now));
        body.map(|body| into_bytes(py, body))
    }

    #[pyo3(signature = (
        view,
        now_unix_seconds,
        namespace = None,
        label_selector = None,
        name = None,
        excluded_names = None,
        excluded_namespaces = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn render_pod_list_view(
        &self,
        py: Python<'_>,
        view: &ResponseView,
        now_unix_seconds: f64,
        namespace: Option<&str>,
        label_selector: Option<&str>,
        name: Option<&str>,
        excluded_names: Option<&Bound<'_, PyAny>>,
        excluded_namespaces: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyBytes>> {
        let now = RequestTime::from_unix_seconds_f64(now_unix_seconds);
        let view = view.view;
        let excluded_names = extract_exclusions(excluded_names)?;
        let excluded_namespaces = extract_exclusions(excluded_namespaces)?;
        let body: Result<Vec<u8>, String> = py.detach(|| {
            let selector = parse_selector(label_selector)?;
            let selection = PodSelection {
                excluded_names: Some(&excluded_names).filter(|names| !names.is_empty()),
                excluded_namespaces: Some(&excluded_namespaces)
                    .filter(|namespaces| !namespaces.is_empty()),
                ..PodSelection::new(namespace, &selector, name)
            };
            Ok(self.read().render_pod_list_view(view, &selection, now))
        });
        body.map(|body| into_bytes(py, body))
            .map_err(LabelSelectorError::new_err)
    }

    fn render_pod_view(
        &self,
        py: Python<'_>,
        view: &ResponseView,
        now_unix_seconds: f64,
        namespace: &str,
        name: &str,
    ) -> Option<Py<PyBytes>> {
        let now = RequestTime::from_unix_seconds_f64(now_unix_seconds);
        let view = view.view;
        let body = py.detach(|| self.read().render_pod_view(view, namespace, name, now));
        body.map(|body| into_bytes(py, body))
    }

    /// Per-bucket (non-cumulative) counts for the 20 upper bounds then +Inf (21 entries), and the
    /// sum of observed seconds, since the store was created.
    fn freshness_histogram(&self, py: Python<'_>) -> (Vec<u64>, f64) {
        let counts = py.detach(|| self.read().freshness());
        (counts.buckets.to_vec(), counts.sum_seconds)
    }

    fn stats(&self, py: Python<'_>) -> StoreStats {
        let stats = py.detach(|| self.read().stats());
        StoreStats {
            nodes: stats.nodes,
            node_points: stats.node_points,
            pods: stats.pods,
            containers: stats.containers,
            container_points: stats.container_points,
        }
    }

    fn ready(&self, py: Python<'_>) -> bool {
        py.detach(|| self.read().ready())
    }
}

#[pyfunction]
fn format_cpu_quantity(nanocores: u64) -> String {
    format::format_cpu_quantity(nanocores)
}

#[pyfunction]
fn format_memory_quantity(num_bytes: u64) -> String {
    format::format_memory_quantity(num_bytes)
}

#[pyfunction]
fn format_duration(nanos: i64) -> String {
    format::format_duration(nanos)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<MetricsStore>()?;
    m.add_class::<StoreStats>()?;
    m.add_class::<ResponseView>()?;
    m.add(
        "LabelSelectorError",
        m.py().get_type::<LabelSelectorError>(),
    )?;
    m.add("FRESHNESS_BUCKETS", FRESHNESS_BUCKETS.to_vec())?;
    m.add_function(wrap_pyfunction!(format_cpu_quantity, m)?)?;
    m.add_function(wrap_pyfunction!(format_memory_quantity, m)?)?;
    m.add_function(wrap_pyfunction!(format_duration, m)?)?;
    Ok(())
}
