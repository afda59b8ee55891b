//! The sample rule applied to the flat batch where it lies: values are read as borrowed
//! spans of the batch's text (trimmed by slicing), field names are compared as indices, and
//! only what the rule changes is written to the answer.
//!
//! The steps, messages and codes are those of `rule::apply` (samples/README.md, numbered
//! alike), whose helpers and `Settings` this module uses; the differential tests in
//! `host/cli/tests/all/transform.rs` hold both to identical outcomes.

use crate::bindings::exports::witplug::plugin::transformer::{Answer, Edit, Outcome, RecordError};
use crate::bindings::witplug::plugin::types::{Batch, Cell, Record, Span, Value};
use crate::rule::{self, Settings};

/// A value as the rule sees it after step 1: texts trimmed, all borrowed from the batch.
enum View<'a> {
    Null,
    Boolean(bool),
    Integer(i64),
    Float(f64),
    Text(&'a str),
    Bytes(&'a [u8]),
    TextList(Vec<&'a str>),
}

fn slice<T>(all: &[T], span: Span) -> &[T] {
    let start = span.start as usize;
    all.get(start..start.saturating_add(span.len as usize))
        .unwrap_or(&[])
}

fn text_at(text: &str, span: Span) -> &str {
    let start = span.start as usize;
    text.get(start..start.saturating_add(span.len as usize))
        .unwrap_or("")
}

/// Step 1 for one cell: texts and text-list items trimmed.
fn view<'a>(batch: &'a Batch, value: &Value) -> View<'a> {
    match *value {
        Value::Null => View::Null,
        Value::Boolean(b) => View::Boolean(b),
        Value::Integer(i) => View::Integer(i),
        Value::Float(f) => View::Float(f),
        Value::Text(span) => View::Text(rule::trim(text_at(&batch.text, span))),
        Value::Bytes(span) => View::Bytes(slice(&batch.bytes, span)),
        Value::TextList(span) => View::TextList(
            slice(&batch.items, span)
                .iter()
                .map(|&item| rule::trim(text_at(&batch.text, item)))
                .collect(),
        ),
    }
}

/// The batch's name index of each configured field, found once per batch (`None`: no
/// record of the batch has it). The host names each field once per batch.
pub struct Fields<'s> {
    email: Option<u32>,
    required: Vec<(&'s str, Option<u32>)>,
}

impl<'s> Fields<'s> {
    pub fn new(settings: &'s Settings, batch: &Batch) -> Self {
        let index = |name: &str| batch.names.iter().position(|n| n == name).map(|i| i as u32);
        Fields {
            email: index(&settings.email_field),
            required: settings
                .required_fields
                .iter()
                .map(|name| (name.as_str(), index(name)))
                .collect(),
        }
    }
}

/// The answer to one batch, written record by record.
pub struct Writer<'b> {
    batch: &'b Batch,
    answer: Answer,
    /// The views of the record being processed, reused from record to record.
    views: Vec<View<'b>>,
}

impl<'b> Writer<'b> {
    pub fn new(batch: &'b Batch) -> Self {
        Self {
            batch,
            answer: Answer {
                outcomes: Vec::with_capacity(batch.records.len()),
                edits: Vec::new(),
                names: Vec::new(),
                text: String::with_capacity(batch.text.len() / 4),
                bytes: Vec::new(),
                items: Vec::new(),
                cells: Vec::new(),
                records: Vec::new(),
            },
            views: Vec::new(),
        }
    }

    pub fn finish(self) -> Answer {
        self.answer
    }

    /// Applies the rule to input record `index` and writes its outcome.
    pub fn apply(&mut self, settings: &Settings, fields: &Fields, index: usize) {
        let mut views = std::mem::take(&mut self.views);
        self.apply_with(&mut views, settings, fields, index);
        views.clear();
        self.views = views;
    }

    fn apply_with(
        &mut self,
        views: &mut Vec<View<'b>>,
        settings: &Settings,
        fields: &Fields,
        index: usize,
    ) {
        let batch = self.batch;
        let Some(record) = batch.records.get(index) else {
            return;
        };
        let cells = slice(
            &batch.cells,
            Span {
                start: record.first,
                len: record.count,
            },
        );
        let email = settings.email_field.as_str();
        let find = |name: Option<u32>| name.and_then(|n| cells.iter().position(|c| c.name == n));

        // 1. Trim every text value and every text-list element.
        views.extend(cells.iter().map(|cell| view(batch, &cell.value)));
        let views = views.as_slice();

        // 2. Required fields, in configured order.
        for &(name, index) in &fields.required {
            let present = match find(index).map(|k| &views[k]) {
                None | Some(View::Null) => false,
                Some(View::Text(text)) => !text.is_empty(),
                Some(View::TextList(items)) => !items.is_empty(),
                Some(_) => true,
            };
            if !present {
                return self.push(Outcome::Drop(format!("missing required field `{name}`")));
            }
        }

        // 3 and 4. The email field's kind; `position` is where the addresses go back.
        let Some(position) = find(fields.email) else {
            return self.keep(index, cells, &views, None);
        };
        let addresses: Vec<String> = match &views[position] {
            View::Null => return self.keep(index, cells, &views, None),
            // 5. Collect the addresses.
            View::Text(text) => rule::normalize_addresses(text.split([',', ';'])),
            View::TextList(items) => rule::normalize_addresses(items.iter().copied()),
            View::Boolean(_) => return self.invalid_type(email, "boolean"),
            View::Integer(_) => return self.invalid_type(email, "integer"),
            View::Float(_) => return self.invalid_type(email, "float"),
            View::Bytes(_) => return self.invalid_type(email, "bytes"),
        };
        if addresses.is_empty() {
            return self.push(Outcome::Drop(format!("field `{email}` holds no address")));
        }

        // 6. Every address must be valid; the first invalid one is reported.
        if let Some(invalid) = addresses.iter().find(|a| !rule::is_valid_email(a)) {
            return self.push(Outcome::Error(RecordError {
                code: "invalid-email".to_owned(),
                message: format!("field `{email}`: `{invalid}` is not a valid email address"),
            }));
        }

        // 7. Remove blocked domains.
        let held = addresses.len();
        let remaining = match rule::without_blocked(settings, addresses) {
            Ok(remaining) => remaining,
            Err(reason) => return self.push(Outcome::Drop(reason)),
        };

        // 8. Keep a single untouched address; otherwise one record per remaining address.
        if let ([address], 1) = (remaining.as_slice(), held) {
            return self.keep(index, cells, &views, Some((position, address)));
        }
        let start = self.answer.records.len() as u32;
        for address in &remaining {
            self.copy(record.key, cells, &views, position, address);
        }
        self.push(Outcome::Split(Span {
            start,
            len: remaining.len() as u32,
        }));
    }

    fn push(&mut self, outcome: Outcome) {
        self.answer.outcomes.push(outcome);
    }

    fn invalid_type(&mut self, email: &str, kind: &str) {
        self.push(Outcome::Error(RecordError {
            code: "invalid-type".to_owned(),
            message: format!("field `{email}` must be text, found {kind}"),
        }));
    }

    /// `keep`, with an edit of every cell whose value changed (and of the email cell, to
    /// the address, when one is given).
    fn keep(&mut self, index: usize, cells: &[Cell], views: &[View], email: Option<(usize, &str)>) {
        for (k, (cell, view)) in cells.iter().zip(views).enumerate() {
            let address;
            let out = match email {
                Some((position, text)) if position == k => {
                    address = View::Text(text);
                    &address
                }
                _ => view,
            };
            if !self.unchanged(&cell.value, out) {
                let value = self.value(out);
                self.answer.edits.push(Edit {
                    record: index as u32,
                    cell: k as u32,
                    value,
                });
            }
        }
        self.push(Outcome::Keep);
    }

    /// Appends a copy of the record with `address` as its email to the answer's records.
    fn copy(&mut self, key: Span, cells: &[Cell], views: &[View], position: usize, address: &str) {
        let key = self.text(text_at(&self.batch.text, key));
        let first = self.answer.cells.len() as u32;
        for (k, (cell, view)) in cells.iter().zip(views).enumerate() {
            let value = if k == position {
                self.value(&View::Text(address))
            } else {
                self.value(view)
            };
            // The batch's names, by index: the answer's names continue them.
            self.answer.cells.push(Cell {
                name: cell.name,
                value,
            });
        }
        self.answer.records.push(Record {
            key,
            first,
            count: cells.len() as u32,
        });
    }

    /// Whether `out` is what the batch's `input` holds.
    fn unchanged(&self, input: &Value, out: &View) -> bool {
        let batch = self.batch;
        match (*input, out) {
            (Value::Null, View::Null) => true,
            (Value::Boolean(a), View::Boolean(b)) => a == *b,
            (Value::Integer(a), View::Integer(b)) => a == *b,
            (Value::Float(a), View::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Text(span), View::Text(text)) => text_at(&batch.text, span) == *text,
            (Value::Bytes(span), View::Bytes(bytes)) => slice(&batch.bytes, span) == *bytes,
            (Value::TextList(span), View::TextList(list)) => {
                let items = slice(&batch.items, span);
                items.len() == list.len()
                    && items
                        .iter()
                        .zip(list)
                        .all(|(&item, text)| text_at(&batch.text, item) == *text)
            }
            _ => false,
        }
    }

    fn text(&mut self, text: &str) -> Span {
        let start = self.answer.text.len() as u32;
        self.answer.text.push_str(text);
        Span {
            start,
            len: text.len() as u32,
        }
    }

    fn value(&mut self, view: &View) -> Value {
        match view {
            View::Null => Value::Null,
            View::Boolean(b) => Value::Boolean(*b),
            View::Integer(i) => Value::Integer(*i),
            View::Float(f) => Value::Float(*f),
            View::Text(text) => Value::Text(self.text(text)),
            View::Bytes(bytes) => {
                let start = self.answer.bytes.len() as u32;
                self.answer.bytes.extend_from_slice(bytes);
                Value::Bytes(Span {
                    start,
                    len: bytes.len() as u32,
                })
            }
            View::TextList(list) => {
                let start = self.answer.items.len() as u32;
                for item in list {
                    let span = self.text(item);
                    self.answer.items.push(span);
                }
                Value::TextList(Span {
                    start,
                    len: list.len() as u32,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: u32, len: u32) -> Span {
        Span { start, len }
    }

    /// Record `k`: `email` = `text[email]`, `plan` = " pro ".
    fn batch(email: &str) -> Batch {
        let text = format!("k pro {email}");
        Batch {
            names: vec!["email".into(), "plan".into()],
            bytes: Vec::new(),
            items: Vec::new(),
            cells: vec![
                Cell {
                    name: 0,
                    value: Value::Text(span(6, email.len() as u32)),
                },
                Cell {
                    name: 1,
                    value: Value::Text(span(1, 5)),
                },
            ],
            records: vec![Record {
                key: span(0, 1),
                first: 0,
                count: 2,
            }],
            text,
        }
    }

    fn run(batch: &Batch, settings: &Settings) -> Answer {
        let fields = Fields::new(settings, batch);
        let mut writer = Writer::new(batch);
        writer.apply(settings, &fields, 0);
        writer.finish()
    }

    #[test]
    fn a_kept_record_is_answered_with_edits_of_what_changed_only() {
        let batch = batch("A@B.org");
        let answer = run(&batch, &Settings::new(None, None, None));
        assert_eq!(answer.outcomes, [Outcome::Keep]);
        // The address lowercased, " pro " trimmed; nothing else.
        let edited: Vec<(u32, &str)> = answer
            .edits
            .iter()
            .map(|edit| match edit.value {
                Value::Text(s) => (edit.cell, text_at(&answer.text, s)),
                _ => panic!("a text edit"),
            })
            .collect();
        assert_eq!(edited, [(0, "a@b.org"), (1, "pro")]);
        assert!(answer.records.is_empty());
    }

    #[test]
    fn several_addresses_split_into_copies_of_the_record() {
        let batch = batch("a@b.org; C@d.org; e@spam.example");
        let settings = Settings::new(None, None, Some("spam.example".into()));
        let answer = run(&batch, &settings);
        assert_eq!(answer.outcomes, [Outcome::Split(span(0, 2))]);
        assert!(answer.edits.is_empty());
        let email = |r: &Record| match answer.cells[r.first as usize].value {
            Value::Text(s) => text_at(&answer.text, s),
            _ => panic!("text"),
        };
        assert_eq!(email(&answer.records[0]), "a@b.org");
        assert_eq!(email(&answer.records[1]), "c@d.org");
        assert_eq!(text_at(&answer.text, answer.records[1].key), "k");
    }

    #[test]
    fn outcomes_and_messages_are_those_of_the_rule() {
        let settings = Settings::new(None, None, Some("b.org".into()));
        let answer = run(&batch("x@b.org"), &settings);
        assert_eq!(
            answer.outcomes,
            [Outcome::Drop("email domain `b.org` is blocked".into())]
        );
        let answer = run(&batch("not an address"), &settings);
        assert_eq!(
            answer.outcomes,
            [Outcome::Error(RecordError {
                code: "invalid-email".into(),
                message: "field `email`: `not an address` is not a valid email address".into(),
            })]
        );
        let required = Settings::new(None, Some("email, seats".into()), None);
        let answer = run(&batch("a@b.org"), &required);
        assert_eq!(
            answer.outcomes,
            [Outcome::Drop("missing required field `seats`".into())]
        );
    }
}
