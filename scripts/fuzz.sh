#!/usr/bin/env bash
# Fuzzes every target in fuzz/ (or the ones named) for SECONDS each with cargo-fuzz, on the
# nightly toolchain. A crash, leak or timeout fails the run: its input is copied to
# fuzz/corpus/<target>/crash-* (the stable smoke test, tests/fuzz_smoke.rs, then replays it
# in CI) and the command to reproduce it is printed. New interesting inputs the run found are
# merged into the corpus only with MERGE=1 (keeps the checked-in corpus small).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs=${1:-60}
shift || true
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: needs a nightly toolchain and cargo-fuzz: rustup toolchain install nightly && cargo install cargo-fuzz" >&2
  exit 2
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)

failed=()
for t in "${targets[@]}"; do
  echo "==> $t: ${secs}s"
  mkdir -p "corpus/$t" "artifacts/$t"
  work=$(mktemp -d)
  set +e
  cargo +nightly fuzz run "$t" "$work" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=1024 -timeout=5 -print_final_stats=1 \
    2>&1 | tail -n 12
  rc=${PIPESTATUS[0]}
  set -e
  for a in artifacts/"$t"/*; do
    [ -e "$a" ] || continue
    cp "$a" "corpus/$t/$(basename "$a")"
    echo "    found: fuzz/$a (kept as fuzz/corpus/$t/$(basename "$a")); reproduce: cd fuzz && cargo +nightly fuzz run $t $a"
  done
  if [ "${MERGE:-0}" = 1 ]; then
    cargo +nightly fuzz cmin "$t" "corpus/$t" >/dev/null 2>&1 || true
    cp -n "$work"/* "corpus/$t/" 2>/dev/null || true
  fi
  rm -rf "$work"
  [ "$rc" -eq 0 ] || failed+=("$t")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} target(s), ${secs}s each: nothing found"
