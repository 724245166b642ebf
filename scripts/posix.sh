#!/usr/bin/env bash
# POSIX conformance side by side: pjdfstest (crate 0.2.2) on a plain directory and on a tutela
# mount of the same machine; prints both summaries. Needs root (pjdfstest switches users).
# Usage: scripts/posix.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v pjdfstest >/dev/null || cargo install --locked pjdfstest@0.2.2
id tests >/dev/null 2>&1 || useradd -U -M -s /usr/sbin/nologin tests
cargo build --release -q
BIN="$PWD/target/release/tutela"
CONF="$PWD/scripts/pjdfstest/pjdfstest.toml"
W="$(mktemp -d)"; trap 'fusermount3 -uz "$W/mnt" 2>/dev/null || true; rm -rf "$W"' EXIT
mkdir -p "$W/plain" "$W/mnt"; chmod 777 "$W/plain"; chmod 755 "$W"
head -c 32 /dev/urandom | base64 > "$W/pass"; chmod 600 "$W/pass"
"$BIN" init "$W/vault" --passfile "$W/pass" >/dev/null
"$BIN" mount "$W/vault" "$W/mnt" --passfile "$W/pass" --allow-other
chmod 777 "$W/mnt"
echo "plain directory: $(cd "$W/plain" && pjdfstest -c "$CONF" -p "$W/plain" 2>&1 | grep Summary)"
echo "tutela:          $(cd "$W/mnt" && pjdfstest -c "$CONF" -p "$W/mnt" 2>&1 | grep Summary)"
"$BIN" unmount "$W/mnt"
