//! The `shapes` group: the candidate record shapes for transform@0.2.0
//! (`benches/shapes-wit`, guest `guest-rust/shapes`), each through bare wasmtime, side by
//! side with the native rule and with each other in every round.
//!
//! For the lean shapes the host's own work is timed with the call: building the batch from
//! witplug's `Record`s, and applying the answer's edits to copies of the inputs. 0.1.0's
//! shape needs neither (its records are the bindings' type), so only its call is timed.

use std::time::Duration;

use ::witplug::{Field, Record, Value};
use wasmtime::Store;
use wasmtime::component::{Component, Linker};

use super::{Bare, Table, bare_engine, bare_linker, guest, round_percent};

mod bindings {
    wasmtime::component::bindgen!({
        world: "shapes",
        path: "benches/shapes-wit",
        exports: { default: async },
    });
}

use bindings::exports::witplug_bench::shapes::{flat, nested, rows, tagged};

/// What `touch` does, natively: the guest receives an owned copy of the batch, so does this.
fn native_touch(batch: &[Record]) -> Vec<Record> {
    batch
        .iter()
        .cloned()
        .map(|mut record| {
            if let Some(field) = record.fields.iter_mut().find(|f| f.name == "email")
                && let Value::Text(text) = &mut field.value
            {
                *text = text.trim().to_ascii_lowercase();
            }
            record
        })
        .collect()
}

fn to_nested(batch: &[Record]) -> Vec<nested::Item> {
    batch
        .iter()
        .map(|r| nested::Item {
            key: r.key.clone(),
            fields: r
                .fields
                .iter()
                .map(|f| nested::Field {
                    name: f.name.clone(),
                    value: match &f.value {
                        Value::Text(s) => nested::Value::Text(s.clone()),
                        Value::Integer(i) => nested::Value::Integer(*i),
                        _ => nested::Value::Null,
                    },
                })
                .collect(),
        })
        .collect()
}

fn from_nested(outcomes: Vec<nested::Outcome>) -> Vec<Record> {
    outcomes
        .into_iter()
        .filter_map(|outcome| match outcome {
            nested::Outcome::Keep(item) => Some(Record {
                key: item.key,
                fields: item
                    .fields
                    .into_iter()
                    .map(|f| Field {
                        name: f.name,
                        value: match f.value {
                            nested::Value::Text(s) => Value::Text(s),
                            nested::Value::Integer(i) => Value::Integer(i),
                            _ => Value::Null,
                        },
                    })
                    .collect(),
            }),
            _ => None,
        })
        .collect()
}

/// The batch's strings, each appended once to one text; names once per batch.
#[derive(Default)]
struct Arena {
    names: Vec<String>,
    text: String,
}

impl Arena {
    fn text(&mut self, s: &str) -> (u32, u32) {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        (start, s.len() as u32)
    }

    /// Few names per batch: a scan beats hashing.
    fn name(&mut self, name: &str) -> u32 {
        match self.names.iter().position(|n| n == name) {
            Some(i) => i as u32,
            None => {
                self.names.push(name.to_owned());
                (self.names.len() - 1) as u32
            }
        }
    }
}

/// `module::Value` of a lean shape from witplug's `Value` (the sample has text and integers).
macro_rules! lean_value {
    ($shape:ident, $value:expr, $arena:expr) => {
        match $value {
            Value::Text(s) => {
                let (start, len) = $arena.text(s);
                $shape::Value::Text($shape::Span { start, len })
            }
            Value::Integer(i) => $shape::Value::Integer(*i),
            _ => $shape::Value::Null,
        }
    };
}

/// Witplug's `Value` from a lean one whose spans are in `text`.
macro_rules! from_lean_value {
    ($shape:ident, $value:expr, $text:expr) => {
        match $value {
            $shape::Value::Text(span) => {
                let start = span.start as usize;
                Value::Text(
                    $text
                        .get(start..start + span.len as usize)
                        .expect("a span within the answer's text")
                        .to_owned(),
                )
            }
            $shape::Value::Integer(i) => Value::Integer(i),
            _ => Value::Null,
        }
    };
}

fn to_rows(batch: &[Record]) -> rows::Batch {
    let mut arena = Arena::default();
    let rows = batch
        .iter()
        .map(|r| {
            let (start, len) = arena.text(&r.key);
            rows::Row {
                key: rows::Span { start, len },
                cells: r
                    .fields
                    .iter()
                    .map(|f| rows::Cell {
                        name: arena.name(&f.name),
                        value: lean_value!(rows, &f.value, arena),
                    })
                    .collect(),
            }
        })
        .collect();
    rows::Batch {
        names: arena.names,
        text: arena.text,
        bytes: Vec::new(),
        rows,
    }
}

fn from_rows(batch: &[Record], answer: rows::Answer) -> Vec<Record> {
    batch
        .iter()
        .zip(answer.outcomes)
        .filter_map(|(record, outcome)| match outcome {
            rows::Outcome::Keep(edits) => {
                let mut record = record.clone();
                for edit in edits {
                    let field = record
                        .fields
                        .get_mut(edit.cell as usize)
                        .expect("an edit of a cell of the record");
                    field.value = from_lean_value!(rows, edit.value, answer.text);
                }
                Some(record)
            }
            _ => None,
        })
        .collect()
}

fn to_flat(batch: &[Record]) -> flat::Batch {
    let mut arena = Arena::default();
    let mut cells = Vec::with_capacity(batch.iter().map(|r| r.fields.len()).sum());
    let rows = batch
        .iter()
        .map(|r| {
            let (start, len) = arena.text(&r.key);
            let first = cells.len() as u32;
            cells.extend(r.fields.iter().map(|f| flat::Cell {
                name: arena.name(&f.name),
                value: lean_value!(flat, &f.value, arena),
            }));
            flat::Row {
                key: flat::Span { start, len },
                first,
                count: r.fields.len() as u32,
            }
        })
        .collect();
    flat::Batch {
        names: arena.names,
        text: arena.text,
        bytes: Vec::new(),
        cells,
        rows,
    }
}

fn from_flat(batch: &[Record], answer: flat::Answer) -> Vec<Record> {
    let mut out: Vec<Option<Record>> = batch
        .iter()
        .zip(&answer.outcomes)
        .map(|(record, outcome)| matches!(outcome, flat::Outcome::Keep).then(|| record.clone()))
        .collect();
    for edit in answer.edits {
        let field = out
            .get_mut(edit.row as usize)
            .and_then(Option::as_mut)
            .and_then(|record| record.fields.get_mut(edit.cell as usize))
            .expect("an edit of a kept record's cell");
        field.value = from_lean_value!(flat, edit.value, answer.text);
    }
    out.into_iter().flatten().collect()
}

fn tagged_cell(name: u32, value: &Value, arena: &mut Arena) -> tagged::Cell {
    let mut cell = tagged::Cell {
        name,
        kind: tagged::Kind::Null,
        number: 0,
        real: 0.0,
        span: tagged::Span { start: 0, len: 0 },
    };
    match value {
        Value::Text(s) => {
            let (start, len) = arena.text(s);
            cell.kind = tagged::Kind::Text;
            cell.span = tagged::Span { start, len };
        }
        Value::Integer(i) => {
            cell.kind = tagged::Kind::Integer;
            cell.number = *i;
        }
        _ => {}
    }
    cell
}

fn to_tagged(batch: &[Record]) -> tagged::Batch {
    let mut arena = Arena::default();
    let mut cells = Vec::with_capacity(batch.iter().map(|r| r.fields.len()).sum());
    let rows = batch
        .iter()
        .map(|r| {
            let (start, len) = arena.text(&r.key);
            let first = cells.len() as u32;
            for f in &r.fields {
                let name = arena.name(&f.name);
                cells.push(tagged_cell(name, &f.value, &mut arena));
            }
            tagged::Row {
                key: tagged::Span { start, len },
                first,
                count: r.fields.len() as u32,
            }
        })
        .collect();
    tagged::Batch {
        names: arena.names,
        text: arena.text,
        bytes: Vec::new(),
        items: Vec::new(),
        cells,
        rows,
    }
}

fn from_tagged(batch: &[Record], answer: tagged::Answer) -> Vec<Record> {
    let mut out: Vec<Option<Record>> = batch
        .iter()
        .zip(&answer.outcomes)
        .map(|(record, outcome)| (outcome.verdict == tagged::Verdict::Keep).then(|| record.clone()))
        .collect();
    for edit in answer.edits {
        let field = out
            .get_mut(edit.row as usize)
            .and_then(Option::as_mut)
            .and_then(|record| record.fields.get_mut(edit.cell as usize))
            .expect("an edit of a kept record's cell");
        let cell = edit.value;
        field.value = match cell.kind {
            tagged::Kind::Text => {
                let start = cell.span.start as usize;
                Value::Text(
                    answer
                        .text
                        .get(start..start + cell.span.len as usize)
                        .expect("a span within the answer's text")
                        .to_owned(),
                )
            }
            tagged::Kind::Integer => Value::Integer(cell.number),
            _ => Value::Null,
        };
    }
    out.into_iter().flatten().collect()
}

/// What each guest is timed on in every round, in this order.
const GUEST_RUNS: [&str; 8] = [
    "0.1.0 shape (nested), copy",
    "0.1.0 shape (nested), touch",
    "rows, copy",
    "rows, touch",
    "flat, copy",
    "flat, touch",
    "tagged, copy",
    "tagged, touch",
];

/// A call of a lean shape as its host makes it: the batch built from `$batch`, the call,
/// the answer applied to copies of the inputs (the records it makes).
macro_rules! lean {
    ($store:ident, $batch:ident, $failed:ident => $shape:expr, $call:ident, $to:ident, $from:ident) => {{
        let answer = $shape
            .$call(&mut *$store, &$to($batch))
            .await
            .unwrap_or_else(|e| $failed(stringify!($call), e));
        $from($batch, answer)
    }};
}

/// One guest's instance of the shapes world.
struct ShapesGuest {
    name: &'static str,
    shapes: bindings::Shapes,
    store: Store<Bare>,
}

impl ShapesGuest {
    async fn new(engine: &wasmtime::Engine, name: &'static str) -> ShapesGuest {
        let component =
            Component::new(engine, std::fs::read(guest(name)).expect("read")).expect("compile");
        // Only WASI to link: the world imports nothing of its own.
        let linker: Linker<Bare> = bare_linker(engine);
        let mut store = Store::new(engine, Bare::new());
        let shapes = bindings::Shapes::instantiate_async(&mut store, &component, &linker)
            .await
            .expect("instantiate");
        ShapesGuest {
            name,
            shapes,
            store,
        }
    }

    /// Every shape's touch must make what the native touch makes, or the race is unfair.
    async fn check(&mut self, batch: &[Record], nested_batch: &[nested::Item]) {
        let expected = native_touch(batch);
        let (shapes, store, name) = (&self.shapes, &mut self.store, self.name);
        let failed = |what: &str, e: wasmtime::Error| -> ! { panic!("{name}: {what}: {e:?}") };
        let made = shapes
            .witplug_bench_shapes_nested()
            .call_touch(&mut *store, nested_batch)
            .await
            .unwrap_or_else(|e| failed("touch", e));
        assert!(
            from_nested(made) == expected,
            "{name}: nested touch differs"
        );
        let made = [
            lean!(store, batch, failed => shapes.witplug_bench_shapes_rows(),
                call_touch,
                to_rows,
                from_rows
            ),
            lean!(store, batch, failed => shapes.witplug_bench_shapes_flat(),
                call_touch,
                to_flat,
                from_flat
            ),
            lean!(store, batch, failed => shapes.witplug_bench_shapes_tagged(),
                call_touch,
                to_tagged,
                from_tagged
            ),
        ];
        for (made, shape) in made.iter().zip(["rows", "flat", "tagged"]) {
            assert!(*made == expected, "{name}: {shape} touch differs");
        }
    }

    /// One p50 per entry of [`GUEST_RUNS`].
    async fn round(&mut self, batch: &[Record], nested_batch: &[nested::Item]) -> Vec<Duration> {
        let (shapes, store, name) = (&self.shapes, &mut self.store, self.name);
        let failed = |what: &str, e: wasmtime::Error| -> ! { panic!("{name}: {what}: {e:?}") };
        let (n, r, f, t) = (
            shapes.witplug_bench_shapes_nested(),
            shapes.witplug_bench_shapes_rows(),
            shapes.witplug_bench_shapes_flat(),
            shapes.witplug_bench_shapes_tagged(),
        );
        macro_rules! time {
            ($body:expr) => {
                sample!(5, 30, 1, {
                    std::hint::black_box($body);
                })
                .p50
            };
        }
        vec![
            time!(
                n.call_copy(&mut *store, nested_batch)
                    .await
                    .unwrap_or_else(|e| failed("copy", e))
            ),
            time!(
                n.call_touch(&mut *store, nested_batch)
                    .await
                    .unwrap_or_else(|e| failed("touch", e))
            ),
            time!(lean!(store, batch, failed => r, call_copy, to_rows, from_rows)),
            time!(lean!(store, batch, failed => r, call_touch, to_rows, from_rows)),
            time!(lean!(store, batch, failed => f, call_copy, to_flat, from_flat)),
            time!(lean!(store, batch, failed => f, call_touch, to_flat, from_flat)),
            time!(lean!(store, batch, failed => t, call_copy, to_tagged, from_tagged)),
            time!(lean!(store, batch, failed => t, call_touch, to_tagged, from_tagged)),
        ]
    }
}

pub(crate) async fn shapes(table: &mut Table) {
    let batch = super::sample_records(1000);
    let nested_batch = to_nested(&batch);
    let engine = bare_engine();
    let mut guests = Vec::new();
    for name in ["rust-shapes", "go-shapes"] {
        let mut guest = ShapesGuest::new(&engine, name).await;
        guest.check(&batch, &nested_batch).await;
        guests.push(guest);
    }
    let mut native = super::native_rule(&batch);

    let (mut native_rule, mut native_touches) = (Vec::new(), Vec::new());
    let mut times: Vec<Vec<Vec<Duration>>> = vec![vec![Vec::new(); GUEST_RUNS.len()]; guests.len()];
    for _ in 0..9 {
        native_rule.push(sample!(5, 30, 1, { native() }).p50);
        native_touches.push(
            sample!(5, 30, 1, {
                std::hint::black_box(native_touch(&batch));
            })
            .p50,
        );
        for (guest, times) in guests.iter_mut().zip(&mut times) {
            for (all, time) in times
                .iter_mut()
                .zip(guest.round(&batch, &nested_batch).await)
            {
                all.push(time);
            }
        }
    }
    let per_sec = |d: Duration| format!("{:.0}", batch.len() as f64 / d.as_secs_f64());
    let percent_of =
        |base: &[Duration], run: &[Duration]| format!("{} of native", round_percent(base, run));
    table.row(
        "shapes: native rule, 1,000 records, records/s",
        per_sec(super::median(native_rule.clone())),
        "",
        "",
    );
    table.row(
        "shapes: native touch (trim and lowercase one field), records/s",
        per_sec(super::median(native_touches.clone())),
        "",
        "",
    );
    for (guest, times) in guests.iter().zip(&times) {
        for (what, run) in GUEST_RUNS.iter().zip(times) {
            // Copies against the native rule, as 0.1.0's ceiling is stated; touches
            // against the native touch.
            let (base, name) = if what.ends_with("copy") {
                (&native_rule, "native rule")
            } else {
                (&native_touches, "native touch")
            };
            table.row(
                format!("shapes: {}, {what}, bare wasmtime, records/s", guest.name),
                per_sec(super::median(run.clone())),
                name,
                percent_of(base, run),
            );
        }
    }
}
