//! witplug records pipelines on NATS JetStream.
