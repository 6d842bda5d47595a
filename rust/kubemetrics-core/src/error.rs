//! Why a kubelet payload could not be decoded: what went wrong, where (byte offset and field path)
//! and the cause.
//!
//! The error says nothing about *which* node or URL: the caller knows those and puts them in front
//! (the Python binding writes `decode /stats/summary of node "n1": <this error>`), so a decoder stays
//! a pure function of its bytes.

use std::fmt;

/// Longest cause kept in an error message, in bytes. Causes quote the offending input (serde quotes
/// the whole string it rejected); a hostile or broken kubelet must not turn one bad field into a
/// multi-megabyte log line.
const MAX_MESSAGE_BYTES: usize = 240;

/// The class of a decode failure, stable for metrics labels and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeErrorKind {
    /// Not syntactically valid for the format (JSON syntax, trailing garbage, duplicate keys).
    Malformed,
    /// The body ended in the middle of a value: a cut connection or a short read.
    Truncated,
    /// Valid syntax, but a value has the wrong type or an impossible value (a string where a
    /// number belongs, a time that is not RFC3339, a negative counter).
    WrongType,
    /// The body is longer than the configured limit; it was not parsed at all.
    Oversized,
    /// The body is not valid UTF-8.
    Encoding,
    /// A field the format requires is absent.
    MissingField,
    /// The kubelet answered but reported that it could not collect the stats
    /// (`resource_scrape_error 1` on `/metrics/resource`) and sent no usable data.
    KubeletError,
}

impl DecodeErrorKind {
    /// snake_case name, as exposed to Python (`DecodeError.kind`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Truncated => "truncated",
            Self::WrongType => "wrong_type",
            Self::Oversized => "oversized",
            Self::Encoding => "encoding",
            Self::MissingField => "missing_field",
            Self::KubeletError => "kubelet_error",
        }
    }
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A payload that could not be decoded. Displays as
/// `wrong_type at byte 1234 (field pods[3].containers[0].startTime): <cause>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    kind: DecodeErrorKind,
    offset: usize,
    field: String,
    message: String,
}

impl DecodeError {
    /// `offset` is the byte offset in the body where the problem was found, `field` the path of the
    /// value being decoded (`""` when unknown), `message` the cause (shortened if very long).
    pub fn new(
        kind: DecodeErrorKind,
        offset: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            offset,
            field: field.into(),
            message: shorten(message.into()),
        }
    }

    /// The body is over `max_body_bytes`; reported at offset 0 because nothing was read.
    pub fn oversized(body_len: usize, max_body_bytes: usize) -> Self {
        Self::new(
            DecodeErrorKind::Oversized,
            0,
            "",
            format!("body of {body_len} bytes exceeds the limit of {max_body_bytes} bytes"),
        )
    }

    /// The body is not UTF-8 from byte `error.valid_up_to()` on.
    pub fn invalid_utf8(
        body: &[u8],
        error: &std::str::Utf8Error,
        field: impl Into<String>,
    ) -> Self {
        let offset = error.valid_up_to();
        let message = match (error.error_len(), body.get(offset)) {
            (Some(_), Some(byte)) => {
                format!("invalid UTF-8 sequence starting with byte 0x{byte:02x}")
            }
            _ => "incomplete UTF-8 sequence at the end of the body".to_owned(),
        };
        Self::new(DecodeErrorKind::Encoding, offset, field, message)
    }

    pub fn kind(&self) -> DecodeErrorKind {
        self.kind
    }

    /// Byte offset in the body: where the problem was found, the body length for truncation, 0 for
    /// an oversized body.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Path of the value being decoded, e.g. `pods[3].containers[0].startTime`; `""` when unknown.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The cause, without location.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)?;
        if !self.field.is_empty() {
            write!(f, " (field {})", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for DecodeError {}

fn shorten(mut message: String) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let mut cut = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    message.truncate(cut);
    message.push('…');
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_kind_offset_field_and_cause() {
        let error = DecodeError::new(
            DecodeErrorKind::WrongType,
            1234,
            "pods[3].containers[0].startTime",
            "invalid value: string \"none\", expected RFC3339 time",
        );
        assert_eq!(
            error.to_string(),
            "wrong_type at byte 1234 (field pods[3].containers[0].startTime): \
             invalid value: string \"none\", expected RFC3339 time"
        );
    }

    #[test]
    fn display_leaves_out_an_unknown_field() {
        let error = DecodeError::oversized(100, 10);
        assert_eq!(
            error.to_string(),
            "oversized at byte 0: body of 100 bytes exceeds the limit of 10 bytes"
        );
    }

    #[test]
    fn kinds_have_snake_case_names() {
        let names: Vec<&str> = [
            DecodeErrorKind::Malformed,
            DecodeErrorKind::Truncated,
            DecodeErrorKind::WrongType,
            DecodeErrorKind::Oversized,
            DecodeErrorKind::Encoding,
            DecodeErrorKind::MissingField,
            DecodeErrorKind::KubeletError,
        ]
        .iter()
        .map(|kind| kind.as_str())
        .collect();
        assert_eq!(
            names,
            [
                "malformed",
                "truncated",
                "wrong_type",
                "oversized",
                "encoding",
                "missing_field",
                "kubelet_error"
            ]
        );
    }

    #[test]
    fn long_causes_are_cut_on_a_char_boundary() {
        let cause = "é".repeat(1000);
        let error = DecodeError::new(DecodeErrorKind::WrongType, 0, "", cause);
        assert!(error.message().len() <= MAX_MESSAGE_BYTES + "…".len());
        assert!(error.message().ends_with('…'));
        assert!(error.message().starts_with("éé"));
    }

    #[test]
    fn invalid_utf8_reports_the_first_bad_byte() {
        let body = [b"{\"a\": \"".as_slice(), &[0xff], b"\"}"].concat();
        let utf8_error = std::str::from_utf8(&body).unwrap_err();
        let error = DecodeError::invalid_utf8(&body, &utf8_error, "a");
        assert_eq!(error.kind(), DecodeErrorKind::Encoding);
        assert_eq!(error.offset(), 7);
        assert_eq!(error.field(), "a");
        assert_eq!(
            error.message(),
            "invalid UTF-8 sequence starting with byte 0xff"
        );
    }
}
