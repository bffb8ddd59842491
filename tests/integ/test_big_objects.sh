#!/usr/bin/env bash
# Objects larger than the cache budget (issue 4, include/stcp_cache.h
# STCP_RESP_WINDOWED): behind --cache-mb 4 (1024 pages), a 3 MB, a 10 MB
# and a 64 MB file are stored with a windowed body, a ring of 256 pages
# that stcpd loads as downloads need it; the fast path hands a packet
# whose segments need pages the ring does not hold to stcpd (window_miss),
# which loads them and runs it again. Checked:
#   - curl, wget and Python fetch each over IPv4 and IPv6, byte-identical;
#   - four 64 MB downloads at once, started apart so that they read
#     different parts of the ring, all byte-identical;
#   - 5% loss each way: 10 MB and 64 MB byte-identical;
#   - a client without timestamps, keep-alive, HEAD and a Range inside
#     the big file;
#   - a big file rewritten in place during a slow download: the download
#     ends with the old bytes or is reset, never with a mix;
#   - window_miss counted, nothing lost; --cache-mb 1 cannot hold even a
#     ring, and a file larger than it is refused with a warning (404).
. "$(dirname "$0")/lib.sh"

BOUND=90
ROOT=$(mktemp -d /tmp/stcp-big-root.XXXXXX)
BODIES=$(mktemp -d /tmp/stcp-big-bodies.XXXXXX)
EXTRA_CLEANUP+=("rm -rf $ROOT $BODIES")
SIZES="3145728 10485760 67108864"
for n in 1000 $SIZES; do
	head -c "$n" /dev/urandom >"$ROOT/f$n.bin"
done

topo_up
stcpd_start --root "$ROOT" --cache-mb 4
STCPD_PID=${PIDS[-1]}
ctl status >/dev/null || fail "stcpctl status"

for n in $SIZES; do
	for host in "$SRV4" "[$SRV6]"; do
		for tool in curl wget python; do
			fetch_body "$tool" "$host" "$n"
		done
	done
done
wm=$(counter window_miss)
wp=$(counter window_prefetch)
[ "$wm" -gt 0 ] || fail "no window_miss: the big files were not windowed"
[ "$wp" -gt 0 ] || fail "no window_prefetch: no load was asked for ahead"
log "curl, wget, python: 3 MB, 10 MB, 64 MB over IPv4 and IPv6 byte-identical behind a 4 MB cache; window_miss $wm, window_prefetch $wp"

# ---- four at once, in different parts of the file ----
pids=()
for i in 1 2 3 4; do
	in_c curl -sS -m "$BOUND" -o "$BODIES/par$i" "http://$SRV4/f67108864.bin" &
	pids+=($!)
	PIDS+=($!)
	sleep 0.1
done
for i in 1 2 3 4; do
	wait "${pids[$((i - 1))]}" || fail "parallel download $i failed"
	cmp -s "$BODIES/par$i" "$ROOT/f67108864.bin" || fail "parallel download $i differs"
done
log "four 64 MB downloads at once: identical; window_miss $(counter window_miss), window_torn $(counter window_torn)"

# ---- keep-alive, HEAD, Range ----
conns=$(keepalive_fetch "$SRV4" 10485760 1000 3145728)
[ "$conns" = 100 ] || fail "keep-alive: connects per transfer $conns, want 100"
len=$(in_c curl -sS -m 10 -I "http://$SRV4/f67108864.bin" | tr -d '\r' |
	awk -F': ' 'tolower($1) == "content-length" {print $2}')
[ "$len" = 67108864 ] || fail "HEAD: Content-Length $len"
in_c curl -sS -m 30 -r 50000000-50999999 -D "$BODIES/range.h" -o "$BODIES/range" \
	"http://$SRV4/f67108864.bin" || fail "range request failed"
dd if="$ROOT/f67108864.bin" of="$BODIES/range.want" bs=1000000 skip=50 count=1 status=none
cmp -s "$BODIES/range.want" "$BODIES/range" ||
	fail "range 50000000-50999999 differs: $(stat -c %s "$BODIES/range") bytes, $(head -c 300 "$BODIES/range.h")"
log "keep-alive (10 MB, 1 KB, 3 MB on one connection), HEAD and a 1 MB Range inside 64 MB: correct"

# ---- loss ----
set_loss 5
for n in 10485760 67108864; do
	fetch_body curl "$SRV4" "$n"
done
fetch_body python "[$SRV6]" 10485760
set_loss 0
log "5% loss each way: 10 MB and 64 MB byte-identical"

# ---- no timestamps ----
in_c sysctl -qw net.ipv4.tcp_timestamps=0
for host in "$SRV4" "[$SRV6]"; do
	fetch_body curl "$host" 10485760
done
in_c sysctl -qw net.ipv4.tcp_timestamps=1
log "no timestamps: 10 MB over IPv4 and IPv6 byte-identical"

for c in bad_cookie stale_cookie cache_miss_lost drop_tx_failed; do
	v=$(counter "$c")
	[ "$v" = 0 ] || fail "$c=$v"
done

# ---- rewritten in place during a slow download ----
cp "$ROOT/f67108864.bin" "$BODIES/old"
in_c curl -sS -m "$BOUND" --limit-rate 8M -o "$BODIES/slow" \
	"http://$SRV4/f67108864.bin" 2>"$BODIES/slow.err" &
slow=$!
PIDS+=($slow)
sleep 2
head -c 67108864 /dev/urandom | dd of="$ROOT/f67108864.bin" conv=notrunc status=none
rc=0
wait "$slow" || rc=$?
got=$(stat -c %s "$BODIES/slow")
if [ "$rc" = 0 ]; then
	cmp -s "$BODIES/slow" "$BODIES/old" || fail "download across the rewrite completed with other bytes"
	log "rewritten during a download: it completed with the old version"
else
	# Reset: what arrived must be a prefix of the old version.
	head -c "$got" "$BODIES/old" | cmp -s - "$BODIES/slow" ||
		fail "download across the rewrite: its $got bytes are not the old version's"
	log "rewritten during a download: reset after $got bytes, all of them the old version's ($(head -c 200 "$BODIES/slow.err"))"
fi
kill -TERM "$STCPD_PID"
wait "$STCPD_PID" 2>/dev/null || true

# ---- a cache that cannot hold even a ring ----
rm -f "$PIN_DIR"/stcp_*
STCPD_LOG="$LOG_DIR/stcpd1.log" stcpd_start --root "$ROOT" --cache-mb 1
grep -q 'f10485760.bin.*more pages than the whole cache' "$LOG_DIR/stcpd1.log" ||
	fail "no warning for a file larger than a 1 MB cache can hold"
code=$(in_c curl -s -o /dev/null -w '%{http_code}' -m 10 "http://$SRV4/f10485760.bin")
[ "$code" = 404 ] || fail "f10485760.bin behind --cache-mb 1: $code, want 404"
fetch_body curl "$SRV4" 1000
log "--cache-mb 1: the 10 MB file refused with a warning (404), 1 KB served"
echo ok
