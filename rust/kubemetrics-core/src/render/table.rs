//! `meta.k8s.io` views of the metrics: the `Table` that `kubectl get nodes.metrics.k8s.io` asks
//! for, and `PartialObjectMetadata`/`PartialObjectMetadataList` for metadata-only clients, as JSON
//! byte for byte as metrics-server's apiserver writes them.
//!
//! The table follows metrics-server `pkg/api/table.go`: columns `Name`, one per usage resource
//! (sorted: `cpu`, `memory`), `Window`; a pod's cells hold the sum over its containers
//! (`Quantity.Add`, whose result prints like any quantity of that total). The apiserver
//! (`handlers/response.go asTable`) then replaces each row's object according to `includeObject`:
//! a `PartialObjectMetadata` by default, the full object, or nothing (`"object":null`, because
//! `omitempty` does not apply to the `RawExtension` struct).
//!
//! Key order is Go struct order: `Table{kind, apiVersion, metadata, columnDefinitions, rows}`,
//! `TableColumnDefinition{name, type, format, description, priority}`, `TableRow{cells, object}`.
//! An empty table has `"columnDefinitions":null,"rows":null` (nil slices, no `omitempty`).

use crate::format::{write_cpu_quantity, write_duration, write_json_string, write_memory_quantity};
use crate::store::{NodeMetrics, PodMetrics};

use super::views::{render_node_object, render_pod_object};
use super::ResponseClock;

/// The `meta.k8s.io` version a client asked for (`v=` in its Accept header); it names the
/// version of the `Table` and of every `PartialObjectMetadata` in the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaVersion {
    V1,
    V1beta1,
}

impl MetaVersion {
    pub fn api_version(self) -> &'static str {
        match self {
            Self::V1 => "meta.k8s.io/v1",
            Self::V1beta1 => "meta.k8s.io/v1beta1",
        }
    }
}

/// `includeObject`: what each row carries besides its cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowObject {
    /// `None`: `"object":null`.
    Nothing,
    /// `Metadata` (the default): a `PartialObjectMetadata`.
    Metadata,
    /// `Object`: the full `NodeMetrics`/`PodMetrics` with its kind and apiVersion.
    Object,
}

/// How to render a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableOptions {
    pub version: MetaVersion,
    pub row_object: RowObject,
}

/// The identity every metadata view shows: metrics-server copies name, namespace and labels and
/// stamps `creationTimestamp` with the request time.
struct MetadataFields<'a> {
    name: &'a str,
    namespace: &'a str,
    labels_json: &'a [u8],
}

impl<'a> MetadataFields<'a> {
    fn of_node(node: &NodeMetrics<'a>) -> Self {
        Self {
            name: node.name,
            namespace: "",
            labels_json: node.labels.json(),
        }
    }

    fn of_pod(pod: &PodMetrics<'a>) -> Self {
        Self {
            name: pod.name,
            namespace: pod.namespace,
            labels_json: pod.labels.map_or(&[], |labels| labels.json()),
        }
    }

    /// `{"name":…,"namespace":…,"creationTimestamp":…,"labels":…}` (ObjectMeta order; name,
    /// namespace and labels are omitempty).
    fn write(&self, out: &mut Vec<u8>, clock: &ResponseClock) {
        out.push(b'{');
        let mut comma = false;
        for (key, value) in [
            (&b"\"name\":"[..], self.name),
            (&b"\"namespace\":"[..], self.namespace),
        ] {
            if !value.is_empty() {
                if comma {
                    out.push(b',');
                }
                out.extend_from_slice(key);
                write_json_string(out, value);
                comma = true;
            }
        }
        let field = &clock.creation_timestamp;
        out.extend_from_slice(if comma { field } else { &field[1..] });
        if !self.labels_json.is_empty() {
            out.extend_from_slice(b",\"labels\":");
            out.extend_from_slice(self.labels_json);
        }
        out.push(b'}');
    }
}

/// `{"kind":"PartialObjectMetadata","apiVersion":…,"metadata":{…}}`
fn write_partial_object_metadata(
    out: &mut Vec<u8>,
    metadata: &MetadataFields<'_>,
    version: MetaVersion,
    clock: &ResponseClock,
) {
    out.extend_from_slice(b"{\"kind\":\"PartialObjectMetadata\",\"apiVersion\":\"");
    out.extend_from_slice(version.api_version().as_bytes());
    out.extend_from_slice(b"\",\"metadata\":");
    metadata.write(out, clock);
    out.push(b'}');
}

/// A single `PartialObjectMetadata` response body (a GET by name), with the encoder's newline.
pub fn render_partial_object_metadata_of_node(
    node: &NodeMetrics<'_>,
    version: MetaVersion,
    now_unix_seconds: i64,
) -> Vec<u8> {
    let clock = ResponseClock::new(now_unix_seconds);
    let mut out = Vec::with_capacity(256);
    write_partial_object_metadata(&mut out, &MetadataFields::of_node(node), version, &clock);
    out.push(b'\n');
    out
}

/// [`render_partial_object_metadata_of_node`] for a pod.
pub fn render_partial_object_metadata_of_pod(
    pod: &PodMetrics<'_>,
    version: MetaVersion,
    now_unix_seconds: i64,
) -> Vec<u8> {
    let clock = ResponseClock::new(now_unix_seconds);
    let mut out = Vec::with_capacity(256);
    write_partial_object_metadata(&mut out, &MetadataFields::of_pod(pod), version, &clock);
    out.push(b'\n');
    out
}

fn render_partial_object_metadata_list<'a>(
    items: impl ExactSizeIterator<Item = MetadataFields<'a>>,
    version: MetaVersion,
    now_unix_seconds: i64,
) -> Vec<u8> {
    let clock = ResponseClock::new(now_unix_seconds);
    let mut out = Vec::with_capacity(128 + items.len() * 192);
    out.extend_from_slice(b"{\"kind\":\"PartialObjectMetadataList\",\"apiVersion\":\"");
    out.extend_from_slice(version.api_version().as_bytes());
    out.extend_from_slice(b"\",\"metadata\":{},\"items\":");
    if items.len() == 0 {
        // asPartialObjectMetadataList appends to a nil slice: an empty list encodes as null.
        out.extend_from_slice(b"null");
    } else {
        out.push(b'[');
        for (index, metadata) in items.enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_partial_object_metadata(&mut out, &metadata, version, &clock);
        }
        out.push(b']');
    }
    out.extend_from_slice(b"}\n");
    out
}

/// A `PartialObjectMetadataList` of nodes, with the encoder's newline.
pub fn render_partial_object_metadata_list_of_nodes(
    nodes: &[NodeMetrics<'_>],
    version: MetaVersion,
    now_unix_seconds: i64,
) -> Vec<u8> {
    render_partial_object_metadata_list(
        nodes.iter().map(MetadataFields::of_node),
        version,
        now_unix_seconds,
    )
}

/// A `PartialObjectMetadataList` of pods, with the encoder's newline.
pub fn render_partial_object_metadata_list_of_pods(
    pods: &[PodMetrics<'_>],
    version: MetaVersion,
    now_unix_seconds: i64,
) -> Vec<u8> {
    render_partial_object_metadata_list(
        pods.iter().map(MetadataFields::of_pod),
        version,
        now_unix_seconds,
    )
}

/// What a row is made of.
#[derive(Clone, Copy)]
enum RowSource<'r, 'a> {
    Node(&'r NodeMetrics<'a>),
    Pod(&'r PodMetrics<'a>),
}

impl<'r, 'a> RowSource<'r, 'a> {
    fn metadata(self) -> MetadataFields<'a> {
        match self {
            Self::Node(node) => MetadataFields::of_node(node),
            Self::Pod(pod) => MetadataFields::of_pod(pod),
        }
    }

    /// `(cpu nanocores, memory bytes)`; a pod's is the sum over its containers, `None` when
    /// every container was skipped (its usage map is then empty).
    fn usage(self) -> Option<(u64, u64)> {
        match self {
            Self::Node(node) => Some((node.usage.cpu_nanocores, node.usage.memory_bytes)),
            Self::Pod(pod) => pod.containers().fold(None, |total, container| {
                let (cpu, memory) = total.unwrap_or((0, 0));
                Some((
                    cpu.saturating_add(container.usage.cpu_nanocores),
                    memory.saturating_add(container.usage.memory_bytes),
                ))
            }),
        }
    }

    fn has_usage(self) -> bool {
        match self {
            Self::Node(_) => true,
            Self::Pod(pod) => pod.containers().next().is_some(),
        }
    }

    fn window(self) -> i64 {
        match self {
            Self::Node(node) => node.usage.window,
            Self::Pod(pod) => pod.time.map_or(0, |(_, window)| window),
        }
    }

    fn object(self, now_unix_seconds: i64) -> Vec<u8> {
        match self {
            Self::Node(node) => render_node_object(node, now_unix_seconds),
            Self::Pod(pod) => render_pod_object(pod, now_unix_seconds),
        }
    }
}

const NAME_COLUMN: &[u8] = br#"{"name":"Name","type":"string","format":"name","description":"Name of the resource","priority":0}"#;
const USAGE_COLUMNS: &[u8] = br#",{"name":"cpu","type":"string","format":"quantity","description":"","priority":0},{"name":"memory","type":"string","format":"quantity","description":"","priority":0}"#;
const WINDOW_COLUMN: &[u8] =
    br#",{"name":"Window","type":"string","format":"duration","description":"","priority":0}"#;

fn render_table(
    rows: &[RowSource<'_, '_>],
    options: TableOptions,
    now_unix_seconds: i64,
) -> Vec<u8> {
    let clock = ResponseClock::new(now_unix_seconds);
    let mut out = Vec::with_capacity(512 + rows.len() * 256);
    out.extend_from_slice(b"{\"kind\":\"Table\",\"apiVersion\":\"");
    out.extend_from_slice(options.version.api_version().as_bytes());
    out.extend_from_slice(b"\",\"metadata\":{},\"columnDefinitions\":");
    if rows.is_empty() {
        out.extend_from_slice(b"null,\"rows\":null}\n");
        return out;
    }
    // table.go takes the usage columns from the first item that has any usage; until one is
    // seen, rows carry only name and window, and once seen, an item without usage shows "0"s.
    let first_with_usage = rows.iter().position(|row| row.has_usage());
    out.push(b'[');
    out.extend_from_slice(NAME_COLUMN);
    if first_with_usage.is_some() {
        out.extend_from_slice(USAGE_COLUMNS);
    }
    out.extend_from_slice(WINDOW_COLUMN);
    out.extend_from_slice(b"],\"rows\":[");
    for (index, row) in rows.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        let metadata = row.metadata();
        out.extend_from_slice(b"{\"cells\":[");
        write_json_string(&mut out, metadata.name);
        if first_with_usage.is_some_and(|first| index >= first) {
            let (cpu, memory) = row.usage().unwrap_or((0, 0));
            out.extend_from_slice(b",\"");
            write_cpu_quantity(&mut out, cpu);
            out.extend_from_slice(b"\",\"");
            write_memory_quantity(&mut out, memory);
            out.push(b'"');
        }
        out.extend_from_slice(b",\"");
        write_duration(&mut out, row.window());
        out.extend_from_slice(b"\"],\"object\":");
        match options.row_object {
            RowObject::Nothing => out.extend_from_slice(b"null"),
            RowObject::Metadata => {
                write_partial_object_metadata(&mut out, &metadata, options.version, &clock)
            }
            RowObject::Object => {
                let object = row.object(now_unix_seconds);
                // Embedded with json.Marshal inside the table: no trailing newline.
                out.extend_from_slice(object.strip_suffix(b"\n").unwrap_or(&object));
            }
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}\n");
    out
}

/// The `Table` of `nodes` (already selected and sorted), with the encoder's newline.
pub fn render_node_table(
    nodes: &[NodeMetrics<'_>],
    options: TableOptions,
    now_unix_seconds: i64,
) -> Vec<u8> {
    let rows: Vec<RowSource<'_, '_>> = nodes.iter().map(RowSource::Node).collect();
    render_table(&rows, options, now_unix_seconds)
}

/// The `Table` of `pods` (already selected and sorted), with the encoder's newline. Cells sum
/// the containers' usage.
pub fn render_pod_table(
    pods: &[PodMetrics<'_>],
    options: TableOptions,
    now_unix_seconds: i64,
) -> Vec<u8> {
    let rows: Vec<RowSource<'_, '_>> = pods.iter().map(RowSource::Pod).collect();
    render_table(&rows, options, now_unix_seconds)
}

#[cfg(test)]
mod tests;
