#!/usr/bin/env bash
# Two stcpd replicas on one Redis, each in its own server namespace, behind
# a router namespace (issue 4). Both replicas have the same service address
# and MAC; the router forwards the client's frames to either by nftables
# (netdev ingress, `fwd`), and every reply back to the client:
#
#   [client] cli --- r0 [router] r1 --- s1 [replica 1]
#                               r2 --- s2 [replica 2]
#
# With `numgen inc mod 2` the client's packets alternate between the
# replicas one by one: the SYN goes to one, the ACK that completes the
# handshake to the other, and the ACKs of a download are shared (1 KB to
# 1 MB; larger downloads suffer from the reordering of two return paths,
# PROTOCOL.md 7.6). Then a 16 MB download moves from replica 1 to replica 2
# mid-transfer, and back. Every body must equal the file, over IPv4 and
# IPv6, and each replica must have answered its share (counters). Then the
# same with keep-alive (a connection's later responses have an stcp_conns
# entry, which the other replica fetches from Redis), and with a client
# without timestamps (every response has one), alternating and moving.
# Requests with 10 KB of headers in 9 segments, packets alternating, are
# joined through Redis by whichever replica gets the last part (with
# timestamps; docs/PROTOCOL.md 7.8).
#
# Last, Redis is stopped and started again during a wrk run of 1 KB GETs
# with packets alternating: no request may fail, and both daemons must
# reconnect by themselves and agree on the keys again.
. "$(dirname "$0")/lib.sh"

command -v nft >/dev/null || skip "nft is not installed"
redis_init
PREFIX="stcp-test-${UNIQ}:"

ROOT=$(mktemp -d /tmp/stcp-replicas-root.XXXXXX)
BODIES=$(mktemp -d /tmp/stcp-replicas-bodies.XXXXXX) # not in LOG_DIR: binary
EXTRA_CLEANUP+=("rm -rf $ROOT $BODIES")
for n in 1000 65536 1048576 16777216; do
	head -c "$n" /dev/urandom >"$ROOT/f$n.bin"
done

NS_R="stcp-${UNIQ}-r"
NS_S1="stcp-${UNIQ}-s1"
NS_S2="stcp-${UNIQ}-s2r"
NS_CL="stcp-${UNIQ}-cl"
PIN1="/sys/fs/bpf/stcp-${UNIQ}-r1"
PIN2="/sys/fs/bpf/stcp-${UNIQ}-r2"
VIP4=198.18.2.1
CL4=198.18.2.2
VIP6=2001:2:0:2::1
CL6=2001:2:0:2::2
MAC_VIP=02:00:c6:12:02:01
MAC_CL=02:00:c6:12:02:02
# The daemons stop first, while their devices and pins still exist.
DAEMONS=()
stop_daemons() {
	local p
	for p in "${DAEMONS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${DAEMONS[@]}"; do
		for _ in $(seq 50); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
	done
}
EXTRA_CLEANUP+=(stop_daemons "ip netns del $NS_R" "ip netns del $NS_S1"
	"ip netns del $NS_S2" "ip netns del $NS_CL" "rm -rf $PIN1 $PIN2")

in_r() { nsenter --net="/run/netns/$NS_R" "$@"; }
in_cl() { nsenter --net="/run/netns/$NS_CL" "$@"; }
in_s1() { nsenter --net="/run/netns/$NS_S1" "$@"; }
in_s2() { nsenter --net="/run/netns/$NS_S2" "$@"; }
ctl_1() { in_s1 "$BUILD/stcpctl" --pin-dir "$PIN1" "$@"; }
ctl_2() { in_s2 "$BUILD/stcpctl" --pin-dir "$PIN2" "$@"; }
# cnt CTL NAME: one counter of a replica.
cnt() {
	"$1" -j stats | python3 -c 'import json,sys
d=json.load(sys.stdin); d=d.get("counters", d); print(d[sys.argv[1]])' "$2"
}

for ns in "$NS_R" "$NS_S1" "$NS_S2" "$NS_CL"; do
	ip netns add "$ns"
	ip -n "$ns" link set lo up
done
ip link add "c${UNIQ}" netns "$NS_CL" address "$MAC_CL" type veth \
	peer name "r0${UNIQ}" netns "$NS_R"
ip link add "s${UNIQ}" netns "$NS_S1" address "$MAC_VIP" type veth \
	peer name "r1${UNIQ}" netns "$NS_R"
ip link add "s${UNIQ}" netns "$NS_S2" address "$MAC_VIP" type veth \
	peer name "r2${UNIQ}" netns "$NS_R"
for d in "r0${UNIQ}" "r1${UNIQ}" "r2${UNIQ}"; do
	in_r ip link set "$d" up
	# XDP_TX and devmap frames of a veth are delivered only if the peer
	# runs XDP; the client's frames must keep complete checksums.
	in_r ip link set dev "$d" xdp obj "$BUILD/xdp_pass.bpf.o" sec xdp
done
in_cl ip addr add "$CL4/24" dev "c${UNIQ}"
in_cl ip -6 addr add "$CL6/64" dev "c${UNIQ}" nodad
in_cl ip link set "c${UNIQ}" up
in_cl ethtool -K "c${UNIQ}" tx off >/dev/null
in_cl ip neigh replace "$VIP4" lladdr "$MAC_VIP" dev "c${UNIQ}" nud permanent
in_cl ip -6 neigh replace "$VIP6" lladdr "$MAC_VIP" dev "c${UNIQ}" nud permanent
for s in in_s1 in_s2; do
	$s ip addr add "$VIP4/24" dev "s${UNIQ}"
	$s ip -6 addr add "$VIP6/64" dev "s${UNIQ}" nodad
	$s ip link set "s${UNIQ}" up
done
mkdir -p "$PIN1" "$PIN2"

# route MODE: alt (packet by packet), 1 or 2 (every packet to one replica).
route() {
	local to
	case $1 in
	alt) to="numgen inc mod 2 == 0 fwd to \"r1${UNIQ}\"; add rule netdev stcprt in0 fwd to \"r2${UNIQ}\"" ;;
	1) to="fwd to \"r1${UNIQ}\"" ;;
	2) to="fwd to \"r2${UNIQ}\"" ;;
	esac
	in_r nft -f - <<EOF
flush chain netdev stcprt in0
add rule netdev stcprt in0 $to
EOF
}
in_r nft -f - <<EOF
table netdev stcprt {
	chain in0 { type filter hook ingress device "r0${UNIQ}" priority 0; }
	chain in1 { type filter hook ingress device "r1${UNIQ}" priority 0; fwd to "r0${UNIQ}"; }
	chain in2 { type filter hook ingress device "r2${UNIQ}" priority 0; fwd to "r0${UNIQ}"; }
}
EOF
route alt

redis_start
LOG1="$LOG_DIR/stcpd1.log"
LOG2="$LOG_DIR/stcpd2.log"
for r in 1 2; do
	ns=$NS_S1 pin=$PIN1 logf=$LOG1
	[ "$r" = 2 ] && ns=$NS_S2 pin=$PIN2 logf=$LOG2
	stcpd_launch "$ns" "s${UNIQ}" "$pin" "$logf" --listen "$VIP4:$PORT" \
		--listen "[$VIP6]:$PORT" --root "$ROOT" --cache-mb 64 \
		--redis "unix:$REDIS_SOCK" --redis-prefix "$PREFIX" ||
		fail "replica $r did not start"
	DAEMONS+=("${PIDS[-1]}")
done
# Both replicas must hold the same keys (the one that started second took
# the first one's from Redis) and the same content slots.
for r in 1 2; do
	f=$LOG1
	[ "$r" = 2 ] && f=$LOG2
	grep -q 'record written from ours\|from Redis' "$f" ||
		fail "replica $r has not synchronised its keys through Redis"
done
slots() { "$1" -j content ls | python3 -c 'import json,sys
print(sorted((o["path"], [r["slot"] for r in o["resps"]]) for o in json.load(sys.stdin)))'; }
[ "$(slots ctl_1)" = "$(slots ctl_2)" ] || fail "the replicas numbered their content differently"

# fetch HOST SIZE [curl args]: the body must hash like the file.
fetch() {
	local host=$1 n=$2 out="$BODIES/body" rc=0
	shift 2
	rm -f "$out"
	in_cl curl -sS -f -m 60 -o "$out" "$@" "http://$host/f$n.bin" || rc=$?
	[ "$rc" = 0 ] || fail "curl http://$host/f$n.bin: exit $rc"
	cmp -s "$out" "$ROOT/f$n.bin" || fail "http://$host/f$n.bin: body differs ($(stat -c %s "$out") bytes)"
}

# big_header_fetch HOST: a GET of f65536.bin with 10 KB of headers, sent
# in pieces so that it takes several segments, whose packets alternate
# between the replicas; the body must hash like the file.
big_header_fetch() {
	in_cl python3 - "$1" "$ROOT/f65536.bin" <<'PY' || fail "request with 10 KB of headers to $1"
import hashlib, socket, sys, time
host, path = sys.argv[1].strip("[]"), sys.argv[2]
req = ("GET /f65536.bin HTTP/1.1\r\nHost: stcp\r\nConnection: close\r\n" +
       "".join("X-Pad-%d: %s\r\n" % (i, "p" * 990) for i in range(10)) +
       "\r\n").encode()
s = socket.create_connection((host, 80), timeout=20)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
# Three writes of about 3.4 KB, 9 segments: within the client's initial
# window (10), as nothing is acknowledged before the answer.
step = (len(req) + 2) // 3
for i in range(0, len(req), step):
    s.sendall(req[i:i + step])
    time.sleep(0.02)
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
head, _, body = data.partition(b"\r\n\r\n")
assert head.startswith(b"HTTP/1.1 200"), head[:60]
want = open(path, "rb").read()
assert hashlib.sha256(body).digest() == hashlib.sha256(want).digest(), len(body)
PY
}

# ---- packet by packet ----
a1=$(cnt ctl_1 data_ack_released)
a2=$(cnt ctl_2 data_ack_released)
h1=$(cnt ctl_1 handshake_done)
h2=$(cnt ctl_2 handshake_done)
for n in 1000 65536 1048576; do
	for i in 1 2 3; do
		fetch "$VIP4" "$n"
		fetch "[$VIP6]" "$n"
	done
done
for r in 1 2; do
	c=ctl_$r
	a=$(($(cnt $c data_ack_released) - $([ $r = 1 ] && echo "$a1" || echo "$a2")))
	log "replica $r: $a data ACKs answered, syn_answered $(cnt $c syn_answered), requests $(cnt $c request_answered)"
	[ "$a" -gt 100 ] || fail "replica $r answered only $a data ACKs of the alternating downloads"
done
log "18 downloads (1 KB to 1 MB, v4 and v6) with packets alternating: bodies identical"
# 16 MB alternating: the reordering of the two return paths makes the
# SACK rules resend spuriously and stall; the stall timer (PROTOCOL.md
# 7.13) ends those stalls.
for host in "$VIP4" "[$VIP6]"; do
	fetch "$host" 16777216
done
log "16 MB with packets alternating, v4 and v6: identical"
# Requests in several segments: the later ones reach the replica that did
# not see the first, which joins them through Redis.
e0=$(($(cnt ctl_1 request_part_elsewhere) + $(cnt ctl_2 request_part_elsewhere)))
for i in 1 2 3; do
	big_header_fetch "$VIP4"
	big_header_fetch "[$VIP6]"
done
e1=$(($(cnt ctl_1 request_part_elsewhere) + $(cnt ctl_2 request_part_elsewhere)))
[ "$e1" -gt "$e0" ] || fail "no request part went to the replica without its first segment"
log "10 KB of headers in several segments, packets alternating, v4 and v6 (6 requests): bodies identical; $((e1 - e0)) parts joined through Redis"

# ---- one download moves between the replicas mid-transfer ----
# move_both LABEL: a 16 MB download moves from replica 1 to 2 after 1 s,
# and another from 2 to 1; each must be identical, and the replica taking
# over must have answered its ACKs.
move_both() {
	local label=$1 hop b moved
	for hop in "1 2" "2 1"; do
		set -- $hop
		route "$1"
		b=$(cnt "ctl_$2" data_ack_released)
		in_cl curl -sS -f -m 60 --limit-rate 2M -o "$BODIES/move" \
			"http://$VIP4/f16777216.bin" 2>"$LOG_DIR/move.err" &
		PIDS+=($!)
		sleep 1
		route "$2"
		wait "${PIDS[-1]}" || fail "$label: the download moved from replica $1 to $2 failed: $(cat "$LOG_DIR/move.err")"
		unset 'PIDS[-1]'
		cmp -s "$BODIES/move" "$ROOT/f16777216.bin" || fail "$label: the download moved from replica $1 to $2 differs"
		moved=$(($(cnt "ctl_$2" data_ack_released) - b))
		[ "$moved" -gt 10 ] || fail "$label: replica $2 answered $moved data ACKs after the move"
		log "$label: 16 MB download moved from replica $1 to replica $2 after 1 s: identical; replica $2 answered $moved data ACKs"
	done
	route alt
}
move_both timestamps

# ---- keep-alive: later responses' entries through Redis ----
# A connection's later responses are decoded from its stcp_conns entry,
# which the replica that answered the request wrote and sent to Redis; the
# other replica fetches it when their ACKs come to it (cache_miss).
m1=$(cnt ctl_1 cache_miss)
m2=$(cnt ctl_2 cache_miss)
for host in "$VIP4" "[$VIP6]"; do
	args=()
	for n in 1000 65536 1048576 1000 1048576 65536; do
		args+=(-o "$BODIES/ka$n" "http://$host/f$n.bin")
	done
	conns=$(in_cl curl -sS -f -m 60 -w '%{num_connects}' "${args[@]}") ||
		fail "keep-alive run from $host with packets alternating"
	for n in 1000 65536 1048576; do
		cmp -s "$BODIES/ka$n" "$ROOT/f$n.bin" || fail "keep-alive from $host: f$n.bin differs"
	done
	log "keep-alive, packets alternating, $host: 6 responses identical, connects $conns"
done
log "entries fetched from Redis: replica 1 +$(($(cnt ctl_1 cache_miss) - m1)), replica 2 +$(($(cnt ctl_2 cache_miss) - m2)) (cache_miss)"

# ---- a client without timestamps: every response through Redis ----
in_cl sysctl -qw net.ipv4.tcp_timestamps=0
for n in 1000 65536 1048576; do
	for i in 1 2; do
		fetch "$VIP4" "$n"
		fetch "[$VIP6]" "$n"
	done
done
fetch "$VIP4" 16777216
log "no timestamps: 12 downloads (1 KB to 1 MB, v4 and v6) and 16 MB with packets alternating: bodies identical"
move_both "no timestamps"
in_cl sysctl -qw net.ipv4.tcp_timestamps=1

# ---- Redis stopped and started during a load run ----
in_cl wrk -t1 -c16 -d8s --timeout 5s -H 'Connection: close' \
	"http://$VIP4/f1000.bin" >"$LOG_DIR/wrk.out" 2>&1 &
PIDS+=($!)
sleep 2
redis_stop
log "redis-server killed during the load run"
sleep 2
redis_start
log "redis-server started again"
wait "${PIDS[-1]}" || fail "wrk failed: $(cat "$LOG_DIR/wrk.out")"
unset 'PIDS[-1]'
out=$(cat "$LOG_DIR/wrk.out")
grep -q "Socket errors" <<<"$out" && fail "wrk: $(grep 'Socket errors' <<<"$out")"
grep -q "Non-2xx" <<<"$out" && fail "wrk: $(grep 'Non-2xx' <<<"$out")"
reqs=$(awk '/requests in/ {print $1}' <<<"$out")
[ "${reqs:-0}" -gt 1000 ] || fail "wrk completed only ${reqs:-0} requests"
log "wrk across the Redis restart: $reqs requests, 0 errors, 0 non-2xx"
for r in 1 2; do
	f=$LOG1
	[ "$r" = 2 ] && f=$LOG2
	for i in $(seq 50); do
		grep -q 'connected to .* again' "$f" && break
		sleep 0.2
	done
	grep -q 'connected to .* again' "$f" || fail "replica $r did not reconnect to Redis: $(tail -n 3 "$f")"
	log "replica $r: $(grep 'connected to .* again' "$f" | tail -n 1 | cut -c1-110)"
done
# keys_digest PIN: both key slots, sorted (slot numbers may differ), hashed.
keys_digest() {
	bpftool -j map dump pinned "$1/stcp_keys" | python3 -c '
import hashlib, json, sys
v = sorted(json.dumps(e["formatted"]["value"], sort_keys=True) for e in json.load(sys.stdin))
print(hashlib.sha256("".join(v).encode()).hexdigest())'
}
k1=$(keys_digest "$PIN1")
k2=$(keys_digest "$PIN2")
[ "$k1" = "$k2" ] || fail "the replicas' keys differ after the Redis restart"
fetch "$VIP4" 1048576

for r in 1 2; do
	for c in bad_cookie data_refused; do
		v=$(cnt "ctl_$r" "$c")
		[ "$v" = 0 ] || fail "replica $r: $c=$v"
	done
done
log "pass"
