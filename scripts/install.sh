#!/usr/bin/env bash
# Installs what tutela needs on a fresh Debian/Ubuntu machine (FUSE 3) and the tutela binary.
# Usage: scripts/install.sh            (as root, or with sudo available)
#
# As root the binary is copied (not linked) to $PREFIX/bin (default /usr/local/bin), where
# every user can run it; the mount(8) helper $SBIN/mount.fuse.tutela points at that copy.
# As an ordinary user it stays in ~/.cargo/bin. TUTELA_BIN=PATH installs an already built
# binary instead of building one (the tests use it).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PREFIX=${PREFIX:-/usr/local}
SBIN=${SBIN:-/sbin}
MSRV=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)

if ! command -v fusermount3 >/dev/null 2>&1; then
  echo "==> installing fuse3"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq fuse3 >/dev/null
fi
# Building needs the TPM Software Stack's headers (TPM key slots) and pkg-config to find them.
if [ -z "${TUTELA_BIN:-}" ] && ! pkg-config --exists tss2-esys 2>/dev/null; then
  echo "==> installing the TPM Software Stack's development files (libtss2-dev, pkg-config)"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq libtss2-dev pkg-config >/dev/null
fi
if [ ! -e /dev/fuse ]; then
  echo "tutela: /dev/fuse is missing: load the fuse module (modprobe fuse) or run in a VM/container with FUSE" >&2
  exit 1
fi
if [ -n "${TUTELA_BIN:-}" ]; then
  BIN=$TUTELA_BIN
else
  export PATH="$HOME/.cargo/bin:$PATH"
  if ! command -v cargo >/dev/null 2>&1; then
    echo "tutela: building it needs Rust $MSRV or newer (cargo); Debian 12's packaged rustc is too old: install Rust with rustup, then run this again" >&2
    exit 1
  fi
  echo "==> building and installing tutela (cargo install --path .)"
  cargo install --locked --path . --root "${CARGO_INSTALL_ROOT:-$HOME/.cargo}" >/dev/null
  BIN="${CARGO_INSTALL_ROOT:-$HOME/.cargo}/bin/tutela"
fi
if [ "$(id -u)" -eq 0 ]; then
  # A real copy: root's ~/.cargo is closed to other users (a link there gives them exit 126).
  mkdir -p "$PREFIX/bin" "$SBIN"
  if [ "$(readlink -f "$BIN")" != "$(readlink -f "$PREFIX/bin/tutela" 2>/dev/null || true)" ]; then
    install -m 0755 "$BIN" "$PREFIX/bin/tutela.new"
    mv -f "$PREFIX/bin/tutela.new" "$PREFIX/bin/tutela"
  fi
  BIN="$PREFIX/bin/tutela"
  # The mount(8) helper for fstab lines and `mount -t fuse.tutela`.
  ln -sf "$BIN" "$SBIN/mount.fuse.tutela"
  echo "==> installed $BIN (for every user) and $SBIN/mount.fuse.tutela (fstab type fuse.tutela)"
else
  echo "==> installed: $BIN"
fi
# Man pages and shell completions, generated from the same argument definitions.
if [ "$(id -u)" -eq 0 ]; then
  MAN=$PREFIX/share/man/man1; BASH_C=${BASH_COMPLETIONS:-/usr/share/bash-completion/completions}
  ZSH_C=$PREFIX/share/zsh/site-functions; FISH_C=${FISH_COMPLETIONS:-/usr/share/fish/vendor_completions.d}
else
  MAN="$HOME/.local/share/man/man1"; BASH_C="$HOME/.local/share/bash-completion/completions"
  ZSH_C="$HOME/.local/share/zsh/site-functions"; FISH_C="$HOME/.config/fish/completions"
fi
mkdir -p "$MAN" "$BASH_C" "$ZSH_C" "$FISH_C"
"$BIN" manpages "$MAN" >/dev/null
"$BIN" completions bash > "$BASH_C/tutela"
"$BIN" completions zsh > "$ZSH_C/_tutela"
"$BIN" completions fish > "$FISH_C/tutela.fish"
echo "==> man pages in $MAN, completions for bash, zsh and fish installed"
