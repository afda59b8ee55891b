//! Per-plugin resource limits: memory, tables, instances, CPU time, fuel and the size of
//! what may cross the boundary from the guest.
//!
//! Limits are set per plugin ([`Limits`], in `PluginOptions`) and enforced per instance:
//! every `Store` gets its own [`StoreLimiter`] and its own call deadline. Each breach
//! surfaces as its own [`Error`](crate::Error) variant, never as a host panic or abort.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmtime::{ResourceLimiter, StoreContextMut, UpdateDeadline};

/// Limits of one plugin. The defaults suit a record-processing plugin; raise them for
/// heavier guests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory of one instance, all its memories together, in bytes.
    pub max_memory_bytes: usize,
    /// Elements of one table.
    pub max_table_elements: usize,
    /// Core instances, tables and memories one component instance may create.
    pub max_instances: usize,
    pub max_tables: usize,
    pub max_memories: usize,
    /// Wall-clock time one call (or one instantiation) may take; `None`: no deadline.
    /// Enforced by epoch interruption: a spinning guest is stopped within this plus two
    /// ticks of the runtime's epoch ticker, and yields to the async executor at every tick
    /// meanwhile (with or without a deadline). A guest blocked in a host call (a sleep)
    /// reaches no epoch check; a tokio timer stops it, so calls with a deadline need a
    /// tokio runtime with its time driver enabled (`enable_time` or `enable_all`).
    pub call_timeout: Option<Duration>,
    /// Fuel (roughly, wasm instructions) one call may burn, for deterministic metering.
    /// Needs a runtime created with `RuntimeConfig::fuel_metering`: loading a plugin with
    /// it on any other runtime fails with [`Error::InvalidLimits`](crate::Error::InvalidLimits).
    pub fuel_per_call: Option<u64>,
    /// Host memory the values lifted out of the guest in one call (results of an export,
    /// or arguments of a host import) may take. Bounds what a plugin can make the host
    /// allocate, even when it returns many aliases of one buffer or millions of tiny
    /// records: see [`HOST_BYTES_PER_TRANSFER_BYTE`].
    pub max_transfer_bytes: usize,
}

/// How many bytes of host memory one byte of wasmtime's "hostcall fuel" may stand for, at
/// worst. Wasmtime charges a lifted list `len * size_of::<T>()` of the host type `T` and a
/// string its length in bytes; what it does not see is the heap allocation behind each
/// non-empty string or list, which costs glibc's malloc at least 32 bytes. The worst case
/// is a list of 1-byte strings: 25 bytes charged (24 for the `String`, 1 for its text),
/// 56 allocated (24 + a 32-byte chunk), 2.24x; UTF-16 strings transcode to at most 1.5x.
/// Hence witplug gives wasmtime `max_transfer_bytes / 3` of fuel, so that lifted values
/// stay below `max_transfer_bytes` of host memory; a single large string or byte list
/// may then be a third of the cap.
pub const HOST_BYTES_PER_TRANSFER_BYTE: usize = 3;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_memory_bytes: 256 << 20,
            max_table_elements: 1 << 20,
            max_instances: 64,
            max_tables: 64,
            max_memories: 16,
            call_timeout: Some(Duration::from_secs(10)),
            fuel_per_call: None,
            max_transfer_bytes: 64 << 20,
        }
    }
}

impl Limits {
    /// The hostcall fuel wasmtime gets per call (see [`HOST_BYTES_PER_TRANSFER_BYTE`]).
    pub(crate) fn hostcall_fuel(&self) -> usize {
        self.max_transfer_bytes / HOST_BYTES_PER_TRANSFER_BYTE
    }

    /// Refuses limits no plugin could run under (zero memory, a zero deadline, …).
    pub(crate) fn validate(&self) -> Result<(), crate::Error> {
        let invalid = crate::Error::InvalidLimits;
        if self.max_memory_bytes == 0 {
            return Err(invalid("`max_memory_bytes` must be at least 1"));
        }
        if self.call_timeout == Some(Duration::ZERO) {
            return Err(invalid(
                "`call_timeout` must be longer than zero (`None` for no deadline)",
            ));
        }
        if self.fuel_per_call == Some(0) {
            return Err(invalid("`fuel_per_call` must be at least 1"));
        }
        if self.max_transfer_bytes < HOST_BYTES_PER_TRANSFER_BYTE {
            return Err(invalid("`max_transfer_bytes` must be at least 3"));
        }
        Ok(())
    }

    /// The effective limits, one line each, for `-v`.
    pub fn limit_lines(&self) -> Vec<String> {
        const MIB: usize = 1 << 20;
        let bytes = |n: usize| {
            if n.is_multiple_of(MIB) {
                format!("{} MiB", n / MIB)
            } else {
                format!("{n} bytes")
            }
        };
        vec![
            format!("limit: memory {}", bytes(self.max_memory_bytes)),
            match self.call_timeout {
                Some(timeout) => format!("limit: {timeout:?} per call"),
                None => "limit: no deadline".to_owned(),
            },
            match self.fuel_per_call {
                Some(fuel) => format!("limit: fuel {fuel} per call"),
                None => "limit: no fuel metering".to_owned(),
            },
            format!(
                "limit: transfer {} per call",
                bytes(self.max_transfer_bytes)
            ),
            format!(
                "limit: {} table elements, {} instances, {} tables, {} memories",
                self.max_table_elements, self.max_instances, self.max_tables, self.max_memories
            ),
        ]
    }
}

/// A limit a guest ran into; carried as the source of the failed call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("memory limit of {limit} bytes exceeded (the guest asked for {requested} bytes)")]
    Memory { limit: usize, requested: usize },
    #[error("table limit of {limit} elements exceeded (the guest asked for {requested})")]
    Table { limit: usize, requested: usize },
    #[error("call exceeded its time limit of {timeout:?}")]
    Deadline { timeout: Duration },
}

/// Which epoch tick of a call the guest has reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tick {
    First,
    Later,
}

/// The per-store half of [`Limits`]: the resource limiter and the current call's deadline.
pub struct StoreLimiter {
    limits: Limits,
    memory_in_use: usize,
    deadline: Option<Instant>,
    /// The epoch tick: a guest runs at least this long between two yields.
    tick: Duration,
    /// When the guest last started running (call start or resume after a yield), in
    /// nanoseconds since `epoch_base`; written by the yield future, hence atomic.
    running_since: Arc<AtomicU64>,
    epoch_base: Instant,
}

impl StoreLimiter {
    pub(crate) fn new(limits: Limits, tick: Duration) -> Self {
        Self {
            limits,
            memory_in_use: 0,
            deadline: None,
            tick,
            running_since: Arc::new(AtomicU64::new(0)),
            epoch_base: Instant::now(),
        }
    }

    fn mark_running(running_since: &AtomicU64, epoch_base: Instant, now: Instant) {
        let nanos = u64::try_from(now.duration_since(epoch_base).as_nanos()).unwrap_or(u64::MAX);
        running_since.store(nanos, Ordering::Relaxed);
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Starts a call (or an instantiation). The clock starts at the call's first epoch
    /// tick (see [`StoreLimiter::on_epoch_tick`]): most calls end before one, and reading
    /// the clock here was most of what a short call cost the host beyond wasmtime.
    pub(crate) fn start_call(&mut self) {
        self.deadline = None;
    }

    /// Stops the call if its time is up at `now`; the call's first tick starts its clock.
    fn check_deadline(&mut self, now: Instant) -> Result<Tick, LimitExceeded> {
        let Some(deadline) = self.deadline else {
            // The call's first tick: it started at most one tick ago. Counting the timeout
            // from now never stops a guest early, and at most one tick late. Without a
            // timeout, or one beyond what `Instant` can represent, the deadline is never
            // checked (`Instant` has no "never").
            let deadline = self.limits.call_timeout.and_then(|t| now.checked_add(t));
            if deadline.is_none() {
                self.limits.call_timeout = None;
            }
            self.deadline = Some(deadline.unwrap_or(now));
            return Ok(Tick::First);
        };
        match self.limits.call_timeout {
            Some(timeout) if now >= deadline => Err(LimitExceeded::Deadline { timeout }),
            _ => Ok(Tick::Later),
        }
    }

    /// Called by wasmtime when the guest reaches an epoch check past its epoch deadline:
    /// stop the guest once its time is up; otherwise yield to the executor if it has run
    /// for a whole tick, so that other tasks on the same thread keep flowing.
    pub(crate) fn on_epoch_tick<D>(
        mut store: StoreContextMut<'_, crate::PluginState<D>>,
    ) -> wasmtime::Result<UpdateDeadline> {
        let limiter = &mut store.data_mut().limiter;
        let now = Instant::now();
        if limiter.check_deadline(now).map_err(wasmtime::Error::new)? == Tick::First {
            Self::mark_running(&limiter.running_since, limiter.epoch_base, now);
            return Ok(UpdateDeadline::Continue(1));
        }
        // The epoch also advances while the guest is parked; a guest that has just been
        // resumed must get a full tick of work before it yields again, or it would crawl.
        let since = limiter.running_since.load(Ordering::Relaxed);
        let running_for = now
            .duration_since(limiter.epoch_base)
            .saturating_sub(Duration::from_nanos(since));
        if running_for < limiter.tick {
            return Ok(UpdateDeadline::Continue(1));
        }
        let running_since = limiter.running_since.clone();
        let epoch_base = limiter.epoch_base;
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(async move {
                tokio::task::yield_now().await;
                Self::mark_running(&running_since, epoch_base, Instant::now());
            }),
        ))
    }
}

impl ResourceLimiter for StoreLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let requested = self
            .memory_in_use
            .saturating_add(desired.saturating_sub(current));
        if requested > self.limits.max_memory_bytes {
            // An error (rather than `Ok(false)`) traps the guest at once: a plugin that
            // ignores failed allocations cannot go on to misbehave.
            return Err(wasmtime::Error::new(LimitExceeded::Memory {
                limit: self.limits.max_memory_bytes,
                requested,
            }));
        }
        self.memory_in_use = requested;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limits.max_table_elements {
            return Err(wasmtime::Error::new(LimitExceeded::Table {
                limit: self.limits.max_table_elements,
                requested: desired,
            }));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.limits.max_instances
    }

    fn tables(&self) -> usize {
        self.limits.max_tables
    }

    fn memories(&self) -> usize {
        self.limits.max_memories
    }
}

/// Runs `call` for at most `timeout` of wall-clock time (no limit for `None`); on expiry
/// the call is dropped and the timeout returned.
///
/// The epoch deadline stops a guest only while it runs wasm code; this also stops it while
/// it is blocked in a host call (reading stdin, sleeping). Needs a tokio runtime with its
/// time driver enabled (`enable_time` or `enable_all`), as `tokio::time::timeout` does.
pub(crate) async fn within_wall_clock<F: std::future::Future>(
    timeout: Option<Duration>,
    call: F,
) -> Result<F::Output, Duration> {
    match timeout {
        Some(timeout) => tokio::time::timeout(timeout, call)
            .await
            .map_err(|_elapsed| timeout),
        None => Ok(call.await),
    }
}

/// Awaits one guest call (or instantiation) for at most `timeout` of wall-clock time. On
/// expiry the call is dropped and fails with [`LimitExceeded::Deadline`], the error an
/// epoch deadline gives, so that [`Instance::finish`](crate::Instance::finish) reports
/// [`Error::Timeout`](crate::Error::Timeout) and poisons the instance: a dropped wasmtime
/// call leaves its store mid-call, never to be entered again.
///
/// The cost for a call that ends at its first poll is one clock read (the timer is only
/// registered if the call has to wait).
pub(crate) async fn within_call_timeout<T>(
    timeout: Option<Duration>,
    call: impl std::future::Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    within_wall_clock(timeout, call)
        .await
        .unwrap_or_else(|timeout| Err(wasmtime::Error::new(LimitExceeded::Deadline { timeout })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max_memory_bytes: usize) -> StoreLimiter {
        StoreLimiter::new(
            Limits {
                max_memory_bytes,
                ..Limits::default()
            },
            Duration::from_millis(10),
        )
    }

    #[test]
    fn memory_is_counted_across_memories() {
        let mut limiter = limiter(100);
        assert!(limiter.memory_growing(0, 60, None).expect("fits"));
        let error = limiter
            .memory_growing(0, 50, None)
            .expect_err("60 + 50 > 100");
        assert_eq!(
            error.downcast_ref::<LimitExceeded>(),
            Some(&LimitExceeded::Memory {
                limit: 100,
                requested: 110
            })
        );
        assert!(
            limiter
                .memory_growing(60, 100, None)
                .expect("grows the first to 100")
        );
    }

    #[test]
    fn limits_no_plugin_could_run_under_are_refused() {
        for limits in [
            Limits {
                max_memory_bytes: 0,
                ..Limits::default()
            },
            Limits {
                call_timeout: Some(Duration::ZERO),
                ..Limits::default()
            },
            Limits {
                fuel_per_call: Some(0),
                ..Limits::default()
            },
            Limits {
                max_transfer_bytes: 2,
                ..Limits::default()
            },
        ] {
            let error = limits.validate().expect_err("invalid").to_string();
            assert!(error.contains("invalid limits"), "{error}");
        }
        Limits {
            call_timeout: None,
            ..Limits::default()
        }
        .validate()
        .expect("no deadline is valid");
    }

    #[test]
    fn hostcall_fuel_is_a_third_of_the_transfer_cap() {
        let limits = Limits {
            max_transfer_bytes: 3 << 20,
            ..Limits::default()
        };
        assert_eq!(limits.hostcall_fuel(), 1 << 20);
    }

    #[test]
    fn limit_lines_say_when_there_is_no_deadline() {
        let lines = Limits {
            call_timeout: None,
            ..Limits::default()
        }
        .limit_lines();
        assert!(
            lines.contains(&"limit: no deadline".to_owned()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"limit: memory 256 MiB".to_owned()),
            "{lines:?}"
        );
    }

    /// `call_timeout: None` never stops a call, however many ticks (and hours) it runs;
    /// the same limiter with a timeout stops it once the timeout has passed.
    #[test]
    fn without_a_timeout_no_tick_stops_the_call() {
        let start = Instant::now();
        let mut limiter = StoreLimiter::new(
            Limits {
                call_timeout: None,
                ..Limits::default()
            },
            Duration::from_millis(10),
        );
        limiter.start_call();
        assert_eq!(limiter.check_deadline(start), Ok(Tick::First));
        for hour in 1..=1000 {
            let now = start + Duration::from_secs(3600 * hour);
            assert_eq!(limiter.check_deadline(now), Ok(Tick::Later), "hour {hour}");
        }

        let timeout = Duration::from_millis(50);
        let mut limiter = StoreLimiter::new(
            Limits {
                call_timeout: Some(timeout),
                ..Limits::default()
            },
            Duration::from_millis(10),
        );
        limiter.start_call();
        assert_eq!(limiter.check_deadline(start), Ok(Tick::First));
        assert_eq!(
            limiter.check_deadline(start + Duration::from_millis(49)),
            Ok(Tick::Later)
        );
        assert_eq!(
            limiter.check_deadline(start + timeout),
            Err(LimitExceeded::Deadline { timeout })
        );
        // A new call starts a new clock.
        limiter.start_call();
        assert_eq!(
            limiter.check_deadline(start + Duration::from_secs(3600)),
            Ok(Tick::First)
        );
    }

    /// A call still waiting at its timeout fails with the deadline error an epoch deadline
    /// gives; one that ends in time keeps its own result.
    #[tokio::test]
    async fn a_waiting_call_fails_at_its_timeout() {
        let timeout = Duration::from_millis(50);
        let waiting = std::future::pending::<wasmtime::Result<()>>();
        let watchdog = Duration::from_secs(20);
        let error = tokio::time::timeout(watchdog, within_call_timeout(Some(timeout), waiting))
            .await
            .expect("stopped before the watchdog")
            .expect_err("times out");
        assert_eq!(
            error.downcast_ref::<LimitExceeded>(),
            Some(&LimitExceeded::Deadline { timeout })
        );
        let done = within_call_timeout(Some(timeout), async { Ok(7) }).await;
        assert_eq!(done.expect("in time"), 7);
        let done = within_call_timeout(None, async { Ok(8) }).await;
        assert_eq!(done.expect("no deadline"), 8);
    }

    #[test]
    fn tables_are_capped_per_table() {
        let mut limiter = StoreLimiter::new(
            Limits {
                max_table_elements: 10,
                ..Limits::default()
            },
            Duration::from_millis(10),
        );
        assert!(limiter.table_growing(0, 10, None).expect("fits"));
        assert!(limiter.table_growing(10, 11, None).is_err());
    }
}
