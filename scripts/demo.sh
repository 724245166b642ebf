#!/usr/bin/env bash
# One command that sets tutela up on a fresh machine and shows it working: installs FUSE and
# tutela, creates a demo vault with a few client folders, mounts it, and shows the plaintext
# view next to the ciphertext on disk. Everything lives under a temp directory and is unmounted
# at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
export PATH="$HOME/.cargo/bin:$PATH"

work=$(mktemp -d /tmp/tutela-demo.XXXXXX)
vault="$work/vault"; mnt="$work/Clients"; pass="$work/passphrase"
mkdir -p "$mnt"
umask 077
printf 'demo passphrase, not for real data\n' > "$pass"
cleanup() { tutela unmount "$mnt" 2>/dev/null || true; }
trap cleanup EXIT

echo
echo "==> tutela init $vault"
tutela init "$vault" --passfile "$pass" 2>/dev/null

echo "==> tutela mount $vault $mnt"
tutela mount "$vault" "$mnt" --passfile "$pass" 2>/dev/null

mkdir -p "$mnt/clients/Acme Holdings/2025 tax return" "$mnt/clients/Bluebird LLC" "$mnt/firm"
printf 'Engagement letter for Acme Holdings.\nFee: 12,000 EUR\n' > "$mnt/clients/Acme Holdings/engagement-letter.txt"
printf 'Schedule C draft\n' > "$mnt/clients/Acme Holdings/2025 tax return/schedule-c.txt"
printf 'Bluebird: NDA signed 2026-03-01\n' > "$mnt/clients/Bluebird LLC/nda.txt"
ln -s "../clients/Acme Holdings/engagement-letter.txt" "$mnt/firm/acme-letter"

echo
echo "==> the plaintext view (what applications see):"
(cd "$mnt" && find . -mindepth 1 | sort | sed 's/^/    /')
echo
echo "    cat clients/Acme Holdings/engagement-letter.txt:"
sed 's/^/      /' "$mnt/clients/Acme Holdings/engagement-letter.txt"
echo
echo "==> the same vault on disk (what backups and cloud sync see):"
(cd "$vault" && find . -mindepth 1 | sort | sed 's/^/    /')
echo
first=$(find "$vault" -type f -size +40c ! -name tutela.conf | head -n 1)
echo "    first bytes of one encrypted file:"
od -A x -t x1z -N 64 "$first" | sed 's/^/      /'
echo
if grep -rqa "Acme" "$vault"; then echo "    plaintext found on disk: BUG"; exit 1; fi
echo "    grep -r Acme $vault: no match (names and contents are encrypted)"
echo
echo "==> tutela unmount $mnt"
tutela unmount "$mnt"
trap - EXIT
echo "    locked. The vault stays in $work (delete it when done)."
