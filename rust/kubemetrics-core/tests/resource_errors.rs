//! How the `/metrics/resource` decoder fails: kind, byte offset, the series being read and cause,
//! for bodies a broken or hostile kubelet (or a proxy in front of it) could send.

mod common;

use common::shared_dir;
use kubemetrics_core::error::{DecodeError, DecodeErrorKind};
use kubemetrics_core::resource::decode_resource_metrics;

const NO_LIMIT: usize = usize::MAX;

const COREDNS: &str =
    r#"{container="coredns",namespace="kube-system",pod="coredns-558bd4d5db-4dpjz"}"#;

fn read_resource_fixture(name: &str) -> Vec<u8> {
    let path = shared_dir().join("fixtures/kubelet/resource").join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

fn decode_error(body: &[u8]) -> DecodeError {
    match decode_resource_metrics(body, "n1", 0, NO_LIMIT) {
        Ok(sample) => panic!(
            "expected an error for {:?}, decoded {sample:?}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ),
        Err(error) => error,
    }
}

fn position(body: &str, needle: &str) -> usize {
    body.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the body"))
}

/// A valid two-line body whose second line is `line`, so offsets are checked past line 1.
fn after_a_good_line(line: &str) -> String {
    format!("node_cpu_usage_seconds_total 357.35491 1633253809720\n{line}\n")
}

#[test]
fn a_body_over_the_limit_is_refused_before_parsing() {
    let body = read_resource_fixture("kind-coredns-single-pod-full.prom");
    let error = decode_resource_metrics(&body, "n1", 0, body.len() - 1).expect_err("oversized");
    assert_eq!(error.kind(), DecodeErrorKind::Oversized);
    assert_eq!((error.offset(), error.field()), (0, ""));
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
        decode_resource_metrics(&garbage, "n1", 0, 99)
            .expect_err("oversized")
            .kind(),
        DecodeErrorKind::Oversized
    );
    assert!(decode_resource_metrics(&body, "n1", 0, body.len()).is_ok());
}

#[test]
fn a_container_series_without_its_identifying_labels_is_malformed() {
    let cases = [
        (r#"{container="coredns",namespace="kube-system"}"#, "pod"),
        (r#"{pod="p"}"#, "container, namespace"),
        ("", "container, namespace, pod"),
        // An empty value is no value (Prometheus' data model).
        (
            r#"{container="",namespace="kube-system",pod="p"}"#,
            "container",
        ),
    ];
    for family in [
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "container_start_time_seconds",
    ] {
        for (labels, missing) in cases {
            let line = format!("{family}{labels} 1 1633253812125");
            let body = after_a_good_line(&line);
            let error = decode_error(body.as_bytes());
            assert_eq!(error.kind(), DecodeErrorKind::Malformed, "{line}");
            assert_eq!(error.offset(), position(&body, family), "{line}");
            assert_eq!(error.field(), format!("{family}{labels}"));
            assert_eq!(
                error.message(),
                format!("line 2: container series without a (non-empty) {missing} label")
            );
        }
    }
}

#[test]
fn a_repeated_identifying_label_is_malformed() {
    let body = after_a_good_line(
        r#"container_cpu_usage_seconds_total{container="a",pod="p",namespace="n",pod="q"} 1"#,
    );
    let error = decode_error(body.as_bytes());
    assert_eq!(error.kind(), DecodeErrorKind::Malformed);
    assert_eq!(error.offset(), position(&body, "pod=\"q\""));
    assert_eq!(
        error.field(),
        r#"container_cpu_usage_seconds_total{container="a",pod="p",namespace="n","#
    );
    assert_eq!(error.message(), "line 2: label `pod` appears twice");
}

#[test]
fn label_syntax_errors_point_at_the_offending_character() {
    let family = "container_cpu_usage_seconds_total";
    let cases = [
        (
            r#"{container="c" namespace="n",pod="p"} 1"#,
            "namespace",
            "expected `,` or `}` after a label value, found 'n'",
        ),
        (
            r#"{container:"c",namespace="n",pod="p"} 1"#,
            ":\"c\"",
            "expected `=` after the label name, found ':'",
        ),
        (
            r#"{container=c,namespace="n",pod="p"} 1"#,
            "c,namespace",
            "expected `\"` opening the label value, found 'c'",
        ),
        (
            r#"{container='c',namespace="n",pod="p"} 1"#,
            "'c'",
            "expected `\"` opening the label value, found '\\''",
        ),
        (
            r#"{1container="c",namespace="n",pod="p"} 1"#,
            "1container",
            "expected a label name or `}`, found '1'",
        ),
        (
            r#"{,container="c"} 1"#,
            ",container",
            "expected a label name or `}`, found ','",
        ),
    ];
    for (labels, at, message) in cases {
        let body = after_a_good_line(&format!("{family}{labels}"));
        let error = decode_error(body.as_bytes());
        let expected_at = position(&body, family) + family.len() + position(labels, at);
        assert_eq!(error.kind(), DecodeErrorKind::Malformed, "{labels}");
        assert_eq!(error.offset(), expected_at, "{labels}: {error}");
        assert_eq!(error.message(), format!("line 2: {message}"), "{labels}");
        // The field is the series up to where reading stopped.
        assert_eq!(
            error.field(),
            &body[position(&body, family)..expected_at],
            "{labels}"
        );
    }
}

#[test]
fn an_unclosed_label_set_inside_the_body_is_malformed_at_the_line_end() {
    let line = r#"container_cpu_usage_seconds_total{container="c",namespace="n",pod="p 1"#;
    let body = after_a_good_line(line);
    let error = decode_error(body.as_bytes());
    assert_eq!(error.kind(), DecodeErrorKind::Malformed);
    assert_eq!(error.offset(), position(&body, line) + line.len());
    assert_eq!(error.message(), "line 2: unclosed label value");
    assert_eq!(error.field(), line);
}

#[test]
fn a_value_that_is_not_a_number_is_malformed_at_the_value() {
    for value in [
        "abc",
        "1,5",
        "0x1p3",
        "1_000",
        "--1",
        "1e",
        "Infinityx",
        "\"1\"",
    ] {
        let line = format!("container_memory_working_set_bytes{COREDNS} {value} 1633253812125");
        let body = after_a_good_line(&line);
        let error = decode_error(body.as_bytes());
        assert_eq!(error.kind(), DecodeErrorKind::Malformed, "{value}");
        assert_eq!(error.offset(), position(&body, &format!(" {value} ")) + 1);
        assert_eq!(
            error.field(),
            format!("container_memory_working_set_bytes{COREDNS}")
        );
        assert_eq!(
            error.message(),
            format!("line 2: value {value:?} is not a number")
        );
    }
}

#[test]
fn values_no_counter_or_gauge_can_have_are_wrong_types() {
    let cases = [
        ("NaN", "is not a number"),
        ("nan", "is not a number"),
        ("+Inf", "is infinite"),
        ("-Inf", "is infinite"),
        ("-1", "is negative"),
        ("-1e-9", "is negative"),
        ("1e20", "is too large for a 64-bit counter"),
    ];
    for family in [
        "node_cpu_usage_seconds_total",
        "node_memory_working_set_bytes",
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
    ] {
        let labels = if family.starts_with("container") {
            COREDNS
        } else {
            ""
        };
        let what = if family.contains("cpu") {
            "CPU usage"
        } else {
            "working set"
        };
        for (value, cause) in cases {
            // 1e20 bytes is too large too, but only as CPU nanoseconds is 1e11 s out of range.
            let value = if value == "1e20" && family.contains("cpu") {
                "1e11"
            } else {
                value
            };
            let line = format!("{family}{labels} {value} 1633253812125");
            let body = after_a_good_line(&line);
            let error = decode_error(body.as_bytes());
            assert_eq!(error.kind(), DecodeErrorKind::WrongType, "{line}");
            assert_eq!(error.offset(), position(&body, &format!(" {value} ")) + 1);
            assert_eq!(error.field(), format!("{family}{labels}"));
            assert_eq!(
                error.message(),
                format!("line 2: {what} {value} {cause}"),
                "{line}"
            );
        }
    }
    // The same values in families that are not read are not checked beyond syntax.
    let ignored = after_a_good_line("pod_cpu_usage_seconds_total{namespace=\"n\",pod=\"p\"} NaN");
    assert!(decode_resource_metrics(ignored.as_bytes(), "n1", 0, NO_LIMIT).is_ok());
}

#[test]
fn a_timestamp_that_is_not_integer_milliseconds_is_malformed() {
    for timestamp in ["1633253812.125", "1e12", "99999999999999999999", "now", "-"] {
        let line = format!("container_cpu_usage_seconds_total{COREDNS} 4.71 {timestamp}");
        let body = after_a_good_line(&line);
        let error = decode_error(body.as_bytes());
        assert_eq!(error.kind(), DecodeErrorKind::Malformed, "{timestamp}");
        assert_eq!(
            error.offset(),
            position(&body, &format!(" {timestamp}\n")) + 1
        );
        assert_eq!(
            error.message(),
            format!("line 2: timestamp {timestamp:?} is not an integer number of milliseconds")
        );
    }
    let body = after_a_good_line(&format!(
        "container_cpu_usage_seconds_total{COREDNS} 4.71 1633253812125 # exemplar"
    ));
    let error = decode_error(body.as_bytes());
    assert_eq!(error.kind(), DecodeErrorKind::Malformed);
    assert_eq!(error.offset(), position(&body, "# exemplar"));
    assert_eq!(
        error.message(),
        "line 2: unexpected text after the timestamp"
    );
}

#[test]
fn lines_that_are_not_samples_are_malformed_at_their_first_byte() {
    let cases = [
        (
            "<html><body>502 Bad Gateway</body></html>",
            "",
            "expected a metric name or a `#` comment",
        ),
        (
            "{\"node\":{}}",
            "",
            "expected a metric name or a `#` comment",
        ),
        ("9lives 1", "", "expected a metric name or a `#` comment"),
        // A name with a character no name may hold.
        ("node-cpu 1", "node", "unexpected '-' after the series name"),
        (
            "container_cpu_usage_seconds_total\u{0}{} 1",
            "container_cpu_usage_seconds_total",
            "unexpected '\\0' after the series name",
        ),
    ];
    for (line, field, message) in cases {
        let body = after_a_good_line(line);
        let error = decode_error(body.as_bytes());
        assert_eq!(error.kind(), DecodeErrorKind::Malformed, "{line}");
        let line_at = position(&body, line);
        assert_eq!(error.offset(), line_at + field.len(), "{line}");
        assert_eq!(error.field(), field, "{line}");
        assert_eq!(error.message(), format!("line 2: {message}"), "{line}");
    }
}

#[test]
fn a_carriage_return_inside_a_line_is_malformed() {
    let body = after_a_good_line("node_memory_working_set_bytes 1\r2 1000");
    let error = decode_error(body.as_bytes());
    assert_eq!(error.kind(), DecodeErrorKind::Malformed);
    assert_eq!(error.message(), "line 2: value \"1\\r2\" is not a number");
}

#[test]
fn a_name_without_a_value_is_malformed() {
    for line in [
        "node_cpu_usage_seconds_total",
        "node_cpu_usage_seconds_total   ",
        "container_cpu_usage_seconds_total{container=\"c\",namespace=\"n\",pod=\"p\"}",
    ] {
        let body = after_a_good_line(line);
        let error = decode_error(body.as_bytes());
        assert_eq!(error.kind(), DecodeErrorKind::Malformed, "{line:?}");
        // The good first line holds the same name: the second line starts after its newline.
        let line_at = position(&body, "\n") + 1;
        assert_eq!(error.offset(), line_at + line.len());
        assert_eq!(error.message(), "line 2: missing value");
        assert_eq!(error.field(), line.trim_end());
    }
}

#[test]
fn a_body_cut_inside_a_sample_is_truncated_at_its_end() {
    let body = read_resource_fixture("kind-coredns-single-pod-full.prom");
    let text = std::str::from_utf8(&body).expect("UTF-8");
    // Every cut inside a name or a label set of a sample line leaves a line that cannot be
    // complete.
    let mut cuts = 0;
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        if !line.starts_with('#') {
            let labels_end = line
                .find('}')
                .map_or_else(|| line.find(' ').expect("value"), |brace| brace + 1);
            for cut in line_start + 1..line_start + labels_end {
                let error = decode_error(&body[..cut]);
                assert_eq!(
                    error.kind(),
                    DecodeErrorKind::Truncated,
                    "cut at {cut}: {error}"
                );
                assert_eq!(error.offset(), cut, "cut at {cut}");
                assert!(
                    error.message().contains("the body ends inside a sample"),
                    "{error}"
                );
                assert!(
                    text[line_start..].starts_with(error.field()),
                    "cut at {cut}: field {:?}",
                    error.field()
                );
                cuts += 1;
            }
        }
        line_start += line.len();
    }
    assert!(cuts > 500, "{cuts} cuts tried");
}

#[test]
fn every_prefix_of_a_payload_decodes_or_fails_inside_it() {
    let body = read_resource_fixture("kind-coredns-single-pod-full.prom");
    for length in 0..=body.len() {
        match decode_resource_metrics(&body[..length], "n1", 0, NO_LIMIT) {
            Ok(_) => {}
            Err(error) => {
                assert!(error.offset() <= length, "{length}: {error}");
                // A cut value such as `1.253376e` is malformed; everything else is truncated.
                assert!(
                    matches!(
                        error.kind(),
                        DecodeErrorKind::Truncated | DecodeErrorKind::Malformed
                    ),
                    "{length}: {error}"
                );
            }
        }
    }
    assert!(decode_resource_metrics(&body, "n1", 0, NO_LIMIT).is_ok());
}

#[test]
fn a_body_without_samples_is_truncated() {
    for body in [
        "",
        "\n\n",
        "# HELP node_cpu_usage_seconds_total [ALPHA] Cumulative cpu time consumed by the node in core-seconds\n",
    ] {
        let error = decode_error(body.as_bytes());
        assert_eq!(error.kind(), DecodeErrorKind::Truncated, "{body:?}");
        assert_eq!(error.offset(), body.len());
        assert_eq!(error.field(), "");
        assert_eq!(
            error.message(),
            "no samples in the body (a kubelet always writes resource_scrape_error)"
        );
    }
}

#[test]
fn invalid_utf8_is_an_encoding_error_naming_the_series() {
    let line = format!("container_cpu_usage_seconds_total{COREDNS} 4.71 1000");
    let body = after_a_good_line(&line);
    let mut bytes = body.clone().into_bytes();
    let bad = position(&body, "dns-558") + 1; // inside the pod label value
    bytes[bad] = 0xc3; // a lead byte followed by ASCII
    let error = decode_error(&bytes);
    assert_eq!(error.kind(), DecodeErrorKind::Encoding);
    assert_eq!(error.offset(), bad);
    assert_eq!(error.field(), &body[position(&body, "container_cpu")..bad]);
    assert_eq!(
        error.message(),
        "invalid UTF-8 sequence starting with byte 0xc3"
    );

    // In a comment, no series is named; at the very end the sequence is incomplete.
    let mut in_comment = b"# HELP x \xff\nnode_cpu_usage_seconds_total 1\n".to_vec();
    let error = decode_error(&in_comment);
    assert_eq!(
        (error.kind(), error.offset(), error.field()),
        (DecodeErrorKind::Encoding, 9, "")
    );
    in_comment.truncate(9);
    in_comment.extend_from_slice(b"\xe2\x82");
    let error = decode_error(&in_comment);
    assert_eq!(
        error.message(),
        "incomplete UTF-8 sequence at the end of the body"
    );
}

#[test]
fn a_huge_series_does_not_make_a_huge_field_or_message() {
    let value = "x".repeat(1_000_000);
    let body = format!(
        "container_cpu_usage_seconds_total{{container=\"{value}\",namespace=\"n\"}} {value}\n"
    );
    let error = decode_error(body.as_bytes());
    assert_eq!(error.kind(), DecodeErrorKind::Malformed);
    assert!(
        error.field().len() <= 200 + "…".len(),
        "{}",
        error.field().len()
    );
    assert!(error.field().ends_with('…'));
    assert!(error.message().len() < 300, "{}", error.message().len());
    assert!(error.to_string().len() < 600);
}

#[test]
fn errors_name_their_line_in_bodies_with_crlf_endings() {
    let body = format!(
        "# TYPE node_cpu_usage_seconds_total counter\r\n\
         node_cpu_usage_seconds_total 1 1000\r\n\
         container_cpu_usage_seconds_total{COREDNS} NaN 1000\r\n"
    );
    let error = decode_error(body.as_bytes());
    assert_eq!(error.kind(), DecodeErrorKind::WrongType);
    assert_eq!(error.offset(), position(&body, "NaN"));
    assert_eq!(error.message(), "line 3: CPU usage NaN is not a number");
}
