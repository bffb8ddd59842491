#!/usr/bin/env bash
# sudo make demo: builds a client and a server namespace joined by a veth
# pair, starts stcpd on the server side with a small sample site, and lets
# real clients (curl, wget, Python) fetch it over IPv4 and IPv6 while the
# server kernel holds no socket at all. Cleans up after itself.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/scripts/netns.sh"
STCPD_LOG=$(mktemp /tmp/stcp-demo-stcpd.XXXXXX)
SITE=$(mktemp -d /tmp/stcp-demo-site.XXXXXX)

cleanup() {
	set +e
	topo_cleanup
	rm -f "$STCPD_LOG"
	rm -rf "$SITE"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

[ "$(id -u)" = 0 ] || { echo "demo: run as root (sudo make demo)" >&2; exit 1; }

step "topology: client ns $NS_C ($CLI4, $CLI6) <-> server ns $NS_S ($SRV4, $SRV6)"
topo_up
# A sample site: small pages answered in one segment (docs/PROTOCOL.md 6.2)
# and a 4 MB file sent as ACK-clocked segments (section 7).
mkdir -p "$SITE/css"
cat >"$SITE/index.html" <<'HTML'
<!doctype html><html><head><title>stcp</title>
<link rel="stylesheet" href="/css/site.css"></head>
<body><h1>Served by XDP, no socket anywhere</h1>
<p>This page came from a BPF map, in one segment with the FIN.</p></body></html>
HTML
printf 'body { font-family: sans-serif; }\n' >"$SITE/css/site.css"
printf 'stcp demo\n' >"$SITE/hello.txt"
head -c 4194304 /dev/urandom >"$SITE/big.bin"

step "stcpd --iface $DEV_S --listen $SRV4:$PORT --listen [$SRV6]:$PORT --root $SITE"
stcpd_start --root "$SITE" || { cat "$STCPD_LOG"; exit 1; }
cat "$STCPD_LOG"

step "real clients fetch the site"
for url in "http://$SRV4/" "http://[$SRV6]/css/site.css"; do
	echo "  curl $url"
	in_c curl -sS -m 5 -D - "$url" | sed 's/^/    /'
done
in_c wget -q -T 5 -O "$SITE.wget" "http://$SRV4/hello.txt" &&
	cmp -s "$SITE.wget" "$SITE/hello.txt" &&
	echo "  wget http://$SRV4/hello.txt: identical to the file"
rm -f "$SITE.wget"
in_c curl -sS -m 20 -o "$SITE.big" -w '  curl http://[%{remote_ip}]/big.bin: %{size_download} bytes in %{time_total} s' "http://[$SRV6]/big.bin"
cmp -s "$SITE.big" "$SITE/big.bin" && echo ", identical to the file"
rm -f "$SITE.big"
py_client "$SRV4" <<'PY'
import http.client, sys, time
t0 = time.perf_counter()
n, ok = 500, 0
for i in range(n):
    c = http.client.HTTPConnection(sys.argv[1], 80, timeout=5)
    c.request("GET", "/hello.txt")
    r = c.getresponse()
    ok += r.status == 200 and r.read() == b"stcp demo\n"
    c.close()
dt = time.perf_counter() - t0
print(f"  python http.client: {ok}/{n} GETs, one connection each, {n / dt:.0f}/s")
t0 = time.perf_counter()
c = http.client.HTTPConnection(sys.argv[1], 80, timeout=5)
ok = 0
for i in range(n):
    c.request("GET", "/hello.txt")
    r = c.getresponse()
    ok += r.status == 200 and r.read() == b"stcp demo\n"
port = c.sock.getsockname()[1]
c.close()
dt = time.perf_counter() - t0
print(f"  python http.client: {ok}/{n} GETs on one keep-alive connection "
      f"(local port {port}), {n / dt:.0f}/s")
print(f"  curl /missing -> ", end="")
PY
in_c curl -s -m 5 -o /dev/null -w '%{http_code}\n' "http://$SRV4/missing"

step "bare handshakes and closes (Python sockets, nc)"
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
