# shellcheck shell=bash
# Namespace topology shared by the integration tests, the demo and the
# benchmarks. Source it, then call topo_up; topo_cleanup removes everything
# (netns, processes in PIDS, the pin dir) and is safe to call twice.
#
#   [client ns]  cli ---- veth ---- srv  [server ns]
#   198.18.0.2/24                   198.18.0.1/24
#   2001:2::2/64                    2001:2::1/64
#
# Addresses come only from the benchmark ranges (RFC 2544, RFC 5180).

REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BUILD=${BUILD:-$REPO/build}
# Unique per run: netns names, veth names (15 chars max) and the pin dir.
UNIQ=${UNIQ:-$(printf '%x' $(($$ % 65536)))$(printf '%x' $((RANDOM % 256)))}
NS_C="stcp-${UNIQ}-c"
NS_S="stcp-${UNIQ}-s"
DEV_C="sc${UNIQ}"
DEV_S="ss${UNIQ}"
PIN_DIR="/sys/fs/bpf/stcp-${UNIQ}"

SRV4=198.18.0.1
CLI4=198.18.0.2
SRV6=2001:2::1
CLI6=2001:2::2
PORT=80

PIDS=()
EXTRA_CLEANUP=()

# Run in a namespace's network stack but the root mount namespace, so stcpd,
# stcpctl and bpftool all see the same bpffs pins (ip netns exec would give
# each command a private /sys).
in_c() { nsenter --net="/run/netns/$NS_C" "$@"; }
in_s() { nsenter --net="/run/netns/$NS_S" "$@"; }

# topo_pair NS_C NS_S DEV_C DEV_S CLI4 SRV4 CLI6 SRV6: a client and a server
# namespace joined by a veth pair, ready for XDP on the server side.
topo_pair() {
	local nc=$1 ns=$2 dc=$3 ds=$4 c4=$5 s4=$6 c6=$7 s6=$8
	local inc="nsenter --net=/run/netns/$nc" ins="nsenter --net=/run/netns/$ns"

	ip netns add "$nc"
	ip netns add "$ns"
	ip link add "$dc" netns "$nc" type veth peer name "$ds" netns "$ns"
	$inc ip link set lo up
	$ins ip link set lo up
	$inc ip addr add "$c4/24" dev "$dc"
	$ins ip addr add "$s4/24" dev "$ds"
	$inc ip -6 addr add "$c6/64" dev "$dc" nodad
	$ins ip -6 addr add "$s6/64" dev "$ds" nodad
	$inc ip link set "$dc" up
	$ins ip link set "$ds" up
	# Client checksums must be complete on the wire for XDP to see them.
	$inc ethtool -K "$dc" tx off >/dev/null
	# Native XDP_TX on a veth is delivered only if the peer runs XDP too.
	$inc ip link set dev "$dc" xdp obj "$BUILD/xdp_pass.bpf.o" sec xdp
}

topo_up() {
	topo_pair "$NS_C" "$NS_S" "$DEV_C" "$DEV_S" "$CLI4" "$SRV4" "$CLI6" "$SRV6"
	mkdir -p "$PIN_DIR"
}

# topo_cleanup: stops PIDS, runs EXTRA_CLEANUP, removes namespaces and pins.
topo_cleanup() {
	local p
	for p in "${EXTRA_CLEANUP[@]}"; do
		eval "$p" >/dev/null 2>&1
	done
	EXTRA_CLEANUP=()
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		for _ in $(seq 50); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	PIDS=()
	ip netns del "$NS_C" 2>/dev/null
	ip netns del "$NS_S" 2>/dev/null
	rm -rf "$PIN_DIR"
	# The second pair (topo_up2), if any.
	ip netns del "$NS_C2" 2>/dev/null
	ip netns del "$NS_S2" 2>/dev/null
	rm -rf "$PIN_DIR2"
	return 0
}

STCPD_LOG=${STCPD_LOG:-/dev/null}
topo_fail() {
	echo "$*" >&2
	return 1
}
# stcpd_launch NS DEV PIN_DIR LOG [stcpd args...]: starts stcpd in NS's
# network namespace and waits until it has attached to DEV.
stcpd_launch() {
	local ns=$1 dev=$2 pin=$3 logf=$4 i
	shift 4
	# nsenter execs stcpd, so $! is stcpd itself and cleanup can signal it.
	nsenter --net="/run/netns/$ns" "$BUILD/stcpd" --iface "$dev" \
		--pin-dir "$pin" --log-level info "$@" >"$logf" 2>&1 &
	PIDS+=($!)
	for i in $(seq 100); do
		if nsenter --net="/run/netns/$ns" "$BUILD/stcpctl" \
			--pin-dir "$pin" status >/dev/null 2>&1 &&
			nsenter --net="/run/netns/$ns" ip link show dev "$dev" |
			grep -q xdp; then
			return 0
		fi
		if ! kill -0 "${PIDS[-1]}" 2>/dev/null; then
			topo_fail "stcpd exited: $(cat "$logf")"
			return 1
		fi
		sleep 0.1
	done
	topo_fail "stcpd did not attach to $dev within 10 s"
	return 1
}

# stcpd_start [extra stcpd args...]: listens on both service addresses and
# logs to $STCPD_LOG.
stcpd_start() {
	stcpd_launch "$NS_S" "$DEV_S" "$PIN_DIR" "$STCPD_LOG" \
		--listen "$SRV4:$PORT" --listen "[$SRV6]:$PORT" "$@"
}

ctl() { in_s "$BUILD/stcpctl" --pin-dir "$PIN_DIR" "$@"; }

# counter NAME: the summed per-CPU value of one counter.
counter() {
	ctl -j stats | python3 -c 'import json,sys
d=json.load(sys.stdin); d=d.get("counters", d); print(d[sys.argv[1]])' "$1"
}

# map_entries: "name=count" for every map pinned in PIN_DIR. Hash maps are
# counted by iterating their keys; arrays have a fixed number of entries.
map_entries() {
	local m type
	for m in "$PIN_DIR"/stcp_*; do
		type=$(bpftool -j map show pinned "$m" |
			python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["type"], d["max_entries"])')
		case "$type" in
		hash*)
			printf '%s=%s\n' "$(basename "$m")" "$(bpftool -j map dump pinned "$m" |
				python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
			;;
		*) printf '%s=%s (%s)\n' "$(basename "$m")" "${type#* }" "${type% *}" ;;
		esac
	done
}

# py_client: runs a Python snippet in the client namespace.
py_client() { in_c python3 - "$@"; }

# ---- A second, independent pair, for tests that run two stcpd replicas ----
#
#   [client ns 2]  cli2 ---- veth ---- srv2  [server ns 2]
#   198.18.1.2/24                      198.18.1.1/24
#   2001:2:0:1::2/64                   2001:2:0:1::1/64
#
# topo_up2 after topo_up; topo_cleanup removes it too.
NS_C2="stcp-${UNIQ}-c2"
NS_S2="stcp-${UNIQ}-s2"
DEV_C2="sc${UNIQ}b"
DEV_S2="ss${UNIQ}b"
PIN_DIR2="/sys/fs/bpf/stcp-${UNIQ}-2"
SRV4_2=198.18.1.1
CLI4_2=198.18.1.2
SRV6_2=2001:2:0:1::1
CLI6_2=2001:2:0:1::2

in_c2() { nsenter --net="/run/netns/$NS_C2" "$@"; }
in_s2() { nsenter --net="/run/netns/$NS_S2" "$@"; }

topo_up2() {
	topo_pair "$NS_C2" "$NS_S2" "$DEV_C2" "$DEV_S2" "$CLI4_2" "$SRV4_2" \
		"$CLI6_2" "$SRV6_2"
	mkdir -p "$PIN_DIR2"
}

# stcpd_start2 [extra stcpd args...]: the second replica, on $DEV_S2 with
# the maps in $PIN_DIR2, listening on $SRV4_2:$PORT; logs to $STCPD_LOG2.
STCPD_LOG2=${STCPD_LOG2:-/dev/null}
stcpd_start2() {
	stcpd_launch "$NS_S2" "$DEV_S2" "$PIN_DIR2" "$STCPD_LOG2" \
		--listen "$SRV4_2:$PORT" "$@"
}

ctl2() { in_s2 "$BUILD/stcpctl" --pin-dir "$PIN_DIR2" "$@"; }
