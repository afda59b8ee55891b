//! Typed errors of the queue crate.

/// What can go wrong talking to the queue engine or setting a pipeline up.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot connect to NATS at {url}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },

    /// A pipeline that could not keep its promises: nowhere to put outputs, a duplicate
    /// window too short for exactly-once output, a consumer with other settings.
    #[error("{0}")]
    Setup(String),

    /// A JetStream request failed (stream or consumer lookup, creation, a fetch).
    #[error("{what}")]
    Request {
        what: String,
        #[source]
        source: async_nats::Error,
    },

    /// Publishing a message failed; the input that produced it is not acknowledged.
    #[error("publishing to `{subject}` failed: {reason}")]
    Publish { subject: String, reason: String },

    /// Acknowledging an input failed; JetStream delivers it again after its ack wait.
    #[error("acknowledging input {sequence} failed: {reason}")]
    Ack { sequence: u64, reason: String },

    /// The message stream of the consumer ended (the connection is gone for good).
    #[error("the consumer's message stream ended")]
    SourceClosed,

    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),

    #[error(transparent)]
    Metrics(#[from] witplug_metrics::MetricsError),
}

impl QueueError {
    pub(crate) fn request(what: impl Into<String>, source: impl Into<async_nats::Error>) -> Self {
        Self::Request {
            what: what.into(),
            source: source.into(),
        }
    }
}
