#!/usr/bin/env bash
# Redis as a content source (issue 4): `stcpctl content add|rm` write
# objects to our own redis-server, stcpd --redis serves them beside its
# --root (Redis wins at a shared path, the file comes back after rm). Sizes
# 0 B, 1 B, 1448 B, 64 KB and 1 MB download with the sha256 of the source;
# --type and stdin; rm gives 404; a body larger than the cache gets the
# file's warning and 404. A replacement loop with downloads in parallel:
# every download is one whole version. A second replica on the same Redis,
# with a cache smaller than the content, serves the same objects through
# cache misses reloaded from Redis. Redis stopped: cached objects are still
# served, one warning; restarted: a new add is picked up. Bad CLI input:
# one line and the documented exit codes.
. "$(dirname "$0")/lib.sh"

WORK=$(mktemp -d /tmp/stcp-rcontent.XXXXXX) # not in LOG_DIR: binary
WWW=$(mktemp -d /tmp/stcp-rcontent-www.XXXXXX)
EXTRA_CLEANUP+=("rm -rf '$WORK' '$WWW'")
PREFIX="stcp-t-${UNIQ}:"

redis_init
R=(--redis "unix:$REDIS_SOCK" --redis-prefix "$PREFIX")
cctl() { "$BUILD/stcpctl" "${R[@]}" "$@"; }
sha() { sha256sum <"$1" | cut -d' ' -f1; }

# ---- usage errors: one line, exit 2, before Redis runs ----
printf 'x\n' >"$WORK/x.txt"
expect_err 2 'needs PATH and FILE' cctl content add /a.txt
expect_err 2 'needs PATH and FILE' cctl content add
expect_err 2 'needs one PATH' cctl content rm
expect_err 2 "must start with '/'" cctl content add a.txt "$WORK/x.txt"
expect_err 2 "'\.' or '\.\.' segment" cctl content add /a/../b "$WORK/x.txt"
expect_err 2 "'\.' or '\.\.' segment" cctl content rm /./b
expect_err 2 "empty segment" cctl content add //b "$WORK/x.txt"
expect_err 2 "holds '%'" cctl content add /a%20b "$WORK/x.txt"
expect_err 2 "holds '\?' or '#'" cctl content add '/a?b' "$WORK/x.txt"
expect_err 2 "space or a control" cctl content add '/a b' "$WORK/x.txt"
expect_err 2 "ends with '/'" cctl content add /dir/ "$WORK/x.txt"
expect_err 2 "ends with '/'" cctl content add / "$WORK/x.txt"
expect_err 2 "longer than 191" cctl content add "/$(printf 'a%.0s' $(seq 191))" "$WORK/x.txt"
expect_err 2 'needs --redis' "$BUILD/stcpctl" content add /a.txt "$WORK/x.txt"
expect_err 2 'needs --redis' "$BUILD/stcpctl" content rm /a.txt
expect_err 2 'expected HOST:PORT or unix:PATH' "$BUILD/stcpctl" --redis bogus content rm /a.txt
expect_err 2 "--type 'text/html.x0d.x0aX-Evil.*control" cctl content add --type $'text/html\r\nX-Evil: 1' /a.txt "$WORK/x.txt"
expect_err 2 'goes with .content add' cctl content rm --type text/css /a.txt
expect_err 2 'goes with .content add' cctl --type text/css status
expect_err 2 'expected ls, add or rm' cctl content put /a.txt "$WORK/x.txt"
expect_err 1 'cannot reach Redis' cctl content add /a.txt "$WORK/x.txt"
"$BUILD/stcpctl" content add --help | grep -q 'content add PATH FILE' ||
	fail "content add --help lacks its usage"
"$BUILD/stcpctl" help content | grep -q 'content rm PATH' ||
	fail "help content lacks content rm"

redis_start
expect_err 1 'no-such-file: No such file' cctl content add /a.txt "$WORK/no-such-file"
expect_err 1 'Is a directory' cctl content add /a.txt "$WORK"
expect_err 1 'no such object in Redis' cctl content rm /never-added.txt
# Nothing of that reached Redis.
[ "$(rcli --raw exists "${PREFIX}content:gen")" = 0 ] || fail "a refused command wrote to Redis"

# ---- objects before stcpd starts ----
SIZES="0 1 1448 65536 1048576"
for n in $SIZES; do
	head -c "$n" /dev/urandom >"$WORK/o$n.bin"
done
for n in 0 1 1448; do
	cctl content add "/o/$n.bin" "$WORK/o$n.bin" >/dev/null ||
		fail "content add /o/$n.bin"
done
printf 'from the root\n' >"$WWW/shadow.txt"
printf 'root only\n' >"$WWW/rootonly.txt"
head -c 3000 /dev/urandom >"$WORK/shadow.bin"
cctl content add /shadow.txt "$WORK/shadow.bin" >/dev/null || fail "add /shadow.txt"
# The layout: a hash per object, the index, the generation.
[ "$(rcli --raw zcard "${PREFIX}content:paths")" = 4 ] || fail "index: $(rcli zrange "${PREFIX}content:paths" 0 -1)"
[ "$(rcli --raw get "${PREFIX}content:gen")" = 4 ] || fail "gen $(rcli get "${PREFIX}content:gen")"
[ "$(rcli --raw hget "${PREFIX}content:/o/1448.bin" version)" = 3 ] || fail "version of /o/1448.bin"
[ "$(rcli --raw hstrlen "${PREFIX}content:/o/1448.bin" body)" = 1448 ] || fail "body of /o/1448.bin"

topo_up
stcpd_start --root "$WWW" "${R[@]}" --cache-mb 16 --key-rotate-s 0
grep -q 'content: Redis generation 4: 4 added' "$STCPD_LOG" ||
	fail "start-up did not load the 4 objects: $(grep content: "$STCPD_LOG")"

# ---- objects added while it runs: stdin, --type, JSON ----
for n in 65536 1048576; do
	cctl content add "/o/$n.bin" - <"$WORK/o$n.bin" >/dev/null ||
		fail "content add /o/$n.bin from stdin"
done
out=$(cctl -j content add --type 'application/x-stcp-test' /typed.txt "$WORK/x.txt")
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["path"]=="/typed.txt" and d["size"]==2 and d["version"]==7, d' "$out" ||
	fail "content add -j: $out"

# fetch URLPATH OUT: the HTTP status; the body in OUT.
fetch() { in_c curl -sS -m 10 -o "$2" -w '%{http_code}' "http://$SRV4$1" 2>>"$LOG_DIR/curl.err" || true; }
# wait_sha URLPATH SHA: within 5 s, a download of URLPATH has that sha256.
wait_sha() {
	local i
	for i in $(seq 50); do
		[ "$(fetch "$1" "$WORK/got")" = 200 ] && [ "$(sha "$WORK/got")" = "$2" ] && return 0
		sleep 0.1
	done
	fail "$1: not served with sha256 $2 within 5 s (last: $(fetch "$1" "$WORK/got"))"
}
wait_code() {
	local i
	for i in $(seq 50); do
		[ "$(fetch "$1" "$WORK/got")" = "$2" ] && return 0
		sleep 0.1
	done
	fail "$1: not $2 within 5 s (got $(fetch "$1" "$WORK/got"))"
}

for n in $SIZES; do
	wait_sha "/o/$n.bin" "$(sha "$WORK/o$n.bin")"
done
log "0 B, 1 B, 1448 B, 64 KB, 1 MB from Redis: sha256 equal to the source"
wait_sha /shadow.txt "$(sha "$WORK/shadow.bin")"
wait_sha /rootonly.txt "$(sha "$WWW/rootonly.txt")"
# Like the others, within the 5 s the polls take to publish everything.
for _ in $(seq 50); do
	hdrs=$(in_c curl -sS -m 10 -D - -o /dev/null "http://$SRV4/typed.txt")
	echo "$hdrs" | grep -qi '^Content-Type: application/x-stcp-test' && break
	sleep 0.1
done
echo "$hdrs" | grep -qi '^Content-Type: application/x-stcp-test' || fail "--type not served: $hdrs"
echo "$hdrs" | grep -qi '^ETag: "r7-2-' || fail "ETag of a Redis object: $hdrs"
etag=$(echo "$hdrs" | sed -n 's/^ETag: \(.*\)\r$/\1/Ip')
code=$(in_c curl -s -o /dev/null -w '%{http_code}' -m 10 -H "If-None-Match: $etag" "http://$SRV4/typed.txt")
[ "$code" = 304 ] || fail "If-None-Match $etag: $code, want 304"
in_c curl -sS -m 10 -D - -o /dev/null "http://$SRV4/o/1448.bin" | grep -qi '^Content-Type: application/octet-stream' ||
	fail "Content-Type by extension"

# content ls: the source of every object, text and JSON.
ctl -j content ls >"$LOG_DIR/ls.json"
python3 - "$LOG_DIR/ls.json" <<'PY' || fail "content ls -j sources"
import json, sys
got = {o["path"]: o for o in json.load(open(sys.argv[1]))}
want = {"/o/0.bin": 0, "/o/1.bin": 1, "/o/1448.bin": 1448,
        "/o/65536.bin": 65536, "/o/1048576.bin": 1048576,
        "/shadow.txt": 3000, "/typed.txt": 2}
for p, size in want.items():
    assert got[p]["source"] == "redis" and got[p]["size"] == size, got.get(p)
    assert got[p]["etag"].startswith('"r'), got[p]
assert got["/rootonly.txt"]["source"] == "root", got["/rootonly.txt"]
assert got["/typed.txt"]["content_type"] == "application/x-stcp-test"
assert set(got) == set(want) | {"/rootonly.txt"}, sorted(got)
PY
ctl content ls | grep -Eq '^/o/1448\.bin +1448 redis ' || fail "text content ls: $(ctl content ls)"
ctl content ls | grep -Eq '^/rootonly\.txt +10 root ' || fail "text content ls: $(ctl content ls)"
log "content ls: 7 objects from redis, 1 from the root"

# ---- rm: 404, or the root's file again ----
out=$(cctl content rm /o/1.bin) || fail "content rm /o/1.bin"
echo "$out" | grep -q 'removed /o/1.bin; content generation 8' || fail "rm said: $out"
wait_code /o/1.bin 404
cctl content rm /shadow.txt >/dev/null || fail "content rm /shadow.txt"
wait_sha /shadow.txt "$(sha "$WWW/shadow.txt")"
ctl -j content ls | python3 -c 'import json,sys
got = {o["path"]: o for o in json.load(sys.stdin)}
assert "/o/1.bin" not in got and got["/shadow.txt"]["source"] == "root", got' ||
	fail "content ls after rm"
log "rm: 404, and the root's /shadow.txt is back"

# ---- a body larger than the whole cache: a windowed body ----
head -c $((17 * 1024 * 1024)) /dev/urandom >"$WORK/huge.bin"
w0=$(counter window_miss)
cctl content add /huge.bin "$WORK/huge.bin" >/dev/null || fail "add /huge.bin"
wait_sha /huge.bin "$(sha "$WORK/huge.bin")"
[ "$(counter window_miss)" -gt "$w0" ] || fail "/huge.bin was not windowed"
cctl content rm /huge.bin >/dev/null || fail "rm /huge.bin"
wait_code /huge.bin 404
log "17 MB object with a 16 MB cache: served through a ring, identical; removed: 404"

# ---- replacements while clients download: every download one version ----
SIZE=300000
new_version() {
	head -c $((SIZE + ($1 % 2) * 1000)) /dev/urandom >"$WORK/v.tmp"
	sha "$WORK/v.tmp" >>"$WORK/versions"
	cctl content add /v.bin "$WORK/v.tmp" >/dev/null || fail "content add /v.bin version $1"
}
new_version 0
wait_sha /v.bin "$(tail -n 1 "$WORK/versions")"
downloader() {
	local i=$1 out="$WORK/body$i" rc
	while [ ! -e "$WORK/stop" ]; do
		rc=0
		in_c curl -sS -f -m 30 --limit-rate 2M -o "$out" \
			"http://$SRV4/v.bin" 2>>"$LOG_DIR/curl$i.err" || rc=$?
		if [ "$rc" = 0 ]; then
			echo "ok $(sha "$out")"
		else
			echo "err $rc"
		fi
	done >"$WORK/results$i"
}
for i in 1 2 3; do
	downloader "$i" &
	PIDS+=($!)
done
for k in $(seq 12); do
	new_version "$k"
	sleep 0.4
done
sleep 1.5
touch "$WORK/stop"
for i in 1 2 3; do
	wait "${PIDS[-1]}" 2>/dev/null || true
	unset 'PIDS[-1]'
done
python3 - "$WORK" <<'PY' || fail "a download is not one whole version"
import sys
work = sys.argv[1]
versions = open(f"{work}/versions").read().split()
done, errs, seen = 0, [], set()
for i in (1, 2, 3):
    for line in open(f"{work}/results{i}"):
        kind, val = line.split()
        if kind == "err":
            errs.append(val)
            continue
        done += 1
        assert val in versions, f"client {i}: sha256 {val} is no version"
        seen.add(val)
print(f"# {done} downloads during 12 replacements, each one whole version; "
      f"{len(seen)} distinct versions seen; {len(errs)} failed",
      file=sys.stderr)
assert not errs, f"downloads failed (curl exit codes {errs})"
assert done >= 9, f"only {done} downloads"
assert len(seen) >= 4, f"only {len(seen)} versions seen"
PY
wait_sha /v.bin "$(tail -n 1 "$WORK/versions")"

# ---- a second replica on the same Redis, with a cache smaller than the
# content: the same objects, the evicted ones reloaded from Redis ----
for k in 1 2 3 4 5 6; do
	head -c 300000 /dev/urandom >"$WORK/e$k.bin"
	cctl content add "/e/$k.bin" "$WORK/e$k.bin" >/dev/null || fail "add /e/$k.bin"
done
STCPD_LOG2="$LOG_DIR/stcpd2.log"
topo_up2
stcpd_start2 "${R[@]}" --cache-mb 2 --key-rotate-s 0
fetch2() { in_c2 curl -sS -m 10 -o "$2" -w '%{http_code}' "http://$SRV4_2$1" 2>>"$LOG_DIR/curl2.err" || true; }
for round in 1 2; do
	for p in /o/0.bin /o/1448.bin /o/65536.bin /o/1048576.bin /e/1.bin \
		/e/2.bin /e/3.bin /e/4.bin /e/5.bin /e/6.bin /typed.txt; do
		case $p in
		/o/*) src="$WORK/o$(basename "$p" .bin).bin" ;;
		/e/*) src="$WORK/e$(basename "$p" .bin).bin" ;;
		*) src="$WORK/x.txt" ;;
		esac
		code=$(fetch2 "$p" "$WORK/got2")
		[ "$code" = 200 ] || fail "replica 2, round $round: $p: $code"
		[ "$(sha "$WORK/got2")" = "$(sha "$src")" ] || fail "replica 2: $p differs"
	done
done
[ "$(fetch2 /o/1.bin "$WORK/got2")" = 404 ] || fail "replica 2 serves the removed /o/1.bin"
[ "$(fetch2 /rootonly.txt "$WORK/got2")" = 404 ] || fail "replica 2 serves replica 1's root"
misses=$(in_s2 "$BUILD/stcpctl" --pin-dir "$PIN_DIR2" -j stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["cache_miss"])')
[ "$misses" -gt 0 ] || fail "replica 2 had no cache misses with a 2 MB cache"
log "replica 2 (2 MB cache, ~3.3 MB of objects): every object twice, $misses cache misses reloaded from Redis"

# ---- Redis goes away: served from the cache; back: changes picked up ----
rcli save >/dev/null || fail "redis SAVE"
redis_stop
sleep 2.5
for n in 0 1448 65536; do
	code=$(fetch "/o/$n.bin" "$WORK/got")
	[ "$code" = 200 ] && [ "$(sha "$WORK/got")" = "$(sha "$WORK/o$n.bin")" ] ||
		fail "/o/$n.bin with Redis down: $code"
done
[ "$(grep -c 'redis: lost the connection' "$STCPD_LOG")" = 1 ] ||
	fail "want one 'lost the connection' warning: $(grep redis: "$STCPD_LOG")"
expect_err 1 'cannot reach Redis' cctl content add /after.txt "$WORK/x.txt"
kill -0 "${PIDS[0]}" || fail "stcpd died with Redis down"
redis_start # loads the dump SAVE wrote
printf 'after the outage\n' >"$WORK/after.txt"
cctl content add /after.txt "$WORK/after.txt" >/dev/null || fail "add after the restart"
for _ in $(seq 150); do
	[ "$(fetch /after.txt "$WORK/got")" = 200 ] && break
	sleep 0.1
done
wait_sha /after.txt "$(sha "$WORK/after.txt")"
wait_sha /o/65536.bin "$(sha "$WORK/o65536.bin")"
# Replica 2 reconnects on its own backoff (up to 10 s between tries).
for _ in $(seq 150); do
	[ "$(in_c2 curl -sS -m 10 "http://$SRV4_2/after.txt" 2>/dev/null)" = "after the outage" ] && break
	sleep 0.1
done
[ "$(in_c2 curl -sS -m 10 "http://$SRV4_2/after.txt" 2>/dev/null)" = "after the outage" ] ||
	fail "replica 2 did not pick up /after.txt within 15 s"
grep -q 'redis: connected to .* again' "$STCPD_LOG" || fail "no reconnect line"
log "Redis down 2.5 s: cached objects served, one warning; back: a new add served by both"

[ "$(counter bad_cookie)" = 0 ] || fail "bad_cookie=$(counter bad_cookie)"
grep -q 'stcpd: [^wi]' "$STCPD_LOG" && fail "stcpd logged an error: $(grep 'stcpd: [^wi]' "$STCPD_LOG")"
log "pass"
