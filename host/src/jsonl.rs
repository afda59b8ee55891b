//! The JSON Lines form of records and outcomes, as `witplug transform` reads and writes them.
//!
//! The mapping is documented in `samples/README.md`. Non-finite floats, which JSON cannot
//! hold, travel as `{"$float": "NaN" | "inf" | "-inf"}` so that nothing is lost.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value as Json, json};

use crate::worlds::transform::Outcome;
use crate::worlds::{Field, Record, Value};

/// Why a line is not a record.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordJsonError {
    #[error("not valid JSON: {0}")]
    Syntax(String),
    #[error("expected a JSON object like {{\"key\": \"...\", \"fields\": {{...}}}}, found {0}")]
    NotAnObject(&'static str),
    #[error("`key` must be a string, found {0}")]
    Key(&'static str),
    #[error("`fields` must be an object, found {0}")]
    Fields(&'static str),
    #[error("unknown member `{0}` (a record has only `key` and `fields`)")]
    UnknownMember(String),
    #[error("field `{field}`: {reason}")]
    Value { field: String, reason: String },
}

fn kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Parses one JSON Lines record. `key` defaults to `""` and `fields` to none.
pub fn parse_record(line: &str) -> Result<Record, RecordJsonError> {
    let json: Json =
        serde_json::from_str(line).map_err(|e| RecordJsonError::Syntax(e.to_string()))?;
    let Json::Object(object) = json else {
        return Err(RecordJsonError::NotAnObject(kind(&json)));
    };
    let mut key = String::new();
    let mut fields = Vec::new();
    for (member, value) in object {
        match (member.as_str(), value) {
            ("key", Json::String(s)) => key = s,
            ("key", other) => return Err(RecordJsonError::Key(kind(&other))),
            ("fields", Json::Object(map)) => {
                for (name, value) in map {
                    let value =
                        value_from_json(value).map_err(|reason| RecordJsonError::Value {
                            field: name.clone(),
                            reason,
                        })?;
                    fields.push(Field { name, value });
                }
            }
            ("fields", other) => return Err(RecordJsonError::Fields(kind(&other))),
            (other, _) => return Err(RecordJsonError::UnknownMember(other.to_owned())),
        }
    }
    Ok(Record { key, fields })
}

fn value_from_json(json: Json) -> Result<Value, String> {
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Float(n.as_f64().ok_or("number out of range")?),
        },
        Json::String(s) => Value::Text(s),
        Json::Array(items) => Value::TextList(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Json::String(s) => Ok(s),
                    other => Err(format!(
                        "arrays may hold only strings, element {i} is {}",
                        kind(&other)
                    )),
                })
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map) => tagged_from_json(map)?,
    })
}

fn tagged_from_json(map: Map<String, Json>) -> Result<Value, String> {
    let mut entries = map.into_iter();
    match (entries.next(), entries.next()) {
        (Some((tag, Json::String(s))), None) if tag == "$base64" => BASE64
            .decode(s.as_bytes())
            .map(Value::Bytes)
            .map_err(|e| format!("invalid base64: {e}")),
        (Some((tag, Json::String(s))), None) if tag == "$float" => match s.as_str() {
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

/// The JSON form of a record.
pub fn record_to_json(record: &Record) -> Json {
    let fields: Map<String, Json> = record
        .fields
        .iter()
        .map(|field| (field.name.clone(), value_to_json(&field.value)))
        .collect();
    json!({"key": record.key, "fields": fields})
}

/// The output line for the outcome of the record read from input line `line`.
pub fn outcome_to_json(line: usize, key: &str, outcome: &Outcome) -> Json {
    match outcome {
        Outcome::Keep(record) => {
            json!({"line": line, "key": key, "outcome": "keep", "record": record_to_json(record)})
        }
        Outcome::Drop(reason) => {
            json!({"line": line, "key": key, "outcome": "drop", "reason": reason})
        }
        Outcome::Split(records) => json!({
            "line": line,
            "key": key,
            "outcome": "split",
            "records": records.iter().map(record_to_json).collect::<Vec<_>>(),
        }),
        Outcome::Error(error) => json!({
            "line": line,
            "key": key,
            "outcome": "error",
            "error": {"code": error.code, "message": error.message},
        }),
    }
}

/// The output line for an input line that is not a record.
pub fn invalid_input_to_json(line: usize, error: &RecordJsonError) -> Json {
    json!({"line": line, "outcome": "invalid-input", "error": format!("line {line}: {error}")})
}

/// The output line for a record the plugin failed on (trap, contract violation, …).
pub fn plugin_failure_to_json(line: usize, key: &str, error: &crate::Error) -> Json {
    json!({"line": line, "key": key, "outcome": "plugin-failure", "error": crate::error::error_chain(error)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_kind_round_trips() {
        let line = r#"{"key":"k","fields":{"n":null,"b":true,"i":-7,"f":1.5,"t":"x","l":["a","b"],"y":{"$base64":"AAEC"},"nan":{"$float":"NaN"}}}"#;
        let record = parse_record(line).expect("valid record");
        assert_eq!(record.fields[2].value, Value::Integer(-7));
        assert_eq!(record.fields[6].value, Value::Bytes(vec![0, 1, 2]));
        assert!(matches!(record.fields[7].value, Value::Float(f) if f.is_nan()));
        let back = record_to_json(&record);
        assert_eq!(back, serde_json::from_str::<Json>(line).expect("json"));
    }

    #[test]
    fn field_order_is_kept() {
        let record = parse_record(r#"{"key":"k","fields":{"z":1,"a":2,"m":3}}"#).expect("ok");
        let names: Vec<_> = record.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["z", "a", "m"]);
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
        assert!(matches!(
            parse_record("{\"key\": \"k\""),
            Err(RecordJsonError::Syntax(_))
        ));
        let err = parse_record(r#"{"key":"k","fields":{"o":{"a":1}}}"#).expect_err("bad");
        assert!(err.to_string().starts_with("field `o`: objects"), "{err}");
    }

    #[test]
    fn large_unsigned_numbers_become_floats() {
        let record = parse_record(r#"{"fields":{"big":18446744073709551615}}"#).expect("ok");
        assert_eq!(record.fields[0].value, Value::Float(18446744073709551615.0));
    }
}
