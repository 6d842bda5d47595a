//! Tables and metadata views compared with what metrics-server's apiserver writes (table.go plus
//! the apiserver's includeObject handling; metrics-server's own table_test.go expects "10m",
//! "5Mi", "1µs" cells).

use super::*;
use crate::render::test_stores::{
    add_node, add_pod, empty_store, labels, ContainerUsage, KI, MI, MILLISECOND, SECOND,
};
use crate::selector::LabelSelector;
use crate::store::MetricsStore;

/// 2026-08-04T10:15:31Z, the response time every test renders at.
const NOW: i64 = 1_785_838_531;
/// 2026-08-04T10:15:21Z, the newer reading of every node and container.
const SCRAPED: i64 = 1_785_838_521 * SECOND;

const V1_METADATA: TableOptions = TableOptions {
    version: MetaVersion::V1,
    row_object: RowObject::Metadata,
};

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

fn two_nodes() -> MetricsStore {
    let mut store = empty_store();
    add_node(
        &mut store,
        "n1",
        labels(&[("kubernetes.io/os", "linux")]),
        SCRAPED,
        15_004 * MILLISECOND,
        10_000_000,
        5 * MI,
    );
    add_node(
        &mut store,
        "n2",
        labels(&[]),
        SCRAPED,
        15 * SECOND,
        272_000_000,
        12_533_760,
    );
    store
}

fn node_table(store: &MetricsStore, options: TableOptions) -> String {
    let nodes = store.node_metrics_list(&LabelSelector::everything(), None);
    text(render_node_table(&nodes, options, NOW))
}

fn pod_table(store: &MetricsStore, options: TableOptions) -> String {
    let pods = store.pod_metrics_list(None, &LabelSelector::everything(), None);
    text(render_pod_table(&pods, options, NOW))
}

const COLUMNS: &str = concat!(
    r#""columnDefinitions":["#,
    r#"{"name":"Name","type":"string","format":"name","description":"Name of the resource","priority":0},"#,
    r#"{"name":"cpu","type":"string","format":"quantity","description":"","priority":0},"#,
    r#"{"name":"memory","type":"string","format":"quantity","description":"","priority":0},"#,
    r#"{"name":"Window","type":"string","format":"duration","description":"","priority":0}],"#
);

#[test]
fn node_table_has_name_usage_and_window_columns_and_metadata_rows() {
    let expected = [
        r#"{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{},"#,
        COLUMNS,
        r#""rows":["#,
        r#"{"cells":["n1","10m","5Mi","15.004s"],"object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","#,
        r#""metadata":{"name":"n1","creationTimestamp":"2026-08-04T10:15:31Z","labels":{"kubernetes.io/os":"linux"}}}},"#,
        r#"{"cells":["n2","272m","12240Ki","15s"],"object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","#,
        r#""metadata":{"name":"n2","creationTimestamp":"2026-08-04T10:15:31Z"}}}]}"#,
        "\n",
    ]
    .concat();

    assert_eq!(node_table(&two_nodes(), V1_METADATA), expected);
}

#[test]
fn empty_table_has_null_columns_and_rows() {
    let store = empty_store();

    assert_eq!(
        node_table(&store, V1_METADATA),
        "{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":{},\"columnDefinitions\":null,\"rows\":null}\n"
    );
    let v1beta1 = TableOptions {
        version: MetaVersion::V1beta1,
        row_object: RowObject::Nothing,
    };
    assert_eq!(
        pod_table(&store, v1beta1),
        "{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1beta1\",\"metadata\":{},\"columnDefinitions\":null,\"rows\":null}\n"
    );
}

#[test]
fn pod_cells_sum_the_containers() {
    let mut store = empty_store();
    let window = 15_011 * MILLISECOND;
    add_pod(
        &mut store,
        "node-a",
        "kube-system",
        "coredns-0",
        Some(labels(&[("k8s-app", "kube-dns")])),
        &[
            ContainerUsage::new("coredns", SCRAPED, window, 10_000_000, 10 * MI),
            ContainerUsage::new("sidecar", SCRAPED, window, 10_000_000, 5 * MI),
        ],
    );

    let expected = [
        r#"{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{},"#,
        COLUMNS,
        r#""rows":[{"cells":["coredns-0","20m","15Mi","15.011s"],"object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","#,
        r#""metadata":{"name":"coredns-0","namespace":"kube-system","creationTimestamp":"2026-08-04T10:15:31Z","labels":{"k8s-app":"kube-dns"}}}}]}"#,
        "\n",
    ]
    .concat();
    assert_eq!(pod_table(&store, V1_METADATA), expected);
}

#[test]
fn pod_sums_print_in_canonical_form() {
    // 2931024n + 5m = 7931024n; 12240Ki + 5Mi = 17360Ki (a whole number of Ki, not of Mi).
    let mut store = empty_store();
    add_pod(
        &mut store,
        "node-a",
        "default",
        "web",
        None,
        &[
            ContainerUsage::new("a", SCRAPED, 15 * SECOND, 2_931_024, 12_240 * KI),
            ContainerUsage::new("b", SCRAPED, 15 * SECOND, 5_000_000, 5 * MI),
        ],
    );
    let none = TableOptions {
        version: MetaVersion::V1,
        row_object: RowObject::Nothing,
    };

    let table = pod_table(&store, none);

    assert!(
        table.contains(r#""rows":[{"cells":["web","7931024n","17360Ki","15s"],"object":null}]}"#),
        "{table}"
    );
}

#[test]
fn include_object_puts_the_full_object_in_each_row() {
    let object = TableOptions {
        version: MetaVersion::V1beta1,
        row_object: RowObject::Object,
    };

    let table = node_table(&two_nodes(), object);

    let expected_row = concat!(
        r#"{"cells":["n2","272m","12240Ki","15s"],"object":{"kind":"NodeMetrics","apiVersion":"metrics.k8s.io/v1beta1","#,
        r#""metadata":{"name":"n2","creationTimestamp":"2026-08-04T10:15:31Z"},"#,
        r#""timestamp":"2026-08-04T10:15:21Z","window":"15s","usage":{"cpu":"272m","memory":"12240Ki"}}}]}"#,
        "\n"
    );
    assert!(
        table.starts_with(r#"{"kind":"Table","apiVersion":"meta.k8s.io/v1beta1","#),
        "{table}"
    );
    assert!(table.ends_with(expected_row), "{table}");
}

#[test]
fn pods_before_the_first_with_usage_have_only_name_and_window_cells() {
    // table.go fixes the columns at the first pod that has usage; a pod whose every container
    // was skipped (counter reset) has none: before that point it gets two cells, after it "0"s.
    let mut store = empty_store();
    let reset = ContainerUsage {
        counter_reset: true,
        ..ContainerUsage::new("app", SCRAPED, 15 * SECOND, 1_000_000, MI)
    };
    add_pod(&mut store, "node-a", "a", "reset-first", None, &[reset]);
    add_pod(
        &mut store,
        "node-b",
        "b",
        "running",
        None,
        &[ContainerUsage::new(
            "app",
            SCRAPED,
            15 * SECOND,
            1_000_000,
            MI,
        )],
    );
    add_pod(&mut store, "node-c", "c", "reset-last", None, &[reset]);
    let none = TableOptions {
        version: MetaVersion::V1,
        row_object: RowObject::Nothing,
    };

    let table = pod_table(&store, none);

    let rows = concat!(
        r#""rows":[{"cells":["reset-first","0s"],"object":null},"#,
        r#"{"cells":["running","1m","1Mi","15s"],"object":null},"#,
        r#"{"cells":["reset-last","0","0","0s"],"object":null}]}"#,
        "\n"
    );
    assert!(table.contains(COLUMNS), "{table}");
    assert!(table.ends_with(rows), "{table}");
}

#[test]
fn partial_object_metadata_list_and_object() {
    let store = two_nodes();
    let nodes = store.node_metrics_list(&LabelSelector::everything(), None);

    assert_eq!(
        text(render_partial_object_metadata_list_of_nodes(
            &nodes,
            MetaVersion::V1,
            NOW
        )),
        concat!(
            r#"{"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1","metadata":{},"items":["#,
            r#"{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{"name":"n1","creationTimestamp":"2026-08-04T10:15:31Z","labels":{"kubernetes.io/os":"linux"}}},"#,
            r#"{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{"name":"n2","creationTimestamp":"2026-08-04T10:15:31Z"}}]}"#,
            "\n"
        )
    );
    assert_eq!(
        text(render_partial_object_metadata_of_node(
            &nodes[1],
            MetaVersion::V1beta1,
            NOW
        )),
        concat!(
            r#"{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1beta1","metadata":{"name":"n2","creationTimestamp":"2026-08-04T10:15:31Z"}}"#,
            "\n"
        )
    );
    assert_eq!(
        text(render_partial_object_metadata_list_of_pods(
            &[],
            MetaVersion::V1,
            NOW
        )),
        "{\"kind\":\"PartialObjectMetadataList\",\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":{},\"items\":null}\n"
    );
}
