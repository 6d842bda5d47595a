//! Property tests of the summary decoder: it never panics on random or damaged input, its errors
//! point inside the body, and any well-formed summary decodes to exactly what it says.

mod common;

use common::{read_summary_fixture, rfc3339};
use kubemetrics_core::error::DecodeErrorKind;
use kubemetrics_core::sample::{ContainerSample, NodeSample, PodSample, ResourcePoint};
use kubemetrics_core::summary::decode_summary;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

const SCRAPE_TIME: i64 = 1_900_000_000_000_000_000;

/// Decodes and checks what must hold for any input: errors stay inside the body and name their
/// kind first; successes survive a protobuf round trip.
fn decode_and_check(body: &[u8]) -> Result<(), TestCaseError> {
    match decode_summary(body, "n1", SCRAPE_TIME, usize::MAX) {
        Ok(sample) => {
            let bytes = sample.to_bytes();
            prop_assert_eq!(NodeSample::from_bytes(&bytes).ok(), Some(sample));
        }
        Err(error) => {
            prop_assert!(
                error.offset() <= body.len(),
                "{} past {} bytes",
                error,
                body.len()
            );
            prop_assert_ne!(error.kind(), DecodeErrorKind::Oversized);
            prop_assert!(error.to_string().starts_with(error.kind().as_str()));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Damaged real payloads.

#[derive(Debug, Clone)]
enum Mutation {
    /// XOR one byte with a non-zero mask.
    Flip {
        at: usize,
        mask: u8,
    },
    /// Overwrite one byte with a byte that matters to JSON or UTF-8.
    Replace {
        at: usize,
        byte: u8,
    },
    Insert {
        at: usize,
        text: &'static str,
    },
    Delete {
        at: usize,
        length: usize,
    },
    Truncate {
        at: usize,
    },
    /// Copy a slice of the body to another place (repeats keys, objects, half values).
    Duplicate {
        from: usize,
        length: usize,
        to: usize,
    },
}

const SIGNIFICANT_BYTES: &[u8] = b"\"{}[],:\\0-9.eEntfu \n\x00\x7f\xc3\xe2\xf0\xff\x80";
const TOKENS: &[&str] = &[
    "null",
    "\"\"",
    "\"none\"",
    "-1",
    "1e400",
    "18446744073709551616",
    "0.5",
    "{}",
    "[]",
    "{",
    "]",
    ",",
    "\"\\ud800\"",
    "\"\\u0000\"",
    "\"2026-02-30T00:00:00Z\"",
    "\"9999-12-31T23:59:59Z\"",
    "\"pods\":null,",
    "\"containers\":null,",
    "\"startTime\":null,",
    "\"cpu\":{},",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    // Positions are drawn large and reduced modulo the body length when applied.
    let at = any::<usize>();
    prop_oneof![
        (at, 1..=255_u8).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        (at, prop::sample::select(SIGNIFICANT_BYTES))
            .prop_map(|(at, byte)| Mutation::Replace { at, byte }),
        (at, prop::sample::select(TOKENS)).prop_map(|(at, text)| Mutation::Insert { at, text }),
        (at, 1..64_usize).prop_map(|(at, length)| Mutation::Delete { at, length }),
        at.prop_map(|at| Mutation::Truncate { at }),
        (at, 1..256_usize, at).prop_map(|(from, length, to)| Mutation::Duplicate {
            from,
            length,
            to
        }),
    ]
}

fn apply(body: &mut Vec<u8>, mutation: &Mutation) {
    if body.is_empty() {
        return;
    }
    let len = body.len();
    match *mutation {
        Mutation::Flip { at, mask } => body[at % len] ^= mask,
        Mutation::Replace { at, byte } => body[at % len] = byte,
        Mutation::Insert { at, text } => {
            let at = at % (len + 1);
            body.splice(at..at, text.bytes());
        }
        Mutation::Delete { at, length } => {
            let at = at % len;
            body.drain(at..(at + length).min(len));
        }
        Mutation::Truncate { at } => body.truncate(at % len),
        Mutation::Duplicate { from, length, to } => {
            let from = from % len;
            let slice = body[from..(from + length).min(len)].to_vec();
            let to = to % (len + 1);
            body.splice(to..to, slice);
        }
    }
}

fn fixture() -> impl Strategy<Value = &'static str> {
    // Mostly the small payloads (fast to decode in debug builds), sometimes the largest.
    prop_oneof![
        4 => Just("metrics-server-edgecases-v1.17.json"),
        4 => Just("legacy-no-pod-level-cpu-memory.json"),
        1 => Just("minikube-v1.19-nri-datagen.json"),
        1 => Just("minikube-v1.35-nri-datagen.json"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_and_check(&body)?;
    }

    #[test]
    fn json_looking_noise_never_panics(body in "[\\[\\]{}\":,0-9a-z \\\\.-]{0,256}") {
        decode_and_check(body.as_bytes())?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_500, ..ProptestConfig::default() })]

    #[test]
    fn damaged_fixtures_never_panic(
        name in fixture(),
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let mut body = read_summary_fixture(name);
        for mutation in &mutations {
            apply(&mut body, mutation);
        }
        decode_and_check(&body)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Well-formed summaries built from a model: the decoded sample is exactly the model.

/// A `time` or `startTime`: absent, `null`, or whole seconds (what the kubelet writes).
#[derive(Debug, Clone, Copy)]
enum Time {
    Absent,
    Null,
    At(i64),
}

impl Time {
    fn unix_nanos(self) -> Option<i64> {
        match self {
            Time::At(seconds) => Some(seconds * 1_000_000_000),
            Time::Absent | Time::Null => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Usage {
    time: Time,
    value: Option<u64>,
    /// Write an absent value as `null` instead of leaving the key out.
    null_when_absent: bool,
}

#[derive(Debug, Clone)]
struct ModelContainer {
    name: String,
    start_time: Time,
    cpu: Option<Usage>,
    memory: Option<Usage>,
}

#[derive(Debug, Clone)]
struct ModelPod {
    namespace: String,
    name: String,
    /// `None` = `"containers": null`.
    containers: Option<Vec<ModelContainer>>,
}

#[derive(Debug, Clone)]
struct ModelSummary {
    cpu: Option<Usage>,
    memory: Option<Usage>,
    /// `None` = `"pods": null`.
    pods: Option<Vec<ModelPod>>,
    pretty: bool,
}

fn time() -> impl Strategy<Value = Time> {
    prop_oneof![
        1 => Just(Time::Absent),
        1 => Just(Time::Null),
        8 => (0_i64..4_102_444_800).prop_map(Time::At),
    ]
}

fn usage() -> impl Strategy<Value = Usage> {
    (
        time(),
        proptest::option::weighted(0.8, any::<u64>()),
        any::<bool>(),
    )
        .prop_map(|(time, value, null_when_absent)| Usage {
            time,
            value,
            null_when_absent,
        })
}

fn container() -> impl Strategy<Value = ModelContainer> {
    (
        "\\PC{0,12}",
        time(),
        proptest::option::weighted(0.8, usage()),
        proptest::option::weighted(0.8, usage()),
    )
        .prop_map(|(name, start_time, cpu, memory)| ModelContainer {
            name,
            start_time,
            cpu,
            memory,
        })
}

fn pod() -> impl Strategy<Value = ModelPod> {
    (
        "[a-z0-9-]{1,12}",
        "\\PC{1,20}",
        proptest::option::weighted(0.9, prop::collection::vec(container(), 0..4)),
    )
        .prop_map(|(namespace, name, containers)| ModelPod {
            namespace,
            name,
            containers,
        })
}

fn summary() -> impl Strategy<Value = ModelSummary> {
    (
        proptest::option::weighted(0.9, usage()),
        proptest::option::weighted(0.9, usage()),
        proptest::option::weighted(0.95, prop::collection::vec(pod(), 0..6)),
        any::<bool>(),
    )
        .prop_map(|(cpu, memory, pods, pretty)| ModelSummary {
            cpu,
            memory,
            pods,
            pretty,
        })
}

fn time_json(object: &mut Map<String, Value>, key: &str, time: Time) {
    match time {
        Time::Absent => {}
        Time::Null => {
            object.insert(key.to_owned(), Value::Null);
        }
        Time::At(seconds) => {
            object.insert(key.to_owned(), Value::String(rfc3339(seconds)));
        }
    }
}

fn usage_json(usage: &Usage, value_key: &str) -> Value {
    let mut object = Map::new();
    time_json(&mut object, "time", usage.time);
    // A field the decoder skips, of the kind every real section has.
    object.insert("usageNanoCores".to_owned(), json!(12345));
    match usage.value {
        Some(value) => {
            object.insert(value_key.to_owned(), json!(value));
        }
        None if usage.null_when_absent => {
            object.insert(value_key.to_owned(), Value::Null);
        }
        None => {}
    }
    Value::Object(object)
}

fn stats_json(object: &mut Map<String, Value>, cpu: &Option<Usage>, memory: &Option<Usage>) {
    if let Some(cpu) = cpu {
        object.insert("cpu".to_owned(), usage_json(cpu, "usageCoreNanoSeconds"));
    }
    if let Some(memory) = memory {
        object.insert("memory".to_owned(), usage_json(memory, "workingSetBytes"));
    }
}

fn summary_json(model: &ModelSummary) -> String {
    let mut node = Map::new();
    node.insert("nodeName".to_owned(), json!("payload-name"));
    stats_json(&mut node, &model.cpu, &model.memory);
    let pods = model.pods.as_ref().map(|pods| {
        pods.iter()
            .map(|pod| {
                let containers = pod.containers.as_ref().map(|containers| {
                    containers
                        .iter()
                        .map(|container| {
                            let mut object = Map::new();
                            object.insert("name".to_owned(), json!(container.name));
                            time_json(&mut object, "startTime", container.start_time);
                            stats_json(&mut object, &container.cpu, &container.memory);
                            Value::Object(object)
                        })
                        .collect::<Vec<_>>()
                });
                json!({
                    "podRef": {"name": pod.name, "namespace": pod.namespace, "uid": "u"},
                    "startTime": null,
                    "containers": containers,
                    "volume": [{"name": "v", "usedBytes": 1}],
                })
            })
            .collect::<Vec<_>>()
    });
    let document = json!({"node": node, "pods": pods});
    if model.pretty {
        serde_json::to_string_pretty(&document).expect("serialises")
    } else {
        document.to_string()
    }
}

/// What the decoder promises, restated: node timed by cpu.time else memory.time (else no point);
/// containers timed by cpu.time, memory.time, else the scrape; start time null → 0.
fn expected_sample(model: &ModelSummary) -> NodeSample {
    let time_of = |usage: &Option<Usage>| usage.as_ref().and_then(|usage| usage.time.unix_nanos());
    let value_of = |usage: &Option<Usage>| usage.as_ref().and_then(|usage| usage.value);
    let node_time = time_of(&model.cpu).or_else(|| time_of(&model.memory));
    NodeSample {
        node: "n1".to_owned(),
        scrape_time_unix_nanos: SCRAPE_TIME,
        node_point: node_time.map(|timestamp_unix_nanos| ResourcePoint {
            timestamp_unix_nanos,
            cumulative_cpu_nanos: value_of(&model.cpu),
            memory_working_set_bytes: value_of(&model.memory),
            start_time_unix_nanos: 0,
        }),
        pods: model
            .pods
            .iter()
            .flatten()
            .map(|pod| PodSample {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
                containers: pod
                    .containers
                    .iter()
                    .flatten()
                    .map(|container| ContainerSample {
                        name: container.name.clone(),
                        point: Some(ResourcePoint {
                            timestamp_unix_nanos: time_of(&container.cpu)
                                .or_else(|| time_of(&container.memory))
                                .unwrap_or(SCRAPE_TIME),
                            cumulative_cpu_nanos: value_of(&container.cpu),
                            memory_working_set_bytes: value_of(&container.memory),
                            start_time_unix_nanos: container.start_time.unix_nanos().unwrap_or(0),
                        }),
                    })
                    .collect(),
            })
            .collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    #[test]
    fn well_formed_summaries_decode_to_their_model(model in summary()) {
        let body = summary_json(&model);
        let decoded = decode_summary(body.as_bytes(), "n1", SCRAPE_TIME, usize::MAX);
        prop_assert_eq!(decoded, Ok(expected_sample(&model)), "{}", body);
    }

    #[test]
    fn every_prefix_of_a_well_formed_summary_is_truncated(model in summary(), cut in any::<usize>()) {
        let body = summary_json(&model);
        let end = body.trim_end().len();
        let mut cut = cut % end;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        let error = decode_summary(&body.as_bytes()[..cut], "n1", SCRAPE_TIME, usize::MAX)
            .expect_err("a strict prefix cannot decode");
        prop_assert_eq!(error.kind(), DecodeErrorKind::Truncated, "{}", error);
        prop_assert_eq!(error.offset(), cut);
    }
}
