//! NATS JetStream behind the seam: a durable pull consumer as the [`Source`], the
//! JetStream publish API (acknowledged, de-duplicated by `Nats-Msg-Id`) as the [`Sink`],
//! and the checks and set-up a pipeline needs.

use std::future::IntoFuture as _;
use std::pin::Pin;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, AckKind, Context};
use bytes::Bytes;
use futures_util::{FutureExt as _, StreamExt as _};

use crate::QueueError;
use crate::contract::Position;
use crate::seam::{Acker, Input, Output, Published, Sink, Source};

/// Connects to a NATS server; async-nats reconnects on its own afterwards.
pub async fn connect(url: &str) -> Result<async_nats::Client, QueueError> {
    async_nats::ConnectOptions::new()
        .name("witplug")
        .connect(url)
        .await
        .map_err(|source| QueueError::Connect {
            url: url.to_owned(),
            source,
        })
}

/// How the durable consumer of a pipeline is set up when it does not exist yet.
#[derive(Clone, Debug)]
pub struct ConsumerSettings {
    pub stream: String,
    pub durable: String,
    pub max_deliver: u32,
    pub ack_wait: Duration,
    /// Inputs delivered but not yet acked, across every worker of the consumer.
    pub max_ack_pending: u32,
}

/// What the consumer really has (an existing one keeps its own settings).
#[derive(Clone, Copy, Debug)]
pub struct ConsumerLimits {
    pub max_deliver: u64,
    pub ack_wait: Duration,
}

impl ConsumerLimits {
    /// How long after its first publish an output can be published again by a
    /// redelivery: up to `max_deliver` deliveries, each given `ack_wait`.
    pub fn redelivery_span(&self) -> Duration {
        self.ack_wait
            .saturating_mul(self.max_deliver.min(u32::MAX as u64) as u32)
    }
}

/// The durable pull consumer as a [`Source`].
///
/// Inputs come from pull requests that each end on their own, a no-wait fetch or a wait
/// of at most [`JetStreamSource::WAIT`] for one input: nothing is ever pulled for this
/// worker that it will not take, so a worker that stops leaves no input stranded until
/// its ack wait (an abandoned continuous pull would).
///
/// Each request also has a deadline of ours: a no-wait fetch has none in async-nats, and
/// one whose request or reply is lost to a broken connection (a server restart, a
/// partition) would otherwise wait for ever and stop the worker.
pub struct JetStreamSource {
    consumer: jetstream::consumer::Consumer<pull::Config>,
    limits: ConsumerLimits,
}

impl JetStreamSource {
    /// How long an idle worker waits for an input per pull request.
    pub const WAIT: Duration = Duration::from_millis(500);

    /// How long past its own wait a pull request may take before it counts as lost. A
    /// server answers a no-wait fetch at once; inputs delivered to a request given up on
    /// are delivered again after their ack wait, so nothing is lost by giving up.
    pub const LOST_AFTER: Duration = Duration::from_secs(5);

    /// Opens (creating if missing) the durable consumer.
    pub async fn open(context: &Context, settings: &ConsumerSettings) -> Result<Self, QueueError> {
        let stream = context.get_stream(&settings.stream).await.map_err(|e| {
            QueueError::request(format!("input stream `{}` not found", settings.stream), e)
        })?;
        let config = pull::Config {
            durable_name: Some(settings.durable.clone()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: settings.ack_wait,
            max_deliver: i64::from(settings.max_deliver),
            max_ack_pending: i64::from(settings.max_ack_pending),
            ..Default::default()
        };
        let consumer: jetstream::consumer::Consumer<pull::Config> = stream
            .get_or_create_consumer(&settings.durable, config)
            .await
            .map_err(|e| {
                QueueError::request(
                    format!(
                        "cannot open consumer `{}` on stream `{}`",
                        settings.durable, settings.stream
                    ),
                    e,
                )
            })?;
        let info = consumer.cached_info();
        if info.config.ack_policy != AckPolicy::Explicit {
            return Err(QueueError::Setup(format!(
                "consumer `{}` exists without explicit acks; witplug acks each input after its outputs are stored",
                settings.durable
            )));
        }
        let limits = ConsumerLimits {
            // JetStream's -1 (or 0) means "no limit".
            max_deliver: u64::try_from(info.config.max_deliver)
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or(u64::MAX),
            ack_wait: info.config.ack_wait,
        };
        Ok(Self { consumer, limits })
    }

    pub fn limits(&self) -> ConsumerLimits {
        self.limits
    }

    fn input(message: jetstream::Message) -> Option<Input<JetStreamAcker>> {
        let info = match message.info() {
            Ok(info) => info,
            Err(error) => {
                // Not a JetStream delivery (no reply subject): nothing to ack it with.
                tracing::warn!(%error, "skipping a message without JetStream metadata");
                return None;
            }
        };
        let position = Position {
            stream: info.stream.to_owned(),
            sequence: info.stream_sequence,
            deliveries: u64::try_from(info.delivered).unwrap_or(1).max(1),
        };
        let headers = message
            .headers
            .as_ref()
            .map(header_pairs)
            .unwrap_or_default();
        Some(Input {
            payload: message.payload.clone(),
            headers,
            acker: JetStreamAcker {
                sequence: position.sequence,
                message,
            },
            position,
        })
    }
}

impl JetStreamSource {
    /// Whatever inputs are ready now, up to `max` (none if none are).
    async fn ready(&self, max: usize) -> Result<Vec<Input<JetStreamAcker>>, QueueError> {
        let messages = self
            .consumer
            .fetch()
            .max_messages(max)
            .messages()
            .await
            .map_err(|e| QueueError::request("cannot pull inputs", e))?;
        Ok(Self::collect(messages, Duration::ZERO).await)
    }

    /// Takes every message of a pull request until the request ends, or until `wait`
    /// plus [`Self::LOST_AFTER`] has passed (what came by then is kept).
    async fn collect(
        mut messages: jetstream::consumer::pull::Batch,
        wait: Duration,
    ) -> Vec<Input<JetStreamAcker>> {
        let deadline = tokio::time::Instant::now() + wait + Self::LOST_AFTER;
        let mut inputs = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, messages.next()).await {
                Ok(Some(Ok(message))) => inputs.extend(Self::input(message)),
                Ok(Some(Err(error))) => {
                    tracing::warn!(%error, "pulling inputs");
                    break;
                }
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(
                        taken = inputs.len(),
                        "a pull request had no answer in time (lost to a broken connection?); \
                         asking again"
                    );
                    break;
                }
            }
        }
        inputs
    }
}

impl Source for JetStreamSource {
    type Acker = JetStreamAcker;

    async fn next_batch(&mut self, max: usize) -> Result<Vec<Input<JetStreamAcker>>, QueueError> {
        let ready = self.ready(max).await?;
        if !ready.is_empty() {
            return Ok(ready);
        }
        // Idle: wait for one input, then take whatever else came with it.
        let waiting = self
            .consumer
            .batch()
            .max_messages(1)
            .expires(Self::WAIT)
            .messages()
            .await
            .map_err(|e| QueueError::request("cannot pull inputs", e))?;
        let mut batch = Self::collect(waiting, Self::WAIT).await;
        if !batch.is_empty() && max > 1 {
            batch.extend(self.ready(max - 1).await?);
        }
        Ok(batch)
    }
}

/// Acks with a double ack (the server confirms), retries with a delayed nak.
pub struct JetStreamAcker {
    message: jetstream::Message,
    sequence: u64,
}

impl Acker for JetStreamAcker {
    async fn ack(self) -> Result<(), QueueError> {
        self.message
            .double_ack()
            .await
            .map_err(|e| QueueError::Ack {
                sequence: self.sequence,
                reason: e.to_string(),
            })
    }

    async fn retry_later(self, delay: Duration) -> Result<(), QueueError> {
        self.message
            .ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(|e| QueueError::Ack {
                sequence: self.sequence,
                reason: e.to_string(),
            })
    }
}

/// The JetStream publish API as a [`Sink`].
#[derive(Clone)]
pub struct JetStreamSink {
    context: Context,
    max_message_bytes: usize,
}

impl JetStreamSink {
    pub fn new(client: &async_nats::Client) -> Self {
        Self {
            context: jetstream::new(client.clone()),
            max_message_bytes: client.server_info().max_payload,
        }
    }
}

type Receipt = Pin<Box<dyn Future<Output = Result<Published, QueueError>> + Send>>;

impl Sink for JetStreamSink {
    type Receipt = Receipt;

    async fn publish(&self, output: Output) -> Result<Receipt, QueueError> {
        let mut headers = HeaderMap::new();
        for (name, value) in &output.headers {
            headers.append(name.as_str(), value.as_str());
        }
        let subject = output.subject;
        let ack = self
            .context
            .send_publish(
                subject.clone(),
                PublishMessage::build()
                    .payload(output.payload)
                    .headers(headers)
                    .message_id(output.id),
            )
            .await
            .map_err(|e| QueueError::Publish {
                subject: subject.clone(),
                reason: e.to_string(),
            })?;
        Ok(Box::pin(ack.into_future().map(move |result| {
            result
                .map(|ack| Published {
                    duplicate: ack.duplicate,
                })
                .map_err(|e| QueueError::Publish {
                    subject,
                    reason: e.to_string(),
                })
        })))
    }

    fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = headers
        .iter()
        .flat_map(|(name, values)| {
            values
                .iter()
                .map(move |value| (name.to_string(), value.as_str().to_owned()))
        })
        .collect();
    // HeaderMap is a hash map: sort so that what is forwarded does not depend on it.
    pairs.sort();
    pairs
}

/// Checks that `subject` is stored by a stream whose duplicate window covers every
/// redelivery of an input (else a late redelivery would publish its outputs twice).
pub async fn check_destination(
    context: &Context,
    role: &str,
    subject: &str,
    needed_window: Duration,
) -> Result<String, QueueError> {
    let name = context.stream_by_subject(subject).await.map_err(|e| {
        QueueError::Setup(format!(
            "no stream stores the {role} subject `{subject}` ({e}); create one, e.g. `witplug queue setup`"
        ))
    })?;
    let mut stream = context
        .get_stream(&name)
        .await
        .map_err(|e| QueueError::request(format!("cannot read stream `{name}`"), e))?;
    let info = stream
        .info()
        .await
        .map_err(|e| QueueError::request(format!("cannot read stream `{name}`"), e))?;
    let window = info.config.duplicate_window;
    if window < needed_window {
        return Err(QueueError::Setup(format!(
            "stream `{name}` (the {role} subject `{subject}`) keeps message ids for {window:?}, \
             less than ack wait x max deliver = {needed_window:?}: a redelivered input could \
             publish its outputs twice; raise the stream's duplicate window or lower \
             --ack-wait-ms / --max-deliver"
        )));
    }
    Ok(name)
}

/// A stream to create for a pipeline: its name and the subject it stores.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    pub name: String,
    pub subject: String,
}

/// The duplicate window `witplug queue setup` gives the streams it creates: covers the
/// worker's defaults (4 deliveries x 30 s ack wait).
pub const SETUP_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Creates each stream (file storage) if it does not exist; returns whether it was created.
pub async fn ensure_stream(context: &Context, spec: &StreamSpec) -> Result<bool, QueueError> {
    if context.get_stream(&spec.name).await.is_ok() {
        return Ok(false);
    }
    context
        .create_stream(jetstream::stream::Config {
            name: spec.name.clone(),
            subjects: vec![spec.subject.clone()],
            storage: jetstream::stream::StorageType::File,
            duplicate_window: SETUP_DUPLICATE_WINDOW,
            ..Default::default()
        })
        .await
        .map_err(|e| QueueError::request(format!("cannot create stream `{}`", spec.name), e))?;
    Ok(true)
}

/// Publishes each payload to `subject` and waits until the server stored every one.
pub async fn send_all(
    context: &Context,
    subject: &str,
    payloads: impl IntoIterator<Item = Bytes>,
) -> Result<u64, QueueError> {
    let mut pending = Vec::new();
    let mut sent = 0;
    for payload in payloads {
        let ack = context
            .publish(subject.to_owned(), payload)
            .await
            .map_err(|e| QueueError::Publish {
                subject: subject.to_owned(),
                reason: e.to_string(),
            })?;
        pending.push(ack);
        sent += 1;
        // Bounded: a few thousand publishes in flight, then wait for their acks.
        if pending.len() >= 4096 {
            settle(subject, &mut pending).await?;
        }
    }
    settle(subject, &mut pending).await?;
    Ok(sent)
}

async fn settle(
    subject: &str,
    pending: &mut Vec<async_nats::jetstream::context::PublishAckFuture>,
) -> Result<(), QueueError> {
    for ack in pending.drain(..) {
        ack.await.map_err(|e| QueueError::Publish {
            subject: subject.to_owned(),
            reason: e.to_string(),
        })?;
    }
    Ok(())
}

/// A stored message, as `witplug queue read` prints it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StoredMessage {
    pub seq: u64,
    pub subject: String,
    pub headers: Vec<(String, String)>,
    /// The payload as text when it is UTF-8, else `None` and `payload_base64` is set.
    pub payload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
}

/// Every message of `stream`, in order, read with an ephemeral ordered consumer; stops
/// when the stream's last message at the start was read, or after `idle` without one.
pub async fn read_all(
    context: &Context,
    stream_name: &str,
    idle: Duration,
) -> Result<Vec<StoredMessage>, QueueError> {
    use base64::Engine as _;
    let mut stream = context
        .get_stream(stream_name)
        .await
        .map_err(|e| QueueError::request(format!("stream `{stream_name}` not found"), e))?;
    let last = stream
        .info()
        .await
        .map_err(|e| QueueError::request(format!("cannot read stream `{stream_name}`"), e))?
        .state
        .last_sequence;
    let mut out = Vec::new();
    if last == 0 {
        return Ok(out);
    }
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
        .await
        .map_err(|e| QueueError::request(format!("cannot read stream `{stream_name}`"), e))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| QueueError::request(format!("cannot read stream `{stream_name}`"), e))?;
    loop {
        let next = match tokio::time::timeout(idle, messages.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(error))) => {
                return Err(QueueError::request(
                    format!("reading stream `{stream_name}`"),
                    error,
                ));
            }
            Ok(None) | Err(_) => break,
        };
        let seq = next.info().map(|i| i.stream_sequence).unwrap_or_default();
        let (payload, payload_base64) = match std::str::from_utf8(&next.payload) {
            Ok(text) => (Some(text.to_owned()), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(&next.payload)),
            ),
        };
        out.push(StoredMessage {
            seq,
            subject: next.subject.to_string(),
            headers: next.headers.as_ref().map(header_pairs).unwrap_or_default(),
            payload,
            payload_base64,
        });
        if seq >= last {
            break;
        }
    }
    Ok(out)
}
