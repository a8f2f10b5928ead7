//! cargo-fuzz target `crd`: `targets::crd` (see `fuzz/targets.rs`).
#![no_main]

#[allow(dead_code)]
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = targets::crd(data);
});
