#!/usr/bin/env bash
# Loss recovery (docs/PROTOCOL.md 7.4, 7.13) and the slow reader, with
# real clients: random loss of 1%, 5% and 10% in each direction (nftables
# numgen in the client namespace); every transfer must complete
# byte-identical within BOUND seconds: 14 KB, 64 KB, 1 MB, 10 MB and 64 MB
# at every rate, over IPv4 and IPv6, each on its own connection, then 14 KB
# to 1 MB in turn on keep-alive connections; and wget, Python, ab (with and
# without -k) and wrk (with and without Connection: close) at every rate. Then a Python client with a 4 KB receive buffer
# that reads 1 KB every 2 ms, so its window closes again and again, fetches
# 1 MB over IPv4 and IPv6.
. "$(dirname "$0")/lib.sh"

BOUND=60
ROOT=$(mktemp -d /tmp/stcp-loss-root.XXXXXX)
BODIES=$(mktemp -d /tmp/stcp-loss-bodies.XXXXXX) # not in LOG_DIR: binary
EXTRA_CLEANUP+=("rm -rf $ROOT $BODIES")
for n in 14000 65536 1048576 10485760 67108864; do
	head -c "$n" /dev/urandom >"$ROOT/f$n.bin"
done

topo_up
stcpd_start --root "$ROOT" --cache-mb 256

# other_clients: at the current loss, wget and Python http.client fetch
# 1 MB and 10 MB over IPv4 and IPv6, ab makes 10 requests for 64 KB with
# and without -k, and wrk runs 2 s of 14 KB GETs, with and without
# Connection: close: every body identical, no request failed.
other_clients() {
	local host n out start
	start=$(date +%s.%N)
	for host in "$SRV4" "[$SRV6]"; do
		for n in 1048576 10485760; do
			rm -f "$BODIES/w"
			in_c wget -q -T "$BOUND" -t 1 -O "$BODIES/w" "http://$host/f$n.bin" ||
				fail "loss $loss%: wget $host f$n.bin"
			cmp -s "$BODIES/w" "$ROOT/f$n.bin" || fail "loss $loss%: wget $host f$n.bin differs"
			in_c python3 - "$host" "$n" "$ROOT" "$BOUND" <<'PY' || fail "loss $loss%: python $host f$n.bin"
import http.client, sys
host, n, root, bound = sys.argv[1].strip("[]"), sys.argv[2], sys.argv[3], int(sys.argv[4])
c = http.client.HTTPConnection(host, 80, timeout=bound)
c.request("GET", f"/f{n}.bin")
r = c.getresponse()
assert r.status == 200 and r.read() == open(f"{root}/f{n}.bin", "rb").read()
PY
		done
	done
	for k in "" -k; do
		out=$(in_c ab -q -s "$BOUND" -n 10 -c 2 $k "http://$SRV4/f65536.bin" 2>&1) ||
			fail "loss $loss%: ab $k: $out"
		grep -q '^Complete requests: *10$' <<<"$out" && grep -q '^Failed requests: *0$' <<<"$out" &&
			grep -q '^HTML transferred: *655360 bytes' <<<"$out" ||
			fail "loss $loss%: ab $k: $(grep -iE 'complete|failed|html' <<<"$out")"
	done
	for h in "Connection: keep-alive" "Connection: close"; do
		out=$(in_c wrk -t 1 -c 4 -d 2s --timeout 20s -H "$h" "http://$SRV4/f14000.bin" 2>&1) ||
			fail "loss $loss%: wrk ($h): $out"
		grep -q 'Socket errors\|Non-2xx' <<<"$out" && fail "loss $loss%: wrk ($h): $(grep -E 'errors|Non-2xx' <<<"$out")"
	done
	log "loss $loss%: wget and Python (1 MB, 10 MB, IPv4 and IPv6) identical, ab with and without -k, wrk with and without Connection: close: no failure ($(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s)"
}

# get HOST SIZE: curl within BOUND, byte-identical; prints the time.
get() {
	local out="$BODIES/body" t rc=0
	t=$(in_c curl -sS -m "$BOUND" -o "$out" -w '%{time_total}' \
		"http://$1/f$2.bin") || rc=$?
	[ "$rc" = 0 ] || fail "loss $loss%: curl http://$1/f$2.bin exit $rc"
	cmp -s "$out" "$ROOT/f$2.bin" || fail "loss $loss%: f$2.bin from $1 differs"
	printf '%s' "$t"
}


for loss in 1 5 10; do
	set_loss "$loss"
	worst=0 total=0 count=0
	sizes="14000 65536 1048576 10485760 67108864"
	for n in $sizes; do
		reps=4
		[ "$n" = 1048576 ] && reps=2
		[ "$n" -gt 1048576 ] && reps=1
		for _ in $(seq "$reps"); do
			for host in "$SRV4" "[$SRV6]"; do
				t=$(get "$host" "$n")
				count=$((count + 1))
				total=$(awk -v a="$total" -v b="$t" 'BEGIN { print a + b }')
				worst=$(awk -v a="$worst" -v b="$t" 'BEGIN { print (b > a) ? b : a }')
			done
		done
	done
	log "loss $loss% each way: $count transfers ($sizes bytes) byte-identical, slowest ${worst} s, sum ${total} s"
	for host in "$SRV4" "[$SRV6]"; do
		conns=$(keepalive_fetch "$host" 14000 65536 1048576 14000 65536 1048576)
		log "loss $loss%: keep-alive from $host: 14 KB, 64 KB, 1 MB twice byte-identical, connects per transfer: $conns"
	done
	other_clients
done
set_loss 0

slow_reader() {
	in_c python3 - "$1" "$BODIES/slow" <<'PY'
import socket, sys, time
host, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.settimeout(60)
s.connect((host, 80))
s.sendall(b"GET /f1048576.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
buf = b""
while True:
    d = s.recv(1024)
    if not d:
        break
    buf += d
    time.sleep(0.002)
open(out, "wb").write(buf.partition(b"\r\n\r\n")[2])
PY
	cmp -s "$BODIES/slow" "$ROOT/f1048576.bin" || fail "slow reader from $1: body differs"
}
probes=$(counter data_probe)
slow_reader "$SRV4"
slow_reader "$SRV6"
log "slow reader (4 KB buffer): 1 MB byte-identical over IPv4 and IPv6; data_probe +$(($(counter data_probe) - probes))"
for c in bad_cookie stale_cookie drop_tx_failed; do
	v=$(counter "$c")
	[ "$v" = 0 ] || fail "$c=$v"
done
log "tx_data=$(counter tx_data) tx_retrans=$(counter tx_retrans) data_sack=$(counter data_sack) data_dsack=$(counter data_dsack) data_probe=$(counter data_probe)"
echo "ok"
