//! Stores holding known usage, for the table and protobuf tests: every node and container gets
//! two readings `window` apart whose CPU counters differ by exactly what the wanted rate needs.

use std::collections::BTreeMap;

use crate::sample::{ContainerSample, NodeSample, PodSample, ResourcePoint};
use crate::store::{Labels, MetricsStore, PodKey};

pub const SECOND: i64 = 1_000_000_000;
pub const MILLISECOND: i64 = 1_000_000;
pub const KI: u64 = 1024;
pub const MI: u64 = 1024 * KI;

/// A long-running counter's previous value.
const PREV_CPU: u64 = 987_654_321_000_000;

/// The smallest counter increase whose rate over `window` truncates to `nanocores`.
fn cpu_increase(nanocores: u64, window: i64) -> u64 {
    (u128::from(nanocores) * window as u128).div_ceil(SECOND as u128) as u64
}

fn reading(timestamp: i64, cpu: u64, memory: u64, start: i64) -> ResourcePoint {
    ResourcePoint {
        timestamp_unix_nanos: timestamp,
        cumulative_cpu_nanos: Some(cpu),
        memory_working_set_bytes: Some(memory),
        start_time_unix_nanos: start,
    }
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// What one container reports over its window.
#[derive(Debug, Clone, Copy)]
pub struct ContainerUsage<'a> {
    pub name: &'a str,
    /// Unix nanoseconds of the newer reading.
    pub timestamp: i64,
    pub window: i64,
    pub nanocores: u64,
    pub memory: u64,
    /// Make the counter go backwards so the store skips this container.
    pub counter_reset: bool,
}

impl<'a> ContainerUsage<'a> {
    pub fn new(name: &'a str, timestamp: i64, window: i64, nanocores: u64, memory: u64) -> Self {
        Self {
            name,
            timestamp,
            window,
            nanocores,
            memory,
            counter_reset: false,
        }
    }
}

/// A store that serves every pod with metrics (no pod inventory required).
pub fn empty_store() -> MetricsStore {
    MetricsStore::new(15 * SECOND, false)
}

/// Two node readings serving `nanocores`/`memory` at `timestamp` over `window`.
pub fn add_node(
    store: &mut MetricsStore,
    node: &str,
    node_labels: Labels,
    timestamp: i64,
    window: i64,
    nanocores: u64,
    memory: u64,
) {
    store.set_node_metadata(node, node_labels);
    for (at, cpu) in [
        (timestamp - window, PREV_CPU),
        (timestamp, PREV_CPU + cpu_increase(nanocores, window)),
    ] {
        store.ingest(NodeSample {
            node: node.to_string(),
            scrape_time_unix_nanos: at,
            node_point: Some(reading(at, cpu, memory, 0)),
            pods: vec![],
        });
    }
}

/// Two readings of one pod (alone on `node`), with labels when given.
pub fn add_pod(
    store: &mut MetricsStore,
    node: &str,
    namespace: &str,
    name: &str,
    pod_labels: Option<Labels>,
    containers: &[ContainerUsage<'_>],
) {
    if let Some(pod_labels) = pod_labels {
        store.set_pod_metadata(PodKey::new(namespace, name), pod_labels);
    }
    for newer in [false, true] {
        let containers = containers
            .iter()
            .map(|c| {
                let start = c.timestamp - 3600 * SECOND;
                let increase = cpu_increase(c.nanocores, c.window);
                let point = match (newer, c.counter_reset) {
                    (false, false) => reading(c.timestamp - c.window, PREV_CPU, c.memory, start),
                    (true, false) => reading(c.timestamp, PREV_CPU + increase, c.memory, start),
                    (false, true) => {
                        reading(c.timestamp - c.window, PREV_CPU + increase, c.memory, start)
                    }
                    (true, true) => reading(c.timestamp, PREV_CPU, c.memory, start),
                };
                ContainerSample {
                    name: c.name.to_string(),
                    point: Some(point),
                }
            })
            .collect();
        store.ingest(NodeSample {
            node: node.to_string(),
            scrape_time_unix_nanos: 0,
            node_point: None,
            pods: vec![PodSample {
                namespace: namespace.to_string(),
                name: name.to_string(),
                containers,
            }],
        });
    }
}
