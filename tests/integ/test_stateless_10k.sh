#!/usr/bin/env bash
# 10,000 handshakes (and closes) leave every map's entry count unchanged and
# leave no socket in the server's kernel.
. "$(dirname "$0")/lib.sh"

N=${STCP_HANDSHAKES:-10000}
topo_up
stcpd_start
before=$(map_entries)

py_client "$SRV4" "$SRV6" "$PORT" "$N" <<'PY' || fail "handshake loop"
import socket, sys, time
srv4, srv6, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ok = 0
t0 = time.time()
for i in range(n):
    fam, addr = (socket.AF_INET6, srv6) if i % 2 else (socket.AF_INET, srv4)
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect((addr, port))
    s.close()
    ok += 1
print(f"{ok} handshakes in {time.time() - t0:.1f} s")
assert ok == n
PY

after=$(map_entries)
log "maps before: $(echo $before)"
log "maps after:  $(echo $after)"
[ "$before" = "$after" ] || fail "map entry counts changed"
[ "$(in_s ss -Htan | wc -l)" = 0 ] || fail "server kernel holds sockets"
syn=$(counter syn_answered)
[ "$syn" -ge "$N" ] || fail "syn_answered=$syn < $N"
echo "ok"
