# shellcheck shell=bash
# Shared helpers for the namespace integration tests. Each test sources this
# file, calls topo_up, and may call stcpd_start (scripts/netns.sh). Everything
# made (netns, processes, bpffs pins) is removed by the EXIT trap, on failure
# too. Exit codes: 0 pass, 1 fail, 77 skip.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TEST_NAME=$(basename "$0" .sh)
. "$REPO/scripts/netns.sh"
LOG_DIR=$(mktemp -d "/tmp/stcp-${TEST_NAME}.XXXXXX")
STCPD_LOG="$LOG_DIR/stcpd.log"

log() { printf '# %s\n' "$*" >&2; }
fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}
skip() {
	printf 'SKIP: %s\n' "$*" >&2
	exit 77
}

# expect_err CODE PATTERN CMD...: exit code and a single line on stderr.
expect_err() {
	local want=$1 pat=$2 rc=0 out
	shift 2
	out=$("$@" 2>&1 >/dev/null) || rc=$?
	[ "$rc" = "$want" ] || fail "'$*' exited $rc, want $want (stderr: $out)"
	[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "'$*' printed more than one line: $out"
	printf '%s\n' "$out" | grep -Eq -- "$pat" || fail "'$*' said '$out', want /$pat/"
	log "$* -> $rc: $out"
}

# wire_capture_start: captures the service's traffic on the client veth.
wire_capture_start() {
	PCAP="$LOG_DIR/wire.pcap"
	nsenter --net="/run/netns/$NS_C" dumpcap -q -i "$DEV_C" \
		-f "tcp port $PORT" -w "$PCAP" >"$LOG_DIR/dumpcap.log" 2>&1 &
	DUMPCAP=$!
	PIDS+=("$DUMPCAP")
	for _ in $(seq 50); do
		grep -q 'Capturing on' "$LOG_DIR/dumpcap.log" 2>/dev/null && break
		sleep 0.1
	done
}

# wire_check MIN_SEGMENTS: stops the capture; every segment in both
# directions must have valid IP and TCP checksums and parse cleanly.
wire_check() {
	local total bad
	sleep 0.3
	kill -INT "$DUMPCAP"
	wait "$DUMPCAP" 2>/dev/null || true
	total=$(tshark -r "$PCAP" 2>/dev/null | wc -l)
	bad=$(tshark -r "$PCAP" -o ip.check_checksum:TRUE \
		-o tcp.check_checksum:TRUE \
		-Y 'ip.checksum.status == "Bad" || tcp.checksum.status == "Bad" || _ws.malformed || _ws.expert.severity >= "error"' \
		2>/dev/null | wc -l)
	log "capture: $total segments, $bad bad or malformed"
	[ "$total" -ge "$1" ] || fail "capture too small ($total segments)"
	[ "$bad" = 0 ] || fail "tshark flags $bad segments: $(tshark -r "$PCAP" \
		-o tcp.check_checksum:TRUE -o ip.check_checksum:TRUE \
		-Y 'ip.checksum.status == "Bad" || tcp.checksum.status == "Bad" || _ws.malformed' 2>/dev/null | head -3)"
}

# set_loss PCT: random loss of PCT% in each direction of the service's
# traffic, by nftables numgen in the client namespace (no netem here); 0
# removes it. The table goes with the namespace.
set_loss() {
	in_c nft delete table inet stcp_loss 2>/dev/null || true
	[ "$1" = 0 ] && return 0
	in_c nft -f - <<EOF
table inet stcp_loss {
	chain in {
		type filter hook prerouting priority -300;
		tcp sport $PORT numgen random mod 100 < $1 drop
	}
	chain out {
		type filter hook output priority -300;
		tcp dport $PORT numgen random mod 100 < $1 drop
	}
}
EOF
}

# fetch_body TOOL HOST SIZE: $ROOT/fSIZE.bin by curl (curl10, curl11 for
# --http1.0, --http1.1), wget or Python http.client, within ${BOUND:-60} s;
# the body must equal the file.
fetch_body() {
	local tool=$1 host=$2 n=$3 out="$BODIES/body" rc=0 url bound=${BOUND:-60}
	url="http://$host/f$n.bin"
	rm -f "$out"
	case $tool in
	curl) in_c curl -sS -m "$bound" -o "$out" "$url" || rc=$? ;;
	curl10) in_c curl -sS -m "$bound" --http1.0 -o "$out" "$url" || rc=$? ;;
	curl11) in_c curl -sS -m "$bound" --http1.1 -o "$out" "$url" || rc=$? ;;
	wget) in_c wget -q -T "$bound" -t 1 -O "$out" "$url" || rc=$? ;;
	python)
		in_c python3 - "$url" "$out" "$bound" <<'PY' || rc=$?
import http.client, sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=int(sys.argv[3]))
c.request("GET", u.path)
r = c.getresponse()
assert r.status == 200, r.status
open(sys.argv[2], "wb").write(r.read())
PY
		;;
	esac
	[ "$rc" = 0 ] || fail "$tool $url: exit $rc"
	cmp -s "$out" "$ROOT/f$n.bin" ||
		fail "$tool $url: body differs ($(stat -c %s "$out") bytes)"
}

# keepalive_fetch HOST SIZE...: one curl fetches $ROOT/fSIZE.bin for each
# SIZE in turn, on a keep-alive connection, within ${BOUND:-60} s; every
# body must equal its file. Prints curl's connects per transfer.
keepalive_fetch() {
	local host=$1 args=() i=0 n conns rc=0
	shift
	for n in "$@"; do
		args+=(-o "$BODIES/ka$i" "http://$host/f$n.bin")
		i=$((i + 1))
	done
	conns=$(in_c curl -sS -m "${BOUND:-60}" -w '%{num_connects}' "${args[@]}") || rc=$?
	[ "$rc" = 0 ] || fail "keep-alive curl from $host ($*): exit $rc"
	i=0
	for n in "$@"; do
		cmp -s "$BODIES/ka$i" "$ROOT/f$n.bin" ||
			fail "keep-alive from $host: transfer $i (f$n.bin) differs"
		i=$((i + 1))
	done
	printf '%s' "$conns"
}

# ---- Redis: our own, on a unix socket in the log dir, never persisted ----
# redis_init: sets REDIS_SOCK and stops redis-server on exit (skips the test
# when redis-server is missing); then redis_start / redis_stop.
redis_init() {
	command -v redis-server >/dev/null || skip "redis-server is not installed"
	command -v redis-cli >/dev/null || skip "redis-cli is not installed"
	REDIS_SOCK="$LOG_DIR/redis.sock"
	REDIS_PID=
	EXTRA_CLEANUP+=(redis_stop)
}
rcli() { redis-cli -s "$REDIS_SOCK" "$@"; }
redis_start() {
	redis-server --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 700 \
		--save "" --appendonly no --dir "$LOG_DIR" \
		--logfile "$LOG_DIR/redis.log" --daemonize no &
	REDIS_PID=$!
	local i
	for i in $(seq 50); do
		[ "$(rcli ping 2>/dev/null)" = PONG ] && return 0
		sleep 0.1
	done
	fail "redis-server did not start"
}
redis_stop() {
	[ -n "$REDIS_PID" ] || return 0
	kill -KILL "$REDIS_PID" 2>/dev/null || true
	wait "$REDIS_PID" 2>/dev/null || true
	REDIS_PID=
}

cleanup() {
	local rc=$? f
	set +e
	topo_cleanup
	if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
		for f in "$LOG_DIR"/*; do
			[ -s "$f" ] || continue
			echo "---- $f" >&2
			# A capture is shown as its last packets, never as bytes.
			case $f in
			*.pcap) tshark -n -r "$f" 2>&1 | tail -n 30 >&2 ;;
			*) grep -Iq . "$f" && tail -n 30 "$f" >&2 ;;
			esac
		done
	fi
	rm -rf "$LOG_DIR"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

[ "$(id -u)" = 0 ] || skip "needs root"
[ -x "$BUILD/stcpd" ] || fail "build first: make"
