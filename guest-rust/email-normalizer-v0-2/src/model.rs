//! The record model `rule.rs` is written against: the shapes of 0.1.0's `types` and
//! `transformer`, as plain Rust types. This guest never builds them (see `lean`); they
//! exist so that the shared `rule.rs`, whose settings and helpers it uses, compiles here.

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    Integer(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    TextList(Vec<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: String,
    pub value: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub key: String,
    pub fields: Vec<Field>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RecordError {
    pub code: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Keep(Record),
    Drop(String),
    Split(Vec<Record>),
    Error(RecordError),
}
