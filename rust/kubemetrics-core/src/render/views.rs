//! One entry point per response: computed metrics rendered in the representation a client
//! negotiated (the objects as JSON or protobuf, a `Table`, or metadata only).
//!
//! `MetricsStore::render_*_view` selects, counts freshness and streams the objects (JSON and
//! protobuf) without building a list first; these functions render a list or object the caller
//! already selected, and every other representation.

use crate::store::{NodeMetrics, PodMetrics};

use super::table::{self, MetaVersion, TableOptions};
use super::{protobuf, render_node_json, render_pod_json, JsonList, NodeItem, PodItem, Resource};

/// `application/json` or `application/vnd.kubernetes.protobuf`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Protobuf,
}

/// What a response shows of the selected metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// `NodeMetrics`/`PodMetrics` and their lists.
    Object(Encoding),
    /// `Table` (JSON only, as the apiserver allows).
    Table(TableOptions),
    /// `PartialObjectMetadata` for a GET, `PartialObjectMetadataList` for a list.
    Metadata(MetaVersion, Encoding),
}

fn node_item<'a>(node: &NodeMetrics<'a>) -> NodeItem<'a> {
    NodeItem {
        name: node.name,
        labels_json: node.labels.json(),
        usage: node.usage,
    }
}

fn pod_item<'a>(pod: &PodMetrics<'a>) -> PodItem<'a> {
    PodItem {
        namespace: pod.namespace,
        name: pod.name,
        labels_json: pod.labels.map_or(&[], |labels| labels.json()),
        time: pod.time,
    }
}

/// A `NodeMetrics` JSON body, encoded from the computed metrics.
pub fn render_node_object(node: &NodeMetrics<'_>, now_unix_seconds: i64) -> Vec<u8> {
    render_node_json(&node_item(node), now_unix_seconds)
}

/// A `PodMetrics` JSON body, encoded from the computed metrics.
pub fn render_pod_object(pod: &PodMetrics<'_>, now_unix_seconds: i64) -> Vec<u8> {
    render_pod_json(
        &pod_item(pod),
        pod.containers()
            .map(|container| (container.name, container.usage)),
        now_unix_seconds,
    )
}

/// A `NodeMetricsList` JSON body of `nodes`.
pub fn render_node_list_json(nodes: &[NodeMetrics<'_>], now_unix_seconds: i64) -> Vec<u8> {
    let mut list = JsonList::new(Resource::Nodes, now_unix_seconds, nodes.len());
    for node in nodes {
        list.push_node(&node_item(node));
    }
    list.finish()
}

/// A `PodMetricsList` JSON body of `pods`.
pub fn render_pod_list_json(pods: &[PodMetrics<'_>], now_unix_seconds: i64) -> Vec<u8> {
    let mut list = JsonList::new(Resource::Pods, now_unix_seconds, pods.len());
    for pod in pods {
        list.push_pod(
            &pod_item(pod),
            pod.containers()
                .map(|container| (container.name, container.usage)),
        );
    }
    list.finish()
}

/// The response body for a list of `nodes` (selected and sorted by the caller).
pub fn render_node_list(view: View, nodes: &[NodeMetrics<'_>], now_unix_seconds: i64) -> Vec<u8> {
    match view {
        View::Object(Encoding::Json) => render_node_list_json(nodes, now_unix_seconds),
        View::Object(Encoding::Protobuf) => protobuf::render_node_list(nodes, now_unix_seconds),
        View::Table(options) => table::render_node_table(nodes, options, now_unix_seconds),
        View::Metadata(version, Encoding::Json) => {
            table::render_partial_object_metadata_list_of_nodes(nodes, version, now_unix_seconds)
        }
        View::Metadata(version, Encoding::Protobuf) => {
            protobuf::render_partial_object_metadata_list_of_nodes(nodes, version, now_unix_seconds)
        }
    }
}

/// The response body for one node (a GET by name).
pub fn render_node(view: View, node: &NodeMetrics<'_>, now_unix_seconds: i64) -> Vec<u8> {
    match view {
        View::Object(Encoding::Json) => render_node_object(node, now_unix_seconds),
        View::Object(Encoding::Protobuf) => protobuf::render_node(node, now_unix_seconds),
        View::Table(options) => {
            table::render_node_table(std::slice::from_ref(node), options, now_unix_seconds)
        }
        View::Metadata(version, Encoding::Json) => {
            table::render_partial_object_metadata_of_node(node, version, now_unix_seconds)
        }
        View::Metadata(version, Encoding::Protobuf) => {
            protobuf::render_partial_object_metadata_of_node(node, version, now_unix_seconds)
        }
    }
}

/// The response body for a list of `pods` (selected and sorted by the caller).
pub fn render_pod_list(view: View, pods: &[PodMetrics<'_>], now_unix_seconds: i64) -> Vec<u8> {
    match view {
        View::Object(Encoding::Json) => render_pod_list_json(pods, now_unix_seconds),
        View::Object(Encoding::Protobuf) => protobuf::render_pod_list(pods, now_unix_seconds),
        View::Table(options) => table::render_pod_table(pods, options, now_unix_seconds),
        View::Metadata(version, Encoding::Json) => {
            table::render_partial_object_metadata_list_of_pods(pods, version, now_unix_seconds)
        }
        View::Metadata(version, Encoding::Protobuf) => {
            protobuf::render_partial_object_metadata_list_of_pods(pods, version, now_unix_seconds)
        }
    }
}

/// The response body for one pod (a GET by name).
pub fn render_pod(view: View, pod: &PodMetrics<'_>, now_unix_seconds: i64) -> Vec<u8> {
    match view {
        View::Object(Encoding::Json) => render_pod_object(pod, now_unix_seconds),
        View::Object(Encoding::Protobuf) => protobuf::render_pod(pod, now_unix_seconds),
        View::Table(options) => {
            table::render_pod_table(std::slice::from_ref(pod), options, now_unix_seconds)
        }
        View::Metadata(version, Encoding::Json) => {
            table::render_partial_object_metadata_of_pod(pod, version, now_unix_seconds)
        }
        View::Metadata(version, Encoding::Protobuf) => {
            protobuf::render_partial_object_metadata_of_pod(pod, version, now_unix_seconds)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::test_stores::{
        add_node, add_pod, empty_store, labels, ContainerUsage, MI, SECOND,
    };
    use crate::selector::LabelSelector;

    #[test]
    fn json_from_computed_metrics_equals_the_store_responses() {
        let mut store = empty_store();
        add_node(
            &mut store,
            "n1",
            labels(&[("a", "<b>")]),
            1_000 * SECOND,
            15 * SECOND,
            5,
            MI,
        );
        add_node(
            &mut store,
            "n2",
            labels(&[]),
            1_000 * SECOND,
            14 * SECOND,
            7_000,
            3 * MI,
        );
        let container = ContainerUsage::new("app", 1_000 * SECOND, 15 * SECOND, 1_000, MI);
        add_pod(
            &mut store,
            "n3",
            "ns",
            "p",
            Some(labels(&[("x", "y")])),
            &[container],
        );
        let everything = LabelSelector::everything();
        let json = View::Object(Encoding::Json);

        let nodes = store.node_metrics_list(&everything, None);
        let pods = store.pod_metrics_list(None, &everything, None);

        assert_eq!(
            render_node_list(json, &nodes, 2_000),
            store.render_node_list(&everything, None, 2_000)
        );
        assert_eq!(
            render_pod_list(json, &pods, 2_000),
            store.render_pod_list(None, &everything, None, 2_000)
        );
        assert_eq!(
            Some(render_node(json, &nodes[0], 2_000)),
            store.render_node("n1", 2_000)
        );
        assert_eq!(
            Some(render_pod(json, &pods[0], 2_000)),
            store.render_pod("ns", "p", 2_000)
        );
    }
}
