//! Arbitrary record batches and configuration through the Rust `email-normalizer` plugin,
//! checked against the same rule run natively.
//!
//! The input is a batch of records (a small mirror of the WIT `record`, with every `value`
//! case) and the three configuration values of the rule, all built from pieces of a small
//! alphabet (field names, `@`, `.`, separators, the four trimmed whitespace characters,
//! upper case, non-ASCII look-alikes, blocked domains…) so that they meet the rule's
//! branches often; any other character can still appear.
//!
//! The batch goes to `target/guests/rust-email-normalizer.wasm` through
//! `TransformPlugin::process_batch` (lowered and lifted by wasmtime and witplug), and to
//! the same rule compiled natively from the guest's source (`witplug_fuzz::rule`, no
//! boundary at all). Both must give the same outcomes, field by field; NaN floats compare
//! equal whatever their payload (the canonical ABI does not promise to keep it). An `Err`
//! from the plugin is a finding too: this rule has no input it may fail on.

#![no_main]

use std::sync::Mutex;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use witplug::worlds::transform::Outcome;
use witplug::{LoadedComponent, Plugin, PluginConfig, PluginOptions, TransformPlugin};
use witplug_fuzz::exports::witplug::plugin::transformer as guest_out;
use witplug_fuzz::witplug::plugin::types as guest;
use witplug_fuzz::{executor, guest_path, rule, runtime};

// ---------------------------------------------------------------------------------------
// The fuzz input.

/// Pieces text is made of. The rule's own vocabulary comes first.
const TOKENS: &[&str] = &[
    "email",
    "mail",
    "name",
    "plan",
    "Email",
    "a",
    "B",
    "z",
    "0",
    "9",
    "@",
    ".",
    ",",
    ";",
    " ",
    "\t",
    "\n",
    "\r",
    "-",
    "_",
    "+",
    "!",
    "~",
    "`",
    "{",
    "|",
    "(",
    "\"",
    "\\",
    "\u{0}",
    "\u{b}",
    "\u{a0}",
    "\u{2003}",
    "é",
    "É",
    "ß",
    "İ",
    "\u{212a}", // KELVIN SIGN: lowercases to ASCII `k` under Unicode rules, not ASCII ones.
    "ａ",
    "spam.com",
    "SPAM.com",
    "Junk.ORG",
    "ok.io",
    "x-1.y2",
    "-x.io",
    "a..b",
    "@@",
    "a@b.co",
    " Ada@Example.COM\t",
    "mail.spam.com",
];

#[derive(Arbitrary, Debug)]
enum Piece {
    Token(u8),
    Char(char),
}

/// A string made of [`Piece`]s.
#[derive(Arbitrary, Debug)]
struct Text(Vec<Piece>);

impl Text {
    fn render(&self) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Token(i) => out.push_str(TOKENS[usize::from(*i) % TOKENS.len()]),
                Piece::Char(c) => out.push(*c),
            }
        }
        out
    }
}

/// A field name: mostly the ones the configuration can name.
#[derive(Arbitrary, Debug)]
enum FieldName {
    Email,
    Mail,
    Name,
    Plan,
    Other(Text),
}

impl FieldName {
    fn render(&self) -> String {
        match self {
            FieldName::Email => "email".to_owned(),
            FieldName::Mail => "mail".to_owned(),
            FieldName::Name => "name".to_owned(),
            FieldName::Plan => "plan".to_owned(),
            FieldName::Other(text) => text.render(),
        }
    }
}

/// The WIT `value` variant.
#[derive(Arbitrary, Debug)]
enum FuzzValue {
    Null,
    Boolean(bool),
    Integer(i64),
    Float(f64),
    Text(Text),
    Bytes(Vec<u8>),
    TextList(Vec<Text>),
}

#[derive(Arbitrary, Debug)]
struct FuzzRecord {
    key: Text,
    fields: Vec<(FieldName, FuzzValue)>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// `email-field`; `None` leaves it unset.
    email_field: Option<FieldName>,
    /// `required-fields`; its pieces include the names and `,`.
    required_fields: Option<Text>,
    /// `blocked-domains`; its pieces include domains and `,`.
    blocked_domains: Option<Text>,
    batch: Vec<FuzzRecord>,
}

// ---------------------------------------------------------------------------------------
// A field value in plain Rust, rendered once and turned into either side's types.

#[derive(Clone, Debug, PartialEq)]
enum Plain {
    Null,
    Boolean(bool),
    Integer(i64),
    Float(F64),
    Text(String),
    Bytes(Vec<u8>),
    TextList(Vec<String>),
}

/// An `f64` whose NaNs are all equal; other values compare by bit pattern (so `0.0 != -0.0`).
#[derive(Clone, Copy, Debug)]
struct F64(f64);

impl PartialEq for F64 {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits() || (self.0.is_nan() && other.0.is_nan())
    }
}

#[derive(Clone, Debug, PartialEq)]
struct PlainRecord {
    key: String,
    fields: Vec<(String, Plain)>,
}

#[derive(Debug, PartialEq)]
enum PlainOutcome {
    Keep(PlainRecord),
    Drop(String),
    Split(Vec<PlainRecord>),
    Error { code: String, message: String },
}

impl FuzzValue {
    fn render(&self) -> Plain {
        match self {
            FuzzValue::Null => Plain::Null,
            FuzzValue::Boolean(b) => Plain::Boolean(*b),
            FuzzValue::Integer(i) => Plain::Integer(*i),
            FuzzValue::Float(f) => Plain::Float(F64(*f)),
            FuzzValue::Text(text) => Plain::Text(text.render()),
            FuzzValue::Bytes(bytes) => Plain::Bytes(bytes.clone()),
            FuzzValue::TextList(items) => Plain::TextList(items.iter().map(Text::render).collect()),
        }
    }
}

impl FuzzRecord {
    fn render(&self) -> PlainRecord {
        PlainRecord {
            key: self.key.render(),
            fields: self
                .fields
                .iter()
                .map(|(name, value)| (name.render(), value.render()))
                .collect(),
        }
    }
}

// Into witplug's (host) types, and back.

fn to_host(record: &PlainRecord) -> witplug::Record {
    use witplug::Value;
    witplug::Record {
        key: record.key.clone(),
        fields: record
            .fields
            .iter()
            .map(|(name, value)| witplug::Field {
                name: name.clone(),
                value: match value {
                    Plain::Null => Value::Null,
                    Plain::Boolean(b) => Value::Boolean(*b),
                    Plain::Integer(i) => Value::Integer(*i),
                    Plain::Float(f) => Value::Float(f.0),
                    Plain::Text(s) => Value::Text(s.clone()),
                    Plain::Bytes(b) => Value::Bytes(b.clone()),
                    Plain::TextList(l) => Value::TextList(l.clone()),
                },
            })
            .collect(),
    }
}

fn from_host_record(record: witplug::Record) -> PlainRecord {
    use witplug::Value;
    PlainRecord {
        key: record.key,
        fields: record
            .fields
            .into_iter()
            .map(|field| {
                let value = match field.value {
                    Value::Null => Plain::Null,
                    Value::Boolean(b) => Plain::Boolean(b),
                    Value::Integer(i) => Plain::Integer(i),
                    Value::Float(f) => Plain::Float(F64(f)),
                    Value::Text(s) => Plain::Text(s),
                    Value::Bytes(b) => Plain::Bytes(b),
                    Value::TextList(l) => Plain::TextList(l),
                };
                (field.name, value)
            })
            .collect(),
    }
}

fn from_host(outcome: Outcome) -> PlainOutcome {
    match outcome {
        Outcome::Keep(record) => PlainOutcome::Keep(from_host_record(record)),
        Outcome::Drop(reason) => PlainOutcome::Drop(reason),
        Outcome::Split(records) => {
            PlainOutcome::Split(records.into_iter().map(from_host_record).collect())
        }
        Outcome::Error(error) => PlainOutcome::Error {
            code: error.code,
            message: error.message,
        },
    }
}

// Into the guest crate's (wit-bindgen) types, and back.

fn to_guest(record: &PlainRecord) -> guest::Record {
    use guest::Value;
    guest::Record {
        key: record.key.clone(),
        fields: record
            .fields
            .iter()
            .map(|(name, value)| guest::Field {
                name: name.clone(),
                value: match value {
                    Plain::Null => Value::Null,
                    Plain::Boolean(b) => Value::Boolean(*b),
                    Plain::Integer(i) => Value::Integer(*i),
                    Plain::Float(f) => Value::Float(f.0),
                    Plain::Text(s) => Value::Text(s.clone()),
                    Plain::Bytes(b) => Value::Bytes(b.clone()),
                    Plain::TextList(l) => Value::TextList(l.clone()),
                },
            })
            .collect(),
    }
}

fn from_guest_record(record: guest::Record) -> PlainRecord {
    use guest::Value;
    PlainRecord {
        key: record.key,
        fields: record
            .fields
            .into_iter()
            .map(|field| {
                let value = match field.value {
                    Value::Null => Plain::Null,
                    Value::Boolean(b) => Plain::Boolean(b),
                    Value::Integer(i) => Plain::Integer(i),
                    Value::Float(f) => Plain::Float(F64(f)),
                    Value::Text(s) => Plain::Text(s),
                    Value::Bytes(b) => Plain::Bytes(b),
                    Value::TextList(l) => Plain::TextList(l),
                };
                (field.name, value)
            })
            .collect(),
    }
}

fn from_guest(outcome: guest_out::Outcome) -> PlainOutcome {
    use guest_out::Outcome;
    match outcome {
        Outcome::Keep(record) => PlainOutcome::Keep(from_guest_record(record)),
        Outcome::Drop(reason) => PlainOutcome::Drop(reason),
        Outcome::Split(records) => {
            PlainOutcome::Split(records.into_iter().map(from_guest_record).collect())
        }
        Outcome::Error(error) => PlainOutcome::Error {
            code: error.code,
            message: error.message,
        },
    }
}

// ---------------------------------------------------------------------------------------
// The plugin, compiled once and linked once per configuration.

type Config = (Option<String>, Option<String>, Option<String>);

/// The plugin for a configuration. Configurations repeat a lot (most are unset or made of
/// a few pieces), so the last few plugins are kept: linking is the costly part of a run.
async fn plugin(config: &Config) -> TransformPlugin {
    static COMPONENT: std::sync::OnceLock<LoadedComponent> = std::sync::OnceLock::new();
    static PLUGINS: Mutex<Vec<(Config, TransformPlugin)>> = Mutex::new(Vec::new());
    const KEPT: usize = 64;

    if let Some((_, plugin)) = PLUGINS
        .lock()
        .expect("plugin cache")
        .iter()
        .find(|(c, _)| c == config)
    {
        return plugin.clone();
    }
    let component = COMPONENT.get_or_init(|| {
        LoadedComponent::from_file(runtime(), guest_path("rust-email-normalizer"))
            .expect("rust-email-normalizer.wasm loads")
    });
    let mut plugin_config = PluginConfig::new();
    let (email_field, required_fields, blocked_domains) = config;
    for (key, value) in [
        ("email-field", email_field),
        ("required-fields", required_fields),
        ("blocked-domains", blocked_domains),
    ] {
        if let Some(value) = value {
            plugin_config = plugin_config.set(key, value.clone());
        }
    }
    let options = PluginOptions::default().config(plugin_config);
    let plugin = Plugin::new(runtime(), component, options)
        .await
        .map(TransformPlugin::from)
        .expect("rust-email-normalizer links as a transform plugin");
    let mut plugins = PLUGINS.lock().expect("plugin cache");
    if plugins.len() == KEPT {
        plugins.remove(0);
    }
    plugins.push((config.clone(), plugin.clone()));
    plugin
}

fuzz_target!(|input: Input| {
    let config: Config = (
        input.email_field.as_ref().map(FieldName::render),
        input.required_fields.as_ref().map(Text::render),
        input.blocked_domains.as_ref().map(Text::render),
    );
    let batch: Vec<PlainRecord> = input.batch.iter().map(FuzzRecord::render).collect();

    // The reference: the rule compiled natively, configured as the guest configures it.
    let settings = rule::Settings::new(config.0.clone(), config.1.clone(), config.2.clone());
    let expected: Vec<PlainOutcome> = batch
        .iter()
        .map(|record| from_guest(rule::apply(&settings, to_guest(record))))
        .collect();

    // The plugin, through wasmtime and witplug.
    let host_batch: Vec<witplug::Record> = batch.iter().map(to_host).collect();
    let outcomes = executor().block_on(async {
        plugin(&config)
            .await
            .process_batch(&host_batch)
            .await
            .unwrap_or_else(|error| panic!("process_batch failed: {error}\n{error:?}"))
    });
    let actual: Vec<PlainOutcome> = outcomes.into_iter().map(from_host).collect();

    assert_eq!(actual.len(), expected.len(), "one outcome per record");
    for (i, (actual, expected)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(
            actual,
            expected,
            "record {i} of {}: plugin (left) and native rule (right) differ\n\
             record: {:?}\nconfig: {config:?}",
            batch.len(),
            batch[i]
        );
    }
});
