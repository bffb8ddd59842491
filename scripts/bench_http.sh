#!/usr/bin/env bash
# 1 KB GETs, a new connection each (wrk -c64, Connection: close), from a
# client namespace to nginx and to stcp on the same veth topology, in the
# same run, alternating twice. Prints a Markdown table with the ratio.
# Run as root from the repository root after `make` (scripts/bench.sh
# calls it as the http-close section).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/scripts/netns.sh"
DUR=${STCP_BENCH_SECONDS:-5}
WORK=$(mktemp -d /tmp/stcp-bench-http.XXXXXX)
STCPD_LOG="$WORK/stcpd.log"
trap 'set +e; topo_cleanup; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM

mkdir -p "$WORK/root"
# nginx workers run unprivileged: they must be able to read the files.
chmod 755 "$WORK" "$WORK/root"
head -c 1024 /dev/urandom >"$WORK/root/k1.bin"
chmod 644 "$WORK/root/k1.bin"
cat >"$WORK/nginx.conf" <<CONF
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err warn;
events { worker_connections 4096; }
http {
	access_log off;
	server { listen $SRV4:$PORT; root $WORK/root; }
}
CONF

topo_up
# The server's own sockets (nginx) must see clean checksums too.
in_s ethtool -K "$DEV_S" tx off >/dev/null

# wrk_rps: requests/s of one run; fails on socket errors or non-2xx.
wrk_rps() {
	local out
	out=$(in_c wrk -t2 -c64 -d"${DUR}s" -H 'Connection: close' \
		"http://$SRV4/k1.bin")
	if grep -qE 'Non-2xx|Socket errors: connect [1-9]|read [1-9]|timeout [1-9]' <<<"$out"; then
		echo "bench_http: errors in a wrk run:" >&2
		echo "$out" >&2
		return 1
	fi
	awk '/^Requests\/sec:/ { printf "%d", $2 }' <<<"$out"
}

declare -a NGINX STCP
for round in 1 2; do
	nsenter --net="/run/netns/$NS_S" nginx -c "$WORK/nginx.conf" -g 'daemon off;' &
	NGX=$!
	PIDS+=("$NGX")
	sleep 0.5
	NGINX+=("$(wrk_rps)")
	kill -QUIT "$NGX"
	wait "$NGX" 2>/dev/null || true

	stcpd_start --root "$WORK/root"
	STCP+=("$(wrk_rps)")
	kill -TERM "${PIDS[-1]}"
	wait "${PIDS[-1]}" 2>/dev/null || true
	echo "bench_http: round $round: nginx ${NGINX[-1]}/s, stcp ${STCP[-1]}/s" >&2
done

mean() { echo $((($1 + $2) / 2)); }
n=$(mean "${NGINX[@]}")
s=$(mean "${STCP[@]}")
echo "| server | requests/s, run 1 | run 2 | mean | vs nginx |"
echo "|---|---:|---:|---:|---:|"
echo "| nginx $(nginx -v 2>&1 | sed 's|.*/||') (kernel TCP) | ${NGINX[0]} | ${NGINX[1]} | $n | 1.00 |"
echo "| stcp (XDP, one segment + FIN) | ${STCP[0]} | ${STCP[1]} | $s | $(awk -v a="$s" -v b="$n" 'BEGIN { printf "%.2f", a / b }') |"
