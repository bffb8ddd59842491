#!/usr/bin/env bash
# The operator side of stcpd: --config (errors name FILE:LINE and exit 2,
# flags override the file), --metrics (a Prometheus text exposition that
# curl fetches from the client namespace through the XDP program, and that
# agrees with stcpctl), the man pages, the systemd unit and `make install`.
. "$(dirname "$0")/lib.sh"

MPORT=9100
METRICS_URL="http://$SRV4:$MPORT"

# ---- config file errors: one line with FILE:LINE, exit 2
BAD="$LOG_DIR/bad.conf"
printf '# comment\niface = lo\nlisten = %s:%s\nlisten-adress = 1\n' "$SRV4" "$PORT" >"$BAD"
expect_err 2 "^stcpd: $BAD:4: unknown key 'listen-adress'" "$BUILD/stcpd" --config "$BAD"
printf '[stcpd]\niface = lo\nmode = turbo\n' >"$BAD"
expect_err 2 "^stcpd: $BAD:3: .*mode.*turbo" "$BUILD/stcpd" --config "$BAD"
printf 'iface = lo\ncache-mb = lots\n' >"$BAD"
expect_err 2 "^stcpd: $BAD:2: .*cache-mb" "$BUILD/stcpd" --config "$BAD"
printf 'iface = lo\niface = eth0\n' >"$BAD"
expect_err 2 "^stcpd: $BAD:2: iface is set twice" "$BUILD/stcpd" --config "$BAD"
printf 'iface = lo\nkeep-maps = maybe\n' >"$BAD"
expect_err 2 "^stcpd: $BAD:2: keep-maps" "$BUILD/stcpd" --config "$BAD"
printf 'iface = lo\nnot an entry\n' >"$BAD"
expect_err 2 "^stcpd: $BAD:2: " "$BUILD/stcpd" --config "$BAD"
expect_err 2 "no-such-file" "$BUILD/stcpd" --config "$LOG_DIR/no-such-file"
expect_err 2 'metrics' "$BUILD/stcpd" --iface lo --listen "$SRV4:$PORT" --metrics "$SRV4"
expect_err 2 'also a --listen address' "$BUILD/stcpd" --iface lo \
	--listen "$SRV4:$PORT" --metrics "$SRV4:$PORT"
# The example parses: the only complaint is about the interface.
expect_err 1 "interface 'nosuchdev0' not found" "$BUILD/stcpd" \
	--config "$REPO/etc/stcpd.conf.example" --iface nosuchdev0

# ---- man pages: render without warnings, and document every option
for page in stcpd stcpctl; do
	src="$REPO/docs/man/$page.8"
	warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$src" 2>&1 >/dev/null)
	[ -z "$warn" ] || fail "man $page: $warn"
	text=$(sed 's/\\-/-/g' "$src")
	for opt in $("$BUILD/$page" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
		grep -qF -- "$opt" <<<"$text" || fail "$page.8 does not document $opt"
	done
done
for cmd in status stats listen keys reload content help; do
	grep -Eq "^\\.BI? \"?$cmd( |\"|\$)" "$REPO/docs/man/stcpctl.8" ||
		fail "stcpctl.8 does not document the command $cmd"
done
log "man pages render without warnings and document every option"

# ---- make install DESTDIR=...: the files where they belong
STAGE="$LOG_DIR/stage"
make -s -C "$REPO" BUILD="$BUILD" -o "$BUILD/stcpd" -o "$BUILD/stcpctl" \
	install DESTDIR="$STAGE" >"$LOG_DIR/install.log" 2>&1 ||
	fail "make install: $(cat "$LOG_DIR/install.log")"
for f in sbin/stcpd sbin/stcpctl share/man/man8/stcpd.8 \
	share/man/man8/stcpctl.8 lib/systemd/system/stcpd.service \
	share/doc/stcp/stcpd.conf.example; do
	[ -f "$STAGE/usr/local/$f" ] || fail "make install did not install /usr/local/$f"
done
[ -x "$STAGE/usr/local/sbin/stcpd" ] || fail "installed stcpd is not executable"
grep -qx 'ExecStart=/usr/local/sbin/stcpd --config /etc/stcp/stcpd.conf' \
	"$STAGE/usr/local/lib/systemd/system/stcpd.service" || fail "unit ExecStart"
log "make install DESTDIR: $(cd "$STAGE" && find . -type f | sort | tr '\n' ' ')"

# The unit, against the staged man pages and this build's stcpd.
if command -v systemd-analyze >/dev/null; then
	mkdir -p "$LOG_DIR/unit"
	sed "s|/usr/local/sbin/stcpd|$BUILD/stcpd|" "$REPO/packaging/stcpd.service" \
		>"$LOG_DIR/unit/stcpd.service"
	out=$(MANPATH="$STAGE/usr/local/share/man" systemd-analyze verify \
		"$LOG_DIR/unit/stcpd.service" 2>&1) || fail "systemd-analyze verify: $out"
	[ -z "$out" ] || fail "systemd-analyze verify: $out"
	log "systemd-analyze verify: clean"
else
	log "systemd-analyze not installed; unit not verified"
fi

# ---- stcpd from a config file, with --metrics; flags override the file
topo_up
CONF="$LOG_DIR/stcpd.conf"
cat >"$CONF" <<EOF
# written by $TEST_NAME
[stcpd]
iface = $DEV_S
listen = $SRV4:$PORT, [$SRV6]:$PORT
pin-dir = $PIN_DIR
mode = native
log-level = error ; overridden by --log-level on the command line
EOF

# Root limited to the capabilities the systemd unit grants, with
# no_new_privs, as systemd would run it.
UNIT_CAPS=$(sed -n 's/^CapabilityBoundingSet=//p' "$REPO/packaging/stcpd.service" |
	tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
[ -n "$UNIT_CAPS" ] || fail "no CapabilityBoundingSet in the unit"
nsenter --net="/run/netns/$NS_S" setpriv --no-new-privs \
	--bounding-set "-all,$UNIT_CAPS" --inh-caps "-all,$UNIT_CAPS" \
	"$BUILD/stcpd" --config "$CONF" --metrics "$SRV4:$MPORT" \
	--log-level info >"$STCPD_LOG" 2>&1 &
STCPD_PID=$!
PIDS+=("$STCPD_PID")
for i in $(seq 100); do
	# The log line comes just after the attach: wait for it too (up to
	# 5 s), or its check below would race the daemon.
	if ctl status >/dev/null 2>&1 && in_s ip link show dev "$DEV_S" | grep -q xdp &&
		{ grep -q 'info: attached to' "$STCPD_LOG" || [ "$i" -gt 50 ]; }; then
		break
	fi
	kill -0 "$STCPD_PID" 2>/dev/null || fail "stcpd exited: $(cat "$STCPD_LOG")"
	[ "$i" = 100 ] && fail "stcpd did not attach within 10 s"
	sleep 0.1
done
grep -q 'info: attached to' "$STCPD_LOG" ||
	fail "--log-level info did not override log-level = error: $(cat "$STCPD_LOG")"
grep -q "info: metrics: serving $METRICS_URL/metrics" "$STCPD_LOG" ||
	fail "no 'metrics: serving' line: $(cat "$STCPD_LOG")"
log "started from $CONF with the unit's capabilities; --log-level info overrode the file"

# stcpctl reads the same file: its pin-dir (no -p here), and a flag wins.
got=$(in_s "$BUILD/stcpctl" --config "$CONF" -j status | python3 -c 'import json,sys; print(json.load(sys.stdin)["pin_dir"])') ||
	fail "stcpctl --config $CONF status"
[ "$got" = "$PIN_DIR" ] || fail "stcpctl --config: pin dir $got, want $PIN_DIR"
expect_err 1 "no stcp maps in $LOG_DIR/elsewhere" \
	in_s "$BUILD/stcpctl" --config "$CONF" --pin-dir "$LOG_DIR/elsewhere" status
expect_err 2 "--config $LOG_DIR/none.conf: No such file or directory" \
	"$BUILD/stcpctl" --config "$LOG_DIR/none.conf" status
printf '[stcpd]\npin-dir = %s\npin_dir = /x\n' "$PIN_DIR" >"$LOG_DIR/typo.conf"
expect_err 2 "$LOG_DIR/typo.conf:3: unknown key 'pin_dir'" \
	"$BUILD/stcpctl" --config "$LOG_DIR/typo.conf" status
printf 'redis = nonsense\n' >"$LOG_DIR/badredis.conf"
expect_err 2 "$LOG_DIR/badredis.conf:1: --redis nonsense: expected HOST:PORT" \
	"$BUILD/stcpctl" --config "$LOG_DIR/badredis.conf" status
# Every key stcpd takes is one stcpctl takes or skips.
"$BUILD/stcpd" --help | grep -oE -- '--[a-z0-9-]+' | sort -u | sed 's/^--//' |
	grep -vxE 'config|verbose|help|version' | while read -r k; do
	case $k in
	pin-dir) echo "$k = $LOG_DIR/elsewhere" ;;
	redis) echo "$k = 127.0.0.1:6379" ;;
	*) echo "$k = x" ;;
	esac
done >"$LOG_DIR/all.conf"
[ "$(wc -l <"$LOG_DIR/all.conf")" -ge 12 ] || fail "too few stcpd options: $(cat "$LOG_DIR/all.conf")"
expect_err 1 "no stcp maps in $LOG_DIR/elsewhere" \
	"$BUILD/stcpctl" --config "$LOG_DIR/all.conf" status
log "stcpctl --config: the file's pin-dir used, --pin-dir wins; a missing file, an unknown key and a bad value: exit 2 with FILE:LINE; every stcpd key ($(wc -l <"$LOG_DIR/all.conf")) accepted"

# A second stcpd cannot take the metrics address: one line, exit 1, and it
# leaves the running one alone (the bind comes before anything else).
expect_err 1 "cannot listen on $SRV4:$MPORT for --metrics: Address already in use" \
	in_s "$BUILD/stcpd" --config "$CONF" --metrics "$SRV4:$MPORT"
kill -0 "$STCPD_PID" || fail "stcpd died when a second one failed"

# scrape NAME: fetches /metrics from the client namespace into
# $LOG_DIR/NAME.{txt,hdr}, checks the exposition and writes its samples as
# JSON to $LOG_DIR/NAME.json.
scrape() {
	local code
	code=$(in_c curl -sS --max-time 5 -o "$LOG_DIR/$1.txt" -D "$LOG_DIR/$1.hdr" \
		-w '%{http_code}' "$METRICS_URL/metrics") || fail "curl $METRICS_URL/metrics"
	[ "$code" = 200 ] || fail "GET /metrics: HTTP $code"
	grep -qi '^content-type: text/plain; version=0.0.4' "$LOG_DIR/$1.hdr" ||
		fail "GET /metrics: $(grep -i '^content-type' "$LOG_DIR/$1.hdr")"
	python3 - "$LOG_DIR/$1.txt" >"$LOG_DIR/$1.json" <<'PY' || fail "exposition $1 does not parse"
# Prometheus text format 0.0.4: "# HELP name text", "# TYPE name type",
# then the family's samples "name{label="value",...} value [timestamp]".
import json, math, re, sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(
    rf"^({NAME})(\{{(?:{LABEL}(?:,{LABEL})*,?)?\}})? (\S+)(?: -?\d+)?$")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}

text = open(sys.argv[1]).read()
assert text.endswith("\n"), "exposition must end with a newline"
helps, types, done, samples = {}, {}, set(), {}
current = None
for n, line in enumerate(text[:-1].split("\n"), 1):
    where = f"line {n}: {line!r}"
    if line.startswith("# HELP "):
        name = line.split(" ", 3)[2]
        assert re.fullmatch(NAME, name), where
        assert name not in helps, f"second HELP for {name}, {where}"
        assert name not in done, f"{name} comes back, {where}"
        helps[name] = n
        if current and current != name:
            done.add(current)
        current = name
    elif line.startswith("# TYPE "):
        parts = line.split(" ")
        assert len(parts) == 4 and parts[3] in TYPES, where
        name = parts[2]
        assert name not in types, f"second TYPE for {name}, {where}"
        assert name in helps and current == name, f"TYPE without HELP first, {where}"
        types[name] = parts[3]
    elif line.startswith("#"):
        continue
    else:
        m = SAMPLE.match(line)
        assert m, f"not a sample, {where}"
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        assert name == current and name in types, \
            f"sample before its HELP and TYPE, {where}"
        v = float(value)
        assert not math.isnan(v), where
        if types[name] == "counter":
            assert name.endswith("_total") and v >= 0, where
        key = name + labels
        assert key not in samples, f"duplicate sample, {where}"
        samples[key] = v
assert samples, "no samples"
print(json.dumps(samples))
PY
}

# metric FILE KEY: one sample's value (as an integer) from a scrape's JSON.
metric() {
	python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
k=sys.argv[2]
if k not in d: sys.exit("no sample " + k)
print(int(d[k]))' "$LOG_DIR/$1.json" "$2" || fail "no sample $2 in $1"
}

scrape first
log "first scrape: $(wc -l <"$LOG_DIR/first.txt") lines"
[ "$(metric first stcp_up)" = 1 ] || fail "stcp_up != 1"
version=$("$BUILD/stcpd" --version | awk '{print $2}')
[ "$(metric first "stcp_build_info{version=\"$version\"}")" = 1 ] || fail "stcp_build_info"
[ "$(metric first stcp_listen_addresses)" = 2 ] || fail "stcp_listen_addresses != 2"
[ "$(metric first stcp_key_generation)" -ge 1 ] || fail "stcp_key_generation < 1"
[ "$(metric first stcp_keys_rotated_timestamp_seconds)" -gt 1600000000 ] ||
	fail "stcp_keys_rotated_timestamp_seconds"
[ "$(metric first stcp_cache_pages_total)" -ge 1 ] || fail "stcp_cache_pages_total"
[ "$(metric first stcp_cache_pages_used)" -ge 1 ] || fail "stcp_cache_pages_used (fixed responses)"
[ "$(metric first stcp_cache_objects)" = 0 ] || fail "stcp_cache_objects without --root"
[ "$(metric first stcp_cache_loads_total)" -ge 1 ] || fail "stcp_cache_loads_total"
metric first stcp_rx_packets_total >/dev/null
# Every counter slot is there, under its family.
python3 - "$LOG_DIR/first.json" "$(ctl -j stats)" <<'PY' || fail "counter families"
import json, sys
samples, stats = json.load(open(sys.argv[1])), json.loads(sys.argv[2])
stats = stats.get("counters", stats)
for name in stats:
    if name == "rx_packets":
        key = "stcp_rx_packets_total"
    elif name.startswith("tx_"):
        key = 'stcp_tx_frames_total{kind="%s"}' % name[3:]
    elif name in ("pipeline_refused", "conn_sync_lost", "stall_probe", "stall_lost",
                  "window_miss", "window_torn", "slot_miss", "window_prefetch",
                  "request_part_elsewhere"):
        key = 'stcp_events_total{event="%s"}' % name
    else:
        key = 'stcp_packets_total{disposition="%s"}' % name
    assert key in samples, f"no sample {key} for counter {name}"
PY

# Five real handshakes to the service address.
py_client "$SRV4" "$PORT" <<'PY' || fail "handshakes"
import socket, sys
for _ in range(5):
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    s.close()
PY
sleep 0.3
scrape second
syn_metric=$(metric second 'stcp_packets_total{disposition="syn_answered"}')
syn_ctl=$(counter syn_answered)
log "syn_answered: metrics $syn_metric, stcpctl $syn_ctl"
[ "$syn_metric" -ge 5 ] || fail "syn_answered $syn_metric < 5 after 5 handshakes"
[ "$syn_metric" = "$syn_ctl" ] || fail "metrics say syn_answered $syn_metric, stcpctl $syn_ctl"
[ "$(metric second 'stcp_tx_frames_total{kind="synack"}')" -ge 5 ] || fail "tx synack < 5"
# The scrapes themselves went through the XDP program to the kernel.
[ "$(metric second 'stcp_packets_total{disposition="pass_other_dest"}')" -ge 1 ] ||
	fail "metrics traffic not counted as pass_other_dest"

# Other paths and methods.
code=$(in_c curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "$METRICS_URL/other")
[ "$code" = 404 ] || fail "GET /other: HTTP $code, want 404"
code=$(in_c curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "$METRICS_URL/")
[ "$code" = 404 ] || fail "GET /: HTTP $code, want 404"
code=$(in_c curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -X POST -d x "$METRICS_URL/metrics")
[ "$code" = 405 ] || fail "POST /metrics: HTTP $code, want 405"
code=$(in_c curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -I "$METRICS_URL/metrics")
[ "$code" = 200 ] || fail "HEAD /metrics: HTTP $code, want 200"
log "/other and / -> 404, POST -> 405, HEAD -> 200"

# A scraper that connects and never sends a request does not hold up the
# signal loop: SIGHUP is handled, SIGTERM stops stcpd cleanly at once.
in_c python3 -c 'import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
time.sleep(30)' "$SRV4" "$MPORT" &
IDLE=$!
PIDS+=("$IDLE")
sleep 0.3
kill -HUP "$STCPD_PID"
for _ in $(seq 50); do
	grep -q 'SIGHUP' "$STCPD_LOG" && break
	sleep 0.1
done
grep -q 'SIGHUP' "$STCPD_LOG" || fail "SIGHUP not handled with an idle metrics client"
scrape third
[ "$(metric third stcp_cache_loads_total)" -gt "$(metric first stcp_cache_loads_total)" ] ||
	fail "stcp_cache_loads_total did not grow with SIGHUP"
start=$(date +%s%N)
kill -TERM "$STCPD_PID"
rc=0
wait "$STCPD_PID" || rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
[ "$rc" = 0 ] || fail "stcpd exited $rc on SIGTERM: $(cat "$STCPD_LOG")"
[ "$ms" -lt 5000 ] || fail "stcpd took $ms ms to stop with an idle metrics client"
log "SIGTERM with an idle metrics connection: clean stop in $ms ms"
# With only the unit's capabilities, stcpd could detach what it attached.
if in_s ip link show dev "$DEV_S" | grep -q xdp; then
	fail "the XDP program is still attached after a clean stop: $(cat "$STCPD_LOG")"
fi
if in_c curl -sS --max-time 2 -o /dev/null "$METRICS_URL/metrics" 2>/dev/null; then
	fail "the metrics endpoint still answers after stcpd stopped"
fi
echo "ok"
