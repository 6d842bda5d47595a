//! The in-memory metrics store: two points (last, prev) per node and per container, from which
//! usage follows: CPU = Δcumulative / Δtime, memory = the latest working set.
//!
//! The rules are metrics-server's `pkg/storage` (node.go, pod.go, types.go), adapted from one
//! global tick to per-node ingestion: each `NodeSample` updates that node's point and replaces
//! every pod that node reported before, exactly as metrics-server's wholesale map rebuild would if
//! the batch held only that node. Node and pod metadata (labels) come from the inventory and live
//! beside the points; only nodes with metadata are served.
//!
//! Layout, for memory (a large cluster holds 150k pods and more): pods live in one slab indexed by
//! `u32`; each namespace keeps its pods' ids sorted by name, which gives the list order
//! (namespace, name) and lookups by binary search; a node keeps the ids of the pods it owns (its
//! latest sample reported them). Container names are interned (`u32` ids; replicas share them), as
//! are pod label sets (`Arc`; the pods of one ReplicaSet share one), and a pod with one container
//! keeps it inline. Of the older reading only what the rate needs is kept. Responses are encoded
//! on each request from the points: formatting an item costs little more than copying a
//! pre-encoded one, which would cost ~220 bytes per pod.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::format::write_json_string;
use crate::render::freshness::{FreshnessCounts, FreshnessHistogram, FreshnessTally};
use crate::render::protobuf;
use crate::render::views::{self, Encoding, View};
use crate::render::{render_node_json, render_pod_json, JsonList, NodeItem, PodItem, Resource};
pub use crate::render::{RequestTime, Usage};
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

/// What a rate needs of the older reading: its working set is never shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PrevPoint {
    timestamp: i64,
    start_time: i64,
    cumulative_cpu: u64,
}

impl From<&Point> for PrevPoint {
    fn from(point: &Point) -> Self {
        Self {
            timestamp: point.timestamp,
            start_time: point.start_time,
            cumulative_cpu: point.cumulative_cpu,
        }
    }
}

/// metrics-server's `resourceUsage`: `None` (the point is skipped) when the start time or the
/// cumulative CPU went backwards, which means the counter was reset between the two readings.
pub fn resource_usage(last: &Point, prev: &Point) -> Option<Usage> {
    usage_since(last, &PrevPoint::from(prev))
}

fn usage_since(last: &Point, prev: &PrevPoint) -> Option<Usage> {
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels {
    map: BTreeMap<String, String>,
    json: Vec<u8>,
}

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

/// A node's two points; of the older one only what the rate needs.
#[derive(Debug, Clone, Copy)]
struct NodePoints {
    last: Point,
    prev: Option<PrevPoint>,
}

/// Marks a pod slot without points (it is kept for its labels) or a vacant slot.
const NO_NODE: u32 = u32::MAX;
/// Marks a vacant pod or namespace slot.
const VACANT: u32 = u32::MAX;

#[derive(Debug)]
struct NodeSlot {
    name: Box<str>,
    points: Option<NodePoints>,
    labels: Option<Labels>,
    /// The pods whose points this node's latest sample gave, sorted by (namespace, name): every
    /// pod here has this node as its `node`, and every pod with this node as its `node` is here.
    pods: Vec<u32>,
}

impl NodeSlot {
    fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            points: None,
            labels: None,
            pods: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.points.is_none() && self.labels.is_none() && self.pods.is_empty()
    }
}

/// One container's points: 64 bytes, the name an id into the store's [`Symbols`].
#[derive(Debug, Clone, Copy)]
struct ContainerPoints {
    last: Point,
    /// Meaningful only when `has_prev`.
    prev: PrevPoint,
    name: u32,
    has_prev: bool,
}

impl ContainerPoints {
    fn prev(&self) -> Option<&PrevPoint> {
        self.has_prev.then_some(&self.prev)
    }

    fn usage(&self) -> Option<Usage> {
        usage_since(&self.last, self.prev()?)
    }
}

/// A pod's containers, sorted by name; the usual single container without an allocation.
#[derive(Debug)]
enum Containers {
    One(ContainerPoints),
    Many(Box<[ContainerPoints]>),
}

impl Default for Containers {
    fn default() -> Self {
        Self::Many(Box::default())
    }
}

impl Containers {
    fn from_vec(mut containers: Vec<ContainerPoints>) -> Self {
        match containers.len() {
            1 => Self::One(containers.pop().expect("one container")),
            _ => Self::Many(containers.into_boxed_slice()),
        }
    }

    fn as_slice(&self) -> &[ContainerPoints] {
        match self {
            Self::One(container) => std::slice::from_ref(container),
            Self::Many(containers) => containers,
        }
    }
}

#[derive(Debug)]
struct PodSlot {
    name: Box<str>,
    /// Interned: equal label sets share one allocation.
    labels: Option<Arc<Labels>>,
    /// Index into the store's namespaces; `VACANT` for a free slot.
    namespace: u32,
    /// The node whose sample last reported this pod, or `NO_NODE` when it has no points.
    node: u32,
    containers: Containers,
}

/// A vacant slot.
impl Default for PodSlot {
    fn default() -> Self {
        Self {
            name: Box::default(),
            labels: None,
            namespace: VACANT,
            node: NO_NODE,
            containers: Containers::default(),
        }
    }
}

impl PodSlot {
    fn has_points(&self) -> bool {
        self.node != NO_NODE
    }

    fn is_empty(&self) -> bool {
        !self.has_points() && self.labels.is_none()
    }

    /// metrics-server serves a pod only when every container has two points; one container
    /// without a previous point (just restarted, just appeared) hides the whole pod.
    fn is_servable(&self) -> bool {
        let containers = self.containers.as_slice();
        self.has_points()
            && !containers.is_empty()
            && containers.iter().all(|container| container.has_prev)
    }
}

#[derive(Debug)]
struct Namespace {
    name: Box<str>,
    /// Sorted by pod name.
    pods: Vec<u32>,
}

/// Interned strings (container names) with reference counts, so names that are no longer used
/// are freed and their ids reused.
#[derive(Debug, Default)]
struct Symbols {
    texts: Vec<Box<str>>,
    references: Vec<u32>,
    ids: HashMap<Box<str>, u32>,
    free: Vec<u32>,
}

impl Symbols {
    fn text(&self, id: u32) -> &str {
        &self.texts[id as usize]
    }

    /// The id of `text`, with one more reference.
    fn acquire(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.ids.get(text) {
            self.references[id as usize] += 1;
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.texts[id as usize] = text.into();
                self.references[id as usize] = 1;
                id
            }
            None => {
                self.texts.push(text.into());
                self.references.push(1);
                (self.texts.len() - 1) as u32
            }
        };
        self.ids.insert(text.into(), id);
        id
    }

    fn release(&mut self, id: u32) {
        let references = &mut self.references[id as usize];
        *references -= 1;
        if *references == 0 {
            let text = std::mem::take(&mut self.texts[id as usize]);
            self.ids.remove(&text);
            self.free.push(id);
        }
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

    fn count_pod(&mut self, slot: &PodSlot, sign: isize) {
        if slot.has_points() {
            let containers = slot.containers.as_slice();
            let with_prev = containers
                .iter()
                .filter(|container| container.has_prev)
                .count() as isize;
            self.pods = self.pods.wrapping_add_signed(sign);
            self.containers = self
                .containers
                .wrapping_add_signed(sign * containers.len() as isize);
            self.container_points = self.container_points.wrapping_add_signed(sign * with_prev);
            if slot.is_servable() {
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
    names: &'a Symbols,
}

impl<'a> PodMetrics<'a> {
    fn new(namespace: &'a str, slot: &'a PodSlot, names: &'a Symbols) -> Self {
        let containers = slot.containers.as_slice();
        Self {
            namespace,
            name: &slot.name,
            labels: slot.labels.as_deref(),
            time: pod_time(containers),
            containers,
            names,
        }
    }

    /// Containers in name order; a container whose counter or start time went backwards is
    /// skipped and the pod is served without it (as metrics-server does).
    pub fn containers(&self) -> impl Iterator<Item = ContainerMetrics<'a>> + 'a {
        let names = self.names;
        self.containers.iter().filter_map(move |container| {
            Some(ContainerMetrics {
                name: names.text(container.name),
                usage: container.usage()?,
            })
        })
    }

    pub fn container_count(&self) -> usize {
        self.containers.len()
    }

    fn item(&self) -> PodItem<'a> {
        PodItem {
            namespace: self.namespace,
            name: self.name,
            labels_json: self.labels.map_or(&[], Labels::json),
            time: self.time,
        }
    }

    fn usages(&self) -> impl Iterator<Item = (&'a str, Usage)> + 'a {
        self.containers()
            .map(|container| (container.name, container.usage))
    }
}

/// The timestamp and window of the container with the earliest last point; ties keep the first
/// in name order (metrics-server's map order is random).
fn pod_time(containers: &[ContainerPoints]) -> Option<(i64, i64)> {
    containers
        .iter()
        .filter_map(ContainerPoints::usage)
        .min_by_key(|usage| usage.timestamp)
        .map(|usage| (usage.timestamp, usage.window))
}

impl<'a> NodeMetrics<'a> {
    fn item(&self) -> NodeItem<'a> {
        NodeItem {
            name: self.name,
            labels_json: self.labels.json(),
            usage: self.usage,
        }
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

/// Which nodes a list response returns.
#[derive(Debug, Clone, Copy)]
pub struct NodeSelection<'a> {
    pub selector: &'a LabelSelector,
    /// A `metadata.name=` field selector.
    pub name: Option<&'a str>,
    /// Names a `metadata.name!=` field selector drops.
    pub excluded_names: Option<&'a HashSet<String>>,
}

impl<'a> NodeSelection<'a> {
    pub fn new(selector: &'a LabelSelector, name: Option<&'a str>) -> Self {
        Self {
            selector,
            name,
            excluded_names: None,
        }
    }

    fn excludes(&self, name: &str) -> bool {
        self.excluded_names
            .is_some_and(|excluded| excluded.contains(name))
    }
}

/// Which pods a list response returns.
#[derive(Debug, Clone, Copy)]
pub struct PodSelection<'a> {
    /// The namespace of the path or of a `metadata.namespace=` field selector; `None` for all.
    pub namespace: Option<&'a str>,
    pub selector: &'a LabelSelector,
    /// A `metadata.name=` field selector.
    pub name: Option<&'a str>,
    /// Names a `metadata.name!=` field selector drops.
    pub excluded_names: Option<&'a HashSet<String>>,
    /// Namespaces a `metadata.namespace!=` field selector drops.
    pub excluded_namespaces: Option<&'a HashSet<String>>,
}

impl<'a> PodSelection<'a> {
    pub fn new(
        namespace: Option<&'a str>,
        selector: &'a LabelSelector,
        name: Option<&'a str>,
    ) -> Self {
        Self {
            namespace,
            selector,
            name,
            excluded_names: None,
            excluded_namespaces: None,
        }
    }
}

/// The store for one front process.
#[derive(Debug)]
pub struct MetricsStore {
    config: StoreConfig,
    nodes: Vec<NodeSlot>,
    free_nodes: Vec<u32>,
    /// Node name → index into `nodes`, in name order.
    node_ids: BTreeMap<Box<str>, u32>,
    pods: Vec<PodSlot>,
    free_pods: Vec<u32>,
    namespaces: Vec<Namespace>,
    free_namespaces: Vec<u32>,
    /// Namespace name → index into `namespaces`, in name order.
    namespace_ids: BTreeMap<Box<str>, u32>,
    /// Pods given a slab slot since the slab was last laid out in list order.
    scattered_pods: usize,
    container_names: Symbols,
    /// Every distinct pod label set in use, each shared by all pods that carry it.
    label_sets: HashSet<Arc<Labels>>,
    stats: StoreStats,
    /// Every item every response returned, by age (`metrics_server_api_metric_freshness_seconds`).
    freshness: FreshnessHistogram,
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
            Some(PrevPoint::from(&old.last))
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
) -> Option<PrevPoint> {
    let age = new.timestamp.saturating_sub(new.start_time);
    if new.start_time < new.timestamp
        && (FRESH_CONTAINER_MIN_AGE_NANOS..resolution_nanos).contains(&age)
    {
        // A container started less than one resolution ago: rate it from its start (CPU 0 then),
        // so new pods get metrics after one scrape. metrics-server prefers this even over a real
        // previous point.
        return Some(PrevPoint {
            timestamp: new.start_time,
            start_time: new.start_time,
            cumulative_cpu: 0,
        });
    }
    let old = old?;
    if new.start_time >= old.last.timestamp {
        // Started after the stored reading: a restart, whose counters start over.
        return None;
    }
    if new.timestamp > old.last.timestamp {
        Some(PrevPoint::from(&old.last))
    } else {
        old.prev()
            .copied()
            .filter(|prev| prev.timestamp < new.timestamp)
    }
}

/// Takes a free index from `free` or the next one of `slots`.
fn allocate<T>(slots: &mut Vec<T>, free: &mut Vec<u32>, value: T) -> u32 {
    match free.pop() {
        Some(index) => {
            slots[index as usize] = value;
            index
        }
        None => {
            slots.push(value);
            u32::try_from(slots.len() - 1).expect("fewer than 2^32 slots")
        }
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
            nodes: Vec::new(),
            free_nodes: Vec::new(),
            node_ids: BTreeMap::new(),
            pods: Vec::new(),
            free_pods: Vec::new(),
            namespaces: Vec::new(),
            free_namespaces: Vec::new(),
            namespace_ids: BTreeMap::new(),
            scattered_pods: 0,
            container_names: Symbols::default(),
            label_sets: HashSet::new(),
            stats: StoreStats::default(),
            freshness: FreshnessHistogram::default(),
        }
    }

    // --- nodes, namespaces and pods by name ---

    fn node_id(&self, name: &str) -> Option<u32> {
        self.node_ids.get(name).copied()
    }

    fn node_id_or_insert(&mut self, name: &str) -> u32 {
        if let Some(id) = self.node_id(name) {
            return id;
        }
        let id = allocate(&mut self.nodes, &mut self.free_nodes, NodeSlot::new(name));
        self.node_ids.insert(name.into(), id);
        id
    }

    /// Frees a node slot that holds nothing any more.
    fn remove_node_if_empty(&mut self, id: u32) {
        let slot = &mut self.nodes[id as usize];
        if slot.is_empty() {
            let name = std::mem::take(&mut slot.name);
            self.node_ids.remove(&name);
            self.free_nodes.push(id);
        }
    }

    fn namespace_name(&self, pod: &PodSlot) -> &str {
        &self.namespaces[pod.namespace as usize].name
    }

    /// Orders a stored pod against a key, as pod lists are sorted.
    fn compare_pod(&self, id: u32, namespace: &str, name: &str) -> Ordering {
        let pod = &self.pods[id as usize];
        self.namespace_name(pod)
            .cmp(namespace)
            .then_with(|| pod.name.as_ref().cmp(name))
    }

    /// The pod's index within its namespace: `Ok` when present, else where it would go.
    fn search_namespace(&self, namespace: u32, name: &str) -> Result<usize, usize> {
        self.namespaces[namespace as usize]
            .pods
            .binary_search_by(|&id| self.pods[id as usize].name.as_ref().cmp(name))
    }

    fn pod_id(&self, namespace: &str, name: &str) -> Option<u32> {
        let namespace_id = *self.namespace_ids.get(namespace)?;
        let index = self.search_namespace(namespace_id, name).ok()?;
        Some(self.namespaces[namespace_id as usize].pods[index])
    }

    fn pod_id_or_insert(&mut self, namespace: &str, name: &str) -> u32 {
        let namespace_id = match self.namespace_ids.get(namespace) {
            Some(&id) => id,
            None => {
                let created = Namespace {
                    name: namespace.into(),
                    pods: Vec::new(),
                };
                let id = allocate(&mut self.namespaces, &mut self.free_namespaces, created);
                self.namespace_ids.insert(namespace.into(), id);
                id
            }
        };
        match self.search_namespace(namespace_id, name) {
            Ok(index) => self.namespaces[namespace_id as usize].pods[index],
            Err(index) => {
                let slot = PodSlot {
                    name: name.into(),
                    labels: None,
                    namespace: namespace_id,
                    node: NO_NODE,
                    containers: Containers::default(),
                };
                let id = allocate(&mut self.pods, &mut self.free_pods, slot);
                self.scattered_pods += 1;
                self.namespaces[namespace_id as usize]
                    .pods
                    .insert(index, id);
                id
            }
        }
    }

    /// Lays the slab out again in list order once enough pods were added elsewhere (see
    /// [`MetricsStore::lay_out_in_list_order`]); amortised, this costs a few moves per pod added.
    fn lay_out_if_scattered(&mut self) {
        const MIN_SCATTERED: usize = 1024;
        let live = self.pods.len() - self.free_pods.len();
        if self.scattered_pods >= MIN_SCATTERED && self.scattered_pods > live / 4 {
            self.lay_out_in_list_order();
        }
    }

    /// Moves every pod to the slab position of its rank in (namespace, name) order, so that a
    /// list reads the slab front to back instead of jumping across it: at 150k pods that halves
    /// the time of a full list.
    fn lay_out_in_list_order(&mut self) {
        // New positions: live pods by rank, then the free slots, which are dropped at the end.
        let mut new_ids = vec![VACANT; self.pods.len()];
        let mut next = 0;
        for &namespace in self.namespace_ids.values() {
            for id in &mut self.namespaces[namespace as usize].pods {
                new_ids[*id as usize] = next;
                *id = next;
                next += 1;
            }
        }
        let live = next as usize;
        for new_id in new_ids.iter_mut().filter(|new_id| **new_id == VACANT) {
            *new_id = next;
            next += 1;
        }
        for node in &mut self.nodes {
            for id in &mut node.pods {
                *id = new_ids[*id as usize];
            }
        }
        // Permute in place, cycle by cycle: a second slab would double the peak memory.
        for index in 0..self.pods.len() {
            while new_ids[index] as usize != index {
                let target = new_ids[index] as usize;
                self.pods.swap(index, target);
                new_ids.swap(index, target);
            }
        }
        self.pods.truncate(live);
        self.free_pods.clear();
        self.scattered_pods = 0;
    }

    /// Frees a pod slot that holds neither points nor labels.
    fn remove_pod_if_empty(&mut self, id: u32) {
        let slot = &self.pods[id as usize];
        if !slot.is_empty() {
            return;
        }
        let namespace_id = slot.namespace;
        if let Ok(index) = self.search_namespace(namespace_id, &slot.name) {
            self.namespaces[namespace_id as usize].pods.remove(index);
        }
        self.pods[id as usize] = PodSlot::default();
        self.free_pods.push(id);
        let namespace = &mut self.namespaces[namespace_id as usize];
        if namespace.pods.is_empty() {
            let name = std::mem::take(&mut namespace.name);
            namespace.pods = Vec::new();
            self.namespace_ids.remove(&name);
            self.free_namespaces.push(namespace_id);
        }
    }

    fn intern_labels(&mut self, labels: Labels) -> Arc<Labels> {
        if let Some(shared) = self.label_sets.get(&labels) {
            return Arc::clone(shared);
        }
        let shared = Arc::new(labels);
        self.label_sets.insert(Arc::clone(&shared));
        shared
    }

    fn release_labels(&mut self, labels: Option<Arc<Labels>>) {
        // The set's own reference and this one: the last user is letting go.
        if let Some(labels) = labels.filter(|labels| Arc::strong_count(labels) == 2) {
            self.label_sets.remove(&labels);
        }
    }

    // --- ingestion ---

    /// Applies one node's scrape: its node point and the full set of its pods.
    pub fn ingest(&mut self, sample: NodeSample) {
        let NodeSample {
            node,
            node_point,
            pods,
            ..
        } = sample;
        let new_point = node_point.as_ref().and_then(Point::from_reported_node);
        let node_id = self.node_id_or_insert(&node);
        let slot = &mut self.nodes[node_id as usize];
        let old_points = slot.points.take();
        self.stats.count_node(old_points.as_ref(), -1);
        slot.points = new_point.map(|point| next_node_points(old_points.as_ref(), point));
        self.stats.count_node(slot.points.as_ref(), 1);
        let previously_reported = std::mem::take(&mut slot.pods);

        // Both lists are sorted by key: walk them together, so a pod the node reported before
        // is found without a search.
        let reported = reported_pods(pods, self.config.keep_zero_memory_containers);
        let mut owned = Vec::with_capacity(reported.len());
        let mut previous = previously_reported.iter().copied().peekable();
        for (key, containers) in reported {
            let mut known = None;
            while let Some(&candidate) = previous.peek() {
                match self.compare_pod(candidate, &key.namespace, &key.name) {
                    Ordering::Less => {
                        previous.next();
                        self.drop_pod_points(candidate, node_id);
                    }
                    Ordering::Equal => {
                        previous.next();
                        known = Some(candidate);
                        break;
                    }
                    Ordering::Greater => break,
                }
            }
            let id = match known {
                Some(id) => id,
                None => self.pod_id_or_insert(&key.namespace, &key.name),
            };
            self.replace_pod_points(id, node_id, containers);
            owned.push(id);
        }
        for candidate in previous {
            self.drop_pod_points(candidate, node_id);
        }
        self.nodes[node_id as usize].pods = owned;
        // A sample with nothing usable from a node the inventory does not know.
        self.remove_node_if_empty(node_id);
        self.lay_out_if_scattered();
    }

    /// Decodes and applies one encoded `NodeSample`.
    pub fn ingest_encoded(&mut self, encoded: &[u8]) -> Result<(), prost::DecodeError> {
        self.ingest(NodeSample::from_bytes(encoded)?);
        Ok(())
    }

    /// pod.go `Store` for one pod: new last points, each container's prev from the old points.
    fn replace_pod_points(&mut self, id: u32, node_id: u32, containers: Vec<(String, Point)>) {
        let resolution = self.config.resolution_nanos;
        let slot = &self.pods[id as usize];
        let previous_node = slot.node;
        self.stats.count_pod(slot, -1);
        let mut new_containers = Vec::with_capacity(containers.len());
        for (name, last) in containers {
            // A container seen before keeps its interned name: no hashing in the steady state.
            let old_containers = slot.containers.as_slice();
            let old = old_containers
                .binary_search_by(|old| self.container_names.text(old.name).cmp(&name))
                .ok()
                .map(|index| &old_containers[index]);
            let prev = next_container_prev(&last, old, resolution);
            let name = match old {
                Some(old) => {
                    self.container_names.references[old.name as usize] += 1;
                    old.name
                }
                None => self.container_names.acquire(&name),
            };
            new_containers.push(ContainerPoints {
                last,
                prev: prev.unwrap_or(PrevPoint {
                    timestamp: 0,
                    start_time: 0,
                    cumulative_cpu: 0,
                }),
                name,
                has_prev: prev.is_some(),
            });
        }
        let slot = &mut self.pods[id as usize];
        let old_containers =
            std::mem::replace(&mut slot.containers, Containers::from_vec(new_containers));
        slot.node = node_id;
        self.stats.count_pod(&self.pods[id as usize], 1);
        for old in old_containers.as_slice() {
            self.container_names.release(old.name);
        }
        if previous_node != NO_NODE && previous_node != node_id {
            // Re-created on another node (a StatefulSet pod) before its old node's next sample:
            // that node no longer owns it.
            self.disown(previous_node, id);
        }
    }

    /// Removes `pod` from the pods `node` owns.
    fn disown(&mut self, node: u32, pod: u32) {
        let slot = &self.pods[pod as usize];
        let (namespace, name) = (self.namespace_name(slot), &slot.name);
        let found = self.nodes[node as usize]
            .pods
            .binary_search_by(|&candidate| self.compare_pod(candidate, namespace, name));
        if let Ok(index) = found {
            self.nodes[node as usize].pods.remove(index);
        }
    }

    /// Drops a pod's points if `node` is the node that last reported it.
    fn drop_pod_points(&mut self, id: u32, node: u32) {
        let slot = &self.pods[id as usize];
        if slot.node != node {
            return;
        }
        self.stats.count_pod(slot, -1);
        let slot = &mut self.pods[id as usize];
        slot.node = NO_NODE;
        let containers = std::mem::take(&mut slot.containers);
        for container in containers.as_slice() {
            self.container_names.release(container.name);
        }
        self.remove_pod_if_empty(id);
    }

    /// Forgets a node's points and its pods' points, as metrics-server does for a node whose
    /// scrape failed. Returns whether there was anything to forget.
    pub fn forget_node(&mut self, node: &str) -> bool {
        let Some(id) = self.node_id(node) else {
            return false;
        };
        let slot = &mut self.nodes[id as usize];
        let old_points = slot.points.take();
        let pods = std::mem::take(&mut slot.pods);
        let had_data = old_points.is_some() || !pods.is_empty();
        self.stats.count_node(old_points.as_ref(), -1);
        for pod in pods {
            self.drop_pod_points(pod, id);
        }
        self.remove_node_if_empty(id);
        had_data
    }

    /// Forgets the points of every node not in `keep` (and their pods). Returns how many nodes
    /// had points or pods dropped.
    pub fn retain_nodes<'a>(&mut self, keep: impl IntoIterator<Item = &'a str>) -> usize {
        let keep: HashSet<&str> = keep.into_iter().collect();
        let gone: Vec<String> = self
            .node_ids
            .iter()
            .filter(|(name, &id)| {
                let slot = &self.nodes[id as usize];
                !keep.contains(name.as_ref()) && (slot.points.is_some() || !slot.pods.is_empty())
            })
            .map(|(name, _)| name.to_string())
            .collect();
        for name in &gone {
            self.forget_node(name);
        }
        gone.len()
    }

    // --- metadata ---

    pub fn set_node_metadata(&mut self, node: &str, labels: Labels) {
        let id = self.node_id_or_insert(node);
        self.nodes[id as usize].labels = Some(labels);
    }

    pub fn remove_node_metadata(&mut self, node: &str) {
        if let Some(id) = self.node_id(node) {
            self.nodes[id as usize].labels = None;
            self.remove_node_if_empty(id);
        }
    }

    pub fn has_node_metadata(&self, node: &str) -> bool {
        self.node_id(node)
            .is_some_and(|id| self.nodes[id as usize].labels.is_some())
    }

    pub fn set_pod_metadata(&mut self, key: PodKey, labels: Labels) {
        let id = self.pod_id_or_insert(&key.namespace, &key.name);
        let labels = self.intern_labels(labels);
        let old = self.pods[id as usize].labels.replace(labels);
        self.release_labels(old);
        self.lay_out_if_scattered();
    }

    pub fn remove_pod_metadata(&mut self, key: &PodKey) {
        if let Some(id) = self.pod_id(&key.namespace, &key.name) {
            let old = self.pods[id as usize].labels.take();
            self.release_labels(old);
            self.remove_pod_if_empty(id);
        }
    }

    pub fn has_pod_metadata(&self, key: &PodKey) -> bool {
        self.pod_id(&key.namespace, &key.name)
            .is_some_and(|id| self.pods[id as usize].labels.is_some())
    }

    // --- queries ---

    /// A node's metrics, or `None` when it has no metadata or not two usable points.
    pub fn node_metrics(&self, node: &str) -> Option<NodeMetrics<'_>> {
        node_metrics(&self.nodes[self.node_id(node)? as usize])
    }

    /// Servable nodes matching `selection`, sorted by name.
    fn selected_nodes<'s, 'q>(
        &'s self,
        selection: &NodeSelection<'q>,
    ) -> impl Iterator<Item = NodeMetrics<'s>> + use<'s, 'q> {
        let selection = *selection;
        let ids: Box<dyn Iterator<Item = u32> + 's> = match selection.name {
            Some(name) => Box::new(self.node_id(name).into_iter()),
            None => Box::new(self.node_ids.values().copied()),
        };
        ids.filter_map(move |id| {
            let slot = &self.nodes[id as usize];
            let metrics = node_metrics(slot)?;
            (selection.selector.matches(metrics.labels.map()) && !selection.excludes(&slot.name))
                .then_some(metrics)
        })
    }

    /// Servable nodes matching `selector` and `name`, sorted by name.
    pub fn node_metrics_list(
        &self,
        selector: &LabelSelector,
        name: Option<&str>,
    ) -> Vec<NodeMetrics<'_>> {
        self.selected_nodes(&NodeSelection::new(selector, name))
            .collect()
    }

    /// Whether a servable pod is served (`require_pod_metadata` asks for inventory labels).
    fn is_served(&self, slot: &PodSlot) -> bool {
        slot.is_servable() && (slot.labels.is_some() || !self.config.require_pod_metadata)
    }

    /// A pod's metrics, or `None` when it is not servable.
    pub fn pod_metrics(&self, namespace: &str, name: &str) -> Option<PodMetrics<'_>> {
        let slot = &self.pods[self.pod_id(namespace, name)? as usize];
        self.is_served(slot)
            .then(|| PodMetrics::new(self.namespace_name(slot), slot, &self.container_names))
    }

    /// Served pods matching `selection`, sorted by (namespace, name).
    fn selected_pods<'s, 'q>(
        &'s self,
        selection: &PodSelection<'q>,
    ) -> impl Iterator<Item = PodMetrics<'s>> + use<'s, 'q> {
        let selection = *selection;
        let namespaces: Box<dyn Iterator<Item = &'s Namespace> + 's> = match selection.namespace {
            Some(namespace) => Box::new(
                self.namespace_ids
                    .get(namespace)
                    .map(|&id| &self.namespaces[id as usize])
                    .into_iter(),
            ),
            None => Box::new(
                self.namespace_ids
                    .values()
                    .map(|&id| &self.namespaces[id as usize]),
            ),
        };
        namespaces
            .filter(move |namespace| {
                !selection
                    .excluded_namespaces
                    .is_some_and(|excluded| excluded.contains(namespace.name.as_ref()))
            })
            .flat_map(move |namespace| {
                let ids: &'s [u32] = match selection.name {
                    // One binary search per namespace instead of a scan.
                    Some(name) => match self.search_namespace_slice(namespace, name) {
                        Some(index) => &namespace.pods[index..=index],
                        None => &[],
                    },
                    None => &namespace.pods,
                };
                ids.iter().enumerate().map(move |(index, &id)| {
                    self.prefetch_ahead(ids, index);
                    (namespace, &self.pods[id as usize])
                })
            })
            .filter(move |(_, slot)| {
                self.is_served(slot)
                    && !selection
                        .excluded_names
                        .is_some_and(|excluded| excluded.contains(slot.name.as_ref()))
                    && selection
                        .selector
                        .matches(slot.labels.as_deref().map_or(&NO_LABELS, Labels::map))
            })
            .map(move |(namespace, slot)| {
                PodMetrics::new(&namespace.name, slot, &self.container_names)
            })
    }

    /// Pods in name order lie scattered over the slab (it fills in ingestion order), and their
    /// names over the heap: while one pod is encoded, ask for the memory of the ones a few places
    /// ahead, so a 150k-pod list does not wait on two cache misses per pod.
    #[inline(always)]
    fn prefetch_ahead(&self, ids: &[u32], index: usize) {
        const SLOT_DISTANCE: usize = 16;
        const NAME_DISTANCE: usize = 8;
        if let Some(&id) = ids.get(index + SLOT_DISTANCE) {
            let slot = &self.pods[id as usize] as *const PodSlot as *const u8;
            prefetch(slot);
            prefetch(slot.wrapping_add(64));
        }
        if let Some(&id) = ids.get(index + NAME_DISTANCE) {
            prefetch(self.pods[id as usize].name.as_ptr());
        }
    }

    fn search_namespace_slice(&self, namespace: &Namespace, name: &str) -> Option<usize> {
        namespace
            .pods
            .binary_search_by(|&id| self.pods[id as usize].name.as_ref().cmp(name))
            .ok()
    }

    /// Servable pods in `namespace` (all when `None`) matching `selector` and `name`, sorted by
    /// (namespace, name).
    pub fn pod_metrics_list(
        &self,
        namespace: Option<&str>,
        selector: &LabelSelector,
        name: Option<&str>,
    ) -> Vec<PodMetrics<'_>> {
        self.selected_pods(&PodSelection::new(namespace, selector, name))
            .collect()
    }

    /// How many pod items a list for `selection` may hold, to size its buffer.
    fn expected_pods(&self, selection: &PodSelection<'_>) -> usize {
        if selection.name.is_some() {
            return 1;
        }
        match selection.namespace {
            Some(namespace) => self
                .namespace_ids
                .get(namespace)
                .map_or(0, |&id| self.namespaces[id as usize].pods.len()),
            None => self.stats.servable_pods,
        }
    }

    // --- responses ---

    /// The `NodeMetricsList` JSON body for `selector` and `name`.
    pub fn render_node_list(
        &self,
        selector: &LabelSelector,
        name: Option<&str>,
        now: impl Into<RequestTime>,
    ) -> Vec<u8> {
        self.render_node_list_view(
            View::Object(Encoding::Json),
            &NodeSelection::new(selector, name),
            now,
        )
    }

    /// The `NodeMetrics` JSON body, or `None` when the node is not servable.
    pub fn render_node(&self, node: &str, now: impl Into<RequestTime>) -> Option<Vec<u8>> {
        self.render_node_view(View::Object(Encoding::Json), node, now)
    }

    /// The node list response in `view`'s representation.
    pub fn render_node_list_view(
        &self,
        view: View,
        selection: &NodeSelection<'_>,
        now: impl Into<RequestTime>,
    ) -> Vec<u8> {
        let now = now.into();
        let mut freshness = FreshnessTally::new(now.unix_nanos);
        let nodes: Vec<NodeMetrics<'_>> = self
            .selected_nodes(selection)
            .inspect(|node| freshness.observe(Some(node.usage.timestamp)))
            .collect();
        let body = views::render_node_list(view, &nodes, now.unix_seconds);
        self.freshness.record(&freshness);
        body
    }

    /// One node in `view`'s representation, or `None` when it is not servable.
    pub fn render_node_view(
        &self,
        view: View,
        node: &str,
        now: impl Into<RequestTime>,
    ) -> Option<Vec<u8>> {
        let now = now.into();
        let metrics = self.node_metrics(node)?;
        let mut freshness = FreshnessTally::new(now.unix_nanos);
        freshness.observe(Some(metrics.usage.timestamp));
        let body = match view {
            View::Object(Encoding::Json) => render_node_json(&metrics.item(), now.unix_seconds),
            _ => views::render_node(view, &metrics, now.unix_seconds),
        };
        self.freshness.record(&freshness);
        Some(body)
    }

    /// The `PodMetricsList` JSON body for `namespace`, `selector` and `name`.
    pub fn render_pod_list(
        &self,
        namespace: Option<&str>,
        selector: &LabelSelector,
        name: Option<&str>,
        now: impl Into<RequestTime>,
    ) -> Vec<u8> {
        self.render_pod_list_view(
            View::Object(Encoding::Json),
            &PodSelection::new(namespace, selector, name),
            now,
        )
    }

    /// The `PodMetrics` JSON body, or `None` when the pod is not servable.
    pub fn render_pod(
        &self,
        namespace: &str,
        name: &str,
        now: impl Into<RequestTime>,
    ) -> Option<Vec<u8>> {
        self.render_pod_view(View::Object(Encoding::Json), namespace, name, now)
    }

    /// The pod list response in `view`'s representation (table cells sum the containers).
    pub fn render_pod_list_view(
        &self,
        view: View,
        selection: &PodSelection<'_>,
        now: impl Into<RequestTime>,
    ) -> Vec<u8> {
        let now = now.into();
        let mut freshness = FreshnessTally::new(now.unix_nanos);
        let selected = self
            .selected_pods(selection)
            .inspect(|pod| freshness.observe(pod.time.map(|(timestamp, _)| timestamp)));
        // The objects are encoded as selected: no list of 150k pods in between.
        let body = match view {
            View::Object(Encoding::Json) => {
                let expected = self.expected_pods(selection);
                let mut list = JsonList::new(Resource::Pods, now.unix_seconds, expected);
                for pod in selected {
                    list.push_pod(&pod.item(), pod.usages());
                }
                list.finish()
            }
            View::Object(Encoding::Protobuf) => {
                let expected = self.expected_pods(selection);
                let mut list = protobuf::PodList::new(now.unix_seconds, expected);
                for pod in selected {
                    list.push(&pod);
                }
                list.finish()
            }
            _ => {
                let pods: Vec<PodMetrics<'_>> = selected.collect();
                views::render_pod_list(view, &pods, now.unix_seconds)
            }
        };
        self.freshness.record(&freshness);
        body
    }

    /// One pod in `view`'s representation, or `None` when it is not servable.
    pub fn render_pod_view(
        &self,
        view: View,
        namespace: &str,
        name: &str,
        now: impl Into<RequestTime>,
    ) -> Option<Vec<u8>> {
        let now = now.into();
        let metrics = self.pod_metrics(namespace, name)?;
        let mut freshness = FreshnessTally::new(now.unix_nanos);
        freshness.observe(metrics.time.map(|(timestamp, _)| timestamp));
        let body = match view {
            View::Object(Encoding::Json) => {
                render_pod_json(&metrics.item(), metrics.usages(), now.unix_seconds)
            }
            _ => views::render_pod(view, &metrics, now.unix_seconds),
        };
        self.freshness.record(&freshness);
        Some(body)
    }

    /// `metrics_server_api_metric_freshness_seconds` since the store was created: one
    /// observation per item of every response rendered.
    pub fn freshness(&self) -> FreshnessCounts {
        self.freshness.snapshot()
    }

    pub fn stats(&self) -> StoreStats {
        self.stats
    }

    /// metrics-server v0.9 readiness: at least one node and one pod can be served.
    pub fn ready(&self) -> bool {
        self.stats.node_points > 0 && self.stats.servable_pods > 0
    }

    /// Checks the cross-references tests rely on: each node owns exactly the pods that name it,
    /// in list order, and each namespace lists its live pods by name.
    #[cfg(test)]
    fn assert_consistent(&self) {
        let mut owned = 0;
        for (name, &node) in &self.node_ids {
            let slot = &self.nodes[node as usize];
            assert_eq!(slot.name.as_ref(), name.as_ref());
            for pair in slot.pods.windows(2) {
                assert_eq!(
                    self.compare_pod(
                        pair[0],
                        self.namespace_name(&self.pods[pair[1] as usize]),
                        &self.pods[pair[1] as usize].name
                    ),
                    Ordering::Less
                );
            }
            for &pod in &slot.pods {
                assert_eq!(self.pods[pod as usize].node, node);
            }
            owned += slot.pods.len();
        }
        let mut live = 0;
        for (name, &namespace) in &self.namespace_ids {
            let slot = &self.namespaces[namespace as usize];
            assert_eq!(slot.name.as_ref(), name.as_ref());
            assert!(!slot.pods.is_empty());
            for pair in slot.pods.windows(2) {
                assert!(self.pods[pair[0] as usize].name < self.pods[pair[1] as usize].name);
            }
            for &pod in &slot.pods {
                assert_eq!(self.pods[pod as usize].namespace, namespace);
                assert!(!self.pods[pod as usize].is_empty());
            }
            live += slot.pods.len();
        }
        assert_eq!(live, self.pods.len() - self.free_pods.len());
        let with_points = self.pods.iter().filter(|pod| pod.has_points()).count();
        assert_eq!(owned, with_points);
    }

    /// Counts from scratch; tests compare it with the incrementally kept [`StoreStats`].
    #[cfg(test)]
    fn recount(&self) -> StoreStats {
        let mut stats = StoreStats::default();
        for &id in self.node_ids.values() {
            stats.count_node(self.nodes[id as usize].points.as_ref(), 1);
        }
        for namespace in self.namespace_ids.values() {
            for &id in &self.namespaces[*namespace as usize].pods {
                stats.count_pod(&self.pods[id as usize], 1);
            }
        }
        stats
    }
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// A hint that `address` will be read soon; it never faults, whatever the address.
#[inline(always)]
fn prefetch(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it reads nothing and cannot fault.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// A node's usage when it has metadata and two usable points.
fn node_metrics(slot: &NodeSlot) -> Option<NodeMetrics<'_>> {
    let labels = slot.labels.as_ref()?;
    let points = slot.points.as_ref()?;
    let usage = usage_since(&points.last, points.prev.as_ref()?)?;
    Some(NodeMetrics {
        name: &slot.name,
        labels,
        usage,
    })
}

#[cfg(test)]
mod tests;
