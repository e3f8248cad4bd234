//! Arbitrary bytes, in arbitrary chunks, through the revocation feed's SSE parser: it may
//! refuse, never panic or grow without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_verify::sse::{Parser, MAX_EVENT_BYTES};

fuzz_target!(|data: &[u8]| {
    let mut p = Parser::new();
    let split = data.first().map(|b| usize::from(*b % 16) + 1).unwrap_or(1);
    for chunk in data.chunks(split) {
        match p.push(chunk) {
            Ok(events) => {
                for e in events {
                    assert!(e.data.len() <= MAX_EVENT_BYTES);
                }
            }
            Err(_) => return,
        }
    }
});
