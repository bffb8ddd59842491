#!/usr/bin/env bash
# A cache smaller than the content (issue 4): 1000 objects, 1 KB to 40 KB
# (about 20 MB), behind --cache-mb 4. What does not fit is registered with
# evicted slots; a request for it is a cache miss: the fast path hands the
# frame to stcpd, which loads the object (evicting the least recently used)
# and runs the frame through the fast path again. Checked:
#   - a miss and then a hit on the same object, both byte-identical, and
#     their latencies (logged);
#   - a wrk run over the 1000 objects with skewed (Zipf) popularity
#     completes with no socket error and no non-2xx, while a Python client
#     fetches 300 random objects and compares every body with its file;
#   - misses and evictions did happen (counters, log);
#   - a file larger than the whole cache is served byte-identical from a
#     windowed body (a ring of pages; test_big_objects has the rest).
. "$(dirname "$0")/lib.sh"

ROOT=$(mktemp -d /tmp/stcp-miss-root.XXXXXX)
EXTRA_CLEANUP+=("rm -rf $ROOT")
NOBJ=1000
python3 - "$ROOT" "$NOBJ" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(4)
for i in range(n):
    with open(f"{root}/o{i}.bin", "wb") as f:
        f.write(os.urandom(rng.randint(1000, 40000)))
with open(f"{root}/huge.bin", "wb") as f:
    f.write(os.urandom(5 * 1024 * 1024))
PY

topo_up
stcpd_start --root "$ROOT" --cache-mb 4 --log-level debug
in_c curl -sS -m 30 -o "$LOG_DIR/huge" "http://$SRV4/huge.bin" ||
	fail "huge.bin: curl failed"
cmp -s "$LOG_DIR/huge" "$ROOT/huge.bin" || fail "huge.bin (5 MB, 4 MB cache) differs"
[ "$(counter window_miss)" -gt 0 ] || fail "huge.bin was not windowed"

# ---- one miss, then a hit ----
obj=o7.bin # loaded early, then evicted by the rest of the load
m0=$(counter cache_miss)
t_miss=$(in_c curl -sS -m 10 -o "$LOG_DIR/body" -w '%{time_total}' "http://$SRV4/$obj")
cmp -s "$LOG_DIR/body" "$ROOT/$obj" || fail "$obj differs after a miss"
[ "$(counter cache_miss)" -gt "$m0" ] || fail "$obj was no cache miss"
m1=$(counter cache_miss)
t_hit=$(in_c curl -sS -m 10 -o "$LOG_DIR/body" -w '%{time_total}' "http://$SRV4/$obj")
cmp -s "$LOG_DIR/body" "$ROOT/$obj" || fail "$obj differs on a hit"
[ "$(counter cache_miss)" = "$m1" ] || fail "the second request for $obj missed too"
log "$obj: miss answered in $t_miss s, hit in $t_hit s"

# ---- skewed load, and bodies checked under it ----
cat >"$LOG_DIR/zipf.lua" <<EOF
-- Zipf-like popularity over $NOBJ objects: object k with weight 1/(k+1).
local n = $NOBJ
local cdf, sum = {}, 0
for k = 1, n do sum = sum + 1 / k; cdf[k] = sum end
math.randomseed(7)
request = function()
	local x, lo, hi = math.random() * sum, 1, n
	while lo < hi do
		local mid = math.floor((lo + hi) / 2)
		if cdf[mid] < x then lo = mid + 1 else hi = mid end
	end
	return wrk.format("GET", string.format("/o%d.bin", lo - 1))
end
EOF
e0=$(grep -c 'cache: evicted' "$STCPD_LOG" || true)
m0=$(counter cache_miss)
in_c wrk -t2 -c32 -d10s --timeout 10s -s "$LOG_DIR/zipf.lua" \
	-H 'Connection: close' "http://$SRV4/" >"$LOG_DIR/wrk.out" 2>&1 &
WRK=$!
PIDS+=("$WRK")
py_client "$SRV4" "$ROOT" "$NOBJ" <<'PY' || fail "a body differs under load"
import http.client, random, sys
host, root, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(11)
for _ in range(300):
    name = f"o{rng.randrange(n)}.bin"
    c = http.client.HTTPConnection(host, 80, timeout=20)
    c.request("GET", "/" + name)
    r = c.getresponse()
    body = r.read()
    c.close()
    assert r.status == 200, (name, r.status)
    assert body == open(f"{root}/{name}", "rb").read(), f"{name} differs"
print("# 300 random objects under the wrk load: every body identical", file=sys.stderr)
PY
wait "$WRK" || fail "wrk failed: $(cat "$LOG_DIR/wrk.out")"
out=$(cat "$LOG_DIR/wrk.out")
grep -q "Socket errors" <<<"$out" && fail "wrk: $(grep 'Socket errors' <<<"$out")"
grep -q "Non-2xx" <<<"$out" && fail "wrk: $(grep 'Non-2xx' <<<"$out")"
reqs=$(awk '/requests in/ {print $1}' <<<"$out")
[ "${reqs:-0}" -gt 1000 ] || fail "wrk completed only ${reqs:-0} requests"
misses=$(($(counter cache_miss) - m0))
evicted=$(($(grep -c 'cache: evicted' "$STCPD_LOG" || true) - e0))
log "wrk, Zipf over $NOBJ objects, 4 MB cache: $reqs requests, 0 errors, 0 non-2xx; $misses cache misses, $evicted evictions, cache_miss_lost $(counter cache_miss_lost)"
[ "$misses" -gt 0 ] && [ "$evicted" -gt 0 ] || fail "no miss or no eviction under the skewed load"
log "pass"
