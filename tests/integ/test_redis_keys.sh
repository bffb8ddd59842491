#!/usr/bin/env bash
# Two stcpd replicas share their MAC keys through one Redis (--redis): the
# same key material from the start, a SYN-ACK minted by replica 1 validated
# by replica 2, `stcpctl keys rotate` on one replica reaching both, serving
# on while Redis is killed (one warning each, no flood) and rotating again
# once it is back. Then the local schedule: --key-rotate-s 2 without Redis
# rotates by itself while handshakes keep working. Key material is compared
# only as digests, never printed.
. "$(dirname "$0")/lib.sh"


# ---- usage errors: one line, exit 2, before anything is touched ----
for v in "" localhost 127.0.0.1 ":6379" "host:" "host:0" "host:65536" \
	"host:63x9" "host:-1" "unix:" "[::1:6379" "[zz]:6379" "a:b:6379" \
	"ho st:6379"; do
	expect_err 2 'expected HOST:PORT or unix:PATH' "$BUILD/stcpd" \
		--iface lo --listen 198.18.0.1:80 --redis "$v"
done
expect_err 2 'needs a value' "$BUILD/stcpd" --iface lo --listen 198.18.0.1:80 --redis
for v in -1 abc 1.5 99999999999 ""; do
	expect_err 2 'key-rotate-s' "$BUILD/stcpd" --iface lo \
		--listen 198.18.0.1:80 --key-rotate-s "$v"
done
expect_err 2 'needs --redis' "$BUILD/stcpd" --iface lo --listen 198.18.0.1:80 \
	--redis-prefix x:
expect_err 2 'non-empty' "$BUILD/stcpd" --iface lo --listen 198.18.0.1:80 \
	--redis unix:/nonexistent --redis-prefix ''

PREFIX="stcp-test-${UNIQ}:"
redis_init

# keys_info PIN_DIR: "DIGEST GEN CUR PREV", where DIGEST covers both slots
# (key, valid, gen; sorted, so the slot numbers do not matter), CUR and
# PREV digest the current and previous key alone ("-" when invalid).
keys_info() {
	bpftool -j map dump pinned "$1/stcp_keys" | python3 -c '
import hashlib, json, sys
vals = [e["formatted"]["value"] for e in json.load(sys.stdin)]
def h(o): return hashlib.sha256(json.dumps(o, sort_keys=True).encode()).hexdigest()[:16]
ok = sorted((v for v in vals if v["valid"]), key=lambda v: v["gen"])
cur = ok[-1] if ok else None
prev = ok[-2] if len(ok) > 1 else None
kh = lambda v: h([v["k0"], v["k1"]]) if v else "-"
print(h(sorted(vals, key=lambda v: (v["gen"], v["valid"], v["k0"]))),
      cur["gen"] if cur else 0, kh(cur), kh(prev))'
}
field() { echo "$1" | cut -d' ' -f"$2"; }

# record_matches PIN_DIR: the Redis record holds exactly that replica's
# current and previous key and generation (compared here, not printed).
record_matches() {
	bpftool -j map dump pinned "$1/stcp_keys" | python3 -c '
import json, struct, subprocess, sys
rec = subprocess.run(["redis-cli", "-s", sys.argv[1], "hmget", sys.argv[2],
                      "gen", "cur", "prev"], capture_output=True,
                     text=True).stdout.split("\n")
if len(rec) < 3: sys.exit(1)
gen, cur, prev = rec[:3]
vals = [e["formatted"]["value"] for e in json.load(sys.stdin)]
ok = sorted((v for v in vals if v["valid"]), key=lambda v: v["gen"])
hx = lambda v: struct.pack("<QQ", v["k0"], v["k1"]).hex()
good = ok and str(ok[-1]["gen"]) == gen and hx(ok[-1]) == cur and \
    (len(ok) < 2 or hx(ok[-2]) == prev)
sys.exit(0 if good else 1)' "$REDIS_SOCK" "${PREFIX}keys"
}

warns() { grep -c 'stcpd: warn:' "$1" || true; }

connect_n() { # connect_n CLIENT_FN ADDR N: N handshakes, prints failures
	"$1" python3 - "$2" "$PORT" "$3" <<'PY'
import socket, sys
bad = 0
for _ in range(int(sys.argv[3])):
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
        s.close()
    except OSError:
        bad += 1
print(bad)
PY
}

mac_of() { # mac_of NS_FN DEV
	"$1" ip -j link show dev "$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])'
}

# A raw client on AF_PACKET: "syn" sends a SYN and prints the server's ISN
# from the SYN-ACK; "fin" sends the FIN that validates against that ISN
# (ack = ISN + 1, or a wrong one with "badfin") and prints the answer's
# flags, seq and ack. No TCP options: the ISN carries the whole cookie.
PKT_PY='
import socket, struct, sys, time
mode, ifname, smac, dmac, sip, dip, sport, dport, cisn = sys.argv[1:10]
sport, dport, cisn = int(sport), int(dport), int(cisn)
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def frame(seq, ack, flags):
    src, dst = socket.inet_aton(sip), socket.inet_aton(dip)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0)
    c = csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    eth = bytes.fromhex(dmac.replace(":", "")) + bytes.fromhex(smac.replace(":", "")) + b"\x08\x00"
    return eth + ip + tcp
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((ifname, 0))
s.settimeout(0.5)
if mode == "syn":
    pkt = frame(cisn, 0, 0x02)
else:
    sisn = int(sys.argv[10])
    pkt = frame(cisn + 1, (sisn + 1 + (1 if mode == "badfin" else 0)) & 0xffffffff, 0x11)
s.send(pkt)
end = time.time() + 3
while time.time() < end:
    try:
        b = s.recv(2048)
    except socket.timeout:
        continue
    if len(b) < 54 or b[12:14] != b"\x08\x00" or b[23] != 6:
        continue
    ihl = (b[14] & 15) * 4
    t = b[14 + ihl:]
    sp, dp, seq, ack, _, fl = struct.unpack("!HHIIBB", t[:14])
    if sp != dport or dp != sport:
        continue
    if mode == "syn":
        if fl & 0x12 == 0x12:
            print(seq); sys.exit(0)
        continue
    print(fl, seq, ack); sys.exit(0)
sys.exit(1)
'
pkt() { # pkt NS_FN ARGS...
	local fn=$1
	shift
	"$fn" python3 -c "$PKT_PY" "$@"
}

topo_up
topo_up2
redis_start
STCPD_LOG2="$LOG_DIR/stcpd2.log"
# Replica 2 also answers for replica 1's service address, as replicas
# behind one virtual address do: that is what the split handshake needs.
stcpd_start --redis "unix:$REDIS_SOCK" --redis-prefix "$PREFIX"
stcpd_start2 --redis "unix:$REDIS_SOCK" --redis-prefix "$PREFIX" \
	--listen "$SRV4:$PORT"
R1=${PIDS[0]}
R2=${PIDS[1]}

# ---- (1) the same keys on both replicas from the start ----
k1=$(keys_info "$PIN_DIR")
k2=$(keys_info "$PIN_DIR2")
log "replica 1: digest $(field "$k1" 1) gen $(field "$k1" 2); replica 2: digest $(field "$k2" 1) gen $(field "$k2" 2)"
[ "$(field "$k1" 1)" = "$(field "$k2" 1)" ] || fail "the replicas' keys differ after start"
[ "$(field "$k1" 2)" = "$(rcli hget "${PREFIX}keys" gen)" ] || fail "local gen is not Redis's"
record_matches "$PIN_DIR" || fail "the Redis record does not hold replica 1's keys"
grep -q 'record written from ours' "$STCPD_LOG" || fail "replica 1 did not create the record"
grep -q 'from Redis' "$STCPD_LOG2" || fail "replica 2 did not take the record"
at1=$(ctl -j keys show | python3 -c 'import json,sys; print(json.load(sys.stdin)["rotated_at"])')
at2=$(ctl2 -j keys show | python3 -c 'import json,sys; print(json.load(sys.stdin)["rotated_at"])')
[ "$at1" = "$at2" ] || fail "rotation times differ ($at1, $at2)"

# ---- (2) a cookie minted by replica 1 validates at replica 2 ----
MAC_C=$(mac_of in_c "$DEV_C")
MAC_S=$(mac_of in_s "$DEV_S")
MAC_C2=$(mac_of in_c2 "$DEV_C2")
MAC_S2=$(mac_of in_s2 "$DEV_S2")
split_handshake() { # split_handshake SPORT: SYN at replica 1, FIN at 2
	local sport=$1 cisn=$2 sisn out
	sisn=$(pkt in_c syn "$DEV_C" "$MAC_C" "$MAC_S" "$CLI4" "$SRV4" \
		"$sport" "$PORT" "$cisn") || fail "no SYN-ACK from replica 1"
	echo "$sisn"
}
fin_at_2() { # fin_at_2 MODE SPORT CISN SISN: prints "flags seq ack"
	pkt in_c2 "$1" "$DEV_C2" "$MAC_C2" "$MAC_S2" "$CLI4" "$SRV4" \
		"$2" "$PORT" "$3" "$4" || fail "no answer from replica 2"
}
ctr2() { ctl2 -j stats | python3 -c 'import json,sys; d=json.load(sys.stdin); d=d.get("counters", d); print(d[sys.argv[1]])' "$1"; }

cisn=123456789
sisn=$(split_handshake 40001 $cisn)
fin0=$(ctr2 fin_answered)
bad0=$(ctr2 bad_cookie)
ans=$(fin_at_2 fin 40001 $cisn "$sisn")
log "SYN-ACK by replica 1, FIN at replica 2 -> flags/seq/ack $ans"
[ "$(field "$ans" 1)" = 17 ] || fail "replica 2 did not answer FIN+ACK: $ans"
[ "$(field "$ans" 2)" = $(((sisn + 1) % 4294967296)) ] || fail "FIN+ACK seq: $ans"
[ "$(field "$ans" 3)" = $((cisn + 2)) ] || fail "FIN+ACK ack: $ans"
[ "$(ctr2 fin_answered)" = $((fin0 + 1)) ] || fail "replica 2 fin_answered did not count it"
ans=$(fin_at_2 badfin 40001 $cisn "$sisn")
[ "$(field "$ans" 1)" = 4 ] || fail "a forged cookie was not reset by replica 2: $ans"
[ "$(ctr2 bad_cookie)" = $((bad0 + 1)) ] || fail "replica 2 bad_cookie did not count the forgery"

# ---- (3) stcpctl keys rotate on replica 1 reaches both ----
old_cur=$(field "$k1" 3)
sisn_old=$(split_handshake 40002 $cisn) # minted before the rotation
out=$(ctl keys rotate)
log "$out"
g=$(field "$k1" 2)
[ "$out" = "rotated; key generation $((g + 1))" ] || fail "keys rotate said '$out'"
for _ in $(seq 30); do
	k2=$(keys_info "$PIN_DIR2")
	[ "$(field "$k2" 2)" = $((g + 1)) ] && break
	sleep 0.1
done
k1=$(keys_info "$PIN_DIR")
log "after rotation: replica 1 gen $(field "$k1" 2), replica 2 gen $(field "$k2" 2)"
[ "$(field "$k1" 2)" = $((g + 1)) ] || fail "replica 1 did not rotate"
[ "$(field "$k2" 2)" = $((g + 1)) ] || fail "replica 2 did not follow within 3 s"
[ "$(field "$k1" 1)" = "$(field "$k2" 1)" ] || fail "the replicas' keys differ after rotation"
[ "$(field "$k1" 4)" = "$old_cur" ] || fail "replica 1 lost the previous key"
[ "$(field "$k2" 4)" = "$old_cur" ] || fail "replica 2 lost the previous key"
record_matches "$PIN_DIR2" || fail "the Redis record does not hold the rotated keys"
ans=$(fin_at_2 fin 40002 $cisn "$sisn_old")
[ "$(field "$ans" 1)" = 17 ] || fail "a cookie of the previous key was refused after rotation: $ans"

# ---- (4) Redis killed: both serve on, one warning each; then back ----
w1=$(warns "$STCPD_LOG")
w2=$(warns "$STCPD_LOG2")
redis_stop
sleep 4 # several polls and reconnect attempts
kill -0 "$R1" && kill -0 "$R2" || fail "an stcpd died with Redis"
n1=$(connect_n in_c "$SRV4" 20)
n2=$(connect_n in_c2 "$SRV4_2" 20)
[ "$n1" = 0 ] && [ "$n2" = 0 ] || fail "handshakes failed without Redis: $n1 and $n2 of 20"
sleep 2
d1=$(($(warns "$STCPD_LOG") - w1))
d2=$(($(warns "$STCPD_LOG2") - w2))
log "warnings while Redis was down: $d1 and $d2"
[ "$d1" = 1 ] && [ "$d2" = 1 ] || fail "want exactly one warning per replica, got $d1 and $d2"
grep 'stcpd: warn:' "$STCPD_LOG" | tail -n 1 | grep -q 'redis: lost' ||
	fail "the warning is not about Redis"
redis_start
for _ in $(seq 150); do
	grep -q 'connected to .* again' "$STCPD_LOG" &&
		grep -q 'connected to .* again' "$STCPD_LOG2" && break
	sleep 0.1
done
grep -q 'connected to .* again' "$STCPD_LOG" || fail "replica 1 did not reconnect"
grep -q 'connected to .* again' "$STCPD_LOG2" || fail "replica 2 did not reconnect"
log "$(grep -h 'connected to .* again' "$STCPD_LOG" "$STCPD_LOG2" | sed 's/^/  /')"
[ "$(grep -c 'connected to .* again' "$STCPD_LOG")" = 1 ] || fail "more than one reconnect line"
# The empty Redis got the keys back from a replica, not new ones.
k1=$(keys_info "$PIN_DIR")
g=$(field "$k1" 2)
[ "$(rcli hget "${PREFIX}keys" gen)" = "$g" ] || fail "the record was not written back"
record_matches "$PIN_DIR" || fail "the record written back is not the replicas' keys"
out=$(ctl2 keys rotate)
log "$out (replica 2)"
[ "$out" = "rotated; key generation $((g + 1))" ] || fail "keys rotate on replica 2 said '$out'"
for _ in $(seq 30); do
	k1=$(keys_info "$PIN_DIR")
	[ "$(field "$k1" 2)" = $((g + 1)) ] && break
	sleep 0.1
done
k2=$(keys_info "$PIN_DIR2")
[ "$(field "$k1" 2)" = $((g + 1)) ] || fail "replica 1 did not follow the rotation after Redis came back"
[ "$(field "$k1" 1)" = "$(field "$k2" 1)" ] || fail "the replicas' keys differ after Redis came back"
[ "$(warns "$STCPD_LOG")" = $((w1 + 1)) ] || fail "replica 1 logged more warnings"

# No key material in the logs or in what stcpctl prints.
all=$(ctl status; ctl -j status; ctl keys show; ctl2 -j keys show; cat "$STCPD_LOG" "$STCPD_LOG2")
for pd in "$PIN_DIR" "$PIN_DIR2"; do
	for k in $(bpftool -j map dump pinned "$pd/stcp_keys" | python3 -c '
import json, struct, sys
for e in json.load(sys.stdin):
    v = e["formatted"]["value"]
    if v["valid"]:
        print(format(v["k0"], "x")); print(format(v["k1"], "x"))
        print(v["k0"]); print(v["k1"]); print(struct.pack("<QQ", v["k0"], v["k1"]).hex())'); do
		case "$all" in *"$k"*) fail "key material printed" ;; esac
	done
done

# ---- (5) --key-rotate-s 2 without Redis: rotates by itself ----
kill -TERM "$R1" "$R2"
wait "$R1" "$R2" || fail "an stcpd did not stop cleanly"
STCPD_LOG="$LOG_DIR/stcpd-local.log"
stcpd_start --key-rotate-s 2
g0=$(field "$(keys_info "$PIN_DIR")" 2)
fails=$(in_c python3 - "$SRV4" "$PORT" <<'PY'
import socket, sys, time
bad = n = 0
end = time.time() + 5
while time.time() < end:
    n += 1
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
        s.close()
    except OSError:
        bad += 1
    time.sleep(0.005)
print(bad, n)
PY
)
g1=$(field "$(keys_info "$PIN_DIR")" 2)
log "--key-rotate-s 2: generation $g0 -> $g1 in 5 s; failed/total handshakes: $fails"
[ "$g1" -ge $((g0 + 2)) ] || fail "the key did not rotate every 2 s ($g0 -> $g1)"
[ "$(field "$fails" 1)" = 0 ] || fail "handshakes failed across rotations: $fails"
grep -q 'rotated to generation .* (every 2 s)' "$STCPD_LOG" || fail "no rotation logged"
[ "$(warns "$STCPD_LOG")" = 0 ] || fail "warnings without Redis"
echo "ok"
