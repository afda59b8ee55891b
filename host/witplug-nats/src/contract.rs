//! The message contract of a pipeline: what an input must be, and the headers and ids of
//! what a worker publishes (README "Run a pipeline" documents it for users).

use witplug::{PluginVersion, Record, jsonl};

/// Where an input was in its stream, and how often it was delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub stream: String,
    pub sequence: u64,
    /// 1 on the first delivery.
    pub deliveries: u64,
}

pub const INPUT_STREAM: &str = "Witplug-Input-Stream";
pub const INPUT_SEQUENCE: &str = "Witplug-Input-Sequence";
pub const OUTCOME: &str = "Witplug-Outcome";
pub const PLUGIN: &str = "Witplug-Plugin";
pub const PLUGIN_VERSION: &str = "Witplug-Plugin-Version";
pub const PLUGIN_DIGEST: &str = "Witplug-Plugin-Digest";
pub const ERROR_KIND: &str = "Witplug-Error-Kind";
pub const ERROR: &str = "Witplug-Error";
pub const ERROR_CODE: &str = "Witplug-Error-Code";
pub const DELIVERIES: &str = "Witplug-Deliveries";
pub const DROP_REASON: &str = "Witplug-Drop-Reason";
/// On a dead letter or drop notice sent without the input's payload (it would not fit).
pub const PAYLOAD_OMITTED: &str = "Witplug-Payload-Omitted";
/// JetStream's de-duplication header.
pub const MSG_ID: &str = "Nats-Msg-Id";

/// Why an input went to the dead-letter subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadLetterKind {
    /// Not UTF-8, not JSON, not a record, or too large: retrying cannot help.
    InvalidInput,
    /// The plugin answered `error` for the record.
    Error,
    /// The plugin failed on this record alone (trap, limit, contract) on its last
    /// allowed delivery.
    PluginFailure,
    /// An output record is larger than the server accepts in one message.
    OutputTooLarge,
}

impl DeadLetterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidInput => "invalid-input",
            Self::Error => "error",
            Self::PluginFailure => "plugin-failure",
            Self::OutputTooLarge => "output-too-large",
        }
    }
}

/// The `Nats-Msg-Id` of output `index` of an input. It has no plugin digest in it on
/// purpose: a redelivered input gets the same ids even when a version swap came between,
/// so the duplicate window drops the second publish and outputs stay exactly-once.
pub fn output_id(position: &Position, index: usize) -> String {
    format!("witplug:{}:{}:{index}", position.stream, position.sequence)
}

/// The `Nats-Msg-Id` of an input's dead letter.
pub fn dead_letter_id(position: &Position) -> String {
    format!(
        "witplug:{}:{}:dead-letter",
        position.stream, position.sequence
    )
}

/// The `Nats-Msg-Id` of an input's drop notice.
pub fn dropped_id(position: &Position) -> String {
    format!("witplug:{}:{}:dropped", position.stream, position.sequence)
}

/// Headers every message a worker publishes carries: where the input was, and which
/// plugin build handled it.
pub fn provenance(position: &Position, version: &PluginVersion) -> Vec<(String, String)> {
    vec![
        (INPUT_STREAM.to_owned(), position.stream.clone()),
        (INPUT_SEQUENCE.to_owned(), position.sequence.to_string()),
        (PLUGIN.to_owned(), header_text(&version.name)),
        (PLUGIN_VERSION.to_owned(), header_text(&version.version)),
        (PLUGIN_DIGEST.to_owned(), version.digest.clone()),
    ]
}

/// The input's own headers that may travel with a dead letter or drop notice: all but
/// JetStream's `Nats-*` instructions, which would de-duplicate the notice against another
/// message (`Nats-Msg-Id`) or make its publish fail (`Nats-Expected-Stream`).
pub fn forwarded_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| !name.to_ascii_lowercase().starts_with("nats-"))
        .cloned()
        .collect()
}

/// Text fit for a header value: one line. Plugin-chosen text (names, error messages) may
/// hold anything; a newline in a header would end the header block.
pub fn header_text(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    const MAX: usize = 1024;
    if one_line.len() <= MAX {
        return one_line;
    }
    let mut end = MAX;
    while !one_line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &one_line[..end])
}

/// Reads an input payload as a record, or says why it is not one.
pub fn decode_record(payload: &[u8], max_record_bytes: usize) -> Result<Record, String> {
    if payload.len() > max_record_bytes {
        return Err(format!(
            "message is {} bytes, over the {max_record_bytes}-byte limit (--max-record-bytes)",
            payload.len()
        ));
    }
    let text = std::str::from_utf8(payload)
        .map_err(|e| format!("not UTF-8: invalid byte at offset {}", e.valid_up_to()))?;
    jsonl::parse_record(text).map_err(|e| e.to_string())
}

/// An output record as a message payload: the input form, so that pipelines chain.
pub fn encode_record(record: &Record) -> Vec<u8> {
    jsonl::record_line(record).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position() -> Position {
        Position {
            stream: "records".to_owned(),
            sequence: 42,
            deliveries: 1,
        }
    }

    #[test]
    fn ids_depend_on_the_input_and_the_index_only() {
        let mut redelivered = position();
        redelivered.deliveries = 3;
        assert_eq!(output_id(&position(), 1), output_id(&redelivered, 1));
        assert_ne!(output_id(&position(), 0), output_id(&position(), 1));
        assert_ne!(dead_letter_id(&position()), dropped_id(&position()));
    }

    #[test]
    fn jetstream_instructions_of_an_input_are_not_forwarded() {
        let headers = vec![
            ("Nats-Msg-Id".to_owned(), "x".to_owned()),
            ("nats-expected-stream".to_owned(), "nope".to_owned()),
            ("Trace-Id".to_owned(), "t-1".to_owned()),
        ];
        assert_eq!(
            forwarded_headers(&headers),
            vec![("Trace-Id".to_owned(), "t-1".to_owned())]
        );
    }

    #[test]
    fn header_text_is_one_bounded_line() {
        assert_eq!(header_text("a\r\nb"), "a  b");
        let long = "é".repeat(1000);
        let text = header_text(&long);
        assert!(text.len() <= 1027 && text.ends_with("..."));
    }

    #[test]
    fn bad_payloads_say_what_is_wrong() {
        assert!(
            decode_record(b"{}", 1)
                .expect_err("refused")
                .contains("over the 1-byte limit")
        );
        assert!(
            decode_record(b"{\"key\":\"\xff\"}", 100)
                .expect_err("refused")
                .contains("not UTF-8")
        );
        assert!(
            decode_record(b"[1]", 100)
                .expect_err("refused")
                .contains("JSON object")
        );
        assert!(
            decode_record(b"{\"key\": 1}", 100)
                .expect_err("refused")
                .contains("`key`")
        );
        let record = decode_record(br#"{"key":"k","fields":{"a":1}}"#, 100).expect("a record");
        assert_eq!(encode_record(&record), br#"{"key":"k","fields":{"a":1}}"#);
    }
}
