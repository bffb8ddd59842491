#!/usr/bin/env bash
# The program loaded by plain `ip link ... xdp obj build/stcp.bpf.o sec xdp`
# pins its maps where `ip` does; stcpctl finds them, configures a service
# address and a key, and a real client then completes a handshake.
. "$(dirname "$0")/lib.sh"

GLOBALS=/sys/fs/bpf/xdp/globals
MAPS="stcp_cfg stcp_keys stcp_listen stcp_counters stcp_pages stcp_resps stcp_objects"
for m in $MAPS; do
	[ -e "$GLOBALS/$m" ] && skip "$GLOBALS/$m exists: another stcp loaded by ip link is running"
done
# shellcheck disable=SC2086 # one path per map name
EXTRA_CLEANUP+=("rm -f $(printf "$GLOBALS/%s " $MAPS)")

topo_up
# nsenter keeps the root mount namespace, so the pins land in the real bpffs.
in_s ip link set dev "$DEV_S" xdp obj "$BUILD/stcp.bpf.o" sec xdp
EXTRA_CLEANUP+=("nsenter --net=/run/netns/$NS_S ip link set dev $DEV_S xdp off")
for m in $MAPS; do
	[ -e "$GLOBALS/$m" ] || fail "ip link did not pin $m in $GLOBALS"
done

gctl() { in_s "$BUILD/stcpctl" --pin-dir "$GLOBALS" "$@"; }

# Without a service address everything passes: the kernel refuses port 80.
py_client "$SRV4" "$PORT" <<'PY' || fail "before configuration, port 80 should be refused"
import socket, sys
s = socket.socket(); s.settimeout(3)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); raise SystemExit("accepted")
except ConnectionRefusedError:
    pass
PY

gctl listen add "$SRV4:$PORT"
gctl listen add "[$SRV6]:$PORT"
gctl listen ls | grep -q "$SRV4:$PORT" || fail "listen ls misses $SRV4:$PORT"

py_client "$SRV4" "$SRV6" "$PORT" <<'PY' || fail "connect after stcpctl listen add"
import socket, sys
for fam, a in ((socket.AF_INET, sys.argv[1]), (socket.AF_INET6, sys.argv[2])):
    s = socket.socket(fam); s.settimeout(3); s.connect((a, int(sys.argv[3]))); s.close()
PY

st=$(gctl -j status)
log "status: $st"
echo "$st" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["interface"] == sys.argv[1], d
assert d["counters"]["syn_answered"] >= 2, d["counters"]
assert d["prog_id"], d
' "$DEV_S" || fail "stcpctl status does not describe the ip-link program"
[ "$(in_s ss -Htan | wc -l)" = 0 ] || fail "server kernel holds sockets"
# No stcpd: the content cache maps exist and are empty.
[ "$(gctl -j content ls)" = "[]" ] || fail "content ls without stcpd: $(gctl -j content ls)"
gctl status | grep -q '^content  *none' || fail "status without content: $(gctl status)"
echo "ok"
