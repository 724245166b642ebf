#![no_main]
// Untrusted bytes into tutela's name parser/decryptor: see src/fuzz_targets.rs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tutela::fuzz_targets::run("name", data);
});
