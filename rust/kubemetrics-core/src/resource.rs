//! Decoder for the kubelet resource metrics endpoint (`GET /metrics/resource`, Prometheus text
//! format 0.0.4) into a [`NodeSample`].
//!
//! Five families are read, the ones metrics-server reads (`pkg/scraper/client/resource/decode.go`):
//!
//! | series | becomes |
//! | --- | --- |
//! | `node_cpu_usage_seconds_total` | node cumulative CPU, `value × 1e9` ns |
//! | `node_memory_working_set_bytes` | node working set |
//! | `container_cpu_usage_seconds_total{container,namespace,pod}` | container cumulative CPU (ns) |
//! | `container_memory_working_set_bytes{…}` | container working set |
//! | `container_start_time_seconds{…}` | container start time (its sample timestamp is ignored) |
//!
//! Every other family (`pod_*`, `*_swap_*`, `scrape_error`, families added by newer kubelets) is
//! checked for syntax and otherwise skipped. A series' name matches only as a whole token, so
//! `container_cpu_usage_seconds_total_extra` is an unknown family, not container CPU.
//!
//! Times: a series' millisecond timestamp becomes the point's time; a series without one is timed
//! at the scrape. As in metrics-server, a container's (and the node's) point takes the timestamp of
//! whichever of its cpu or memory lines was parsed last, which on a real kubelet is the memory line
//! (families come out sorted by name).
//!
//! Where this deliberately differs from metrics-server:
//! - One impossible time does not cost the node. metrics-server fails the whole scrape on a
//!   negative timestamp (kubernetes#109679: a kubelet wrote `container_start_time_seconds
//!   -6.79e+09 -62135596800000` for one container). Here a timestamp ≤ 0 (or past what Unix
//!   nanoseconds hold) counts as absent, so the point is timed at the scrape, and a start time that
//!   is negative, zero, not finite or out of range counts as unknown (0); everything else in the
//!   body is kept.
//! - Labels are parsed, not searched for: any order, escapes (`\"`, `\\`, `\n`) decoded, extra
//!   labels ignored, and a container series without a `container`, `namespace` or `pod` label (or
//!   with an empty one, which Prometheus treats as absent) is an error instead of an empty name.
//! - Values are kept as the kubelet reported them, zeros included (`Some(0)`), and absent values
//!   stay `None`: metrics-server drops a pod whose container reports zero CPU or no memory, but that
//!   is the store's decision, as for the Summary decoder. A CPU or memory value no counter or
//!   gauge can have (negative, NaN, ±Inf, past 64 bits) is a `wrong_type` error.
//! - `resource_scrape_error 1` (or the older `scrape_error 1`) with no node or container data is a
//!   `kubelet_error`, so the failure is reported as the kubelet's; with data present the data is
//!   used (a partial answer beats none).
//!
//! Pods come out in the order their first container series appears, containers likewise; a series
//! repeated in one family overwrites the earlier value, as in metrics-server.
//!
//! Errors: a line that is not exposition syntax (every line is checked, read or not) is
//! `malformed` at the offending byte, with the series as written (`name{labels}`, as far as it was
//! read) as the field and the line number in the message. A last line that stops short with no
//! newline after it is `truncated` at the end of the body, and so is a body without any sample.
//!
//! Speed: the body is walked once, line by line with `memchr`; names are borrowed from the body
//! while parsing and copied once into the sample, and nothing is allocated per line. The 35 KB,
//! 70-pod kind payload decodes in about 65 µs (timing test in `tests/resource_fixtures.rs`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use crate::error::{DecodeError, DecodeErrorKind};
use crate::sample::{ContainerSample, NodeSample, PodSample, ResourcePoint};

const NANOS_PER_SECOND: f64 = 1e9;
const NANOS_PER_MILLISECOND: i64 = 1_000_000;
/// 2^64, the smallest float a `u64` cannot hold.
const U64_END: f64 = 18_446_744_073_709_551_616.0;
/// 2^63, the smallest float an `i64` cannot hold.
const I64_END: f64 = 9_223_372_036_854_775_808.0;
/// Longest series text kept as an error's field, in bytes: label values are unbounded.
const MAX_FIELD_BYTES: usize = 200;
/// A kubelet writes about 500 bytes per single-container pod (70-pod kind fixture); reserving by
/// body size avoids regrowing the pod list, capped so a huge body cannot reserve much up front.
const BYTES_PER_POD: usize = 500;
const MAX_RESERVED_PODS: usize = 4_096;

/// Decodes one `/metrics/resource` body scraped from `node` at `scrape_time_unix_nanos`.
///
/// `node` is the inventory's name for the scrape target; the scrape time stands in for a series'
/// time when the kubelet gave none (or an impossible one). Bodies over `max_body_bytes` are refused
/// before any parsing. Never panics, whatever the bytes.
pub fn decode_resource_metrics(
    body: &[u8],
    node: &str,
    scrape_time_unix_nanos: i64,
    max_body_bytes: usize,
) -> Result<NodeSample, DecodeError> {
    if body.len() > max_body_bytes {
        return Err(DecodeError::oversized(body.len(), max_body_bytes));
    }
    // Validated once up front, so lines can be sliced as &str and the bad byte's offset is exact.
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(error) => return Err(invalid_utf8(body, &error)),
    };
    let mut builder = SampleBuilder::new(node, scrape_time_unix_nanos, text.len());
    let bytes = text.as_bytes();
    let mut line_start = 0;
    let mut line_number = 0;
    while line_start < bytes.len() {
        let line_end = memchr::memchr(b'\n', &bytes[line_start..])
            .map_or(bytes.len(), |newline| line_start + newline);
        line_number += 1;
        let line = Line {
            text: &text[line_start..line_end],
            offset: line_start,
            number: line_number,
            last_in_body: line_end == bytes.len(),
        };
        builder.read_line(&line, text.len())?;
        line_start = line_end + 1;
    }
    builder.finish(text.len())
}

// ---------------------------------------------------------------------------------------------
// One line of the body, and the series it holds.

struct Line<'a> {
    /// Without its `\n`; a `\r` before it is still there.
    text: &'a str,
    /// Byte offset of the line in the body.
    offset: usize,
    /// 1-based, for messages.
    number: usize,
    /// The body ends on this line without a final newline, so a line that stops short may have
    /// been cut in transfer.
    last_in_body: bool,
}

/// The families the decoder reads; everything else is `Other`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Family {
    NodeCpu,
    NodeMemory,
    ContainerCpu,
    ContainerMemory,
    ContainerStartTime,
    ScrapeError,
    Other,
}

impl Family {
    fn of(name: &str) -> Self {
        match name {
            "node_cpu_usage_seconds_total" => Self::NodeCpu,
            "node_memory_working_set_bytes" => Self::NodeMemory,
            "container_cpu_usage_seconds_total" => Self::ContainerCpu,
            "container_memory_working_set_bytes" => Self::ContainerMemory,
            "container_start_time_seconds" => Self::ContainerStartTime,
            // `scrape_error` until 1.28, both since 1.29, only `resource_scrape_error` later.
            "resource_scrape_error" | "scrape_error" => Self::ScrapeError,
            _ => Self::Other,
        }
    }

    fn is_container(self) -> bool {
        matches!(
            self,
            Self::ContainerCpu | Self::ContainerMemory | Self::ContainerStartTime
        )
    }
}

/// A label value as written between its quotes.
#[derive(Clone, Copy)]
struct LabelValue<'a> {
    raw: &'a str,
    /// Holds a backslash escape, so it must be decoded before use.
    escaped: bool,
}

impl<'a> LabelValue<'a> {
    /// The value with `\\`, `\"` and `\n` decoded; borrowed unless there was an escape. Any other
    /// escape is kept as written, as Prometheus' own parser does.
    fn decoded(self) -> Cow<'a, str> {
        if !self.escaped {
            return Cow::Borrowed(self.raw);
        }
        let mut decoded = String::with_capacity(self.raw.len());
        let mut chars = self.raw.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                decoded.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => decoded.push('\n'),
                Some(escaped @ ('\\' | '"')) => decoded.push(escaped),
                Some(other) => {
                    decoded.push('\\');
                    decoded.push(other);
                }
                None => decoded.push('\\'),
            }
        }
        Cow::Owned(decoded)
    }
}

/// The labels that identify a container; other labels are checked for syntax and dropped.
#[derive(Default)]
struct ContainerLabels<'a> {
    container: Option<LabelValue<'a>>,
    namespace: Option<LabelValue<'a>>,
    pod: Option<LabelValue<'a>>,
}

struct Series<'a> {
    name: &'a str,
    family: Family,
    /// Where `name{labels}` is in the line, to name the series in errors.
    identifier: Range<usize>,
    labels: ContainerLabels<'a>,
    value: f64,
    /// The value as written, and where (in the line), for errors.
    value_text: &'a str,
    value_at: usize,
    timestamp_ms: Option<i64>,
}

/// A line that is not a valid sample line. Offsets are within the line.
struct SyntaxError {
    at: usize,
    /// How much of `name{labels}` was read before the error, to name the series.
    identifier: Range<usize>,
    message: Cow<'static, str>,
    /// The line ended where more was required (an open label set, a missing value).
    ran_out: bool,
}

/// Reads `name[{labels}] value [timestamp]` from `line[start..]` (`start` skips leading blanks).
fn parse_series(line: &str, start: usize) -> Result<Series<'_>, Box<SyntaxError>> {
    let mut cursor = Cursor {
        line,
        bytes: line.as_bytes(),
        position: start,
    };
    let name = cursor.metric_name();
    if name.is_empty() {
        return Err(cursor.error(start..start, "expected a metric name or a `#` comment"));
    }
    let family = Family::of(name);
    let labels = if cursor.peek() == Some(b'{') {
        cursor.position += 1;
        cursor.labels(start)?
    } else {
        ContainerLabels::default()
    };
    let identifier = start..cursor.position;

    match cursor.peek() {
        Some(b' ' | b'\t') => cursor.skip_blanks(),
        None => return Err(cursor.ran_out(identifier, "missing value")),
        Some(_) => {
            let message = format!(
                "unexpected {} after the series name",
                describe_char(&line[cursor.position..])
            );
            return Err(cursor.error(identifier, message));
        }
    }
    let value_at = cursor.position;
    let value_text = cursor.token();
    if value_text.is_empty() {
        return Err(cursor.ran_out(identifier, "missing value"));
    }
    // Go's ParseFloat and Rust's agree on everything a kubelet writes (`%g` output, `+Inf`,
    // `NaN`); Rust rejects only Go's hexadecimal and underscore forms, which no exporter emits.
    let Ok(value) = value_text.parse::<f64>() else {
        cursor.position = value_at;
        let message = format!("value {value_text:?} is not a number");
        return Err(cursor.error(identifier, message));
    };

    cursor.skip_blanks();
    let timestamp_at = cursor.position;
    let timestamp_text = cursor.token();
    let timestamp_ms = if timestamp_text.is_empty() {
        None
    } else {
        match timestamp_text.parse::<i64>() {
            Ok(milliseconds) => Some(milliseconds),
            Err(_) => {
                cursor.position = timestamp_at;
                let message = format!(
                    "timestamp {timestamp_text:?} is not an integer number of milliseconds"
                );
                return Err(cursor.error(identifier, message));
            }
        }
    };
    cursor.skip_blanks();
    if cursor.position < line.len() {
        return Err(cursor.error(identifier, "unexpected text after the timestamp"));
    }
    Ok(Series {
        name,
        family,
        identifier,
        labels,
        value,
        value_text,
        value_at,
        timestamp_ms,
    })
}

struct Cursor<'a> {
    line: &'a str,
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.position += 1;
        }
    }

    /// Up to the next blank or the end of the line.
    fn token(&mut self) -> &'a str {
        let start = self.position;
        while !matches!(self.peek(), None | Some(b' ' | b'\t')) {
            self.position += 1;
        }
        &self.line[start..self.position]
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`, possibly empty.
    fn metric_name(&mut self) -> &'a str {
        self.identifier_token(METRIC_NAME)
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`, possibly empty.
    fn label_name(&mut self) -> &'a str {
        self.identifier_token(LABEL_NAME)
    }

    /// The longest run of bytes of class `class` that does not start with a digit.
    #[inline]
    fn identifier_token(&mut self, class: u8) -> &'a str {
        let start = self.position;
        let rest = &self.bytes[start..];
        let first_is_digit = rest.first().is_some_and(u8::is_ascii_digit);
        if !first_is_digit {
            let length = rest
                .iter()
                .position(|&byte| BYTE_CLASSES[usize::from(byte)] & class == 0)
                .unwrap_or(rest.len());
            self.position += length;
        }
        &self.line[start..self.position]
    }

    /// The label set after its `{`, through its `}`: `name="value"` pairs separated by commas,
    /// a trailing comma allowed, blanks allowed between tokens.
    fn labels(&mut self, series_start: usize) -> Result<ContainerLabels<'a>, Box<SyntaxError>> {
        let mut labels = ContainerLabels::default();
        loop {
            self.skip_blanks();
            match self.peek() {
                Some(b'}') => {
                    self.position += 1;
                    return Ok(labels);
                }
                None => return Err(self.ran_out(series_start..self.position, "unclosed `{`")),
                Some(_) => {}
            }
            let name_at = self.position;
            let name = self.label_name();
            if name.is_empty() {
                let message = format!(
                    "expected a label name or `}}`, found {}",
                    describe_char(&self.line[self.position..])
                );
                return Err(self.error(series_start..self.position, message));
            }
            self.skip_blanks();
            self.expect(b'=', "`=` after the label name", series_start)?;
            self.skip_blanks();
            self.expect(b'"', "`\"` opening the label value", series_start)?;
            let value = self.label_value(series_start)?;
            let slot = match name {
                "container" => Some(&mut labels.container),
                "namespace" => Some(&mut labels.namespace),
                "pod" => Some(&mut labels.pod),
                _ => None,
            };
            if let Some(slot) = slot {
                if slot.is_some() {
                    self.position = name_at;
                    let message = format!("label `{name}` appears twice");
                    return Err(self.error(series_start..name_at, message));
                }
                *slot = Some(value);
            }
            self.skip_blanks();
            match self.peek() {
                Some(b',') => self.position += 1,
                Some(b'}') => {}
                None => return Err(self.ran_out(series_start..self.position, "unclosed `{`")),
                Some(_) => {
                    let message = format!(
                        "expected `,` or `}}` after a label value, found {}",
                        describe_char(&self.line[self.position..])
                    );
                    return Err(self.error(series_start..self.position, message));
                }
            }
        }
    }

    /// A label value after its opening quote, through the closing quote.
    fn label_value(&mut self, series_start: usize) -> Result<LabelValue<'a>, Box<SyntaxError>> {
        let start = self.position;
        let mut escaped = false;
        loop {
            let rest = &self.bytes[self.position..];
            match find_quote_or_backslash(rest) {
                Some(found) if rest[found] == b'"' => {
                    let end = self.position + found;
                    self.position = end + 1;
                    return Ok(LabelValue {
                        raw: &self.line[start..end],
                        escaped,
                    });
                }
                // A backslash with a character after it: skip both (the character may be a
                // quote). Only ASCII is searched for, so landing inside a multi-byte character
                // is harmless.
                Some(found) if self.position + found + 1 < self.bytes.len() => {
                    escaped = true;
                    self.position += found + 2;
                }
                _ => {
                    self.position = self.bytes.len();
                    return Err(self.ran_out(series_start..self.position, "unclosed label value"));
                }
            }
        }
    }

    #[inline]
    fn expect(
        &mut self,
        byte: u8,
        what: &'static str,
        series_start: usize,
    ) -> Result<(), Box<SyntaxError>> {
        match self.peek() {
            Some(found) if found == byte => {
                self.position += 1;
                Ok(())
            }
            None => Err(self.ran_out(series_start..self.position, format!("expected {what}"))),
            Some(_) => {
                let message = format!(
                    "expected {what}, found {}",
                    describe_char(&self.line[self.position..])
                );
                Err(self.error(series_start..self.position, message))
            }
        }
    }

    // Errors are boxed so the parse results on the hot path stay a few words wide.

    #[cold]
    fn error(
        &self,
        identifier: Range<usize>,
        message: impl Into<Cow<'static, str>>,
    ) -> Box<SyntaxError> {
        Box::new(SyntaxError {
            at: self.position,
            identifier,
            message: message.into(),
            ran_out: false,
        })
    }

    #[cold]
    fn ran_out(
        &self,
        identifier: Range<usize>,
        message: impl Into<Cow<'static, str>>,
    ) -> Box<SyntaxError> {
        Box::new(SyntaxError {
            at: self.line.len(),
            identifier,
            message: message.into(),
            ran_out: true,
        })
    }
}

/// Position of the first `"` or `\\` in `bytes`, eight bytes at a time. Label values are tens of
/// bytes, too short for memchr's vector setup to pay off, and most of what a line holds.
fn find_quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH_BITS: u64 = u64::from_le_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_le_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_le_bytes([b'\\'; 8]);
    let mut words = bytes.chunks_exact(8);
    for (index, chunk) in words.by_ref().enumerate() {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        // A byte of `word ^ QUOTES` is zero where `word` has a quote; `(x - 1) & !x` sets the
        // high bit of the lowest zero byte (higher ones may be false positives, never lower).
        let quotes = word ^ QUOTES;
        let backslashes = word ^ BACKSLASHES;
        let zero_bytes =
            (quotes.wrapping_sub(ONES) & !quotes) | (backslashes.wrapping_sub(ONES) & !backslashes);
        let found = zero_bytes & HIGH_BITS;
        if found != 0 {
            return Some(index * 8 + found.trailing_zeros() as usize / 8);
        }
    }
    let tail = words.remainder();
    tail.iter()
        .position(|&byte| byte == b'"' || byte == b'\\')
        .map(|position| bytes.len() - tail.len() + position)
}

/// Byte classes for names: bit `LABEL_NAME` for `[a-zA-Z0-9_]`, bit `METRIC_NAME` for those and
/// `:`. A table beats the chain of comparisons on the name-heavy lines of this format.
const LABEL_NAME: u8 = 1;
const METRIC_NAME: u8 = 2;
static BYTE_CLASSES: [u8; 256] = byte_classes();

const fn byte_classes() -> [u8; 256] {
    let mut classes = [0; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        if b.is_ascii_alphanumeric() || b == b'_' {
            classes[byte] = LABEL_NAME | METRIC_NAME;
        } else if b == b':' {
            classes[byte] = METRIC_NAME;
        }
        byte += 1;
    }
    classes
}

/// `'x'` (or the end of the line) for messages, Rust-escaped so control bytes stay readable.
fn describe_char(rest: &str) -> String {
    match rest.chars().next() {
        Some(c) => format!("{c:?}"),
        None => "the end of the line".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Accumulating series into the sample.

struct SampleBuilder<'a> {
    sample: NodeSample,
    /// (namespace, pod) → index in `sample.pods`. Keys borrow from the body unless escaped.
    pods: HashMap<(Cow<'a, str>, Cow<'a, str>), usize>,
    /// (pod index, container) → position in `seen`.
    containers: HashMap<(usize, Cow<'a, str>), usize>,
    /// Every container in first-seen order, as (pod index, index in the pod).
    seen: Vec<(usize, usize)>,
    /// Position in `seen` of the container the next container series most likely names. The
    /// kubelet writes each container family in the same (label-sorted) order, so after the first
    /// family a lookup is mostly three string comparisons instead of two hash lookups.
    expected: usize,
    /// Sample lines seen, of any family.
    series: usize,
    /// The first non-zero `scrape_error`/`resource_scrape_error`: (name, offset).
    scrape_error: Option<(&'a str, usize)>,
}

impl<'a> SampleBuilder<'a> {
    fn new(node: &str, scrape_time_unix_nanos: i64, body_len: usize) -> Self {
        let expected_pods = (body_len / BYTES_PER_POD).min(MAX_RESERVED_PODS);
        Self {
            sample: NodeSample {
                node: node.to_owned(),
                scrape_time_unix_nanos,
                node_point: None,
                pods: Vec::with_capacity(expected_pods),
            },
            pods: HashMap::with_capacity(expected_pods),
            containers: HashMap::with_capacity(expected_pods),
            seen: Vec::with_capacity(expected_pods),
            expected: 0,
            series: 0,
            scrape_error: None,
        }
    }

    fn read_line(&mut self, line: &Line<'a>, body_len: usize) -> Result<(), DecodeError> {
        let text = line.text.strip_suffix('\r').unwrap_or(line.text);
        let start = text.len() - text.trim_start_matches([' ', '\t']).len();
        // Blank lines and comments (`# HELP`, `# TYPE` and any other) carry nothing needed.
        match text.as_bytes().get(start) {
            None | Some(b'#') => return Ok(()),
            Some(_) => {}
        }
        let series = match parse_series(text, start) {
            Ok(series) => series,
            Err(error) => return Err(syntax_error(line, text, &error, body_len)),
        };
        self.series += 1;
        match series.family {
            Family::NodeCpu => {
                let cpu = cpu_nanos(&series).map_err(|cause| value_error(line, &series, cause))?;
                let timestamp = self.sample_time(series.timestamp_ms);
                let point = self.node_point();
                point.cumulative_cpu_nanos = Some(cpu);
                point.timestamp_unix_nanos = timestamp;
            }
            Family::NodeMemory => {
                let memory =
                    memory_bytes(&series).map_err(|cause| value_error(line, &series, cause))?;
                let timestamp = self.sample_time(series.timestamp_ms);
                let point = self.node_point();
                point.memory_working_set_bytes = Some(memory);
                point.timestamp_unix_nanos = timestamp;
            }
            Family::ContainerCpu => {
                let cpu = cpu_nanos(&series).map_err(|cause| value_error(line, &series, cause))?;
                let timestamp = self.sample_time(series.timestamp_ms);
                let point = self.container_point(line, &series)?;
                point.cumulative_cpu_nanos = Some(cpu);
                point.timestamp_unix_nanos = timestamp;
            }
            Family::ContainerMemory => {
                let memory =
                    memory_bytes(&series).map_err(|cause| value_error(line, &series, cause))?;
                let timestamp = self.sample_time(series.timestamp_ms);
                let point = self.container_point(line, &series)?;
                point.memory_working_set_bytes = Some(memory);
                point.timestamp_unix_nanos = timestamp;
            }
            Family::ContainerStartTime => {
                let start_time = start_time_nanos(series.value);
                self.container_point(line, &series)?.start_time_unix_nanos = start_time;
            }
            Family::ScrapeError => {
                if series.value != 0.0 && self.scrape_error.is_none() {
                    self.scrape_error = Some((series.name, line.offset + series.identifier.start));
                }
            }
            Family::Other => {}
        }
        Ok(())
    }

    fn finish(self, body_len: usize) -> Result<NodeSample, DecodeError> {
        if self.series == 0 {
            // A kubelet always writes at least `resource_scrape_error`; nothing at all means the
            // body was cut (or was not this endpoint's).
            return Err(DecodeError::new(
                DecodeErrorKind::Truncated,
                body_len,
                "",
                "no samples in the body (a kubelet always writes resource_scrape_error)",
            ));
        }
        if let Some((name, offset)) = self.scrape_error {
            if self.sample.node_point.is_none() && self.sample.pods.is_empty() {
                return Err(DecodeError::new(
                    DecodeErrorKind::KubeletError,
                    offset,
                    name,
                    format!(
                        "the kubelet reported a scrape error ({name} is not 0) and sent no node \
                         or container metrics"
                    ),
                ));
            }
        }
        Ok(self.sample)
    }

    /// Unix nanoseconds of a series' millisecond timestamp. Absent, ≤ 0 (Go's zero time is
    /// -62135596800000) or too far out for i64 nanoseconds all mean "no usable time": the scrape
    /// time stands in, where metrics-server would fail the whole node on a negative one.
    fn sample_time(&self, timestamp_ms: Option<i64>) -> i64 {
        timestamp_ms
            .filter(|&milliseconds| milliseconds > 0)
            .and_then(|milliseconds| milliseconds.checked_mul(NANOS_PER_MILLISECOND))
            .unwrap_or(self.sample.scrape_time_unix_nanos)
    }

    fn node_point(&mut self) -> &mut ResourcePoint {
        let scrape_time = self.sample.scrape_time_unix_nanos;
        self.sample
            .node_point
            .get_or_insert_with(|| empty_point(scrape_time))
    }

    /// The point of the series' container, created (with its pod) on first sight.
    fn container_point(
        &mut self,
        line: &Line<'a>,
        series: &Series<'a>,
    ) -> Result<&mut ResourcePoint, DecodeError> {
        let labels = &series.labels;
        let (Some(container), Some(namespace), Some(pod)) = (
            present(labels.container),
            present(labels.namespace),
            present(labels.pod),
        ) else {
            return Err(missing_label(line, series));
        };
        let (namespace, pod, container) = (namespace.decoded(), pod.decoded(), container.decoded());
        let position = match self.seen.get(self.expected) {
            Some(&(pod_index, container_index))
                if self.is_container(pod_index, container_index, &namespace, &pod, &container) =>
            {
                self.expected
            }
            _ => self.find_or_add_container(namespace, pod, container),
        };
        self.expected = position + 1;
        let (pod_index, container_index) = self.seen[position];
        let scrape_time = self.sample.scrape_time_unix_nanos;
        // Every container is created with a point; the fallback only keeps this panic-free.
        Ok(self.sample.pods[pod_index].containers[container_index]
            .point
            .get_or_insert_with(|| empty_point(scrape_time)))
    }

    fn is_container(
        &self,
        pod_index: usize,
        container_index: usize,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> bool {
        let known = &self.sample.pods[pod_index];
        known.containers[container_index].name == container
            && known.name == pod
            && known.namespace == namespace
    }

    /// Position in `seen` of the container, added (with its pod) if this is its first series.
    fn find_or_add_container(
        &mut self,
        namespace: Cow<'a, str>,
        pod: Cow<'a, str>,
        container: Cow<'a, str>,
    ) -> usize {
        let pods = &mut self.sample.pods;
        let pod_index =
            *self
                .pods
                .entry((namespace, pod))
                .or_insert_with_key(|(namespace, name)| {
                    pods.push(PodSample {
                        namespace: namespace.clone().into_owned(),
                        name: name.clone().into_owned(),
                        containers: Vec::new(),
                    });
                    pods.len() - 1
                });
        let scrape_time = self.sample.scrape_time_unix_nanos;
        let containers = &mut pods[pod_index].containers;
        let seen = &mut self.seen;
        *self
            .containers
            .entry((pod_index, container))
            .or_insert_with_key(|(_, name)| {
                containers.push(ContainerSample {
                    name: name.clone().into_owned(),
                    point: Some(empty_point(scrape_time)),
                });
                seen.push((pod_index, containers.len() - 1));
                seen.len() - 1
            })
    }
}

/// A point with nothing reported yet, timed at the scrape until a cpu or memory line says
/// otherwise (a container seen only through its start time keeps the scrape time).
fn empty_point(scrape_time_unix_nanos: i64) -> ResourcePoint {
    ResourcePoint {
        timestamp_unix_nanos: scrape_time_unix_nanos,
        cumulative_cpu_nanos: None,
        memory_working_set_bytes: None,
        start_time_unix_nanos: 0,
    }
}

/// An empty label value is the same as no label in Prometheus' data model.
fn present(value: Option<LabelValue<'_>>) -> Option<LabelValue<'_>> {
    value.filter(|value| !value.raw.is_empty())
}

/// Core-seconds → core-nanoseconds the way metrics-server converts them, `uint64(v*1e9)`: the
/// product is truncated, not rounded.
fn cpu_nanos(series: &Series<'_>) -> Result<u64, &'static str> {
    usage_value(series.value * NANOS_PER_SECOND, series.value)
}

/// Bytes, truncated like metrics-server's `uint64(v)` (a kubelet writes whole numbers anyway).
fn memory_bytes(series: &Series<'_>) -> Result<u64, &'static str> {
    usage_value(series.value, series.value)
}

fn usage_value(scaled: f64, value: f64) -> Result<u64, &'static str> {
    if value.is_nan() {
        Err("is not a number")
    } else if value.is_infinite() {
        Err("is infinite")
    } else if value < 0.0 {
        Err("is negative")
    } else if scaled >= U64_END {
        Err("is too large for a 64-bit counter")
    } else {
        // In range and not negative, so the cast only drops the fraction.
        Ok(scaled as u64)
    }
}

/// Seconds since the epoch → Unix nanoseconds, truncated as metrics-server's `int64(v*1e9)`. A
/// start time that cannot be one (≤ 0, NaN, ±Inf, past year 2262) is unknown (0), not an error:
/// kubelets before kubernetes#110880 wrote Go's zero time for containers that had not started.
fn start_time_nanos(seconds: f64) -> i64 {
    let nanos = seconds * NANOS_PER_SECOND;
    // NaN is in no range; ±Inf are outside this one.
    if (1.0..I64_END).contains(&nanos) {
        nanos as i64
    } else {
        0
    }
}

// ---------------------------------------------------------------------------------------------
// Errors: kind, offset in the body, the series being read (`name{labels}` as written) and cause.

#[cold]
fn syntax_error(line: &Line<'_>, text: &str, error: &SyntaxError, body_len: usize) -> DecodeError {
    let field = series_field(&text[error.identifier.clone()]);
    // A last line that stops short with no newline after it was most likely cut in transfer.
    if error.ran_out && line.last_in_body {
        return DecodeError::new(
            DecodeErrorKind::Truncated,
            body_len,
            field,
            format!(
                "line {}: the body ends inside a sample ({})",
                line.number, error.message
            ),
        );
    }
    DecodeError::new(
        DecodeErrorKind::Malformed,
        line.offset + error.at,
        field,
        format!("line {}: {}", line.number, error.message),
    )
}

#[cold]
fn value_error(line: &Line<'_>, series: &Series<'_>, cause: &str) -> DecodeError {
    let what = match series.family {
        Family::NodeCpu | Family::ContainerCpu => "CPU usage",
        _ => "working set",
    };
    DecodeError::new(
        DecodeErrorKind::WrongType,
        line.offset + series.value_at,
        series_field(&line.text[series.identifier.clone()]),
        format!("line {}: {what} {} {cause}", line.number, series.value_text),
    )
}

#[cold]
fn missing_label(line: &Line<'_>, series: &Series<'_>) -> DecodeError {
    debug_assert!(series.family.is_container());
    let labels = &series.labels;
    let missing = [
        ("container", labels.container),
        ("namespace", labels.namespace),
        ("pod", labels.pod),
    ]
    .into_iter()
    .filter(|(_, value)| present(*value).is_none())
    .map(|(name, _)| name)
    .collect::<Vec<_>>()
    .join(", ");
    DecodeError::new(
        DecodeErrorKind::Malformed,
        line.offset + series.identifier.start,
        series_field(&line.text[series.identifier.clone()]),
        format!(
            "line {}: container series without a (non-empty) {missing} label",
            line.number
        ),
    )
}

/// The series text as an error field, cut on a character boundary when very long.
fn series_field(identifier: &str) -> String {
    if identifier.len() <= MAX_FIELD_BYTES {
        return identifier.to_owned();
    }
    let mut cut = MAX_FIELD_BYTES;
    while !identifier.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &identifier[..cut])
}

#[cold]
fn invalid_utf8(body: &[u8], error: &std::str::Utf8Error) -> DecodeError {
    // Name the series whose line holds the bad byte, from the valid part of that line.
    let bad = error.valid_up_to();
    let line_start = memchr::memrchr(b'\n', &body[..bad]).map_or(0, |newline| newline + 1);
    let field = std::str::from_utf8(&body[line_start..bad])
        .map(|prefix| {
            let prefix = prefix.trim_start_matches([' ', '\t']);
            if prefix.starts_with('#') {
                return String::new();
            }
            let identifier = match parse_series(prefix, 0) {
                Ok(series) => series.identifier,
                Err(error) => error.identifier,
            };
            series_field(&prefix[identifier])
        })
        .unwrap_or_default();
    DecodeError::invalid_utf8(body, error, field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_word_scan_finds_what_a_byte_scan_finds(
            bytes in prop::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\\'), Just(0x80_u8), Just(0xff_u8), any::<u8>()],
                0..40,
            ),
        ) {
            let expected = bytes.iter().position(|&byte| byte == b'"' || byte == b'\\');
            prop_assert_eq!(find_quote_or_backslash(&bytes), expected);
        }
    }

    fn value(raw: &str) -> String {
        LabelValue { raw, escaped: true }.decoded().into_owned()
    }

    #[test]
    fn escapes_in_label_values_are_decoded() {
        assert_eq!(value(r#"a\"b"#), "a\"b");
        assert_eq!(value(r"a\\b"), "a\\b");
        assert_eq!(value(r"a\nb"), "a\nb");
        assert_eq!(value(r"\\n"), "\\n");
        // Unknown escapes stay as written, multi-byte characters too.
        assert_eq!(value(r"a\tb"), "a\\tb");
        assert_eq!(value(r"\é"), "\\é");
    }

    #[test]
    fn unescaped_values_are_borrowed() {
        let decoded = LabelValue {
            raw: "coredns",
            escaped: false,
        }
        .decoded();
        assert!(matches!(decoded, Cow::Borrowed("coredns")));
    }

    #[test]
    fn families_match_whole_names_only() {
        assert_eq!(
            Family::of("container_cpu_usage_seconds_total"),
            Family::ContainerCpu
        );
        assert_eq!(
            Family::of("container_cpu_usage_seconds_total_extra"),
            Family::Other
        );
        assert_eq!(Family::of("node_cpu_usage_seconds"), Family::Other);
        assert_eq!(Family::of("resource_scrape_error"), Family::ScrapeError);
    }

    #[test]
    fn start_times_that_cannot_be_are_unknown() {
        assert_eq!(start_time_nanos(1.633252712e9), 1_633_252_712_000_000_000);
        assert_eq!(start_time_nanos(-6.795_364_578_871_345_5e9), 0);
        assert_eq!(start_time_nanos(0.0), 0);
        assert_eq!(start_time_nanos(f64::NAN), 0);
        assert_eq!(start_time_nanos(f64::INFINITY), 0);
        assert_eq!(start_time_nanos(1e10), 0);
    }

    #[test]
    fn cpu_seconds_are_truncated_to_nanoseconds() {
        assert_eq!(
            usage_value(4.710169 * NANOS_PER_SECOND, 4.710169),
            Ok(4_710_169_000)
        );
        // The kubelet wrote 8581747781260 ns as 8581.74778126 s; times 1e9 that is
        // 8581747781259.999 in binary floating point, truncated as Go's uint64() does.
        let seconds = 8581.74778126;
        assert_eq!(
            usage_value(seconds * NANOS_PER_SECOND, seconds),
            Ok(8_581_747_781_259)
        );
        assert_eq!(
            usage_value(U64_END, 1.0),
            Err("is too large for a 64-bit counter")
        );
        assert_eq!(usage_value(-0.0, -0.0), Ok(0));
    }
}
