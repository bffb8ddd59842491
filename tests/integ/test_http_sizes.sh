#!/usr/bin/env bash
# Multi-segment responses (docs/PROTOCOL.md 7) with real clients: every size
# of issue 3's list, from 0 B to 64 MB, fetched over IPv4 and IPv6 by curl
# (HTTP/1.0 and 1.1), wget and Python http.client, each body's sha256
# compared with the file's; ab (with and without -k) and wrk (with and
# without Connection: close) must report every request complete, with the
# right byte counts and no errors. tshark checks every segment of the
# curl runs up to 1 MB; the pinned maps have as many entries after as
# before.
. "$(dirname "$0")/lib.sh"

ROOT=$(mktemp -d /tmp/stcp-sizes-root.XXXXXX)
BODIES=$(mktemp -d /tmp/stcp-sizes-bodies.XXXXXX) # not in LOG_DIR: binary
EXTRA_CLEANUP+=("rm -rf $ROOT $BODIES")
SIZES="0 1 1447 1448 1449 14000 65536 1048576 67108864"
for n in $SIZES; do
	head -c "$n" /dev/urandom >"$ROOT/f$n.bin"
done

topo_up
stcpd_start --root "$ROOT" --cache-mb 256
maps_before=$(map_entries)

wire_capture_start
for n in 0 1 1447 1448 1449 14000 65536 1048576; do
	fetch_body curl11 "$SRV4" "$n"
	fetch_body curl11 "[$SRV6]" "$n"
done
wire_check 1500

fetched=0
for n in $SIZES; do
	for tool in curl10 curl11 wget python; do
		fetch_body "$tool" "$SRV4" "$n"
		fetch_body "$tool" "[$SRV6]" "$n"
		fetched=$((fetched + 2))
	done
done
log "curl, wget, python: $fetched bodies byte-identical ($SIZES bytes, IPv4 and IPv6)"

# ab: every request complete, none failed, the body bytes add up.
ab_run() {
	local n=$1 reqs=$2 host=$3 out
	shift 3
	out=$(in_c ab -q -s 60 -n "$reqs" -c 2 "$@" "http://$host/f$n.bin" 2>&1) ||
		fail "ab $* f$n.bin: $out"
	grep -q "^Complete requests: *$reqs\$" <<<"$out" || fail "ab $* f$n.bin: $(grep -i complete <<<"$out")"
	grep -q "^Failed requests: *0\$" <<<"$out" || fail "ab $* f$n.bin: $(grep -iA3 failed <<<"$out")"
	grep -q "^HTML transferred: *$((n * reqs)) bytes" <<<"$out" ||
		fail "ab $* f$n.bin: $(grep -i 'html transferred' <<<"$out"), want $((n * reqs))"
}
for n in $SIZES; do
	reqs=20
	[ "$n" -gt 1048576 ] && reqs=2
	ab_run "$n" "$reqs" "$SRV4"
	ab_run "$n" "$reqs" "$SRV4" -k
	ab_run "$n" "$reqs" "[$SRV6]" -k
done
log "ab: every size, with and without -k, no failed request"

# wrk: requests done, no socket errors, no non-2xx, and the bytes read
# cover every response (headers of about 250 bytes each on top).
wrk_run() {
	local n=$1 host=$2 out reqs bytes
	shift 2
	out=$(in_c wrk -t1 -c2 -d1s --timeout 10s "$@" "http://$host/f$n.bin" 2>&1) ||
		fail "wrk $* f$n.bin: $out"
	grep -q "Socket errors" <<<"$out" && fail "wrk $* f$n.bin: $(grep 'Socket errors' <<<"$out")"
	grep -q "Non-2xx" <<<"$out" && fail "wrk $* f$n.bin: $(grep 'Non-2xx' <<<"$out")"
	reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
	[ "${reqs:-0}" -gt 0 ] || fail "wrk $* f$n.bin: no request completed"
	bytes=$(awk '/requests in/ { print $5 }' <<<"$out")
	# wrk rounds to two decimals of binary units: allow 1%.
	awk -v b="$bytes" -v r="$reqs" -v n="$n" 'BEGIN {
		u = substr(b, length(b) - 1); v = substr(b, 1, length(b) - 2) + 0
		m = (u == "GB") ? 2^30 : (u == "MB") ? 2^20 : (u == "KB") ? 2^10 : 1
		if (u !~ /[KMG]B/) v = b + 0
		exit !(v * m >= 0.99 * r * n)
	}' || fail "wrk $* f$n.bin: $bytes read for $reqs responses of $n bytes"
	log "wrk $* f$n.bin: $reqs requests, $bytes read"
}
for n in 0 1449 65536 1048576; do
	wrk_run "$n" "$SRV4"
	wrk_run "$n" "$SRV4" -H "Connection: close"
	wrk_run "$n" "[$SRV6]" -H "Connection: close"
done

[ "$(in_s ss -Htan | wc -l)" = 0 ] || fail "server kernel holds sockets"
maps_after=$(map_entries)
[ "$maps_before" = "$maps_after" ] || fail "map entries changed: $maps_before -> $maps_after"
log "map entries unchanged: $(tr '\n' ' ' <<<"$maps_after")"
for c in bad_cookie stale_cookie response_too_big data_refused drop_tx_failed; do
	v=$(counter "$c")
	[ "$v" = 0 ] || fail "$c=$v"
done
log "tx_data=$(counter tx_data) tx_retrans=$(counter tx_retrans) data_ack_released=$(counter data_ack_released) data_sack=$(counter data_sack)"
echo "ok"
