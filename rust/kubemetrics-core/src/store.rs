//! The in-memory metrics store: two points (last, prev) per node and per container, from which
//! usage follows: CPU = Δcumulative / Δtime, memory = the latest working set.
//!
//! The rules are metrics-server's `pkg/storage` (node.go, pod.go, types.go), adapted from one
//! global tick to per-node ingestion: each `NodeSample` updates that node's point and replaces
//! every pod that node reported before, exactly as metrics-server's wholesale map rebuild would if
//! the batch held only that node. Node and pod metadata (labels) come from the inventory and live
//! beside the points; only nodes with metadata are served.
//!
//! metrics-server computes usage on every read. Here usage is computed, and the API item encoded
//! (`render`), whenever a node's or pod's points or labels change, so a request only selects and
//! concatenates items: at 150k pods that is the difference between a copy and a recomputation.

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use crate::format::write_json_string;
pub use crate::render::Usage;
use crate::render::{
    encode_node_item, encode_pod_item, render_list, render_object, EncodedItem, NodeItem, PodItem,
    Resource,
};
use crate::sample::{NodeSample, PodSample, ResourcePoint};
use crate::selector::LabelSelector;

/// metrics-server's `freshContainerMinMetricsResolution`: a container younger than this has no
/// synthetic previous point (its counters are too noisy to rate).
const FRESH_CONTAINER_MIN_AGE_NANOS: i64 = 10_000_000_000;

/// A container start time the kubelet did not report. Go keeps it as the zero `time.Time`, which is
/// before every real instant; `i64::MIN` orders the same way in every comparison the store makes.
const UNKNOWN_START_TIME: i64 = i64::MIN;

/// One reading: cumulative CPU and working set at `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    /// Unix nanoseconds.
    pub timestamp: i64,
    /// Unix nanoseconds; `i64::MIN` for nodes and when unknown (see `UNKNOWN_START_TIME`).
    pub start_time: i64,
    /// Core-nanoseconds.
    pub cumulative_cpu: u64,
    /// Bytes.
    pub memory: u64,
}

impl Point {
    /// The reading metrics-server would keep, or `None` when it drops it at decode time: a zero or
    /// missing CPU counter or working set (kubelet reports zeros for containers it has not
    /// measured yet, and HPA must see those as missing, not as idle). `zero_memory_kept` lets a
    /// working set reported as exactly 0 through (`StoreConfig::keep_zero_memory_containers`).
    fn from_reported(reported: &ResourcePoint, zero_memory_kept: bool) -> Option<Self> {
        let cumulative_cpu = reported.cumulative_cpu_nanos.filter(|&cpu| cpu != 0)?;
        let memory = reported
            .memory_working_set_bytes
            .filter(|&bytes| bytes != 0 || zero_memory_kept)?;
        let start_time = match reported.start_time_unix_nanos {
            0 => UNKNOWN_START_TIME,
            start => start,
        };
        Some(Self {
            timestamp: reported.timestamp_unix_nanos,
            start_time,
            cumulative_cpu,
            memory,
        })
    }

    /// Node points additionally need a timestamp (decode.go drops the node otherwise). A node's
    /// zero working set always drops it: no option relaxes the node rule.
    fn from_reported_node(reported: &ResourcePoint) -> Option<Self> {
        Self::from_reported(reported, false).filter(|point| point.timestamp != 0)
    }
}

/// metrics-server's `resourceUsage`: `None` (the point is skipped) when the start time or the
/// cumulative CPU went backwards, which means the counter was reset between the two readings.
pub fn resource_usage(last: &Point, prev: &Point) -> Option<Usage> {
    if last.start_time < prev.start_time || last.cumulative_cpu < prev.cumulative_cpu {
        return None;
    }
    let window = last.timestamp.saturating_sub(prev.timestamp);
    // Same float arithmetic as Go's `float64(Δ) / window.Seconds()`, truncated to an integer, so
    // the printed nanocores match metrics-server digit for digit.
    let seconds = (window / 1_000_000_000) as f64 + (window % 1_000_000_000) as f64 / 1e9;
    let rate = (last.cumulative_cpu - prev.cumulative_cpu) as f64 / seconds;
    Some(Usage {
        timestamp: last.timestamp,
        window,
        cpu_nanocores: rate as u64,
        memory_bytes: last.memory,
    })
}

/// Labels of a node or pod from the inventory, with their JSON object pre-rendered once so that
/// responses copy bytes instead of escaping strings on every request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels {
    map: BTreeMap<String, String>,
    json: Vec<u8>,
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

impl Labels {
    pub fn new(map: BTreeMap<String, String>) -> Self {
        // Go's encoding/json writes map keys sorted, as BTreeMap iterates them.
        let mut json = Vec::new();
        if !map.is_empty() {
            json.push(b'{');
            for (index, (key, value)) in map.iter().enumerate() {
                if index > 0 {
                    json.push(b',');
                }
                write_json_string(&mut json, key);
                json.push(b':');
                write_json_string(&mut json, value);
            }
            json.push(b'}');
        }
        Self { map, json }
    }

    pub fn map(&self) -> &BTreeMap<String, String> {
        &self.map
    }

    /// The `labels` JSON object, or empty when there are no labels (the field is then omitted).
    pub fn json(&self) -> &[u8] {
        &self.json
    }
}

/// A pod's identity; orders by namespace, then name, as pod lists are sorted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
}

impl PodKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct NodePoints {
    last: Point,
    prev: Option<Point>,
}

#[derive(Debug, Default)]
struct NodeSlot {
    points: Option<NodePoints>,
    labels: Option<Labels>,
    /// The list item, present exactly when the node is servable (metadata and usage).
    encoded: Option<EncodedItem>,
    /// Pods this node reported in its latest sample, sorted. A pod listed here may since have
    /// been reported by another node (a re-created StatefulSet pod); it is then left alone.
    pods: Vec<PodKey>,
}

impl NodeSlot {
    fn is_empty(&self) -> bool {
        self.points.is_none() && self.labels.is_none() && self.pods.is_empty()
    }
}

#[derive(Debug, Clone)]
struct ContainerPoints {
    name: String,
    last: Point,
    prev: Option<Point>,
}

#[derive(Debug)]
struct PodPoints {
    /// The node whose sample last reported this pod.
    node: String,
    /// Sorted by name.
    containers: Vec<ContainerPoints>,
}

impl PodPoints {
    fn container(&self, name: &str) -> Option<&ContainerPoints> {
        self.containers
            .binary_search_by(|container| container.name.as_str().cmp(name))
            .ok()
            .map(|index| &self.containers[index])
    }

    /// metrics-server serves a pod only when every container has two points; one container
    /// without a previous point (just restarted, just appeared) hides the whole pod.
    fn is_servable(&self) -> bool {
        !self.containers.is_empty()
            && self
                .containers
                .iter()
                .all(|container| container.prev.is_some())
    }
}

#[derive(Debug, Default)]
struct PodSlot {
    points: Option<PodPoints>,
    labels: Option<Labels>,
    /// The list item, present exactly when the points are servable (metadata is checked at
    /// query time, as `require_pod_metadata` asks).
    encoded: Option<EncodedItem>,
}

impl PodSlot {
    fn is_empty(&self) -> bool {
        self.points.is_none() && self.labels.is_none()
    }
}

/// Counters kept up to date on every change, so stats and readiness cost nothing at 150k pods.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// Nodes with a last point.
    pub nodes: usize,
    /// Nodes with both points (`metrics_server_storage_points{type="node"}`).
    pub node_points: usize,
    /// Pods with a last point.
    pub pods: usize,
    /// Containers of those pods.
    pub containers: usize,
    /// Containers with both points (`metrics_server_storage_points{type="container"}`).
    pub container_points: usize,
    /// Pods whose every container has both points.
    pub servable_pods: usize,
}

impl StoreStats {
    fn count_node(&mut self, points: Option<&NodePoints>, sign: isize) {
        if let Some(points) = points {
            self.nodes = self.nodes.wrapping_add_signed(sign);
            if points.prev.is_some() {
                self.node_points = self.node_points.wrapping_add_signed(sign);
            }
        }
    }

    fn count_pod(&mut self, points: Option<&PodPoints>, sign: isize) {
        if let Some(points) = points {
            let containers = points.containers.len() as isize;
            let with_prev = points
                .containers
                .iter()
                .filter(|container| container.prev.is_some())
                .count() as isize;
            self.pods = self.pods.wrapping_add_signed(sign);
            self.containers = self.containers.wrapping_add_signed(sign * containers);
            self.container_points = self.container_points.wrapping_add_signed(sign * with_prev);
            if points.is_servable() {
                self.servable_pods = self.servable_pods.wrapping_add_signed(sign);
            }
        }
    }
}

/// A node's servable metrics.
#[derive(Debug, Clone, Copy)]
pub struct NodeMetrics<'a> {
    pub name: &'a str,
    pub labels: &'a Labels,
    pub usage: Usage,
}

/// One container's usage within [`PodMetrics`].
#[derive(Debug, Clone, Copy)]
pub struct ContainerMetrics<'a> {
    pub name: &'a str,
    pub usage: Usage,
}

/// A pod's servable metrics. Container usage is computed while iterating, so listing 150k pods
/// allocates nothing per pod.
#[derive(Debug, Clone, Copy)]
pub struct PodMetrics<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// Inventory labels, when the pod has metadata.
    pub labels: Option<&'a Labels>,
    /// Timestamp and window of the container with the earliest last point, or `None` when every
    /// container was skipped (metrics-server then serves `"timestamp":null`, `"window":"0s"`).
    pub time: Option<(i64, i64)>,
    containers: &'a [ContainerPoints],
}

impl<'a> PodMetrics<'a> {
    fn new(key: &'a PodKey, labels: Option<&'a Labels>, points: &'a PodPoints) -> Self {
        let mut metrics = Self {
            namespace: &key.namespace,
            name: &key.name,
            labels,
            time: None,
            containers: &points.containers,
        };
        // Ties keep the first container in name order; metrics-server's map order is random.
        let earliest = metrics
            .containers()
            .min_by_key(|container| container.usage.timestamp);
        metrics.time =
            earliest.map(|container| (container.usage.timestamp, container.usage.window));
        metrics
    }

    /// Containers in name order; a container whose counter or start time went backwards is
    /// skipped and the pod is served without it (as metrics-server does).
    pub fn containers(&self) -> impl Iterator<Item = ContainerMetrics<'a>> + 'a {
        let containers: &'a [ContainerPoints] = self.containers;
        containers.iter().filter_map(|container| {
            let usage = resource_usage(&container.last, container.prev.as_ref()?)?;
            Some(ContainerMetrics {
                name: &container.name,
                usage,
            })
        })
    }

    pub fn container_count(&self) -> usize {
        self.containers.len()
    }
}

/// How a store judges and serves what it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// metrics-server's `--metric-resolution`: bounds the fresh-container shortcut.
    pub resolution_nanos: i64,
    /// Serve only pods the inventory knows (Running pods); otherwise every pod with metrics.
    pub require_pod_metadata: bool,
    /// Keep a pod one of whose containers reports a working set of exactly 0 (present, zero),
    /// serving that container at memory 0, instead of dropping the whole pod as metrics-server
    /// does (metrics-server #1330: a sidecar on cgroup v1 that always reports 0 hides its pod from
    /// the HPA for good). A missing working set, a zero or missing CPU counter and node points
    /// are judged as before.
    pub keep_zero_memory_containers: bool,
}

impl StoreConfig {
    /// metrics-server's rules at `resolution_nanos`.
    pub fn new(resolution_nanos: i64) -> Self {
        Self {
            resolution_nanos,
            require_pod_metadata: false,
            keep_zero_memory_containers: false,
        }
    }
}

/// The store for one front process.
#[derive(Debug)]
pub struct MetricsStore {
    config: StoreConfig,
    nodes: BTreeMap<String, NodeSlot>,
    pods: BTreeMap<PodKey, PodSlot>,
    stats: StoreStats,
}

/// A validated pod from a sample: its containers sorted by name, duplicates dropped.
type ReportedPod = (PodKey, Vec<(String, Point)>);

/// The pods of a sample that metrics-server would keep, sorted by key, first of duplicates kept.
fn reported_pods(pods: Vec<PodSample>, zero_memory_kept: bool) -> Vec<ReportedPod> {
    let mut kept: Vec<ReportedPod> = Vec::with_capacity(pods.len());
    'pods: for pod in pods {
        let mut containers = Vec::with_capacity(pod.containers.len());
        for container in pod.containers {
            // decode.go checkContainerMetrics: one incomplete container drops the whole pod, so
            // HPA sees the pod as missing rather than as using zero.
            let Some(point) = container
                .point
                .as_ref()
                .and_then(|reported| Point::from_reported(reported, zero_memory_kept))
            else {
                continue 'pods;
            };
            containers.push((container.name, point));
        }
        containers.sort_by(|a, b| a.0.cmp(&b.0));
        containers.dedup_by(|later, earlier| later.0 == earlier.0);
        kept.push((
            PodKey {
                namespace: pod.namespace,
                name: pod.name,
            },
            containers,
        ));
    }
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    kept.dedup_by(|later, earlier| later.0 == earlier.0);
    kept
}

/// node.go `Store`: the stored last becomes prev when the new point is newer; a repeated
/// timestamp keeps the older prev (so the window stays non-zero); a point older than prev has none.
fn next_node_points(old: Option<&NodePoints>, new: Point) -> NodePoints {
    let prev = old.and_then(|old| {
        if new.timestamp > old.last.timestamp {
            Some(old.last)
        } else {
            old.prev.filter(|prev| prev.timestamp < new.timestamp)
        }
    });
    NodePoints { last: new, prev }
}

/// pod.go `Store`, for one container.
fn next_container_prev(
    new: &Point,
    old: Option<&ContainerPoints>,
    resolution_nanos: i64,
) -> Option<Point> {
    let age = new.timestamp.saturating_sub(new.start_time);
    if new.start_time < new.timestamp
        && (FRESH_CONTAINER_MIN_AGE_NANOS..resolution_nanos).contains(&age)
    {
        // A container started less than one resolution ago: rate it from its start (CPU 0 then),
        // so new pods get metrics after one scrape. metrics-server prefers this even over a real
        // previous point.
        return Some(Point {
            timestamp: new.start_time,
            cumulative_cpu: 0,
            ..*new
        });
    }
    let old = old?;
    if new.start_time >= old.last.timestamp {
        // Started after the stored reading: a restart, whose counters start over.
        return None;
    }
    if new.timestamp > old.last.timestamp {
        Some(old.last)
    } else {
        old.prev.filter(|prev| prev.timestamp < new.timestamp)
    }
}

impl MetricsStore {
    /// `resolution_nanos` bounds the fresh-container shortcut; `require_pod_metadata` serves
    /// only pods the inventory knows (Running pods). Every other rule is metrics-server's.
    pub fn new(resolution_nanos: i64, require_pod_metadata: bool) -> Self {
        Self::with_config(StoreConfig {
            require_pod_metadata,
            ..StoreConfig::new(resolution_nanos)
        })
    }

    pub fn with_config(config: StoreConfig) -> Self {
        Self {
            config,
            nodes: BTreeMap::new(),
            pods: BTreeMap::new(),
            stats: StoreStats::default(),
        }
    }

    /// Applies one node's scrape: its node point and the full set of its pods.
    pub fn ingest(&mut self, sample: NodeSample) {
        let NodeSample {
            node,
            node_point,
            pods,
            ..
        } = sample;
        let new_point = node_point.as_ref().and_then(Point::from_reported_node);
        if !self.nodes.contains_key(&node) {
            self.nodes.insert(node.clone(), NodeSlot::default());
        }
        let slot = self.nodes.get_mut(&node).expect("node slot inserted above");
        let old_points = slot.points.take();
        self.stats.count_node(old_points.as_ref(), -1);
        slot.points = new_point.map(|point| next_node_points(old_points.as_ref(), point));
        self.stats.count_node(slot.points.as_ref(), 1);
        encode_node(&node, slot);
        let previously_reported = std::mem::take(&mut slot.pods);

        let reported = reported_pods(pods, self.config.keep_zero_memory_containers);
        let mut still_reported = reported.iter().map(|(key, _)| key).peekable();
        for key in &previously_reported {
            while still_reported
                .next_if(|candidate| *candidate < key)
                .is_some()
            {}
            if still_reported.peek() != Some(&key) {
                self.drop_pod_points(key, &node);
            }
        }
        let mut keys = Vec::with_capacity(reported.len());
        for (key, containers) in reported {
            self.replace_pod_points(&key, &node, containers);
            keys.push(key);
        }
        if let Some(slot) = self.nodes.get_mut(&node) {
            slot.pods = keys;
            if slot.is_empty() {
                // A sample with nothing usable from a node the inventory does not know.
                self.nodes.remove(&node);
            }
        }
    }

    /// Decodes and applies one encoded `NodeSample`.
    pub fn ingest_encoded(&mut self, encoded: &[u8]) -> Result<(), prost::DecodeError> {
        self.ingest(NodeSample::from_bytes(encoded)?);
        Ok(())
    }

    fn replace_pod_points(&mut self, key: &PodKey, node: &str, containers: Vec<(String, Point)>) {
        let resolution = self.config.resolution_nanos;
        // One search per pod: the map holds 150k keys and a node's sample touches ~100 of them.
        match self.pods.get_mut(key) {
            Some(slot) => {
                replace_points(slot, key, node, containers, resolution, &mut self.stats);
            }
            None => {
                let mut slot = PodSlot::default();
                replace_points(
                    &mut slot,
                    key,
                    node,
                    containers,
                    resolution,
                    &mut self.stats,
                );
                self.pods.insert(key.clone(), slot);
            }
        }
    }

    /// Drops a pod's points if `node` is the node that last reported it.
    fn drop_pod_points(&mut self, key: &PodKey, node: &str) {
        let Some(slot) = self.pods.get_mut(key) else {
            return;
        };
        if slot
            .points
            .as_ref()
            .is_none_or(|points| points.node != node)
        {
            return;
        }
        let old = slot.points.take();
        slot.encoded = None;
        self.stats.count_pod(old.as_ref(), -1);
        if slot.is_empty() {
            self.pods.remove(key);
        }
    }

    /// Forgets a node's points and its pods' points, as metrics-server does for a node whose
    /// scrape failed. Returns whether there was anything to forget.
    pub fn forget_node(&mut self, node: &str) -> bool {
        let Some(slot) = self.nodes.get_mut(node) else {
            return false;
        };
        let old_points = slot.points.take();
        slot.encoded = None;
        let pods = std::mem::take(&mut slot.pods);
        let had_data = old_points.is_some() || !pods.is_empty();
        self.stats.count_node(old_points.as_ref(), -1);
        if slot.is_empty() {
            self.nodes.remove(node);
        }
        for key in &pods {
            self.drop_pod_points(key, node);
        }
        had_data
    }

    /// Forgets the points of every node not in `keep` (and their pods). Returns how many nodes
    /// had points or pods dropped.
    pub fn retain_nodes<'a>(&mut self, keep: impl IntoIterator<Item = &'a str>) -> usize {
        let keep: HashSet<&str> = keep.into_iter().collect();
        let gone: Vec<String> = self
            .nodes
            .iter()
            .filter(|(name, slot)| {
                !keep.contains(name.as_str()) && (slot.points.is_some() || !slot.pods.is_empty())
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in &gone {
            self.forget_node(name);
        }
        gone.len()
    }

    pub fn set_node_metadata(&mut self, node: &str, labels: Labels) {
        match self.nodes.get_mut(node) {
            Some(slot) => {
                slot.labels = Some(labels);
                encode_node(node, slot);
            }
            None => {
                let slot = NodeSlot {
                    labels: Some(labels),
                    ..NodeSlot::default()
                };
                self.nodes.insert(node.to_string(), slot);
            }
        }
    }

    pub fn remove_node_metadata(&mut self, node: &str) {
        if let Some(slot) = self.nodes.get_mut(node) {
            slot.labels = None;
            slot.encoded = None;
            if slot.is_empty() {
                self.nodes.remove(node);
            }
        }
    }

    pub fn has_node_metadata(&self, node: &str) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|slot| slot.labels.is_some())
    }

    pub fn set_pod_metadata(&mut self, key: PodKey, labels: Labels) {
        match self.pods.get_mut(&key) {
            Some(slot) => {
                slot.labels = Some(labels);
                encode_pod(&key, slot);
            }
            None => {
                self.pods.insert(
                    key,
                    PodSlot {
                        labels: Some(labels),
                        ..PodSlot::default()
                    },
                );
            }
        }
    }

    pub fn remove_pod_metadata(&mut self, key: &PodKey) {
        if let Some(slot) = self.pods.get_mut(key) {
            slot.labels = None;
            encode_pod(key, slot);
            if slot.is_empty() {
                self.pods.remove(key);
            }
        }
    }

    pub fn has_pod_metadata(&self, key: &PodKey) -> bool {
        self.pods.get(key).is_some_and(|slot| slot.labels.is_some())
    }

    /// A node's metrics, or `None` when it has no metadata or not two usable points.
    pub fn node_metrics(&self, node: &str) -> Option<NodeMetrics<'_>> {
        let (name, slot) = self.nodes.get_key_value(node)?;
        node_metrics(name, slot)
    }

    /// Servable nodes matching `selector` (and named `name`, when given), sorted by name.
    fn selected_nodes<'s, 'q>(
        &'s self,
        selector: &'q LabelSelector,
        name: Option<&'q str>,
    ) -> impl Iterator<Item = (&'s String, &'s NodeSlot)> + use<'s, 'q> {
        let range = match name {
            Some(name) => self
                .nodes
                .range::<str, _>((Bound::Included(name), Bound::Included(name))),
            None => self.nodes.range::<str, _>(..),
        };
        range.filter(|(_, slot)| {
            slot.encoded.is_some()
                && slot
                    .labels
                    .as_ref()
                    .is_some_and(|labels| selector.matches(labels.map()))
        })
    }

    /// Servable nodes matching `selector` and `name`, sorted by name.
    pub fn node_metrics_list(
        &self,
        selector: &LabelSelector,
        name: Option<&str>,
    ) -> Vec<NodeMetrics<'_>> {
        self.selected_nodes(selector, name)
            .filter_map(|(name, slot)| node_metrics(name, slot))
            .collect()
    }

    /// The `NodeMetricsList` response body for `selector` and `name`.
    pub fn render_node_list(
        &self,
        selector: &LabelSelector,
        name: Option<&str>,
        now_unix_seconds: i64,
    ) -> Vec<u8> {
        let items: Vec<&EncodedItem> = self
            .selected_nodes(selector, name)
            .filter_map(|(_, slot)| slot.encoded.as_ref())
            .collect();
        render_list(Resource::Nodes, &items, now_unix_seconds)
    }

    /// The `NodeMetrics` response body, or `None` when the node is not servable.
    pub fn render_node(&self, node: &str, now_unix_seconds: i64) -> Option<Vec<u8>> {
        let encoded = self.nodes.get(node)?.encoded.as_ref()?;
        Some(render_object(Resource::Nodes, encoded, now_unix_seconds))
    }

    fn is_served(&self, slot: &PodSlot) -> bool {
        slot.encoded.is_some() && (slot.labels.is_some() || !self.config.require_pod_metadata)
    }

    /// A pod's metrics, or `None` when it is not servable.
    pub fn pod_metrics(&self, namespace: &str, name: &str) -> Option<PodMetrics<'_>> {
        let (key, slot) = self.pods.get_key_value(&PodKey::new(namespace, name))?;
        if !self.is_served(slot) {
            return None;
        }
        pod_metrics(key, slot)
    }

    /// Servable pods in `namespace` (all when `None`) matching `selector` and `name`, sorted by
    /// (namespace, name).
    fn selected_pods<'s, 'q>(
        &'s self,
        namespace: Option<&'q str>,
        selector: &'q LabelSelector,
        name: Option<&'q str>,
    ) -> impl Iterator<Item = (&'s PodKey, &'s PodSlot)> + use<'s, 'q> {
        let range = match namespace {
            Some(namespace) => self.pods.range(PodKey::new(namespace, "")..),
            None => self.pods.range(..),
        };
        range
            .take_while(move |(key, _)| {
                namespace.is_none_or(|namespace| key.namespace == namespace)
            })
            .filter(move |(key, slot)| {
                self.is_served(slot)
                    && name.is_none_or(|name| key.name == name)
                    && selector.matches(slot.labels.as_ref().map_or(&NO_LABELS, Labels::map))
            })
    }

    /// Servable pods in `namespace` (all when `None`) matching `selector` and `name`, sorted by
    /// (namespace, name).
    pub fn pod_metrics_list(
        &self,
        namespace: Option<&str>,
        selector: &LabelSelector,
        name: Option<&str>,
    ) -> Vec<PodMetrics<'_>> {
        self.selected_pods(namespace, selector, name)
            .filter_map(|(key, slot)| pod_metrics(key, slot))
            .collect()
    }

    /// The `PodMetricsList` response body for `namespace`, `selector` and `name`.
    pub fn render_pod_list(
        &self,
        namespace: Option<&str>,
        selector: &LabelSelector,
        name: Option<&str>,
        now_unix_seconds: i64,
    ) -> Vec<u8> {
        let items: Vec<&EncodedItem> = self
            .selected_pods(namespace, selector, name)
            .filter_map(|(_, slot)| slot.encoded.as_ref())
            .collect();
        render_list(Resource::Pods, &items, now_unix_seconds)
    }

    /// The `PodMetrics` response body, or `None` when the pod is not servable.
    pub fn render_pod(
        &self,
        namespace: &str,
        name: &str,
        now_unix_seconds: i64,
    ) -> Option<Vec<u8>> {
        let slot = self.pods.get(&PodKey::new(namespace, name))?;
        if !self.is_served(slot) {
            return None;
        }
        Some(render_object(
            Resource::Pods,
            slot.encoded.as_ref()?,
            now_unix_seconds,
        ))
    }

    pub fn stats(&self) -> StoreStats {
        self.stats
    }

    /// metrics-server v0.9 readiness: at least one node and one pod can be served.
    pub fn ready(&self) -> bool {
        self.stats.node_points > 0 && self.stats.servable_pods > 0
    }

    /// Counts from scratch; tests compare it with the incrementally kept [`StoreStats`].
    #[cfg(test)]
    fn recount(&self) -> StoreStats {
        let mut stats = StoreStats::default();
        for slot in self.nodes.values() {
            stats.count_node(slot.points.as_ref(), 1);
        }
        for slot in self.pods.values() {
            stats.count_pod(slot.points.as_ref(), 1);
        }
        stats
    }
}

/// pod.go `Store` for one pod: new last points, each container's prev from the old points.
fn replace_points(
    slot: &mut PodSlot,
    key: &PodKey,
    node: &str,
    containers: Vec<(String, Point)>,
    resolution_nanos: i64,
    stats: &mut StoreStats,
) {
    let old = slot.points.take();
    stats.count_pod(old.as_ref(), -1);
    let containers = containers
        .into_iter()
        .map(|(name, last)| {
            let old_container = old.as_ref().and_then(|old| old.container(&name));
            let prev = next_container_prev(&last, old_container, resolution_nanos);
            ContainerPoints { name, last, prev }
        })
        .collect();
    let node = match old {
        Some(old) if old.node == node => old.node,
        _ => node.to_string(),
    };
    slot.points = Some(PodPoints { node, containers });
    stats.count_pod(slot.points.as_ref(), 1);
    encode_pod(key, slot);
}

/// A node's usage when it has metadata and two usable points.
fn node_metrics<'a>(name: &'a str, slot: &'a NodeSlot) -> Option<NodeMetrics<'a>> {
    let labels = slot.labels.as_ref()?;
    let points = slot.points.as_ref()?;
    let usage = resource_usage(&points.last, points.prev.as_ref()?)?;
    Some(NodeMetrics {
        name,
        labels,
        usage,
    })
}

/// A pod's usage when every container has two points (metadata is the caller's concern).
fn pod_metrics<'a>(key: &'a PodKey, slot: &'a PodSlot) -> Option<PodMetrics<'a>> {
    let points = slot.points.as_ref().filter(|points| points.is_servable())?;
    Some(PodMetrics::new(key, slot.labels.as_ref(), points))
}

/// Re-encodes a node's list item after its points or labels changed.
fn encode_node(name: &str, slot: &mut NodeSlot) {
    slot.encoded = node_metrics(name, slot).map(|metrics| {
        encode_node_item(&NodeItem {
            name,
            labels_json: metrics.labels.json(),
            usage: metrics.usage,
        })
    });
}

/// Re-encodes a pod's list item after its points or labels changed.
fn encode_pod(key: &PodKey, slot: &mut PodSlot) {
    slot.encoded = pod_metrics(key, slot).map(|metrics| {
        let item = PodItem {
            namespace: &key.namespace,
            name: &key.name,
            labels_json: metrics.labels.map_or(&[], Labels::json),
            time: metrics.time,
        };
        encode_pod_item(
            &item,
            metrics
                .containers()
                .map(|container| (container.name, container.usage)),
        )
    });
}

#[cfg(test)]
mod tests;
