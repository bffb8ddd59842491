#!/usr/bin/env bash
# Content that changes during transfers (issue 4): a 2 MB file is replaced
# 100 times (write a new version, rename it over the old, `stcpctl reload`)
# while six clients download it in a loop, so that many downloads span a
# replacement (counted). Every completed download must equal one
# whole version (sha256 in the set of versions written); none may fail while
# the keys do not rotate. Then the file is deleted with downloads in flight:
# those complete with a whole version, and new requests get 404. Half the
# versions have the same size, so a mix of two versions could not be caught
# by the length alone.
. "$(dirname "$0")/lib.sh"

ROOT=$(mktemp -d /tmp/stcp-change-root.XXXXXX)
WORK=$(mktemp -d /tmp/stcp-change-work.XXXXXX) # not in LOG_DIR: binary
EXTRA_CLEANUP+=("rm -rf $ROOT $WORK")
VERSIONS=100
CLIENTS=6
SIZE=2097152

# new_version K: writes version K beside the file and renames it over.
new_version() {
	local k=$1 n
	n=$((SIZE + (k % 2) * 1000))
	head -c "$n" /dev/urandom >"$ROOT/.v.tmp"
	sha256sum <"$ROOT/.v.tmp" | cut -d' ' -f1 >>"$WORK/versions"
	mv "$ROOT/.v.tmp" "$ROOT/v.bin"
}

topo_up
new_version 0
stcpd_start --root "$ROOT" --cache-mb 320

# downloader I: fetches until $WORK/stop exists; one line per download:
# "START END ok SHA" or "START END err RC".
downloader() {
	local i=$1 out="$WORK/body$i" rc t0
	while [ ! -e "$WORK/stop" ]; do
		rc=0
		t0=$(date +%s.%N)
		in_c curl -sS -f -m 30 -o "$out" \
			"http://$SRV4/v.bin" 2>>"$LOG_DIR/curl$i.err" || rc=$?
		if [ "$rc" = 0 ]; then
			echo "$t0 $(date +%s.%N) ok $(sha256sum <"$out" | cut -d' ' -f1)"
		else
			echo "$t0 $(date +%s.%N) err $rc"
		fi
	done >"$WORK/results$i"
}

for i in $(seq "$CLIENTS"); do
	downloader "$i" &
	PIDS+=($!)
done
sleep 1
start=$(date +%s.%N)
for k in $(seq "$VERSIONS"); do
	new_version "$k"
	ctl reload >/dev/null || fail "stcpctl reload failed at version $k"
	date +%s.%N >>"$WORK/reloads"
	sleep 0.05
done
secs=$(echo "$(date +%s.%N) - $start" | bc)
log "$VERSIONS versions written and reloaded in $secs s"
touch "$WORK/stop"
for i in $(seq "$CLIENTS"); do
	wait "${PIDS[-1]}" 2>/dev/null || true
	unset 'PIDS[-1]'
done

python3 - "$WORK" "$CLIENTS" <<'PY' || fail "a download is not one whole version"
import sys
work, n = sys.argv[1], int(sys.argv[2])
versions = open(f"{work}/versions").read().split()
index = {h: i for i, h in enumerate(versions)}
reloads = [float(x) for x in open(f"{work}/reloads")]
done, errs, seen, spanned = 0, [], set(), 0
for i in range(1, n + 1):
    for line in open(f"{work}/results{i}"):
        t0, t1, kind, val = line.split()
        if kind == "err":
            errs.append(val)
            continue
        done += 1
        assert val in index, f"client {i}: sha256 {val} is no version"
        seen.add(index[val])
        # A reload finished while this download ran: its version was
        # replaced under it.
        spanned += any(float(t0) < r < float(t1) for r in reloads)
print(f"# {done} downloads, each one whole version; {spanned} of them ran "
      f"across at least one replacement; {len(seen)} distinct versions "
      f"seen; {len(errs)} failed", file=sys.stderr)
assert not errs, f"downloads failed (curl exit codes {errs})"
assert done >= 3 * n, f"only {done} downloads"
assert spanned >= 20, f"only {spanned} downloads ran across a replacement"
PY

# Deletion with downloads in flight: they finish with a whole version.
for i in 1 2 3; do
	in_c curl -sS -f -m 30 --limit-rate 4M -o "$WORK/del$i" \
		"http://$SRV4/v.bin" 2>"$LOG_DIR/del$i.err" &
	PIDS+=($!)
done
sleep 0.3
rm "$ROOT/v.bin"
ctl reload >/dev/null || fail "stcpctl reload failed after the deletion"
code=$(in_c curl -s -o /dev/null -w '%{http_code}' -m 10 "http://$SRV4/v.bin")
[ "$code" = 404 ] || fail "after the deletion: $code, want 404"
for i in 3 2 1; do
	wait "${PIDS[-1]}" || fail "download $i in flight at the deletion failed"
	unset 'PIDS[-1]'
	grep -qx "$(sha256sum <"$WORK/del$i" | cut -d' ' -f1)" "$WORK/versions" ||
		fail "download $i in flight at the deletion is no whole version"
done
log "3 downloads in flight at the deletion: whole versions; then 404"
grep -q 'replaced' "$STCPD_LOG" || fail "stcpd did not log the replaced files"
log "$(grep 'reloaded' "$STCPD_LOG" | tail -n 1)"
[ "$(counter bad_cookie)" = 0 ] || fail "bad_cookie=$(counter bad_cookie)"
log "pass"
