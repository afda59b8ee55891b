//! Reading a flat batch into [`Record`]s and writing outcomes as a flat answer.
//!
//! The host checks every span and index of the answer; the batch it sends is well formed,
//! so reading it out of range is a host bug, answered here with empty values rather than a
//! trap.

use crate::bindings::exports::witplug::plugin::transformer::{
    Answer, Edit, Outcome as FlatOutcome, RecordError as FlatRecordError,
};
use crate::bindings::witplug::plugin::types::{
    Batch, Cell, Record as FlatRecord, Span, Value as FlatValue,
};
use crate::model::{Field, Outcome, Record, Value};

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

fn cells_of<'a>(batch: &'a Batch, record: &FlatRecord) -> &'a [Cell] {
    slice(
        &batch.cells,
        Span {
            start: record.first,
            len: record.count,
        },
    )
}

/// The batch's records, one at a time, as the rule takes them.
pub fn records(batch: &Batch) -> impl Iterator<Item = Record> + '_ {
    batch.records.iter().map(|record| Record {
        key: text_at(&batch.text, record.key).to_owned(),
        fields: cells_of(batch, record)
            .iter()
            .map(|cell| Field {
                name: batch
                    .names
                    .get(cell.name as usize)
                    .cloned()
                    .unwrap_or_default(),
                value: value(batch, &cell.value),
            })
            .collect(),
    })
}

fn value(batch: &Batch, value: &FlatValue) -> Value {
    match *value {
        FlatValue::Null => Value::Null,
        FlatValue::Boolean(b) => Value::Boolean(b),
        FlatValue::Integer(i) => Value::Integer(i),
        FlatValue::Float(f) => Value::Float(f),
        FlatValue::Text(span) => Value::Text(text_at(&batch.text, span).to_owned()),
        FlatValue::Bytes(span) => Value::Bytes(slice(&batch.bytes, span).to_vec()),
        FlatValue::TextList(span) => Value::TextList(
            slice(&batch.items, span)
                .iter()
                .map(|&item| text_at(&batch.text, item).to_owned())
                .collect(),
        ),
    }
}

/// Whether the rule left `value` as the batch's `input` had it.
fn unchanged(batch: &Batch, input: &FlatValue, value: &Value) -> bool {
    match (*input, value) {
        (FlatValue::Null, Value::Null) => true,
        (FlatValue::Boolean(a), Value::Boolean(b)) => a == *b,
        (FlatValue::Integer(a), Value::Integer(b)) => a == *b,
        (FlatValue::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
        (FlatValue::Text(span), Value::Text(text)) => text_at(&batch.text, span) == text,
        (FlatValue::Bytes(span), Value::Bytes(bytes)) => slice(&batch.bytes, span) == bytes,
        (FlatValue::TextList(span), Value::TextList(list)) => {
            let items = slice(&batch.items, span);
            items.len() == list.len()
                && items
                    .iter()
                    .zip(list)
                    .all(|(&item, text)| text_at(&batch.text, item) == text)
        }
        _ => false,
    }
}

/// The answer to one batch, written outcome by outcome.
pub struct AnswerWriter<'a> {
    batch: &'a Batch,
    answer: Answer,
}

impl<'a> AnswerWriter<'a> {
    pub fn new(batch: &'a Batch) -> Self {
        Self {
            batch,
            answer: Answer {
                outcomes: Vec::with_capacity(batch.records.len()),
                edits: Vec::new(),
                names: Vec::new(),
                text: String::new(),
                bytes: Vec::new(),
                items: Vec::new(),
                cells: Vec::new(),
                records: Vec::new(),
            },
        }
    }

    /// Adds the outcome of input record `index`.
    pub fn push(&mut self, index: usize, outcome: Outcome) {
        let outcome = match outcome {
            Outcome::Keep(record) => self.keep(index, record),
            Outcome::Drop(reason) => FlatOutcome::Drop(reason),
            Outcome::Split(records) => {
                let start = self.answer.records.len() as u32;
                let len = records.len() as u32;
                for record in records {
                    self.record(record);
                }
                FlatOutcome::Split(Span { start, len })
            }
            Outcome::Error(error) => FlatOutcome::Error(FlatRecordError {
                code: error.code,
                message: error.message,
            }),
        };
        self.answer.outcomes.push(outcome);
    }

    pub fn finish(self) -> Answer {
        self.answer
    }

    /// `keep` with edits when the record has the fields it came with, else `keep-as`.
    fn keep(&mut self, index: usize, record: Record) -> FlatOutcome {
        let batch = self.batch;
        let cells = batch
            .records
            .get(index)
            .map_or(&[][..], |input| cells_of(batch, input));
        let same_fields = cells.len() == record.fields.len()
            && cells.iter().zip(&record.fields).all(|(cell, field)| {
                batch.names.get(cell.name as usize).map(String::as_str) == Some(&field.name)
            });
        if !same_fields {
            return FlatOutcome::KeepAs(self.record(record));
        }
        for (k, (cell, field)) in cells.iter().zip(&record.fields).enumerate() {
            if !unchanged(batch, &cell.value, &field.value) {
                let value = self.value(&field.value);
                self.answer.edits.push(Edit {
                    record: index as u32,
                    cell: k as u32,
                    value,
                });
            }
        }
        FlatOutcome::Keep
    }

    /// Appends `record` to the answer's records; returns its index.
    fn record(&mut self, record: Record) -> u32 {
        let key = self.text(&record.key);
        let first = self.answer.cells.len() as u32;
        let count = record.fields.len() as u32;
        for field in &record.fields {
            let cell = Cell {
                name: self.name(&field.name),
                value: self.value(&field.value),
            };
            self.answer.cells.push(cell);
        }
        self.answer.records.push(FlatRecord { key, first, count });
        self.answer.records.len() as u32 - 1
    }

    /// The batch's index of `name`, or the answer's (counted after the batch's).
    fn name(&mut self, name: &str) -> u32 {
        let names = &self.batch.names;
        if let Some(index) = names.iter().position(|n| n == name) {
            return index as u32;
        }
        let own = match self.answer.names.iter().position(|n| n == name) {
            Some(own) => own,
            None => {
                self.answer.names.push(name.to_owned());
                self.answer.names.len() - 1
            }
        };
        (names.len() + own) as u32
    }

    fn text(&mut self, text: &str) -> Span {
        let start = self.answer.text.len() as u32;
        self.answer.text.push_str(text);
        Span {
            start,
            len: text.len() as u32,
        }
    }

    fn value(&mut self, value: &Value) -> FlatValue {
        match value {
            Value::Null => FlatValue::Null,
            Value::Boolean(b) => FlatValue::Boolean(*b),
            Value::Integer(i) => FlatValue::Integer(*i),
            Value::Float(f) => FlatValue::Float(*f),
            Value::Text(text) => FlatValue::Text(self.text(text)),
            Value::Bytes(bytes) => {
                let start = self.answer.bytes.len() as u32;
                self.answer.bytes.extend_from_slice(bytes);
                FlatValue::Bytes(Span {
                    start,
                    len: bytes.len() as u32,
                })
            }
            Value::TextList(list) => {
                let start = self.answer.items.len() as u32;
                for item in list {
                    let span = self.text(item);
                    self.answer.items.push(span);
                }
                FlatValue::TextList(Span {
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

    /// One record `k` with `email` = " A@B.org " and `tags` = ["x"].
    fn batch() -> Batch {
        Batch {
            names: vec!["email".into(), "tags".into()],
            text: "k A@B.org x".into(),
            bytes: Vec::new(),
            items: vec![span(10, 1)],
            cells: vec![
                Cell {
                    name: 0,
                    value: FlatValue::Text(span(1, 9)),
                },
                Cell {
                    name: 1,
                    value: FlatValue::TextList(span(0, 1)),
                },
            ],
            records: vec![FlatRecord {
                key: span(0, 1),
                first: 0,
                count: 2,
            }],
        }
    }

    fn field(name: &str, value: Value) -> Field {
        Field {
            name: name.into(),
            value,
        }
    }

    fn input() -> Record {
        Record {
            key: "k".into(),
            fields: vec![
                field("email", Value::Text(" A@B.org ".into())),
                field("tags", Value::TextList(vec!["x".into()])),
            ],
        }
    }

    #[test]
    fn the_batch_reads_back_as_the_records_it_holds() {
        let batch = batch();
        assert_eq!(records(&batch).collect::<Vec<_>>(), [input()]);
    }

    #[test]
    fn an_unchanged_record_is_kept_without_edits() {
        let batch = batch();
        let mut answer = AnswerWriter::new(&batch);
        answer.push(0, Outcome::Keep(input()));
        let answer = answer.finish();
        assert_eq!(answer.outcomes, [FlatOutcome::Keep]);
        assert!(answer.edits.is_empty() && answer.records.is_empty());
    }

    #[test]
    fn a_changed_value_is_an_edit_and_a_changed_field_list_is_keep_as() {
        let batch = batch();
        let mut answer = AnswerWriter::new(&batch);
        let mut edited = input();
        edited.fields[0].value = Value::Text("a@b.org".into());
        answer.push(0, Outcome::Keep(edited));
        let answer = answer.finish();
        assert_eq!(answer.outcomes, [FlatOutcome::Keep]);
        assert_eq!(
            answer.edits,
            [Edit {
                record: 0,
                cell: 0,
                value: FlatValue::Text(span(0, 7)),
            }]
        );
        assert_eq!(answer.text, "a@b.org");

        let mut answer = AnswerWriter::new(&batch);
        let mut grown = input();
        grown.fields.push(field("seen", Value::Boolean(true)));
        answer.push(0, Outcome::Keep(grown));
        let answer = answer.finish();
        assert_eq!(answer.outcomes, [FlatOutcome::KeepAs(0)]);
        assert_eq!(answer.names, ["seen"]);
        assert_eq!(
            answer.cells[2].name, 2,
            "`seen` is the first name after the batch's two"
        );
        assert!(answer.edits.is_empty());
    }

    #[test]
    fn a_split_is_a_span_of_the_answers_records() {
        let batch = batch();
        let mut answer = AnswerWriter::new(&batch);
        answer.push(0, Outcome::Split(vec![input(), input(), input()]));
        let answer = answer.finish();
        assert_eq!(answer.outcomes, [FlatOutcome::Split(span(0, 3))]);
        assert_eq!(answer.records.len(), 3);
        assert_eq!(answer.records[2].first, 4);
        assert!(answer.names.is_empty(), "the batch's names are reused");
    }
}
