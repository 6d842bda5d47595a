//! Property tests of the `/metrics/resource` decoder: it never panics on random or damaged input,
//! its errors point inside the body, and any well-formed exposition decodes to exactly what it
//! says.

mod common;

use std::collections::HashSet;

use common::shared_dir;
use kubemetrics_core::error::DecodeErrorKind;
use kubemetrics_core::resource::decode_resource_metrics;
use kubemetrics_core::sample::{ContainerSample, NodeSample, PodSample, ResourcePoint};
use proptest::prelude::*;

const SCRAPE_TIME: i64 = 1_900_000_000_000_000_000;

fn read_resource_fixture(name: &str) -> Vec<u8> {
    let path = shared_dir().join("fixtures/kubelet/resource").join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// Decodes and checks what must hold for any input: errors stay inside the body and name their
/// kind first; successes survive a protobuf round trip.
fn decode_and_check(body: &[u8]) -> Result<(), TestCaseError> {
    match decode_resource_metrics(body, "n1", SCRAPE_TIME, usize::MAX) {
        Ok(sample) => {
            prop_assert_eq!(&sample.node, "n1");
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
            prop_assert_ne!(error.kind(), DecodeErrorKind::MissingField);
            prop_assert!(error.to_string().starts_with(error.kind().as_str()));
            prop_assert!(error.field().len() <= 200 + "…".len());
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
    /// Overwrite one byte with a byte that matters to the text format or UTF-8.
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
    /// Copy a slice of the body to another place (repeats lines, labels, half values).
    Duplicate {
        from: usize,
        length: usize,
        to: usize,
    },
}

const SIGNIFICANT_BYTES: &[u8] =
    b"{}\",= \t\n\r#\\0123456789.eE+-_:aNI\x00\x7f\xc3\xe2\xf0\xff\x80";
const TOKENS: &[&str] = &[
    "NaN",
    "+Inf",
    "-Inf",
    "-1",
    "1e400",
    "1e20",
    "-62135596800000",
    "99999999999999999999",
    "{",
    "}",
    "\"",
    "\\",
    ",",
    "=",
    "\r\n",
    "\n",
    "# HELP x y\n",
    "container=\"\",",
    "pod=\"p\",",
    "namespace=\"a\\\"b\",",
    "resource_scrape_error 1\n",
    "scrape_error 1\n",
    "container_cpu_usage_seconds_total",
    "node_memory_working_set_bytes 1\n",
    "_extra",
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
    prop_oneof![
        3 => Just("kind-coredns-single-pod-full.prom"),
        2 => Just("negative-container-start-time.prom"),
        2 => Just("no-explicit-timestamps.prom"),
        1 => Just("container-cpu-zero.prom"),
        1 => Just("container-missing-memory.prom"),
        1 => Just("kind-v1.21-70pods-metrics-server-benchmark.prom"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_and_check(&body)?;
    }

    #[test]
    fn exposition_looking_noise_never_panics(
        body in "[a-z_:{}=\",. \\t\\r\\n0-9#\\\\+eE-]{0,256}"
    ) {
        decode_and_check(body.as_bytes())?;
    }

    #[test]
    fn damaged_fixtures_never_panic(
        name in fixture(),
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let mut body = read_resource_fixture(name);
        for mutation in &mutations {
            apply(&mut body, mutation);
        }
        decode_and_check(&body)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Well-formed expositions built from a model: the decoded sample is exactly the model.

/// A series' timestamp as written.
#[derive(Debug, Clone, Copy)]
enum Timestamp {
    Absent,
    /// Positive milliseconds.
    At(i64),
    /// ≤ 0, which the decoder treats as absent (Go's zero time among them).
    Impossible(i64),
}

impl Timestamp {
    fn suffix(self) -> String {
        match self {
            Timestamp::Absent => String::new(),
            Timestamp::At(ms) | Timestamp::Impossible(ms) => format!(" {ms}"),
        }
    }

    fn unix_nanos(self) -> i64 {
        match self {
            Timestamp::At(ms) => ms * 1_000_000,
            Timestamp::Absent | Timestamp::Impossible(_) => SCRAPE_TIME,
        }
    }
}

/// A number and how it is written: Rust's shortest form or Go's `%g` exponent form.
#[derive(Debug, Clone, Copy)]
struct Number {
    value: f64,
    exponent_form: bool,
}

impl Number {
    fn text(self) -> String {
        if !self.exponent_form {
            return format!("{}", self.value);
        }
        // Rust writes `1.253376e7`; the kubelet (Go) writes `1.253376e+07`.
        let rust = format!("{:e}", self.value);
        let (mantissa, exponent) = rust.split_once('e').expect("exponent form");
        let exponent: i32 = exponent.parse().expect("exponent");
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

#[derive(Debug, Clone, Copy)]
enum StartTime {
    Seconds(f64),
    /// A value the decoder reports as unknown.
    Impossible(&'static str),
}

#[derive(Debug, Clone)]
struct ModelContainer {
    namespace: String,
    pod: String,
    name: String,
    cpu: Option<(Number, Timestamp)>,
    memory: Option<(Number, Timestamp)>,
    start_time: Option<StartTime>,
    /// Which of the six orders of the three labels, and whether an extra label is mixed in.
    label_order: usize,
    extra_label: bool,
}

#[derive(Debug, Clone)]
struct ModelBody {
    cpu: Option<(Number, Timestamp)>,
    memory: Option<(Number, Timestamp)>,
    containers: Vec<ModelContainer>,
    help_lines: bool,
    crlf: bool,
    final_newline: bool,
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        2 => Just(Timestamp::Absent),
        8 => (1_i64..4_102_444_800_000).prop_map(Timestamp::At),
        1 => prop::sample::select(vec![0_i64, -1, -62_135_596_800_000]).prop_map(Timestamp::Impossible),
    ]
}

fn cpu_seconds() -> impl Strategy<Value = Number> {
    // Nanosecond counters written as seconds, as the kubelet does (usageCoreNanoSeconds / 1e9).
    (0_u64..1_000_000_000_000_000, any::<bool>()).prop_map(|(nanos, exponent_form)| Number {
        value: nanos as f64 / 1e9,
        exponent_form,
    })
}

fn bytes() -> impl Strategy<Value = Number> {
    (0_u64..(1 << 53), any::<bool>()).prop_map(|(bytes, exponent_form)| Number {
        value: bytes as f64,
        exponent_form,
    })
}

fn start_time() -> impl Strategy<Value = StartTime> {
    prop_oneof![
        6 => (1.0_f64..4_102_444_800.0).prop_map(StartTime::Seconds),
        1 => prop::sample::select(vec!["-6.7953645788713455e+09", "0", "NaN", "+Inf", "1e300"])
            .prop_map(StartTime::Impossible),
    ]
}

fn container() -> impl Strategy<Value = ModelContainer> {
    (
        // Small alphabets, so containers share pods; quotes, backslashes and newlines need escapes.
        "[ab\"]{1,2}",
        "[pq\\\\\n]{1,2}",
        "[xyé ]{1,3}",
        proptest::option::weighted(0.8, (cpu_seconds(), timestamp())),
        proptest::option::weighted(0.8, (bytes(), timestamp())),
        proptest::option::weighted(0.5, start_time()),
        0_usize..6,
        any::<bool>(),
    )
        .prop_map(
            |(namespace, pod, name, cpu, memory, start_time, label_order, extra_label)| {
                ModelContainer {
                    namespace,
                    pod,
                    name,
                    cpu,
                    memory,
                    start_time,
                    label_order,
                    extra_label,
                }
            },
        )
}

fn model_body() -> impl Strategy<Value = ModelBody> {
    (
        proptest::option::weighted(0.9, (cpu_seconds(), timestamp())),
        proptest::option::weighted(0.9, (bytes(), timestamp())),
        prop::collection::vec(container(), 0..12),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(cpu, memory, containers, help_lines, crlf, final_newline)| {
                // One series per container and family: keep the first of each identity.
                let mut identities = HashSet::new();
                let containers = containers
                    .into_iter()
                    .filter(|c| {
                        identities.insert((c.namespace.clone(), c.pod.clone(), c.name.clone()))
                    })
                    .collect();
                ModelBody {
                    cpu,
                    memory,
                    containers,
                    help_lines,
                    crlf,
                    final_newline,
                }
            },
        )
}

fn escaped(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn container_labels(container: &ModelContainer) -> String {
    const ORDERS: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    let pairs = [
        format!("container=\"{}\"", escaped(&container.name)),
        format!("namespace=\"{}\"", escaped(&container.namespace)),
        format!("pod=\"{}\"", escaped(&container.pod)),
    ];
    let mut labels: Vec<String> = ORDERS[container.label_order]
        .iter()
        .map(|&index| pairs[index].clone())
        .collect();
    if container.extra_label {
        labels.insert(
            container.label_order % 3,
            "id=\"/kubepods/burstable\"".to_owned(),
        );
    }
    format!("{{{}}}", labels.join(","))
}

/// The exposition as a kubelet writes it: families sorted by name, each container in the same
/// order within a family, pod-level and swap families in between, the error gauge last.
fn body_text(model: &ModelBody) -> String {
    let mut lines: Vec<String> = Vec::new();
    let family = |lines: &mut Vec<String>, name: &str, kind: &str| {
        if model.help_lines {
            lines.push(format!("# HELP {name} [STABLE] help text"));
            lines.push(format!("# TYPE {name} {kind}"));
        }
    };
    family(&mut lines, "container_cpu_usage_seconds_total", "counter");
    for c in &model.containers {
        if let Some((cpu, at)) = c.cpu {
            lines.push(format!(
                "container_cpu_usage_seconds_total{} {}{}",
                container_labels(c),
                cpu.text(),
                at.suffix()
            ));
        }
    }
    family(&mut lines, "container_memory_working_set_bytes", "gauge");
    for c in &model.containers {
        if let Some((memory, at)) = c.memory {
            lines.push(format!(
                "container_memory_working_set_bytes{} {}{}",
                container_labels(c),
                memory.text(),
                at.suffix()
            ));
        }
    }
    family(&mut lines, "container_start_time_seconds", "gauge");
    for c in &model.containers {
        match c.start_time {
            Some(StartTime::Seconds(seconds)) => lines.push(format!(
                "container_start_time_seconds{} {seconds} 1633253812125",
                container_labels(c)
            )),
            Some(StartTime::Impossible(text)) => lines.push(format!(
                "container_start_time_seconds{} {text} -62135596800000",
                container_labels(c)
            )),
            None => {}
        }
        lines.push(format!(
            "container_swap_usage_bytes{} 4096 1633253812125",
            container_labels(c)
        ));
    }
    family(&mut lines, "node_cpu_usage_seconds_total", "counter");
    if let Some((cpu, at)) = model.cpu {
        lines.push(format!(
            "node_cpu_usage_seconds_total {}{}",
            cpu.text(),
            at.suffix()
        ));
    }
    family(&mut lines, "node_memory_working_set_bytes", "gauge");
    if let Some((memory, at)) = model.memory {
        lines.push(format!(
            "node_memory_working_set_bytes {}{}",
            memory.text(),
            at.suffix()
        ));
    }
    for c in &model.containers {
        lines.push(format!(
            "pod_cpu_usage_seconds_total{{namespace=\"{}\",pod=\"{}\"}} 1.5 1633253812125",
            escaped(&c.namespace),
            escaped(&c.pod)
        ));
    }
    family(&mut lines, "resource_scrape_error", "gauge");
    lines.push("resource_scrape_error 0".to_owned());
    let newline = if model.crlf { "\r\n" } else { "\n" };
    let mut text = lines.join(newline);
    if model.final_newline {
        text.push_str(newline);
    }
    text
}

fn cpu_nanos(number: Number) -> u64 {
    // metrics-server's uint64(v*1e9): the product, truncated.
    (number.value * 1e9) as u64
}

/// What the decoder promises, restated: pods and containers in the order their first series
/// appears; a point timed by its last cpu/memory line (memory, in kubelet order) or the scrape;
/// impossible start times 0.
fn expected_sample(model: &ModelBody) -> NodeSample {
    let mut pods: Vec<PodSample> = Vec::new();
    let order: Vec<&ModelContainer> = model
        .containers
        .iter()
        .filter(|c| c.cpu.is_some())
        .chain(model.containers.iter().filter(|c| c.memory.is_some()))
        .chain(model.containers.iter().filter(|c| c.start_time.is_some()))
        .collect();
    for c in order {
        let pod_index = match pods
            .iter()
            .position(|pod| pod.namespace == c.namespace && pod.name == c.pod)
        {
            Some(index) => index,
            None => {
                pods.push(PodSample {
                    namespace: c.namespace.clone(),
                    name: c.pod.clone(),
                    containers: Vec::new(),
                });
                pods.len() - 1
            }
        };
        let pod = &mut pods[pod_index];
        if pod.containers.iter().any(|known| known.name == c.name) {
            continue;
        }
        let timing = c.memory.or(c.cpu).map(|(_, at)| at);
        pod.containers.push(ContainerSample {
            name: c.name.clone(),
            point: Some(ResourcePoint {
                timestamp_unix_nanos: timing.map_or(SCRAPE_TIME, Timestamp::unix_nanos),
                cumulative_cpu_nanos: c.cpu.map(|(cpu, _)| cpu_nanos(cpu)),
                memory_working_set_bytes: c.memory.map(|(memory, _)| memory.value as u64),
                start_time_unix_nanos: match c.start_time {
                    Some(StartTime::Seconds(seconds)) => (seconds * 1e9) as i64,
                    Some(StartTime::Impossible(_)) | None => 0,
                },
            }),
        });
    }
    let node_timing = model.memory.or(model.cpu).map(|(_, at)| at);
    NodeSample {
        node: "n1".to_owned(),
        scrape_time_unix_nanos: SCRAPE_TIME,
        node_point: node_timing.map(|at| ResourcePoint {
            timestamp_unix_nanos: at.unix_nanos(),
            cumulative_cpu_nanos: model.cpu.map(|(cpu, _)| cpu_nanos(cpu)),
            memory_working_set_bytes: model.memory.map(|(memory, _)| memory.value as u64),
            start_time_unix_nanos: 0,
        }),
        pods,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    #[test]
    fn well_formed_expositions_decode_to_their_model(model in model_body()) {
        let body = body_text(&model);
        let decoded = decode_resource_metrics(body.as_bytes(), "n1", SCRAPE_TIME, usize::MAX);
        prop_assert_eq!(decoded, Ok(expected_sample(&model)), "{}", body);
    }

    #[test]
    fn a_well_formed_exposition_cut_anywhere_never_panics(model in model_body(), cut in any::<usize>()) {
        let body = body_text(&model);
        let mut cut = cut % (body.len() + 1);
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        decode_and_check(&body.as_bytes()[..cut])?;
    }
}
