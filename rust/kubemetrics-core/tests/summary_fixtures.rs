//! The summary decoder on every real kubelet `/stats/summary` payload in
//! `shared/fixtures/kubelet/summary/`, with values read from the files.

mod common;

use std::time::Instant;

use common::{
    container_count, only_container, pod, point, read_summary_fixture, summary_fixture_names, utc,
};
use kubemetrics_core::sample::{NodeSample, ResourcePoint};
use kubemetrics_core::summary::decode_summary;

const SCRAPE_TIME: i64 = 1_900_000_000_000_000_000;
const NO_LIMIT: usize = usize::MAX;

fn decode_fixture(name: &str) -> NodeSample {
    let body = read_summary_fixture(name);
    decode_summary(&body, "n1", SCRAPE_TIME, NO_LIMIT)
        .unwrap_or_else(|error| panic!("{name}: {error}"))
}

#[test]
fn every_fixture_decodes_under_the_inventory_node_name() {
    let names = summary_fixture_names();
    for expected in [
        "legacy-no-pod-level-cpu-memory.json",
        "metrics-server-edgecases-v1.17.json",
        "minikube-v1.15-nri-datagen.json",
        "minikube-v1.19-nri-datagen.json",
        "minikube-v1.28-nri-datagen.json",
        "minikube-v1.35-nri-datagen.json",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "fixture {expected} is missing"
        );
    }
    for name in &names {
        let sample = decode_fixture(name);
        // The payload's nodeName ("minikube", "fooNode", ...) is not the key; the scrape target is.
        assert_eq!(sample.node, "n1", "{name}");
        assert_eq!(sample.scrape_time_unix_nanos, SCRAPE_TIME, "{name}");
        assert!(sample.node_point.is_some(), "{name}: node point");
        assert!(!sample.pods.is_empty(), "{name}: pods");
        for pod in &sample.pods {
            for container in &pod.containers {
                assert!(
                    container.point.is_some(),
                    "{name}: {}/{}",
                    pod.name,
                    container.name
                );
            }
        }
    }
}

#[test]
fn minikube_v1_35_full_summary_with_psi_io_and_swap() {
    let sample = decode_fixture("minikube-v1.35-nri-datagen.json");
    assert_eq!(
        sample.node_point,
        Some(ResourcePoint {
            timestamp_unix_nanos: utc(2026, 6, 26, 10, 14, 35),
            cumulative_cpu_nanos: Some(62_148_052_000),
            memory_working_set_bytes: Some(917_110_784),
            start_time_unix_nanos: 0,
        })
    );
    assert_eq!(sample.pods.len(), 17);
    assert_eq!(container_count(&sample), 17);

    let (container, etcd) = only_container(pod(&sample, "kube-system", "etcd-datagen-1-35"));
    assert_eq!(container.name, "etcd");
    assert_eq!(
        *etcd,
        point(
            utc(2026, 6, 26, 10, 14, 30),
            Some(2_628_368_000),
            Some(44_290_048),
            utc(2026, 6, 26, 10, 12, 10),
        )
    );

    let (container, hpa) = only_container(pod(&sample, "scraper", "e2e-hpa-6cd8d99884-tggnr"));
    assert_eq!(container.name, "php-apache");
    assert_eq!(
        *hpa,
        point(
            utc(2026, 6, 26, 10, 14, 39),
            Some(24_455_000),
            Some(11_624_448),
            utc(2026, 6, 26, 10, 13, 0),
        )
    );
}

#[test]
fn minikube_v1_35_pods_keep_payload_order() {
    let sample = decode_fixture("minikube-v1.35-nri-datagen.json");
    let first: Vec<(&str, &str)> = sample
        .pods
        .iter()
        .take(3)
        .map(|pod| (pod.namespace.as_str(), pod.name.as_str()))
        .collect();
    assert_eq!(
        first,
        [
            ("kube-system", "kube-controller-manager-datagen-1-35"),
            ("kube-system", "kube-scheduler-datagen-1-35"),
            ("kube-system", "kube-proxy-8k9zt"),
        ]
    );
}

#[test]
fn minikube_v1_28_with_swap() {
    let sample = decode_fixture("minikube-v1.28-nri-datagen.json");
    assert_eq!(
        sample.node_point,
        Some(point(
            utc(2025, 4, 3, 18, 14, 49),
            Some(133_968_365_000),
            Some(949_145_600),
            0
        ))
    );
    assert_eq!(sample.pods.len(), 17);
    assert_eq!(container_count(&sample), 17);
    let (container, hpa) = only_container(pod(&sample, "scraper", "e2e-hpa-97d79d4cd-pzw2l"));
    assert_eq!(container.name, "php-apache");
    assert_eq!(
        *hpa,
        point(
            utc(2025, 4, 3, 18, 14, 44),
            Some(360_219_000),
            Some(33_579_008),
            utc(2025, 4, 3, 18, 14, 5),
        )
    );
}

#[test]
fn minikube_v1_19_null_start_time_and_zero_node_usage_are_kept() {
    // systemContainers[pods].startTime is null here; system containers are skipped, so it is
    // accepted. The node reports 0 CPU and 0 working set: kept as Some(0) for the store to judge.
    let sample = decode_fixture("minikube-v1.19-nri-datagen.json");
    assert_eq!(
        sample.node_point,
        Some(point(utc(2023, 5, 31, 2, 20, 29), Some(0), Some(0), 0))
    );
    assert_eq!(sample.pods.len(), 17);
    assert_eq!(container_count(&sample), 17);
    let (container, coredns) =
        only_container(pod(&sample, "kube-system", "coredns-f9fd979d6-z86bk"));
    assert_eq!(container.name, "coredns");
    assert_eq!(
        *coredns,
        point(
            utc(2023, 5, 31, 2, 20, 33),
            Some(2_352_657_000),
            Some(8_966_144),
            utc(2023, 5, 31, 2, 16, 19),
        )
    );
}

#[test]
fn minikube_v1_15_keeps_duplicate_container_names_in_order() {
    // Docker-era payload: each pod lists its container twice (two cgroup instances). The store,
    // not the decoder, decides what to do with duplicates.
    let sample = decode_fixture("minikube-v1.15-nri-datagen.json");
    assert_eq!(
        sample.node_point,
        Some(point(
            utc(2020, 6, 3, 8, 54, 29),
            Some(424_427_914_128),
            Some(1_265_197_056),
            0
        ))
    );
    assert_eq!(sample.pods.len(), 14);
    assert_eq!(container_count(&sample), 28);
    let apiserver = pod(&sample, "kube-system", "kube-apiserver-minikube");
    let names: Vec<&str> = apiserver
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["kube-apiserver", "kube-apiserver"]);
    let points: Vec<ResourcePoint> = apiserver
        .containers
        .iter()
        .map(|c| c.point.clone().expect("point"))
        .collect();
    let started = utc(2020, 6, 3, 8, 27, 48);
    assert_eq!(
        points,
        [
            point(
                utc(2020, 6, 3, 8, 54, 20),
                Some(71_550_463_563),
                Some(280_944_640),
                started
            ),
            point(
                utc(2020, 6, 3, 8, 54, 28),
                Some(71_990_499_159),
                Some(280_952_832),
                started
            ),
        ]
    );
}

#[test]
fn legacy_payload_without_pod_level_stats() {
    let sample = decode_fixture("legacy-no-pod-level-cpu-memory.json");
    assert_eq!(
        sample.node_point,
        Some(point(
            utc(2018, 1, 24, 16, 40, 0),
            Some(353_998_913_059_080),
            Some(540_618_752),
            0
        ))
    );
    assert_eq!(sample.pods.len(), 2);
    assert_eq!(container_count(&sample), 3);
    let monitoring = pod(&sample, "kube-system", "newrelic-infra-monitoring-pjp0v");
    let containers: Vec<(&str, ResourcePoint)> = monitoring
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.point.clone().expect("point")))
        .collect();
    assert_eq!(
        containers,
        [
            (
                "kube-state-metrics",
                point(
                    utc(2017, 11, 30, 14, 48, 10),
                    Some(4_284_675_040),
                    Some(15_196_160),
                    utc(2017, 11, 30, 9, 12, 51),
                )
            ),
            (
                "newrelic-infra",
                point(
                    utc(2017, 11, 30, 14, 48, 12),
                    Some(303_855_795_298),
                    Some(38_313_984),
                    utc(2017, 11, 30, 9, 12, 44),
                )
            ),
        ]
    );
}

#[test]
fn metrics_server_edge_cases_decode_every_pod_as_reported() {
    // metrics-server's decoder keeps only "all-fields"; ours keeps all seven, with exactly what
    // each reported, and leaves the dropping to the store.
    let sample = decode_fixture("metrics-server-edgecases-v1.17.json");
    assert_eq!(
        sample.node_point,
        Some(point(
            utc(2020, 4, 16, 20, 25, 28),
            Some(519_978_197_128),
            Some(1_417_551_872),
            0
        ))
    );
    let started = utc(2020, 4, 16, 20, 17, 46);
    let sampled = utc(2020, 4, 16, 20, 25, 30);
    let cpu = Some(29_328_792);
    let memory = Some(1_449_984);
    let expected = [
        ("all-fields", point(sampled, cpu, memory, started)),
        (
            "zero usageCoreNanoSeconds",
            point(sampled, Some(0), memory, started),
        ),
        (
            "no usageCoreNanoSeconds",
            point(sampled, None, memory, started),
        ),
        // No cpu object: timed by memory.time.
        ("no CPU", point(sampled, None, memory, started)),
        (
            "zero workingSetBytes",
            point(sampled, cpu, Some(0), started),
        ),
        ("no workingSetBytes", point(sampled, cpu, None, started)),
        ("no memory", point(sampled, cpu, None, started)),
    ];
    assert_eq!(sample.pods.len(), expected.len());
    for (pod, (name, expected_point)) in sample.pods.iter().zip(expected) {
        assert_eq!(pod.namespace, "default");
        assert_eq!(pod.name, name);
        let (container, decoded) = only_container(pod);
        assert_eq!(container.name, "container", "{name}");
        assert_eq!(*decoded, expected_point, "{name}");
    }
}

/// `cargo test --release -p kubemetrics-core --test summary_fixtures -- --ignored --nocapture`
///
/// Measured on the shared 2-core development machine (release): 120–200 µs per decode of the
/// 93 KB v1.35 payload (≈500–770 MB/s, depending on load). serde_json merely skipping the same
/// document (`IgnoredAny`) takes about 90% of that, so the decoder sits at serde_json's floor.
/// At 5,000 nodes × 30 pods (~140 KB each) every 15 s that is about a tenth of one core.
#[test]
#[ignore = "timing, run in release with --nocapture"]
fn decoding_the_largest_fixture_is_fast() {
    let body = read_summary_fixture("minikube-v1.35-nri-datagen.json");
    let rounds = 2_000;
    let started = Instant::now();
    let mut pods = 0;
    for _ in 0..rounds {
        let sample = decode_summary(&body, "n1", SCRAPE_TIME, NO_LIMIT).expect("decodes");
        pods += sample.pods.len();
    }
    let elapsed = started.elapsed();
    let per_decode = elapsed / rounds;
    let throughput = body.len() as f64 * f64::from(rounds) / elapsed.as_secs_f64() / 1e6;
    println!(
        "minikube-v1.35 ({} bytes, 17 pods): {per_decode:?} per decode, {throughput:.0} MB/s",
        body.len()
    );
    assert_eq!(pods, 17 * rounds as usize);
}
