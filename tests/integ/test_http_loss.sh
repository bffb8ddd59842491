#!/usr/bin/env bash
# Loss recovery (docs/PROTOCOL.md 7.4, 7.13) and the slow reader, with
# real clients: random loss of 1%, 5% and 10% in each direction (nftables
# numgen in the client namespace); every transfer must complete
# byte-identical within BOUND seconds: 14 KB, 64 KB, 1 MB, 10 MB and 64 MB
# at every rate, over IPv4 and IPv6, each on its own connection, then 14 KB
# to 1 MB in turn on keep-alive connections. Then a Python client with a 4 KB receive buffer
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
