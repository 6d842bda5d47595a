//! Decoder for the kubelet Summary API (`GET /stats/summary`, with or without
//! `only_cpu_and_memory=true`) into a [`NodeSample`].
//!
//! Only the fields metrics-server v0.5 read from this endpoint are decoded: the node's cumulative
//! CPU and working set, and per container its name, start time, cumulative CPU and working set.
//! Everything else (system containers, network, fs, volumes, PSI, swap, ...) is skipped by serde
//! without being built, and names are borrowed from the body while parsing, then copied once into
//! the sample. A 93 KB v1.35 summary decodes in well under a millisecond.
//!
//! Values are kept as the kubelet reported them, zeros included (`Some(0)`), and absent values stay
//! `None`: deciding what is usable (metrics-server drops a pod whose container reports zero CPU) is
//! the store's job, not the decoder's.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::error::Category;

use crate::error::{DecodeError, DecodeErrorKind};
use crate::sample::{ContainerSample, NodeSample, PodSample, ResourcePoint};

/// Decodes one `/stats/summary` body scraped from `node` at `scrape_time_unix_nanos`.
///
/// `node` is the inventory's name for the scrape target (the payload's `nodeName` is not used);
/// the scrape time stands in for a container's sample time when the kubelet gave none. Bodies over
/// `max_body_bytes` are refused before any parsing. Never panics, whatever the bytes.
pub fn decode_summary(
    body: &[u8],
    node: &str,
    scrape_time_unix_nanos: i64,
    max_body_bytes: usize,
) -> Result<NodeSample, DecodeError> {
    if body.len() > max_body_bytes {
        return Err(DecodeError::oversized(body.len(), max_body_bytes));
    }
    // Validating UTF-8 once up front lets serde_json borrow strings without re-checking them,
    // and gives the exact offset of a bad byte.
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(error) => return Err(invalid_utf8(body, &error)),
    };
    match serde_json::from_str::<Summary<'_>>(text) {
        Ok(summary) => Ok(summary.into_node_sample(node, scrape_time_unix_nanos)),
        Err(error) => Err(json_error(text, &error)),
    }
}

// ---------------------------------------------------------------------------------------------
// The subset of the Summary API read (kubelet `pkg/apis/stats/v1alpha1/types.go`). serde ignores
// every other key. `Option` fields accept both an absent key and `null`.

#[derive(Deserialize)]
struct Summary<'a> {
    node: NodeStats,
    /// `null` (a nil slice in the kubelet) and absent both mean "no pods".
    #[serde(borrow)]
    pods: Option<Vec<PodStats<'a>>>,
}

#[derive(Deserialize)]
struct NodeStats {
    cpu: Option<CpuStats>,
    memory: Option<MemoryStats>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodStats<'a> {
    #[serde(borrow)]
    pod_ref: PodRef<'a>,
    /// Serialised without omitempty, so a pod with only a sandbox cgroup has `null` here.
    #[serde(borrow)]
    containers: Option<Vec<ContainerStats<'a>>>,
}

#[derive(Deserialize)]
struct PodRef<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    namespace: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStats<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default, deserialize_with = "rfc3339::deserialize_optional")]
    start_time: Option<i64>,
    cpu: Option<CpuStats>,
    memory: Option<MemoryStats>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CpuStats {
    #[serde(default, deserialize_with = "rfc3339::deserialize_optional")]
    time: Option<i64>,
    usage_core_nano_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MemoryStats {
    #[serde(default, deserialize_with = "rfc3339::deserialize_optional")]
    time: Option<i64>,
    working_set_bytes: Option<u64>,
}

impl Summary<'_> {
    fn into_node_sample(self, node: &str, scrape_time_unix_nanos: i64) -> NodeSample {
        let pods = self.pods.unwrap_or_default();
        NodeSample {
            node: node.to_owned(),
            scrape_time_unix_nanos,
            node_point: self.node.point(),
            // Mapping a Vec's exact-size iterator allocates the output once, at the right size.
            pods: pods
                .into_iter()
                .map(|pod| pod.into_pod_sample(scrape_time_unix_nanos))
                .collect(),
        }
    }
}

impl NodeStats {
    /// The node's reading, timed by `cpu.time` (as metrics-server does), else `memory.time`; a node
    /// section with neither time has no usable reading.
    fn point(&self) -> Option<ResourcePoint> {
        let cpu = self.cpu.as_ref();
        let memory = self.memory.as_ref();
        let timestamp_unix_nanos = sample_time(cpu, memory)?;
        Some(ResourcePoint {
            timestamp_unix_nanos,
            cumulative_cpu_nanos: cpu.and_then(|cpu| cpu.usage_core_nano_seconds),
            memory_working_set_bytes: memory.and_then(|memory| memory.working_set_bytes),
            start_time_unix_nanos: 0,
        })
    }
}

impl PodStats<'_> {
    fn into_pod_sample(self, scrape_time_unix_nanos: i64) -> PodSample {
        let containers = self.containers.unwrap_or_default();
        PodSample {
            namespace: self.pod_ref.namespace.into_owned(),
            name: self.pod_ref.name.into_owned(),
            containers: containers
                .into_iter()
                .map(|container| container.into_container_sample(scrape_time_unix_nanos))
                .collect(),
        }
    }
}

impl ContainerStats<'_> {
    /// A container always gets a point; without any sample time it is timed at the scrape, which
    /// is what metrics-server does for `/metrics/resource` series without a timestamp.
    fn into_container_sample(self, scrape_time_unix_nanos: i64) -> ContainerSample {
        let cpu = self.cpu.as_ref();
        let memory = self.memory.as_ref();
        let point = ResourcePoint {
            timestamp_unix_nanos: sample_time(cpu, memory).unwrap_or(scrape_time_unix_nanos),
            cumulative_cpu_nanos: cpu.and_then(|cpu| cpu.usage_core_nano_seconds),
            memory_working_set_bytes: memory.and_then(|memory| memory.working_set_bytes),
            // A zero start time serialises as `null`; 0 means "unknown" in the sample too.
            start_time_unix_nanos: self.start_time.unwrap_or(0),
        };
        ContainerSample {
            name: self.name.into_owned(),
            point: Some(point),
        }
    }
}

fn sample_time(cpu: Option<&CpuStats>, memory: Option<&MemoryStats>) -> Option<i64> {
    cpu.and_then(|cpu| cpu.time)
        .or_else(|| memory.and_then(|memory| memory.time))
}

// ---------------------------------------------------------------------------------------------
// Errors. The fast path above does not track where it is in the document: the path tracker
// allocates a String per key it passes. Errors are rare, so on failure the (valid UTF-8) text is
// parsed a second time with the tracker, only to learn the field path of the error.

#[cold]
fn json_error(text: &str, error: &serde_json::Error) -> DecodeError {
    let message = json_cause(error);
    let kind = match error.classify() {
        Category::Eof => DecodeErrorKind::Truncated,
        Category::Syntax | Category::Io => DecodeErrorKind::Malformed,
        Category::Data if message.starts_with("missing field") => DecodeErrorKind::MissingField,
        Category::Data if message.starts_with("duplicate field") => DecodeErrorKind::Malformed,
        Category::Data => DecodeErrorKind::WrongType,
    };
    let offset = match kind {
        DecodeErrorKind::Truncated => text.len(),
        _ => byte_offset(text, error.line(), error.column()),
    };
    let mut field = error_path(text).map(|(path, _)| path).unwrap_or_default();
    if kind == DecodeErrorKind::MissingField {
        // serde reports a missing field at the object that lacks it; name the field itself.
        if let Some(missing) = message.split('`').nth(1) {
            if !field.is_empty() {
                field.push('.');
            }
            field.push_str(missing);
        }
    }
    DecodeError::new(kind, offset, field, message)
}

#[cold]
fn invalid_utf8(body: &[u8], error: &std::str::Utf8Error) -> DecodeError {
    // The field holding the bad byte is where parsing the valid prefix runs out.
    let valid_prefix = body
        .get(..error.valid_up_to())
        .and_then(|prefix| std::str::from_utf8(prefix).ok())
        .unwrap_or("");
    let field = match error_path(valid_prefix) {
        Some((path, Category::Eof)) => path,
        _ => String::new(),
    };
    DecodeError::invalid_utf8(body, error, field)
}

/// Field path (`pods[3].containers[0].startTime`, `""` at the top level) and category of the
/// first error in `text`, or `None` if it decodes.
fn error_path(text: &str) -> Option<(String, Category)> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, Summary<'_>>(&mut deserializer) {
        Ok(_) => None,
        Err(error) => {
            let path = error.path().to_string();
            // serde_path_to_error writes the root as ".".
            let path = if path == "." { String::new() } else { path };
            Some((path, error.inner().classify()))
        }
    }
}

/// serde_json's message without its " at line L column C" suffix (the offset replaces it).
fn json_cause(error: &serde_json::Error) -> String {
    let full = error.to_string();
    let location = format!(" at line {} column {}", error.line(), error.column());
    match full.strip_suffix(&location) {
        Some(cause) => cause.to_owned(),
        None => full,
    }
}

/// serde_json reports 1-based lines and the column just past the byte it stopped at; turn that
/// back into a 0-based byte offset into `text` (the kubelet pretty-prints, so lines are many).
fn byte_offset(text: &str, line: usize, column: usize) -> usize {
    if line == 0 {
        return 0;
    }
    let bytes = text.as_bytes();
    let line_start = match line {
        1 => 0,
        _ => memchr::memchr_iter(b'\n', bytes)
            .nth(line - 2)
            .map_or(bytes.len(), |newline| newline + 1),
    };
    line_start
        .saturating_add(column.saturating_sub(1))
        .min(bytes.len())
}

// ---------------------------------------------------------------------------------------------

/// RFC3339 times as `metav1.Time` writes them (`2026-06-26T10:14:35Z`, whole seconds, UTC), plus
/// what Go's parser also accepts: fractional seconds and numeric offsets. Hand-written because it
/// is 100 lines against a date-time crate for one format.
mod rfc3339 {
    use std::fmt;

    use serde::de::{self, Deserializer, Unexpected, Visitor};

    const NANOS_PER_SECOND: i64 = 1_000_000_000;
    const SECONDS_PER_DAY: i64 = 86_400;

    /// A `time`/`startTime` value: RFC3339 or `null` (a zero `metav1.Time`) → `None`.
    pub(super) fn deserialize_optional<'de, D>(deserializer: D) -> Result<Option<i64>, D::Error>
    where
        D: Deserializer<'de>,
    {
        deserializer.deserialize_option(OptionalTime)
    }

    struct OptionalTime;

    impl<'de> Visitor<'de> for OptionalTime {
        type Value = Option<i64>;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("RFC3339 time")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_str(self)
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            match parse_unix_nanos(text) {
                Ok(nanos) => Ok(Some(nanos)),
                Err(reason) => Err(E::custom(format_args!(
                    "invalid value: {}, expected RFC3339 time ({reason})",
                    Unexpected::Str(text)
                ))),
            }
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` → Unix nanoseconds. The error says which part is
    /// wrong. Times outside what i64 nanoseconds hold (years 1678–2261) are errors, not clamped.
    pub(super) fn parse_unix_nanos(text: &str) -> Result<i64, &'static str> {
        let mut cursor = Cursor {
            bytes: text.as_bytes(),
            position: 0,
        };
        let year = cursor.digits(4, "malformed year")?;
        cursor.expect(b"-", "malformed date")?;
        let month = cursor.digits(2, "malformed month")?;
        cursor.expect(b"-", "malformed date")?;
        let day = cursor.digits(2, "malformed day")?;
        cursor.expect(b"Tt", "missing 'T' between date and time")?;
        let hour = cursor.digits(2, "malformed hour")?;
        cursor.expect(b":", "malformed time of day")?;
        let minute = cursor.digits(2, "malformed minute")?;
        cursor.expect(b":", "malformed time of day")?;
        let second = cursor.digits(2, "malformed second")?;
        let fraction_nanos = if cursor.eat(b'.') {
            cursor.fraction_nanos()?
        } else {
            0
        };
        let offset_seconds = cursor.utc_offset_seconds()?;
        if cursor.position != cursor.bytes.len() {
            return Err("unexpected characters after the time zone");
        }

        if !(1..=12).contains(&month) {
            return Err("month out of range");
        }
        if day < 1 || day > days_in_month(year, month) {
            return Err("day out of range");
        }
        if hour > 23 {
            return Err("hour out of range");
        }
        if minute > 59 {
            return Err("minute out of range");
        }
        // Go rejects a leap second (60) too.
        if second > 59 {
            return Err("second out of range");
        }

        let seconds = days_from_civil(year, month, day) * SECONDS_PER_DAY
            + hour * 3_600
            + minute * 60
            + second
            - offset_seconds;
        seconds
            .checked_mul(NANOS_PER_SECOND)
            .and_then(|nanos| nanos.checked_add(fraction_nanos))
            .ok_or("out of the range of Unix nanoseconds")
    }

    struct Cursor<'a> {
        bytes: &'a [u8],
        position: usize,
    }

    impl Cursor<'_> {
        fn digit(&mut self) -> Option<i64> {
            match self.bytes.get(self.position) {
                Some(byte @ b'0'..=b'9') => {
                    self.position += 1;
                    Some(i64::from(byte - b'0'))
                }
                _ => None,
            }
        }

        fn digits(&mut self, count: usize, error: &'static str) -> Result<i64, &'static str> {
            let mut value = 0;
            for _ in 0..count {
                value = value * 10 + self.digit().ok_or(error)?;
            }
            Ok(value)
        }

        fn eat(&mut self, byte: u8) -> bool {
            let matched = self.bytes.get(self.position) == Some(&byte);
            if matched {
                self.position += 1;
            }
            matched
        }

        fn expect(&mut self, accepted: &[u8], error: &'static str) -> Result<u8, &'static str> {
            match self.bytes.get(self.position) {
                Some(byte) if accepted.contains(byte) => {
                    self.position += 1;
                    Ok(*byte)
                }
                _ => Err(error),
            }
        }

        /// Digits after the decimal point; beyond nanoseconds they are read and dropped, as Go does.
        fn fraction_nanos(&mut self) -> Result<i64, &'static str> {
            let mut nanos = 0;
            let mut count = 0;
            while let Some(digit) = self.digit() {
                if count < 9 {
                    nanos = nanos * 10 + digit;
                }
                count += 1;
            }
            if count == 0 {
                return Err("missing digits after the decimal point");
            }
            for _ in count..9 {
                nanos *= 10;
            }
            Ok(nanos)
        }

        /// `Z` → 0, `+HH:MM` → east of UTC (subtracted to get UTC).
        fn utc_offset_seconds(&mut self) -> Result<i64, &'static str> {
            let sign = match self.expect(b"Zz+-", "missing time zone")? {
                b'+' => 1,
                b'-' => -1,
                _ => return Ok(0),
            };
            let hours = self.digits(2, "malformed time zone offset")?;
            self.expect(b":", "malformed time zone offset")?;
            let minutes = self.digits(2, "malformed time zone offset")?;
            if hours > 23 || minutes > 59 {
                return Err("time zone offset out of range");
            }
            Ok(sign * (hours * 3_600 + minutes * 60))
        }
    }

    fn is_leap_year(year: i64) -> bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    fn days_in_month(year: i64, month: i64) -> i64 {
        match month {
            2 if is_leap_year(year) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`):
    /// years are counted from March so the leap day falls at the end of the year.
    fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
        let year = if month <= 2 { year - 1 } else { year };
        let era = year.div_euclid(400);
        let year_of_era = year - era * 400;
        let month_from_march = (month + 9) % 12;
        let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        era * 146_097 + day_of_era - 719_468
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use proptest::prelude::*;

        #[test]
        fn kubelet_times_are_whole_seconds_utc() {
            assert_eq!(parse_unix_nanos("1970-01-01T00:00:00Z"), Ok(0));
            assert_eq!(
                parse_unix_nanos("2026-06-26T10:14:35Z"),
                Ok(1_782_468_875_000_000_000)
            );
            assert_eq!(
                parse_unix_nanos("2020-04-16T20:17:46Z"),
                Ok(1_587_068_266_000_000_000)
            );
        }

        #[test]
        fn fractional_seconds_and_offsets_are_accepted() {
            assert_eq!(
                parse_unix_nanos("2026-06-26T10:14:35.5Z"),
                Ok(1_782_468_875_500_000_000)
            );
            assert_eq!(
                parse_unix_nanos("2026-06-26T10:14:35.123456789Z"),
                Ok(1_782_468_875_123_456_789)
            );
            // Digits past nanoseconds are dropped, not rounded.
            assert_eq!(
                parse_unix_nanos("2026-06-26T10:14:35.1234567899Z"),
                Ok(1_782_468_875_123_456_789)
            );
            assert_eq!(
                parse_unix_nanos("2026-06-26T12:14:35+02:00"),
                Ok(1_782_468_875_000_000_000)
            );
            assert_eq!(
                parse_unix_nanos("2026-06-26T04:44:35-05:30"),
                Ok(1_782_468_875_000_000_000)
            );
            assert_eq!(
                parse_unix_nanos("2026-06-26t10:14:35z"),
                Ok(1_782_468_875_000_000_000)
            );
        }

        #[test]
        fn times_before_the_epoch_are_negative() {
            assert_eq!(parse_unix_nanos("1969-12-31T23:59:59Z"), Ok(-1_000_000_000));
            assert_eq!(parse_unix_nanos("1969-12-31T23:59:59.5Z"), Ok(-500_000_000));
        }

        #[test]
        fn leap_days_exist_only_in_leap_years() {
            assert_eq!(
                parse_unix_nanos("2024-02-29T00:00:00Z"),
                Ok(1_709_164_800_000_000_000)
            );
            assert_eq!(
                parse_unix_nanos("2000-02-29T00:00:00Z"),
                Ok(951_782_400_000_000_000)
            );
            assert_eq!(
                parse_unix_nanos("2023-02-29T00:00:00Z"),
                Err("day out of range")
            );
            assert_eq!(
                parse_unix_nanos("2100-02-29T00:00:00Z"),
                Err("day out of range")
            );
        }

        #[test]
        fn malformed_times_say_what_is_wrong() {
            let cases = [
                ("none", "malformed year"),
                ("", "malformed year"),
                ("2026-06-26", "missing 'T' between date and time"),
                ("2026-06-26 10:14:35Z", "missing 'T' between date and time"),
                ("2026-13-26T10:14:35Z", "month out of range"),
                ("2026-00-26T10:14:35Z", "month out of range"),
                ("2026-04-31T10:14:35Z", "day out of range"),
                ("2026-06-26T24:00:00Z", "hour out of range"),
                ("2026-06-26T10:60:00Z", "minute out of range"),
                ("2026-06-26T10:14:60Z", "second out of range"),
                ("2026-06-26T10:14:35", "missing time zone"),
                (
                    "2026-06-26T10:14:35.Z",
                    "missing digits after the decimal point",
                ),
                ("2026-06-26T10:14:35+0200", "malformed time zone offset"),
                ("2026-06-26T10:14:35+24:00", "time zone offset out of range"),
                (
                    "2026-06-26T10:14:35Z ",
                    "unexpected characters after the time zone",
                ),
                ("2026-6-26T10:14:35Z", "malformed month"),
                ("१९७०-01-01T00:00:00Z", "malformed year"),
                (
                    "1677-01-01T00:00:00Z",
                    "out of the range of Unix nanoseconds",
                ),
                (
                    "2262-12-31T00:00:00Z",
                    "out of the range of Unix nanoseconds",
                ),
            ];
            for (text, reason) in cases {
                assert_eq!(parse_unix_nanos(text), Err(reason), "{text:?}");
            }
        }

        /// Days since the epoch counted the slow way, as an independent check of `days_from_civil`.
        fn days_by_counting(year: i64, month: i64, day: i64) -> i64 {
            let mut days = 0;
            if year >= 1970 {
                for y in 1970..year {
                    days += if is_leap_year(y) { 366 } else { 365 };
                }
            } else {
                for y in year..1970 {
                    days -= if is_leap_year(y) { 366 } else { 365 };
                }
            }
            for m in 1..month {
                days += days_in_month(year, m);
            }
            days + day - 1
        }

        proptest! {
            #[test]
            fn every_valid_time_parses_to_its_unix_nanos(
                year in 1679i64..2261,
                month in 1i64..=12,
                day_seed in 0i64..31,
                hour in 0i64..24,
                minute in 0i64..60,
                second in 0i64..60,
                fraction in proptest::option::of(0i64..1_000_000_000),
                offset_minutes in -(23 * 60 + 59)..=(23i64 * 60 + 59),
            ) {
                let day = day_seed % days_in_month(year, month) + 1;
                let zone = if offset_minutes == 0 {
                    "Z".to_owned()
                } else {
                    let sign = if offset_minutes < 0 { '-' } else { '+' };
                    let minutes = offset_minutes.abs();
                    format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
                };
                let fraction_text = fraction.map_or(String::new(), |nanos| format!(".{nanos:09}"));
                let text = format!(
                    "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction_text}{zone}"
                );
                let expected = ((days_by_counting(year, month, day) * SECONDS_PER_DAY
                    + hour * 3600 + minute * 60 + second - offset_minutes * 60) * NANOS_PER_SECOND)
                    + fraction.unwrap_or(0);
                prop_assert_eq!(parse_unix_nanos(&text), Ok(expected));
            }

            #[test]
            fn arbitrary_text_never_panics(text in "\\PC{0,40}") {
                let _ = parse_unix_nanos(&text);
            }

            #[test]
            fn near_misses_never_panic(text in "[0-9Tt:+\\-.Zz]{0,40}") {
                let _ = parse_unix_nanos(&text);
            }
        }
    }
}
