#!/usr/bin/env bash
# Builds a Debian package of tutela: the binary in /usr/bin, the mount(8) helper, man pages,
# shell completions, the systemd units (as examples, not enabled) and the docs.
#
#   scripts/package.sh                       # builds the release binary, writes target/debian/
#   OUT=/tmp TUTELA_BIN=target/debug/tutela scripts/package.sh   # package a prebuilt binary
#
# Install with `sudo apt-get install ./tutela_VERSION_ARCH.deb`; remove with
# `sudo apt-get remove tutela`. The package depends on fuse3 (fusermount3, /etc/fuse.conf)
# and the TPM Software Stack's libraries (TPM key slots); fido2-tools is suggested (FIDO2
# security key slots).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
ARCH=$(dpkg --print-architecture)
OUT=${OUT:-target/debian}
if [ -z "${TUTELA_BIN:-}" ]; then
  command -v cargo >/dev/null || {
    echo "package.sh: building needs cargo (Rust $(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml) or newer), or give TUTELA_BIN=PATH" >&2
    exit 1
  }
  cargo build --release --locked --quiet
  TUTELA_BIN=target/release/tutela
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
pkg="$root/tutela_${VERSION}_${ARCH}"
install -D -s -m 0755 "$TUTELA_BIN" "$pkg/usr/bin/tutela"
# mount(8) looks for /sbin/mount.fuse.tutela; on Debian /sbin is /usr/sbin.
mkdir -p "$pkg/usr/sbin"
ln -s ../bin/tutela "$pkg/usr/sbin/mount.fuse.tutela"

man="$pkg/usr/share/man/man1"
"$pkg/usr/bin/tutela" manpages "$man" >/dev/null
gzip -9n "$man"/*.1
install -d "$pkg/usr/share/bash-completion/completions" "$pkg/usr/share/zsh/vendor-completions" \
  "$pkg/usr/share/fish/vendor_completions.d"
"$pkg/usr/bin/tutela" completions bash > "$pkg/usr/share/bash-completion/completions/tutela"
"$pkg/usr/bin/tutela" completions zsh > "$pkg/usr/share/zsh/vendor-completions/_tutela"
"$pkg/usr/bin/tutela" completions fish > "$pkg/usr/share/fish/vendor_completions.d/tutela.fish"

# The units call the packaged binary; they are examples to copy and edit (paths, vault),
# so they go to the docs, not to /lib/systemd/system where they would look ready to enable.
doc="$pkg/usr/share/doc/tutela"
install -d "$doc/systemd"
for u in scripts/systemd/*; do
  sed 's#/usr/local/bin/tutela#/usr/bin/tutela#g' "$u" > "$doc/systemd/$(basename "$u")"
done
install -m 0644 README.md SECURITY.md FORMAT.md "$doc/"
cat > "$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: tutela
License: MIT
EOF

size=$(du -sk "$pkg" | cut -f1)
install -d "$pkg/DEBIAN"
cat > "$pkg/DEBIAN/control" <<EOF
Package: tutela
Version: $VERSION
Architecture: $ARCH
Maintainer: tutela developers <tutela@localhost>
Depends: fuse3, libc6, libtss2-esys-3.0.2-0, libtss2-tctildr0, libtss2-mu0, libtss2-sys1, libtss2-tcti-device0
Suggests: fido2-tools, tpm2-tools
Installed-Size: $size
Section: utils
Priority: optional
Description: encrypted FUSE filesystem with per-client access policies and audit log
 tutela mounts a vault of encrypted files as a plaintext folder for ordinary programs,
 keeps only ciphertext on disk, fences each client's folder with an access policy on
 shared mounts and records every access and refusal in a tamper-evident audit log.
EOF

mkdir -p "$OUT"
dpkg-deb --root-owner-group --build "$pkg" "$OUT/" >/dev/null
echo "$OUT/tutela_${VERSION}_${ARCH}.deb"
