//! How the summary decoder fails: kind, byte offset, field path and cause, for bodies a broken
//! or hostile kubelet (or a proxy in front of it) could send.

mod common;

use common::read_summary_fixture;
use kubemetrics_core::error::{DecodeError, DecodeErrorKind};
use kubemetrics_core::summary::decode_summary;

const NO_LIMIT: usize = usize::MAX;

fn decode_error(body: &[u8]) -> DecodeError {
    match decode_summary(body, "n1", 0, NO_LIMIT) {
        Ok(sample) => panic!(
            "expected an error for {:?}, decoded {sample:?}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ),
        Err(error) => error,
    }
}

fn position(body: &str, needle: &str) -> usize {
    body.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the body"))
}

/// The edge-case fixture with one value replaced (the first occurrence after `anchor`).
fn edge_cases_with(anchor: &str, old: &str, new: &str) -> String {
    let body = String::from_utf8(read_summary_fixture("metrics-server-edgecases-v1.17.json"))
        .expect("fixture is UTF-8");
    let start = position(&body, anchor);
    let at = start + position(&body[start..], old);
    format!("{}{new}{}", &body[..at], &body[at + old.len()..])
}

#[test]
fn a_body_over_the_limit_is_refused_before_parsing() {
    let body = read_summary_fixture("metrics-server-edgecases-v1.17.json");
    let error = decode_summary(&body, "n1", 0, body.len() - 1).expect_err("oversized");
    assert_eq!(error.kind(), DecodeErrorKind::Oversized);
    assert_eq!(error.offset(), 0);
    assert_eq!(error.field(), "");
    assert_eq!(
        error.to_string(),
        format!(
            "oversized at byte 0: body of {} bytes exceeds the limit of {} bytes",
            body.len(),
            body.len() - 1
        )
    );
    // Garbage over the limit is still "oversized": the size is checked first.
    let garbage = vec![0xff_u8; 100];
    assert_eq!(
        decode_summary(&garbage, "n1", 0, 99)
            .expect_err("oversized")
            .kind(),
        DecodeErrorKind::Oversized
    );
    assert!(decode_summary(&body, "n1", 0, body.len()).is_ok());
}

#[test]
fn every_strict_prefix_of_a_payload_is_truncated_at_its_end() {
    let body = read_summary_fixture("metrics-server-edgecases-v1.17.json");
    // The object ends at the last '}'; only the trailing newline may be cut without loss.
    let object_end = body
        .iter()
        .rposition(|&byte| byte == b'}')
        .expect("closing brace")
        + 1;
    for length in 0..object_end {
        let error = decode_error(&body[..length]);
        assert_eq!(
            error.kind(),
            DecodeErrorKind::Truncated,
            "prefix of {length} bytes: {error}"
        );
        assert_eq!(error.offset(), length, "prefix of {length} bytes");
        assert!(error.message().starts_with("EOF while parsing"), "{error}");
    }
    for length in object_end..=body.len() {
        assert!(decode_summary(&body[..length], "n1", 0, NO_LIMIT).is_ok());
    }
}

#[test]
fn truncation_names_the_field_being_read() {
    let body = read_summary_fixture("metrics-server-edgecases-v1.17.json");
    let text = std::str::from_utf8(&body).expect("UTF-8");
    let cut = position(text, "\"zero workingSetBytes\"") + 5;
    let error = decode_error(&body[..cut]);
    assert_eq!(error.kind(), DecodeErrorKind::Truncated);
    assert_eq!(error.field(), "pods[4].podRef.name");
    assert_eq!(
        error.to_string(),
        format!("truncated at byte {cut} (field pods[4].podRef.name): EOF while parsing a string")
    );
}

#[test]
fn a_start_time_that_is_not_rfc3339_is_a_wrong_type_naming_the_field() {
    // metrics-server #785: a kubelet wrote 'none' into a startTime.
    let body = edge_cases_with("\"no CPU\"", "\"2020-04-16T20:17:46Z\"", "\"none\"");
    let error = decode_error(body.as_bytes());
    assert_eq!(error.kind(), DecodeErrorKind::WrongType);
    assert_eq!(error.field(), "pods[3].containers[0].startTime");
    let value_at = position(&body, "\"none\"");
    // The offset is the last byte of the rejected value (its closing quote).
    assert_eq!(error.offset(), value_at + "\"none\"".len() - 1);
    assert_eq!(
        error.to_string(),
        format!(
            "wrong_type at byte {} (field pods[3].containers[0].startTime): \
             invalid value: string \"none\", expected RFC3339 time (malformed year)",
            value_at + 5
        )
    );
}

#[test]
fn an_impossible_date_says_which_part_is_wrong() {
    let body = edge_cases_with(
        "\"all-fields\"",
        "\"2020-04-16T20:25:30Z\"",
        "\"2020-02-30T20:25:30Z\"",
    );
    let error = decode_error(body.as_bytes());
    assert_eq!(error.kind(), DecodeErrorKind::WrongType);
    assert_eq!(error.field(), "pods[0].containers[0].cpu.time");
    assert_eq!(
        error.message(),
        "invalid value: string \"2020-02-30T20:25:30Z\", expected RFC3339 time (day out of range)"
    );
}

#[test]
fn a_counter_of_the_wrong_type_is_a_wrong_type() {
    let cases = [
        (
            "\"29328792\"",
            "invalid type: string \"29328792\", expected u64",
        ),
        ("-1", "invalid value: integer `-1`, expected u64"),
        ("1.5", "invalid type: floating point `1.5`, expected u64"),
        ("true", "invalid type: boolean `true`, expected u64"),
    ];
    for (value, message) in cases {
        let body = edge_cases_with("\"zero workingSetBytes\"", "29328792", value);
        let error = decode_error(body.as_bytes());
        assert_eq!(error.kind(), DecodeErrorKind::WrongType, "{value}");
        assert_eq!(
            error.field(),
            "pods[4].containers[0].cpu.usageCoreNanoSeconds",
            "{value}"
        );
        assert_eq!(error.message(), message);
    }
}

#[test]
fn a_body_that_is_not_a_summary_object_is_a_wrong_type() {
    for (body, message) in [
        (
            "\"ok\"",
            "invalid type: string \"ok\", expected struct Summary",
        ),
        ("null", "invalid type: null, expected struct Summary"),
        ("42", "invalid type: integer `42`, expected struct Summary"),
        (
            r#"{"node":"n1"}"#,
            "invalid type: string \"n1\", expected struct NodeStats",
        ),
        (
            r#"{"node":{},"pods":{}}"#,
            "invalid type: map, expected a sequence",
        ),
        // serde also reads a struct from a positional array; an empty one is still refused.
        (
            "[]",
            "invalid length 0, expected struct Summary with 2 elements",
        ),
    ] {
        let error = decode_error(body.as_bytes());
        assert_eq!(error.kind(), DecodeErrorKind::WrongType, "{body}");
        assert_eq!(error.message(), message, "{body}");
    }
}

#[test]
fn missing_required_fields_are_named_by_path() {
    for (body, field) in [
        // A Status object or an empty object instead of a summary.
        (r#"{"kind":"Status","code":500}"#, "node"),
        (
            r#"{"node":{},"pods":[{"containers":[]}]}"#,
            "pods[0].podRef",
        ),
        (
            r#"{"node":{},"pods":[{"podRef":{"name":"p"}}]}"#,
            "pods[0].podRef.namespace",
        ),
        (
            r#"{"node":{},"pods":[{"podRef":{"name":"p","namespace":"n"}},{"podRef":{"name":"q","namespace":"n"},"containers":[{"startTime":null}]}]}"#,
            "pods[1].containers[0].name",
        ),
    ] {
        let error = decode_error(body.as_bytes());
        assert_eq!(error.kind(), DecodeErrorKind::MissingField, "{body}");
        assert_eq!(error.field(), field, "{body}");
        let name = field.rsplit('.').next().unwrap_or(field);
        assert_eq!(error.message(), format!("missing field `{name}`"));
    }
}

#[test]
fn invalid_utf8_is_an_encoding_error_at_the_bad_byte() {
    let body = edge_cases_with(
        "\"no memory\"",
        "\"name\": \"container\"",
        "\"name\": \"cont\u{1}iner\"",
    );
    let mut bytes = body.into_bytes();
    let bad = bytes
        .iter()
        .position(|&byte| byte == 1)
        .expect("marker byte");
    bytes[bad] = 0xc3; // a lead byte followed by ASCII
    let error = decode_error(&bytes);
    assert_eq!(error.kind(), DecodeErrorKind::Encoding);
    assert_eq!(error.offset(), bad);
    assert_eq!(error.field(), "pods[6].containers[0].name");
    assert_eq!(
        error.message(),
        "invalid UTF-8 sequence starting with byte 0xc3"
    );

    let error = decode_error(b"{\"node\":{},\"pods\":[]}\xe2\x82");
    assert_eq!(error.kind(), DecodeErrorKind::Encoding);
    assert_eq!(error.offset(), 21);
    assert_eq!(
        error.message(),
        "incomplete UTF-8 sequence at the end of the body"
    );
}

#[test]
fn trailing_garbage_is_malformed_at_its_first_byte() {
    let body = read_summary_fixture("minikube-v1.28-nri-datagen.json");
    let mut with_garbage = body.clone();
    with_garbage.extend_from_slice(b"\n<html>502 Bad Gateway</html>");
    let error = decode_error(&with_garbage);
    assert_eq!(error.kind(), DecodeErrorKind::Malformed);
    assert_eq!(error.offset(), body.len() + 1);
    assert_eq!(error.field(), "");
    assert_eq!(error.message(), "trailing characters");

    // Two summaries back to back (a body written twice) is just as wrong.
    let doubled = [body.as_slice(), body.as_slice()].concat();
    assert_eq!(decode_error(&doubled).kind(), DecodeErrorKind::Malformed);
}

#[test]
fn a_syntax_error_inside_a_skipped_section_is_malformed_with_its_path() {
    let body = edge_cases_with("\"rlimit\"", "\"maxpid\": 32768,", "\"maxpid\": 32768,,");
    let error = decode_error(body.as_bytes());
    assert_eq!(error.kind(), DecodeErrorKind::Malformed);
    assert_eq!(error.field(), "node.rlimit");
    assert_eq!(error.message(), "key must be a string");
    assert_eq!(error.offset(), position(&body, ",,") + 1, "{error}");
}

#[test]
fn duplicate_keys_are_malformed() {
    let body = r#"{"node":{"cpu":{"time":null},"cpu":{"time":null}},"pods":[]}"#;
    let error = decode_error(body.as_bytes());
    assert_eq!(error.kind(), DecodeErrorKind::Malformed);
    assert_eq!(error.message(), "duplicate field `cpu`");
    assert_eq!(error.field(), "node");
}

#[test]
fn an_empty_or_blank_body_is_truncated() {
    for body in ["", "  \n"] {
        let error = decode_error(body.as_bytes());
        assert_eq!(error.kind(), DecodeErrorKind::Truncated);
        assert_eq!(error.offset(), body.len());
        assert_eq!(error.message(), "EOF while parsing a value");
    }
}

#[test]
fn a_huge_bad_value_does_not_make_a_huge_message() {
    let body = format!(
        r#"{{"node":{{"cpu":{{"time":"{}"}}}},"pods":[]}}"#,
        "x".repeat(1_000_000)
    );
    let error = decode_error(body.as_bytes());
    assert_eq!(error.kind(), DecodeErrorKind::WrongType);
    assert!(
        error.message().len() < 300,
        "{} bytes",
        error.message().len()
    );
    assert_eq!(error.field(), "node.cpu.time");
}

#[test]
fn deep_nesting_neither_overflows_the_stack_nor_decodes_as_a_summary() {
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    // serde_json skips unknown values without recursing, so depth there costs nothing.
    let in_skipped_field = format!(r#"{{"node":{{"future":{nested}}},"pods":[]}}"#);
    let sample = decode_summary(in_skipped_field.as_bytes(), "n1", 0, NO_LIMIT).expect("decodes");
    assert!(sample.pods.is_empty());
    // Where values are decoded, the nesting is refused at the first level that cannot hold it.
    let error = decode_error(nested.as_bytes());
    assert_eq!(error.kind(), DecodeErrorKind::WrongType, "{error}");
    assert!(error.offset() < 10, "{error}");
}
