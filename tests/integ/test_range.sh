#!/usr/bin/env bash
# Single-range GETs (issue 3, docs/PROTOCOL.md 7.9): a 206 with the bytes
# asked for (first-last, first-, -suffix, a last past the end), over IPv4
# and IPv6, each body compared with the file's slice and each Content-Range
# checked; 416 for a range past the end; the second request for a range is
# answered by the fast path alone (no cache miss); If-None-Match that
# matches wins (304); a malformed Range and HEAD get the whole 200; after
# the file changes and a reload, a range gives the new bytes.
. "$(dirname "$0")/lib.sh"

ROOT=$(mktemp -d /tmp/stcp-range-root.XXXXXX)
BODIES=$(mktemp -d /tmp/stcp-range-bodies.XXXXXX)
EXTRA_CLEANUP+=("rm -rf $ROOT $BODIES")
SIZE=1048576
head -c "$SIZE" /dev/urandom >"$ROOT/f.bin"

topo_up
stcpd_start --root "$ROOT" --cache-mb 32

# get HOST RANGE FIRST LAST: a 206 with bytes FIRST..LAST of f.bin.
get() {
	local host=$1 r=$2 first=$3 last=$4 code cr
	code=$(in_c curl -sS -m 20 -o "$BODIES/out" -D "$BODIES/hdr" \
		-w '%{http_code}' -H "Range: bytes=$r" "http://$host/f.bin") ||
		fail "curl Range: bytes=$r failed"
	[ "$code" = 206 ] || fail "bytes=$r: $code, want 206"
	cr=$(tr -d '\r' <"$BODIES/hdr" | awk -F': ' 'tolower($1)=="content-range" {print $2}')
	[ "$cr" = "bytes $first-$last/$SIZE" ] || fail "bytes=$r: Content-Range '$cr'"
	python3 -c 'import sys; f = open(sys.argv[1], "rb"); f.seek(int(sys.argv[2]))
sys.stdout.buffer.write(f.read(int(sys.argv[3])))' "$ROOT/f.bin" "$first" $((last - first + 1)) >"$BODIES/want"
	cmp -s "$BODIES/out" "$BODIES/want" || fail "bytes=$r: body differs"
}

for host in "$SRV4" "[$SRV6]"; do
	get "$host" 0-0 0 0
	get "$host" 0-1447 0 1447
	get "$host" 1000-300000 1000 300000
	get "$host" 524288- 524288 $((SIZE - 1))
	get "$host" -5000 $((SIZE - 5000)) $((SIZE - 1))
	get "$host" 1048000-9999999 1048000 $((SIZE - 1))
done
log "206 for 6 ranges over IPv4 and IPv6: Content-Range and bytes right"

m0=$(counter cache_miss)
get "$SRV4" 1000-300000 1000 300000
[ "$(counter cache_miss)" = "$m0" ] || fail "a range asked before went to stcpd again"

code=$(in_c curl -s -o /dev/null -D "$BODIES/hdr" -w '%{http_code}' -m 10 \
	-H "Range: bytes=$SIZE-" "http://$SRV4/f.bin")
[ "$code" = 416 ] || fail "bytes=$SIZE-: $code, want 416"
grep -qi "content-range: bytes \*/$SIZE" "$BODIES/hdr" || fail "416 without Content-Range */$SIZE"

etag=$(in_c curl -s -I "http://$SRV4/f.bin" | tr -d '\r' | awk -F': ' 'tolower($1)=="etag" {print $2}')
code=$(in_c curl -s -o /dev/null -w '%{http_code}' -m 10 -H "Range: bytes=0-9" \
	-H "If-None-Match: $etag" "http://$SRV4/f.bin")
[ "$code" = 304 ] || fail "Range with a matching If-None-Match: $code, want 304"
for r in "bytes=5-1" "bytes=0-1,5-9" "lines=1-2"; do
	code=$(in_c curl -s -o "$BODIES/out" -w '%{http_code}' -m 20 -H "Range: $r" "http://$SRV4/f.bin")
	[ "$code" = 200 ] && cmp -s "$BODIES/out" "$ROOT/f.bin" || fail "Range: $r: $code, want the whole 200"
done
code=$(in_c curl -s -I -o /dev/null -w '%{http_code}' -m 10 -H "Range: bytes=0-9" "http://$SRV4/f.bin")
[ "$code" = 200 ] || fail "HEAD with Range: $code, want 200"
log "416 past the end; 304 wins over Range; malformed Range, multiple ranges and HEAD get 200"

head -c "$SIZE" /dev/urandom >"$ROOT/f.new" && mv "$ROOT/f.new" "$ROOT/f.bin"
ctl reload >/dev/null || fail "reload"
get "$SRV4" 1000-300000 1000 300000
log "after the file changed: the range has the new bytes"
log "pass"
