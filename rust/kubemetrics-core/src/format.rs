//! Text forms of the values the Metrics API carries, exactly as the Kubernetes Go libraries print
//! them: CPU and memory `resource.Quantity` (canonical DecimalSI / BinarySI), `time.Duration`
//! (`Duration.String()`, used for `window`) and `metav1.Time` (RFC 3339, UTC, whole seconds).
//!
//! The `write_*` functions append to a byte buffer so response rendering allocates nothing per
//! value; the `format_*` functions wrap them for callers that want a `String`.

/// Appends `value` in decimal.
pub(crate) fn write_u64(out: &mut Vec<u8>, value: u64) {
    write_padded(out, value, 1);
}

/// Appends `value` in decimal, zero-padded to at least `width` digits.
fn write_padded(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    let mut rest = value;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    start = start.min(digits.len() - width);
    out.extend_from_slice(&digits[start..]);
}

/// The DecimalSI suffix for a power-of-ten exponent that is a multiple of 3 (apimachinery's
/// `quantitySuffixer` table). Exponents outside the table get no suffix, as in Go.
fn decimal_suffix(exponent: i32) -> &'static str {
    match exponent {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        18 => "E",
        _ => "",
    }
}

/// Canonical DecimalSI form of `mantissa × 10^exponent` (`Quantity.CanonicalizeBytes` for an
/// `int64Amount`): move every factor of ten into the exponent, then lower the exponent to a
/// multiple of three so a suffix applies ("272000000n" → "272m", "1000" → "1k").
///
/// u64 arithmetic suffices: the lowering multiplies by at most the factors of ten just removed,
/// or by ten a mantissa that `uint64_quantity` already divided by ten.
fn write_decimal_si(out: &mut Vec<u8>, mantissa: u64, exponent: i32) {
    if mantissa == 0 {
        out.push(b'0');
        return;
    }
    let mut amount = mantissa;
    let mut exponent = exponent;
    while amount >= 10 && amount.is_multiple_of(10) {
        amount /= 10;
        exponent += 1;
    }
    let lowering = exponent.rem_euclid(3);
    amount *= 10u64.pow(lowering as u32);
    exponent -= lowering;
    write_u64(out, amount);
    out.extend_from_slice(decimal_suffix(exponent).as_bytes());
}

/// metrics-server builds quantities from uint64 values, but `resource.Quantity` holds an int64:
/// above `i64::MAX` it divides by ten and raises the scale by one, dropping the last digit
/// (pkg/storage/types.go `uint64Quantity`).
fn uint64_quantity(value: u64, scale: i32) -> (u64, i32) {
    if value > i64::MAX as u64 {
        (value / 10, scale + 1)
    } else {
        (value, scale)
    }
}

/// Appends CPU usage as Kubernetes prints `NewScaledQuantity(nanocores, -9)` in DecimalSI:
/// 286479 → `286479n`, 272000000 → `272m`, 1500000000 → `1500m`, 1000000000 → `1`, 0 → `0`.
pub fn write_cpu_quantity(out: &mut Vec<u8>, nanocores: u64) {
    let (mantissa, exponent) = uint64_quantity(nanocores, -9);
    write_decimal_si(out, mantissa, exponent);
}

/// Appends memory as Kubernetes prints a BinarySI quantity of `bytes`: below 1024 it is printed
/// as DecimalSI (1000 → `1k`, 512 → `512`); otherwise every exact factor of 1024 becomes a
/// `Ki`/`Mi`/`Gi`/… suffix (12533760 → `12240Ki`, 52428800 → `50Mi`) and a value that is not a
/// multiple of 1024 prints as plain bytes (12533761 → `12533761`).
pub fn write_memory_quantity(out: &mut Vec<u8>, bytes: u64) {
    let (mantissa, exponent) = uint64_quantity(bytes, 0);
    if mantissa < 1024 && exponent == 0 {
        write_decimal_si(out, mantissa, 0);
        return;
    }
    // Scale 1 only above i64::MAX, where mantissa × 10 ≤ u64::MAX.
    let mut amount = mantissa * 10u64.pow(exponent as u32);
    let mut thousands = 0usize;
    while amount >= 1024 && amount.is_multiple_of(1024) {
        amount /= 1024;
        thousands += 1;
    }
    write_u64(out, amount);
    const BINARY_SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    out.extend_from_slice(BINARY_SUFFIXES[thousands].as_bytes());
}

/// The fraction `value / 10^precision` as Go's `fmtFrac` prints it: a decimal point and digits
/// without trailing zeros, or nothing when the fraction is zero. Returns the integer part too.
fn fraction_digits(value: u64, precision: u32) -> (u64, [u8; 10], usize) {
    let scale = 10u64.pow(precision);
    let mut fraction = value % scale;
    let mut text = [b'.'; 10];
    let mut length = 0;
    if fraction != 0 {
        let mut significant = precision as usize;
        while fraction.is_multiple_of(10) {
            fraction /= 10;
            significant -= 1;
        }
        for slot in text[1..=significant].iter_mut().rev() {
            *slot = b'0' + (fraction % 10) as u8;
            fraction /= 10;
        }
        length = significant + 1;
    }
    (value / scale, text, length)
}

/// Appends a duration of `nanos` as Go's `time.Duration.String()` prints it (the form of
/// `metav1.Duration`, used for `window`): `15.004s`, `1m0.513s`, `2m30s`, `1h0m0s`, `10s`,
/// `1.5µs` (U+00B5), `250ms`, `7ns`, `0s`, `-1.5s`.
pub fn write_duration(out: &mut Vec<u8>, nanos: i64) {
    if nanos < 0 {
        out.push(b'-');
    }
    let magnitude = nanos.unsigned_abs();
    if magnitude < 1_000_000_000 {
        // Below one second Go switches to the largest unit that keeps an integer part.
        let (precision, unit): (u32, &str) = match magnitude {
            0 => {
                out.extend_from_slice(b"0s");
                return;
            }
            1..=999 => (0, "ns"),
            1_000..=999_999 => (3, "µs"),
            _ => (6, "ms"),
        };
        let (whole, fraction, length) = fraction_digits(magnitude, precision);
        write_u64(out, whole);
        out.extend_from_slice(&fraction[..length]);
        out.extend_from_slice(unit.as_bytes());
        return;
    }
    let (seconds, fraction, length) = fraction_digits(magnitude, 9);
    let minutes = seconds / 60;
    let hours = minutes / 60;
    if hours > 0 {
        write_u64(out, hours);
        out.push(b'h');
    }
    if minutes > 0 {
        write_u64(out, minutes % 60);
        out.push(b'm');
    }
    write_u64(out, seconds % 60);
    out.extend_from_slice(&fraction[..length]);
    out.push(b's');
}

/// Civil (proleptic Gregorian) date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Appends `unix_seconds` as `metav1.Time` marshals it: RFC 3339 in UTC at whole seconds,
/// e.g. `2022-01-27T18:48:33Z`.
pub fn write_rfc3339_seconds(out: &mut Vec<u8>, unix_seconds: i64) {
    let days = unix_seconds.div_euclid(86_400);
    let second_of_day = unix_seconds.rem_euclid(86_400) as u64;
    let (year, month, day) = civil_from_days(days);
    if year < 0 {
        out.push(b'-');
    }
    write_padded(out, year.unsigned_abs(), 4);
    out.push(b'-');
    write_padded(out, u64::from(month), 2);
    out.push(b'-');
    write_padded(out, u64::from(day), 2);
    out.push(b'T');
    write_padded(out, second_of_day / 3600, 2);
    out.push(b':');
    write_padded(out, second_of_day / 60 % 60, 2);
    out.push(b':');
    write_padded(out, second_of_day % 60, 2);
    out.push(b'Z');
}

/// Whole Unix seconds of a Unix-nanosecond instant, truncated towards the past as Go's
/// time formatting does (so `-0.5s` is `1969-12-31T23:59:59Z`).
pub fn unix_seconds_of_nanos(unix_nanos: i64) -> i64 {
    unix_nanos.div_euclid(1_000_000_000)
}

/// Appends `text` as a JSON string exactly as Go's `encoding/json` writes it (the apiserver's
/// encoder): `"`/`\\` and control characters escaped (`\n`, `\r`, `\t`, `\b`, `\f`, else
/// `\u00XX`), HTML-sensitive `<`, `>`, `&` as `\u003c`, `\u003e`, `\u0026`, and U+2028/U+2029 as
/// `\u2028`/`\u2029`; everything else is copied as UTF-8.
pub fn write_json_string(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Names and labels almost never need escaping: check with a table, then copy in one go.
    if bytes.iter().all(|&byte| !JSON_ATTENTION[usize::from(byte)]) {
        out.extend_from_slice(bytes);
    } else {
        write_escaped(out, bytes);
    }
    out.push(b'"');
}

/// Bytes that may need escaping: control characters, `"`, `\\`, `<`, `>`, `&`, and 0xE2 (the
/// first byte of U+2028/U+2029).
static JSON_ATTENTION: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table[b'<' as usize] = true;
    table[b'>' as usize] = true;
    table[b'&' as usize] = true;
    table[0xe2] = true;
    table
};

fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut copied = 0;
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        let escape: Option<&[u8]> = match byte {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0x08 => Some(b"\\b"),
            0x0c => Some(b"\\f"),
            b'<' => Some(b"\\u003c"),
            b'>' => Some(b"\\u003e"),
            b'&' => Some(b"\\u0026"),
            _ => None,
        };
        if let Some(escape) = escape {
            out.extend_from_slice(&bytes[copied..index]);
            out.extend_from_slice(escape);
            index += 1;
            copied = index;
        } else if byte < 0x20 {
            out.extend_from_slice(&bytes[copied..index]);
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
            index += 1;
            copied = index;
        } else if byte == 0xe2
            && bytes.get(index + 1) == Some(&0x80)
            && matches!(bytes.get(index + 2), Some(0xa8 | 0xa9))
        {
            out.extend_from_slice(&bytes[copied..index]);
            out.extend_from_slice(if bytes[index + 2] == 0xa8 {
                b"\\u2028"
            } else {
                b"\\u2029"
            });
            index += 3;
            copied = index;
        } else {
            index += 1;
        }
    }
    out.extend_from_slice(&bytes[copied..]);
}

fn into_string(write: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut out = Vec::with_capacity(32);
    write(&mut out);
    String::from_utf8(out).expect("formatters write ASCII or the UTF-8 micro sign only")
}

/// [`write_cpu_quantity`] as a `String`.
pub fn format_cpu_quantity(nanocores: u64) -> String {
    into_string(|out| write_cpu_quantity(out, nanocores))
}

/// [`write_memory_quantity`] as a `String`.
pub fn format_memory_quantity(bytes: u64) -> String {
    into_string(|out| write_memory_quantity(out, bytes))
}

/// [`write_duration`] as a `String`.
pub fn format_duration(nanos: i64) -> String {
    into_string(|out| write_duration(out, nanos))
}

/// [`write_rfc3339_seconds`] as a `String`.
pub fn format_rfc3339_seconds(unix_seconds: i64) -> String {
    into_string(|out| write_rfc3339_seconds(out, unix_seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_printed_with_the_shortest_exact_decimal_suffix() {
        assert_eq!(format_cpu_quantity(286_479), "286479n");
        assert_eq!(format_cpu_quantity(272_000_000), "272m");
        assert_eq!(format_cpu_quantity(1_500_000_000), "1500m");
        assert_eq!(format_cpu_quantity(1_000_000_000), "1");
        assert_eq!(format_cpu_quantity(0), "0");
        assert_eq!(format_cpu_quantity(1), "1n");
        assert_eq!(format_cpu_quantity(10), "10n");
        assert_eq!(format_cpu_quantity(1_000), "1u");
        assert_eq!(format_cpu_quantity(1_500), "1500n");
        assert_eq!(format_cpu_quantity(20_000), "20u");
        assert_eq!(format_cpu_quantity(100_000_000), "100m");
        assert_eq!(format_cpu_quantity(2_000_000_000), "2");
        assert_eq!(format_cpu_quantity(64_000_000_000), "64");
        assert_eq!(format_cpu_quantity(1_000_000_000_000), "1k");
        assert_eq!(format_cpu_quantity(1_234_000_000_000), "1234");
    }

    #[test]
    fn cpu_values_from_real_responses_round_trip() {
        // metrics-api fixtures (kubernetes/website) and metrics-server issues #989 / reference §2.3.
        assert_eq!(format_cpu_quantity(487_558_164), "487558164n");
        assert_eq!(format_cpu_quantity(9_559_630), "9559630n");
        assert_eq!(format_cpu_quantity(151_384_254), "151384254n");
        assert_eq!(format_cpu_quantity(2_931_024), "2931024n");
    }

    #[test]
    fn cpu_above_int64_loses_its_last_digit_like_uint64_quantity() {
        // u64::MAX = 18446744073709551615 → mantissa 1844674407370955161 at scale -8 → ×10 to
        // reach -9: the final digit becomes 0.
        assert_eq!(format_cpu_quantity(u64::MAX), "18446744073709551610n");
        assert_eq!(format_cpu_quantity(i64::MAX as u64), "9223372036854775807n");
        assert_eq!(format_cpu_quantity(10_000_000_000_000_000_000), "10G");
    }

    #[test]
    fn memory_is_binary_si_when_exact_and_plain_bytes_otherwise() {
        assert_eq!(format_memory_quantity(12_533_760), "12240Ki");
        assert_eq!(format_memory_quantity(1_616_273_408), "1578392Ki");
        assert_eq!(format_memory_quantity(52_428_800), "50Mi");
        assert_eq!(format_memory_quantity(12_533_761), "12533761");
        assert_eq!(format_memory_quantity(1024), "1Ki");
        assert_eq!(format_memory_quantity(1025), "1025");
        assert_eq!(format_memory_quantity(2048), "2Ki");
        assert_eq!(format_memory_quantity(1 << 30), "1Gi");
        assert_eq!(format_memory_quantity(3 << 40), "3Ti");
        assert_eq!(format_memory_quantity(1 << 50), "1Pi");
        assert_eq!(format_memory_quantity(1 << 60), "1Ei");
        assert_eq!(format_memory_quantity(1_000_000), "1000000");
        // Real responses: metrics-api fixtures and reference §2.3.
        assert_eq!(format_memory_quantity(732_212 * 1024), "732212Ki");
        assert_eq!(format_memory_quantity(22_244 * 1024), "22244Ki");
        assert_eq!(format_memory_quantity(1_183_224 * 1024), "1183224Ki");
        assert_eq!(format_memory_quantity(31_704 * 1024), "31704Ki");
    }

    #[test]
    fn memory_below_1024_bytes_is_printed_as_decimal_si() {
        assert_eq!(format_memory_quantity(1000), "1k");
        assert_eq!(format_memory_quantity(512), "512");
        assert_eq!(format_memory_quantity(0), "0");
        assert_eq!(format_memory_quantity(1), "1");
        assert_eq!(format_memory_quantity(100), "100");
        assert_eq!(format_memory_quantity(1020), "1020");
        assert_eq!(format_memory_quantity(1023), "1023");
    }

    #[test]
    fn memory_above_int64_loses_its_last_digit_like_uint64_quantity() {
        assert_eq!(format_memory_quantity(u64::MAX), "18446744073709551610");
    }

    #[test]
    fn durations_print_as_go_duration_string() {
        assert_eq!(format_duration(15_004_000_000), "15.004s");
        assert_eq!(format_duration(15_012_000_000), "15.012s");
        assert_eq!(format_duration(60_000_000_000), "1m0s");
        assert_eq!(format_duration(60_513_000_000), "1m0.513s");
        assert_eq!(format_duration(60_013_000_000), "1m0.013s");
        assert_eq!(format_duration(150_000_000_000), "2m30s");
        assert_eq!(format_duration(10_000_000_000), "10s");
        assert_eq!(format_duration(30_000_000_000), "30s");
        assert_eq!(format_duration(17_108_000_000), "17.108s");
        assert_eq!(format_duration(1_500), "1.5µs");
        assert_eq!(format_duration(1_000), "1µs");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(7), "7ns");
        assert_eq!(format_duration(250_000_000), "250ms");
        assert_eq!(format_duration(1_234_567), "1.234567ms");
        assert_eq!(format_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(format_duration(3_661_000_000_001), "1h1m1.000000001s");
        assert_eq!(format_duration(1_000_000_001), "1.000000001s");
        assert_eq!(format_duration(-1_500_000_000), "-1.5s");
        assert_eq!(format_duration(-7), "-7ns");
        assert_eq!(format_duration(i64::MAX), "2562047h47m16.854775807s");
        assert_eq!(format_duration(i64::MIN), "-2562047h47m16.854775808s");
    }

    fn json(text: &str) -> String {
        let mut out = Vec::new();
        write_json_string(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_strings_are_escaped_like_go_encoding_json() {
        assert_eq!(json("kube-system"), r#""kube-system""#);
        assert_eq!(json("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(json("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(json("\u{0}\u{1f}\u{7f}"), "\"\\u0000\\u001f\u{7f}\"");
        assert_eq!(json("<a&b>"), r#""\u003ca\u0026b\u003e""#);
        assert_eq!(json("x\u{2028}y\u{2029}z"), r#""x\u2028y\u2029z""#);
        assert_eq!(json("µs é 日本"), "\"µs é 日本\"");
        assert_eq!(json(""), r#""""#);
    }

    #[test]
    fn escaped_json_strings_parse_back_to_the_original() {
        let samples = [
            "plain",
            "tab\there",
            "quote\"",
            "ctl\u{1}\u{2}",
            "<script>&",
            "\u{2028}\u{2029}\u{2027}\u{202a}",
            "ü\u{10ffff}",
        ];
        for sample in samples {
            let parsed: String = serde_json::from_str(&json(sample)).unwrap();
            assert_eq!(parsed, sample);
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_whole_seconds() {
        assert_eq!(format_rfc3339_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339_seconds(1_643_309_313),
            "2022-01-27T18:48:33Z"
        );
        assert_eq!(
            format_rfc3339_seconds(1_643_311_471),
            "2022-01-27T19:24:31Z"
        );
        assert_eq!(format_rfc3339_seconds(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(
            format_rfc3339_seconds(4_107_542_399),
            "2100-02-28T23:59:59Z"
        );
        assert_eq!(format_rfc3339_seconds(-1), "1969-12-31T23:59:59Z");
        assert_eq!(
            format_rfc3339_seconds(253_402_300_799),
            "9999-12-31T23:59:59Z"
        );
        assert_eq!(
            format_rfc3339_seconds(-62_135_596_800),
            "0001-01-01T00:00:00Z"
        );
    }

    #[test]
    fn sub_second_nanos_truncate_towards_the_past() {
        assert_eq!(
            unix_seconds_of_nanos(1_643_309_313_999_999_999),
            1_643_309_313
        );
        assert_eq!(unix_seconds_of_nanos(-1), -1);
        assert_eq!(unix_seconds_of_nanos(0), 0);
    }

    /// Reads a formatted quantity back into a count of `10^unit_exponent` units (nanocores for
    /// CPU with -9, bytes for memory with 0).
    fn quantity_value(text: &str, unit_exponent: i32) -> u128 {
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, suffix) = text.split_at(split);
        let mantissa: u128 = digits.parse().unwrap();
        let binary_shift = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
            .iter()
            .position(|s| *s == suffix);
        if let (Some(shift), false) = (binary_shift, suffix.is_empty()) {
            return mantissa << (10 * shift);
        }
        let exponent = match suffix {
            "n" => -9,
            "u" => -6,
            "m" => -3,
            "" => 0,
            "k" => 3,
            "M" => 6,
            "G" => 9,
            other => panic!("unexpected suffix {other}"),
        };
        mantissa * 10u128.pow((exponent - unit_exponent) as u32)
    }

    proptest::proptest! {
        #[test]
        fn cpu_quantities_are_exact(nanocores in 0..=i64::MAX as u64) {
            proptest::prop_assert_eq!(quantity_value(&format_cpu_quantity(nanocores), -9), u128::from(nanocores));
        }

        #[test]
        fn any_u64_formats_without_overflow(value in proptest::num::u64::ANY) {
            proptest::prop_assert!(!format_cpu_quantity(value).is_empty());
            proptest::prop_assert!(!format_memory_quantity(value).is_empty());
        }

        #[test]
        fn memory_quantities_are_exact(bytes in 0..=i64::MAX as u64, shift in 0u32..40) {
            let bytes = (bytes >> shift) << shift;
            let text = format_memory_quantity(bytes);
            if bytes >= 1024 {
                proptest::prop_assert!(!text.ends_with('k'), "{}", text);
            }
            proptest::prop_assert_eq!(quantity_value(&text, 0), u128::from(bytes));
        }

        #[test]
        fn durations_keep_every_nanosecond(nanos in proptest::num::i64::ANY) {
            let text = format_duration(nanos);
            let (negative, body) = match text.strip_prefix('-') { Some(rest) => (true, rest), None => (false, text.as_str()) };
            let mut total: i128 = 0;
            let mut number = String::new();
            let mut chars = body.chars().peekable();
            while let Some(c) = chars.next() {
                if c.is_ascii_digit() || c == '.' {
                    number.push(c);
                    continue;
                }
                let unit: i128 = match c {
                    'h' => 3_600_000_000_000,
                    'm' if chars.peek() == Some(&'s') => { chars.next(); 1_000_000 }
                    'm' => 60_000_000_000,
                    's' => 1_000_000_000,
                    'µ' => { chars.next(); 1_000 }
                    'n' => { chars.next(); 1 }
                    other => panic!("unexpected {other} in {text}"),
                };
                let (whole, fraction) = number.split_once('.').unwrap_or((&number, ""));
                let mut value = whole.parse::<i128>().unwrap() * unit;
                let mut place = unit / 10;
                for digit in fraction.chars() {
                    value += i128::from(digit.to_digit(10).unwrap()) * place;
                    place /= 10;
                }
                total += value;
                number.clear();
            }
            proptest::prop_assert_eq!(if negative { -total } else { total }, i128::from(nanos));
        }

        #[test]
        fn json_strings_round_trip_through_a_json_parser(text in proptest::prelude::any::<String>()) {
            let parsed: String = serde_json::from_str(&json(&text)).unwrap();
            proptest::prop_assert_eq!(parsed, text);
        }
    }
}
