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
BIN="$(command -v tutela || echo "${CARGO_INSTALL_ROOT:-$HOME/.cargo}/bin/tutela")"
echo "==> installed: $BIN"
# Man pages and shell completions, generated from the same argument definitions.
if [ "$(id -u)" -eq 0 ]; then
  MAN=/usr/local/share/man/man1; BASH_C=/usr/share/bash-completion/completions
  ZSH_C=/usr/local/share/zsh/site-functions; FISH_C=/usr/share/fish/vendor_completions.d
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
if [ "$(id -u)" -eq 0 ]; then
  # A stable path for systemd units, and the mount(8) helper for fstab and `mount -t fuse.tutela`.
  [ "$BIN" = /usr/local/bin/tutela ] || ln -sf "$BIN" /usr/local/bin/tutela
  ln -sf "$BIN" /sbin/mount.fuse.tutela
  echo "==> linked /usr/local/bin/tutela and /sbin/mount.fuse.tutela (fstab type fuse.tutela)"
fi
