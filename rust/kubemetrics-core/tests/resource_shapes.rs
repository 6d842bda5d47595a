//! What the `/metrics/resource` decoder makes of each shape the text format allows: label order
//! and escapes, number forms, line endings, comments, families it must not confuse, times, and
//! how series group into pods. Bodies are written by hand in the kubelet's style (see
//! `shared/reference/kubelet-and-clients.md` §2.3); each test says what it varies.

mod common;

use common::{only_container, pod, point};
use kubemetrics_core::error::{DecodeError, DecodeErrorKind};
use kubemetrics_core::resource::decode_resource_metrics;
use kubemetrics_core::sample::{NodeSample, ResourcePoint};

const SCRAPE_TIME: i64 = 1_900_000_000_000_000_000;
const NO_LIMIT: usize = usize::MAX;

const fn ms(milliseconds: i64) -> i64 {
    milliseconds * 1_000_000
}

fn decode(body: &str) -> NodeSample {
    decode_resource_metrics(body.as_bytes(), "n1", SCRAPE_TIME, NO_LIMIT)
        .unwrap_or_else(|error| panic!("{error}\n{body}"))
}

fn decode_error(body: &str) -> DecodeError {
    match decode_resource_metrics(body.as_bytes(), "n1", SCRAPE_TIME, NO_LIMIT) {
        Ok(sample) => panic!("expected an error for {body:?}, decoded {sample:?}"),
        Err(error) => error,
    }
}

/// A container's name and point when the body has exactly one pod with one container.
fn single_container(sample: &NodeSample) -> (String, String, String, ResourcePoint) {
    assert_eq!(sample.pods.len(), 1, "{sample:?}");
    let pod = &sample.pods[0];
    let (container, point) = only_container(pod);
    (
        pod.namespace.clone(),
        pod.name.clone(),
        container.name.clone(),
        point.clone(),
    )
}

const COREDNS: &str =
    r#"{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"}"#;

#[test]
fn labels_are_read_in_any_order_and_extra_labels_are_ignored() {
    let orders = [
        r#"{container="c",namespace="ns",pod="p"}"#,
        r#"{pod="p",container="c",namespace="ns"}"#,
        r#"{namespace="ns",pod="p",container="c"}"#,
        r#"{id="/kubepods/x",pod="p",image="registry/app:1",namespace="ns",container="c",name="k8s_c"}"#,
        // Blanks between tokens and a trailing comma are valid exposition syntax.
        r#"{ container = "c" ,	namespace="ns", pod="p", }"#,
    ];
    for labels in orders {
        let body = format!(
            "container_cpu_usage_seconds_total{labels} 1.5 1633253812125\n\
             container_memory_working_set_bytes{labels} 2048 1633253812125\n"
        );
        let sample = decode(&body);
        assert_eq!(
            single_container(&sample),
            (
                "ns".to_owned(),
                "p".to_owned(),
                "c".to_owned(),
                point(ms(1_633_253_812_125), Some(1_500_000_000), Some(2048), 0)
            ),
            "{labels}"
        );
    }
}

#[test]
fn escaped_label_values_are_decoded() {
    let body = r#"container_cpu_usage_seconds_total{container="say \"hi\"",namespace="back\\slash",pod="two\nlines"} 1 1000
container_memory_working_set_bytes{container="say \"hi\"",namespace="back\\slash",pod="two\nlines"} 2 1000
"#;
    let sample = decode(body);
    assert_eq!(sample.pods.len(), 1, "both lines name the same container");
    let (namespace, name, container, point_) = single_container(&sample);
    assert_eq!(namespace, "back\\slash");
    assert_eq!(name, "two\nlines");
    assert_eq!(container, "say \"hi\"");
    assert_eq!(point_, point(ms(1000), Some(1_000_000_000), Some(2), 0));
}

#[test]
fn unicode_label_values_and_an_escaped_brace_or_comma_are_plain_text() {
    let body = "container_cpu_usage_seconds_total{container=\"ünï,cödé}\",namespace=\"n\",pod=\"p{1}\"} 1\n";
    let (_, name, container, _) = single_container(&decode(body));
    assert_eq!(container, "ünï,cödé}");
    assert_eq!(name, "p{1}");
}

#[test]
fn values_in_go_g_style_exponent_and_integer_forms() {
    let cases: [(&str, u64, u64); 6] = [
        ("4.710169", 4_710_169_000, 4),
        ("1.253376e+07", 12_533_760_000_000_000, 12_533_760),
        ("1.616273408e+09", 1_616_273_408_000_000_000, 1_616_273_408),
        ("5E-1", 500_000_000, 0),
        ("+12", 12_000_000_000, 12),
        ("0", 0, 0),
    ];
    for (value, cpu_nanos, memory_bytes) in cases {
        let body = format!(
            "node_cpu_usage_seconds_total {value} 1633253809720\n\
             node_memory_working_set_bytes {value} 1633253809720\n\
             scrape_error 0\n"
        );
        let sample = decode(&body);
        assert_eq!(
            sample.node_point,
            Some(point(
                ms(1_633_253_809_720),
                Some(cpu_nanos),
                Some(memory_bytes),
                0
            )),
            "{value}"
        );
    }
}

#[test]
fn cpu_seconds_become_nanoseconds_truncated_as_metrics_server_does() {
    // 8581747781260 ns is written as 8581.74778126 s; × 1e9 in floating point that is
    // 8581747781259.999, and metrics-server's uint64(v*1e9) keeps 8581747781259.
    let body = format!("container_cpu_usage_seconds_total{COREDNS} 8581.74778126 1000\n");
    let (_, _, _, point_) = single_container(&decode(&body));
    assert_eq!(point_.cumulative_cpu_nanos, Some(8_581_747_781_259));
    // Fractional bytes are cut the same way (uint64(v)).
    let body = format!("container_memory_working_set_bytes{COREDNS} 1024.9 1000\n");
    let (_, _, _, point_) = single_container(&decode(&body));
    assert_eq!(point_.memory_working_set_bytes, Some(1024));
}

#[test]
fn crlf_line_ends_and_a_missing_final_newline_are_accepted() {
    let lf = format!(
        "# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds\n\
         # TYPE node_cpu_usage_seconds_total counter\n\
         node_cpu_usage_seconds_total 357.35491 1633253809720\n\
         container_cpu_usage_seconds_total{COREDNS} 4.710169 1633253812125\n\
         container_memory_working_set_bytes{COREDNS} 1.253376e+07 1633253812125\n"
    );
    let expected = decode(&lf);
    assert_eq!(decode(&lf.replace('\n', "\r\n")), expected);
    assert_eq!(decode(lf.trim_end()), expected);
    assert_eq!(decode(lf.replace('\n', "\r\n").trim_end()), expected);
    assert_eq!(
        expected.node_point,
        Some(point(ms(1_633_253_809_720), Some(357_354_910_000), None, 0))
    );
}

#[test]
fn comments_blank_lines_and_blanks_around_tokens_are_ignored() {
    let body = format!(
        "\n# a comment that is neither HELP nor TYPE\n   \n\
         #TYPE without a space is a comment too\n\
         \t# indented comment\n\
         \x20 node_memory_working_set_bytes\t 1.616273408e+09 \t1633253809720  \n\
         \n\n\
         container_cpu_usage_seconds_total{COREDNS}\t4.710169\n\
         # EOF\n"
    );
    let sample = decode(&body);
    assert_eq!(
        sample.node_point,
        Some(point(ms(1_633_253_809_720), None, Some(1_616_273_408), 0))
    );
    let (_, _, _, point_) = single_container(&sample);
    assert_eq!(point_, point(SCRAPE_TIME, Some(4_710_169_000), None, 0));
}

#[test]
fn a_name_matches_a_family_only_as_a_whole_token() {
    let body = format!(
        "container_cpu_usage_seconds_total_extra{COREDNS} 99 1000\n\
         container_cpu_usage_seconds_totalx{COREDNS} 98 1000\n\
         xcontainer_cpu_usage_seconds_total{COREDNS} 97 1000\n\
         container_cpu_usage_seconds{COREDNS} 96 1000\n\
         container_cpu_usage_seconds_total:rate5m{COREDNS} 95 1000\n\
         node_cpu_usage_seconds_total_created 94 1000\n\
         node_memory_working_set_bytes_max 93 1000\n\
         container_start_time_seconds_bucket{COREDNS} 92 1000\n\
         container_cpu_usage_seconds_total{COREDNS} 4.710169 1633253812125\n"
    );
    let sample = decode(&body);
    assert_eq!(sample.node_point, None);
    let (_, _, _, point_) = single_container(&sample);
    assert_eq!(
        point_,
        point(ms(1_633_253_812_125), Some(4_710_169_000), None, 0)
    );
}

#[test]
fn swap_pod_and_unknown_families_are_ignored() {
    // Swap and pod-level families as 1.29+ kubelets write them (kubelet resource_metrics_test.go),
    // plus families proposed upstream. A container named only by them is not a container here.
    let body = r#"# HELP container_swap_limit_bytes [ALPHA] Current amount of the container swap limit in bytes. Reported only on non-windows systems
# TYPE container_swap_limit_bytes gauge
container_swap_limit_bytes{container="container_a",namespace="namespace_a",pod="pod_a"} 10000 1624396278302
container_swap_usage_bytes{container="container_a",namespace="namespace_a",pod="pod_a"} 1000 1624396278302
container_swap_usage_bytes{container="swap_only",namespace="namespace_a",pod="pod_b"} 1000 1624396278302
container_memory_commit_bytes{container="container_a",namespace="namespace_a",pod="pod_a"} 7 1624396278302
container_memory_working_set_bytes{container="container_a",namespace="namespace_a",pod="pod_a"} 1000 1624396278302
node_memory_commit_bytes 5 1624396278302
node_memory_working_set_bytes 1000 1624396278302
node_swap_usage_bytes 500 1624396278302
pod_cpu_usage_seconds_total{namespace="namespace_a",pod="pod_a"} 10 1624396278302
pod_memory_working_set_bytes{namespace="namespace_a",pod="pod_a"} 1000 1624396278302
pod_swap_usage_bytes{namespace="namespace_a",pod="pod_a"} 5000 1624396278302
resource_scrape_error 0
"#;
    let sample = decode(body);
    assert_eq!(
        sample.node_point,
        Some(point(ms(1_624_396_278_302), None, Some(1000), 0))
    );
    assert_eq!(sample.pods.len(), 1);
    let (container, point_) = only_container(pod(&sample, "namespace_a", "pod_a"));
    assert_eq!(container.name, "container_a");
    assert_eq!(*point_, point(ms(1_624_396_278_302), None, Some(1000), 0));
}

#[test]
fn the_last_cpu_or_memory_line_parsed_times_the_point() {
    // metrics-server's rule: whichever line comes last sets the timestamp; a kubelet writes cpu
    // before memory, so in practice the memory time wins.
    let cpu_then_memory = format!(
        "container_cpu_usage_seconds_total{COREDNS} 1 1000\n\
         container_memory_working_set_bytes{COREDNS} 2 2000\n\
         node_cpu_usage_seconds_total 3 3000\n\
         node_memory_working_set_bytes 4 4000\n"
    );
    let sample = decode(&cpu_then_memory);
    assert_eq!(single_container(&sample).3.timestamp_unix_nanos, ms(2000));
    assert_eq!(
        sample
            .node_point
            .as_ref()
            .expect("node")
            .timestamp_unix_nanos,
        ms(4000)
    );

    let memory_then_cpu = format!(
        "node_memory_working_set_bytes 4 4000\n\
         node_cpu_usage_seconds_total 3 3000\n\
         container_memory_working_set_bytes{COREDNS} 2 2000\n\
         container_cpu_usage_seconds_total{COREDNS} 1 1000\n"
    );
    let sample = decode(&memory_then_cpu);
    assert_eq!(single_container(&sample).3.timestamp_unix_nanos, ms(1000));
    assert_eq!(
        sample
            .node_point
            .as_ref()
            .expect("node")
            .timestamp_unix_nanos,
        ms(3000)
    );

    // A last line without a timestamp is timed at the scrape, as in metrics-server.
    let untimed_last = format!(
        "container_cpu_usage_seconds_total{COREDNS} 1 1000\n\
         container_memory_working_set_bytes{COREDNS} 2\n"
    );
    assert_eq!(
        single_container(&decode(&untimed_last))
            .3
            .timestamp_unix_nanos,
        SCRAPE_TIME
    );
}

#[test]
fn the_start_time_sample_timestamp_is_ignored() {
    let body = format!(
        "container_cpu_usage_seconds_total{COREDNS} 1 1000\n\
         container_start_time_seconds{COREDNS} 1.633252712e+9 99999\n"
    );
    let (_, _, _, point_) = single_container(&decode(&body));
    assert_eq!(
        point_,
        point(
            ms(1000),
            Some(1_000_000_000),
            None,
            1_633_252_712_000_000_000
        )
    );
}

#[test]
fn impossible_times_fall_back_instead_of_failing_the_node() {
    // Go's zero time, zero, and milliseconds past what i64 nanoseconds hold: the scrape time
    // stands in. metrics-server rejects the whole node for the first one.
    for timestamp in ["-62135596800000", "0", "-1", "9223372036854775807"] {
        let body = format!(
            "node_cpu_usage_seconds_total 357.35491 {timestamp}\n\
             container_cpu_usage_seconds_total{COREDNS} 1 {timestamp}\n"
        );
        let sample = decode(&body);
        assert_eq!(
            sample
                .node_point
                .as_ref()
                .expect("node")
                .timestamp_unix_nanos,
            SCRAPE_TIME,
            "{timestamp}"
        );
        assert_eq!(
            single_container(&sample).3.timestamp_unix_nanos,
            SCRAPE_TIME,
            "{timestamp}"
        );
    }
    // Start times that cannot be are unknown (0); the rest of the container is kept.
    for start_time in [
        "-6.7953645788713455e+09",
        "0",
        "-0",
        "NaN",
        "+Inf",
        "-Inf",
        "1e300",
        "9.3e9",
    ] {
        let body = format!(
            "container_cpu_usage_seconds_total{COREDNS} 1 1000\n\
             container_start_time_seconds{COREDNS} {start_time} -62135596800000\n"
        );
        let (_, _, _, point_) = single_container(&decode(&body));
        assert_eq!(
            point_,
            point(ms(1000), Some(1_000_000_000), None, 0),
            "{start_time}"
        );
    }
}

#[test]
fn containers_group_into_pods_by_namespace_and_name_in_first_seen_order() {
    let series = |container: &str, namespace: &str, pod: &str| {
        format!(r#"{{container="{container}",namespace="{namespace}",pod="{pod}"}}"#)
    };
    let body = format!(
        "container_cpu_usage_seconds_total{} 1 1000\n\
         container_cpu_usage_seconds_total{} 2 1000\n\
         container_cpu_usage_seconds_total{} 3 1000\n\
         container_cpu_usage_seconds_total{} 4 1000\n\
         container_memory_working_set_bytes{} 40 2000\n\
         container_memory_working_set_bytes{} 20 2000\n\
         container_memory_working_set_bytes{} 50 2000\n\
         container_memory_working_set_bytes{} 10 2000\n\
         container_start_time_seconds{} 1600000000 2000\n",
        series("app", "team-a", "web"),
        series("app", "team-b", "web"),
        series("sidecar", "team-a", "web"),
        series("app", "team-a", "db"),
        series("app", "team-a", "db"),
        series("app", "team-b", "web"),
        series("init", "team-a", "web"),
        series("app", "team-a", "web"),
        series("sidecar", "team-a", "web"),
    );
    let sample = decode(&body);
    let layout: Vec<(&str, &str, Vec<&str>)> = sample
        .pods
        .iter()
        .map(|pod| {
            (
                pod.namespace.as_str(),
                pod.name.as_str(),
                pod.containers.iter().map(|c| c.name.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        layout,
        [
            ("team-a", "web", vec!["app", "sidecar", "init"]),
            ("team-b", "web", vec!["app"]),
            ("team-a", "db", vec!["app"]),
        ]
    );
    let web = pod(&sample, "team-a", "web");
    let points: Vec<_> = web
        .containers
        .iter()
        .map(|c| c.point.clone().expect("point"))
        .collect();
    assert_eq!(
        points,
        [
            point(ms(2000), Some(1_000_000_000), Some(10), 0),
            point(
                ms(1000),
                Some(3_000_000_000),
                None,
                1_600_000_000_000_000_000
            ),
            point(ms(2000), None, Some(50), 0),
        ]
    );
}

#[test]
fn a_repeated_series_overwrites_the_earlier_value() {
    let body = format!(
        "container_cpu_usage_seconds_total{COREDNS} 1 1000\n\
         container_cpu_usage_seconds_total{COREDNS} 2 3000\n\
         node_memory_working_set_bytes 10 1000\n\
         node_memory_working_set_bytes 20 500\n"
    );
    let sample = decode(&body);
    assert_eq!(
        single_container(&sample).3,
        point(ms(3000), Some(2_000_000_000), None, 0)
    );
    assert_eq!(sample.node_point, Some(point(ms(500), None, Some(20), 0)));
}

#[test]
fn node_series_with_labels_still_count() {
    let body = "node_cpu_usage_seconds_total{instance=\"n1\"} 2 1000\n";
    assert_eq!(
        decode(body).node_point,
        Some(point(ms(1000), Some(2_000_000_000), None, 0))
    );
}

#[test]
fn a_body_with_only_a_clear_scrape_error_flag_is_an_empty_sample() {
    for body in [
        "resource_scrape_error 0\n",
        "scrape_error 0\nresource_scrape_error 0\n",
    ] {
        let sample = decode(body);
        assert_eq!(sample.node, "n1");
        assert_eq!(sample.scrape_time_unix_nanos, SCRAPE_TIME);
        assert_eq!(sample.node_point, None);
        assert!(sample.pods.is_empty());
    }
}

#[test]
fn a_reported_scrape_error_without_data_is_a_kubelet_error() {
    // What a kubelet serves when its summary provider fails (collector test "error getting
    // summary"): only the error gauges.
    let body = "# HELP scrape_error [ALPHA] 1 if there was an error while getting container metrics, 0 otherwise\n\
                # TYPE scrape_error gauge\n\
                scrape_error 1\n\
                # HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise\n\
                # TYPE resource_scrape_error gauge\n\
                resource_scrape_error 1\n";
    let error = decode_error(body);
    assert_eq!(error.kind(), DecodeErrorKind::KubeletError);
    assert_eq!(error.kind().as_str(), "kubelet_error");
    assert_eq!(error.offset(), body.find("scrape_error 1").expect("line"));
    assert_eq!(error.field(), "scrape_error");
    assert_eq!(
        error.to_string(),
        format!(
            "kubelet_error at byte {} (field scrape_error): the kubelet reported a scrape error \
             (scrape_error is not 0) and sent no node or container metrics",
            error.offset()
        )
    );

    let newer = decode_error("resource_scrape_error 1\n");
    assert_eq!(
        (newer.kind(), newer.offset(), newer.field()),
        (DecodeErrorKind::KubeletError, 0, "resource_scrape_error")
    );
}

#[test]
fn a_reported_scrape_error_with_data_keeps_the_data() {
    let body = format!(
        "container_cpu_usage_seconds_total{COREDNS} 4.710169 1633253812125\n\
         resource_scrape_error 1\n"
    );
    let sample = decode(&body);
    assert_eq!(
        single_container(&sample).3,
        point(ms(1_633_253_812_125), Some(4_710_169_000), None, 0)
    );
    let node_only = "node_memory_working_set_bytes 1 1000\nscrape_error 1\n";
    assert_eq!(
        decode(node_only).node_point,
        Some(point(ms(1000), None, Some(1), 0))
    );
}

#[test]
fn hundreds_of_pods_decode_in_order() {
    let mut body = String::new();
    for family in [
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "container_start_time_seconds",
    ] {
        for index in 0..500 {
            body.push_str(&format!(
                "{family}{{container=\"c\",namespace=\"ns-{}\",pod=\"pod-{index:03}\"}} {} 1633253812125\n",
                index % 7,
                index + 1
            ));
        }
    }
    let sample = decode(&body);
    assert_eq!(sample.pods.len(), 500);
    for (index, pod) in sample.pods.iter().enumerate() {
        assert_eq!(pod.name, format!("pod-{index:03}"));
        assert_eq!(pod.namespace, format!("ns-{}", index % 7));
        let (_, point_) = only_container(pod);
        let value = index as u64 + 1;
        assert_eq!(
            *point_,
            point(
                ms(1_633_253_812_125),
                Some(value * 1_000_000_000),
                Some(value),
                value as i64 * 1_000_000_000
            )
        );
    }
}
