//! `metrics.k8s.io/v1beta1` JSON, byte for byte as metrics-server's apiserver writes it.
//!
//! Go's `encoding/json` (which the apiserver's JSON serializer uses) writes struct fields in
//! declaration order, omits `omitempty` fields that are empty, sorts map keys, writes no spaces and
//! ends the body with a newline. So an item is
//! `{"metadata":{"name","namespace","creationTimestamp","labels"},"timestamp","window","usage"}`
//! (pods: `"containers":[{"name","usage"}]` instead of `usage`), list items carry no `kind` or
//! `apiVersion`, a list's `metadata` is `{}`, and an empty list is `"items":[]`.
//!
//! Items are encoded once, when their points or labels change ([`encode_node_item`],
//! [`encode_pod_item`]); a request only concatenates them and splices in `creationTimestamp`,
//! which metrics-server sets to the request time. At 150k pods this turns a response into a
//! sequence of copies instead of 600k string escapes over memory scattered across the heap.
//!
//! The other representations a client can negotiate are in submodules: [`protobuf`] (the
//! Kubernetes protobuf encoding), [`table`] (the `meta.k8s.io` Table and metadata-only views) and
//! [`views`] (one entry point per response, whatever the representation).

use crate::format::{
    unix_seconds_of_nanos, write_cpu_quantity, write_duration, write_json_string,
    write_memory_quantity, write_rfc3339_seconds,
};

const API_VERSION: &str = "metrics.k8s.io/v1beta1";

/// What an item reports: usage over `window` ending at `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The newer point's time, Unix nanoseconds.
    pub timestamp: i64,
    /// Nanoseconds between the two points.
    pub window: i64,
    pub cpu_nanocores: u64,
    pub memory_bytes: u64,
}

/// A `NodeMetrics` object to encode.
#[derive(Debug, Clone, Copy)]
pub struct NodeItem<'a> {
    pub name: &'a str,
    /// The `labels` object, or empty to omit the field.
    pub labels_json: &'a [u8],
    pub usage: Usage,
}

/// A `PodMetrics` object to encode, without its containers (passed separately as an iterator so
/// no list is built).
#[derive(Debug, Clone, Copy)]
pub struct PodItem<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// The `labels` object, or empty to omit the field.
    pub labels_json: &'a [u8],
    /// `(timestamp, window)`; `None` is Go's zero time (`null`) and zero window (`"0s"`).
    pub time: Option<(i64, i64)>,
}

/// One item's JSON with a gap where `creationTimestamp` goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedItem {
    json: Box<[u8]>,
    /// Offset of the gap: right after `name`/`namespace` in `metadata`.
    gap: usize,
    /// Whether a field precedes the gap (`name` and `namespace` are omitempty).
    comma: bool,
}

impl EncodedItem {
    /// Writes the item from byte `from` (1 skips the opening brace).
    fn write(&self, out: &mut Vec<u8>, clock: &ResponseClock, from: usize) {
        out.extend_from_slice(&self.json[from..self.gap]);
        let field = &clock.creation_timestamp;
        out.extend_from_slice(if self.comma { field } else { &field[1..] });
        out.extend_from_slice(&self.json[self.gap..]);
    }

    fn len(&self) -> usize {
        self.json.len() + CREATION_TIMESTAMP_BYTES
    }
}

/// `,"creationTimestamp":"2026-08-04T10:15:31Z"`
const CREATION_TIMESTAMP_BYTES: usize = 43;

/// The request time as every item of one response shows it, formatted once.
struct ResponseClock {
    creation_timestamp: Vec<u8>,
}

impl ResponseClock {
    fn new(now_unix_seconds: i64) -> Self {
        let mut creation_timestamp = Vec::with_capacity(CREATION_TIMESTAMP_BYTES);
        creation_timestamp.extend_from_slice(b",\"creationTimestamp\":\"");
        write_rfc3339_seconds(&mut creation_timestamp, now_unix_seconds);
        creation_timestamp.push(b'"');
        Self { creation_timestamp }
    }
}

/// Starts an item: `{"metadata":{"name":…,"namespace":…` up to the `creationTimestamp` gap.
/// Returns the gap offset and whether a field precedes it.
fn write_metadata_head(out: &mut Vec<u8>, name: &str, namespace: &str) -> (usize, bool) {
    out.extend_from_slice(b"{\"metadata\":{");
    let mut comma = false;
    for (key, value) in [
        (&b"\"name\":"[..], name),
        (&b"\"namespace\":"[..], namespace),
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
    (out.len(), comma)
}

/// Closes `metadata` with its labels (omitted when empty).
fn write_metadata_tail(out: &mut Vec<u8>, labels_json: &[u8]) {
    if !labels_json.is_empty() {
        out.extend_from_slice(b",\"labels\":");
        out.extend_from_slice(labels_json);
    }
    out.push(b'}');
}

/// `,"timestamp":…,"window":"…"` (RFC 3339 whole seconds, Go duration).
fn write_time_window(out: &mut Vec<u8>, time: Option<(i64, i64)>) {
    out.extend_from_slice(b",\"timestamp\":");
    match time {
        Some((timestamp, _)) => {
            out.push(b'"');
            write_rfc3339_seconds(out, unix_seconds_of_nanos(timestamp));
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"window\":\"");
    write_duration(out, time.map_or(0, |(_, window)| window));
    out.push(b'"');
}

/// `{"cpu":"…","memory":"…"}` (a ResourceList: keys sorted).
fn write_resource_list(out: &mut Vec<u8>, usage: &Usage) {
    out.extend_from_slice(b"{\"cpu\":\"");
    write_cpu_quantity(out, usage.cpu_nanocores);
    out.extend_from_slice(b"\",\"memory\":\"");
    write_memory_quantity(out, usage.memory_bytes);
    out.extend_from_slice(b"\"}");
}

fn finish(out: Vec<u8>, gap: usize, comma: bool) -> EncodedItem {
    EncodedItem {
        json: out.into_boxed_slice(),
        gap,
        comma,
    }
}

/// Encodes a node's list item.
pub fn encode_node_item(item: &NodeItem<'_>) -> EncodedItem {
    let mut out = Vec::with_capacity(160 + item.name.len() + item.labels_json.len());
    let (gap, comma) = write_metadata_head(&mut out, item.name, "");
    write_metadata_tail(&mut out, item.labels_json);
    write_time_window(&mut out, Some((item.usage.timestamp, item.usage.window)));
    out.extend_from_slice(b",\"usage\":");
    write_resource_list(&mut out, &item.usage);
    out.push(b'}');
    finish(out, gap, comma)
}

/// Encodes a pod's list item with `containers` as `(name, usage)` in the order to show them.
pub fn encode_pod_item<'a>(
    item: &PodItem<'_>,
    containers: impl Iterator<Item = (&'a str, Usage)>,
) -> EncodedItem {
    let mut out =
        Vec::with_capacity(256 + item.name.len() + item.namespace.len() + item.labels_json.len());
    let (gap, comma) = write_metadata_head(&mut out, item.name, item.namespace);
    write_metadata_tail(&mut out, item.labels_json);
    write_time_window(&mut out, item.time);
    out.extend_from_slice(b",\"containers\":[");
    for (index, (name, usage)) in containers.enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        write_json_string(&mut out, name);
        out.extend_from_slice(b",\"usage\":");
        write_resource_list(&mut out, &usage);
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    finish(out, gap, comma)
}

/// The two resources metrics-server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Nodes,
    Pods,
}

impl Resource {
    fn kind(self) -> &'static str {
        match self {
            Self::Nodes => "NodeMetrics",
            Self::Pods => "PodMetrics",
        }
    }

    fn list_kind(self) -> &'static str {
        match self {
            Self::Nodes => "NodeMetricsList",
            Self::Pods => "PodMetricsList",
        }
    }
}

fn write_type_meta(out: &mut Vec<u8>, kind: &str) {
    out.extend_from_slice(b"{\"kind\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"apiVersion\":\"");
    out.extend_from_slice(API_VERSION.as_bytes());
    out.extend_from_slice(b"\",");
}

/// A `NodeMetricsList`/`PodMetricsList` response body of `items` (sorted and filtered by the
/// caller), ending with the newline the apiserver's encoder writes.
pub fn render_list(resource: Resource, items: &[&EncodedItem], now_unix_seconds: i64) -> Vec<u8> {
    let clock = ResponseClock::new(now_unix_seconds);
    let size = 100 + items.iter().map(|item| item.len() + 1).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    write_type_meta(&mut out, resource.list_kind());
    out.extend_from_slice(b"\"metadata\":{},\"items\":[");
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        item.write(&mut out, &clock, 0);
    }
    out.extend_from_slice(b"]}\n");
    out
}

/// A single `NodeMetrics`/`PodMetrics` response body (a GET by name): the item with `kind` and
/// `apiVersion` in front, ending with a newline.
pub fn render_object(resource: Resource, item: &EncodedItem, now_unix_seconds: i64) -> Vec<u8> {
    let clock = ResponseClock::new(now_unix_seconds);
    let mut out = Vec::with_capacity(100 + item.len());
    write_type_meta(&mut out, resource.kind());
    // The type meta already opened the object: skip the item's own '{'.
    item.write(&mut out, &clock, 1);
    out.push(b'\n');
    out
}

pub mod protobuf;
pub mod table;
pub mod views;

#[cfg(test)]
mod test_stores;
#[cfg(test)]
mod tests;
