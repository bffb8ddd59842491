#!/usr/bin/env bash
# Real clients complete connect() over IPv4 and IPv6 against stcpd while the
# server namespace has no listening socket and no connection; an orderly close
# gets the server's FIN; traffic that is not for the service passes untouched.
. "$(dirname "$0")/lib.sh"

topo_up
stcpd_start

wire_capture_start

py_client "$SRV4" "$SRV6" "$PORT" <<'PY' || fail "python client"
import socket, sys
srv4, srv6, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
for fam, addr in ((socket.AF_INET, srv4), (socket.AF_INET6, srv6)):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect((addr, port))
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    state = info[0]
    assert state == 1, f"{addr}: TCP state {state}, want ESTABLISHED"
    # Orderly close before any data: the server answers our FIN with its own.
    s.shutdown(socket.SHUT_WR)
    assert s.recv(1) == b"", "expected EOF from the server's FIN"
    s.close()
    print(f"connected and closed: {addr}")
PY

# The kernel on the server side knows nothing of these connections.
listening=$(in_s ss -Htln | wc -l)
conns=$(in_s ss -Htan | wc -l)
[ "$listening" = 0 ] || fail "server has listening sockets: $(in_s ss -tln)"
[ "$conns" = 0 ] || fail "server kernel has connections: $(in_s ss -tan)"

# Other tools: curl's telnet:// and nc both complete the handshake.
in_c timeout 5 nc -z -w 3 "$SRV4" "$PORT" || fail "nc -z over IPv4"
in_c timeout 5 nc -z -w 3 "$SRV6" "$PORT" || fail "nc -z over IPv6"

wire_check 20
synacks=$(tshark -r "$PCAP" -Y 'tcp.flags.syn == 1 && tcp.flags.ack == 1' 2>/dev/null | wc -l)
[ "$synacks" -ge 4 ] || fail "capture has $synacks SYN-ACKs"

syn=$(counter syn_answered)
done_=$(counter handshake_done)
fin=$(counter fin_answered)
log "syn_answered=$syn handshake_done=$done_ fin_answered=$fin"
[ "$syn" -ge 4 ] || fail "syn_answered=$syn, want >= 4"
[ "$done_" -ge 2 ] || fail "handshake_done=$done_, want >= 2"
[ "$fin" -ge 2 ] || fail "fin_answered=$fin, want >= 2"

# Not ours: ICMP and another port go to the kernel (echo reply, RST).
in_c ping -c 1 -W 2 "$SRV4" >/dev/null || fail "ping passes through"
in_c ping -6 -c 1 -W 2 "$SRV6" >/dev/null || fail "ping6 passes through"
py_client "$SRV4" <<'PY' || fail "port 81 should be refused by the kernel"
import socket, sys
s = socket.socket(); s.settimeout(3)
try:
    s.connect((sys.argv[1], 81))
    raise SystemExit("port 81 unexpectedly accepted")
except ConnectionRefusedError:
    print("port 81 refused by the server kernel, as it should be")
PY
[ "$(counter pass_non_tcp)" -ge 2 ] || fail "ICMP not counted as pass_non_tcp"
[ "$(counter pass_other_dest)" -ge 1 ] || fail "port 81 not counted as pass_other_dest"
echo "ok"
