#![no_main]
// Untrusted bytes into tutela's audit parser/decryptor: see src/fuzz_targets.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tutela::fuzz_targets::run("audit", data);
});
