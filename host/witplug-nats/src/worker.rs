//! The worker: inputs from a [`Source`] through the plugin in the slot, outputs to a
//! [`Sink`], each input acked only once everything it produced is stored.
//!
//! A batch takes the plugin version in use when it starts and keeps it to the end (a swap
//! applies to later batches). A batch whose call fails is retried record by record, so
//! only the record at fault is held back; that record is delivered again after a delay
//! until its last allowed delivery, when it is dead-lettered.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument as _;
use witplug::worlds::transform::Outcome;
use witplug::{PluginSlot, Record, TransformPlugin, Versioned};

use crate::QueueError;
use crate::contract::{self, DeadLetterKind};
use crate::metrics::Metrics;
use crate::seam::{Acker, Input, Output, Sink, Source};

/// Where a worker publishes, and how it batches and retries.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    pub output_subject: String,
    pub dead_letter_subject: String,
    pub dropped_subject: Option<String>,
    /// Inputs per plugin call.
    pub batch: usize,
    /// Batches in flight at once (each on its own instance).
    pub concurrency: usize,
    /// Deliveries after which a record the plugin keeps failing on is dead-lettered.
    pub max_deliver: u64,
    /// How long a record the plugin failed on waits before its next delivery.
    pub retry_delay: Duration,
    /// Larger inputs are dead-lettered as invalid without reaching the plugin.
    pub max_record_bytes: usize,
}

/// A transform plugin that can be swapped while the worker runs.
pub type TransformSlot = PluginSlot<TransformPlugin>;

/// How long a worker waits before pulling again after a failed pull.
const PULL_RETRY: Duration = Duration::from_secs(1);

/// Runs until `shutdown` resolves, then stops taking inputs and finishes the batches in
/// flight. A failed pull (server restarting, connection lost) is retried, not fatal.
pub async fn run<S: Source, K: Sink>(
    mut source: S,
    sink: K,
    slot: Arc<TransformSlot>,
    settings: WorkerSettings,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), QueueError> {
    let settings = Arc::new(settings);
    let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let mut in_flight = JoinSet::new();
    tokio::pin!(shutdown);
    let result = loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break Ok(()),
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break Ok(()),
            },
        };
        // Not raced against `shutdown`: it returns within a short wait, and a pull it
        // left half-done would strand inputs until their ack wait.
        let batch = match source.next_batch(settings.batch).await {
            Ok(batch) => batch,
            Err(error) => {
                // The connection is down or the server restarting: the client reconnects
                // on its own, so keep asking rather than stop serving.
                tracing::warn!(%error, "pulling inputs failed; trying again in a second");
                drop(permit);
                tokio::select! {
                    biased;
                    () = &mut shutdown => break Ok(()),
                    () = tokio::time::sleep(PULL_RETRY) => continue,
                }
            }
        };
        if batch.is_empty() {
            continue;
        }
        let plugin = slot.current();
        let (sink, settings, metrics) = (sink.clone(), Arc::clone(&settings), Arc::clone(&metrics));
        let span = tracing::info_span!(
            "batch",
            first_seq = batch.first().map(|i| i.position.sequence),
            last_seq = batch.last().map(|i| i.position.sequence),
            inputs = batch.len(),
            plugin = %plugin.version.digest,
        );
        in_flight.spawn(
            async move {
                handle_batch(batch, &plugin, &sink, &settings, &metrics).await;
                drop(permit);
            }
            .instrument(span),
        );
        while let Some(done) = in_flight.try_join_next() {
            report_task_end(done);
        }
    };
    while let Some(done) = in_flight.join_next().await {
        report_task_end(done);
    }
    result
}

fn report_task_end(done: Result<(), tokio::task::JoinError>) {
    if let Err(error) = done {
        // A panic in our own code: its inputs stay unacked and are delivered again.
        tracing::error!(%error, "a batch task failed");
    }
}

/// What becomes of one input.
enum Disposition {
    /// Publish these records (keep: one; split: each), then ack.
    Outputs {
        outcome: &'static str,
        records: Vec<Record>,
    },
    Dropped(String),
    DeadLetter {
        kind: DeadLetterKind,
        reason: String,
        code: Option<String>,
    },
    /// The plugin failed on it alone; deliver it again later.
    RetryLater(String),
}

async fn handle_batch<A: Acker, K: Sink>(
    batch: Vec<Input<A>>,
    plugin: &Versioned<TransformPlugin>,
    sink: &K,
    settings: &WorkerSettings,
    metrics: &Metrics,
) {
    let started = Instant::now();
    metrics.records_in.inc_by(batch.len() as u64);
    let redelivered = batch.iter().filter(|i| i.position.deliveries > 1).count();
    metrics.redeliveries.inc_by(redelivered as u64);

    let decoded: Vec<Result<Record, String>> = batch
        .iter()
        .map(|input| contract::decode_record(&input.payload, settings.max_record_bytes))
        .collect();
    let dispositions = run_plugin(&batch, decoded, plugin, settings).await;

    let settled = batch
        .into_iter()
        .zip(dispositions)
        .map(|(input, disposition)| settle(input, disposition, plugin, sink, settings, metrics));
    join_all(settled).await;
    metrics
        .batch_duration
        .observe(started.elapsed().as_secs_f64());
}

/// Runs the valid records through the plugin: the whole batch in one call, or record by
/// record when that call fails.
async fn run_plugin<A>(
    batch: &[Input<A>],
    decoded: Vec<Result<Record, String>>,
    plugin: &Versioned<TransformPlugin>,
    settings: &WorkerSettings,
) -> Vec<Disposition> {
    let mut dispositions: Vec<Option<Disposition>> = Vec::with_capacity(decoded.len());
    let mut records = Vec::new();
    let mut record_slots = Vec::new();
    for (slot, result) in decoded.into_iter().enumerate() {
        match result {
            Ok(record) => {
                records.push(record);
                record_slots.push(slot);
                dispositions.push(None);
            }
            Err(reason) => dispositions.push(Some(Disposition::DeadLetter {
                kind: DeadLetterKind::InvalidInput,
                reason,
                code: None,
            })),
        }
    }
    let outcomes: Vec<Result<Outcome, witplug::Error>> = if records.is_empty() {
        Vec::new()
    } else {
        match plugin.plugin.process_batch(&records).await {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            Err(error) if records.len() == 1 => vec![Err(error)],
            Err(error) => {
                tracing::warn!(error = %witplug::error_chain(&error), records = records.len(),
                    "batch failed; retrying its records one by one");
                let mut one_by_one = Vec::with_capacity(records.len());
                for record in &records {
                    let result = plugin
                        .plugin
                        .process_batch(std::slice::from_ref(record))
                        .await
                        .and_then(|mut outcomes| {
                            outcomes.pop().ok_or_else(|| unreachable_empty(plugin))
                        });
                    one_by_one.push(result);
                }
                one_by_one
            }
        }
    };
    for (slot, outcome) in record_slots.into_iter().zip(outcomes) {
        let deliveries = batch[slot].position.deliveries;
        dispositions[slot] = Some(match outcome {
            Ok(Outcome::Keep(record)) => Disposition::Outputs {
                outcome: "keep",
                records: vec![record],
            },
            Ok(Outcome::Split(records)) => Disposition::Outputs {
                outcome: "split",
                records,
            },
            Ok(Outcome::Drop(reason)) => Disposition::Dropped(reason),
            Ok(Outcome::Error(error)) => Disposition::DeadLetter {
                kind: DeadLetterKind::Error,
                reason: error.message,
                code: Some(error.code),
            },
            Err(error) => {
                let reason = witplug::error_chain(&error);
                if deliveries >= settings.max_deliver {
                    Disposition::DeadLetter {
                        kind: DeadLetterKind::PluginFailure,
                        reason,
                        code: None,
                    }
                } else {
                    Disposition::RetryLater(reason)
                }
            }
        });
    }
    dispositions
        .into_iter()
        .map(|d| {
            d.unwrap_or(Disposition::RetryLater(
                "no outcome for the record (internal error)".to_owned(),
            ))
        })
        .collect()
}

/// `process_batch` checks one outcome per record, so a one-record call never returns none.
fn unreachable_empty(plugin: &Versioned<TransformPlugin>) -> witplug::Error {
    witplug::Error::Contract {
        plugin: plugin.plugin.name().to_owned(),
        export: "witplug:plugin/transformer#process-batch".to_owned(),
        message: "returned no outcome for one record".to_owned(),
    }
}

/// Publishes what `input` produced, waits for the server to store all of it, then acks
/// (or asks for a later redelivery). Never loses the input: on any failure it is left to
/// be delivered again.
async fn settle<A: Acker, K: Sink>(
    input: Input<A>,
    disposition: Disposition,
    plugin: &Versioned<TransformPlugin>,
    sink: &K,
    settings: &WorkerSettings,
    metrics: &Metrics,
) {
    let Input {
        payload,
        headers,
        position,
        acker,
    } = input;
    let provenance = contract::provenance(&position, &plugin.version);
    let mut disposition = disposition;
    // An output the server would refuse dead-letters its input instead, before any of
    // its outputs is published.
    if let Disposition::Outputs { records, .. } = &disposition {
        let limit = sink.max_message_bytes();
        if let Some((index, size)) = records
            .iter()
            .map(|r| contract::encode_record(r).len())
            .enumerate()
            .find(|(_, size)| size + 1024 > limit)
        {
            disposition = Disposition::DeadLetter {
                kind: DeadLetterKind::OutputTooLarge,
                reason: format!(
                    "output record {index} is {size} bytes; the server takes at most {limit} per message"
                ),
                code: None,
            };
        }
    }
    let outputs: Vec<Output> = match disposition {
        Disposition::RetryLater(reason) => {
            metrics.record_outcome("plugin-failure");
            tracing::warn!(seq = position.sequence, deliveries = position.deliveries,
                error = %reason, "plugin failed on a record; it will be delivered again");
            if let Err(error) = acker.retry_later(settings.retry_delay).await {
                tracing::warn!(%error, "nak failed; the input comes back after its ack wait");
            }
            return;
        }
        Disposition::Outputs { outcome, records } => {
            metrics.record_outcome(outcome);
            records
                .iter()
                .enumerate()
                .map(|(index, record)| {
                    let mut headers = provenance.clone();
                    headers.push((contract::OUTCOME.to_owned(), outcome.to_owned()));
                    Output {
                        subject: settings.output_subject.clone(),
                        id: contract::output_id(&position, index),
                        headers,
                        payload: Bytes::from(contract::encode_record(record)),
                    }
                })
                .collect()
        }
        Disposition::Dropped(reason) => {
            metrics.record_outcome("drop");
            match &settings.dropped_subject {
                None => Vec::new(),
                Some(subject) => vec![notice(
                    subject,
                    contract::dropped_id(&position),
                    &headers,
                    provenance,
                    &position,
                    vec![(contract::DROP_REASON, contract::header_text(&reason))],
                    payload.clone(),
                )],
            }
        }
        Disposition::DeadLetter { kind, reason, code } => {
            metrics.record_outcome(match kind {
                DeadLetterKind::InvalidInput => "invalid-input",
                DeadLetterKind::Error => "error",
                DeadLetterKind::PluginFailure | DeadLetterKind::OutputTooLarge => "plugin-failure",
            });
            let mut why = vec![
                (contract::ERROR_KIND, kind.as_str().to_owned()),
                (contract::ERROR, contract::header_text(&reason)),
            ];
            if let Some(code) = code {
                why.push((contract::ERROR_CODE, contract::header_text(&code)));
            }
            vec![notice(
                &settings.dead_letter_subject,
                contract::dead_letter_id(&position),
                &headers,
                provenance,
                &position,
                why,
                payload.clone(),
            )]
        }
    };
    let outputs = fit_notices(outputs, settings, sink.max_message_bytes(), &position);
    let dead_letters = outputs
        .iter()
        .filter(|o| o.subject == settings.dead_letter_subject)
        .count() as u64;
    let records_out = outputs
        .iter()
        .filter(|o| o.subject == settings.output_subject)
        .count() as u64;
    match publish_all(sink, outputs).await {
        Ok(duplicates) => {
            metrics.duplicates.inc_by(duplicates);
            metrics.output_messages.inc_by(records_out);
            metrics.dead_lettered.inc_by(dead_letters);
            if let Err(error) = acker.ack().await {
                // Its outputs are stored; the redelivery republishes the same ids, which
                // the duplicate window drops.
                tracing::warn!(%error, "ack failed; the input will be delivered again");
            }
        }
        Err(error) => {
            metrics.publish_failures.inc();
            tracing::warn!(%error, seq = position.sequence, "outputs not stored; the input will be delivered again");
            if let Err(error) = acker.retry_later(settings.retry_delay).await {
                tracing::warn!(%error, "nak failed; the input comes back after its ack wait");
            }
        }
    }
}

/// A dead letter or drop notice: the input's payload and its own headers (less JetStream's),
/// where it came from and which plugin handled it, why, and how often it was delivered.
fn notice(
    subject: &str,
    id: String,
    input_headers: &[(String, String)],
    provenance: Vec<(String, String)>,
    position: &crate::contract::Position,
    why: Vec<(&str, String)>,
    payload: Bytes,
) -> Output {
    let mut headers = contract::forwarded_headers(input_headers);
    headers.extend(provenance);
    headers.extend(
        why.into_iter()
            .map(|(name, value)| (name.to_owned(), value)),
    );
    headers.push((
        contract::DELIVERIES.to_owned(),
        position.deliveries.to_string(),
    ));
    Output {
        subject: subject.to_owned(),
        id,
        headers,
        payload,
    }
}

/// A dead letter or drop notice carries the input's payload and headers; an input close to
/// the server's message limit would not fit with ours added. Such a notice goes without
/// the payload (it is still in the input stream, at the sequence the headers name) and
/// says so, rather than failing forever.
fn fit_notices(
    outputs: Vec<Output>,
    settings: &WorkerSettings,
    limit: usize,
    position: &crate::contract::Position,
) -> Vec<Output> {
    outputs
        .into_iter()
        .map(|mut output| {
            if output.subject == settings.output_subject {
                return output;
            }
            let headers: usize = output
                .headers
                .iter()
                .map(|(name, value)| name.len() + value.len() + 4)
                .sum();
            // Room for the message id and the protocol's own header lines.
            if output.payload.len() + headers + 512 > limit {
                output.headers.push((
                    contract::PAYLOAD_OMITTED.to_owned(),
                    format!(
                        "{} bytes; the input is in stream {} at sequence {}",
                        output.payload.len(),
                        position.stream,
                        position.sequence
                    ),
                ));
                output.payload = Bytes::new();
            }
            output
        })
        .collect()
}

/// Publishes every output, then waits for every receipt; returns how many the server
/// already had.
async fn publish_all<K: Sink>(sink: &K, outputs: Vec<Output>) -> Result<u64, QueueError> {
    let mut receipts = Vec::with_capacity(outputs.len());
    for output in outputs {
        receipts.push(sink.publish(output).await?);
    }
    let mut duplicates = 0;
    for receipt in join_all(receipts).await {
        if receipt?.duplicate {
            duplicates += 1;
        }
    }
    Ok(duplicates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Position;

    fn settings() -> WorkerSettings {
        WorkerSettings {
            output_subject: "out".into(),
            dead_letter_subject: "dead".into(),
            dropped_subject: None,
            batch: 1,
            concurrency: 1,
            max_deliver: 1,
            retry_delay: Duration::ZERO,
            max_record_bytes: 1 << 20,
        }
    }

    fn output(subject: &str, payload: usize) -> Output {
        Output {
            subject: subject.into(),
            id: "id".into(),
            headers: vec![("Witplug-Error".into(), "x".repeat(100))],
            payload: Bytes::from(vec![b'a'; payload]),
        }
    }

    #[test]
    fn a_dead_letter_too_large_for_the_server_goes_without_its_payload() {
        let position = Position {
            stream: "records".into(),
            sequence: 7,
            deliveries: 1,
        };
        let limit = 10_000;
        let fitted = fit_notices(
            vec![
                output("dead", 9_900),
                output("dead", 100),
                output("out", 9_900),
            ],
            &settings(),
            limit,
            &position,
        );
        assert!(fitted[0].payload.is_empty());
        let omitted = fitted[0]
            .headers
            .iter()
            .find(|(name, _)| name == contract::PAYLOAD_OMITTED)
            .map(|(_, value)| value.as_str());
        assert_eq!(
            omitted,
            Some("9900 bytes; the input is in stream records at sequence 7")
        );
        // A notice that fits keeps its payload; outputs are checked before (whole records).
        assert_eq!(fitted[1].payload.len(), 100);
        assert_eq!(fitted[2].payload.len(), 9_900);
    }
}
