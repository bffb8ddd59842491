#!/usr/bin/env bash
# More objects than response slots (issue 4, include/stcp_cache.h
# STCP_SLOT_NONE): the data TSval names a response by 12 bits, 4096 slots
# of which 4080 are for objects, 4 each, so 1020 objects have slots at a
# time. A root of 1500 files: the first 1020 get slots at load, the rest
# when requested. Checked:
#   - the first 500 are served byte-identical;
#   - a request for an object without slots while every slot belongs to
#     an object requested under the current key is answered 503 with
#     Retry-After (slot_miss counted, stcpd says why);
#   - after two key rotations, objects no request has named since give
#     up their slots, least recently requested first: the 480 objects
#     without slots are served byte-identical, and the 500 requested
#     before keep theirs;
#   - more than 1020 distinct objects under one key: the excess gets 503
#     until the key has rotated twice more, then identical bodies;
#   - a slow download started after the rotations keeps its slots while
#     the others are handed around, and completes byte-identical;
#   - stcpctl content ls shows objects without slots as "-".
. "$(dirname "$0")/lib.sh"

ROOT=$(mktemp -d /tmp/stcp-many-root.XXXXXX)
EXTRA_CLEANUP+=("rm -rf $ROOT")
N=1500
python3 - "$ROOT" "$N" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(5)
for i in range(n):
    with open(f"{root}/o{i:04d}.bin", "wb") as f:
        f.write(os.urandom(rng.randint(100, 3000)))
with open(f"{root}/slow.bin", "wb") as f:
    f.write(os.urandom(4 * 1024 * 1024))
PY

topo_up
stcpd_start --root "$ROOT" --cache-mb 64 --log-level debug
grep -q 'objects get response slots when requested' "$STCPD_LOG" ||
	fail "stcpd does not say that some objects have no slots"
none=$(ctl content ls | grep -c ' - - - - ' || true)
[ "$none" -gt 400 ] || fail "stcpctl content ls shows $none objects without slots"
log "loaded $((N + 1)) files; $none without slots (stcpctl content ls)"

# fetch FIRST LAST: objects [FIRST, LAST] on fresh connections, each body
# compared with its file; prints how many got 503.
fetch() {
	py_client "$SRV4" "$ROOT" "$1" "$2" <<'PY'
import http.client, sys
host, root, a, b = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
busy = 0
for i in range(a, b + 1):
    name = f"o{i:04d}.bin"
    c = http.client.HTTPConnection(host, 80, timeout=10)
    c.request("GET", "/" + name, headers={"Connection": "close"})
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status == 503:
        assert r.getheader("Retry-After") == "1", name
        busy += 1
        continue
    assert r.status == 200, (name, r.status)
    assert body == open(f"{root}/{name}", "rb").read(), f"{name} differs"
print(busy)
PY
}

busy=$(fetch 0 499) || fail "a body differs"
[ "$busy" = 0 ] || fail "$busy of the objects loaded with slots got 503"
log "objects 0-499 (slots from the load): identical"

m0=$(counter slot_miss)
busy=$(fetch 1499 1499) || fail "o1499 failed"
[ "$busy" = 1 ] || fail "o1499 without free slots: not a 503"
[ "$(counter slot_miss)" -gt "$m0" ] || fail "no slot_miss counted"
grep -q 'o1499.bin: every response slot is in use' "$STCPD_LOG" ||
	fail "stcpd does not say why o1499 got 503"
log "o1499 before any rotation: 503 with Retry-After: 1 (every slot in use)"

ctl keys rotate >/dev/null || fail "keys rotate"
ctl keys rotate >/dev/null || fail "keys rotate"
in_c curl -sS -m 60 --limit-rate 1M -o "$LOG_DIR/slow" "http://$SRV4/slow.bin" &
slow=$!
PIDS+=($slow)
sleep 1
m0=$(counter slot_miss)
busy=$(fetch 1020 1499) || fail "a body differs after the rotations"
[ "$busy" = 0 ] || fail "$busy of the objects without slots got 503 after two key rotations"
misses=$(($(counter slot_miss) - m0))
[ "$misses" -ge 480 ] || fail "only $misses slot misses for 480 objects without slots"
busy=$(fetch 0 499) || fail "a body differs"
[ "$busy" = 0 ] || fail "$busy of objects 0-499 got 503: slots were taken from requested objects"
log "after two key rotations: objects 1020-1499 identical ($misses slot misses; the slots came from objects never requested), then 0-499 identical with the slots they kept"
# 1000 distinct objects have now been asked for under this key; the
# ones that gave up their slots cannot all get them back before the key
# has rotated twice more.
busy=$(fetch 500 1019) || fail "a body differs"
[ "$busy" -gt 0 ] || fail "more than 1020 objects got slots under one key"
log "objects 500-1019 under the same key: $busy got 503, the rest identical"
# Before the next rotations, which end any download of this key.
wait "$slow" || fail "the slow download failed"
cmp -s "$LOG_DIR/slow" "$ROOT/slow.bin" || fail "the slow download differs"
log "a 4 MB download at 1 MB/s during all this: identical"
ctl keys rotate >/dev/null && ctl keys rotate >/dev/null || fail "keys rotate"
sleep 1.2
busy=$(fetch 500 1019) || fail "a body differs"
[ "$busy" = 0 ] || fail "$busy objects got 503 after two more rotations"
log "two more rotations: objects 500-1019 identical"
for c in cache_miss_lost bad_cookie drop_tx_failed; do
	v=$(counter "$c")
	[ "$v" = 0 ] || fail "$c=$v"
done
echo ok
