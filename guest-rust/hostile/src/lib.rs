//! `hostile`: a `transform-plugin` that attacks its host on demand, for host tests only.
//!
//! The key of each record selects an attack; its parameters are fields of the record (the
//! first field of that name). Records are handled in order, so a batch runs every attack
//! up to the first one that never returns.
//!
//! - Block: `sleep` sleeps `ms` (default 60,000) milliseconds in `wasi:io/poll`, where no
//!   epoch check is reached, then keeps the record.
//! - Never return: `spin` (pure compute), `log-storm` and `config-storm` (host calls in a
//!   loop), `recurse` (stack), `alloc-bomb` (allocator), `grow-memory` (raw `memory.grow`;
//!   returns an error outcome only if the host sets no memory limit at all).
//! - Return too much: `huge-return` (`bytes`, default 16 MiB of text), `huge-list` (`count`
//!   copies of the record, default 1,000,000).
//! - Reach for what was not granted: `read`, `write`, `list-dir` (`path`, `content`),
//!   `env` (`name`), `env-all`, `tcp-connect` (`addr`), `dns` (`host`), `udp-bind`.
//!   Success keeps the record with the result appended; a refusal is an error outcome
//!   (`io`, `env`, `net`) whose message is the guest's own error text.
//! - Look for another instance's leftovers: `residue` keeps the record with a boolean
//!   `residue` field, true if its static memory is not as the component's image says
//!   (then writes over it, for the next instance to find).
//! - `panic` panics; any other key keeps the record unchanged.

wit_bindgen::generate!({ path: "../../wit", world: "transform-plugin" });

use std::hint::black_box;
use std::net::{TcpStream, ToSocketAddrs as _, UdpSocket};
use std::sync::atomic::{AtomicU8, Ordering};
use std::{env, fs};

use exports::witplug::plugin::metadata::{self, PluginInfo};
use exports::witplug::plugin::transformer::{self, Outcome, RecordError};
use witplug::plugin::types::{Field, Record, Value};
use witplug::plugin::{config, logging};

/// Default size of the `huge-return` text: far above any sensible result cap.
const DEFAULT_HUGE_BYTES: i64 = 16 * 1024 * 1024;
/// Default number of records `huge-list` splits into.
const DEFAULT_HUGE_COUNT: i64 = 1_000_000;
/// Default length of `sleep`: far beyond any test's deadline.
const DEFAULT_SLEEP_MS: i64 = 60_000;
/// One allocation of `alloc-bomb`.
const MIB: usize = 1024 * 1024;

/// Zero-initialised static memory (`.bss`), and static memory with non-zero initial
/// contents (`.data`, part of the component's memory image), for `residue`.
static ZEROED: [AtomicU8; 64 * 1024] = [const { AtomicU8::new(0) }; 64 * 1024];
static INITIALISED: [AtomicU8; 4096] = [const { AtomicU8::new(1) }; 4096];

struct Hostile;

impl metadata::Guest for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "hostile".to_owned(),
            version: "0.1.0".to_owned(),
            description: "Attacks its host on demand; for tests only. (Rust guest)".to_owned(),
        }
    }
}

impl transformer::Guest for Hostile {
    fn process_batch(batch: Vec<Record>) -> Vec<Outcome> {
        // Allocated up front: `grow-memory` may leave no room for it afterwards.
        let mut outcomes = Vec::with_capacity(batch.len());
        for record in batch {
            outcomes.push(attack(record));
        }
        outcomes
    }
}

/// Runs the attack that the record's key names.
fn attack(record: Record) -> Outcome {
    let result = match record.key.as_str() {
        "spin" => spin(),
        "sleep" => sleep(record),
        "log-storm" => loop {
            logging::log(logging::Level::Trace, "storm", &[]);
        },
        "config-storm" => loop {
            black_box(config::get("storm"));
        },
        "grow-memory" => Err(grow_memory()),
        "alloc-bomb" => alloc_bomb(),
        "huge-return" => huge_return(record),
        "huge-list" => huge_list(record),
        "recurse" => {
            recurse(0);
            unreachable!("unbounded recursion returned")
        }
        "read" => read(record),
        "write" => write(record),
        "list-dir" => list_dir(record),
        "env" => env_var(record),
        "env-all" => Ok(env_all(record)),
        "tcp-connect" => tcp_connect(record),
        "dns" => dns(record),
        "udp-bind" => udp_bind(record),
        "residue" => Ok(residue(record)),
        "panic" => panic!("hostile plugin panicked"),
        _ => Ok(Outcome::Keep(record)),
    };
    result.unwrap_or_else(Outcome::Error)
}

/// Whether this instance's static memory was already written (by an earlier call on the
/// same instance, or by another instance if the host failed to reset a reused slot);
/// then marks it.
fn residue(record: Record) -> Outcome {
    let dirty = ZEROED.iter().any(|b| b.load(Ordering::Relaxed) != 0)
        || INITIALISED.iter().any(|b| b.load(Ordering::Relaxed) != 1);
    for byte in &ZEROED {
        byte.store(0xAA, Ordering::Relaxed);
    }
    for byte in &INITIALISED {
        byte.store(0xBB, Ordering::Relaxed);
    }
    keep_with(record, "residue", Value::Boolean(dirty))
}

/// An endless pure computation: `black_box` makes every step observable, so the optimiser
/// can neither drop the loop nor compute its result.
fn spin() -> ! {
    let mut counter = 0_u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Sleeps `ms` (default 60 s) milliseconds, then keeps the record.
fn sleep(record: Record) -> Result<Outcome, RecordError> {
    let ms = integer_param(&record, "ms", DEFAULT_SLEEP_MS)?;
    std::thread::sleep(std::time::Duration::from_millis(ms as u64));
    Ok(Outcome::Keep(record))
}

/// Grows linear memory behind the allocator's back, 16 pages (1 MiB) at a time, until
/// `memory.grow` fails; the host should trap it long before.
#[cfg(target_arch = "wasm32")]
fn grow_memory() -> RecordError {
    use core::arch::wasm32::{memory_grow, memory_size};
    // Memory for the error message and the return value, freed once memory is full:
    // without it they could not be allocated and the call would abort instead.
    let reserve = black_box(vec![1_u8; 64 * 1024]);
    while memory_grow::<0>(16) != usize::MAX {}
    drop(reserve);
    let pages = memory_size::<0>();
    record_error(
        "grow-refused",
        format!("memory.grow refused after {pages} pages"),
    )
}

/// Native builds (only for `cargo check`) have no wasm memory to grow.
#[cfg(not(target_arch = "wasm32"))]
fn grow_memory() -> RecordError {
    record_error("grow-refused", "not a wasm32 build".to_owned())
}

/// Hoards filled 1 MiB buffers (filled with a non-zero byte, so that every page is really
/// written) until allocation fails, which aborts.
fn alloc_bomb() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![0xA5; MIB]);
        // Keeps the allocations observable: unused ones could be optimised away.
        black_box(&mut hoard);
    }
}

/// Non-tail recursion: the addition after the call (on black-boxed values) keeps every
/// frame alive, so this cannot become a loop. Never returns.
#[expect(unconditional_recursion, reason = "exhausting the stack is the point")]
fn recurse(depth: u64) -> u64 {
    let below = recurse(black_box(depth.wrapping_add(1)));
    black_box(below).wrapping_add(depth)
}

/// Keeps the record with a `blob` of `bytes` (default 16 MiB) ASCII `x`s.
fn huge_return(record: Record) -> Result<Outcome, RecordError> {
    let bytes = integer_param(&record, "bytes", DEFAULT_HUGE_BYTES)?;
    Ok(keep_with(record, "blob", Value::Text("x".repeat(bytes))))
}

/// Splits the record into `count` (default 1,000,000) copies of itself.
fn huge_list(record: Record) -> Result<Outcome, RecordError> {
    let count = integer_param(&record, "count", DEFAULT_HUGE_COUNT)?;
    Ok(Outcome::Split(vec![record; count]))
}

/// Reads the file `path`: its text (lossy UTF-8) in `content`.
fn read(record: Record) -> Result<Outcome, RecordError> {
    let path = text_param(&record, "path")?;
    let bytes = fs::read(path).map_err(|e| record_error("io", e.to_string()))?;
    let content = String::from_utf8_lossy(&bytes).into_owned();
    Ok(keep_with(record, "content", Value::Text(content)))
}

/// Writes `content` to the file `path`.
fn write(record: Record) -> Result<Outcome, RecordError> {
    let path = text_param(&record, "path")?;
    let content = text_param(&record, "content")?;
    fs::write(path, content).map_err(|e| record_error("io", e.to_string()))?;
    Ok(Outcome::Keep(record))
}

/// Lists the directory `path`: the sorted names of its entries in `entries`.
fn list_dir(record: Record) -> Result<Outcome, RecordError> {
    let path = text_param(&record, "path")?;
    let io_error = |e: std::io::Error| record_error("io", e.to_string());
    let mut entries = fs::read_dir(path)
        .map_err(io_error)?
        .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<Vec<String>, std::io::Error>>()
        .map_err(io_error)?;
    entries.sort();
    Ok(keep_with(record, "entries", Value::TextList(entries)))
}

/// Reads the environment variable `name` into `value`.
fn env_var(record: Record) -> Result<Outcome, RecordError> {
    let name = text_param(&record, "name")?;
    let value = env::var(name).map_err(|e| match e {
        env::VarError::NotPresent => record_error("env", format!("{name} is not set")),
        env::VarError::NotUnicode(_) => record_error("env", format!("{name} is not Unicode")),
    })?;
    Ok(keep_with(record, "value", Value::Text(value)))
}

/// Every environment variable the guest sees, as sorted `NAME=VALUE` in `vars`.
fn env_all(record: Record) -> Outcome {
    // `vars_os`: `vars` would panic on a value that is not Unicode.
    let mut vars: Vec<String> = env::vars_os()
        .map(|(name, value)| format!("{}={}", name.display(), value.display()))
        .collect();
    vars.sort();
    keep_with(record, "vars", Value::TextList(vars))
}

/// Opens a TCP connection to `addr` (`IP:PORT`, or `HOST:PORT`) and closes it.
fn tcp_connect(record: Record) -> Result<Outcome, RecordError> {
    let addr = text_param(&record, "addr")?;
    TcpStream::connect(addr).map_err(|e| record_error("net", e.to_string()))?;
    Ok(keep_with(record, "connected", Value::Boolean(true)))
}

/// Resolves `host`: its IP addresses, in the resolver's order, in `addresses`.
fn dns(record: Record) -> Result<Outcome, RecordError> {
    let host = text_param(&record, "host")?;
    let addresses = (host, 80)
        .to_socket_addrs()
        .map_err(|e| record_error("net", e.to_string()))?
        .map(|addr| addr.ip().to_string())
        .collect();
    Ok(keep_with(record, "addresses", Value::TextList(addresses)))
}

/// Binds a UDP socket to any local address.
fn udp_bind(record: Record) -> Result<Outcome, RecordError> {
    UdpSocket::bind("0.0.0.0:0").map_err(|e| record_error("net", e.to_string()))?;
    Ok(keep_with(record, "bound", Value::Boolean(true)))
}

/// The value of the record's first field called `name`.
fn field<'a>(record: &'a Record, name: &str) -> Option<&'a Value> {
    record
        .fields
        .iter()
        .find(|field| field.name == name)
        .map(|field| &field.value)
}

/// A required text parameter.
fn text_param<'a>(record: &'a Record, name: &str) -> Result<&'a str, RecordError> {
    match field(record, name) {
        Some(Value::Text(text)) => Ok(text),
        _ => Err(record_error(
            "missing-field",
            format!("`{name}` must be a text field"),
        )),
    }
}

/// An optional non-negative integer parameter.
fn integer_param(record: &Record, name: &str, default: i64) -> Result<usize, RecordError> {
    let value = match field(record, name) {
        None => default,
        Some(Value::Integer(value)) => *value,
        Some(_) => {
            return Err(record_error(
                "invalid-field",
                format!("`{name}` must be an integer"),
            ));
        }
    };
    usize::try_from(value).map_err(|_| {
        record_error(
            "invalid-field",
            format!("`{name}` must be between 0 and {}", usize::MAX),
        )
    })
}

/// Keeps the record with one more field.
fn keep_with(mut record: Record, name: &str, value: Value) -> Outcome {
    record.fields.push(Field {
        name: name.to_owned(),
        value,
    });
    Outcome::Keep(record)
}

fn record_error(code: &str, message: String) -> RecordError {
    RecordError {
        code: code.to_owned(),
        message,
    }
}

export!(Hostile);
