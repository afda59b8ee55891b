//! `shapes`: the benchmark guest of the candidate record shapes for transform@0.2.0
//! (`host/witplug/benches/shapes-wit`). Each shape's `copy` keeps every record; `touch`
//! trims and lowercases the `email` text of each, as the sample rule's data movement.

wit_bindgen::generate!({ path: "../../host/witplug/benches/shapes-wit", world: "shapes" });

use exports::witplug_bench::shapes::{flat, nested, rows, tagged};

struct Shapes;

/// `email` trimmed and ASCII-lowercased, appended to `out`; where it went.
fn touched(email: &str, out: &mut String) -> (u32, u32) {
    let start = out.len();
    out.extend(email.trim().chars().map(|c| c.to_ascii_lowercase()));
    (start as u32, (out.len() - start) as u32)
}

/// The text of a span, or `None` when it is not within `text` on character boundaries.
fn slice(text: &str, start: u32, len: u32) -> Option<&str> {
    let start = start as usize;
    text.get(start..start.checked_add(len as usize)?)
}

impl nested::Guest for Shapes {
    fn copy(batch: Vec<nested::Item>) -> Vec<nested::Outcome> {
        batch.into_iter().map(nested::Outcome::Keep).collect()
    }

    fn touch(batch: Vec<nested::Item>) -> Vec<nested::Outcome> {
        batch
            .into_iter()
            .map(|mut item| {
                if let Some(field) = item.fields.iter_mut().find(|f| f.name == "email")
                    && let nested::Value::Text(text) = &mut field.value
                {
                    let mut out = String::with_capacity(text.len());
                    touched(text, &mut out);
                    *text = out;
                }
                nested::Outcome::Keep(item)
            })
            .collect()
    }
}

impl rows::Guest for Shapes {
    fn copy(batch: rows::Batch) -> rows::Answer {
        rows::Answer {
            text: String::new(),
            outcomes: batch
                .rows
                .iter()
                .map(|_| rows::Outcome::Keep(Vec::new()))
                .collect(),
        }
    }

    fn touch(batch: rows::Batch) -> rows::Answer {
        let email = batch.names.iter().position(|n| n == "email");
        let mut text = String::with_capacity(batch.text.len() / 4);
        let mut outcomes = Vec::with_capacity(batch.rows.len());
        for row in &batch.rows {
            let mut edits = Vec::new();
            let found = email.and_then(|e| {
                row.cells
                    .iter()
                    .position(|c| c.name as usize == e)
                    .map(|i| (i, &row.cells[i].value))
            });
            if let Some((i, rows::Value::Text(span))) = found {
                match slice(&batch.text, span.start, span.len) {
                    Some(email) => {
                        let (start, len) = touched(email, &mut text);
                        edits.push(rows::Edit {
                            cell: i as u32,
                            value: rows::Value::Text(rows::Span { start, len }),
                        });
                    }
                    None => {
                        outcomes.push(rows::Outcome::Error("span out of the text".to_owned()));
                        continue;
                    }
                }
            }
            outcomes.push(rows::Outcome::Keep(edits));
        }
        rows::Answer { text, outcomes }
    }
}

impl flat::Guest for Shapes {
    fn copy(batch: flat::Batch) -> flat::Answer {
        flat::Answer {
            text: String::new(),
            outcomes: batch.rows.iter().map(|_| flat::Outcome::Keep).collect(),
            edits: Vec::new(),
        }
    }

    fn touch(batch: flat::Batch) -> flat::Answer {
        let email = batch.names.iter().position(|n| n == "email");
        let mut text = String::with_capacity(batch.text.len() / 4);
        let mut outcomes = Vec::with_capacity(batch.rows.len());
        let mut edits = Vec::with_capacity(batch.rows.len());
        for (r, row) in batch.rows.iter().enumerate() {
            let cells = batch
                .cells
                .get(row.first as usize..(row.first as usize).saturating_add(row.count as usize));
            let Some(cells) = cells else {
                outcomes.push(flat::Outcome::Error("cells out of the batch".to_owned()));
                continue;
            };
            let found = email.and_then(|e| {
                cells
                    .iter()
                    .position(|c| c.name as usize == e)
                    .map(|i| (i, &cells[i].value))
            });
            if let Some((i, flat::Value::Text(span))) = found {
                let Some(email) = slice(&batch.text, span.start, span.len) else {
                    outcomes.push(flat::Outcome::Error("span out of the text".to_owned()));
                    continue;
                };
                let (start, len) = touched(email, &mut text);
                edits.push(flat::Edit {
                    row: r as u32,
                    cell: i as u32,
                    value: flat::Value::Text(flat::Span { start, len }),
                });
            }
            outcomes.push(flat::Outcome::Keep);
        }
        flat::Answer {
            text,
            outcomes,
            edits,
        }
    }
}

impl tagged::Guest for Shapes {
    fn copy(batch: tagged::Batch) -> tagged::Answer {
        let keep = tagged::Outcome {
            verdict: tagged::Verdict::Keep,
            reason: String::new(),
        };
        tagged::Answer {
            text: String::new(),
            items: Vec::new(),
            outcomes: vec![keep; batch.rows.len()],
            edits: Vec::new(),
        }
    }

    fn touch(batch: tagged::Batch) -> tagged::Answer {
        let email = batch.names.iter().position(|n| n == "email");
        let mut text = String::with_capacity(batch.text.len() / 4);
        let mut outcomes = Vec::with_capacity(batch.rows.len());
        let mut edits = Vec::with_capacity(batch.rows.len());
        let error = |reason: &str| tagged::Outcome {
            verdict: tagged::Verdict::Error,
            reason: reason.to_owned(),
        };
        for (r, row) in batch.rows.iter().enumerate() {
            let cells = batch
                .cells
                .get(row.first as usize..(row.first as usize).saturating_add(row.count as usize));
            let Some(cells) = cells else {
                outcomes.push(error("cells out of the batch"));
                continue;
            };
            let found = email.and_then(|e| cells.iter().position(|c| c.name as usize == e));
            if let Some(i) = found
                && cells[i].kind == tagged::Kind::Text
            {
                let span = cells[i].span;
                let Some(email) = slice(&batch.text, span.start, span.len) else {
                    outcomes.push(error("span out of the text"));
                    continue;
                };
                let (start, len) = touched(email, &mut text);
                edits.push(tagged::Edit {
                    row: r as u32,
                    cell: i as u32,
                    value: tagged::Cell {
                        span: tagged::Span { start, len },
                        ..cells[i]
                    },
                });
            }
            outcomes.push(tagged::Outcome {
                verdict: tagged::Verdict::Keep,
                reason: String::new(),
            });
        }
        tagged::Answer {
            text,
            items: Vec::new(),
            outcomes,
            edits,
        }
    }
}

export!(Shapes);
