//! Arbitrary bytes through the `witplug transform` reader (`jsonl::LineReader` and
//! `jsonl::parse_input_line`), as the CLI runs them.
//!
//! Must hold: no panic; exactly one line per input line (a line ends at `\n`; a last line
//! without one counts), numbered 1, 2, 3… in order; a line that is not a record gives an
//! `invalid-input` output line that is JSON; a record, written back and read again, is
//! written the same way (nothing changes in transit, floats and duplicate names included).

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value as Json;
use witplug::jsonl;

/// Small, so that the over-long path is taken often.
const MAX_LINE_BYTES: usize = 64;

fuzz_target!(|data: &[u8]| {
    let newlines = data.iter().filter(|&&b| b == b'\n').count();
    let expected = newlines + usize::from(data.last().is_some_and(|&b| b != b'\n'));
    let mut numbers = Vec::new();
    for line in jsonl::LineReader::new(data, MAX_LINE_BYTES) {
        let line = line.expect("reading a slice cannot fail");
        numbers.push(line.number);
        match jsonl::parse_input_line(&line) {
            Ok(record) => {
                let written = jsonl::record_line(&record);
                let again = jsonl::parse_record(&written)
                    .unwrap_or_else(|e| panic!("written record {written} reads back as {e}"));
                assert_eq!(jsonl::record_line(&again), written);
            }
            Err(error) => {
                let output = jsonl::invalid_input_line(line.number, &error);
                let json: Json = serde_json::from_str(&output).expect("output line is JSON");
                assert_eq!(json["outcome"], "invalid-input");
                assert_eq!(json["line"], line.number);
            }
        }
    }
    assert_eq!(numbers, (1..=expected).collect::<Vec<_>>());
});
