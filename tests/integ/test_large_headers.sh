#!/usr/bin/env bash
# Requests that span several segments (issue 4, docs/PROTOCOL.md 7.8): the
# fast path hands their segments to stcpd, which joins them and runs a
# short equivalent through the fast path. Checked with curl over IPv4 and
# IPv6 and with Python http.client: 10 KB and 15 KB of headers get the
# object byte-identical (14 KB and 1 MB); an If-None-Match with the ETag
# after 10 KB of other headers gets 304; 20 KB of headers (over the 16 KB
# stcpd joins) gets 431; a one-segment request is not affected. The later
# requests of a keep-alive connection can span segments too.
. "$(dirname "$0")/lib.sh"

ROOT=$(mktemp -d /tmp/stcp-hdrs-root.XXXXXX)
BODIES=$(mktemp -d /tmp/stcp-hdrs-bodies.XXXXXX)
EXTRA_CLEANUP+=("rm -rf $ROOT $BODIES")
head -c 14000 /dev/urandom >"$ROOT/a.bin"
head -c 1048576 /dev/urandom >"$ROOT/b.bin"

topo_up
stcpd_start --root "$ROOT" --cache-mb 16
big() { python3 -c "print('x' * $1)"; }

for host in "$SRV4" "[$SRV6]"; do
	for n in 10240 15000; do
		for f in a.bin b.bin; do
			rm -f "$BODIES/out"
			code=$(in_c curl -sS -m 20 -o "$BODIES/out" -w '%{http_code}' \
				-H "X-Big: $(big "$n")" "http://$host/$f") ||
				fail "curl with $n bytes of headers, $host/$f failed"
			[ "$code" = 200 ] || fail "$n bytes of headers, $host/$f: $code"
			cmp -s "$BODIES/out" "$ROOT/$f" ||
				fail "$n bytes of headers, $host/$f: body differs"
		done
	done
done
log "curl, 10 KB and 15 KB of headers, IPv4 and IPv6, 14 KB and 1 MB: 200, bodies identical"

# Keep-alive (docs/PROTOCOL.md 7.10): the later requests of a connection
# span segments too.
for host in "$SRV4" "[$SRV6]"; do
	conns=$(in_c curl -sS -m 20 -w '%{http_code}:%{num_connects} ' \
		-H "X-Big: $(big 10240)" \
		-o "$BODIES/k1" "http://$host/a.bin" -o "$BODIES/k2" "http://$host/b.bin" \
		-o "$BODIES/k3" "http://$host/a.bin") || fail "keep-alive curl with 10 KB of headers, $host"
	[ "$conns" = "200:1 200:0 200:0 " ] || fail "keep-alive with 10 KB of headers, $host: $conns"
	cmp -s "$BODIES/k1" "$ROOT/a.bin" && cmp -s "$BODIES/k2" "$ROOT/b.bin" &&
		cmp -s "$BODIES/k3" "$ROOT/a.bin" || fail "keep-alive with 10 KB of headers, $host: a body differs"
done
log "curl keep-alive, three requests with 10 KB of headers on one connection, IPv4 and IPv6: identical"

py_client "$SRV4" "$ROOT" <<'PY' || fail "Python http.client with large headers"
import http.client, sys
host, root = sys.argv[1], sys.argv[2]
c = http.client.HTTPConnection(host, 80, timeout=20)
c.putrequest("GET", "/b.bin")
for i in range(100):
    c.putheader(f"X-Header-{i}", "v" * 100)
c.endheaders()
r = c.getresponse()
body = r.read()
assert r.status == 200, r.status
assert body == open(f"{root}/b.bin", "rb").read(), "body differs"
etag = r.getheader("ETag")
c = http.client.HTTPConnection(host, 80, timeout=20)
c.putrequest("GET", "/b.bin")
c.putheader("X-Pad", "p" * 10000)
c.putheader("If-None-Match", etag)
c.endheaders()
r = c.getresponse()
r.read()
assert r.status == 304, f"If-None-Match after 10 KB: {r.status}"
print("# Python: 100 headers (10 KB) -> 200 identical; If-None-Match after 10 KB -> 304", file=sys.stderr)
PY

code=$(in_c curl -s -o /dev/null -w '%{http_code}' -m 20 -H "X-Big: $(big 20000)" "http://$SRV4/a.bin")
[ "$code" = 431 ] || fail "20 KB of headers: $code, want 431"
log "20 KB of headers: 431"
in_c curl -sS -m 10 -o "$BODIES/out" "http://$SRV4/a.bin" && cmp -s "$BODIES/out" "$ROOT/a.bin" ||
	fail "a one-segment request after them"
parts=$(counter request_part)
[ "$parts" -gt 20 ] || fail "request_part=$parts"
[ "$(counter request_part_lost)" = 0 ] || fail "request_part_lost=$(counter request_part_lost)"
grep -q 'cannot run' "$STCPD_LOG" && fail "stcpd could not run a joined request"
log "request_part=$parts, request_part_lost=0"
log "pass"
