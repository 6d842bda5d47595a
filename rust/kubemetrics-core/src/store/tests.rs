//! Behaviours of the store, mirroring metrics-server's pkg/storage tests where they exist.

use super::*;
use crate::sample::{ContainerSample, NodeSample, PodSample, ResourcePoint};

const SECOND: i64 = 1_000_000_000;
const MILLISECOND: i64 = 1_000_000;
/// 2023-11-14T22:13:20Z, a realistic epoch so that unknown start times (0) stay far in the past.
const T0: i64 = 1_700_000_000 * SECOND;
const RESOLUTION: i64 = 15 * SECOND;
const MIB: u64 = 1 << 20;

fn reading(timestamp: i64, cpu: u64, memory: u64, start: i64) -> ResourcePoint {
    ResourcePoint {
        timestamp_unix_nanos: timestamp,
        cumulative_cpu_nanos: Some(cpu),
        memory_working_set_bytes: Some(memory),
        start_time_unix_nanos: start,
    }
}

fn container(name: &str, point: ResourcePoint) -> ContainerSample {
    ContainerSample {
        name: name.to_string(),
        point: Some(point),
    }
}

fn pod(namespace: &str, name: &str, containers: Vec<ContainerSample>) -> PodSample {
    PodSample {
        namespace: namespace.to_string(),
        name: name.to_string(),
        containers,
    }
}

fn sample(node: &str, node_point: Option<ResourcePoint>, pods: Vec<PodSample>) -> NodeSample {
    NodeSample {
        node: node.to_string(),
        scrape_time_unix_nanos: 0,
        node_point,
        pods,
    }
}

/// A node sample at `timestamp` with cumulative CPU `cpu` and 1 GiB working set, no pods.
fn node_only(node: &str, timestamp: i64, cpu: u64) -> NodeSample {
    sample(node, Some(reading(timestamp, cpu, 1 << 30, 0)), vec![])
}

/// A node sample with one single-container pod `default/web` (container `app`, started an hour
/// before T0).
fn with_web_pod(node: &str, timestamp: i64, cpu: u64, memory: u64) -> NodeSample {
    let start = T0 - 3600 * SECOND;
    let app = container("app", reading(timestamp, cpu, memory, start));
    sample(
        node,
        Some(reading(timestamp, cpu, 1 << 30, 0)),
        vec![pod("default", "web", vec![app])],
    )
}

fn store() -> MetricsStore {
    let mut store = MetricsStore::new(RESOLUTION, false);
    store.set_node_metadata("node-1", Labels::default());
    store.set_node_metadata("node-2", Labels::default());
    store
}

fn node_usage(store: &MetricsStore, node: &str) -> Option<Usage> {
    store.node_metrics(node).map(|metrics| metrics.usage)
}

fn container_usages(
    store: &MetricsStore,
    namespace: &str,
    name: &str,
) -> Option<Vec<(String, Usage)>> {
    let metrics = store.pod_metrics(namespace, name)?;
    Some(
        metrics
            .containers()
            .map(|c| (c.name.to_string(), c.usage))
            .collect(),
    )
}

fn assert_stats_consistent(store: &MetricsStore) {
    assert_eq!(store.stats(), store.recount());
    store.assert_consistent();
}

#[test]
fn node_usage_is_the_cpu_rate_between_two_points_and_the_latest_memory() {
    let mut store = store();
    store.ingest(sample(
        "node-1",
        Some(reading(T0, 1_000 * SECOND as u64, 2 * MIB, 0)),
        vec![],
    ));
    store.ingest(sample(
        "node-1",
        Some(reading(
            T0 + 15_004 * MILLISECOND,
            1_000 * SECOND as u64 + 4_297_000_000,
            3 * MIB,
            0,
        )),
        vec![],
    ));
    let usage = node_usage(&store, "node-1").unwrap();
    assert_eq!(usage.timestamp, T0 + 15_004 * MILLISECOND);
    assert_eq!(usage.window, 15_004 * MILLISECOND);
    // 4.297e9 core-ns / 15.004 s = 286390295.92… → truncated.
    assert_eq!(usage.cpu_nanocores, 286_390_295);
    assert_eq!(usage.memory_bytes, 3 * MIB);
    assert_stats_consistent(&store);
}

#[test]
fn node_is_served_only_with_two_points() {
    let mut store = store();
    store.ingest(node_only("node-1", T0, 100));
    assert!(node_usage(&store, "node-1").is_none());
    assert_eq!(store.stats().nodes, 1);
    assert_eq!(store.stats().node_points, 0);
    store.ingest(node_only(
        "node-1",
        T0 + RESOLUTION,
        100 + 15 * SECOND as u64,
    ));
    assert_eq!(
        node_usage(&store, "node-1").unwrap().cpu_nanocores,
        1_000_000_000
    );
    assert_eq!(store.stats().node_points, 1);
}

#[test]
fn node_without_metadata_is_not_served() {
    let mut store = MetricsStore::new(RESOLUTION, false);
    store.ingest(node_only("node-9", T0, 100));
    store.ingest(node_only("node-9", T0 + RESOLUTION, 200));
    assert!(store.node_metrics("node-9").is_none());
    assert!(store
        .node_metrics_list(&LabelSelector::everything(), None)
        .is_empty());
    assert!(!store.has_node_metadata("node-9"));
    store.set_node_metadata("node-9", Labels::default());
    assert!(store.has_node_metadata("node-9"));
    assert_eq!(
        store.node_metrics("node-9").unwrap().usage.window,
        RESOLUTION
    );
    store.remove_node_metadata("node-9");
    assert!(store.node_metrics("node-9").is_none());
    assert_eq!(
        store.stats().node_points,
        1,
        "metadata does not own the points"
    );
}

#[test]
fn repeated_timestamp_keeps_prev() {
    let mut store = store();
    store.ingest(node_only("node-1", T0, 100));
    store.ingest(node_only("node-1", T0 + 10 * SECOND, 200));
    store.ingest(node_only("node-1", T0 + 10 * SECOND, 300));
    let usage = node_usage(&store, "node-1").unwrap();
    assert_eq!(usage.window, 10 * SECOND);
    assert_eq!(usage.cpu_nanocores, 20, "(300 - 100) / 10 s");
}

#[test]
fn point_between_prev_and_last_keeps_prev() {
    let mut store = store();
    store.ingest(node_only("node-1", T0, 100));
    store.ingest(node_only("node-1", T0 + 20 * SECOND, 300));
    store.ingest(node_only("node-1", T0 + 10 * SECOND, 200));
    let usage = node_usage(&store, "node-1").unwrap();
    assert_eq!(usage.timestamp, T0 + 10 * SECOND);
    assert_eq!(usage.window, 10 * SECOND);
    assert_eq!(usage.cpu_nanocores, 10);
}

#[test]
fn point_older_than_prev_has_no_prev() {
    let mut store = store();
    store.ingest(node_only("node-1", T0, 100));
    store.ingest(node_only("node-1", T0 + 10 * SECOND, 200));
    store.ingest(node_only("node-1", T0, 150));
    assert!(node_usage(&store, "node-1").is_none());
    assert_eq!(store.stats().nodes, 1);
    assert_eq!(store.stats().node_points, 0);
}

#[test]
fn should_detect_node_restart_and_skip_metric() {
    let mut store = store();
    store.ingest(node_only("node-1", T0, 1_000_000));
    store.ingest(node_only("node-1", T0 + RESOLUTION, 10));
    assert!(node_usage(&store, "node-1").is_none());
    store.ingest(node_only(
        "node-1",
        T0 + 2 * RESOLUTION,
        10 + 15 * SECOND as u64,
    ));
    assert_eq!(
        node_usage(&store, "node-1").unwrap().cpu_nanocores,
        1_000_000_000
    );
}

#[test]
fn node_point_with_zero_or_missing_values_drops_the_node() {
    for broken in [
        reading(T0 + RESOLUTION, 0, MIB, 0),
        reading(T0 + RESOLUTION, 100, 0, 0),
        reading(0, 100, MIB, 0),
        ResourcePoint {
            cumulative_cpu_nanos: None,
            ..reading(T0 + RESOLUTION, 100, MIB, 0)
        },
        ResourcePoint {
            memory_working_set_bytes: None,
            ..reading(T0 + RESOLUTION, 100, MIB, 0)
        },
    ] {
        let mut store = store();
        store.ingest(node_only("node-1", T0, 100));
        store.ingest(node_only("node-1", T0 + 10 * SECOND, 200));
        assert!(node_usage(&store, "node-1").is_some());
        store.ingest(sample("node-1", Some(broken.clone()), vec![]));
        assert!(node_usage(&store, "node-1").is_none(), "{broken:?}");
        assert_eq!(store.stats().nodes, 0);
        // The dropped point leaves no last, so the next good point has no prev either.
        store.ingest(node_only("node-1", T0 + 30 * SECOND, 400));
        assert!(node_usage(&store, "node-1").is_none());
        assert_stats_consistent(&store);
    }
}

#[test]
fn missing_node_point_keeps_the_pods() {
    let mut store = store();
    store.ingest(with_web_pod("node-1", T0, 100, MIB));
    let mut second = with_web_pod("node-1", T0 + RESOLUTION, 100 + 15_000_000, MIB);
    second.node_point = None;
    store.ingest(second);
    assert!(node_usage(&store, "node-1").is_none());
    let containers = container_usages(&store, "default", "web").unwrap();
    assert_eq!(containers[0].1.cpu_nanocores, 1_000_000);
}

#[test]
fn pod_usage_is_per_container_with_the_pods_window() {
    let mut store = store();
    store.ingest(with_web_pod("node-1", T0, 5 * SECOND as u64, 10 * MIB));
    assert!(
        store.pod_metrics("default", "web").is_none(),
        "one point is not enough"
    );
    store.ingest(with_web_pod(
        "node-1",
        T0 + 15_011 * MILLISECOND,
        5 * SECOND as u64 + 43_997_602,
        12 * MIB,
    ));
    let metrics = store.pod_metrics("default", "web").unwrap();
    assert_eq!(
        metrics.time,
        Some((T0 + 15_011 * MILLISECOND, 15_011 * MILLISECOND))
    );
    let containers: Vec<_> = metrics.containers().collect();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].name, "app");
    assert_eq!(containers[0].usage.cpu_nanocores, 2_931_024);
    assert_eq!(containers[0].usage.memory_bytes, 12 * MIB);
    assert_eq!(store.stats().pods, 1);
    assert_eq!(store.stats().containers, 1);
    assert_eq!(store.stats().container_points, 1);
}

#[test]
fn fresh_container_gets_synthetic_prev_at_10s() {
    let mut store = store();
    let start = T0 - 10 * SECOND;
    let app = container("app", reading(T0, 2_000_000_000, MIB, start));
    store.ingest(sample(
        "node-1",
        None,
        vec![pod("default", "new", vec![app])],
    ));
    let metrics = store.pod_metrics("default", "new").unwrap();
    assert_eq!(metrics.time, Some((T0, 10 * SECOND)));
    let containers: Vec<_> = metrics.containers().collect();
    assert_eq!(
        containers[0].usage.cpu_nanocores, 200_000_000,
        "2e9 core-ns since start over 10 s"
    );
    assert_eq!(containers[0].usage.memory_bytes, MIB);
}

#[test]
fn container_younger_than_10s_or_older_than_resolution_gets_no_synthetic_prev() {
    for (age, label) in [
        (9 * SECOND, "9s"),
        (RESOLUTION, "one resolution"),
        (3600 * SECOND, "long running"),
    ] {
        let mut store = store();
        let app = container("app", reading(T0, 1_000, MIB, T0 - age));
        store.ingest(sample("node-1", None, vec![pod("default", "p", vec![app])]));
        assert!(store.pod_metrics("default", "p").is_none(), "{label}");
    }
    let mut store = store();
    let app = container("app", reading(T0, 1_000, MIB, T0 + SECOND));
    store.ingest(sample("node-1", None, vec![pod("default", "p", vec![app])]));
    assert!(
        store.pod_metrics("default", "p").is_none(),
        "start after the sample"
    );
    let app = container("app", reading(T0, 1_000, MIB, 0));
    store.ingest(sample("node-1", None, vec![pod("default", "p", vec![app])]));
    assert!(store.pod_metrics("default", "p").is_none(), "unknown start");
}

#[test]
fn fresh_container_shortcut_wins_over_a_real_prev() {
    let mut store = store();
    let start = T0;
    let first = container("app", reading(start + 5 * SECOND, 500_000_000, MIB, start));
    store.ingest(sample(
        "node-1",
        None,
        vec![pod("default", "p", vec![first])],
    ));
    assert!(
        store.pod_metrics("default", "p").is_none(),
        "5 s old: no shortcut, no real prev"
    );
    let second = container(
        "app",
        reading(start + 12 * SECOND, 1_200_000_000, MIB, start),
    );
    store.ingest(sample(
        "node-1",
        None,
        vec![pod("default", "p", vec![second])],
    ));
    let metrics = store.pod_metrics("default", "p").unwrap();
    assert_eq!(
        metrics.time,
        Some((start + 12 * SECOND, 12 * SECOND)),
        "window from the start, not from +5 s"
    );
    assert_eq!(
        metrics.containers().next().unwrap().usage.cpu_nanocores,
        100_000_000
    );
}

#[test]
fn should_detect_container_restart_and_hide_the_pod_until_it_has_two_points() {
    let mut store = store();
    store.ingest(with_web_pod("node-1", T0, 1_000_000_000, MIB));
    store.ingest(with_web_pod("node-1", T0 + RESOLUTION, 1_150_000_000, MIB));
    assert!(store.pod_metrics("default", "web").is_some());
    // Restarted 1 minute after the stored reading: counters start over.
    let restarted = container(
        "app",
        reading(T0 + 120 * SECOND, 50_000_000, MIB, T0 + 60 * SECOND),
    );
    store.ingest(sample(
        "node-1",
        None,
        vec![pod("default", "web", vec![restarted])],
    ));
    assert!(store.pod_metrics("default", "web").is_none());
    assert_eq!(store.stats().container_points, 0);
    let next = container(
        "app",
        reading(T0 + 135 * SECOND, 200_000_000, MIB, T0 + 60 * SECOND),
    );
    store.ingest(sample(
        "node-1",
        None,
        vec![pod("default", "web", vec![next])],
    ));
    let containers = container_usages(&store, "default", "web").unwrap();
    assert_eq!(containers[0].1.cpu_nanocores, 10_000_000);
    assert_eq!(containers[0].1.window, RESOLUTION);
}

#[test]
fn counter_decrease_skips_the_container() {
    let mut store = store();
    let start = T0 - 3600 * SECOND;
    let first = vec![
        container("app", reading(T0, 1_000_000_000, MIB, start)),
        container("sidecar", reading(T0, 1_000_000_000, MIB, start)),
    ];
    store.ingest(sample("node-1", None, vec![pod("default", "p", first)]));
    let second = vec![
        container("app", reading(T0 + RESOLUTION, 1_150_000_000, MIB, start)),
        container("sidecar", reading(T0 + RESOLUTION, 10, MIB, start)),
    ];
    store.ingest(sample("node-1", None, vec![pod("default", "p", second)]));
    let containers = container_usages(&store, "default", "p").unwrap();
    assert_eq!(
        containers.len(),
        1,
        "the pod is served without the container"
    );
    assert_eq!(containers[0].0, "app");
    assert_eq!(containers[0].1.cpu_nanocores, 10_000_000);
}

#[test]
fn start_time_decrease_skips_the_container() {
    let mut store = store();
    let start = T0 - 3600 * SECOND;
    let first = container("app", reading(T0, 1_000, MIB, start));
    store.ingest(sample(
        "node-1",
        None,
        vec![pod("default", "p", vec![first])],
    ));
    let second = container("app", reading(T0 + RESOLUTION, 2_000, MIB, start - SECOND));
    store.ingest(sample(
        "node-1",
        None,
        vec![pod("default", "p", vec![second])],
    ));
    let metrics = store.pod_metrics("default", "p").unwrap();
    assert_eq!(metrics.containers().count(), 0);
    assert_eq!(
        metrics.time, None,
        "no container left: timestamp null, as metrics-server serves it"
    );
}

#[test]
fn one_missing_container_memory_drops_the_whole_pod() {
    let mut store = store();
    let start = T0 - 3600 * SECOND;
    let pod_at = |timestamp: i64, sidecar: ResourcePoint| {
        pod(
            "default",
            "p",
            vec![
                container("app", reading(timestamp, 1_000, MIB, start)),
                container("sidecar", sidecar),
            ],
        )
    };
    store.ingest(sample(
        "node-1",
        None,
        vec![pod_at(T0, reading(T0, 1_000, MIB, start))],
    ));
    let no_memory = ResourcePoint {
        memory_working_set_bytes: None,
        ..reading(T0 + RESOLUTION, 2_000, MIB, start)
    };
    store.ingest(sample(
        "node-1",
        None,
        vec![pod_at(T0 + RESOLUTION, no_memory)],
    ));
    assert!(store.pod_metrics("default", "p").is_none());
    assert_eq!(store.stats().pods, 0, "counted as absent from the sample");
    // Absent means forgotten: the next complete sample has no prev to rate against.
    store.ingest(sample(
        "node-1",
        None,
        vec![pod_at(
            T0 + 2 * RESOLUTION,
            reading(T0 + 2 * RESOLUTION, 3_000, MIB, start),
        )],
    ));
    assert!(store.pod_metrics("default", "p").is_none());
    assert_eq!(store.stats().pods, 1);
}

#[test]
fn zero_cpu_zero_memory_or_no_point_drops_the_pod() {
    let start = T0 - 3600 * SECOND;
    let broken = [
        container("app", reading(T0, 0, MIB, start)),
        container("app", reading(T0, 1_000, 0, start)),
        container(
            "app",
            ResourcePoint {
                cumulative_cpu_nanos: None,
                ..reading(T0, 1_000, MIB, start)
            },
        ),
        ContainerSample {
            name: "app".to_string(),
            point: None,
        },
    ];
    for broken in broken {
        let mut store = store();
        let good = container("good", reading(T0, 1_000, MIB, start));
        store.ingest(sample(
            "node-1",
            None,
            vec![pod("default", "p", vec![good, broken.clone()])],
        ));
        assert_eq!(store.stats().pods, 0, "{broken:?}");
    }
}

/// A store that keeps pods whose containers report a zero working set (metrics-server #1330).
fn store_keeping_zero_memory() -> MetricsStore {
    let mut store = MetricsStore::with_config(StoreConfig {
        keep_zero_memory_containers: true,
        ..StoreConfig::new(RESOLUTION)
    });
    store.set_node_metadata("node-1", Labels::default());
    store
}

/// `default/web` with an `app` container (1 MiB) and a `sidecar` whose working set is `sidecar_memory`.
fn web_with_sidecar(timestamp: i64, cpu: u64, sidecar_memory: Option<u64>) -> NodeSample {
    let start = T0 - 3600 * SECOND;
    let sidecar = ResourcePoint {
        memory_working_set_bytes: sidecar_memory,
        ..reading(timestamp, cpu / 2, 0, start)
    };
    sample(
        "node-1",
        None,
        vec![pod(
            "default",
            "web",
            vec![
                container("app", reading(timestamp, cpu, MIB, start)),
                container("sidecar", sidecar),
            ],
        )],
    )
}

#[test]
fn a_sidecar_reporting_zero_memory_drops_its_pod_by_default() {
    let mut store = store();
    store.ingest(web_with_sidecar(T0, 1_000_000_000, Some(0)));
    store.ingest(web_with_sidecar(T0 + RESOLUTION, 2_500_000_000, Some(0)));
    assert!(store.pod_metrics("default", "web").is_none());
    assert_eq!(store.render_pod("default", "web", 1_700_000_100), None);
    assert_eq!(store.stats().pods, 0);
}

#[test]
fn kept_zero_memory_container_is_served_at_memory_zero() {
    let mut store = store_keeping_zero_memory();
    store.ingest(web_with_sidecar(T0, 1_000_000_000, Some(0)));
    store.ingest(web_with_sidecar(T0 + RESOLUTION, 2_500_000_000, Some(0)));
    let usages = container_usages(&store, "default", "web").unwrap();
    let usage = |cpu_nanocores, memory_bytes| Usage {
        timestamp: T0 + RESOLUTION,
        window: RESOLUTION,
        cpu_nanocores,
        memory_bytes,
    };
    assert_eq!(
        usages,
        vec![
            // 1.5 s of CPU over 15 s, and 0.75 s over 15 s.
            ("app".to_string(), usage(100_000_000, MIB)),
            ("sidecar".to_string(), usage(50_000_000, 0)),
        ]
    );
    let body = store.render_pod("default", "web", 1_700_000_100).unwrap();
    assert_eq!(
        String::from_utf8(body).unwrap(),
        concat!(
            r#"{"kind":"PodMetrics","apiVersion":"metrics.k8s.io/v1beta1","#,
            r#""metadata":{"name":"web","namespace":"default","creationTimestamp":"2023-11-14T22:15:00Z"},"#,
            r#""timestamp":"2023-11-14T22:13:35Z","window":"15s","containers":["#,
            r#"{"name":"app","usage":{"cpu":"100m","memory":"1Mi"}},"#,
            r#"{"name":"sidecar","usage":{"cpu":"50m","memory":"0"}}]}"#,
            "\n"
        )
    );
    assert_eq!(store.stats().servable_pods, 1);
    assert_stats_consistent(&store);
}

#[test]
fn keeping_zero_memory_still_drops_missing_memory_and_zero_or_missing_cpu() {
    let start = T0 - 3600 * SECOND;
    let broken = [
        // Missing working set: not the same as a reported zero.
        container(
            "sidecar",
            ResourcePoint {
                memory_working_set_bytes: None,
                ..reading(T0, 1_000, MIB, start)
            },
        ),
        container("sidecar", reading(T0, 0, 0, start)),
        container("sidecar", reading(T0, 0, MIB, start)),
        container(
            "sidecar",
            ResourcePoint {
                cumulative_cpu_nanos: None,
                ..reading(T0, 1_000, 0, start)
            },
        ),
        ContainerSample {
            name: "sidecar".to_string(),
            point: None,
        },
    ];
    for broken in broken {
        let mut store = store_keeping_zero_memory();
        let app = container("app", reading(T0, 1_000, MIB, start));
        store.ingest(sample(
            "node-1",
            None,
            vec![pod("default", "web", vec![app, broken.clone()])],
        ));
        assert_eq!(store.stats().pods, 0, "{broken:?}");
    }
}

#[test]
fn keeping_zero_memory_does_not_relax_the_node_rule() {
    let mut store = store_keeping_zero_memory();
    store.ingest(sample("node-1", Some(reading(T0, 1_000, 0, 0)), vec![]));
    store.ingest(sample(
        "node-1",
        Some(reading(T0 + RESOLUTION, 2_000, 0, 0)),
        vec![],
    ));
    assert!(node_usage(&store, "node-1").is_none());
    assert_eq!(store.stats().nodes, 0);
}

#[test]
fn pod_missing_from_a_sample_vanishes() {
    let mut store = store();
    store.ingest(with_web_pod("node-1", T0, 1_000, MIB));
    store.ingest(with_web_pod("node-1", T0 + RESOLUTION, 2_000, MIB));
    assert!(store.pod_metrics("default", "web").is_some());
    store.ingest(node_only("node-1", T0 + 2 * RESOLUTION, 3_000));
    assert!(store.pod_metrics("default", "web").is_none());
    assert_eq!(store.stats().pods, 0);
    assert_stats_consistent(&store);
}

#[test]
fn duplicate_pod_in_a_sample_keeps_the_first() {
    let mut store = store();
    let start = T0 - 10 * SECOND;
    let first = pod(
        "default",
        "p",
        vec![container("a", reading(T0, 1_000_000_000, MIB, start))],
    );
    let second = pod(
        "default",
        "p",
        vec![container("b", reading(T0, 2_000_000_000, 2 * MIB, start))],
    );
    store.ingest(sample("node-1", None, vec![first, second]));
    let containers = container_usages(&store, "default", "p").unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].0, "a");
    assert_eq!(store.stats().pods, 1);
}

#[test]
fn duplicate_container_in_a_pod_keeps_the_first() {
    let mut store = store();
    let start = T0 - 10 * SECOND;
    let containers = vec![
        container("a", reading(T0, 1_000_000_000, MIB, start)),
        container("a", reading(T0, 5_000_000_000, MIB, start)),
    ];
    store.ingest(sample(
        "node-1",
        None,
        vec![pod("default", "p", containers)],
    ));
    let containers = container_usages(&store, "default", "p").unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].1.cpu_nanocores, 100_000_000);
}

#[test]
fn pod_time_comes_from_the_container_with_the_earliest_last_point() {
    let mut store = store();
    let start = T0 - 3600 * SECOND;
    let first = vec![
        container("a", reading(T0, 1_000, MIB, start)),
        container("b", reading(T0 - 2 * SECOND, 1_000, MIB, start)),
    ];
    store.ingest(sample("node-1", None, vec![pod("default", "p", first)]));
    let second = vec![
        container("a", reading(T0 + 15 * SECOND, 16_000, MIB, start)),
        container("b", reading(T0 + 14 * SECOND, 17_000, MIB, start)),
    ];
    store.ingest(sample("node-1", None, vec![pod("default", "p", second)]));
    let metrics = store.pod_metrics("default", "p").unwrap();
    assert_eq!(metrics.time, Some((T0 + 14 * SECOND, 16 * SECOND)));
    let cpu: Vec<u64> = metrics
        .containers()
        .map(|c| c.usage.cpu_nanocores)
        .collect();
    assert_eq!(cpu, [1_000, 1_000]);
}

#[test]
fn repeated_container_timestamp_keeps_prev() {
    let mut store = store();
    store.ingest(with_web_pod("node-1", T0, 1_000, MIB));
    store.ingest(with_web_pod("node-1", T0 + 10 * SECOND, 2_000, MIB));
    store.ingest(with_web_pod("node-1", T0 + 10 * SECOND, 3_000, MIB));
    let containers = container_usages(&store, "default", "web").unwrap();
    assert_eq!(containers[0].1.window, 10 * SECOND);
    assert_eq!(containers[0].1.cpu_nanocores, 200);
}

#[test]
fn repeated_timestamp_without_a_prev_does_not_invent_one() {
    // metrics-server indexes a missing prev container here and rates against a zero point
    // (a ~292-year window); the store leaves the container without prev instead.
    let mut store = store();
    store.ingest(with_web_pod("node-1", T0, 1_000, MIB));
    store.ingest(with_web_pod("node-1", T0, 1_000, MIB));
    assert!(store.pod_metrics("default", "web").is_none());
    assert_eq!(store.stats().container_points, 0);
}

#[test]
fn forget_node_drops_its_points_and_its_pods() {
    let mut store = store();
    store.ingest(with_web_pod("node-1", T0, 1_000, MIB));
    store.ingest(with_web_pod("node-1", T0 + RESOLUTION, 2_000, MIB));
    store.ingest(node_only("node-2", T0, 1_000));
    assert!(store.forget_node("node-1"));
    assert!(node_usage(&store, "node-1").is_none());
    assert!(store.pod_metrics("default", "web").is_none());
    assert!(
        store.has_node_metadata("node-1"),
        "metadata belongs to the inventory"
    );
    assert_eq!(store.stats().nodes, 1);
    assert_eq!(store.stats().pods, 0);
    assert!(!store.forget_node("node-1"));
    assert!(!store.forget_node("never-seen"));
    // Like a missed metrics-server tick: the next scrape has nothing to rate against.
    store.ingest(with_web_pod("node-1", T0 + 2 * RESOLUTION, 3_000, MIB));
    assert!(node_usage(&store, "node-1").is_none());
    assert!(store.pod_metrics("default", "web").is_none());
    assert_stats_consistent(&store);
}

#[test]
fn retain_nodes_prunes_every_other_node() {
    let mut store = store();
    store.ingest(with_web_pod("node-1", T0, 1_000, MIB));
    store.ingest(node_only("node-2", T0, 1_000));
    store.ingest(node_only("node-3", T0, 1_000));
    assert_eq!(store.retain_nodes(["node-2"]), 2);
    assert_eq!(store.stats().nodes, 1);
    assert_eq!(store.stats().pods, 0);
    assert_eq!(store.retain_nodes(["node-2"]), 0);
    assert_stats_consistent(&store);
}

#[test]
fn pod_reported_by_a_new_node_is_not_dropped_by_the_old_one() {
    let mut store = store();
    store.ingest(with_web_pod("node-1", T0, 1_000, MIB));
    store.ingest(with_web_pod("node-2", T0 + RESOLUTION, 2_000, MIB));
    // node-1 no longer reports the pod, but node-2 owns it now.
    store.ingest(node_only("node-1", T0 + RESOLUTION, 2_000));
    assert_eq!(
        container_usages(&store, "default", "web").unwrap()[0]
            .1
            .cpu_nanocores,
        66
    );
    store.forget_node("node-1");
    assert!(store.pod_metrics("default", "web").is_some());
    store.forget_node("node-2");
    assert!(store.pod_metrics("default", "web").is_none());
    assert_stats_consistent(&store);
}

#[test]
fn require_pod_metadata_serves_only_known_pods_with_their_labels() {
    let mut store = MetricsStore::new(RESOLUTION, true);
    store.ingest(with_web_pod("node-1", T0, 1_000, MIB));
    store.ingest(with_web_pod("node-1", T0 + RESOLUTION, 2_000, MIB));
    assert!(store.pod_metrics("default", "web").is_none());
    let labels = Labels::new([("app".to_string(), "web".to_string())].into());
    store.set_pod_metadata(PodKey::new("default", "web"), labels.clone());
    assert!(store.has_pod_metadata(&PodKey::new("default", "web")));
    assert_eq!(
        store.pod_metrics("default", "web").unwrap().labels,
        Some(&labels)
    );
    store.remove_pod_metadata(&PodKey::new("default", "web"));
    assert!(store.pod_metrics("default", "web").is_none());
    assert_eq!(store.stats().pods, 1, "metadata does not own the points");
}

#[test]
fn pods_without_metadata_are_served_when_metadata_is_not_required() {
    let mut store = store();
    store.ingest(with_web_pod("node-1", T0, 1_000, MIB));
    store.ingest(with_web_pod("node-1", T0 + RESOLUTION, 2_000, MIB));
    let metrics = store.pod_metrics("default", "web").unwrap();
    assert_eq!(metrics.labels, None);
}

#[test]
fn lists_are_sorted_and_filtered_by_namespace_name_and_labels() {
    let mut store = store();
    let start = T0 - 10 * SECOND;
    let make = |namespace: &str, name: &str| {
        pod(
            namespace,
            name,
            vec![container("c", reading(T0, 1_000_000_000, MIB, start))],
        )
    };
    let pods = vec![
        make("kube-system", "b"),
        make("default", "z"),
        make("kube-system", "a"),
        make("default", "a"),
    ];
    store.ingest(sample("node-2", None, pods));
    store.set_pod_metadata(
        PodKey::new("kube-system", "a"),
        Labels::new([("k8s-app".into(), "dns".into())].into()),
    );
    let names = |list: Vec<PodMetrics<'_>>| -> Vec<String> {
        list.iter()
            .map(|m| format!("{}/{}", m.namespace, m.name))
            .collect()
    };
    let everything = LabelSelector::everything();
    assert_eq!(
        names(store.pod_metrics_list(None, &everything, None)),
        ["default/a", "default/z", "kube-system/a", "kube-system/b"]
    );
    assert_eq!(
        names(store.pod_metrics_list(Some("kube-system"), &everything, None)),
        ["kube-system/a", "kube-system/b"]
    );
    assert_eq!(
        names(store.pod_metrics_list(Some("kube"), &everything, None)),
        Vec::<String>::new()
    );
    assert_eq!(
        names(store.pod_metrics_list(None, &everything, Some("a"))),
        ["default/a", "kube-system/a"]
    );
    assert_eq!(
        names(store.pod_metrics_list(Some("default"), &everything, Some("a"))),
        ["default/a"]
    );
    let dns = LabelSelector::parse("k8s-app=dns").unwrap();
    assert_eq!(
        names(store.pod_metrics_list(None, &dns, None)),
        ["kube-system/a"]
    );
    let not_dns = LabelSelector::parse("k8s-app!=dns").unwrap();
    assert_eq!(
        names(store.pod_metrics_list(Some("kube-system"), &not_dns, None)),
        ["kube-system/b"]
    );

    store.set_node_metadata("node-0", Labels::new([("zone".into(), "a".into())].into()));
    for node in ["node-2", "node-0", "node-1"] {
        store.ingest(node_only(node, T0, 1_000));
        store.ingest(node_only(node, T0 + RESOLUTION, 2_000));
    }
    let nodes = |list: Vec<NodeMetrics<'_>>| -> Vec<String> {
        list.iter().map(|m| m.name.to_string()).collect()
    };
    assert_eq!(
        nodes(store.node_metrics_list(&everything, None)),
        ["node-0", "node-1", "node-2"]
    );
    assert_eq!(
        nodes(store.node_metrics_list(&LabelSelector::parse("zone").unwrap(), None)),
        ["node-0"]
    );
    assert_eq!(
        nodes(store.node_metrics_list(&everything, Some("node-1"))),
        ["node-1"]
    );
    assert_eq!(
        nodes(store.node_metrics_list(&LabelSelector::parse("zone").unwrap(), Some("node-1"))),
        Vec::<String>::new()
    );
}

#[test]
fn ready_needs_a_servable_node_and_a_servable_pod() {
    let mut store = store();
    assert!(!store.ready());
    store.ingest(node_only("node-1", T0, 1_000));
    store.ingest(node_only("node-1", T0 + RESOLUTION, 2_000));
    assert!(
        !store.ready(),
        "nodes alone are not enough (metrics-server v0.9)"
    );
    store.ingest(with_web_pod("node-2", T0, 1_000, MIB));
    assert!(!store.ready());
    store.ingest(with_web_pod("node-2", T0 + RESOLUTION, 2_000, MIB));
    assert!(store.ready());
    store.forget_node("node-2");
    assert!(!store.ready());
}

#[test]
fn stats_count_nodes_pods_and_points() {
    let mut store = store();
    let start = T0 - 3600 * SECOND;
    let two = |timestamp: i64, cpu: u64| {
        pod(
            "default",
            "two",
            vec![
                container("a", reading(timestamp, cpu, MIB, start)),
                container("b", reading(timestamp, cpu, MIB, start)),
            ],
        )
    };
    store.ingest(sample(
        "node-1",
        Some(reading(T0, 1_000, MIB, 0)),
        vec![two(T0, 1_000)],
    ));
    store.ingest(sample(
        "node-1",
        Some(reading(T0 + RESOLUTION, 2_000, MIB, 0)),
        vec![two(T0 + RESOLUTION, 2_000)],
    ));
    store.ingest(node_only("node-2", T0, 1_000));
    let expected = StoreStats {
        nodes: 2,
        node_points: 1,
        pods: 1,
        containers: 2,
        container_points: 2,
        servable_pods: 1,
    };
    assert_eq!(store.stats(), expected);
    assert_stats_consistent(&store);
}

#[test]
fn fractional_rates_truncate_like_go() {
    let last = Point {
        timestamp: T0 + 15_004 * MILLISECOND,
        start_time: UNKNOWN_START_TIME,
        cumulative_cpu: 2,
        memory: 1,
    };
    let prev = Point {
        timestamp: T0,
        start_time: UNKNOWN_START_TIME,
        cumulative_cpu: 1,
        memory: 1,
    };
    assert_eq!(resource_usage(&last, &prev).unwrap().cpu_nanocores, 0);
    let last = Point {
        cumulative_cpu: 1 + 15_004_000_000,
        ..last
    };
    assert_eq!(
        resource_usage(&last, &prev).unwrap().cpu_nanocores,
        1_000_000_000
    );
    let last = Point {
        cumulative_cpu: 1 + 15_003_999_999,
        ..last
    };
    assert_eq!(
        resource_usage(&last, &prev).unwrap().cpu_nanocores,
        999_999_999
    );
}

#[test]
fn ingest_encoded_rejects_bytes_that_are_not_a_node_sample() {
    let mut store = store();
    assert!(store.ingest_encoded(&[0xff, 0xff, 0xff]).is_err());
    let encoded = with_web_pod("node-1", T0, 1_000, MIB).to_bytes();
    store.ingest_encoded(&encoded).unwrap();
    assert_eq!(store.stats().pods, 1);
}

#[test]
fn every_item_of_every_response_counts_once_towards_freshness() {
    use crate::render::freshness::FRESHNESS_BUCKET_COUNT;
    use crate::render::table::{MetaVersion, RowObject, TableOptions};

    let mut store = store();
    store.ingest(with_web_pod("node-1", T0, 1_000 * SECOND as u64, MIB));
    store.ingest(with_web_pod(
        "node-1",
        T0 + 15 * SECOND,
        1_003 * SECOND as u64,
        MIB,
    ));
    // Both points of node-1 and default/web are timed T0 + 15 s; node-2 has none.
    let three_seconds_later = RequestTime {
        unix_seconds: T0 / SECOND + 18,
        unix_nanos: T0 + 18 * SECOND,
    };
    let everything = LabelSelector::everything();
    let json = View::Object(Encoding::Json);
    let protobuf = View::Object(Encoding::Protobuf);
    let table = View::Table(TableOptions {
        version: MetaVersion::V1,
        row_object: RowObject::Metadata,
    });
    let web_excluded = HashSet::from(["web".to_string()]);
    let all_pods = PodSelection::new(None, &everything, None);

    store.render_node_list(&everything, None, three_seconds_later);
    store.render_node_view(protobuf, "node-1", three_seconds_later);
    assert_eq!(
        store.render_node_view(json, "node-2", three_seconds_later),
        None
    );
    store.render_pod_list_view(protobuf, &all_pods, three_seconds_later);
    store.render_pod_list_view(table, &all_pods, three_seconds_later);
    store.render_pod_list_view(
        json,
        &PodSelection {
            excluded_names: Some(&web_excluded),
            ..all_pods
        },
        three_seconds_later,
    );
    store.render_pod("default", "web", three_seconds_later);
    assert_eq!(
        store.render_pod("default", "absent", three_seconds_later),
        None
    );
    store.render_pod_view(
        json,
        "default",
        "web",
        RequestTime {
            unix_seconds: T0 / SECOND + 35,
            unix_nanos: T0 + 35 * SECOND,
        },
    );

    let freshness = store.freshness();
    let mut expected = [0u64; FRESHNESS_BUCKET_COUNT + 1];
    // 3 s: 2.5377… < 3 ≤ 3.4614…; five items (node list, node get, pod list as protobuf and
    // as a table, pod get). The list without web returned nothing.
    expected[4] = 5;
    // 20 s: 16.3429… < 20 ≤ 22.2917…
    expected[10] = 1;
    assert_eq!(freshness.buckets, expected);
    assert_eq!(freshness.sum_seconds, 5.0 * 3.0 + 20.0);
}

#[test]
fn a_single_container_pod_takes_96_bytes_of_slab_and_no_container_allocation() {
    // What keeps a 150k-pod store near 150 bytes per pod (with the name's allocation and the
    // namespace's and node's u32 ids): guard it against growing unnoticed.
    assert_eq!(std::mem::size_of::<ContainerPoints>(), 64);
    assert_eq!(std::mem::size_of::<Containers>(), 64);
    assert_eq!(std::mem::size_of::<PodSlot>(), 96);
}

/// `count` single-container pods on `node`, named `pod-<first>` … in namespaces `ns-<i % 7>`.
fn many_pods(node: &str, timestamp: i64, cpu: u64, first: usize, count: usize) -> NodeSample {
    let start = T0 - 3600 * SECOND;
    let pods = (first..first + count)
        .map(|index| {
            pod(
                &format!("ns-{}", index % 7),
                &format!("pod-{index}"),
                vec![container("app", reading(timestamp, cpu, MIB, start))],
            )
        })
        .collect();
    sample(node, Some(reading(timestamp, cpu, 1 << 30, 0)), pods)
}

#[test]
fn thousands_of_pods_keep_their_points_and_owners_when_the_slab_is_laid_out_again() {
    let mut store = store();
    // Enough pods, added node by node, for the slab to be laid out again several times.
    for round in 0..2 {
        let timestamp = T0 + round * 15 * SECOND;
        let cpu = 1_000 * SECOND as u64 + round as u64 * 15 * SECOND as u64 / 10;
        for node in 0..6 {
            store.ingest(many_pods(
                &format!("node-{node}"),
                timestamp,
                cpu,
                node * 500,
                500,
            ));
        }
    }
    assert_eq!(store.stats().servable_pods, 3_000);
    assert_stats_consistent(&store);
    // 100 millicores each: 1.5 core-seconds over 15 s.
    assert_eq!(
        container_usages(&store, "ns-3", "pod-2999").unwrap()[0]
            .1
            .cpu_nanocores,
        100_000_000
    );
    let everything = LabelSelector::everything();
    let ns_3 = store.pod_metrics_list(Some("ns-3"), &everything, None);
    assert_eq!(ns_3.len(), 429);
    assert!(ns_3.windows(2).all(|pair| pair[0].name < pair[1].name));

    // node-2 now reports only the first half of its pods; node-4 is forgotten, then reports
    // only pod-0 (node-0's until then).
    let later = T0 + 30 * SECOND;
    let cpu = 1_003 * SECOND as u64;
    store.ingest(many_pods("node-2", later, cpu, 1_000, 250));
    store.forget_node("node-4");
    store.ingest(many_pods("node-4", later, cpu, 0, 1));
    assert_stats_consistent(&store);
    assert_eq!(store.stats().pods, 3_000 - 250 - 500);
    assert!(store.pod_metrics("ns-3", "pod-1249").is_some());
    assert!(store.pod_metrics("ns-4", "pod-1250").is_none());
    assert!(store.pod_metrics("ns-0", "pod-2002").is_none());
    // The same pod reported by another node keeps its previous point.
    assert!(store.pod_metrics("ns-0", "pod-0").is_some());
    // node-0's next sample leaves pod-0 out: node-4 owns it now, so it stays.
    store.ingest(many_pods("node-0", later, cpu, 1, 499));
    assert!(store.pod_metrics("ns-0", "pod-0").is_some());
    assert_stats_consistent(&store);

    // node-4's pods come back (into the freed slots), and pod-0, which it leaves out, goes.
    store.ingest(many_pods("node-4", later, cpu, 2_000, 500));
    assert_eq!(store.stats().pods, 3_000 - 250 - 1);
    assert!(store.pod_metrics("ns-0", "pod-0").is_none());
    assert_stats_consistent(&store);
}

#[test]
fn equal_label_sets_and_container_names_are_stored_once_and_freed_with_their_last_pod() {
    let mut store = store();
    let replica_labels = || Labels::new([("app".into(), "web".into())].into());
    store.set_pod_metadata(PodKey::new("default", "web-1"), replica_labels());
    store.set_pod_metadata(PodKey::new("default", "web-2"), replica_labels());
    let first = store.pod_id("default", "web-1").unwrap();
    let second = store.pod_id("default", "web-2").unwrap();
    assert!(Arc::ptr_eq(
        store.pods[first as usize].labels.as_ref().unwrap(),
        store.pods[second as usize].labels.as_ref().unwrap()
    ));
    assert_eq!(store.label_sets.len(), 1);

    let start = T0 - 3600 * SECOND;
    let replica = |name: &str| {
        pod(
            "default",
            name,
            vec![container("app", reading(T0, 1_000, MIB, start))],
        )
    };
    store.ingest(sample(
        "node-1",
        None,
        vec![replica("web-1"), replica("web-2")],
    ));
    assert_eq!(store.container_names.ids.len(), 1);
    assert_eq!(store.container_names.references, [2]);

    store.remove_pod_metadata(&PodKey::new("default", "web-1"));
    assert_eq!(store.label_sets.len(), 1);
    store.remove_pod_metadata(&PodKey::new("default", "web-2"));
    assert!(store.label_sets.is_empty());
    store.forget_node("node-1");
    assert!(store.container_names.ids.is_empty());
    assert_eq!(store.stats().pods, 0);
    assert_eq!(store.pod_id("default", "web-1"), None);
    assert!(store.namespace_ids.is_empty());
    assert_stats_consistent(&store);
}
