#!/usr/bin/env bash
# Runs xfstests (fstests) against tutela mounts, from a checkout you fetched yourself:
#
#   git clone https://github.com/kdave/xfstests /var/tmp/xfstests   # or any mirror
#   sudo scripts/xfstests.sh /var/tmp/xfstests                     # the generic quick group
#   sudo scripts/xfstests.sh /var/tmp/xfstests generic/568 generic/003
#
# It installs the build dependencies (Debian/Ubuntu), builds the checkout, creates the users
# fstests needs, installs tutela (scripts/install.sh: the binary and mount.fuse.tutela), and
# writes a local.config with FSTYP=fuse, FUSE_SUBTYP=.tutela and two vaults as TEST_DEV and
# SCRATCH_DEV (in the mount table's source form, `tutela:/path`, which findmnt shows).
# Small edits to the checkout's common/rc (applied once, marked "tutela"):
# - `_fs_type` maps `fuse.tutela` to `fuse` (as it does for glusterfs and ceph-fuse);
# - `_scratch_mkfs` makes the scratch "filesystem" a fresh vault (fstests otherwise only
#   empties a FUSE scratch mount, so the many tests that need a new one are "not run");
# - `_try_scratch_mkfs_sized` makes it a fresh vault on a tmpfs of the size asked for.
# The test vault is kept on a tmpfs (XFSTESTS_SIZE, default 4G) mounted at WORK, the scratch
# vault on another (SCRATCH_SIZE, default 4G).
# Prints the pass / fail / not run counts and where the results are.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ] || [ ! -f "$1/check" ]; then
  echo "usage: $0 XFSTESTS_CHECKOUT [TESTS...] (a checkout with its ./check script)" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then echo "xfstests.sh: run as root (fstests mounts and adds users)" >&2; exit 2; fi
XFS=$(cd "$1" && pwd); shift
TESTS=("$@")
[ ${#TESTS[@]} -gt 0 ] || TESTS=(-g generic/quick)
WORK=${WORK:-/var/tmp/tutela-xfstests}

echo "==> build dependencies"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xfslibs-dev uuid-dev libtool-bin \
  e2fsprogs automake gcc make libacl1-dev libaio-dev xfsprogs libgdbm-dev gawk fio \
  liburing-dev libcap-dev attr acl bc dbench indent psmisc quota >/dev/null
echo "==> building $XFS"
make -C "$XFS" -j"$(nproc)" >/dev/null
for u in fsgqa 123456-fsgqa fsgqa2; do id "$u" >/dev/null 2>&1 || useradd -m "$u"; done
getent group fsgqa >/dev/null || groupadd fsgqa

echo "==> installing tutela"
scripts/install.sh >/dev/null
TUTELA=$(command -v tutela)

# The edits to common/rc, once.
rc="$XFS/common/rc"
if ! grep -q "tutela: a sized scratch" "$rc"; then
  sed -i '/^_try_scratch_mkfs_sized()$/,/^{$/{/^{$/a\
	# tutela: a sized scratch "mkfs" is a fresh vault on a tmpfs of that size\
	if [ "$FSTYP" = fuse ] \&\& [ -n "$TUTELA_MKFS" ]; then $TUTELA_MKFS "$1"; return $?; fi
}' "$rc"
fi
if ! grep -q "fuse.tutela/fuse" "$rc"; then
  sed -i "s|-e 's/fuse.ceph-fuse/ceph-fuse/'|-e 's/fuse.ceph-fuse/ceph-fuse/' -e 's/fuse.tutela/fuse/' # tutela|" "$rc"
  sed -i '/^_scratch_mkfs()$/,/^{$/{/^{$/a\
	# tutela: a fresh vault is the scratch "mkfs"\
	if [ "$FSTYP" = fuse ] \&\& [ -n "$TUTELA_MKFS" ]; then $TUTELA_MKFS; return $?; fi
}' "$rc"
fi

# Leftovers of an earlier run.
for m in "$WORK/test" "$WORK/scratch" "$WORK/scratch-vault"; do umount "$m" 2>/dev/null || true; done
umount "$WORK" 2>/dev/null || true
rm -rf "$WORK"
mkdir -p "$WORK"
# The vaults live on a tmpfs of their own: many tests fill the filesystem to ENOSPC, which
# on the host's disk takes long and starves everything else on the machine.
mount -t tmpfs -o "size=${XFSTESTS_SIZE:-4G},mode=0755" tutela-xfstests "$WORK"
mkdir -p "$WORK/test" "$WORK/scratch"
(umask 077 && printf 'xfstests passphrase\n' > "$WORK/pass")
# The vaults' tops are open as a fresh filesystem's root is (mode 0755): tests run as fsgqa.
umask 022
"$TUTELA" init "$WORK/test-vault" --passfile "$WORK/pass" >/dev/null
cat > "$WORK/mkfs-scratch" <<EOF
#!/bin/sh
# The scratch "mkfs": a new, empty vault where the old one was, on a tmpfs of its own (of the
# size given, for _scratch_mkfs_sized): a test that fills the scratch filesystem must not
# take the test vault's space.
umask 022
umount "$WORK/scratch" 2>/dev/null
umount "$WORK/scratch-vault" 2>/dev/null
rm -rf "$WORK/scratch-vault"
mkdir "$WORK/scratch-vault" || exit 1
mount -t tmpfs -o "size=\${1:-${SCRATCH_SIZE:-4G}},mode=0755" tutela-scratch "$WORK/scratch-vault" || exit 1
exec "$TUTELA" init "$WORK/scratch-vault" --passfile "$WORK/pass" >/dev/null
EOF
chmod 755 "$WORK/mkfs-scratch"
"$WORK/mkfs-scratch"

cat > "$XFS/local.config" <<EOF
# Written by tutela's scripts/xfstests.sh; run it again rather than editing.
export FSTYP=fuse
export FUSE_SUBTYP=.tutela
export TEST_DEV=tutela:$WORK/test-vault
export TEST_DIR=$WORK/test
export SCRATCH_DEV=tutela:$WORK/scratch-vault
export SCRATCH_MNT=$WORK/scratch
export TEST_FS_MOUNT_OPTS="-o passfile=$WORK/pass,allow_other"
export MOUNT_OPTIONS="-o passfile=$WORK/pass,allow_other"
export TUTELA_MKFS=$WORK/mkfs-scratch
EOF

echo "==> ./check ${TESTS[*]}"
cd "$XFS"
set +e
./check "${TESTS[@]}" 2>&1 | tee "$WORK/check.log"
set -e
passed=$(grep -c -E '^[a-z0-9]+/[0-9]+ +[0-9]+s' "$WORK/check.log" || true)
echo
grep -E '^(Ran|Not run|Failures|Passed all)' "$WORK/check.log" || true
echo "passed (with a time): $passed; full log: $WORK/check.log; results: $XFS/results/"
