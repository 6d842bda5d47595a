//! Rendered bytes compared with real metrics-server responses.
//!
//! The objects are rebuilt from two points each so that timestamp, window and usage come out of
//! the store's arithmetic, not from literals. Sources: /work/shared/fixtures/metrics-api (README
//! there: kubernetes/website resource-metrics-pipeline.md, commit 0637786b) and the literal
//! examples of the metrics-server reference §2.3 (v0.9 output). The fixtures' `selfLink` is not
//! expected: the apiserver stopped setting it.

use std::collections::BTreeMap;

use super::*;
use crate::sample::{ContainerSample, NodeSample, PodSample, ResourcePoint};
use crate::selector::LabelSelector;
use crate::store::{Labels, MetricsStore, PodKey};

const SECOND: i64 = 1_000_000_000;
const MILLISECOND: i64 = 1_000_000;
const KI: u64 = 1024;

/// Cumulative CPU at the previous point: large, like a long-running node's counter.
const PREV_CPU: u64 = 123_456_789_000_000;

/// The smallest counter increase whose rate over `window` truncates to `nanocores`.
fn cpu_increase(nanocores: u64, window: i64) -> u64 {
    let product = u128::from(nanocores) * window as u128;
    product.div_ceil(SECOND as u128) as u64
}

fn reading(timestamp: i64, cpu: u64, memory: u64, start: i64) -> ResourcePoint {
    ResourcePoint {
        timestamp_unix_nanos: timestamp,
        cumulative_cpu_nanos: Some(cpu),
        memory_working_set_bytes: Some(memory),
        start_time_unix_nanos: start,
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// Ingests two node points so the node serves `nanocores`/`memory` at `timestamp` over `window`.
fn add_node(
    store: &mut MetricsStore,
    node: &str,
    timestamp: i64,
    window: i64,
    nanocores: u64,
    memory: u64,
) {
    for (at, cpu) in [
        (timestamp - window, PREV_CPU),
        (timestamp, PREV_CPU + cpu_increase(nanocores, window)),
    ] {
        let sample = NodeSample {
            node: node.to_string(),
            scrape_time_unix_nanos: at,
            node_point: Some(reading(at, cpu, memory, 0)),
            pods: vec![],
        };
        store.ingest(sample);
    }
}

struct ContainerUsage<'a> {
    name: &'a str,
    timestamp: i64,
    window: i64,
    nanocores: u64,
    memory: u64,
}

/// Ingests two samples of `node` holding one pod whose containers serve the given usage.
fn add_pod(
    store: &mut MetricsStore,
    node: &str,
    namespace: &str,
    name: &str,
    containers: &[ContainerUsage<'_>],
) {
    for second in [false, true] {
        let containers = containers
            .iter()
            .map(|c| {
                let start = c.timestamp - 3600 * SECOND;
                let point = if second {
                    reading(
                        c.timestamp,
                        PREV_CPU + cpu_increase(c.nanocores, c.window),
                        c.memory,
                        start,
                    )
                } else {
                    reading(c.timestamp - c.window, PREV_CPU, c.memory, start)
                };
                ContainerSample {
                    name: c.name.to_string(),
                    point: Some(point),
                }
            })
            .collect();
        let pod = PodSample {
            namespace: namespace.to_string(),
            name: name.to_string(),
            containers,
        };
        store.ingest(NodeSample {
            node: node.to_string(),
            scrape_time_unix_nanos: 0,
            node_point: None,
            pods: vec![pod],
        });
    }
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

#[test]
fn node_metrics_matches_the_minikube_fixture() {
    // nodemetrics-minikube-website.json; 0.4 s into the second shows that timestamps truncate.
    let mut store = MetricsStore::new(30 * SECOND, false);
    store.set_node_metadata("minikube", Labels::default());
    add_node(
        &mut store,
        "minikube",
        1_643_309_313 * SECOND + 400 * MILLISECOND,
        30 * SECOND,
        487_558_164,
        732_212 * KI,
    );
    let body = store.render_node("minikube", 1_643_309_323).unwrap();
    assert_eq!(
        text(body),
        concat!(
            r#"{"kind":"NodeMetrics","apiVersion":"metrics.k8s.io/v1beta1","#,
            r#""metadata":{"name":"minikube","creationTimestamp":"2022-01-27T18:48:43Z"},"#,
            r#""timestamp":"2022-01-27T18:48:33Z","window":"30s","usage":{"cpu":"487558164n","memory":"732212Ki"}}"#,
            "\n"
        )
    );
}

#[test]
fn pod_metrics_matches_the_kube_scheduler_fixture() {
    // podmetrics-kube-scheduler-website.json
    let mut store = MetricsStore::new(30 * SECOND, false);
    let scheduler = ContainerUsage {
        name: "kube-scheduler",
        timestamp: 1_643_311_471 * SECOND + 999 * MILLISECOND,
        window: 30 * SECOND,
        nanocores: 9_559_630,
        memory: 22_244 * KI,
    };
    add_pod(
        &mut store,
        "minikube",
        "kube-system",
        "kube-scheduler-minikube",
        &[scheduler],
    );
    let body = store
        .render_pod("kube-system", "kube-scheduler-minikube", 1_643_311_500)
        .unwrap();
    assert_eq!(
        text(body),
        concat!(
            r#"{"kind":"PodMetrics","apiVersion":"metrics.k8s.io/v1beta1","#,
            r#""metadata":{"name":"kube-scheduler-minikube","namespace":"kube-system","creationTimestamp":"2022-01-27T19:25:00Z"},"#,
            r#""timestamp":"2022-01-27T19:24:31Z","window":"30s","#,
            r#""containers":[{"name":"kube-scheduler","usage":{"cpu":"9559630n","memory":"22244Ki"}}]}"#,
            "\n"
        )
    );
}

#[test]
fn node_with_labels_matches_the_reference_example() {
    let mut store = MetricsStore::new(15 * SECOND, false);
    store.set_node_metadata(
        "kind-worker",
        labels(&[
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "amd64"),
            ("kubernetes.io/hostname", "kind-worker"),
        ]),
    );
    add_node(
        &mut store,
        "kind-worker",
        1_785_838_521 * SECOND,
        15_004 * MILLISECOND,
        151_384_254,
        1_183_224 * KI,
    );
    let body = store.render_node("kind-worker", 1_785_838_531).unwrap();
    assert_eq!(
        text(body),
        concat!(
            r#"{"kind":"NodeMetrics","apiVersion":"metrics.k8s.io/v1beta1","#,
            r#""metadata":{"name":"kind-worker","creationTimestamp":"2026-08-04T10:15:31Z","#,
            r#""labels":{"kubernetes.io/arch":"amd64","kubernetes.io/hostname":"kind-worker","kubernetes.io/os":"linux"}},"#,
            r#""timestamp":"2026-08-04T10:15:21Z","window":"15.004s","usage":{"cpu":"151384254n","memory":"1183224Ki"}}"#,
            "\n"
        )
    );
}

#[test]
fn node_list_is_sorted_by_name_and_items_carry_no_type_meta() {
    let mut store = MetricsStore::new(15 * SECOND, false);
    for node in ["kind-worker", "kind-control-plane"] {
        store.set_node_metadata(node, Labels::default());
    }
    add_node(
        &mut store,
        "kind-worker",
        1_785_838_521 * SECOND,
        15_004 * MILLISECOND,
        151_384_254,
        1_183_224 * KI,
    );
    add_node(
        &mut store,
        "kind-control-plane",
        1_785_838_519 * SECOND,
        14_987 * MILLISECOND,
        272_000_000,
        4_374_292 * KI,
    );
    assert_eq!(
        text(store.render_node_list(&LabelSelector::everything(), None, 1_785_838_531)),
        concat!(
            r#"{"kind":"NodeMetricsList","apiVersion":"metrics.k8s.io/v1beta1","metadata":{},"items":["#,
            r#"{"metadata":{"name":"kind-control-plane","creationTimestamp":"2026-08-04T10:15:31Z"},"#,
            r#""timestamp":"2026-08-04T10:15:19Z","window":"14.987s","usage":{"cpu":"272m","memory":"4374292Ki"}},"#,
            r#"{"metadata":{"name":"kind-worker","creationTimestamp":"2026-08-04T10:15:31Z"},"#,
            r#""timestamp":"2026-08-04T10:15:21Z","window":"15.004s","usage":{"cpu":"151384254n","memory":"1183224Ki"}}"#,
            "]}\n"
        )
    );
}

#[test]
fn pod_list_matches_the_reference_example() {
    let mut store = MetricsStore::new(15 * SECOND, false);
    let coredns = ContainerUsage {
        name: "coredns",
        timestamp: 1_785_838_522 * SECOND + 5 * MILLISECOND,
        window: 15_011 * MILLISECOND,
        nanocores: 2_931_024,
        memory: 12_240 * KI,
    };
    add_pod(
        &mut store,
        "kind-worker",
        "kube-system",
        "coredns-558bd4d5db-4dpjz",
        &[coredns],
    );
    store.set_pod_metadata(
        PodKey::new("kube-system", "coredns-558bd4d5db-4dpjz"),
        labels(&[("pod-template-hash", "558bd4d5db"), ("k8s-app", "kube-dns")]),
    );
    assert_eq!(
        text(store.render_pod_list(
            Some("kube-system"),
            &LabelSelector::everything(),
            None,
            1_785_838_531
        )),
        concat!(
            r#"{"kind":"PodMetricsList","apiVersion":"metrics.k8s.io/v1beta1","metadata":{},"items":["#,
            r#"{"metadata":{"name":"coredns-558bd4d5db-4dpjz","namespace":"kube-system","#,
            r#""creationTimestamp":"2026-08-04T10:15:31Z","labels":{"k8s-app":"kube-dns","pod-template-hash":"558bd4d5db"}},"#,
            r#""timestamp":"2026-08-04T10:15:22Z","window":"15.011s","#,
            r#""containers":[{"name":"coredns","usage":{"cpu":"2931024n","memory":"12240Ki"}}]}"#,
            "]}\n"
        )
    );
}

#[test]
fn pod_with_several_containers_lists_them_by_name_with_the_earliest_time() {
    let mut store = MetricsStore::new(15 * SECOND, false);
    let t = 1_785_838_522 * SECOND;
    let containers = [
        ContainerUsage {
            name: "sidecar",
            timestamp: t - SECOND,
            window: 60_513 * MILLISECOND,
            nanocores: 1_500_000_000,
            memory: 50 * KI * KI,
        },
        ContainerUsage {
            name: "app",
            timestamp: t,
            window: 15 * SECOND,
            nanocores: 1_000_000_000,
            memory: 1000,
        },
    ];
    add_pod(&mut store, "n", "default", "web", &containers);
    let body = store.render_pod("default", "web", 1_785_838_531).unwrap();
    assert_eq!(
        text(body),
        concat!(
            r#"{"kind":"PodMetrics","apiVersion":"metrics.k8s.io/v1beta1","#,
            r#""metadata":{"name":"web","namespace":"default","creationTimestamp":"2026-08-04T10:15:31Z"},"#,
            r#""timestamp":"2026-08-04T10:15:21Z","window":"1m0.513s","containers":["#,
            r#"{"name":"app","usage":{"cpu":"1","memory":"1k"}},"#,
            r#"{"name":"sidecar","usage":{"cpu":"1500m","memory":"50Mi"}}]}"#,
            "\n"
        )
    );
}

#[test]
fn pod_whose_every_container_was_skipped_has_null_timestamp_and_no_containers() {
    let mut store = MetricsStore::new(15 * SECOND, false);
    let t = 1_785_838_522 * SECOND;
    let start = t - 3600 * SECOND;
    for (at, cpu) in [(t - 15 * SECOND, 1_000_000), (t, 10)] {
        let containers = vec![ContainerSample {
            name: "app".into(),
            point: Some(reading(at, cpu, 512, start)),
        }];
        let pod = PodSample {
            namespace: "default".into(),
            name: "web".into(),
            containers,
        };
        store.ingest(NodeSample {
            node: "n".into(),
            scrape_time_unix_nanos: 0,
            node_point: None,
            pods: vec![pod],
        });
    }
    assert_eq!(
        text(store.render_pod_list(None, &LabelSelector::everything(), None, 1_785_838_531)),
        concat!(
            r#"{"kind":"PodMetricsList","apiVersion":"metrics.k8s.io/v1beta1","metadata":{},"items":["#,
            r#"{"metadata":{"name":"web","namespace":"default","creationTimestamp":"2026-08-04T10:15:31Z"},"#,
            r#""timestamp":null,"window":"0s","containers":[]}"#,
            "]}\n"
        )
    );
}

#[test]
fn empty_lists_render_an_empty_items_array() {
    assert_eq!(
        text(JsonList::new(Resource::Nodes, 0, 0).finish()),
        "{\"kind\":\"NodeMetricsList\",\"apiVersion\":\"metrics.k8s.io/v1beta1\",\"metadata\":{},\"items\":[]}\n"
    );
    assert_eq!(
        text(JsonList::new(Resource::Pods, 0, 0).finish()),
        "{\"kind\":\"PodMetricsList\",\"apiVersion\":\"metrics.k8s.io/v1beta1\",\"metadata\":{},\"items\":[]}\n"
    );
}

#[test]
fn names_and_labels_are_json_escaped_like_go() {
    let mut store = MetricsStore::new(15 * SECOND, false);
    store.set_node_metadata("n\"1", labels(&[("note", "a<b>&\"c\"\n")]));
    add_node(
        &mut store,
        "n\"1",
        1_785_838_521 * SECOND,
        10 * SECOND,
        0,
        512,
    );
    let body = text(store.render_node("n\"1", 1_785_838_531).unwrap());
    assert!(
        body.contains(r#""metadata":{"name":"n\"1","creationTimestamp":"2026-08-04T10:15:31Z","labels":{"note":"a\u003cb\u003e\u0026\"c\"\n"}}"#),
        "{body}"
    );
    assert!(
        body.contains(r#""usage":{"cpu":"0","memory":"512"}"#),
        "{body}"
    );
    let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed["metadata"]["labels"]["note"], "a<b>&\"c\"\n");
}

#[test]
fn rendered_lists_are_valid_json_with_every_item() {
    let mut store = MetricsStore::new(15 * SECOND, false);
    let t = 1_785_838_522 * SECOND;
    for index in 0..50 {
        let usage = ContainerUsage {
            name: "c",
            timestamp: t,
            window: 15 * SECOND,
            nanocores: index * 1000 + 1,
            memory: 4096,
        };
        // One node per pod: a node's sample replaces every pod it reported before.
        add_pod(
            &mut store,
            &format!("node-{index}"),
            &format!("ns-{}", index % 3),
            &format!("pod-{index:02}"),
            &[usage],
        );
    }
    let body = store.render_pod_list(None, &LabelSelector::everything(), None, 1_785_838_531);
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let names: Vec<String> = parsed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            format!(
                "{}/{}",
                item["metadata"]["namespace"].as_str().unwrap(),
                item["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(names.len(), 50);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(
        parsed["items"][0]["containers"][0]["usage"]["memory"],
        "4Ki"
    );
}

#[test]
fn metadata_changes_after_the_points_are_rendered() {
    let mut store = MetricsStore::new(15 * SECOND, false);
    let t = 1_785_838_522 * SECOND;
    let usage = ContainerUsage {
        name: "c",
        timestamp: t,
        window: 15 * SECOND,
        nanocores: 1_000,
        memory: 4096,
    };
    add_pod(&mut store, "n", "default", "web", &[usage]);
    let unlabelled = text(store.render_pod("default", "web", 1_785_838_531).unwrap());
    assert!(
        unlabelled.contains(r#""creationTimestamp":"2026-08-04T10:15:31Z"},"#),
        "{unlabelled}"
    );
    store.set_pod_metadata(PodKey::new("default", "web"), labels(&[("app", "web")]));
    let labelled = text(store.render_pod("default", "web", 1_785_838_531).unwrap());
    assert!(
        labelled.contains(r#""creationTimestamp":"2026-08-04T10:15:31Z","labels":{"app":"web"}},"#),
        "{labelled}"
    );
    store.remove_pod_metadata(&PodKey::new("default", "web"));
    assert_eq!(
        text(store.render_pod("default", "web", 1_785_838_531).unwrap()),
        unlabelled
    );

    add_node(&mut store, "n", t, 15 * SECOND, 1_000, 4096);
    assert_eq!(
        store.render_node("n", 1_785_838_531),
        None,
        "no metadata yet"
    );
    store.set_node_metadata("n", labels(&[("zone", "a")]));
    let node = text(store.render_node("n", 1_785_838_531).unwrap());
    assert!(node.contains(r#""labels":{"zone":"a"}}"#), "{node}");
    store.remove_node_metadata("n");
    assert_eq!(store.render_node("n", 1_785_838_531), None);
}

#[test]
fn every_request_gets_its_own_creation_timestamp() {
    let mut store = MetricsStore::new(15 * SECOND, false);
    store.set_node_metadata("n", Labels::default());
    add_node(
        &mut store,
        "n",
        1_785_838_521 * SECOND,
        15 * SECOND,
        1_000,
        4096,
    );
    let first = text(store.render_node_list(&LabelSelector::everything(), None, 1_785_838_531));
    let second = text(store.render_node_list(&LabelSelector::everything(), None, 1_785_838_600));
    assert!(
        first.contains(r#""creationTimestamp":"2026-08-04T10:15:31Z""#),
        "{first}"
    );
    assert!(
        second.contains(r#""creationTimestamp":"2026-08-04T10:16:40Z""#),
        "{second}"
    );
    assert_eq!(first.replace("10:15:31Z", "10:16:40Z"), second);
}

#[test]
fn unnamed_items_drop_the_comma_before_creation_timestamp() {
    // Not produced by kubelets, but samples are untrusted input: empty names stay valid JSON,
    // with the omitempty fields left out as Go would.
    let usage = Usage {
        timestamp: 1_785_838_521 * SECOND,
        window: 15 * SECOND,
        cpu_nanocores: 1,
        memory_bytes: 1,
    };
    let mut list = JsonList::new(Resource::Pods, 1_785_838_531, 1);
    list.push_pod(
        &PodItem {
            namespace: "",
            name: "",
            labels_json: b"",
            time: None,
        },
        std::iter::empty(),
    );
    assert_eq!(
        text(list.finish()),
        concat!(
            r#"{"kind":"PodMetricsList","apiVersion":"metrics.k8s.io/v1beta1","metadata":{},"items":["#,
            r#"{"metadata":{"creationTimestamp":"2026-08-04T10:15:31Z"},"timestamp":null,"window":"0s","containers":[]}"#,
            "]}\n"
        )
    );
    let node = NodeItem {
        name: "",
        labels_json: b"",
        usage,
    };
    assert_eq!(
        text(render_node_json(&node, 1_785_838_531)),
        concat!(
            r#"{"kind":"NodeMetrics","apiVersion":"metrics.k8s.io/v1beta1","metadata":{"creationTimestamp":"2026-08-04T10:15:31Z"},"#,
            r#""timestamp":"2026-08-04T10:15:21Z","window":"15s","usage":{"cpu":"1n","memory":"1"}}"#,
            "\n"
        )
    );
    let mut namespaced = JsonList::new(Resource::Pods, 0, 1);
    namespaced.push_pod(
        &PodItem {
            namespace: "ns",
            name: "",
            labels_json: b"",
            time: None,
        },
        std::iter::empty(),
    );
    assert!(
        text(namespaced.finish()).contains(r#"{"metadata":{"namespace":"ns","creationTimestamp":"#)
    );
}
