#!/usr/bin/env bash
# The data-path figures of issue 3, nginx and stcp on the same veth
# topology in the same run (scripts/bench.sh calls it as the http-data
# section; run as root from the repository root after `make`):
#   - 1 KB GETs/s with keep-alive and with a connection per request
#     (wrk -t2 -c64), alternating servers twice;
#   - 10 MB single download (curl), against nginx with the server veth's
#     TSO/GSO on and off, and stcp;
#   - goodput of 1 MB downloads at 1% random loss each way;
#   - 64 MB single download, stcp behind --cache-mb 32 (a windowed body,
#     docs/PROTOCOL.md 7.7) and with the whole file cached, against nginx;
#   - server CPU per request: for nginx its workers' utime + stime, for
#     stcp the XDP programs' run time (kernel.bpf_stats_enabled);
#   - kernel slab growth with 15,000 open connections (the client's
#     sockets count in both; the difference is the server's).
# Prints Markdown on stdout.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/scripts/netns.sh"
DUR=${STCP_BENCH_SECONDS:-5}
WORK=$(mktemp -d /tmp/stcp-bench-data.XXXXXX)
STCPD_LOG="$WORK/stcpd.log"
trap 'set +e; rm -f /dev/shm/stcp-bench-body; in_c nft delete table inet stcp_bench 2>/dev/null; sysctl -qw kernel.bpf_stats_enabled=0; topo_cleanup; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM

mkdir -p "$WORK/root"
chmod 755 "$WORK" "$WORK/root"
head -c 1024 /dev/urandom >"$WORK/root/k1.bin"
head -c 1048576 /dev/urandom >"$WORK/root/m1.bin"
head -c 10485760 /dev/urandom >"$WORK/root/m10.bin"
head -c 67108864 /dev/urandom >"$WORK/root/m64.bin"
chmod 644 "$WORK/root"/*
cat >"$WORK/nginx.conf" <<CONF
worker_processes auto;
worker_rlimit_nofile 20000;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err warn;
events { worker_connections 20000; }
http {
	access_log off;
	keepalive_requests 1000000;
	keepalive_timeout 300s;
	server { listen $SRV4:$PORT backlog=20000; root $WORK/root; }
}
CONF

topo_up
in_s ethtool -K "$DEV_S" tx off >/dev/null
in_s sysctl -qw net.core.somaxconn=20000
# 15,000 connections after the wrk runs' TIME_WAIT ones need the ports.
in_c sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
in_c sysctl -qw net.ipv4.tcp_tw_reuse=1

nginx_start() {
	nsenter --net="/run/netns/$NS_S" nginx -c "$WORK/nginx.conf" -g 'daemon off;' &
	PIDS+=($!)
	sleep 0.5
}
server_stop() {
	kill -TERM "${PIDS[-1]}"
	wait "${PIDS[-1]}" 2>/dev/null || true
	unset 'PIDS[-1]'
	sleep 0.3
}
nginx_cpu_ticks() { # utime + stime of the nginx workers
	local p t=0
	for p in $(pgrep -f 'nginx: worker'); do
		t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
	done
	echo "$t"
}
bpf_run_ns() { # run_time_ns of stcp's programs
	bpftool -j prog show | python3 -c 'import json,sys
print(sum(p.get("run_time_ns", 0) for p in json.load(sys.stdin)
          if p.get("name") in ("stcp_xdp", "stcp_devmap_tx")))'
}
# wrk_run [wrk args]: prints "requests/s total_requests"; fails on errors.
wrk_run() {
	local out
	out=$(in_c wrk -t2 -c64 -d"${DUR}s" "$@" "http://$SRV4/k1.bin")
	if grep -qE 'Non-2xx|Socket errors: connect [1-9]|read [1-9]|timeout [1-9]' <<<"$out"; then
		echo "bench_data: errors in a wrk run:" >&2
		echo "$out" >&2
		return 1
	fi
	awk '/^Requests\/sec:/ { rps = $2 } / requests in / { n = $1 } END { printf "%d %d", rps, n }' <<<"$out"
}
# curl_rate URL: bytes/s of one download, body checked.
curl_rate() {
	local out=/dev/shm/stcp-bench-body r
	r=$(in_c curl -sS -m 120 -o "$out" -w '%{speed_download}' "$1")
	cmp -s "$out" "$WORK/root/$(basename "$1")" || { echo "bench_data: $1 differs" >&2; return 1; }
	echo "${r%.*}"
}
best_of3() { printf '%s\n' "$@" | sort -n | tail -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mean2() { echo $((($1 + $2) / 2)); }
set_loss() {
	in_c nft delete table inet stcp_bench 2>/dev/null || true
	[ "$1" = 0 ] && return 0
	in_c nft -f - <<EOF
table inet stcp_bench {
	chain in { type filter hook prerouting priority -300; tcp sport $PORT numgen random mod 100 < $1 drop; }
	chain out { type filter hook output priority -300; tcp dport $PORT numgen random mod 100 < $1 drop; }
}
EOF
}
# slab_with_conns: kB of kernel slab added by 15000 idle connections.
slab_with_conns() {
	local before after
	before=$(awk '/^Slab:/ { print $2 }' /proc/meminfo)
	sleep 2 # let the TIME_WAIT sockets of earlier runs go
	in_c python3 - "$SRV4" "$WORK/held" <<'PY' || return 1
import os, socket, sys, time, resource
resource.setrlimit(resource.RLIMIT_NOFILE, (19000, 20000))
socks = []
for i in range(15000):
    s = socket.socket()
    s.connect((sys.argv[1], 80))
    socks.append(s)
open(sys.argv[2], "w").write("%d\n" % len(socks))
time.sleep(2)
after = [l for l in open("/proc/meminfo") if l.startswith("Slab:")][0].split()[1]
open(sys.argv[2], "a").write(after + "\n")
PY
	after=$(sed -n 2p "$WORK/held")
	echo $((after - before))
}

sysctl -qw kernel.bpf_stats_enabled=1
declare -a NG_KA NG_CL ST_KA ST_CL
for round in 1 2; do
	nginx_start
	NG_KA+=("$(wrk_run | cut -d' ' -f1)")
	c0=$(nginx_cpu_ticks)
	read -r rps n <<<"$(wrk_run -H 'Connection: close')"
	NG_CL+=("$rps")
	NG_CPU_NS=$(( ($(nginx_cpu_ticks) - c0) * 10000000 / n ))
	server_stop
	stcpd_start --root "$WORK/root"
	ST_KA+=("$(wrk_run | cut -d' ' -f1)")
	c0=$(bpf_run_ns)
	read -r rps n <<<"$(wrk_run -H 'Connection: close')"
	ST_CL+=("$rps")
	ST_CPU_NS=$(( ($(bpf_run_ns) - c0) / n ))
	server_stop
	echo "bench_data: round $round: keep-alive nginx ${NG_KA[-1]} stcp ${ST_KA[-1]}; close nginx ${NG_CL[-1]} stcp ${ST_CL[-1]}" >&2
done

# 10 MB downloads, best of three each.
nginx_start
a=(); for _ in 1 2 3; do a+=("$(curl_rate "http://$SRV4/m10.bin")"); done
NG_10=$(best_of3 "${a[@]}")
in_s ethtool -K "$DEV_S" tso off gso off >/dev/null
a=(); for _ in 1 2 3; do a+=("$(curl_rate "http://$SRV4/m10.bin")"); done
NG_10_NOTSO=$(best_of3 "${a[@]}")
a=(); for _ in 1 2 3; do a+=("$(curl_rate "http://$SRV4/m64.bin")"); done
NG_64_NOTSO=$(best_of3 "${a[@]}")
in_s ethtool -K "$DEV_S" tso on gso on >/dev/null
set_loss 1
a=(); for _ in 1 2 3; do a+=("$(curl_rate "http://$SRV4/m1.bin")"); done
NG_LOSS=$(printf '%s\n' "${a[@]}" | sort -n | sed -n 2p)
set_loss 0
NG_SLAB=$(slab_with_conns)
NG_TW=$(in_s ss -Htan state time-wait | wc -l)
server_stop

stcpd_start --root "$WORK/root"
a=(); for _ in 1 2 3; do a+=("$(curl_rate "http://$SRV4/m10.bin")"); done
ST_10=$(best_of3 "${a[@]}")
set_loss 1
a=(); for _ in 1 2 3; do a+=("$(curl_rate "http://$SRV4/m1.bin")"); done
ST_LOSS=$(printf '%s\n' "${a[@]}" | sort -n | sed -n 2p)
set_loss 0
ST_SLAB=$(slab_with_conns)
ST_SOCKS=$(in_s ss -Htan state established | wc -l)
ST_TW=$(in_s ss -Htan state time-wait | wc -l)
a=(); for _ in 1 2 3; do a+=("$(curl_rate "http://$SRV4/m64.bin")"); done
ST_64=$(best_of3 "${a[@]}")
server_stop

# The same 64 MB file behind a 32 MB cache: served through a 4 MB ring.
stcpd_start --root "$WORK/root" --cache-mb 32
a=(); for _ in 1 2 3; do a+=("$(curl_rate "http://$SRV4/m64.bin")"); done
ST_64W=$(best_of3 "${a[@]}")
server_stop

mb() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
echo "| figure | nginx (kernel TCP) | stcp | stcp / nginx | target |"
echo "|---|---:|---:|---:|---|"
echo "| 1 KB GET/s, keep-alive, wrk -c64 (runs: ${NG_KA[*]} / ${ST_KA[*]}) | $(mean2 "${NG_KA[@]}") | $(mean2 "${ST_KA[@]}") | $(ratio "$(mean2 "${ST_KA[@]}")" "$(mean2 "${NG_KA[@]}")") | ≥ 1.5 |"
echo "| 1 KB GET/s, connection per request (runs: ${NG_CL[*]} / ${ST_CL[*]}) | $(mean2 "${NG_CL[@]}") | $(mean2 "${ST_CL[@]}") | $(ratio "$(mean2 "${ST_CL[@]}")" "$(mean2 "${NG_CL[@]}")") | ≥ 2 |"
echo "| 10 MB download, MB/s, best of 3 (nginx with veth TSO/GSO on) | $(mb "$NG_10") | $(mb "$ST_10") | $(ratio "$ST_10" "$NG_10") | |"
echo "| 10 MB download, MB/s, best of 3 (nginx with TSO/GSO off) | $(mb "$NG_10_NOTSO") | $(mb "$ST_10") | $(ratio "$ST_10" "$NG_10_NOTSO") | ≥ 0.8 |"
echo "| 64 MB download, MB/s, best of 3 (nginx with TSO/GSO off; stcp with the file cached whole) | $(mb "$NG_64_NOTSO") | $(mb "$ST_64") | $(ratio "$ST_64" "$NG_64_NOTSO") | |"
echo "| 64 MB download, MB/s, best of 3 (stcp behind --cache-mb 32: a windowed body, 4 MB ring) | $(mb "$NG_64_NOTSO") | $(mb "$ST_64W") | $(ratio "$ST_64W" "$NG_64_NOTSO") | |"
echo "| 1 MB goodput at 1% loss each way, MB/s, median of 3 | $(awk -v b="$NG_LOSS" 'BEGIN { printf "%.2f", b / 1048576 }') | $(awk -v b="$ST_LOSS" 'BEGIN { printf "%.2f", b / 1048576 }') | $(ratio "$ST_LOSS" "$NG_LOSS") | |"
echo "| server CPU per request, connection per request, ns (nginx workers' CPU time; stcp's XDP programs' run time) | $NG_CPU_NS | $ST_CPU_NS | $(ratio "$ST_CPU_NS" "$NG_CPU_NS") | |"
echo "| kernel slab added by 15,000 open connections, kB (client sockets included in both) | $NG_SLAB | $ST_SLAB | | server share ≈ 0 |"
echo
echo "After nginx's runs the server namespace held $NG_TW sockets in TIME_WAIT;"
echo "after stcp's (and nginx's TIME_WAIT still draining: $ST_TW), $ST_SOCKS established ones."
