#!/usr/bin/env bash
# The content cache: stcpd --root loads a tree into the pinned maps,
# `stcpctl content ls` lists exactly its files, `stcpctl reload` picks up a
# change, a deletion and a new file (and fails cleanly when the root is
# gone); a cache pinned with another size is refused or adopted; stcpd
# removes its content and pins on exit. Bad --root and --cache-mb values give
# one line and the documented exit codes.
. "$(dirname "$0")/lib.sh"

stcpd_stop() {
	local pid=${PIDS[-1]} rc=0
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	unset 'PIDS[-1]'
	[ "$rc" = 0 ] || fail "stcpd exited $rc on SIGTERM: $(cat "$STCPD_LOG")"
}

WWW=$(mktemp -d /tmp/stcp-www.XXXXXX)
EXTRA_CLEANUP+=("rm -rf '$WWW' '$WWW.gone'")
SD=("$BUILD/stcpd" --iface lo --listen 198.18.0.1:80)

expect_err 1 'no-such-dir: No such file' "${SD[@]}" --root "$WWW/no-such-dir"
touch "$WWW/plain"
expect_err 1 'plain: not a directory' "${SD[@]}" --root "$WWW/plain"
rm "$WWW/plain"
expect_err 2 'cache-mb 0' "${SD[@]}" --cache-mb 0
expect_err 2 'cache-mb 99999999' "${SD[@]}" --cache-mb 99999999
expect_err 2 'cache-mb 12x' "${SD[@]}" --cache-mb 12x
expect_err 2 'cache-mb' "${SD[@]}" --cache-mb
expect_err 2 'reload takes no' "$BUILD/stcpctl" reload now
expect_err 2 'content needs' "$BUILD/stcpctl" content
"$BUILD/stcpd" --help | grep -q -- '--root DIR' || fail "stcpd --help lacks --root"
"$BUILD/stcpctl" --help | grep -q 'content ls' || fail "stcpctl --help lacks content ls"

mkdir -p "$WWW/sub"
printf '<!doctype html><title>stcp</title>\n' >"$WWW/index.html"
printf 'hello\n' >"$WWW/a.txt"
printf 'body { color: black }\n' >"$WWW/sub/b.css"
printf '<p>sub</p>\n' >"$WWW/sub/index.html"
head -c 5000 /dev/urandom >"$WWW/img.png"
head -c 200000 /dev/urandom >"$WWW/big.bin"
ln -s /etc/passwd "$WWW/passwd"

# content_check JSON-FILE: the listing matches the files under $WWW exactly.
content_check() {
	python3 - "$WWW" "$1" <<'PY'
import json, os, sys
root, listing = sys.argv[1], json.load(open(sys.argv[2]))
want = {}
for d, _, files in os.walk(root):
    for f in files:
        p = os.path.join(d, f)
        if os.path.islink(p):
            continue
        url = "/" + os.path.relpath(p, root)
        want[url] = os.path.getsize(p)
        if f == "index.html":
            want[url[: -len("index.html")]] = os.path.getsize(p)
got = {o["path"]: o for o in listing}
assert set(got) == set(want), f"paths {sorted(got)} != files {sorted(want)}"
types = {".txt": "text/plain; charset=utf-8", ".css": "text/css",
         ".png": "image/png", ".bin": "application/octet-stream",
         ".html": "text/html; charset=utf-8", ".json": "application/json"}
for url, o in got.items():
    assert o["host"] == "", o
    assert o["size"] == want[url], (url, o["size"], want[url])
    ext = os.path.splitext(url if not url.endswith("/") else "x.html")[1]
    assert o["content_type"] == types[ext], (url, o["content_type"])
    assert o["etag"].startswith('"') and o["etag"].endswith('"'), o
    assert o["last_modified"].endswith(" GMT"), o
    assert [r["variant"] for r in o["resps"]] == [
        "200_close", "200_keepalive", "304_close", "304_keepalive"], o
    assert all(r["valid"] and r["gen"] > 0 for r in o["resps"]), o
    assert [r["body_len"] for r in o["resps"]] == [o["size"]] * 2 + [0, 0], o
for d in ("/", "/sub/"):
    assert got[d]["resps"] == got[d + "index.html"]["resps"], d
print(f"{len(got)} paths match the tree")
PY
}

topo_up
stcpd_start --root "$WWW" --cache-mb 32 --keep-maps
grep -E 'cache: 6 objects, [0-9]+ bytes in [0-9]+ pages \(of 8192\)' "$STCPD_LOG" ||
	fail "no cache summary in the log: $(cat "$STCPD_LOG")"
for m in stcp_pages stcp_resps stcp_objects; do
	bpftool -j map show pinned "$PIN_DIR/$m" >"$LOG_DIR/$m.json" || fail "$m not pinned"
done
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); assert m["max_entries"] == 8192, m' \
	"$LOG_DIR/stcp_pages.json" || fail "stcp_pages is not 32 MiB"

ctl -j content ls >"$LOG_DIR/ls1.json"
content_check "$LOG_DIR/ls1.json" || fail "content ls after start-up"
ctl content ls | grep -q '^/sub/b.css ' || fail "text content ls lacks /sub/b.css"
ctl -j status | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["content_paths"] == 8, d' ||
	fail "status does not count 8 content paths"

# Change one file, delete one, add one; reload.
printf 'hello, world, again\n' >"$WWW/a.txt"
rm "$WWW/img.png"
printf '{"new": true}\n' >"$WWW/new.json"
out=$(ctl reload) || fail "stcpctl reload"
log "$out"
[ "$out" = "reloaded; 8 paths in the cache" ] || fail "reload said '$out'"
grep -q 'cache: reloaded .*1 added, 1 changed, 1 removed' "$STCPD_LOG" ||
	fail "no reload summary in the log: $(cat "$STCPD_LOG")"
ctl -j content ls >"$LOG_DIR/ls2.json"
content_check "$LOG_DIR/ls2.json" || fail "content ls after the reload"
python3 - "$LOG_DIR/ls1.json" "$LOG_DIR/ls2.json" <<'PY' || fail "reload did not replace /a.txt, or moved unchanged objects"
import json, sys
a = {o["path"]: o for o in json.load(open(sys.argv[1]))}
b = {o["path"]: o for o in json.load(open(sys.argv[2]))}
assert b["/a.txt"]["size"] == 20 and a["/a.txt"]["size"] == 6
assert b["/a.txt"]["etag"] != a["/a.txt"]["etag"]
old = {r["slot"] for r in a["/a.txt"]["resps"]}
new = {r["slot"] for r in b["/a.txt"]["resps"]}
assert not old & new, (old, new)
assert b["/new.json"]["content_type"] == "application/json"
for p in ("/big.bin", "/", "/sub/b.css"):
    assert a[p]["resps"] == b[p]["resps"], p
PY

# A root that went away: the reload fails, the cache keeps what it had.
mv "$WWW" "$WWW.gone"
expect_err 1 'could not reload' ctl reload
mv "$WWW.gone" "$WWW"
ctl -j content ls >"$LOG_DIR/ls3.json"
cmp -s "$LOG_DIR/ls2.json" "$LOG_DIR/ls3.json" || fail "a failed reload changed the cache"

# --keep-maps: the 32 MiB cache stays pinned. Another size is refused; no
# --cache-mb adopts it, and the new run reloads the content.
stcpd_stop
expect_err 1 'holds a 32 MiB content cache.*--cache-mb 32' in_s "$BUILD/stcpd" \
	--iface "$DEV_S" --listen "$SRV4:$PORT" --pin-dir "$PIN_DIR" --cache-mb 64
stcpd_start --root "$WWW"
grep -q 'using the 32 MiB content cache pinned' "$STCPD_LOG" || fail "pinned size not adopted"
ctl -j content ls >"$LOG_DIR/ls4.json"
content_check "$LOG_DIR/ls4.json" || fail "content ls after a restart"
# Without --keep-maps, but over existing pins: the content is taken out.
stcpd_stop
[ "$(bpftool -j map dump pinned "$PIN_DIR/stcp_objects")" = "[]" ] ||
	fail "stcpd left its objects in stcp_objects"
expect_err 1 'no stcpd runs' ctl reload

# A run that pinned the maps itself unpins all seven on exit.
rm -f "$PIN_DIR"/stcp_*
stcpd_start --cache-mb 1
stcpd_stop
left=$(ls "$PIN_DIR")
[ -z "$left" ] || fail "pins left after stcpd exited: $left"
echo "ok"
