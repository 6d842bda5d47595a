//! metrics-server's `metrics_server_api_metric_freshness_seconds`: a histogram (no labels) of how
//! old each returned item is, observed once per node or pod item of every response (lists and
//! single gets, whatever the representation), as request time − item timestamp.
//!
//! A response counts into a local [`FreshnessTally`] while it renders and adds it to the shared
//! [`FreshnessHistogram`] once at the end, so a 150k-pod list takes one lock, not 150k.

use std::sync::{Mutex, PoisonError};

/// Number of finite upper bounds.
pub const FRESHNESS_BUCKET_COUNT: usize = 20;

/// prometheus `ExponentialBuckets(1, 1.364, 20)`: each bound is the previous one multiplied by
/// the factor, in float64, exactly as Go computes them (1, 1.364, 1.860496, …, ≈364.3).
pub const FRESHNESS_BUCKETS: [f64; FRESHNESS_BUCKET_COUNT] = exponential_buckets(1.0, 1.364);

const fn exponential_buckets(start: f64, factor: f64) -> [f64; FRESHNESS_BUCKET_COUNT] {
    let mut buckets = [0.0; FRESHNESS_BUCKET_COUNT];
    let mut bound = start;
    let mut index = 0;
    while index < FRESHNESS_BUCKET_COUNT {
        buckets[index] = bound;
        bound *= factor;
        index += 1;
    }
    buckets
}

/// What Go's `time.Since` gives for the zero `time.Time` (an item whose every container was
/// skipped has `"timestamp":null`): the duration saturates at its maximum, `math.MaxInt64` ns.
const ZERO_TIME_AGE_NANOS: i64 = i64::MAX;

/// Per-bucket counts (the 20 bounds, then +Inf; not cumulative) and the sum of observed seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FreshnessCounts {
    pub buckets: [u64; FRESHNESS_BUCKET_COUNT + 1],
    pub sum_seconds: f64,
}

impl Default for FreshnessCounts {
    fn default() -> Self {
        Self {
            buckets: [0; FRESHNESS_BUCKET_COUNT + 1],
            sum_seconds: 0.0,
        }
    }
}

/// The bucket an age falls in: the first bound ≥ the value (prometheus buckets are `le`), or +Inf.
fn bucket_index(seconds: f64) -> usize {
    FRESHNESS_BUCKETS.partition_point(|&bound| bound < seconds)
}

/// One response's observations, counted without synchronisation.
#[derive(Debug, Clone)]
pub struct FreshnessTally {
    now_unix_nanos: i64,
    counts: FreshnessCounts,
}

impl FreshnessTally {
    pub fn new(now_unix_nanos: i64) -> Self {
        Self {
            now_unix_nanos,
            counts: FreshnessCounts::default(),
        }
    }

    /// Observes one returned item timed at `timestamp` (Unix nanoseconds; `None` for Go's zero
    /// time).
    pub fn observe(&mut self, timestamp: Option<i64>) {
        let age_nanos = match timestamp {
            // Go's Time.Sub saturates rather than wrapping.
            Some(timestamp) => self.now_unix_nanos.saturating_sub(timestamp),
            None => ZERO_TIME_AGE_NANOS,
        };
        // Go's Duration.Seconds(): whole seconds plus the fraction, both in float64.
        let seconds = (age_nanos / 1_000_000_000) as f64 + (age_nanos % 1_000_000_000) as f64 / 1e9;
        self.counts.buckets[bucket_index(seconds)] += 1;
        self.counts.sum_seconds += seconds;
    }

    pub fn counts(&self) -> &FreshnessCounts {
        &self.counts
    }
}

/// The histogram since the store was created; shared by concurrent readers of the store.
#[derive(Debug, Default)]
pub struct FreshnessHistogram {
    counts: Mutex<FreshnessCounts>,
}

impl FreshnessHistogram {
    /// Adds one response's observations.
    pub fn record(&self, tally: &FreshnessTally) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        for (total, added) in counts.buckets.iter_mut().zip(tally.counts.buckets) {
            *total += added;
        }
        counts.sum_seconds += tally.counts.sum_seconds;
    }

    /// The counts so far, consistent with each other (taken under the same lock as `record`).
    pub fn snapshot(&self) -> FreshnessCounts {
        *self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;
    const NOW: i64 = 1_785_838_531 * SECOND + 250_000_000;

    #[test]
    fn bounds_are_go_exponential_buckets_to_the_last_bit() {
        // What Go's prometheus.ExponentialBuckets(1, 1.364, 20) returns, printed with %v.
        let go: [f64; FRESHNESS_BUCKET_COUNT] = [
            1.0,
            1.364,
            1.8604960000000004,
            2.5377165440000007,
            3.4614453660160014,
            4.721411479245826,
            6.440005257691307,
            8.784167171490942,
            11.981604021913647,
            16.342907885890217,
            22.291726356354257,
            30.405914750067208,
            41.47366771909167,
            56.57008276884105,
            77.16159289669919,
            105.2484127110977,
            143.55883493793726,
            195.81425085534644,
            267.09063816669254,
            364.31163045936864,
        ];
        assert_eq!(FRESHNESS_BUCKETS, go);
    }

    #[test]
    fn ages_fall_in_the_first_bucket_whose_bound_is_not_below_them() {
        // Bounds: 1, 1.364, 1.8605, 2.5377, 3.4615, 4.7215, 6.4401, 8.7843, 11.982, 16.343,
        // 22.292, … 364.28.
        let mut tally = FreshnessTally::new(NOW);
        for age in [
            0,
            SECOND,      // exactly on a bound: that bucket (le)
            -5 * SECOND, // a timestamp in the future
            SECOND + 1,
            15 * SECOND,
            17 * SECOND,
            400 * SECOND,
        ] {
            tally.observe(Some(NOW - age));
        }
        let mut expected = [0u64; FRESHNESS_BUCKET_COUNT + 1];
        expected[0] = 3; // 0 s, 1 s, −5 s
        expected[1] = 1; // 1.000000001 s
        expected[9] = 1; // 15 s
        expected[10] = 1; // 17 s
        expected[20] = 1; // 400 s: +Inf
        assert_eq!(tally.counts().buckets, expected);
        assert_eq!(
            tally.counts().sum_seconds,
            0.0 + 1.0 - 5.0 + 1.000000001 + 15.0 + 17.0 + 400.0
        );
    }

    #[test]
    fn an_item_without_timestamp_counts_as_the_maximum_go_duration() {
        let mut tally = FreshnessTally::new(NOW);
        tally.observe(None);
        let mut expected = [0u64; FRESHNESS_BUCKET_COUNT + 1];
        expected[20] = 1;
        assert_eq!(tally.counts().buckets, expected);
        // 9223372036 s + 0.854775807 s, rounded to float64.
        assert_eq!(tally.counts().sum_seconds, 9_223_372_036.854_776);
    }

    #[test]
    fn responses_accumulate_in_the_histogram() {
        let histogram = FreshnessHistogram::default();
        for ages in [&[2 * SECOND, 3 * SECOND][..], &[2 * SECOND][..], &[][..]] {
            let mut tally = FreshnessTally::new(NOW);
            for age in ages {
                tally.observe(Some(NOW - age));
            }
            histogram.record(&tally);
        }
        let counts = histogram.snapshot();
        let mut expected = [0u64; FRESHNESS_BUCKET_COUNT + 1];
        expected[3] = 2; // 1.8605 < 2 ≤ 2.5377
        expected[4] = 1; // 2.5377 < 3 ≤ 3.4615
        assert_eq!(counts.buckets, expected);
        assert_eq!(counts.sum_seconds, 7.0);
    }
}
