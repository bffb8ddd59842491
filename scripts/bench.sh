#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs the benchmarks and rewrites their generated sections of
# docs/BENCHMARKS.md, each between "<!-- NAME:begin -->" and
# "<!-- NAME:end -->". Run as root from the repository root, after `make`
# (`sudo make bench` does both).
#
# Adding a benchmark: write a section_NAME function (dashes of NAME become
# underscores) that prints the section's Markdown on stdout, add NAME to
# SECTIONS, and put its markers in the document (they are appended at the
# end if missing).
#
# STCP_BENCH_EMIT=1 adds the multi-segment emission benchmark (section
# emit-bench, about two minutes; needs `make emit-build` first, which
# `sudo make emit-bench` also does).
set -euo pipefail

DOC=${DOC:-docs/BENCHMARKS.md}
BUILD=${BUILD:-build}
SECTIONS=(machine handshake-bench http-close http-data)
if [[ ${STCP_BENCH_EMIT:-0} == 1 ]]; then
	SECTIONS+=(emit-bench)
fi

die() {
	echo "bench.sh: $*" >&2
	exit 1
}

preflight() {
	[[ -f Makefile && -d bpf && -d scripts ]] ||
		die "run from the repository root"
	[[ $EUID -eq 0 ]] ||
		die "must run as root (BPF_PROG_TEST_RUN needs CAP_BPF and CAP_NET_ADMIN)"
	[[ -x $BUILD/stcp_bench ]] ||
		die "$BUILD/stcp_bench is missing: run make first"
	if [[ ${STCP_BENCH_EMIT:-0} == 1 ]]; then
		[[ -x $BUILD/emit_bench ]] ||
			die "$BUILD/emit_bench is missing: run make emit-build first"
	fi
}

cpu_model() {
	local m
	m=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
	echo "${m:-unknown CPU}"
}

# The intro, written only when the document does not exist yet.
create_doc() {
	mkdir -p "$(dirname "$DOC")"
	cat >"$DOC" <<'EOF'
# Benchmarks

What the fast path costs per packet, measured on the XDP program itself
through `BPF_PROG_TEST_RUN` (no NIC, no traffic generator): the time the
kernel reports for running `stcp_xdp` on a given frame, next to
`bench_reflect`, the least an XDP responder can do (swap the addresses,
`XDP_TX`), measured in the same run on the same CPU.

Regenerate everything below with:

    sudo make bench

which builds, then runs `scripts/bench.sh`. The sections between
`<!-- ...:begin -->` and `<!-- ...:end -->` are rewritten by that script;
edit outside them.

## Machine and date of the last run

<!-- machine:begin -->
<!-- machine:end -->

## Handshake fast path

Per-packet cost of `stcp_xdp` on its main paths: answering a SYN with a
SYN-ACK (IPv4 and IPv6, Linux's SYN options), verifying a handshake ACK
(cookie and timestamp check, then drop), and passing a packet that is not
for a service address, against `bench_reflect` on the same IPv4 SYN.

<!-- handshake-bench:begin -->
<!-- handshake-bench:end -->
EOF
}

# Replaces the lines between the markers of section $1 with the file $2,
# appending the markers at the end of the document if they are missing.
replace_section() {
	local name=$1 body=$2
	local begin="<!-- ${name}:begin -->" end="<!-- ${name}:end -->"
	local nb ne tmp

	nb=$(grep -cxF -- "$begin" "$DOC" || true)
	ne=$(grep -cxF -- "$end" "$DOC" || true)
	if [[ $nb -eq 0 && $ne -eq 0 ]]; then
		printf '\n%s\n%s\n' "$begin" "$end" >>"$DOC"
	elif [[ $nb -ne 1 || $ne -ne 1 ]]; then
		die "$DOC: expected one '$begin' and one '$end'"
	fi
	tmp=$(mktemp "${DOC}.XXXXXX")
	TMPFILES+=("$tmp")
	awk -v b="$begin" -v e="$end" -v f="$body" '
		$0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
		$0 == e { skip = 0 }
		!skip { print }
	' "$DOC" >"$tmp"
	# Rewrite in place: keeps the document's owner and mode.
	cat "$tmp" >"$DOC"
}

section_machine() {
	echo "- Kernel: \`$(uname -r)\` ($(uname -m))"
	echo "- CPUs: $(nproc) ($(cpu_model))"
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
}

section_handshake_bench() {
	local cmd=("$BUILD/stcp_bench")

	echo "Produced by \`${cmd[*]}\` (run by \`scripts/bench.sh\`, from"
	echo "\`sudo make bench\`) on kernel \`$(uname -r)\`, $(nproc) CPUs,"
	echo "$(date -u '+%Y-%m-%d')."
	echo
	"${cmd[@]}"
}

# 1 KB GETs, a new connection each, stcp against nginx on one topology.
section_http_close() {
	echo "Produced by \`scripts/bench_http.sh\` (run by \`scripts/bench.sh\`, from"
	echo "\`sudo make bench\`) on kernel \`$(uname -r)\`, $(nproc) CPUs, $(date -u '+%Y-%m-%d'):"
	echo "\`wrk -t2 -c64 -d5s -H 'Connection: close'\` from a client namespace"
	echo "over a veth pair, for a 1024-byte file, nginx (\`worker_processes"
	echo "auto\`, access log off) and stcp alternating twice in the same run; wrk"
	echo "shares the same two CPUs. Any socket error or non-2xx fails the run."
	echo
	scripts/bench_http.sh
}

# The data-path figures of issue 3, stcp against nginx on one topology.
section_http_data() {
	echo "Produced by \`scripts/bench_data.sh\` (run by \`scripts/bench.sh\`, from"
	echo "\`sudo make bench\`) on kernel \`$(uname -r)\`, $(nproc) CPUs, $(date -u '+%Y-%m-%d'):"
	echo "nginx (\`worker_processes auto\`, access log off, keep-alive on) and stcp"
	echo "on the same veth topology in the same run; wrk -t2 -c64 for 5 s per"
	echo "figure, curl for downloads (bodies compared), Python for the 15,000"
	echo "connections. Client and servers share the same two CPUs."
	echo
	scripts/bench_data.sh
}

# Multi-segment emission (STCP_BENCH_EMIT=1): tests/bench/emit/run.sh makes
# its own namespaces and removes them, failure included.
section_emit_bench() {
	local cmd=(tests/bench/emit/run.sh)

	echo "Produced by \`sudo ${cmd[*]}\` (run by \`scripts/bench.sh\` with"
	echo "\`STCP_BENCH_EMIT=1\`; \`sudo make emit-bench\` prints the same) on kernel"
	echo "\`$(uname -r)\`, $(nproc) CPUs, $(date -u '+%Y-%m-%d')."
	echo
	BUILD=$BUILD "${cmd[@]}"
}

TMPFILES=()
cleanup() {
	local rc=$?
	rm -f "${TMPFILES[@]}"
	[[ $rc -eq 0 ]] || echo "bench.sh: failed (status $rc)" >&2
}
trap cleanup EXIT

# Every section is generated before the document is touched, so a failed
# run leaves it as it was.
main() {
	local s out
	local -A outs=()
	preflight
	for s in "${SECTIONS[@]}"; do
		out=$(mktemp)
		TMPFILES+=("$out")
		echo "bench.sh: running section $s" >&2
		"section_${s//-/_}" >"$out"
		outs[$s]=$out
	done
	[[ -f $DOC ]] || create_doc
	for s in "${SECTIONS[@]}"; do
		replace_section "$s" "${outs[$s]}"
	done
	echo "bench.sh: updated $DOC" >&2
}

main "$@"
