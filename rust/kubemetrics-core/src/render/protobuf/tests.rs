//! Protobuf bodies compared with bytes built field by field here, following the Go marshallers
//! (apimachinery meta/v1 and runtime `generated.pb.go`, `time_proto.go`, `quantity_proto.go`,
//! k8s.io/metrics v1beta1 `generated.pb.go`): every non-pointer field written, even empty.

use super::*;
use crate::render::test_stores::{
    add_node, add_pod, empty_store, labels, ContainerUsage, KI, MI, MILLISECOND, SECOND,
};
use crate::selector::LabelSelector;

/// 2026-08-04T10:15:31Z
const NOW: i64 = 1_785_838_531;
/// 2026-08-04T10:15:21Z
const SCRAPED_SECONDS: i64 = 1_785_838_521;

fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out
}

/// A length-delimited field.
fn bytes_field(number: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![number << 3 | 2];
    out.extend(varint(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

fn varint_field(number: u8, value: u64) -> Vec<u8> {
    let mut out = vec![number << 3];
    out.extend(varint(value));
    out
}

fn time(seconds: i64) -> Vec<u8> {
    [varint_field(1, seconds as u64), varint_field(2, 0)].concat()
}

fn object_meta(name: &str, namespace: &str, labels: &[(&str, &str)]) -> Vec<u8> {
    let mut out = [
        bytes_field(1, name.as_bytes()),
        bytes_field(2, b""),
        bytes_field(3, namespace.as_bytes()),
        bytes_field(4, b""),
        bytes_field(5, b""),
        bytes_field(6, b""),
        varint_field(7, 0),
        bytes_field(8, &time(NOW)),
    ]
    .concat();
    for (key, value) in labels {
        let entry = [
            bytes_field(1, key.as_bytes()),
            bytes_field(2, value.as_bytes()),
        ]
        .concat();
        out.extend(bytes_field(11, &entry));
    }
    out
}

fn usage(field: u8, cpu: &str, memory: &str) -> Vec<u8> {
    let entry = |key: &str, quantity: &str| {
        bytes_field(
            field,
            &[
                bytes_field(1, key.as_bytes()),
                bytes_field(2, &bytes_field(1, quantity.as_bytes())),
            ]
            .concat(),
        )
    };
    [entry("cpu", cpu), entry("memory", memory)].concat()
}

const EMPTY_LIST_META: &[u8] = &[0x0a, 0x00, 0x12, 0x00, 0x1a, 0x00];

fn envelope_of(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let type_meta = [
        bytes_field(1, api_version.as_bytes()),
        bytes_field(2, kind.as_bytes()),
    ]
    .concat();
    [
        b"k8s\x00".to_vec(),
        bytes_field(1, &type_meta),
        bytes_field(2, raw),
        bytes_field(3, b""),
        bytes_field(4, b""),
    ]
    .concat()
}

#[test]
fn node_metrics_body_matches_the_go_marshaller() {
    let mut store = empty_store();
    add_node(
        &mut store,
        "kind-worker",
        labels(&[("kubernetes.io/os", "linux"), ("node-role", "")]),
        SCRAPED_SECONDS * SECOND + 400 * MILLISECOND,
        15_004 * MILLISECOND,
        151_384_254,
        1_183_224 * KI,
    );
    let node = store.node_metrics("kind-worker").unwrap();

    let raw = [
        bytes_field(
            1,
            &object_meta(
                "kind-worker",
                "",
                &[("kubernetes.io/os", "linux"), ("node-role", "")],
            ),
        ),
        bytes_field(2, &time(SCRAPED_SECONDS)),
        bytes_field(3, &varint_field(1, 15_004_000_000)),
        usage(4, "151384254n", "1183224Ki"),
    ]
    .concat();
    assert_eq!(
        render_node(&node, NOW),
        envelope_of("metrics.k8s.io/v1beta1", "NodeMetrics", &raw)
    );
}

#[test]
fn envelope_starts_with_the_magic_and_type_meta() {
    let store = empty_store();
    let body = render_node_list(
        &store.node_metrics_list(&LabelSelector::everything(), None),
        NOW,
    );

    let mut expected =
        b"k8s\x00\x0a\x29\x0a\x16metrics.k8s.io/v1beta1\x12\x0fNodeMetricsList\x12\x08".to_vec();
    expected.extend_from_slice(&[0x0a, 0x06]);
    expected.extend_from_slice(EMPTY_LIST_META);
    expected.extend_from_slice(b"\x1a\x00\x22\x00");
    assert_eq!(body, expected);
}

#[test]
fn pod_list_items_carry_containers_in_name_order() {
    let mut store = empty_store();
    add_pod(
        &mut store,
        "node-a",
        "kube-system",
        "coredns-0",
        Some(labels(&[("k8s-app", "kube-dns")])),
        &[
            ContainerUsage::new(
                "sidecar",
                SCRAPED_SECONDS * SECOND,
                15 * SECOND,
                5_000_000,
                5 * MI,
            ),
            ContainerUsage::new(
                "coredns",
                SCRAPED_SECONDS * SECOND,
                15 * SECOND,
                2_931_024,
                12_240 * KI,
            ),
        ],
    );
    let pods = store.pod_metrics_list(None, &LabelSelector::everything(), None);

    let container = |name: &str, cpu: &str, memory: &str| {
        bytes_field(
            4,
            &[bytes_field(1, name.as_bytes()), usage(2, cpu, memory)].concat(),
        )
    };
    let item = [
        bytes_field(
            1,
            &object_meta("coredns-0", "kube-system", &[("k8s-app", "kube-dns")]),
        ),
        bytes_field(2, &time(SCRAPED_SECONDS)),
        bytes_field(3, &varint_field(1, 15_000_000_000)),
        container("coredns", "2931024n", "12240Ki"),
        container("sidecar", "5m", "5Mi"),
    ]
    .concat();
    let raw = [bytes_field(1, EMPTY_LIST_META), bytes_field(2, &item)].concat();
    assert_eq!(
        render_pod_list(&pods, NOW),
        envelope_of("metrics.k8s.io/v1beta1", "PodMetricsList", &raw)
    );
}

#[test]
fn pod_without_usable_containers_has_a_zero_time_and_window() {
    // Go's zero metav1.Time marshals to nothing: the field is present and empty.
    let mut store = empty_store();
    let reset = ContainerUsage {
        counter_reset: true,
        ..ContainerUsage::new("app", SCRAPED_SECONDS * SECOND, 15 * SECOND, 1_000_000, MI)
    };
    add_pod(&mut store, "node-a", "default", "restarted", None, &[reset]);
    let pod = store.pod_metrics("default", "restarted").unwrap();

    let raw = [
        bytes_field(1, &object_meta("restarted", "default", &[])),
        bytes_field(2, b""),
        bytes_field(3, &varint_field(1, 0)),
    ]
    .concat();
    assert_eq!(
        render_pod(&pod, NOW),
        envelope_of("metrics.k8s.io/v1beta1", "PodMetrics", &raw)
    );
}

#[test]
fn partial_object_metadata_list_wraps_each_object_meta() {
    let mut store = empty_store();
    add_node(
        &mut store,
        "n1",
        labels(&[("a", "b")]),
        SCRAPED_SECONDS * SECOND,
        15 * SECOND,
        1,
        MI,
    );
    let nodes = store.node_metrics_list(&LabelSelector::everything(), None);

    let item = bytes_field(1, &object_meta("n1", "", &[("a", "b")]));
    let raw = [bytes_field(1, EMPTY_LIST_META), bytes_field(2, &item)].concat();
    assert_eq!(
        render_partial_object_metadata_list_of_nodes(&nodes, MetaVersion::V1beta1, NOW),
        envelope_of("meta.k8s.io/v1beta1", "PartialObjectMetadataList", &raw)
    );
    assert_eq!(
        render_partial_object_metadata_of_node(&nodes[0], MetaVersion::V1, NOW),
        envelope_of("meta.k8s.io/v1", "PartialObjectMetadata", &item)
    );
}

#[test]
fn pod_messages_written_field_by_field_equal_the_prost_messages() {
    let mut store = empty_store();
    let long_name = "p".repeat(300);
    let long_value = "v".repeat(200);
    let big = ContainerUsage::new(
        "big",
        4_000_000_000 * SECOND,
        1_800 * SECOND,
        u64::MAX / 4_000,
        u64::MAX / 2,
    );
    let small = ContainerUsage::new("s", SCRAPED_SECONDS * SECOND, 15 * SECOND, 1, 1);
    let reset = ContainerUsage {
        counter_reset: true,
        ..ContainerUsage::new("reset", SCRAPED_SECONDS * SECOND, 15 * SECOND, 1_000, MI)
    };
    add_pod(
        &mut store,
        "node-a",
        "default",
        &long_name,
        Some(labels(&[
            ("empty", ""),
            ("long", &long_value),
            ("", "no key"),
        ])),
        &[big, small, reset],
    );
    add_pod(&mut store, "node-b", "", "no-namespace", None, &[small]);
    add_pod(
        &mut store,
        "node-c",
        "x",
        "all-reset",
        Some(labels(&[])),
        &[reset],
    );
    let pods = store.pod_metrics_list(None, &LabelSelector::everything(), None);
    assert_eq!(pods.len(), 3);
    for now in [NOW, 0, -1, i64::MAX] {
        for pod in &pods {
            let mut writer = PodWriter::new(now);
            writer.write(pod);
            assert_eq!(
                writer.item,
                pod_message(pod, now).encode_to_vec(),
                "{}",
                pod.name
            );
        }
    }
}
