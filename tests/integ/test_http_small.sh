#!/usr/bin/env bash
# The first data-path increment (docs/PROTOCOL.md 6.2) with real clients:
# curl (IPv4, IPv6, --http1.0), wget and Python http.client fetch files whose
# response fits one segment, and error statuses, from a server whose kernel
# holds no socket.
#
# A reply that does not fit the request's frame (on veth most do not) is
# built in a page-sized devmap copy, so every response of one segment is
# served byte-identical; responses just over one segment and of 64 KB are
# served too (the multi-segment path has its own test, test_http_sizes);
# the counters account for every request.
. "$(dirname "$0")/lib.sh"

ROOT=$(mktemp -d /tmp/stcp-http-root.XXXXXX)
BODIES=$(mktemp -d /tmp/stcp-http-bodies.XXXXXX) # not in LOG_DIR: binary
EXTRA_CLEANUP+=("rm -rf $ROOT $BODIES")
printf 'hi\n' >"$ROOT/small.txt"
head -c 1000 /dev/urandom >"$ROOT/k1.bin"  # + headers: one full-size segment
head -c 1400 /dev/urandom >"$ROOT/edge.bin" # + headers: more than one segment
head -c 65536 /dev/urandom >"$ROOT/big.bin"

topo_up
stcpd_start --root "$ROOT"
wire_capture_start

served=0 reset=0 requests=0
# try TOOL URL [FILE]: fetch; exit 0 must mean byte-identical to FILE
# (default small.txt), anything else must be a connection reset.
try() {
	local tool=$1 url=$2 file=${3:-small.txt} out="$BODIES/out" rc=0 err
	rm -f "$out"
	requests=$((requests + 1))
	case $tool in
	curl) err=$(in_c curl -sS -m 5 -o "$out" "$url" 2>&1) || rc=$? ;;
	curl10) err=$(in_c curl -sS -m 5 --http1.0 -o "$out" "$url" 2>&1) || rc=$? ;;
	wget) err=$(in_c wget -q -T 5 -t 1 -O "$out" "$url" 2>&1) || rc=$? ;;
	python)
		err=$(in_c python3 - "$url" "$out" 2>&1 <<'PY'
import http.client, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=5)
try:
    c.request("GET", u.path)
    r = c.getresponse()
    assert r.status == 200, r.status
    open(sys.argv[2], "wb").write(r.read())
except ConnectionResetError:
    sys.exit(56)
PY
		) || rc=$?
		;;
	esac
	if [ "$rc" = 0 ]; then
		cmp -s "$out" "$ROOT/$file" || fail "$tool $url: body differs"
		served=$((served + 1))
	else
		case "$tool:$rc:$err" in
		curl*:56:*reset* | python:56:* | wget:4:*) reset=$((reset + 1)) ;;
		*) fail "$tool $url: exit $rc, neither served nor reset: $err" ;;
		esac
	fi
}

for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
	for tool in curl curl10 wget python; do
		try "$tool" "http://$SRV4/small.txt"
	done
done
for _ in 1 2 3 4 5; do
	try curl "http://[$SRV6]/small.txt"
done
for _ in 1 2 3 4 5; do
	try curl "http://$SRV4/k1.bin" k1.bin
	try python "http://[$SRV6]/k1.bin" k1.bin
done
log "one-segment responses: $served served byte-identical, $reset reset, of $requests"
[ "$served" = "$requests" ] || fail "$reset of $requests one-segment responses were reset"

# Statuses.
status_is() {
	local want=$1 code
	shift
	requests=$((requests + 1))
	code=$(in_c curl -s -m 5 -o /dev/null -w '%{http_code}' "$@") || true
	[ "$code" = "$want" ] || fail "curl $*: status $code, want $want"
}
for _ in 1 2 3; do
	status_is 404 "http://$SRV4/missing"
	status_is 404 "http://[$SRV6]/missing"
	status_is 405 -X DELETE "http://$SRV4/small.txt"
	status_is 200 -I "http://$SRV4/small.txt"
done

# A conditional GET with the ETag curl was given gets 304, another tag 200.
etag=$(in_c curl -sS -m 5 -I "http://$SRV4/small.txt" | tr -d '\r' |
	awk -F': ' 'tolower($1) == "etag" { print $2 }')
[ -n "$etag" ] || fail "no ETag in the HEAD response"
status_is 304 -H "If-None-Match: $etag" "http://$SRV4/small.txt"
status_is 304 -H "If-None-Match: W/$etag" "http://[$SRV6]/small.txt"
status_is 200 -H 'If-None-Match: "other"' "http://$SRV4/small.txt"
requests=$((requests + 1)) # the HEAD above

# More than one segment: served, byte-identical.
for f in edge.bin big.bin; do
	try curl "http://$SRV4/$f" "$f"
	try python "http://[$SRV6]/$f" "$f"
done
[ "$reset" = 0 ] || fail "$reset multi-segment responses were reset"

wire_check 500
[ "$(in_s ss -Htan | wc -l)" = 0 ] || fail "server kernel holds sockets"
answered=$(counter request_answered)
big=$(counter response_too_big)
refused=$(counter data_refused)
bad=$(counter bad_cookie)
log "requests=$requests request_answered=$answered response_too_big=$big data_refused=$refused bad_cookie=$bad fin_answered=$(counter fin_answered)"
[ "$answered" = "$requests" ] || fail "answered $answered != $requests requests"
[ "$big" = 0 ] || fail "response_too_big=$big"
[ "$refused" = 0 ] || fail "data_refused=$refused"
[ "$bad" = 0 ] || fail "bad_cookie=$bad: a segment of a real connection failed validation"
echo "ok"
