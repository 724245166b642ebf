#!/usr/bin/env bash
# Installs what tutela needs on a fresh Debian/Ubuntu machine (FUSE 3) and the tutela binary.
# Usage: scripts/install.sh            (as root, or with sudo available)
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if ! command -v fusermount3 >/dev/null 2>&1; then
  echo "==> installing fuse3"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq fuse3 >/dev/null
fi
if [ ! -e /dev/fuse ]; then
  echo "tutela: /dev/fuse is missing: load the fuse module (modprobe fuse) or run in a VM/container with FUSE" >&2
  exit 1
fi
echo "==> building and installing tutela (cargo install --path .)"
cargo install --locked --path . --root "${CARGO_INSTALL_ROOT:-$HOME/.cargo}" >/dev/null
echo "==> installed: $(command -v tutela || echo "$HOME/.cargo/bin/tutela")"
