#!/usr/bin/env bash
# sudo make demo: builds a client and a server namespace joined by a veth
# pair, starts stcpd on the server side, and lets real clients (Python, nc)
# open and close connections to 198.18.0.1:80 and [2001:2::1]:80 while the
# server kernel holds no socket at all. Cleans up after itself.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/scripts/netns.sh"
STCPD_LOG=$(mktemp /tmp/stcp-demo-stcpd.XXXXXX)

cleanup() {
	set +e
	topo_cleanup
	rm -f "$STCPD_LOG"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

[ "$(id -u)" = 0 ] || { echo "demo: run as root (sudo make demo)" >&2; exit 1; }

step "topology: client ns $NS_C ($CLI4, $CLI6) <-> server ns $NS_S ($SRV4, $SRV6)"
topo_up
step "stcpd --iface $DEV_S --listen $SRV4:$PORT --listen [$SRV6]:$PORT"
stcpd_start || { cat "$STCPD_LOG"; exit 1; }
cat "$STCPD_LOG"

step "real clients connect and close (Python sockets, nc)"
py_client "$SRV4" "$SRV6" "$PORT" <<'PY'
import socket, sys, time
srv4, srv6, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
for fam, addr in ((socket.AF_INET, srv4), (socket.AF_INET6, srv6)):
    t0 = time.perf_counter()
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect((addr, port))
    rtt = (time.perf_counter() - t0) * 1e6
    s.shutdown(socket.SHUT_WR)
    eof = s.recv(1) == b""
    s.close()
    print(f"  python: connect({addr}:{port}) ok in {rtt:.0f} us; "
          f"server FIN received: {eof}")
n = 2000
t0 = time.perf_counter()
for i in range(n):
    s = socket.socket(); s.settimeout(3); s.connect((srv4, port)); s.close()
dt = time.perf_counter() - t0
print(f"  python: {n} more handshakes in {dt:.2f} s ({n / dt:.0f}/s)")
PY
in_c nc -z -w 3 "$SRV4" "$PORT" && echo "  nc -z $SRV4 $PORT: connected"
in_c nc -z -w 3 "$SRV6" "$PORT" && echo "  nc -z $SRV6 $PORT: connected"

step "the server kernel knows nothing of it: ss -tan / ss -tln in $NS_S"
echo "  listening sockets: $(in_s ss -Htln | wc -l), connections: $(in_s ss -Htan | wc -l)"

step "stcpctl status"
ctl status

step "done: cleaning up namespaces and stcpd"
