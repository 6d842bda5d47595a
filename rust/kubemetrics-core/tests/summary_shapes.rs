//! The summary decoder on shapes no captured payload has (reference kubelet-and-clients.md §1.4,
//! §1.5): the `only_cpu_and_memory=true` field set, null and absent lists, missing times, escaped
//! names. Each body is written by hand from the kubelet's types, compact like an unindented encoder.

mod common;

use common::{point, utc};
use kubemetrics_core::sample::{ContainerSample, NodeSample, PodSample};
use kubemetrics_core::summary::decode_summary;

const SCRAPE_TIME: i64 = 1_900_000_000_000_000_000;

fn decode(body: &str) -> NodeSample {
    decode_summary(body.as_bytes(), "node-a", SCRAPE_TIME, usize::MAX)
        .unwrap_or_else(|error| panic!("{error}\n{body}"))
}

const NODE: &str = r#""node":{"nodeName":"kind-worker","startTime":"2026-01-01T00:00:00Z",
    "cpu":{"time":"2026-06-26T10:14:35Z","usageNanoCores":1,"usageCoreNanoSeconds":5000},
    "memory":{"time":"2026-06-26T10:14:36Z","workingSetBytes":7000}}"#;

#[test]
fn only_cpu_and_memory_field_set() {
    // GetCPUAndMemoryStats: node and pods carry cpu/memory/swap only, containers name/startTime/
    // cpu/memory.
    let body = r#"{"node":{"nodeName":"kind-worker","systemContainers":[{"name":"kubelet",
        "startTime":"2026-06-26T10:00:00Z","cpu":{"time":"2026-06-26T10:14:30Z","usageCoreNanoSeconds":1},
        "memory":{"time":"2026-06-26T10:14:30Z","workingSetBytes":2}}],
        "startTime":"2026-06-26T09:00:00Z",
        "cpu":{"time":"2026-06-26T10:14:35Z","usageNanoCores":25000000,"usageCoreNanoSeconds":62148052000},
        "memory":{"time":"2026-06-26T10:14:35Z","availableBytes":1,"usageBytes":2,"workingSetBytes":917110784,
          "rssBytes":3,"pageFaults":4,"majorPageFaults":5},
        "swap":{"time":"2026-06-26T10:14:35Z","swapUsageBytes":0}},
      "pods":[{"podRef":{"name":"web-0","namespace":"shop","uid":"u1"},"startTime":"2026-06-26T10:12:00Z",
        "containers":[
          {"name":"app","startTime":"2026-06-26T10:12:05Z",
           "cpu":{"time":"2026-06-26T10:14:31Z","usageNanoCores":9,"usageCoreNanoSeconds":1877547000},
           "memory":{"time":"2026-06-26T10:14:32Z","workingSetBytes":66174976},
           "swap":{"time":"2026-06-26T10:14:31Z","swapUsageBytes":0}},
          {"name":"sidecar","startTime":"2026-06-26T10:12:06Z",
           "cpu":{"time":"2026-06-26T10:14:33Z","usageCoreNanoSeconds":12},
           "memory":{"time":"2026-06-26T10:14:33Z","workingSetBytes":34}}],
        "cpu":{"time":"2026-06-26T10:14:31Z","usageCoreNanoSeconds":1877547012},
        "memory":{"time":"2026-06-26T10:14:31Z","workingSetBytes":66175010}}]}"#;
    let expected = NodeSample {
        node: "node-a".to_owned(),
        scrape_time_unix_nanos: SCRAPE_TIME,
        node_point: Some(point(
            utc(2026, 6, 26, 10, 14, 35),
            Some(62_148_052_000),
            Some(917_110_784),
            0,
        )),
        pods: vec![PodSample {
            namespace: "shop".to_owned(),
            name: "web-0".to_owned(),
            containers: vec![
                ContainerSample {
                    name: "app".to_owned(),
                    point: Some(point(
                        utc(2026, 6, 26, 10, 14, 31),
                        Some(1_877_547_000),
                        Some(66_174_976),
                        utc(2026, 6, 26, 10, 12, 5),
                    )),
                },
                ContainerSample {
                    name: "sidecar".to_owned(),
                    point: Some(point(
                        utc(2026, 6, 26, 10, 14, 33),
                        Some(12),
                        Some(34),
                        utc(2026, 6, 26, 10, 12, 6),
                    )),
                },
            ],
        }],
    };
    assert_eq!(decode(body), expected);
}

#[test]
fn null_and_absent_containers_mean_a_pod_without_containers() {
    let body = format!(
        r#"{{{NODE},"pods":[
        {{"podRef":{{"name":"sandbox-only","namespace":"a"}},"startTime":null,"containers":null}},
        {{"podRef":{{"name":"no-key","namespace":"a"}}}},
        {{"podRef":{{"name":"empty","namespace":"a"}},"containers":[]}}]}}"#
    );
    let sample = decode(&body);
    let pods: Vec<(&str, usize)> = sample
        .pods
        .iter()
        .map(|pod| (pod.name.as_str(), pod.containers.len()))
        .collect();
    assert_eq!(pods, [("sandbox-only", 0), ("no-key", 0), ("empty", 0)]);
}

#[test]
fn null_absent_and_empty_pods_mean_no_pods_but_keep_the_node() {
    for pods in [r#","pods":null"#, "", r#","pods":[]"#] {
        let body = format!("{{{NODE}{pods}}}");
        let sample = decode(&body);
        assert!(sample.pods.is_empty(), "{body}");
        assert_eq!(
            sample.node_point,
            Some(point(
                utc(2026, 6, 26, 10, 14, 35),
                Some(5000),
                Some(7000),
                0
            )),
            "{body}"
        );
    }
}

#[test]
fn node_point_falls_back_to_memory_time_and_needs_some_time() {
    let memory_only =
        r#"{"node":{"memory":{"time":"2026-06-26T10:14:36Z","workingSetBytes":7000}},"pods":[]}"#;
    assert_eq!(
        decode(memory_only).node_point,
        Some(point(utc(2026, 6, 26, 10, 14, 36), None, Some(7000), 0))
    );
    let cpu_time_null = r#"{"node":{"cpu":{"time":null,"usageCoreNanoSeconds":5},
        "memory":{"time":"2026-06-26T10:14:36Z","workingSetBytes":7000}},"pods":[]}"#;
    assert_eq!(
        decode(cpu_time_null).node_point,
        Some(point(utc(2026, 6, 26, 10, 14, 36), Some(5), Some(7000), 0))
    );
    for no_time in [
        r#"{"node":{"nodeName":"x"},"pods":[]}"#,
        r#"{"node":{"cpu":null,"memory":null},"pods":[]}"#,
        r#"{"node":{"cpu":{"usageCoreNanoSeconds":5},"memory":{"workingSetBytes":7}},"pods":[]}"#,
    ] {
        assert_eq!(decode(no_time).node_point, None, "{no_time}");
    }
}

#[test]
fn container_without_sample_times_is_timed_at_the_scrape() {
    let body = format!(
        r#"{{{NODE},"pods":[{{"podRef":{{"name":"p","namespace":"a"}},"containers":[
        {{"name":"untimed","startTime":null,"cpu":{{"usageCoreNanoSeconds":3}},"memory":{{"workingSetBytes":4}}}},
        {{"name":"bare"}},
        {{"name":"memory-timed","startTime":"2026-06-26T10:00:00Z","cpu":{{"time":null,"usageCoreNanoSeconds":5}},
          "memory":{{"time":"2026-06-26T10:14:36Z","workingSetBytes":6}}}}]}}]}}"#
    );
    let sample = decode(&body);
    let points: Vec<_> = sample.pods[0]
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.point.clone().expect("point")))
        .collect();
    assert_eq!(
        points,
        [
            ("untimed", point(SCRAPE_TIME, Some(3), Some(4), 0)),
            ("bare", point(SCRAPE_TIME, None, None, 0)),
            (
                "memory-timed",
                point(
                    utc(2026, 6, 26, 10, 14, 36),
                    Some(5),
                    Some(6),
                    utc(2026, 6, 26, 10, 0, 0)
                )
            ),
        ]
    );
}

#[test]
fn escaped_and_non_ascii_names_are_unescaped() {
    let body = format!(
        r#"{{{NODE},"pods":[{{"podRef":{{"name":"caf\u00e9-\"q\"","namespace":"ns\/x"}},
        "containers":[{{"name":"日本\t語"}}]}}]}}"#
    );
    let sample = decode(&body);
    assert_eq!(sample.pods[0].name, "café-\"q\"");
    assert_eq!(sample.pods[0].namespace, "ns/x");
    assert_eq!(sample.pods[0].containers[0].name, "日本\t語");
}

#[test]
fn fractional_seconds_and_offsets_in_times() {
    let body = r#"{"node":{"cpu":{"time":"2026-06-26T12:14:35.25+02:00","usageCoreNanoSeconds":1}},
        "pods":[{"podRef":{"name":"p","namespace":"a"},"containers":[{"name":"c",
        "startTime":"2026-06-26T10:14:35.000000001Z","cpu":{"time":"2026-06-26T05:14:35-05:00"}}]}]}"#;
    let sample = decode(body);
    let whole = utc(2026, 6, 26, 10, 14, 35);
    assert_eq!(
        sample.node_point.expect("node point").timestamp_unix_nanos,
        whole + 250_000_000
    );
    let container = sample.pods[0].containers[0].point.clone().expect("point");
    assert_eq!(container.start_time_unix_nanos, whole + 1);
    assert_eq!(container.timestamp_unix_nanos, whole);
}

#[test]
fn counters_use_the_whole_uint64_range() {
    let body = r#"{"node":{"cpu":{"time":"2026-06-26T10:14:35Z","usageCoreNanoSeconds":18446744073709551615},
        "memory":{"workingSetBytes":0}},"pods":[]}"#;
    let node_point = decode(body).node_point.expect("node point");
    assert_eq!(node_point.cumulative_cpu_nanos, Some(u64::MAX));
    assert_eq!(node_point.memory_working_set_bytes, Some(0));
}

#[test]
fn unknown_fields_of_any_shape_are_skipped() {
    let body = r#"{"apiVersion":"x","node":{"future":{"deep":[1,2.5e10,{"a":null}],"t":true},
        "cpu":{"time":"2026-06-26T10:14:35Z","psi":{"full":{"total":1,"avg10":0.5}},"usageCoreNanoSeconds":9}},
        "pods":[{"extra":[[[]]],"podRef":{"name":"p","namespace":"a","uid":""},
        "containers":[{"name":"c","accelerators":[{"make":"nvidia"}],"userDefinedMetrics":null}]}]}"#;
    let sample = decode(body);
    assert_eq!(
        sample.node_point.expect("node point").cumulative_cpu_nanos,
        Some(9)
    );
    assert_eq!(sample.pods[0].containers[0].name, "c");
}

#[test]
fn the_encoded_sample_round_trips() {
    let body = format!(
        r#"{{{NODE},"pods":[{{"podRef":{{"name":"p","namespace":"a"}},"containers":[{{"name":"c",
        "startTime":"2026-06-26T10:00:00Z","cpu":{{"time":"2026-06-26T10:14:31Z","usageCoreNanoSeconds":0}}}}]}}]}}"#
    );
    let sample = decode(&body);
    let decoded = NodeSample::from_bytes(&sample.to_bytes()).expect("protobuf decodes");
    assert_eq!(decoded, sample);
    // Some(0) survives the wire as present-and-zero, not as absent.
    let point = decoded.pods[0].containers[0].point.clone().expect("point");
    assert_eq!(point.cumulative_cpu_nanos, Some(0));
    assert_eq!(point.memory_working_set_bytes, None);
}
