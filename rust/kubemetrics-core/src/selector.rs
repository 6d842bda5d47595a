//! Kubernetes label selectors (the `labelSelector` query parameter), parsed and matched as
//! apimachinery's `labels.Parse` does: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`,
//! `!a`, `a>1`, `a<1`, comma = AND, whitespace between tokens ignored.
//!
//! Errors carry the apiserver's wording (e.g. `unable to parse requirement: <nil>: Invalid
//! value: "-a": name part must consist of …`) because clients show that text to users as the
//! 400 response's message.

use std::collections::BTreeMap;
use std::fmt;

/// A selector that failed to parse; the message is what the apiserver would answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelectorError {
    message: String,
}

impl LabelSelectorError {
    fn new(message: String) -> Self {
        Self { message }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for LabelSelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LabelSelectorError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    Exists,
    DoesNotExist,
}

/// One comma-separated term of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    /// Sorted and de-duplicated, as apimachinery's `sets.String.List()` leaves them.
    values: Vec<String>,
}

impl Requirement {
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> Operator {
        self.operator
    }

    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn has_value(&self, value: &str) -> bool {
        self.values.iter().any(|candidate| candidate == value)
    }

    /// `Requirement.Matches`: `notin`/`!=` also match objects without the key; `>`/`<` need the
    /// label to parse as an int64.
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let label = labels.get(&self.key).map(String::as_str);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                label.is_some_and(|v| self.has_value(v))
            }
            Operator::NotIn | Operator::NotEquals => label.is_none_or(|v| !self.has_value(v)),
            Operator::Exists => label.is_some(),
            Operator::DoesNotExist => label.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(actual) = label.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let Some(bound) = self.values.first().and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                match self.operator {
                    Operator::GreaterThan => actual > bound,
                    _ => actual < bound,
                }
            }
        }
    }
}

/// A parsed selector: the AND of its requirements (sorted by key, as apimachinery sorts them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// The selector that matches every label set (an absent or empty `labelSelector`).
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses the `labelSelector` syntax; an empty or blank string selects everything.
    pub fn parse(selector: &str) -> Result<Self, LabelSelectorError> {
        let mut requirements = Parser::new(selector)
            .parse()
            .map_err(LabelSelectorError::new)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements })
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements
            .iter()
            .all(|requirement| requirement.matches(labels))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn literal_token(literal: &[u8]) -> Option<Token> {
    Some(match literal {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"in" => Token::In,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"notin" => Token::NotIn,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(byte: u8) -> bool {
    matches!(byte, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Byte lexer with apimachinery's quirks kept: a NUL byte reads as end of input for the token
/// being scanned, and operators are the longest run of symbol bytes that forms a known token.
struct Lexer<'a> {
    input: &'a [u8],
    position: usize,
}

impl<'a> Lexer<'a> {
    fn read(&mut self) -> u8 {
        match self.input.get(self.position) {
            Some(&byte) => {
                self.position += 1;
                byte
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.position -= 1;
    }

    fn lex(&mut self) -> (Token, String) {
        let mut byte = self.read();
        while is_whitespace(byte) {
            byte = self.read();
        }
        if byte == 0 {
            return (Token::EndOfString, String::new());
        }
        self.unread();
        if is_special_symbol(byte) {
            self.scan_special_symbol()
        } else {
            self.scan_identifier_or_keyword()
        }
    }

    fn scan_identifier_or_keyword(&mut self) -> (Token, String) {
        let start = self.position;
        let mut end = start;
        loop {
            let byte = self.read();
            if byte == 0 {
                break;
            }
            if is_special_symbol(byte) || is_whitespace(byte) {
                self.unread();
                break;
            }
            end = self.position;
        }
        let literal = &self.input[start..end];
        let token = literal_token(literal).unwrap_or(Token::Identifier);
        (token, String::from_utf8_lossy(literal).into_owned())
    }

    fn scan_special_symbol(&mut self) -> (Token, String) {
        let start = self.position;
        let mut last: Option<(Token, usize)> = None;
        loop {
            let byte = self.read();
            if byte == 0 {
                break;
            }
            if !is_special_symbol(byte) {
                self.unread();
                break;
            }
            match literal_token(&self.input[start..self.position]) {
                Some(token) => last = Some((token, self.position)),
                None if last.is_some() => {
                    self.unread();
                    break;
                }
                None => {}
            }
        }
        match last {
            Some((token, end)) => (
                token,
                String::from_utf8_lossy(&self.input[start..end]).into_owned(),
            ),
            None => {
                let buffer = String::from_utf8_lossy(&self.input[start..self.position]);
                (
                    Token::Error,
                    format!("error expected: keyword found '{buffer}'"),
                )
            }
        }
    }
}

/// Whether `in`/`notin` are keywords (after a key) or plain identifiers (as values: `a in (in)`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Token, String)>,
    position: usize,
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl Parser {
    fn new(selector: &str) -> Self {
        let mut lexer = Lexer {
            input: selector.as_bytes(),
            position: 0,
        };
        let mut items = Vec::new();
        loop {
            let item = lexer.lex();
            let done = item.0 == Token::EndOfString;
            items.push(item);
            if done {
                break;
            }
        }
        Self { items, position: 0 }
    }

    fn in_context(token: Token, context: Context) -> Token {
        match (context, token) {
            (Context::Values, Token::In | Token::NotIn) => Token::Identifier,
            _ => token,
        }
    }

    fn lookahead(&self, context: Context) -> (Token, String) {
        // The scan always ends with EndOfString; reading past it keeps answering EndOfString.
        let (token, literal) = self
            .items
            .get(self.position)
            .or(self.items.last())
            .expect("scan yields EndOfString");
        (Self::in_context(*token, context), literal.clone())
    }

    fn consume(&mut self, context: Context) -> (Token, String) {
        let (token, literal) = self.lookahead(context);
        self.position += 1;
        (token, literal)
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.lookahead(Context::Values);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    let requirement = self
                        .parse_requirement()
                        .map_err(|err| format!("unable to parse requirement: {err}"))?;
                    requirements.push(requirement);
                    let (token, literal) = self.consume(Context::Values);
                    match token {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (next, next_literal) = self.lookahead(Context::Values);
                            if next != Token::Identifier && next != Token::DoesNotExist {
                                return Err(format!(
                                    "found '{next_literal}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => {
                            return Err(format!(
                                "found '{literal}', expected: ',' or 'end of string'"
                            ))
                        }
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{literal}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, operator) = self.parse_key_and_infer_operator()?;
        if let Some(operator @ (Operator::Exists | Operator::DoesNotExist)) = operator {
            return new_requirement(key, operator, Vec::new());
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        new_requirement(key, operator, values)
    }

    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut operator = None;
        let (mut token, mut literal) = self.consume(Context::Values);
        if token == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (token, literal) = self.consume(Context::Values);
        }
        if token != Token::Identifier {
            return Err(format!("found '{literal}', expected: identifier"));
        }
        let key_errors = qualified_name_errors(&literal);
        if !key_errors.is_empty() {
            // The parser validates the key with a nil field path, which Go prints as "<nil>".
            return Err(invalid_value("<nil>", &literal, &key_errors.join("; ")));
        }
        let (next, _) = self.lookahead(Context::Values);
        if (next == Token::EndOfString || next == Token::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((literal, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (token, literal) = self.consume(Context::KeyAndOperator);
        Ok(match token {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => return Err(format!("found '{literal}', expected: {BINARY_OPERATORS}")),
        })
    }

    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (token, literal) = self.consume(Context::Values);
        if token != Token::OpenPar {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                let (closing, _) = self.consume(Context::Values);
                if closing != Token::ClosedPar {
                    return Err(format!("found '{literal}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!(
                "found '{literal}', expected: ',', ')' or identifier"
            )),
        }
    }

    /// A comma-separated list in which empty entries (`(,a)`, `(a,,b)`, `(a,)`) mean "".
    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut values: Vec<String> = Vec::new();
        loop {
            let (token, literal) = self.consume(Context::Values);
            match token {
                Token::Identifier => {
                    values.push(literal);
                    let (next, next_literal) = self.lookahead(Context::Values);
                    match next {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        _ => return Err(format!("found '{next_literal}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    let (next, _) = self.lookahead(Context::Values);
                    if next == Token::ClosedPar {
                        values.push(String::new());
                        return Ok(values);
                    }
                    if next == Token::Comma {
                        self.consume(Context::Values);
                        values.push(String::new());
                    }
                }
                _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (next, _) = self.lookahead(Context::Values);
        if next == Token::EndOfString || next == Token::Comma {
            return Ok(vec![String::new()]);
        }
        let (token, literal) = self.consume(Context::Values);
        if token == Token::Identifier {
            return Ok(vec![literal]);
        }
        Err(format!("found '{literal}', expected: identifier"))
    }
}

/// `labels.NewRequirement`'s checks on the values (the key was already validated by the parser).
fn new_requirement(
    key: String,
    operator: Operator,
    mut values: Vec<String>,
) -> Result<Requirement, String> {
    values.sort();
    values.dedup();
    let mut errors = Vec::new();
    if matches!(operator, Operator::GreaterThan | Operator::LessThan) {
        for (index, value) in values.iter().enumerate() {
            if value.parse::<i64>().is_err() {
                let field = format!("values[{index}]");
                errors.push(invalid_value(
                    &field,
                    value,
                    "for 'Gt', 'Lt' operators, the value must be an integer",
                ));
            }
        }
    }
    for (index, value) in values.iter().enumerate() {
        let value_errors = label_value_errors(value);
        if !value_errors.is_empty() {
            let field = format!("values[{index}][{key}]");
            errors.push(invalid_value(&field, value, &value_errors.join("; ")));
        }
    }
    if !errors.is_empty() {
        return Err(aggregate(errors));
    }
    Ok(Requirement {
        key,
        operator,
        values,
    })
}

/// `utilerrors.Aggregate.Error()`: one error as is, several de-duplicated inside brackets.
fn aggregate(errors: Vec<String>) -> String {
    if errors.len() == 1 {
        return errors.into_iter().next().unwrap_or_default();
    }
    let mut unique: Vec<String> = Vec::new();
    for error in errors {
        if !unique.contains(&error) {
            unique.push(error);
        }
    }
    if unique.len() == 1 {
        return unique.remove(0);
    }
    format!("[{}]", unique.join(", "))
}

/// `field.Invalid(path, value, detail).Error()`.
fn invalid_value(field: &str, value: &str, detail: &str) -> String {
    format!("{field}: Invalid value: {}: {detail}", go_quote(value))
}

/// Go's `%q` for a string (`strconv.Quote`), for the characters a selector token can hold.
fn go_quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for ch in value.chars() {
        match ch {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\u{7}' => quoted.push_str("\\a"),
            '\u{8}' => quoted.push_str("\\b"),
            '\u{c}' => quoted.push_str("\\f"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            '\u{b}' => quoted.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                quoted.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if ('\u{80}'..='\u{9f}').contains(&c) => {
                quoted.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
const LABEL_VALUE_MAX_LENGTH: usize = 63;
const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
const QUALIFIED_NAME_ERROR: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end \
     with an alphanumeric character";
const QUALIFIED_NAME_FORMAT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE_ERROR: &str =
    "a valid label must be an empty string or consist of alphanumeric characters, '-', \
     '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FORMAT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const DNS1123_SUBDOMAIN_ERROR: &str =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
     characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FORMAT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";

/// `validation.RegexError`, including its doubled spaces between examples.
fn regex_error(message: &str, format: &str, examples: &[&str]) -> String {
    let mut text = format!("{message} (e.g. ");
    for (index, example) in examples.iter().enumerate() {
        if index > 0 {
            text.push_str(" or ");
        }
        text.push_str(&format!("'{example}', "));
    }
    text.push_str(&format!("regex used for validation is '{format}')"));
    text
}

fn max_length_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_qualified_name_part(name: &str) -> bool {
    let bytes = name.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// One or more dot-separated RFC 1123 labels.
fn is_dns1123_subdomain(value: &str) -> bool {
    value.split('.').all(|label| {
        let bytes = label.as_bytes();
        match (bytes.first(), bytes.last()) {
            (Some(first), Some(last)) => {
                let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
                edge(first) && edge(last) && bytes.iter().all(|b| edge(b) || *b == b'-')
            }
            _ => false,
        }
    })
}

/// `validation.IsQualifiedName`: label keys are `[prefix/]name`.
fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_string());
            } else {
                if prefix.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
                    errors.push(format!(
                        "prefix part {}",
                        max_length_error(DNS1123_SUBDOMAIN_MAX_LENGTH)
                    ));
                }
                if !is_dns1123_subdomain(prefix) {
                    let detail = regex_error(
                        DNS1123_SUBDOMAIN_ERROR,
                        DNS1123_SUBDOMAIN_FORMAT,
                        &["example.com"],
                    );
                    errors.push(format!("prefix part {detail}"));
                }
            }
            *name
        }
        _ => {
            let detail = regex_error(
                QUALIFIED_NAME_ERROR,
                QUALIFIED_NAME_FORMAT,
                &["MyName", "my.name", "123-abc"],
            );
            errors.push(format!(
                "a qualified name {detail} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ));
            return errors;
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errors.push(format!(
            "name part {}",
            max_length_error(QUALIFIED_NAME_MAX_LENGTH)
        ));
    }
    if !is_qualified_name_part(name) {
        let detail = regex_error(
            QUALIFIED_NAME_ERROR,
            QUALIFIED_NAME_FORMAT,
            &["MyName", "my.name", "123-abc"],
        );
        errors.push(format!("name part {detail}"));
    }
    errors
}

/// `validation.IsValidLabelValue`.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errors.push(max_length_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errors.push(regex_error(
            LABEL_VALUE_ERROR,
            LABEL_VALUE_FORMAT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selects(selector: &str, pairs: &[(&str, &str)]) -> bool {
        LabelSelector::parse(selector)
            .expect(selector)
            .matches(&labels(pairs))
    }

    fn error_of(selector: &str) -> String {
        LabelSelector::parse(selector)
            .expect_err(selector)
            .message()
            .to_string()
    }

    #[test]
    fn empty_and_blank_selectors_select_everything() {
        assert!(LabelSelector::parse("").unwrap().is_everything());
        assert!(LabelSelector::parse("  \t\n").unwrap().is_everything());
        assert!(selects("", &[]));
        assert!(selects(" ", &[("a", "b")]));
    }

    #[test]
    fn equality_requires_the_key_with_that_value() {
        assert!(selects("app=web", &[("app", "web")]));
        assert!(selects("app==web", &[("app", "web"), ("tier", "x")]));
        assert!(!selects("app=web", &[("app", "db")]));
        assert!(!selects("app=web", &[]));
    }

    #[test]
    fn inequality_matches_other_values_and_absent_keys() {
        assert!(selects("app!=web", &[("app", "db")]));
        assert!(selects("app!=web", &[]));
        assert!(!selects("app!=web", &[("app", "web")]));
    }

    #[test]
    fn set_membership_matches_listed_values() {
        assert!(selects("env in (prod, staging)", &[("env", "staging")]));
        assert!(!selects("env in (prod,staging)", &[("env", "dev")]));
        assert!(!selects("env in (prod)", &[]));
        assert!(selects("env notin (prod)", &[("env", "dev")]));
        assert!(selects("env notin (prod)", &[]));
        assert!(!selects("env notin (prod,dev)", &[("env", "dev")]));
    }

    #[test]
    fn in_and_notin_are_plain_values_inside_parentheses() {
        assert!(selects("a in (in,notin)", &[("a", "notin")]));
        assert!(selects("in=notin", &[("in", "notin")]));
    }

    #[test]
    fn empty_entries_in_a_value_set_mean_the_empty_string() {
        let selector = LabelSelector::parse("x in (foo,,baz),y,z notin ()").unwrap();
        let keys: Vec<&str> = selector
            .requirements()
            .iter()
            .map(Requirement::key)
            .collect();
        assert_eq!(keys, ["x", "y", "z"]);
        assert_eq!(selector.requirements()[0].values(), ["", "baz", "foo"]);
        assert_eq!(selector.requirements()[1].operator(), Operator::Exists);
        assert_eq!(selector.requirements()[2].values(), [""]);
        assert!(selects("a in (,b)", &[("a", "")]));
        assert!(selects("a in (b,)", &[("a", "")]));
        assert!(selects("a=", &[("a", "")]));
        assert!(!selects("a=", &[]));
    }

    #[test]
    fn existence_and_absence_test_only_the_key() {
        assert!(selects("gpu", &[("gpu", "")]));
        assert!(!selects("gpu", &[("cpu", "x")]));
        assert!(selects("!gpu", &[("cpu", "x")]));
        assert!(!selects("!gpu", &[("gpu", "nvidia")]));
    }

    #[test]
    fn comma_is_and_and_whitespace_is_tolerated() {
        let pairs = [("app", "web"), ("kubernetes.io/os", "linux"), ("zone", "a")];
        assert!(selects(
            " app = web , kubernetes.io/os in ( linux ) , !spot, zone ",
            &pairs
        ));
        assert!(!selects("app=web,zone=b", &pairs));
    }

    #[test]
    fn greater_and_less_than_compare_integers() {
        assert!(selects("replicas>2", &[("replicas", "3")]));
        assert!(!selects("replicas>2", &[("replicas", "2")]));
        assert!(selects("replicas<2", &[("replicas", "1")]));
        assert!(!selects("replicas<2", &[("replicas", "one")]));
        assert!(!selects("replicas<2", &[]));
    }

    #[test]
    fn a_nul_byte_ends_the_token_like_the_go_lexer() {
        assert!(selects("a\0", &[("a", "1")]));
        assert_eq!(
            error_of("a\0b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
    }

    #[test]
    fn should_reject_syntax_errors_with_the_apiserver_wording() {
        assert_eq!(error_of("a,"), "found '', expected: identifier after ','");
        assert_eq!(
            error_of(",a"),
            "found ',', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            error_of("a b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            error_of("a=b c"),
            "found 'c', expected: ',' or 'end of string'"
        );
        assert_eq!(
            error_of("a in b"),
            "unable to parse requirement: found 'b' expected: '('"
        );
        assert_eq!(
            error_of("a in (b"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            error_of("a in (b c)"),
            "unable to parse requirement: found 'c', expected: ',' or ')'"
        );
        assert_eq!(
            error_of("a in (="),
            "unable to parse requirement: found '=', expected: ',', ')' or identifier"
        );
        assert_eq!(
            error_of("a in (,="),
            "unable to parse requirement: found '=', expected: ',', or identifier"
        );
        assert_eq!(
            error_of("a=("),
            "unable to parse requirement: found '(', expected: identifier"
        );
        assert_eq!(
            error_of("!"),
            "unable to parse requirement: found '', expected: identifier"
        );
        assert_eq!(
            error_of("!a=b"),
            "found '=', expected: ',' or 'end of string'"
        );
        assert_eq!(
            error_of("a=>b"),
            "unable to parse requirement: found '>', expected: identifier"
        );
    }

    #[test]
    fn should_reject_invalid_keys_with_the_validation_message() {
        assert_eq!(
            error_of("-a=b"),
            "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of alphanumeric \
             characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or \
             'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        assert_eq!(
            error_of("Example.com/a=b"),
            "unable to parse requirement: <nil>: Invalid value: \"Example.com/a\": prefix part a lowercase RFC 1123 \
             subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with \
             an alphanumeric character (e.g. 'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        assert_eq!(
            error_of("/a"),
            "unable to parse requirement: <nil>: Invalid value: \"/a\": prefix part must be non-empty"
        );
        let long_key = "k".repeat(64);
        assert_eq!(
            error_of(&long_key),
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"{long_key}\": name part must be no more than 63 \
                 characters"
            )
        );
        assert!(error_of("a/b/c").starts_with(
            "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of"
        ));
        assert!(error_of("a/b/c").ends_with(
            " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ));
        assert_eq!(
            error_of("a/"),
            "unable to parse requirement: <nil>: Invalid value: \"a/\": name part must be non-empty; name part must \
             consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric \
             character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is \
             '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        assert!(error_of("a\"b")
            .starts_with("unable to parse requirement: <nil>: Invalid value: \"a\\\"b\": "));
    }

    #[test]
    fn should_reject_invalid_values_naming_the_value_path() {
        assert_eq!(
            error_of("app=-web"),
            "unable to parse requirement: values[0][app]: Invalid value: \"-web\": a valid label must be an empty \
             string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
             alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is \
             '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        assert!(error_of("app in (a,b_)")
            .starts_with("unable to parse requirement: values[1][app]: Invalid value: \"b_\""));
        assert_eq!(
            error_of("replicas>two"),
            "unable to parse requirement: values[0]: Invalid value: \"two\": for 'Gt', 'Lt' operators, the value \
             must be an integer"
        );
        // "-2" is an integer but not a valid label value.
        assert!(error_of("replicas>-2").starts_with(
            "unable to parse requirement: values[0][replicas]: Invalid value: \"-2\": a valid label must be"
        ));
        let long_value = "v".repeat(64);
        assert!(error_of(&format!("a={long_value}"))
            .ends_with("\": must be no more than 63 characters"));
    }

    #[test]
    fn integer_operands_keep_the_order_of_newrequirement_checks() {
        // The integer check runs before the label-value check, so a non-integer invalid value lists both.
        assert_eq!(
            error_of("a>b_"),
            "unable to parse requirement: [values[0]: Invalid value: \"b_\": for 'Gt', 'Lt' operators, the value \
             must be an integer, values[0][a]: Invalid value: \"b_\": a valid label must be an empty string or \
             consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric \
             character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is \
             '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')]"
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_selector_text_never_panics(text in "[a-z=!(), <>\\t0-9/._-]{0,24}") {
            if let Ok(selector) = LabelSelector::parse(&text) {
                selector.matches(&labels(&[("a", "1"), ("b", "")]));
            }
        }
    }
}
