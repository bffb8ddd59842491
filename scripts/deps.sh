#!/usr/bin/env bash
# Installs, idempotently, every Debian 12 package that the build, the tests,
# the demo and the benchmarks use, and mounts bpffs.
#   scripts/deps.sh           install everything (apt-get update first)
#   scripts/deps.sh --ensure  install only if something is missing (fast path
#                             for `make test` / `make demo` / `make bench`)
#   scripts/deps.sh --list    print the package list
set -euo pipefail

PKGS=(
	# build
	make gcc clang llvm pkg-config bpftool libbpf-dev libxdp-dev xdp-tools
	libelf-dev zlib1g-dev libhiredis-dev libjson-c-dev
	# stcpd --metrics (HTTP endpoint) and --config (INI parser)
	libmicrohttpd-dev libinih-dev
	# run and test: namespaces, XDP attach, loss rules, captures
	iproute2 iputils-ping util-linux procps nftables ethtool tshark
	# man page checks (man --warnings)
	groff-base man-db
	# systemd-analyze verifies the unit file (systemd need not be PID 1)
	systemd
	# real clients and peers
	curl wget wrk apache2-utils python3 netcat-openbsd redis-server
	# benchmark peer and profiling
	nginx-light linux-perf
)

missing() {
	local p out=()
	for p in "${PKGS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || out+=("$p")
	done
	echo "${out[@]:-}"
}

mount_bpffs() {
	if ! mountpoint -q /sys/fs/bpf 2>/dev/null; then
		mount -t bpf bpf /sys/fs/bpf
	fi
}

need_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "deps.sh: must run as root (sudo make test / sudo make demo)" >&2
		exit 1
	fi
}

case "${1:-}" in
--list)
	printf '%s\n' "${PKGS[@]}"
	exit 0
	;;
--ensure)
	need_root
	todo=$(missing)
	if [ -z "$todo" ]; then
		mount_bpffs
		exit 0
	fi
	echo "deps.sh: installing missing packages: $todo"
	;;
"") need_root ;;
*)
	echo "usage: scripts/deps.sh [--ensure|--list]" >&2
	exit 2
	;;
esac

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# tshark asks whether non-root users may capture; answer for it.
echo "wireshark-common wireshark-common/install-setuid boolean false" |
	debconf-set-selections
apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
# The packaged services must not hold ports or run in the background: tests
# and benchmarks start their own instances.
for svc in nginx redis-server; do
	if command -v service >/dev/null; then
		service "$svc" stop >/dev/null 2>&1 || true
	fi
done
mount_bpffs
todo=$(missing)
if [ -n "$todo" ]; then
	echo "deps.sh: still missing after install: $todo" >&2
	exit 1
fi
echo "deps.sh: all dependencies present"
