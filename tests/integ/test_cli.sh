#!/usr/bin/env bash
# Wrong arguments, a missing interface and missing maps give one clear line
# and the documented exit codes (1 runtime error, 2 usage error); --help works;
# key rotation keeps handshakes working and never prints key material.
. "$(dirname "$0")/lib.sh"

"$BUILD/stcpd" --help | grep -q -- '--listen' || fail "stcpd --help"
"$BUILD/stcpctl" --help | grep -q 'status' || fail "stcpctl --help"
expect_err 2 'iface' "$BUILD/stcpd"
expect_err 2 'listen' "$BUILD/stcpd" --iface lo
expect_err 2 'ADDR:PORT' "$BUILD/stcpd" --iface lo --listen 1.2.3
expect_err 2 'ADDR:PORT' "$BUILD/stcpd" --iface lo --listen '[::1:80'
expect_err 2 'mode' "$BUILD/stcpd" --iface lo --listen 198.18.0.1:80 --mode turbo
expect_err 2 '.' "$BUILD/stcpd" --bogus
expect_err 1 'not found' "$BUILD/stcpd" --iface nosuchdev0 --listen 198.18.0.1:80
expect_err 1 'no stcp maps' "$BUILD/stcpctl" --pin-dir /sys/fs/bpf/does-not-exist status
expect_err 2 '.' "$BUILD/stcpctl" frobnicate
# Without root (no CAP_BPF / CAP_NET_ADMIN): one line that says what to do.
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; }
expect_err 1 'permission denied.*root' as_nobody "$BUILD/stcpd" --iface lo \
	--listen 198.18.0.1:80 --pin-dir /sys/fs/bpf

topo_up
stcpd_start

connect_once() {
	py_client "$SRV4" "$PORT" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(3); s.connect((sys.argv[1], int(sys.argv[2]))); s.close()
PY
}

connect_once || fail "connect before rotation"
gen0=$(ctl -j keys show | python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])')
out=$(ctl keys rotate)
log "$out"
gen1=$(ctl -j keys show | python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])')
[ "$gen1" -gt "$gen0" ] || fail "key generation did not advance ($gen0 -> $gen1)"
connect_once || fail "connect after rotation"

# No key material anywhere in what the tools print.
all=$(ctl status; ctl -j status; ctl keys show; ctl -j keys show; cat "$LOG_DIR/stcpd.log")
for m in stcp_keys; do
	keyhex=$(bpftool -j map dump pinned "$PIN_DIR/$m" | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    v = e.get("formatted", {}).get("value") or {}
    for f in ("k0", "k1"):
        if v.get(f): print(format(v[f], "x")); print(v[f])')
	# Two slots, two words each, in hex and decimal: a check of nothing
	# would pass whatever the tools print.
	[ "$(echo "$keyhex" | wc -w)" -ge 4 ] ||
		fail "could not read key material from $m to look for it"
	for k in $keyhex; do
		case "$all" in *"$k"*) fail "key material printed: $k" ;; esac
	done
done
echo "ok"
