#!/usr/bin/env bash
# Side-by-side benchmark: tutela against gocryptfs, securefs (lite format), bindfs (FUSE
# without crypto) and the plain directory, on backing directories on the same disk, in one run,
# with the systems interleaved (A B C A B C ...). Prints medians and ratios.
#
#   sudo scripts/bench.sh                 # full run (needs root: drop_caches, mounts)
#   REPS=3 STREAM_MB=1024 FIO_SECS=15 sudo scripts/bench.sh
#   SYSTEMS="tutela tutela-policy gocryptfs" sudo scripts/bench.sh
# Rounds rotate the order of the systems, so none always runs first.
#
# Workloads: streaming write (1 MiB writes + fsync) and cold read back; fio 4 KiB random
# read/write mix on a 256 MiB file; untar of /usr/include (thousands of small files), cold
# ls -lR, cold read of every file, rm -rf; create/stat/delete of N small files in one
# directory, and a cold `find -printf %s` of that directory after a remount; git
# init+add+commit of the tree, then git status cold and warm; peak daemon RSS during the
# untar and daemon CPU seconds per GiB streamed.
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-3}
STREAM_MB=${STREAM_MB:-1024}
FIO_MB=${FIO_MB:-256}
FIO_SECS=${FIO_SECS:-15}
SMALL_N=${SMALL_N:-10000}
SYSTEMS=${SYSTEMS:-"tutela tutela-shared tutela-policy gocryptfs gocryptfs-shared securefs bindfs plain"}
WORK=${WORK:-/var/tmp/tutela-bench}

if [ "$(id -u)" -ne 0 ]; then echo "bench: run as root (it drops caches and mounts)" >&2; exit 2; fi
missing=()
for t in gocryptfs securefs bindfs fio git; do command -v "$t" >/dev/null || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v fusermount3 >/dev/null || { apt-get install -y -qq fuse3 >/dev/null; }
echo "==> building tutela (release)"
cargo build --release --quiet
TUTELA="$PWD/target/release/tutela"

# Leftovers of an interrupted run: unmount them before clearing the work directory.
awk -v w="$WORK/" 'index($2, w) == 1 {print $2}' /proc/mounts | while read -r m; do
  fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
done
rm -rf "$WORK"; mkdir -p "$WORK"
PASS="$WORK/pass"; printf 'benchmark passphrase\n' > "$PASS"; chmod 600 "$PASS"
TREE_TAR="$WORK/tree.tar"
tar -C /usr -cf "$TREE_TAR" include
RESULTS="$WORK/results.tsv"; : > "$RESULTS"

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }

daemon_pid() { # pid of the FUSE daemon serving $1
  case "$1" in
    tutela*) pgrep -f "$TUTELA mount .* $WORK/$1/mnt" | head -n1 ;;
    gocryptfs*) pgrep -f "gocryptfs .* $WORK/$1/mnt" | head -n1 ;;
    securefs) pgrep -f "securefs mount .* $WORK/securefs/mnt" | head -n1 ;;
    bindfs) pgrep -f "bindfs .* $WORK/bindfs/mnt" | head -n1 ;;
    *) echo "" ;;
  esac
}
cpu_ticks() { [ -n "$1" ] && awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

setup() { # create backing dirs (once)
  local s=$1 d="$WORK/$1"; mkdir -p "$d/back" "$d/mnt"
  case "$s" in
    tutela|tutela-shared|tutela-policy|tutela-syslog)
      "$TUTELA" init "$d/back" --passfile "$PASS" >/dev/null 2>&1
      if [ "$s" = tutela-policy ] || [ "$s" = tutela-syslog ]; then
        printf 'admins = ["root"]\n[clients.bench]\npath = "/bench"\nread = ["root"]\nwrite = ["root"]\n' > "$d/policy.toml"
        "$TUTELA" policy set "$d/back" "$d/policy.toml" --passfile "$PASS" >/dev/null
      fi ;;
    gocryptfs|gocryptfs-shared) gocryptfs -q -init -extpass "cat $PASS" -scryptn 10 "$d/back" >/dev/null ;;
    securefs) securefs create --format 4 --pass "benchmark passphrase" --pbkdf pkcs5-pbkdf2-hmac-sha256 -r 1000 "$d/back" >/dev/null 2>&1 ;;
  esac
}

mnt() { # mount system $1; prints the directory to work in
  local s=$1 d="$WORK/$1"
  case "$s" in
    tutela|tutela-policy) "$TUTELA" mount "$d/back" "$d/mnt" --passfile "$PASS" 2>/dev/null ;;
    # A multi-user mount without a policy: what kernel permission checks cost on their own
    # (a policy mount is always multi-user).
    tutela-shared) "$TUTELA" mount "$d/back" "$d/mnt" --passfile "$PASS" --allow-other 2>/dev/null ;;
    # A policy mount that also sends every audit record to the system log (/dev/log: on a
    # machine without a syslog daemon the socket is missing and every message is dropped;
    # with one that reads slowly its queue fills): what forwarding costs the mount.
    tutela-syslog) "$TUTELA" mount "$d/back" "$d/mnt" --passfile "$PASS" --audit-syslog 2>/dev/null ;;
    # -nosyslog: its daemon would otherwise print "Unix syslog delivery error" lines into
    # this output on machines without a syslog socket.
    gocryptfs) gocryptfs -q -nosyslog -extpass "cat $PASS" "$d/back" "$d/mnt" >/dev/null 2>&1 ;;
    # The peer of tutela's multi-user modes (tutela-shared, tutela-policy): the same kernel
    # permission checks (-allow_other implies default_permissions in gocryptfs).
    gocryptfs-shared) gocryptfs -q -nosyslog -allow_other -extpass "cat $PASS" "$d/back" "$d/mnt" >/dev/null 2>&1 ;;
    securefs) securefs mount -b --pass "benchmark passphrase" "$d/back" "$d/mnt" >/dev/null 2>&1; sleep 0.5 ;;
    # As its users run it fast: several threads and 128 KiB writes (libfuse 2 defaults to
    # one thread and 4 KiB writes, which made bindfs look slow for reasons of no interest).
    bindfs) bindfs --multithreaded -o big_writes "$d/back" "$d/mnt" ;;
    plain) ;;
  esac
  local w="$d/mnt"; [ "$s" = plain ] && w="$d/back"
  { [ "$s" = tutela-policy ] || [ "$s" = tutela-syslog ]; } && { mkdir -p "$w/bench"; w="$w/bench"; }
  echo "$w"
}

umnt() {
  local s=$1 d="$WORK/$1"
  [ "$s" = plain ] && return 0
  sync
  for _ in 1 2 3 4 5; do
    fusermount3 -u "$d/mnt" 2>/dev/null && break || umount "$d/mnt" 2>/dev/null && break || sleep 0.5
  done
  while mountpoint -q "$d/mnt"; do sleep 0.1; done
}

rec() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$RESULTS"; }

run_round() {
  local s=$1 w pid t0 t1 c0 c1 peak
  # --- streaming write / cold read ---
  drop   # start from a settled disk and an empty page cache, whatever ran before
  w=$(mnt "$s"); pid=$(daemon_pid "$s"); c0=$(cpu_ticks "$pid")
  t0=$(now); dd if=/dev/zero of="$w/stream" bs=1M count="$STREAM_MB" conv=fsync status=none; t1=$(now)
  rec "$s" "stream write MB/s" "$(echo "$STREAM_MB / $(secs "$t0" "$t1")" | bc -l)"
  local cw; cw=$(cpu_ticks "$pid")
  umnt "$s"; drop
  w=$(mnt "$s"); pid=$(daemon_pid "$s"); c1=$(cpu_ticks "$pid")
  t0=$(now); dd if="$w/stream" of=/dev/null bs=1M status=none; t1=$(now)
  rec "$s" "stream read MB/s" "$(echo "$STREAM_MB / $(secs "$t0" "$t1")" | bc -l)"
  if [ -n "$pid" ]; then
    local c2; c2=$(cpu_ticks "$pid")
      # write CPU from the first daemon plus read CPU from the remounted one, per GiB moved
    rec "$s" "daemon CPU s/GiB streamed" "$(echo "(($cw - $c0) + ($c2 - $c1)) / 100 / (2 * $STREAM_MB / 1024)" | bc -l)"
  fi
  rm -f "$w/stream"
  # --- fio random 4k mix ---
  local fio_out
  fio_out=$(fio --name=rand --filename="$w/fio" --size="${FIO_MB}M" --rw=randrw --rwmixread=70 --bs=4k \
      --ioengine=psync --runtime="$FIO_SECS" --time_based --numjobs=1 --group_reporting --output-format=terse 2>/dev/null | tail -n1)
  rec "$s" "fio 4k randrw IOPS" "$(echo "$fio_out" | awk -F';' '{print $8 + $49}')"
  rm -f "$w/fio"
  # --- untar, cold ls -lR, cold read-all, rm -rf; peak RSS during untar ---
  pid=$(daemon_pid "$s")
  peak=0
  # VmHWM is the daemon's high-water mark; each sample replaces the file whole (a sampler
  # killed mid-write must not leave it empty).
  ( while :; do r=$(awk '/VmHWM/{print $2}' "/proc/$pid/status" 2>/dev/null || true); [ -n "$r" ] && echo "$r" > "$WORK/peak.new" && mv "$WORK/peak.new" "$WORK/peak"; sleep 0.2; done ) &
  local sampler=$!
  t0=$(now); tar -C "$w" -xf "$TREE_TAR"; t1=$(now)
  kill $sampler 2>/dev/null || true; wait $sampler 2>/dev/null || true
  rec "$s" "untar s" "$(secs "$t0" "$t1")"
  peak=$(cat "$WORK/peak" 2>/dev/null || true); rm -f "$WORK/peak"
  [ -n "$pid" ] && [ -n "$peak" ] && rec "$s" "daemon peak RSS MiB" "$(echo "$peak / 1024" | bc -l)"
  umnt "$s"; drop; w=$(mnt "$s")
  t0=$(now); ls -lR "$w/include" > /dev/null; t1=$(now); rec "$s" "ls -lR cold s" "$(secs "$t0" "$t1")"
  umnt "$s"; drop; w=$(mnt "$s")
  t0=$(now); find "$w/include" -type f -exec cat {} + > /dev/null; t1=$(now); rec "$s" "read-all cold s" "$(secs "$t0" "$t1")"
  # --- git ---
  t0=$(now)
  git -C "$w/include" -c init.defaultBranch=main init -q
  git -C "$w/include" add -A
  git -C "$w/include" -c user.name=b -c user.email=b@b commit -qm bench
  t1=$(now); rec "$s" "git add+commit s" "$(secs "$t0" "$t1")"
  umnt "$s"; drop; w=$(mnt "$s")
  t0=$(now); git -C "$w/include" status --porcelain >/dev/null; t1=$(now); rec "$s" "git status cold s" "$(secs "$t0" "$t1")"
  t0=$(now); git -C "$w/include" status --porcelain >/dev/null; t1=$(now); rec "$s" "git status warm s" "$(secs "$t0" "$t1")"
  t0=$(now); rm -rf "$w/include"; t1=$(now); rec "$s" "rm -rf s" "$(secs "$t0" "$t1")"
  # --- small files: create, stat, delete N in one directory ---
  mkdir -p "$w/small"
  t0=$(now); (cd "$w/small" && seq 1 "$SMALL_N" | xargs touch); t1=$(now)
  rec "$s" "create ops/s" "$(echo "$SMALL_N / $(secs "$t0" "$t1")" | bc -l)"
  t0=$(now); (cd "$w/small" && seq 1 "$SMALL_N" | xargs stat --format=%s > /dev/null); t1=$(now)
  rec "$s" "stat ops/s" "$(echo "$SMALL_N / $(secs "$t0" "$t1")" | bc -l)"
  # A cold listing with sizes of one large directory (what `ls -l` or a file manager does
  # after a mount): nothing cached, so every entry's attributes come from the daemon.
  umnt "$s"; drop; w=$(mnt "$s")
  t0=$(now); find "$w/small" -printf '%s\n' > /dev/null; t1=$(now)
  rec "$s" "find -printf %s cold s" "$(secs "$t0" "$t1")"
  t0=$(now); (cd "$w/small" && seq 1 "$SMALL_N" | xargs rm -f); t1=$(now)
  rec "$s" "delete ops/s" "$(echo "$SMALL_N / $(secs "$t0" "$t1")" | bc -l)"
  rmdir "$w/small"
  umnt "$s"
}

for s in $SYSTEMS; do setup "$s"; done
# Each round starts one system later (A B C, B C A, C A B, ...): the first slot of a round
# follows the previous system's small-file work, whose writeback still loads the disk, and
# no system should always get that slot.
for r in $(seq 1 "$REPS"); do
  order=$(echo $SYSTEMS | awk -v k=$((r - 1)) '{for (i = 0; i < NF; i++) printf "%s ", $(((i + k) % NF) + 1)}')
  for s in $order; do
    echo "==> round $r/$REPS: $s"
    run_round "$s"
  done
done

python3 - "$RESULTS" $SYSTEMS <<'PY'
import sys, statistics, collections
path, systems = sys.argv[1], sys.argv[2:]
data = collections.defaultdict(list)
order = []
for line in open(path):
    s, m, v = line.rstrip("\n").split("\t")
    if m not in order: order.append(m)
    try: data[(s, m)].append(float(v))
    except ValueError: pass
med = {k: statistics.median(v) for k, v in data.items() if v}
higher_better = lambda m: "MB/s" in m or "IOPS" in m or "ops/s" in m
print()
print("medians of %s rounds (interleaved); ratios are tutela vs peer, >1.00 means tutela is better" % max(len(v) for v in data.values()))
print()
hdr = ["workload"] + systems + ["vs gocryptfs", "vs securefs", "vs bindfs"]
rows = []
for m in order:
    row = [m] + ["%.2f" % med[(s, m)] if (s, m) in med else "-" for s in systems]
    t = med.get(("tutela", m))
    for peer in ["gocryptfs", "securefs", "bindfs"]:
        p = med.get((peer, m))
        if t is None or p is None or t == 0 or p == 0:
            row.append("-")
        else:
            row.append("%.2fx" % ((t / p) if higher_better(m) else (p / t)))
    rows.append(row)
w = [max(len(r[i]) for r in rows + [hdr]) for i in range(len(hdr))]
print("  ".join(h.ljust(w[i]) for i, h in enumerate(hdr)))
for r in rows:
    print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)))
def cost(base, other, title):
    ms = [m for m in order if (base, m) in med and (other, m) in med]
    if not ms:
        return
    print()
    print(title)
    for m in ms:
        a, b = med[(base, m)], med[(other, m)]
        if a and b:
            print("  %-28s %.2fx" % (m, (a / b) if higher_better(m) else (b / a)))
cost("tutela", "tutela-policy",
     "cost of an access policy + audit log (tutela-policy vs tutela; >1.00 means slower):")
cost("tutela-policy", "tutela-syslog",
     "cost of forwarding every audit record to the system log (tutela-syslog vs tutela-policy; >1.00 means slower):")
cost("tutela", "tutela-shared",
     "of which a multi-user mount alone (tutela-shared vs tutela; kernel permission checks):")
cost("tutela-shared", "tutela-policy",
     "and the policy on top of a multi-user mount (tutela-policy vs tutela-shared):")
# cost() reads ">1.00: the first is better" when the second is a peer.
cost("tutela-policy", "gocryptfs-shared",
     "tutela-policy vs gocryptfs -allow_other (same mode; >1.00 means tutela is better):")
cost("tutela-shared", "gocryptfs-shared",
     "tutela-shared vs gocryptfs -allow_other (same mode; >1.00 means tutela is better):")
PY
echo
echo "raw results: $RESULTS"
