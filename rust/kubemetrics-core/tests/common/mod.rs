//! Shared by the summary decoder's integration tests: where the real kubelet payloads live, and
//! an independent way of writing the times the tests expect.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::{Path, PathBuf};

use kubemetrics_core::sample::{ContainerSample, NodeSample, PodSample, ResourcePoint};

/// The repository's `shared/` directory: `$KUBEMETRICS_SHARED_DIR`, else the directory beside the
/// repository (`/work/main/rust/kubemetrics-core` → `/work/shared`), which is also where CI puts it.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("KUBEMETRICS_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

pub fn summary_fixture_dir() -> PathBuf {
    shared_dir().join("fixtures/kubelet/summary")
}

/// File names of every `/stats/summary` fixture, sorted.
pub fn summary_fixture_names() -> Vec<String> {
    let dir = summary_fixture_dir();
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()));
    let mut names: Vec<String> = entries
        .map(|entry| {
            entry
                .expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    names
}

pub fn read_summary_fixture(name: &str) -> Vec<u8> {
    let path = summary_fixture_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// Unix nanoseconds of a UTC wall-clock time, counted day by day (independent of the decoder's
/// RFC3339 arithmetic).
pub fn utc(year: i64, month: i64, day: i64, hour: i64, minute: i64, second: i64) -> i64 {
    let mut days = 0;
    for y in 1970..year {
        days += if is_leap_year(y) { 366 } else { 365 };
    }
    for m in 1..month {
        days += days_in_month(year, m);
    }
    days += day - 1;
    ((days * 24 + hour) * 60 + minute) * 60 * 1_000_000_000 + second * 1_000_000_000
}

/// RFC3339 text of whole Unix seconds, as the kubelet writes it (`2026-06-26T10:14:35Z`).
pub fn rfc3339(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let second_of_day = unix_seconds.rem_euclid(86_400);
    let mut year = 1970;
    let mut remaining = days;
    while remaining < 0 {
        year -= 1;
        remaining += if is_leap_year(year) { 366 } else { 365 };
    }
    loop {
        let length = if is_leap_year(year) { 366 } else { 365 };
        if remaining < length {
            break;
        }
        remaining -= length;
        year += 1;
    }
    let mut month = 1;
    while remaining >= days_in_month(year, month) {
        remaining -= days_in_month(year, month);
        month += 1;
    }
    format!(
        "{year:04}-{month:02}-{:02}T{:02}:{:02}:{:02}Z",
        remaining + 1,
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
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

pub fn pod<'a>(sample: &'a NodeSample, namespace: &str, name: &str) -> &'a PodSample {
    sample
        .pods
        .iter()
        .find(|pod| pod.namespace == namespace && pod.name == name)
        .unwrap_or_else(|| panic!("no pod {namespace}/{name} in the sample"))
}

pub fn container_count(sample: &NodeSample) -> usize {
    sample.pods.iter().map(|pod| pod.containers.len()).sum()
}

/// The one container of a single-container pod, with its point.
pub fn only_container(pod: &PodSample) -> (&ContainerSample, &ResourcePoint) {
    assert_eq!(
        pod.containers.len(),
        1,
        "pod {}/{}",
        pod.namespace,
        pod.name
    );
    let container = &pod.containers[0];
    let point = container
        .point
        .as_ref()
        .expect("every decoded container has a point");
    (container, point)
}

/// A container point as the tests write it: (timestamp, cpu, memory, start time).
pub fn point(
    timestamp_unix_nanos: i64,
    cumulative_cpu_nanos: Option<u64>,
    memory_working_set_bytes: Option<u64>,
    start_time_unix_nanos: i64,
) -> ResourcePoint {
    ResourcePoint {
        timestamp_unix_nanos,
        cumulative_cpu_nanos,
        memory_working_set_bytes,
        start_time_unix_nanos,
    }
}
