//! The decoded form of one node scrape, as pushed from a worker to the front.
//!
//! These structs mirror `proto/kubemetrics/v1/sample.proto` field for field (tags and types); a
//! Python test round-trips bytes between this encoding and the protoc-generated classes, so the two
//! cannot drift apart silently.

use prost::Message;

/// A cumulative-CPU + working-set reading as the kubelet reported it.
#[derive(Clone, PartialEq, Message)]
pub struct ResourcePoint {
    /// Sample time, Unix nanoseconds.
    #[prost(int64, tag = "1")]
    pub timestamp_unix_nanos: i64,
    /// Cumulative CPU in core-nanoseconds; `None` when not reported.
    #[prost(uint64, optional, tag = "2")]
    pub cumulative_cpu_nanos: Option<u64>,
    /// Working set in bytes; `None` when not reported.
    #[prost(uint64, optional, tag = "3")]
    pub memory_working_set_bytes: Option<u64>,
    /// Container start time, Unix nanoseconds; 0 for nodes or when unknown.
    #[prost(int64, tag = "4")]
    pub start_time_unix_nanos: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct ContainerSample {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub point: Option<ResourcePoint>,
}

#[derive(Clone, PartialEq, Message)]
pub struct PodSample {
    #[prost(string, tag = "1")]
    pub namespace: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "3")]
    pub containers: Vec<ContainerSample>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeSample {
    /// The node name as the inventory knows it (the scrape target).
    #[prost(string, tag = "1")]
    pub node: String,
    /// When the worker sent the request, Unix nanoseconds.
    #[prost(int64, tag = "2")]
    pub scrape_time_unix_nanos: i64,
    #[prost(message, optional, tag = "3")]
    pub node_point: Option<ResourcePoint>,
    #[prost(message, repeated, tag = "4")]
    pub pods: Vec<PodSample>,
}

impl NodeSample {
    /// Protobuf encoding of this sample, sized exactly.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    /// Parses bytes produced by [`NodeSample::to_bytes`] (or any conforming protobuf encoder).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        Self::decode(bytes)
    }
}
