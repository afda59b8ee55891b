//! witplug's records pipeline on NATS JetStream.
//!
//! A worker pulls records from a durable consumer, runs them through a transform plugin
//! (every limit and grant of the `witplug` library applies) and publishes what the plugin
//! made: kept and split records to the output subject, errors and bad inputs to the
//! dead-letter subject. Inputs are delivered at least once; outputs are stored exactly
//! once, because each carries a `Nats-Msg-Id` derived from its input's stream sequence
//! and JetStream drops a second publish of an id within the stream's duplicate window.
//!
//! - [`seam`]: the [`Source`]/[`Sink`] traits a queue engine implements; [`jetstream`]
//!   is the one built.
//! - [`worker::run`]: the loop (batches, concurrency, record-by-record retry, acks).
//! - [`contract`]: message forms, headers and ids.
//! - [`registry`]: publishing plugin versions and following the active one.
//! - [`metrics`]: Prometheus counters and their HTTP endpoint.
//!
//! The core `witplug` crate knows nothing of NATS: a host that only embeds worlds does
//! not compile async-nats.

pub mod contract;
mod error;
pub mod jetstream;
pub mod metrics;
pub mod registry;
pub mod seam;
pub mod worker;

pub use error::QueueError;
pub use metrics::Metrics;
pub use registry::{Registry, RegistryError};
pub use seam::{Acker, Input, Output, Published, Sink, Source};
pub use worker::{TransformSlot, WorkerSettings};
