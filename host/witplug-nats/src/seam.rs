//! The seam between the worker and a queue engine: a [`Source`] of inputs that are
//! acknowledged one by one, and a [`Sink`] that confirms each publish. JetStream
//! (`jetstream.rs`) is the one engine built; another (Redis Streams, Kafka) would implement
//! these three traits and reuse the whole worker.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::QueueError;
use crate::contract::Position;

/// One input message, with the handle that settles it.
pub struct Input<A> {
    pub payload: Bytes,
    pub headers: Vec<(String, String)>,
    pub position: Position,
    pub acker: A,
}

/// Settles one input. Consumed by the call: an input is settled once.
pub trait Acker: Send + Sync + 'static {
    /// Done with it; resolves once the engine has recorded the ack, so that it will not
    /// be delivered again.
    fn ack(self) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Deliver it again after `delay` (to this worker or another).
    fn retry_later(self, delay: Duration) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// Where inputs come from.
pub trait Source: Send + 'static {
    type Acker: Acker;

    /// Waits for at least one input, then returns it with whatever else is ready at once,
    /// up to `max`. Cancel-safe: dropping the future loses no input.
    fn next_batch(
        &mut self,
        max: usize,
    ) -> impl Future<Output = Result<Vec<Input<Self::Acker>>, QueueError>> + Send;

    /// At shutdown: hands back the inputs received but not yet handed out, so that other
    /// workers get them now rather than after the ack wait.
    fn give_back(&mut self) -> impl Future<Output = ()> + Send;
}

/// One message to publish.
#[derive(Clone, Debug)]
pub struct Output {
    pub subject: String,
    /// The engine's de-duplication id: the same for every redelivery of the input.
    pub id: String,
    pub headers: Vec<(String, String)>,
    pub payload: Bytes,
}

/// Where outputs go.
pub trait Sink: Clone + Send + Sync + 'static {
    type Receipt: Future<Output = Result<Published, QueueError>> + Send + 'static;

    /// Sends `output`; the receipt resolves when the engine has stored it.
    fn publish(
        &self,
        output: Output,
    ) -> impl Future<Output = Result<Self::Receipt, QueueError>> + Send;

    /// The largest payload plus headers the engine takes in one message.
    fn max_message_bytes(&self) -> usize;
}

/// What the engine said of a stored message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// The engine already had a message with this id (a redelivered input's output).
    pub duplicate: bool,
}
