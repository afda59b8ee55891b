//! What `witplug serve` counts, for `--metrics` (served by `witplug-metrics`).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Per route: requests by status, latency, instance start time, 503s, version swaps.
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram>,
    instance_start: Family<Labels, Histogram>,
    rejected: Family<Labels, Counter>,
    swaps: Family<Labels, Counter>,
}

fn route(name: &str) -> Labels {
    vec![("route", name.to_owned())]
}

impl Metrics {
    /// Registers the metrics, with every route's series present from the start (at 0).
    pub fn new<'a>(routes: impl Iterator<Item = &'a str>) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        // 50 us to ~1.6 s.
        let latency = Family::<Labels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.000_05, 2.0, 16))) as fn() -> Histogram,
        );
        // 5 us to ~80 ms.
        let instance_start = Family::<Labels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.000_005, 2.0, 15))) as fn() -> Histogram,
        );
        let rejected = Family::<Labels, Counter>::default();
        let swaps = Family::<Labels, Counter>::default();
        registry.register(
            "witplug_http_requests",
            "Requests answered, by route and status",
            requests.clone(),
        );
        registry.register(
            "witplug_http_request_duration_seconds",
            "Time from a request's arrival to its answer, by route",
            latency.clone(),
        );
        registry.register(
            "witplug_http_instance_start_seconds",
            "Time to get a handler instance for a request, by route",
            instance_start.clone(),
        );
        registry.register(
            "witplug_http_rejected",
            "Requests refused with 503 over the concurrency cap, by route",
            rejected.clone(),
        );
        registry.register(
            "witplug_http_handler_swaps",
            "Handler versions swapped in by --watch, by route",
            swaps.clone(),
        );
        let metrics = Self {
            registry: Arc::new(registry),
            requests,
            latency,
            instance_start,
            rejected,
            swaps,
        };
        for name in routes {
            let _ = metrics.rejected.get_or_create(&route(name));
            let _ = metrics.swaps.get_or_create(&route(name));
        }
        metrics
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    pub fn render(&self) -> String {
        witplug_metrics::render(&self.registry)
    }

    pub(crate) fn served(
        &self,
        name: &str,
        status: u16,
        elapsed: Duration,
        instance_start: Option<Duration>,
    ) {
        self.requests
            .get_or_create(&vec![
                ("route", name.to_owned()),
                ("status", status.to_string()),
            ])
            .inc();
        self.latency
            .get_or_create(&route(name))
            .observe(elapsed.as_secs_f64());
        if let Some(start) = instance_start {
            self.instance_start
                .get_or_create(&route(name))
                .observe(start.as_secs_f64());
        }
    }

    pub(crate) fn rejected(&self, name: &str) {
        self.rejected.get_or_create(&route(name)).inc();
    }

    pub(crate) fn swapped(&self, name: &str) {
        self.swaps.get_or_create(&route(name)).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_carry_route_and_status() {
        let metrics = Metrics::new(["auth"].into_iter());
        metrics.served(
            "auth",
            401,
            Duration::from_micros(300),
            Some(Duration::from_micros(20)),
        );
        metrics.served("auth", 401, Duration::from_micros(300), None);
        metrics.rejected("auth");
        let text = metrics.render();
        assert!(
            text.contains("witplug_http_requests_total{route=\"auth\",status=\"401\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("witplug_http_rejected_total{route=\"auth\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("witplug_http_instance_start_seconds_count{route=\"auth\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("witplug_http_handler_swaps_total{route=\"auth\"} 0"),
            "{text}"
        );
    }
}
