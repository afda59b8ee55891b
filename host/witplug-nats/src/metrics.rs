//! What a worker counts, in Prometheus text format at `GET /metrics`.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use witplug::PluginVersion;

use crate::QueueError;

type Labels = Vec<(&'static str, String)>;

/// The worker's counters. Cheap to update from any task.
pub struct Metrics {
    registry: Arc<Registry>,
    pub records_in: Counter,
    records: Family<Labels, Counter>,
    pub output_messages: Counter,
    pub dead_lettered: Counter,
    pub redeliveries: Counter,
    pub duplicates: Counter,
    pub publish_failures: Counter,
    pub batch_duration: Histogram,
    plugin_info: Family<Labels, Gauge>,
    pub swaps: Counter,
    pub swaps_refused: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let records_in = Counter::default();
        let records = Family::<Labels, Counter>::default();
        let output_messages = Counter::default();
        let dead_lettered = Counter::default();
        let redeliveries = Counter::default();
        let duplicates = Counter::default();
        let publish_failures = Counter::default();
        // 0.5 ms to ~16 s.
        let batch_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let plugin_info = Family::<Labels, Gauge>::default();
        let swaps = Counter::default();
        let swaps_refused = Counter::default();
        // The client library adds `_total` to counter names.
        registry.register(
            "witplug_records_in",
            "Inputs received (each delivery counts)",
            records_in.clone(),
        );
        registry.register(
            "witplug_records",
            "Inputs handled, by outcome (each delivery counts)",
            records.clone(),
        );
        registry.register(
            "witplug_output_messages",
            "Records published to the output subject",
            output_messages.clone(),
        );
        registry.register(
            "witplug_dead_lettered",
            "Inputs published to the dead-letter subject",
            dead_lettered.clone(),
        );
        registry.register(
            "witplug_redeliveries",
            "Inputs received more than once",
            redeliveries.clone(),
        );
        registry.register(
            "witplug_duplicates",
            "Publishes the server dropped as duplicates (outputs of a redelivered input)",
            duplicates.clone(),
        );
        registry.register(
            "witplug_publish_failures",
            "Inputs whose outputs could not be stored (delivered again)",
            publish_failures.clone(),
        );
        registry.register(
            "witplug_batch_duration_seconds",
            "Time from a batch's start to its last ack",
            batch_duration.clone(),
        );
        registry.register(
            "witplug_plugin_info",
            "The plugin version in use (1)",
            plugin_info.clone(),
        );
        registry.register(
            "witplug_plugin_swaps",
            "Plugin versions swapped in",
            swaps.clone(),
        );
        registry.register(
            "witplug_plugin_swaps_refused",
            "New plugin versions refused (the old one kept serving)",
            swaps_refused.clone(),
        );
        Self {
            registry: Arc::new(registry),
            records_in,
            records,
            output_messages,
            dead_lettered,
            redeliveries,
            duplicates,
            publish_failures,
            batch_duration,
            plugin_info,
            swaps,
            swaps_refused,
        }
    }

    pub fn record_outcome(&self, outcome: &'static str) {
        self.records
            .get_or_create(&vec![("outcome", outcome.to_owned())])
            .inc();
    }

    /// The version in use is the only one with the gauge at 1.
    pub fn plugin_in_use(&self, version: &PluginVersion) {
        self.plugin_info.clear();
        self.plugin_info
            .get_or_create(&vec![
                ("name", version.name.clone()),
                ("version", version.version.clone()),
                ("digest", version.digest.clone()),
            ])
            .set(1);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        witplug_metrics::render(&self.registry)
    }
}

/// Serves `GET /metrics` on `addr` until the task is dropped; returns the bound address
/// (port 0 picks a free one).
pub async fn serve(
    addr: &str,
    metrics: Arc<Metrics>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), QueueError> {
    Ok(witplug_metrics::serve(addr, Arc::clone(&metrics.registry)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_their_labels() {
        let metrics = Metrics::new();
        metrics.records_in.inc_by(3);
        metrics.record_outcome("keep");
        metrics.record_outcome("keep");
        metrics.plugin_in_use(&PluginVersion {
            name: "n".into(),
            version: "1.0".into(),
            digest: "sha256:ab".into(),
        });
        metrics.plugin_in_use(&PluginVersion {
            name: "n".into(),
            version: "2.0".into(),
            digest: "sha256:cd".into(),
        });
        let text = metrics.render();
        assert!(text.contains("witplug_records_in_total 3"), "{text}");
        assert!(
            text.contains("witplug_records_total{outcome=\"keep\"} 2"),
            "{text}"
        );
        assert!(text.contains("digest=\"sha256:cd\"} 1"), "{text}");
        assert!(
            !text.contains("sha256:ab"),
            "the old version is gone: {text}"
        );
        assert!(
            text.contains("witplug_batch_duration_seconds_bucket"),
            "{text}"
        );
    }
}
