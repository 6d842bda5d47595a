//! `metrics.k8s.io/v1beta1` JSON, byte for byte as metrics-server's apiserver writes it.
//!
//! Go's `encoding/json` (which the apiserver's JSON serializer uses) writes struct fields in
//! declaration order, omits `omitempty` fields that are empty, sorts map keys, writes no spaces and
//! ends the body with a newline. So an item is
//! `{"metadata":{"name","namespace","creationTimestamp","labels"},"timestamp","window","usage"}`
//! (pods: `"containers":[{"name","usage"}]` instead of `usage`), list items carry no `kind` or
//! `apiVersion`, a list's `metadata` is `{}`, and an empty list is `"items":[]`.
//!
//! Items are encoded on each request, straight from the store's points into one buffer
//! ([`JsonList`], [`render_node_json`], [`render_pod_json`]); `creationTimestamp`, which
//! metrics-server sets to the request time, is formatted once per response, and so is each run of
//! items sharing a timestamp and window (the pods of one scrape).
//!
//! The other representations a client can negotiate are in submodules: [`protobuf`] (the
//! Kubernetes protobuf encoding), [`table`] (the `meta.k8s.io` Table and metadata-only views) and
//! [`views`] (one entry point per response, whatever the representation).

use crate::format::{
    unix_seconds_of_nanos, write_cpu_quantity, write_duration, write_json_string,
    write_memory_quantity, write_rfc3339_seconds,
};

const API_VERSION: &str = "metrics.k8s.io/v1beta1";

/// When a request is served: its whole seconds stamp every item's `creationTimestamp`, and its
/// nanoseconds time the freshness of each item returned ([`freshness`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestTime {
    pub unix_seconds: i64,
    pub unix_nanos: i64,
}

impl RequestTime {
    /// A request time from a float clock reading (Python's `time.time()`).
    pub fn from_unix_seconds_f64(seconds: f64) -> Self {
        Self {
            unix_seconds: seconds.floor() as i64,
            unix_nanos: (seconds * 1e9) as i64,
        }
    }
}

/// A request at a whole second.
impl From<i64> for RequestTime {
    fn from(unix_seconds: i64) -> Self {
        Self {
            unix_seconds,
            unix_nanos: unix_seconds.saturating_mul(1_000_000_000),
        }
    }
}

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

/// The request time as every item of one response shows it, formatted once.
struct ResponseClock {
    creation_timestamp: Vec<u8>,
}

impl ResponseClock {
    /// Writes `,"creationTimestamp":"…"`, without the comma when no field precedes it.
    fn write_creation_timestamp(&self, out: &mut Vec<u8>, comma: bool) {
        let field = &self.creation_timestamp;
        out.extend_from_slice(if comma { field } else { &field[1..] });
    }

    fn new(now_unix_seconds: i64) -> Self {
        // `,"creationTimestamp":"2026-08-04T10:15:31Z"`
        let mut creation_timestamp = Vec::with_capacity(43);
        creation_timestamp.extend_from_slice(b",\"creationTimestamp\":\"");
        write_rfc3339_seconds(&mut creation_timestamp, now_unix_seconds);
        creation_timestamp.push(b'"');
        Self { creation_timestamp }
    }
}

/// `{"metadata":{"name":…,"namespace":…` (without the brace when `open` is false: the type meta
/// of a single object opened it). Returns whether a field was written.
fn write_metadata_open(out: &mut Vec<u8>, name: &str, namespace: &str, open: bool) -> bool {
    if open {
        out.push(b'{');
    }
    out.extend_from_slice(b"\"metadata\":{");
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
    comma
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

/// The last `,"timestamp":…,"window":…` written, reused while consecutive items share their
/// second and window, as the pods of one scrape mostly do.
#[derive(Default)]
struct TimeWindowCache {
    key: Option<Option<(i64, i64)>>,
    bytes: Vec<u8>,
}

impl TimeWindowCache {
    fn write(&mut self, out: &mut Vec<u8>, time: Option<(i64, i64)>) {
        let key = time.map(|(timestamp, window)| (unix_seconds_of_nanos(timestamp), window));
        if self.key != Some(key) {
            self.bytes.clear();
            write_time_window(&mut self.bytes, time);
            self.key = Some(key);
        }
        out.extend_from_slice(&self.bytes);
    }
}

/// `{"cpu":"…","memory":"…"}` (a ResourceList: keys sorted).
fn write_resource_list(out: &mut Vec<u8>, usage: &Usage) {
    out.extend_from_slice(b"{\"cpu\":\"");
    write_cpu_quantity(out, usage.cpu_nanocores);
    out.extend_from_slice(b"\",\"memory\":\"");
    write_memory_quantity(out, usage.memory_bytes);
    out.extend_from_slice(b"\"}");
}

/// Writes a node item in full, `creationTimestamp` included; `open` as in [`write_metadata_open`].
fn write_node_item(
    out: &mut Vec<u8>,
    item: &NodeItem<'_>,
    clock: &ResponseClock,
    time_window: &mut TimeWindowCache,
    open: bool,
) {
    let comma = write_metadata_open(out, item.name, "", open);
    clock.write_creation_timestamp(out, comma);
    write_metadata_tail(out, item.labels_json);
    time_window.write(out, Some((item.usage.timestamp, item.usage.window)));
    out.extend_from_slice(b",\"usage\":");
    write_resource_list(out, &item.usage);
    out.push(b'}');
}

/// Writes a pod item in full, `creationTimestamp` included; `open` as in [`write_metadata_open`].
fn write_pod_item<'a>(
    out: &mut Vec<u8>,
    item: &PodItem<'_>,
    containers: impl Iterator<Item = (&'a str, Usage)>,
    clock: &ResponseClock,
    time_window: &mut TimeWindowCache,
    open: bool,
) {
    let comma = write_metadata_open(out, item.name, item.namespace, open);
    clock.write_creation_timestamp(out, comma);
    write_metadata_tail(out, item.labels_json);
    time_window.write(out, item.time);
    write_containers(out, containers);
    out.push(b'}');
}

/// `,"containers":[{"name":…,"usage":{…}},…]`
fn write_containers<'a>(out: &mut Vec<u8>, containers: impl Iterator<Item = (&'a str, Usage)>) {
    out.extend_from_slice(b",\"containers\":[");
    for (index, (name, usage)) in containers.enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        write_json_string(out, name);
        out.extend_from_slice(b",\"usage\":");
        write_resource_list(out, &usage);
        out.push(b'}');
    }
    out.push(b']');
}

/// A `NodeMetricsList`/`PodMetricsList` body written item by item, each encoded as it is added,
/// so a list allocates once whatever its length.
pub struct JsonList {
    out: Vec<u8>,
    clock: ResponseClock,
    time_window: TimeWindowCache,
    empty: bool,
}

impl JsonList {
    /// A list expected to hold about `expected_items` items (the buffer is sized from it).
    pub fn new(resource: Resource, now_unix_seconds: i64, expected_items: usize) -> Self {
        let per_item = match resource {
            Resource::Nodes => 256,
            Resource::Pods => 240,
        };
        let mut out = Vec::with_capacity(100 + expected_items.saturating_mul(per_item));
        write_type_meta(&mut out, resource.list_kind());
        out.extend_from_slice(b"\"metadata\":{},\"items\":[");
        Self {
            out,
            clock: ResponseClock::new(now_unix_seconds),
            time_window: TimeWindowCache::default(),
            empty: true,
        }
    }

    fn separate(&mut self) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
    }

    pub fn push_node(&mut self, item: &NodeItem<'_>) {
        self.separate();
        write_node_item(
            &mut self.out,
            item,
            &self.clock,
            &mut self.time_window,
            true,
        );
    }

    pub fn push_pod<'a>(
        &mut self,
        item: &PodItem<'_>,
        containers: impl Iterator<Item = (&'a str, Usage)>,
    ) {
        self.separate();
        write_pod_item(
            &mut self.out,
            item,
            containers,
            &self.clock,
            &mut self.time_window,
            true,
        );
    }

    /// The body, ending with the newline the apiserver's encoder writes.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(b"]}\n");
        self.out
    }
}

/// A single `NodeMetrics` JSON body (a GET by name).
pub fn render_node_json(item: &NodeItem<'_>, now_unix_seconds: i64) -> Vec<u8> {
    let clock = ResponseClock::new(now_unix_seconds);
    let mut out = Vec::with_capacity(320 + item.name.len() + item.labels_json.len());
    write_type_meta(&mut out, Resource::Nodes.kind());
    write_node_item(
        &mut out,
        item,
        &clock,
        &mut TimeWindowCache::default(),
        false,
    );
    out.push(b'\n');
    out
}

/// A single `PodMetrics` JSON body (a GET by name).
pub fn render_pod_json<'a>(
    item: &PodItem<'_>,
    containers: impl Iterator<Item = (&'a str, Usage)>,
    now_unix_seconds: i64,
) -> Vec<u8> {
    let clock = ResponseClock::new(now_unix_seconds);
    let mut out =
        Vec::with_capacity(400 + item.name.len() + item.namespace.len() + item.labels_json.len());
    write_type_meta(&mut out, Resource::Pods.kind());
    write_pod_item(
        &mut out,
        item,
        containers,
        &clock,
        &mut TimeWindowCache::default(),
        false,
    );
    out.push(b'\n');
    out
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

pub mod freshness;
pub mod protobuf;
pub mod table;
pub mod views;

#[cfg(test)]
mod test_stores;
#[cfg(test)]
mod tests;
