//! The JSON Lines form of records and outcomes, as `witplug transform` reads and writes them.
//!
//! The mapping is documented in `samples/README.md`. Nothing is lost on the way: every
//! input line (blank, over-long or not UTF-8 included) gives one output line; duplicate
//! field names are kept in order (a WIT record is a list); numbers follow one lossless rule
//! ([`number_from_text`]); non-finite floats, which JSON cannot hold, travel as
//! `{"$float": "NaN" | "inf" | "-inf"}`.

use std::fmt;
use std::io::{self, BufRead};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde_json::{Value as Json, json};

use crate::worlds::transform::Outcome;
use crate::worlds::{Field, Record, Value};

/// The default of `witplug transform --max-line-bytes`: records on a queue are KBs, and a
/// parsed line takes ~10-15x its size.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;

const BOM: &[u8] = "\u{feff}".as_bytes();

/// Why a line is not a record.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordJsonError {
    #[error("not valid JSON at column {column}: {message}")]
    Syntax { column: usize, message: String },
    #[error("blank line (expected a record)")]
    Blank,
    #[error("line longer than {limit} bytes (see --max-line-bytes); skipped to its end")]
    TooLong { limit: usize },
    #[error("not UTF-8: invalid byte at column {column}")]
    NotUtf8 { column: usize },
    #[error("a byte-order mark (U+FEFF) is allowed only at the start of the input")]
    MisplacedBom,
    #[error("expected a JSON object like {{\"key\": \"...\", \"fields\": {{...}}}}, found {0}")]
    NotAnObject(&'static str),
    #[error("`key` must be a string, found {0}")]
    Key(&'static str),
    #[error("`fields` must be an object, found {0}")]
    Fields(&'static str),
    #[error("member `{0}` appears twice")]
    DuplicateMember(&'static str),
    #[error("unknown member `{0}` (a record has only `key` and `fields`)")]
    UnknownMember(String),
    #[error("field `{field}`: {reason}")]
    Value { field: String, reason: String },
}

// ---------------------------------------------------------------------------------------
// Reading lines.

/// One line of input, its ending (`\n` or `\r\n`) removed.
#[derive(Debug, Clone, PartialEq)]
pub struct InputLine {
    /// 1-based.
    pub number: usize,
    pub text: Result<String, RecordJsonError>,
}

/// Splits a byte stream into lines without trusting it: a line longer than the limit is
/// skipped to its newline without being buffered, and UTF-8 is checked per line, so one
/// bad line costs only itself. A UTF-8 byte-order mark at the very start is ignored; a
/// final line without a newline is still a line.
pub struct LineReader<R> {
    inner: R,
    max_line_bytes: usize,
    lines_read: usize,
    buffer: Vec<u8>,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R, max_line_bytes: usize) -> Self {
        Self {
            inner,
            max_line_bytes,
            lines_read: 0,
            buffer: Vec::new(),
        }
    }

    /// The next line, or `None` at the end of the input.
    pub fn next_line(&mut self) -> io::Result<Option<InputLine>> {
        self.buffer.clear();
        // One byte over the limit for a `\r` before the `\n`.
        let cap = self.max_line_bytes.saturating_add(1);
        let mut too_long = false;
        let mut read_any = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(available) => available,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                if !read_any {
                    return Ok(None);
                }
                break;
            }
            read_any = true;
            let newline = available.iter().position(|&b| b == b'\n');
            let content = &available[..newline.unwrap_or(available.len())];
            if !too_long {
                if self.buffer.len() + content.len() > cap {
                    too_long = true;
                    self.buffer = Vec::new();
                } else {
                    self.buffer.extend_from_slice(content);
                }
            }
            let used = content.len() + usize::from(newline.is_some());
            self.inner.consume(used);
            if newline.is_some() {
                break;
            }
        }
        self.lines_read += 1;
        let mut bytes = self.buffer.as_slice();
        if let Some(rest) = bytes.strip_suffix(b"\r") {
            bytes = rest;
        }
        if self.lines_read == 1
            && let Some(rest) = bytes.strip_prefix(BOM)
        {
            bytes = rest;
        }
        let text = if too_long || bytes.len() > self.max_line_bytes {
            Err(RecordJsonError::TooLong {
                limit: self.max_line_bytes,
            })
        } else {
            std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|e| RecordJsonError::NotUtf8 {
                    column: e.valid_up_to() + 1,
                })
        };
        Ok(Some(InputLine {
            number: self.lines_read,
            text,
        }))
    }
}

impl<R: BufRead> Iterator for LineReader<R> {
    type Item = io::Result<InputLine>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_line().transpose()
    }
}

/// The record an input line holds, or why it holds none.
pub fn parse_input_line(line: &InputLine) -> Result<Record, RecordJsonError> {
    match &line.text {
        Ok(text) => parse_record(text),
        Err(error) => Err(error.clone()),
    }
}

// ---------------------------------------------------------------------------------------
// Parsing records.

/// A JSON value as written: members in order with duplicates, numbers as their text.
enum Node {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

fn kind(node: &Node) -> &'static str {
    match node {
        Node::Null => "null",
        Node::Bool(_) => "a boolean",
        Node::Number(_) => "a number",
        Node::String(_) => "a string",
        Node::Array(_) => "an array",
        Node::Object(_) => "an object",
    }
}

/// Parses one JSON Lines record. `key` defaults to `""` and `fields` to none; `key` or
/// `fields` twice is an error, a field name twice is kept (in order).
pub fn parse_record(line: &str) -> Result<Record, RecordJsonError> {
    if line.trim().is_empty() {
        return Err(RecordJsonError::Blank);
    }
    if line.starts_with('\u{feff}') {
        return Err(RecordJsonError::MisplacedBom);
    }
    let mut numbers = number_tokens(line).into_iter();
    let mut deserializer = serde_json::Deserializer::from_str(line);
    let node = NodeSeed {
        numbers: &mut numbers,
    }
    .deserialize(&mut deserializer)
    .and_then(|node| deserializer.end().map(|()| node))
    .map_err(syntax_error)?;
    let Node::Object(members) = node else {
        return Err(RecordJsonError::NotAnObject(kind(&node)));
    };
    let mut key = None;
    let mut fields = None;
    for (member, value) in members {
        match member.as_str() {
            "key" if key.is_some() => return Err(RecordJsonError::DuplicateMember("key")),
            "key" => match value {
                Node::String(s) => key = Some(s),
                other => return Err(RecordJsonError::Key(kind(&other))),
            },
            "fields" if fields.is_some() => {
                return Err(RecordJsonError::DuplicateMember("fields"));
            }
            "fields" => match value {
                Node::Object(members) => {
                    let converted = members
                        .into_iter()
                        .map(|(name, value)| match value_from_node(value) {
                            Ok(value) => Ok(Field { name, value }),
                            Err(reason) => Err(RecordJsonError::Value {
                                field: name,
                                reason,
                            }),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    fields = Some(converted);
                }
                other => return Err(RecordJsonError::Fields(kind(&other))),
            },
            _ => return Err(RecordJsonError::UnknownMember(member)),
        }
    }
    Ok(Record {
        key: key.unwrap_or_default(),
        fields: fields.unwrap_or_default(),
    })
}

/// serde_json's message without its "at line 1 column N" (a record is always one line).
fn syntax_error(error: serde_json::Error) -> RecordJsonError {
    let full = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    RecordJsonError::Syntax {
        column: error.column(),
        message: full.strip_suffix(&position).unwrap_or(&full).to_owned(),
    }
}

/// The text of every number in `json`, in document order: serde hands numbers over only
/// as `i64`/`u64`/`f64`, and the lossless rule needs what was written. Outside strings,
/// JSON has a `-` or a digit only at the start of a number.
fn number_tokens(json: &str) -> Vec<&str> {
    let bytes = json.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                tokens.push(&json[start..i]);
            }
            _ => i += 1,
        }
    }
    tokens
}

/// Builds a [`Node`], taking each number's text from `numbers` (in document order).
struct NodeSeed<'t, 'a> {
    numbers: &'t mut std::vec::IntoIter<&'a str>,
}

impl NodeSeed<'_, '_> {
    fn number<E: de::Error>(self) -> Result<Node, E> {
        self.numbers
            .next()
            .map(|text| Node::Number(text.to_owned()))
            .ok_or_else(|| E::custom("a number whose text could not be found"))
    }
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_, '_> {
    type Value = Node;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_, '_> {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Node, E> {
        Ok(Node::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
        self.number()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
        self.number()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        self.number()
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Node, E> {
        Ok(Node::String(s.to_owned()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Node, E> {
        Ok(Node::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(NodeSeed {
            numbers: &mut *self.numbers,
        })? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut members = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value_seed(NodeSeed {
                numbers: &mut *self.numbers,
            })?;
            members.push((name, value));
        }
        Ok(Node::Object(members))
    }
}

fn value_from_node(node: Node) -> Result<Value, String> {
    Ok(match node {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Boolean(b),
        Node::Number(text) => number_from_text(&text)?,
        Node::String(s) => Value::Text(s),
        Node::Array(items) => Value::TextList(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Node::String(s) => Ok(s),
                    other => Err(format!(
                        "arrays may hold only strings, element {i} is {}",
                        kind(&other)
                    )),
                })
                .collect::<Result<_, _>>()?,
        ),
        Node::Object(members) => tagged_from_members(members)?,
    })
}

/// The lossless number rule (documented in `samples/README.md`): a number written without
/// fraction or exponent is an `integer` and must fit in s64 (so `-0` is `integer(0)`);
/// any other number is a `float` only if that float, printed back, is the same decimal
/// number as written (`1.50` and `15e-1` are 1.5; `1e-400` or 0.1 with 30 digits are not).
/// The float is the correctly rounded one, so it is written back bit-identical.
pub fn number_from_text(text: &str) -> Result<Value, String> {
    if !text.contains(['.', 'e', 'E']) {
        return text.parse::<i64>().map(Value::Integer).map_err(|_| {
            format!(
                "integer {text} does not fit in s64 (-9223372036854775808 to \
                 9223372036854775807); write it as a string"
            )
        });
    }
    let float: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    let printed = format!("{float:e}");
    match (decimal_parts(text), decimal_parts(&printed)) {
        (Some(written), Some(back)) if float.is_finite() && written == back => {
            Ok(Value::Float(float))
        }
        _ => Err(format!(
            "number {text} is not exactly representable as a float (it would become \
             {printed}); write it as a string"
        )),
    }
}

/// A decimal number as (negative, significant digits, exponent): value = digits × 10^exp,
/// without leading or trailing zeros in the digits (zero has none, and keeps its sign).
fn decimal_parts(text: &str) -> Option<(bool, String, i64)> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = whole.chars().chain(fraction.chars()).collect();
    let without_trailing = digits.trim_end_matches('0');
    let trailing = i64::try_from(digits.len() - without_trailing.len()).ok()?;
    let significant = without_trailing.trim_start_matches('0');
    if significant.is_empty() {
        return Some((negative, String::new(), 0));
    }
    let exponent = exponent
        .checked_sub(i64::try_from(fraction.len()).ok()?)?
        .checked_add(trailing)?;
    Some((negative, significant.to_owned(), exponent))
}

fn tagged_from_members(members: Vec<(String, Node)>) -> Result<Value, String> {
    let mut members = members.into_iter();
    match (members.next(), members.next()) {
        (Some((tag, Node::String(s))), None) if tag == "$base64" => BASE64
            .decode(s.as_bytes())
            .map(Value::Bytes)
            .map_err(|e| format!("invalid base64: {e}")),
        (Some((tag, Node::String(s))), None) if tag == "$float" => match s.as_str() {
            "NaN" => Ok(Value::Float(f64::NAN)),
            "inf" => Ok(Value::Float(f64::INFINITY)),
            "-inf" => Ok(Value::Float(f64::NEG_INFINITY)),
            _ => Err(format!("`$float` must be NaN, inf or -inf, found `{s}`")),
        },
        _ => Err(
            "objects are not field values (only {\"$base64\": \"...\"} and {\"$float\": \"...\"})"
                .to_owned(),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Writing records and outcomes.

/// The JSON form of a value.
pub fn value_to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => json!(i),
        Value::Float(f) if f.is_nan() => json!({"$float": "NaN"}),
        Value::Float(f) if f.is_infinite() => {
            json!({"$float": if *f > 0.0 { "inf" } else { "-inf" }})
        }
        Value::Float(f) => json!(f),
        Value::Text(s) => json!(s),
        Value::Bytes(b) => json!({"$base64": BASE64.encode(b)}),
        Value::TextList(items) => json!(items),
    }
}

/// A record as JSON, written member by member so that duplicate field names survive
/// (a `serde_json::Map` would merge them).
struct RecordOut<'a>(&'a Record);

struct FieldsOut<'a>(&'a [Field]);

struct RecordsOut<'a>(&'a [Record]);

impl serde::Serialize for RecordOut<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("key", &self.0.key)?;
        map.serialize_entry("fields", &FieldsOut(&self.0.fields))?;
        map.end()
    }
}

impl serde::Serialize for FieldsOut<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for field in self.0 {
            map.serialize_entry(&field.name, &value_to_json(&field.value))?;
        }
        map.end()
    }
}

impl serde::Serialize for RecordsOut<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(RecordOut))
    }
}

/// The output line's `outcome` for an outcome.
pub fn outcome_kind(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Keep(_) => "keep",
        Outcome::Drop(_) => "drop",
        Outcome::Split(_) => "split",
        Outcome::Error(_) => "error",
    }
}

/// A record as one line of JSON (no newline), in the input format.
pub fn record_line(record: &Record) -> String {
    to_line(&RecordOut(record))
}

/// The output line (no newline) for the outcome of the record read from input line `line`.
pub fn outcome_line(line: usize, key: &str, outcome: &Outcome) -> String {
    struct Line<'a>(usize, &'a str, &'a Outcome);
    impl serde::Serialize for Line<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let Line(line, key, outcome) = *self;
            let mut map = serializer.serialize_map(Some(4))?;
            map.serialize_entry("line", &line)?;
            map.serialize_entry("key", key)?;
            map.serialize_entry("outcome", outcome_kind(outcome))?;
            match outcome {
                Outcome::Keep(record) => map.serialize_entry("record", &RecordOut(record))?,
                Outcome::Drop(reason) => map.serialize_entry("reason", reason)?,
                Outcome::Split(records) => map.serialize_entry("records", &RecordsOut(records))?,
                Outcome::Error(error) => map.serialize_entry(
                    "error",
                    &json!({"code": error.code, "message": error.message}),
                )?,
            }
            map.end()
        }
    }
    to_line(&Line(line, key, outcome))
}

/// The output line (no newline) for an input line that is not a record.
pub fn invalid_input_line(line: usize, error: &RecordJsonError) -> String {
    json!({"line": line, "outcome": "invalid-input", "error": format!("line {line}: {error}")})
        .to_string()
}

/// The output line (no newline) for a record the plugin failed on (trap, contract
/// violation, …).
pub fn plugin_failure_line(line: usize, key: &str, error: &crate::Error) -> String {
    json!({"line": line, "key": key, "outcome": "plugin-failure", "error": crate::error::error_chain(error)})
        .to_string()
}

fn to_line(value: &impl serde::Serialize) -> String {
    // These values have string keys and no custom errors, so serialising cannot fail; if
    // it ever did, the line would still be JSON naming the problem.
    serde_json::to_string(value).unwrap_or_else(|error| {
        json!({"outcome": "internal-error", "error": error.to_string()}).to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<Result<String, RecordJsonError>> {
        LineReader::new(input, max)
            .map(|line| line.expect("reading a slice cannot fail").text)
            .collect()
    }

    fn reparsed(record: &Record) -> Json {
        serde_json::from_str(&record_line(record)).expect("json")
    }

    #[test]
    fn every_value_kind_round_trips() {
        let line = r#"{"key":"k","fields":{"n":null,"b":true,"i":-7,"f":1.5,"t":"x","l":["a","b"],"y":{"$base64":"AAEC"},"nan":{"$float":"NaN"}}}"#;
        let record = parse_record(line).expect("valid record");
        assert_eq!(record.fields[2].value, Value::Integer(-7));
        assert_eq!(record.fields[6].value, Value::Bytes(vec![0, 1, 2]));
        assert!(matches!(record.fields[7].value, Value::Float(f) if f.is_nan()));
        assert_eq!(record_line(&record), line);
    }

    #[test]
    fn field_order_is_kept() {
        let record = parse_record(r#"{"key":"k","fields":{"z":1,"a":2,"m":3}}"#).expect("ok");
        let names: Vec<_> = record.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["z", "a", "m"]);
    }

    #[test]
    fn duplicate_field_names_are_all_kept_in_order() {
        let line = r#"{"key":"k","fields":{"email":"a@b.c","x":1,"email":"d@e.f"}}"#;
        let record = parse_record(line).expect("ok");
        let fields: Vec<_> = record
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.value.clone()))
            .collect();
        assert_eq!(
            fields,
            [
                ("email", Value::Text("a@b.c".into())),
                ("x", Value::Integer(1)),
                ("email", Value::Text("d@e.f".into())),
            ]
        );
        // And they are written back, all of them.
        assert_eq!(record_line(&record), line);
    }

    #[test]
    fn duplicate_key_or_fields_members_are_refused() {
        assert_eq!(
            parse_record(r#"{"key":"a","key":"b"}"#),
            Err(RecordJsonError::DuplicateMember("key"))
        );
        assert_eq!(
            parse_record(r#"{"fields":{"a":1},"fields":{"b":2}}"#),
            Err(RecordJsonError::DuplicateMember("fields"))
        );
        let err = parse_record(r#"{"fields":{"y":{"$base64":"AA==","$base64":"AQ=="}}}"#)
            .expect_err("two tags");
        assert!(err.to_string().starts_with("field `y`: objects"), "{err}");
    }

    #[test]
    fn errors_name_what_is_wrong_and_where() {
        let err = parse_record(r#"{"key":"k","fields":{"tags":["a",3]}}"#).expect_err("bad");
        assert_eq!(
            err.to_string(),
            "field `tags`: arrays may hold only strings, element 1 is a number"
        );
        let err = parse_record("[1]").expect_err("bad");
        assert!(err.to_string().contains("found an array"), "{err}");
        let err = parse_record(r#"{"key":1}"#).expect_err("bad");
        assert_eq!(err, RecordJsonError::Key("a number"));
        let err = parse_record(r#"{"fields":{"o":{"a":1}}}"#).expect_err("bad");
        assert!(err.to_string().starts_with("field `o`: objects"), "{err}");
    }

    #[test]
    fn syntax_errors_give_the_column_only() {
        let err = parse_record("this line is not JSON").expect_err("bad");
        assert_eq!(
            err.to_string(),
            "not valid JSON at column 2: expected ident"
        );
        let err = parse_record("{\"key\": \"k\"").expect_err("bad");
        assert!(
            matches!(&err, RecordJsonError::Syntax { column: 11, message } if !message.contains("line")),
            "{err:?}"
        );
    }

    #[test]
    fn integers_outside_s64_are_refused_naming_the_field() {
        let err = parse_record(r#"{"fields":{"big":18446744073709551615}}"#).expect_err("big");
        assert!(
            err.to_string()
                .starts_with("field `big`: integer 18446744073709551615 does not fit in s64"),
            "{err}"
        );
        assert!(parse_record(r#"{"fields":{"n":-9223372036854775809}}"#).is_err());
        let edges =
            parse_record(r#"{"fields":{"max":9223372036854775807,"min":-9223372036854775808}}"#)
                .expect("edges fit");
        assert_eq!(edges.fields[0].value, Value::Integer(i64::MAX));
        assert_eq!(edges.fields[1].value, Value::Integer(i64::MIN));
    }

    #[test]
    fn numbers_follow_one_lossless_rule() {
        let value = |text: &str| {
            parse_record(&format!(r#"{{"fields":{{"x":{text}}}}}"#))
                .map(|r| r.fields[0].value.clone())
        };
        // Integer syntax is an integer: `-0` is 0 (integers have no sign of zero).
        assert_eq!(value("-0"), Ok(Value::Integer(0)));
        // A float that is the written number is kept, signs of zero included.
        assert!(matches!(value("-0.0"), Ok(Value::Float(f)) if f == 0.0 && f.is_sign_negative()));
        assert_eq!(value("1.50"), Ok(Value::Float(1.5)));
        assert_eq!(value("15e-1"), Ok(Value::Float(1.5)));
        assert_eq!(value("1e300"), Ok(Value::Float(1e300)));
        assert_eq!(value("5e-324"), Ok(Value::Float(5e-324)));
        // Numbers a float cannot hold are refused, not rounded to 0, inf or another value.
        for lossy in ["1e-400", "0.1000000000000000000001", "9007199254740993.0"] {
            let err = value(lossy).expect_err(lossy);
            assert!(
                err.to_string().contains("is not exactly representable"),
                "{lossy}: {err}"
            );
        }
        let err = value("1e400").expect_err("overflow");
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    #[test]
    fn floats_pass_through_bit_identical() {
        for text in [
            "-100519.43134222063",
            "0.1",
            "2.2250738585072014e-308",
            "1.7976931348623157e308",
            "-0.0",
            "123456789.12345679",
        ] {
            let record = parse_record(&format!(r#"{{"fields":{{"x":{text}}}}}"#)).expect(text);
            let Value::Float(parsed) = record.fields[0].value else {
                panic!("{text} is not a float");
            };
            let expected: f64 = text.parse().expect("std parses correctly");
            assert_eq!(parsed.to_bits(), expected.to_bits(), "{text}");
            // Written back and read again, the very same bits.
            let again = parse_record(&record_line(&record)).expect("round trip");
            let Value::Float(again) = again.fields[0].value else {
                panic!("{text} written back is not a float");
            };
            assert_eq!(again.to_bits(), parsed.to_bits(), "{text}");
        }
        // -0.0 is written as -0.0 (not -0, which would read back as the integer 0).
        let record = parse_record(r#"{"fields":{"x":-0.0}}"#).expect("ok");
        assert_eq!(reparsed(&record)["fields"]["x"].to_string(), "-0.0");
    }

    #[test]
    fn number_tokens_skip_strings() {
        assert_eq!(
            number_tokens(r#"{"a\"1":-2.5e3,"b":["3",4],"c":"x\\"}"#),
            ["-2.5e3", "4"]
        );
    }

    #[test]
    fn lines_are_split_on_newlines_crlf_included_and_the_last_needs_none() {
        assert_eq!(
            lines(b"a\r\nb\n\nc", 100),
            [
                Ok("a".into()),
                Ok("b".into()),
                Ok(String::new()),
                Ok("c".into())
            ]
        );
        assert_eq!(lines(b"a\n", 100), [Ok("a".into())]);
        assert!(lines(b"", 100).is_empty());
        assert_eq!(lines(b"\n\n", 100), [Ok(String::new()), Ok(String::new())]);
    }

    #[test]
    fn a_bom_is_ignored_at_the_start_only() {
        let input = "\u{feff}{\"key\":\"a\"}\n\u{feff}{\"key\":\"b\"}\n";
        let read = lines(input.as_bytes(), 100);
        assert_eq!(read[0], Ok("{\"key\":\"a\"}".into()));
        let second = read[1].clone().expect("utf-8");
        assert_eq!(parse_record(&second), Err(RecordJsonError::MisplacedBom));
    }

    #[test]
    fn over_long_lines_are_skipped_to_their_newline() {
        let mut input = b"ok\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 10_000));
        input.extend(b"\nafter\n12345\r\n123456\n");
        // A BufReader with a small buffer, so the long line arrives in many pieces.
        let reader = io::BufReader::with_capacity(64, input.as_slice());
        let read: Vec<_> = LineReader::new(reader, 5)
            .map(|line| line.expect("slice").text)
            .collect();
        assert_eq!(
            read,
            [
                Ok("ok".into()),
                Err(RecordJsonError::TooLong { limit: 5 }),
                Ok("after".into()),
                Ok("12345".into()),
                Err(RecordJsonError::TooLong { limit: 5 }),
            ]
        );
    }

    #[test]
    fn invalid_utf8_costs_only_its_line() {
        let read = lines(b"{}\n{\"key\":\"\xff\"}\n{}\n", 100);
        assert_eq!(read[0], Ok("{}".into()));
        assert_eq!(read[1], Err(RecordJsonError::NotUtf8 { column: 9 }));
        assert_eq!(read[2], Ok("{}".into()));
    }

    /// The fuzz target `read_jsonl`'s property on pseudo-random inputs built from JSON-ish
    /// pieces, so that `cargo test` checks it too.
    #[test]
    fn arbitrary_bytes_give_one_line_per_input_line_and_stable_records() {
        const PIECES: &[&[u8]] = &[
            b"{",
            b"}",
            b"\"key\":",
            b"\"fields\":",
            b"\"email\"",
            b":",
            b",",
            b"\"a\"",
            b"[",
            b"]",
            b"-0",
            b"1e-400",
            b"0.1",
            b"-100519.43134222063",
            b"18446744073709551615",
            b"{\"$float\":\"NaN\"}",
            b"{\"$base64\":\"AA==\"}",
            b"null",
            b"true",
            b"\n",
            b"\r\n",
            b" ",
            b"\xff",
            b"\xef\xbb\xbf",
            b"\\",
            b"\"",
            b"x",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            // xorshift64: deterministic, no dependency.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut records = 0;
        for _ in 0..3000 {
            let mut data = Vec::new();
            for _ in 0..next() % 40 {
                data.extend_from_slice(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            let newlines = data.iter().filter(|&&b| b == b'\n').count();
            let expected = newlines + usize::from(data.last().is_some_and(|&b| b != b'\n'));
            let mut numbers = Vec::new();
            for line in LineReader::new(data.as_slice(), 32) {
                let line = line.expect("slice");
                numbers.push(line.number);
                match parse_input_line(&line) {
                    Ok(record) => {
                        records += 1;
                        let written = record_line(&record);
                        let again = parse_record(&written).expect("reads back");
                        assert_eq!(record_line(&again), written);
                    }
                    Err(error) => {
                        let out: Json =
                            serde_json::from_str(&invalid_input_line(line.number, &error))
                                .expect("json");
                        assert_eq!(out["line"], line.number);
                    }
                }
            }
            assert_eq!(numbers, (1..=expected).collect::<Vec<_>>(), "{data:?}");
        }
        assert!(
            records > 0,
            "no input was a record: the generator is too weak"
        );
    }

    #[test]
    fn blank_lines_are_invalid_input() {
        assert_eq!(parse_record("  \t"), Err(RecordJsonError::Blank));
        assert_eq!(parse_record(""), Err(RecordJsonError::Blank));
    }
}
