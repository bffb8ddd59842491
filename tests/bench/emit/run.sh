#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Multi-segment emission benchmark: how one arriving TCP ACK can release N
# full-sized segments (docs/ARCHITECTURE.md, "Multi-segment emission").
# Makes two network namespaces joined by a veth pair (addresses from
# 198.18.0.0/15 only), runs build/emit_bench in them and prints its Markdown
# (the probed limits and the table) on stdout. Everything is removed on exit,
# failure and interruption included.
#
#   sudo tests/bench/emit/run.sh [emit_bench options, e.g. --quick --reps 1]
#
# Run from the repository root after `make emit-build` (`sudo make
# emit-bench` does both).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
BUILD=${BUILD:-$REPO/build}
UNIQ=$(printf '%04x' $(( ($$ + RANDOM) % 65536 )))
NS_C="stcpE-${UNIQ}-c"
NS_S="stcpE-${UNIQ}-s"
# Short names: the NAPI thread is "napi/DEV-ID" in a 15-character comm.
DEV_C="eC${UNIQ}"
DEV_S="eS${UNIQ}"
BENCH_PID=

die() {
	echo "emit/run.sh: $*" >&2
	exit 1
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $BENCH_PID ]] && kill -0 "$BENCH_PID" 2>/dev/null; then
		kill -TERM "$BENCH_PID" 2>/dev/null || true
		wait "$BENCH_PID" 2>/dev/null || true
	fi
	# Deleting the namespaces deletes the veth pair and with it every
	# XDP and TC program attached to it.
	ip netns del "$NS_C" 2>/dev/null || true
	ip netns del "$NS_S" 2>/dev/null || true
	[[ $rc -eq 0 ]] || echo "emit/run.sh: failed (status $rc)" >&2
	exit "$rc"
}

[[ $EUID -eq 0 ]] || die "must run as root"
for f in emit_bench emit_srv.bpf.o emit_cli.bpf.o; do
	[[ -e $BUILD/$f ]] || die "$BUILD/$f is missing: run make emit-build"
done
[[ $(nproc) -ge 2 ]] || die "needs 2 CPUs (server NAPI thread on CPU 1)"

trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$NS_C"
ip netns add "$NS_S"
ip link add "$DEV_C" netns "$NS_C" type veth peer name "$DEV_S" netns "$NS_S"
ip -n "$NS_C" link set lo up
ip -n "$NS_S" link set lo up
ip -n "$NS_C" addr add 198.18.0.2/24 dev "$DEV_C"
ip -n "$NS_S" addr add 198.18.0.1/24 dev "$DEV_S"
ip -n "$NS_C" link set "$DEV_C" up
ip -n "$NS_S" link set "$DEV_S" up
# Client checksums complete on the wire (the real-TCP probe).
ip netns exec "$NS_C" ethtool -K "$DEV_C" tx off >/dev/null

# emit_bench attaches its counter to the client veth itself (in place of
# build/xdp_pass.bpf.o: native XDP_TX/redirect on a veth is delivered only
# when the peer runs XDP too).
"$BUILD/emit_bench" --srv-ns "$NS_S" --cli-ns "$NS_C" \
	--srv-dev "$DEV_S" --cli-dev "$DEV_C" --objdir "$BUILD" "$@" &
BENCH_PID=$!
wait "$BENCH_PID"
BENCH_PID=
