//! `metrics.k8s.io/v1beta1` in the Kubernetes protobuf encoding (`application/vnd.kubernetes.protobuf`),
//! byte for byte as metrics-server's apiserver writes it, for kubectl and the HPA, which ask for
//! protobuf first.
//!
//! A body is the magic `k8s\0` followed by a `runtime.Unknown` (apimachinery
//! `runtime/generated.proto`): `typeMeta{apiVersion, kind}`, `raw` (the object's own message),
//! `contentEncoding` and `contentType` (both empty), as `runtime/serializer/protobuf` writes it.
//! The object messages are those of `k8s.io/metrics/pkg/apis/metrics/v1beta1/generated.proto`
//! and `k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto`.
//!
//! The Go side marshals with gogo-protobuf code that writes every non-pointer field, empty or
//! not (proto2 `optional` with non-nullable Go fields), so every such field here is `required`,
//! which prost also always writes. Exceptions that the Go code has, kept here:
//! - `metav1.Time` writes nothing at all for the zero time, and `{seconds, nanos: 0}` otherwise
//!   (apimachinery `time_proto.go` leaves nanoseconds out on purpose, and the generated
//!   `Timestamp` marshaller still writes the zero nanos field);
//! - maps (`labels`, `usage`) are written as sorted entries with both key and value always
//!   present, so they are repeated entry messages here (prost's own maps skip empty values,
//!   which label values often are);
//! - `resource.Quantity` is `{string: <canonical form>}` (`quantity_proto.go`).

use prost::encoding::message;
use prost::Message;

use crate::format::{unix_seconds_of_nanos, write_cpu_quantity, write_memory_quantity};
use crate::store::{Labels, NodeMetrics, PodMetrics};

use super::table::MetaVersion;
use super::{Usage, API_VERSION};

/// What precedes every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\x00";

/// `runtime.TypeMeta`.
#[derive(Clone, PartialEq, Message)]
struct TypeMeta {
    #[prost(string, required, tag = "1")]
    api_version: String,
    #[prost(string, required, tag = "2")]
    kind: String,
}

/// `runtime.Unknown`: the envelope of every body.
#[derive(Clone, PartialEq, Message)]
struct Unknown {
    #[prost(message, required, tag = "1")]
    type_meta: TypeMeta,
    #[prost(bytes = "vec", required, tag = "2")]
    raw: Vec<u8>,
    #[prost(string, required, tag = "3")]
    content_encoding: String,
    #[prost(string, required, tag = "4")]
    content_type: String,
}

/// `metav1.Time`: empty for Go's zero time, else whole seconds and a zero nanos field.
#[derive(Clone, PartialEq, Message)]
struct Time {
    #[prost(int64, optional, tag = "1")]
    seconds: Option<i64>,
    #[prost(int32, optional, tag = "2")]
    nanos: Option<i32>,
}

impl Time {
    fn at(unix_seconds: i64) -> Self {
        Self {
            seconds: Some(unix_seconds),
            nanos: Some(0),
        }
    }

    #[cfg(test)]
    fn zero() -> Self {
        Self {
            seconds: None,
            nanos: None,
        }
    }
}

/// `metav1.Duration`: nanoseconds.
#[derive(Clone, PartialEq, Message)]
struct Duration {
    #[prost(int64, required, tag = "1")]
    duration: i64,
}

/// One `map<string, string>` entry (labels).
#[derive(Clone, PartialEq, Message)]
struct StringEntry {
    #[prost(string, required, tag = "1")]
    key: String,
    #[prost(string, required, tag = "2")]
    value: String,
}

/// `resource.Quantity`: its canonical string.
#[derive(Clone, PartialEq, Message)]
struct Quantity {
    #[prost(string, required, tag = "1")]
    string: String,
}

/// One `ResourceList` (`map<string, Quantity>`) entry.
#[derive(Clone, PartialEq, Message)]
struct ResourceEntry {
    #[prost(string, required, tag = "1")]
    key: String,
    #[prost(message, required, tag = "2")]
    value: Quantity,
}

/// `metav1.ObjectMeta`, the fields metrics-server fills and every field gogo always writes.
#[derive(Clone, PartialEq, Message)]
struct ObjectMeta {
    #[prost(string, required, tag = "1")]
    name: String,
    #[prost(string, required, tag = "2")]
    generate_name: String,
    #[prost(string, required, tag = "3")]
    namespace: String,
    #[prost(string, required, tag = "4")]
    self_link: String,
    #[prost(string, required, tag = "5")]
    uid: String,
    #[prost(string, required, tag = "6")]
    resource_version: String,
    #[prost(int64, required, tag = "7")]
    generation: i64,
    #[prost(message, required, tag = "8")]
    creation_timestamp: Time,
    #[prost(message, repeated, tag = "11")]
    labels: Vec<StringEntry>,
}

/// `metav1.ListMeta` of a list that has no resourceVersion or continue token.
#[derive(Clone, PartialEq, Message)]
struct ListMeta {
    #[prost(string, required, tag = "1")]
    self_link: String,
    #[prost(string, required, tag = "2")]
    resource_version: String,
    #[prost(string, required, tag = "3")]
    r#continue: String,
}

/// `v1beta1.NodeMetrics`.
#[derive(Clone, PartialEq, Message)]
struct NodeMetricsMessage {
    #[prost(message, required, tag = "1")]
    metadata: ObjectMeta,
    #[prost(message, required, tag = "2")]
    timestamp: Time,
    #[prost(message, required, tag = "3")]
    window: Duration,
    #[prost(message, repeated, tag = "4")]
    usage: Vec<ResourceEntry>,
}

/// `v1beta1.ContainerMetrics`.
#[cfg(test)]
#[derive(Clone, PartialEq, Message)]
struct ContainerMetricsMessage {
    #[prost(string, required, tag = "1")]
    name: String,
    #[prost(message, repeated, tag = "2")]
    usage: Vec<ResourceEntry>,
}

/// `v1beta1.PodMetrics`.
#[cfg(test)]
#[derive(Clone, PartialEq, Message)]
struct PodMetricsMessage {
    #[prost(message, required, tag = "1")]
    metadata: ObjectMeta,
    #[prost(message, required, tag = "2")]
    timestamp: Time,
    #[prost(message, required, tag = "3")]
    window: Duration,
    #[prost(message, repeated, tag = "4")]
    containers: Vec<ContainerMetricsMessage>,
}

/// `metav1.PartialObjectMetadata`.
#[derive(Clone, PartialEq, Message)]
struct PartialObjectMetadataMessage {
    #[prost(message, required, tag = "1")]
    metadata: ObjectMeta,
}

/// The field number of `metadata` (ListMeta) and `items` in every list message.
const LIST_METADATA_TAG: u32 = 1;
const LIST_ITEMS_TAG: u32 = 2;

/// Replaces `target`'s text, keeping its allocation.
fn set_string(target: &mut String, value: &str) {
    target.clear();
    target.push_str(value);
}

/// Replaces `target` with what `write` produces, keeping its allocation.
fn set_written(target: &mut String, write: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::mem::take(target).into_bytes();
    bytes.clear();
    write(&mut bytes);
    *target = String::from_utf8(bytes).expect("quantities are ASCII");
}

/// Makes `items` hold exactly `count` entries, reusing the ones already there.
fn resize<T: Default>(items: &mut Vec<T>, count: usize) {
    items.truncate(count);
    items.resize_with(count, T::default);
}

/// Fills `meta` for an object named `name` in `namespace` ("" for nodes), created `now`.
fn fill_object_meta(
    meta: &mut ObjectMeta,
    name: &str,
    namespace: &str,
    labels: Option<&Labels>,
    now: i64,
) {
    set_string(&mut meta.name, name);
    set_string(&mut meta.namespace, namespace);
    meta.creation_timestamp = Time::at(now);
    let labels = labels.map(Labels::map);
    resize(&mut meta.labels, labels.map_or(0, |labels| labels.len()));
    // BTreeMap order: sorted keys, as the generated marshaller sorts them.
    for (entry, (key, value)) in meta.labels.iter_mut().zip(labels.into_iter().flatten()) {
        set_string(&mut entry.key, key);
        set_string(&mut entry.value, value);
    }
}

/// Fills `entries` with `{"cpu": …, "memory": …}` in canonical quantity form.
fn fill_resource_list(entries: &mut Vec<ResourceEntry>, usage: &Usage) {
    if entries.len() != 2 {
        resize(entries, 2);
        set_string(&mut entries[0].key, "cpu");
        set_string(&mut entries[1].key, "memory");
    }
    set_written(&mut entries[0].value.string, |out| {
        write_cpu_quantity(out, usage.cpu_nanocores)
    });
    set_written(&mut entries[1].value.string, |out| {
        write_memory_quantity(out, usage.memory_bytes)
    });
}

fn fill_node(message: &mut NodeMetricsMessage, node: &NodeMetrics<'_>, now: i64) {
    fill_object_meta(&mut message.metadata, node.name, "", Some(node.labels), now);
    message.timestamp = Time::at(unix_seconds_of_nanos(node.usage.timestamp));
    message.window = Duration {
        duration: node.usage.window,
    };
    fill_resource_list(&mut message.usage, &node.usage);
}

#[cfg(test)]
fn fill_pod(message: &mut PodMetricsMessage, pod: &PodMetrics<'_>, now: i64) {
    fill_object_meta(
        &mut message.metadata,
        pod.name,
        pod.namespace,
        pod.labels,
        now,
    );
    let (timestamp, window) = match pod.time {
        Some((timestamp, window)) => (Time::at(unix_seconds_of_nanos(timestamp)), window),
        None => (Time::zero(), 0),
    };
    message.timestamp = timestamp;
    message.window = Duration { duration: window };
    let mut count = 0;
    for container in pod.containers() {
        if count == message.containers.len() {
            message.containers.push(ContainerMetricsMessage::default());
        }
        let target = &mut message.containers[count];
        set_string(&mut target.name, container.name);
        fill_resource_list(&mut target.usage, &container.usage);
        count += 1;
    }
    message.containers.truncate(count);
}

fn node_message(node: &NodeMetrics<'_>, now: i64) -> NodeMetricsMessage {
    let mut message = NodeMetricsMessage::default();
    fill_node(&mut message, node, now);
    message
}

#[cfg(test)]
fn pod_message(pod: &PodMetrics<'_>, now: i64) -> PodMetricsMessage {
    let mut message = PodMetricsMessage::default();
    fill_pod(&mut message, pod, now);
    message
}

fn metadata_message(
    name: &str,
    namespace: &str,
    labels: Option<&Labels>,
    now: i64,
) -> PartialObjectMetadataMessage {
    let mut message = PartialObjectMetadataMessage::default();
    fill_object_meta(&mut message.metadata, name, namespace, labels, now);
    message
}

/// `k8s\0` + `runtime.Unknown{typeMeta, raw}`.
fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: TypeMeta {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        },
        raw,
        content_encoding: String::new(),
        content_type: String::new(),
    };
    let mut out = Vec::with_capacity(MAGIC.len() + unknown.encoded_len());
    out.extend_from_slice(MAGIC);
    unknown
        .encode(&mut out)
        .expect("a Vec grows to fit any message");
    out
}

/// A list message: an empty `ListMeta`, then one item per element of `items`, each filled into
/// the same message and encoded right away, so a 150k-pod list allocates per response, not per
/// pod.
fn list_body<T: Message + Default, I>(
    items: &[I],
    bytes_per_item: usize,
    mut fill: impl FnMut(&mut T, &I),
) -> Vec<u8> {
    let mut raw = Vec::with_capacity(16 + items.len() * bytes_per_item);
    message::encode(LIST_METADATA_TAG, &ListMeta::default(), &mut raw);
    let mut scratch = T::default();
    for item in items {
        fill(&mut scratch, item);
        message::encode(LIST_ITEMS_TAG, &scratch, &mut raw);
    }
    raw
}

/// A `NodeMetricsList` body of `nodes` (selected and sorted by the caller).
pub fn render_node_list(nodes: &[NodeMetrics<'_>], now_unix_seconds: i64) -> Vec<u8> {
    let raw = list_body(nodes, 256, |message, node| {
        fill_node(message, node, now_unix_seconds)
    });
    envelope(API_VERSION, "NodeMetricsList", raw)
}

/// A `NodeMetrics` body (a GET by name).
pub fn render_node(node: &NodeMetrics<'_>, now_unix_seconds: i64) -> Vec<u8> {
    let raw = node_message(node, now_unix_seconds).encode_to_vec();
    envelope(API_VERSION, "NodeMetrics", raw)
}

/// A `PodMetricsList` body of `pods` (selected and sorted by the caller).
pub fn render_pod_list(pods: &[PodMetrics<'_>], now_unix_seconds: i64) -> Vec<u8> {
    let mut list = PodList::new(now_unix_seconds, pods.len());
    for pod in pods {
        list.push(pod);
    }
    list.finish()
}

/// A `PodMetricsList` body written pod by pod, as the pods are selected.
pub struct PodList {
    raw: Vec<u8>,
    writer: PodWriter,
}

impl PodList {
    /// A list expected to hold about `expected_items` pods (the buffer is sized from it).
    pub fn new(now_unix_seconds: i64, expected_items: usize) -> Self {
        let mut raw = Vec::with_capacity(16 + expected_items.saturating_mul(112));
        message::encode(LIST_METADATA_TAG, &ListMeta::default(), &mut raw);
        Self {
            raw,
            writer: PodWriter::new(now_unix_seconds),
        }
    }

    pub fn push(&mut self, pod: &PodMetrics<'_>) {
        self.writer.write(pod);
        write_bytes_field(&mut self.raw, LIST_ITEMS_TAG, &self.writer.item);
    }

    pub fn finish(self) -> Vec<u8> {
        envelope(API_VERSION, "PodMetricsList", self.raw)
    }
}

/// A `PodMetrics` body (a GET by name).
pub fn render_pod(pod: &PodMetrics<'_>, now_unix_seconds: i64) -> Vec<u8> {
    let mut writer = PodWriter::new(now_unix_seconds);
    writer.write(pod);
    envelope(API_VERSION, "PodMetrics", writer.item)
}

/// The `PodMetrics` message written field by field, nested messages into reused buffers whose
/// lengths then prefix them: a 150k-pod list is mostly small copies. (Through prost messages,
/// each level recomputes the encoded length of everything below it and every quantity becomes a
/// `String`, which made the protobuf list slower than the JSON one.) The bytes are those of
/// [`PodMetricsMessage`]: every `required` field written, even when empty, in field order.
struct PodWriter {
    now_unix_seconds: i64,
    item: Vec<u8>,
    metadata: Vec<u8>,
    container: Vec<u8>,
    quantity: Vec<u8>,
}

/// Wire type of a length-delimited field.
const LENGTH_DELIMITED: u32 = 2;
/// Wire type of a varint field.
const VARINT: u32 = 0;

fn write_key(out: &mut Vec<u8>, field: u32, wire_type: u32) {
    prost::encoding::encode_varint(u64::from(field << 3 | wire_type), out);
}

fn write_bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    write_key(out, field, LENGTH_DELIMITED);
    prost::encoding::encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn write_varint_field(out: &mut Vec<u8>, field: u32, value: u64) {
    write_key(out, field, VARINT);
    prost::encoding::encode_varint(value, out);
}

/// `metav1.Time` as a field: `{seconds, nanos: 0}`, or an empty message for the zero time.
fn write_time_field(out: &mut Vec<u8>, field: u32, unix_seconds: Option<i64>) {
    write_key(out, field, LENGTH_DELIMITED);
    match unix_seconds {
        Some(seconds) => {
            // int64 varints carry the two's complement, as Go writes them.
            let seconds = seconds as u64;
            let length = 1 + prost::encoding::encoded_len_varint(seconds) + 2;
            prost::encoding::encode_varint(length as u64, out);
            write_varint_field(out, 1, seconds);
            write_varint_field(out, 2, 0);
        }
        None => out.push(0),
    }
}

impl PodWriter {
    fn new(now_unix_seconds: i64) -> Self {
        Self {
            now_unix_seconds,
            item: Vec::with_capacity(256),
            metadata: Vec::with_capacity(128),
            container: Vec::with_capacity(64),
            quantity: Vec::with_capacity(24),
        }
    }

    /// Leaves the message of `pod` in `self.item`.
    fn write(&mut self, pod: &PodMetrics<'_>) {
        self.write_metadata(pod.name, pod.namespace, pod.labels);
        self.item.clear();
        write_bytes_field(&mut self.item, 1, &self.metadata);
        let (timestamp, window) = match pod.time {
            Some((timestamp, window)) => (Some(unix_seconds_of_nanos(timestamp)), window),
            None => (None, 0),
        };
        write_time_field(&mut self.item, 2, timestamp);
        // metav1.Duration {duration}.
        let window = window as u64;
        write_key(&mut self.item, 3, LENGTH_DELIMITED);
        prost::encoding::encode_varint(
            1 + prost::encoding::encoded_len_varint(window) as u64,
            &mut self.item,
        );
        write_varint_field(&mut self.item, 1, window);
        for container in pod.containers() {
            self.container.clear();
            write_bytes_field(&mut self.container, 1, container.name.as_bytes());
            self.write_resource_entry(2, "cpu", |out| {
                write_cpu_quantity(out, container.usage.cpu_nanocores)
            });
            self.write_resource_entry(2, "memory", |out| {
                write_memory_quantity(out, container.usage.memory_bytes)
            });
            write_bytes_field(&mut self.item, 4, &self.container);
        }
    }

    /// `ObjectMeta` into `self.metadata`.
    fn write_metadata(&mut self, name: &str, namespace: &str, labels: Option<&Labels>) {
        let out = &mut self.metadata;
        out.clear();
        write_bytes_field(out, 1, name.as_bytes());
        write_bytes_field(out, 2, b"");
        write_bytes_field(out, 3, namespace.as_bytes());
        write_bytes_field(out, 4, b"");
        write_bytes_field(out, 5, b"");
        write_bytes_field(out, 6, b"");
        write_varint_field(out, 7, 0);
        write_time_field(out, 8, Some(self.now_unix_seconds));
        for (key, value) in labels.map(Labels::map).into_iter().flatten() {
            let entry_length = 2
                + prost::encoding::encoded_len_varint(key.len() as u64)
                + key.len()
                + prost::encoding::encoded_len_varint(value.len() as u64)
                + value.len();
            write_key(out, 11, LENGTH_DELIMITED);
            prost::encoding::encode_varint(entry_length as u64, out);
            write_bytes_field(out, 1, key.as_bytes());
            write_bytes_field(out, 2, value.as_bytes());
        }
    }

    /// One `ResourceList` entry `{key, value: Quantity{string}}` into `self.container`.
    fn write_resource_entry(&mut self, field: u32, key: &str, quantity: impl FnOnce(&mut Vec<u8>)) {
        self.quantity.clear();
        quantity(&mut self.quantity);
        let quantity_length = 1
            + prost::encoding::encoded_len_varint(self.quantity.len() as u64)
            + self.quantity.len();
        let entry_length = 2
            + key.len()
            + 1
            + prost::encoding::encoded_len_varint(quantity_length as u64)
            + quantity_length;
        let out = &mut self.container;
        write_key(out, field, LENGTH_DELIMITED);
        prost::encoding::encode_varint(entry_length as u64, out);
        write_bytes_field(out, 1, key.as_bytes());
        write_key(out, 2, LENGTH_DELIMITED);
        prost::encoding::encode_varint(quantity_length as u64, out);
        write_bytes_field(out, 1, &self.quantity);
    }
}

/// A `PartialObjectMetadata` body of a node.
pub fn render_partial_object_metadata_of_node(
    node: &NodeMetrics<'_>,
    version: MetaVersion,
    now_unix_seconds: i64,
) -> Vec<u8> {
    let message = metadata_message(node.name, "", Some(node.labels), now_unix_seconds);
    envelope(
        version.api_version(),
        "PartialObjectMetadata",
        message.encode_to_vec(),
    )
}

/// A `PartialObjectMetadata` body of a pod.
pub fn render_partial_object_metadata_of_pod(
    pod: &PodMetrics<'_>,
    version: MetaVersion,
    now_unix_seconds: i64,
) -> Vec<u8> {
    let message = metadata_message(pod.name, pod.namespace, pod.labels, now_unix_seconds);
    envelope(
        version.api_version(),
        "PartialObjectMetadata",
        message.encode_to_vec(),
    )
}

/// A `PartialObjectMetadataList` body of nodes.
pub fn render_partial_object_metadata_list_of_nodes(
    nodes: &[NodeMetrics<'_>],
    version: MetaVersion,
    now_unix_seconds: i64,
) -> Vec<u8> {
    let raw = list_body(
        nodes,
        128,
        |message: &mut PartialObjectMetadataMessage, node| {
            fill_object_meta(
                &mut message.metadata,
                node.name,
                "",
                Some(node.labels),
                now_unix_seconds,
            )
        },
    );
    envelope(version.api_version(), "PartialObjectMetadataList", raw)
}

/// A `PartialObjectMetadataList` body of pods.
pub fn render_partial_object_metadata_list_of_pods(
    pods: &[PodMetrics<'_>],
    version: MetaVersion,
    now_unix_seconds: i64,
) -> Vec<u8> {
    let raw = list_body(
        pods,
        128,
        |message: &mut PartialObjectMetadataMessage, pod| {
            fill_object_meta(
                &mut message.metadata,
                pod.name,
                pod.namespace,
                pod.labels,
                now_unix_seconds,
            )
        },
    );
    envelope(version.api_version(), "PartialObjectMetadataList", raw)
}

#[cfg(test)]
mod tests;
