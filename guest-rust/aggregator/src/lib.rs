//! `aggregator`: a Rust guest of the `aggregator-plugin` world.
//!
//! Its `aggregation` resource counts records per group, and optionally sums a numeric
//! field, across calls: the state stays inside the guest while the host holds the handle.

use std::cell::RefCell;
use std::collections::BTreeMap;

wit_bindgen::generate!({ path: "../../wit", world: "aggregator-plugin" });

use exports::witplug::plugin::aggregator::{
    AggregationBorrow, GroupTotal, Guest, GuestAggregation, Params,
};
use exports::witplug::plugin::metadata::{self, PluginInfo};
use witplug::plugin::logging;
use witplug::plugin::types::{Record, Value};

struct Plugin;

impl metadata::Guest for Plugin {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "aggregator".to_owned(),
            version: "0.1.0".to_owned(),
            description: "Counts and sums records per group (Rust guest).".to_owned(),
        }
    }
}

impl Guest for Plugin {
    type Aggregation = Aggregation;
}

/// The guest side of the `aggregation` resource.
struct Aggregation {
    params: Params,
    /// wit-bindgen's methods take `&self` (one handle may be lent twice at once), hence
    /// the RefCell.
    totals: RefCell<Totals>,
}

impl GuestAggregation for Aggregation {
    fn new(params: Params) -> Self {
        Self {
            params,
            totals: RefCell::default(),
        }
    }

    fn add(&self, batch: Vec<Record>) -> Result<u64, String> {
        self.totals.borrow_mut().add(&self.params, &batch)
    }

    fn merge(&self, other: AggregationBorrow<'_>) {
        // Copy first: `other` may be this very aggregation, which then doubles its totals.
        let theirs = other.get::<Aggregation>().totals.borrow().clone();
        self.totals.borrow_mut().merge(&theirs);
    }

    fn snapshot(&self) -> Vec<GroupTotal> {
        self.totals.borrow().snapshot()
    }
}

/// The running count and sum of one group.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Total {
    count: u64,
    sum: f64,
}

/// Totals per group; a BTreeMap keeps groups sorted for `snapshot`. Free of imports, so
/// it is unit-tested natively.
#[derive(Debug, Default, Clone)]
struct Totals(BTreeMap<String, Total>);

impl Totals {
    /// Adds a batch and returns how many records were counted. The whole batch is
    /// validated before anything is added: a failed batch leaves the totals unchanged.
    fn add(&mut self, params: &Params, batch: &[Record]) -> Result<u64, String> {
        let mut rows = Vec::with_capacity(batch.len());
        for record in batch {
            if let Some(group) = group_of(params, record) {
                rows.push((group, addend_of(params, record)?));
            }
        }
        let counted = rows.len() as u64;
        for (group, addend) in rows {
            let total = self.0.entry(group).or_default();
            total.count += 1;
            total.sum += addend;
        }
        Ok(counted)
    }

    fn merge(&mut self, other: &Totals) {
        for (group, theirs) in &other.0 {
            let total = self.0.entry(group.clone()).or_default();
            total.count += theirs.count;
            total.sum += theirs.sum;
        }
    }

    fn snapshot(&self) -> Vec<GroupTotal> {
        self.0
            .iter()
            .map(|(group, total)| GroupTotal {
                group: group.clone(),
                count: total.count,
                sum: total.sum,
            })
            .collect()
    }
}

/// The group of a record, or `None` when the record is to be skipped.
fn group_of(params: &Params, record: &Record) -> Option<String> {
    match field(record, &params.group_by)? {
        Value::Text(text) => Some(text.clone()),
        Value::Integer(n) => Some(n.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// What a record adds to its group's sum. Only counted records are looked at.
fn addend_of(params: &Params, record: &Record) -> Result<f64, String> {
    let Some(name) = &params.sum_field else {
        return Ok(0.0);
    };
    match field(record, name) {
        None | Some(Value::Null) => Ok(0.0),
        // Sums are f64 by contract; integers beyond 2^53 lose precision there.
        Some(Value::Integer(n)) => Ok(*n as f64),
        Some(Value::Float(x)) => Ok(*x),
        Some(_) => Err(format!(
            "record `{}`: field `{name}` is not numeric",
            record.key
        )),
    }
}

impl Drop for Aggregation {
    fn drop(&mut self) {
        // Host tests watch for this line to see that the resource destructor ran.
        logging::log(logging::Level::Debug, "aggregation dropped", &[]);
    }
}

fn field<'a>(record: &'a Record, name: &str) -> Option<&'a Value> {
    record
        .fields
        .iter()
        .find(|field| field.name == name)
        .map(|field| &field.value)
}

export!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use witplug::plugin::types::Field;

    fn params(sum_field: Option<&str>) -> Params {
        Params {
            group_by: "plan".to_owned(),
            sum_field: sum_field.map(str::to_owned),
        }
    }

    fn record(key: &str, fields: Vec<(&str, Value)>) -> Record {
        Record {
            key: key.to_owned(),
            fields: fields
                .into_iter()
                .map(|(name, value)| Field {
                    name: name.to_owned(),
                    value,
                })
                .collect(),
        }
    }

    fn totals(totals: &Totals) -> Vec<(String, u64, f64)> {
        totals
            .snapshot()
            .into_iter()
            .map(|t| (t.group, t.count, t.sum))
            .collect()
    }

    #[test]
    fn groups_by_text_integer_and_boolean_and_skips_the_rest() {
        let batch = [
            record("a", vec![("plan", Value::Text("pro".into()))]),
            record("b", vec![("plan", Value::Integer(-3))]),
            record("c", vec![("plan", Value::Boolean(true))]),
            record("d", vec![("plan", Value::Text("pro".into()))]),
            record("e", vec![("plan", Value::Null)]),
            record("f", vec![("plan", Value::Float(1.0))]),
            record("g", vec![]),
        ];
        let mut t = Totals::default();
        assert_eq!(t.add(&params(None), &batch), Ok(4));
        assert_eq!(
            totals(&t),
            [
                ("-3".to_owned(), 1, 0.0),
                ("pro".to_owned(), 2, 0.0),
                ("true".to_owned(), 1, 0.0),
            ]
        );
    }

    #[test]
    fn sums_integers_and_floats_absent_and_null_as_zero() {
        let batch = [
            record(
                "a",
                vec![("plan", Value::Text("x".into())), ("n", Value::Integer(2))],
            ),
            record(
                "b",
                vec![("plan", Value::Text("x".into())), ("n", Value::Float(0.5))],
            ),
            record(
                "c",
                vec![("plan", Value::Text("x".into())), ("n", Value::Null)],
            ),
            record("d", vec![("plan", Value::Text("x".into()))]),
        ];
        let mut t = Totals::default();
        assert_eq!(t.add(&params(Some("n")), &batch), Ok(4));
        assert_eq!(totals(&t), [("x".to_owned(), 4, 2.5)]);
    }

    #[test]
    fn non_numeric_sum_rejects_the_whole_batch() {
        let mut t = Totals::default();
        let ok = record(
            "a",
            vec![("plan", Value::Text("x".into())), ("n", Value::Integer(1))],
        );
        assert_eq!(t.add(&params(Some("n")), std::slice::from_ref(&ok)), Ok(1));
        let bad = record(
            "b",
            vec![
                ("plan", Value::Text("x".into())),
                ("n", Value::Text("1".into())),
            ],
        );
        assert_eq!(
            t.add(&params(Some("n")), &[ok, bad]),
            Err("record `b`: field `n` is not numeric".to_owned())
        );
        assert_eq!(totals(&t), [("x".to_owned(), 1, 1.0)]);
    }

    #[test]
    fn skipped_records_are_not_validated() {
        let mut t = Totals::default();
        let skipped = record("a", vec![("n", Value::Text("oops".into()))]);
        assert_eq!(t.add(&params(Some("n")), &[skipped]), Ok(0));
    }

    #[test]
    fn merge_adds_counts_and_sums() {
        let sum = params(Some("n"));
        let mut left = Totals::default();
        let mut right = Totals::default();
        let rec = |key: &str, plan: &str, n: i64| {
            record(
                key,
                vec![("plan", Value::Text(plan.into())), ("n", Value::Integer(n))],
            )
        };
        assert_eq!(left.add(&sum, &[rec("a", "x", 1), rec("b", "y", 2)]), Ok(2));
        assert_eq!(
            right.add(&sum, &[rec("c", "x", 10), rec("d", "z", 20)]),
            Ok(2)
        );
        left.merge(&right);
        assert_eq!(
            totals(&left),
            [
                ("x".to_owned(), 2, 11.0),
                ("y".to_owned(), 1, 2.0),
                ("z".to_owned(), 1, 20.0),
            ]
        );
    }
}
