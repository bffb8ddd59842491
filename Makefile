# stcp: `make` builds everything into build/. `sudo make test`, `sudo make demo`
# and `sudo make bench` install what they need first (scripts/deps.sh).
BUILD    ?= build
CLANG    ?= clang
BPFTOOL  ?= bpftool
CC       ?= cc

ARCH     := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
WARN     := -Wall -Wextra -Werror
BPF_CFLAGS := -O2 -g -target bpf -D__TARGET_ARCH_$(ARCH) $(WARN) \
	      -Wno-unused-function -I. -Iinclude
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 $(WARN) -Iinclude -I$(BUILD) -D_GNU_SOURCE
PKGS     := libbpf libxdp
LDLIBS_BPF := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lxdp -lbpf -lelf -lz)

BPF_OBJS := $(BUILD)/stcp.bpf.o $(BUILD)/xdp_pass.bpf.o $(BUILD)/bench_reflect.bpf.o
SKELS    := $(BUILD)/stcp.skel.h $(BUILD)/bench_reflect.skel.h
HEADERS  := $(wildcard include/*.h)
COMMON   := daemon/common.c
COMMON_H := daemon/common.h
CACHE    := daemon/cache.c
CACHE_H  := daemon/cache.h
# stcpd's key keeper: rotation schedule and keys shared through Redis;
# Redis as a content source (stcpd's poll, stcpctl content add|rm); and the
# connection state kept there (stcpd).
REDIS_KEYS   := daemon/redis_keys.c daemon/content_redis.c daemon/redis_conns.c
REDIS_KEYS_H := daemon/redis_keys.h daemon/content_redis.h daemon/redis_conns.h
LDLIBS_REDIS := $(shell pkg-config --libs hiredis 2>/dev/null || echo -lhiredis)
# stcpd's operator side: --metrics (libmicrohttpd, in its own thread) and
# --config (inih).
OPS      := daemon/metrics.c daemon/config.c
OPS_H    := daemon/metrics.h daemon/config.h
# stcpd's joining of requests that span segments.
REASM    := daemon/reasm.c
REASM_H  := daemon/reasm.h
LDLIBS_OPS := $(shell pkg-config --libs libmicrohttpd inih 2>/dev/null || echo -lmicrohttpd -linih) -pthread

PROGS    := $(BUILD)/stcpd $(BUILD)/stcpctl $(BUILD)/stcp_unit $(BUILD)/stcp_bench

.PHONY: all clean test demo bench deps format
all: $(BPF_OBJS) $(SKELS) $(PROGS)

$(BUILD):
	mkdir -p $@

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(HEADERS) vmlinux.h | $(BUILD)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $(subst .bpf.o,,$(notdir $<))_bpf > $@

$(BUILD)/stcpd: daemon/stcpd.c $(COMMON) $(COMMON_H) $(CACHE) $(CACHE_H) $(SKELS) $(HEADERS)
	$(CC) $(CFLAGS) $< $(COMMON) $(CACHE) $(OPS) $(REDIS_KEYS) $(REASM) -o $@ $(LDLIBS_BPF) $(LDLIBS_OPS) $(LDLIBS_REDIS)
$(BUILD)/stcpd: $(OPS) $(OPS_H)
$(BUILD)/stcpd: $(REDIS_KEYS) $(REDIS_KEYS_H) $(REASM) $(REASM_H)

$(BUILD)/stcpctl: daemon/stcpctl.c $(COMMON) $(COMMON_H) $(CACHE) $(CACHE_H) $(REDIS_KEYS) $(REDIS_KEYS_H) $(HEADERS) daemon/config.c daemon/config.h
	$(CC) $(CFLAGS) $< $(COMMON) $(CACHE) $(REDIS_KEYS) daemon/config.c -o $@ $(LDLIBS_BPF) $(shell pkg-config --cflags --libs json-c) $(LDLIBS_REDIS) $(shell pkg-config --libs inih 2>/dev/null || echo -linih)

# tests/unit/http_parse.bpf.c: test-only XDP program around bpf/http.h,
# embedded in stcp_unit through its skeleton.
UNIT_SRCS := $(filter-out %.bpf.c,$(wildcard tests/unit/*.c))
$(BUILD)/http_parse.bpf.o: tests/unit/http_parse.bpf.c bpf/http.h $(HEADERS) vmlinux.h | $(BUILD)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/stcp_unit: $(UNIT_SRCS) tests/unit/*.h $(COMMON) $(CACHE) $(CACHE_H) $(SKELS) $(BUILD)/http_parse.skel.h $(HEADERS)
	$(CC) $(CFLAGS) -Itests/unit $(UNIT_SRCS) $(COMMON) $(CACHE) -o $@ $(LDLIBS_BPF)

$(BUILD)/stcp_bench: tests/bench/bench.c tests/unit/pkt.c tests/unit/pkt.h $(COMMON) $(SKELS) $(HEADERS)
	$(CC) $(CFLAGS) -Itests/unit tests/bench/bench.c tests/unit/pkt.c $(COMMON) -o $@ $(LDLIBS_BPF)

deps:
	scripts/deps.sh

test:
	scripts/deps.sh --ensure
	$(MAKE) all
	tests/run.sh

demo:
	scripts/deps.sh --ensure
	$(MAKE) all
	scripts/demo.sh

bench:
	scripts/deps.sh --ensure
	$(MAKE) all
	scripts/bench.sh

format:
	clang-format -i bpf/*.c daemon/*.c daemon/*.h include/*.h tests/unit/*.c tests/unit/*.h tests/bench/*.c

clean:
	rm -rf $(BUILD)

# `make install` (PREFIX=/usr/local; DESTDIR=/tmp/stage to stage): binaries
# in sbin, man pages, the systemd unit (its ExecStart follows SBINDIR) and
# the example config. The live config, /etc/stcp/stcpd.conf, is the
# operator's: copy the example there.
PREFIX   ?= /usr/local
SBINDIR  ?= $(PREFIX)/sbin
MANDIR   ?= $(PREFIX)/share/man
UNITDIR  ?= $(PREFIX)/lib/systemd/system
DOCDIR   ?= $(PREFIX)/share/doc/stcp
MANPAGES := docs/man/stcpd.8 docs/man/stcpctl.8

.PHONY: install uninstall
install: $(BUILD)/stcpd $(BUILD)/stcpctl
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)
	install -m 0755 $(BUILD)/stcpd $(BUILD)/stcpctl $(DESTDIR)$(SBINDIR)/
	install -m 0644 $(MANPAGES) $(DESTDIR)$(MANDIR)/man8/
	sed 's|/usr/local/sbin/|$(SBINDIR)/|g' packaging/stcpd.service \
		>$(DESTDIR)$(UNITDIR)/stcpd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/stcpd.service
	install -m 0644 etc/stcpd.conf.example $(DESTDIR)$(DOCDIR)/

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/stcpd $(DESTDIR)$(SBINDIR)/stcpctl \
		$(DESTDIR)$(MANDIR)/man8/stcpd.8 $(DESTDIR)$(MANDIR)/man8/stcpctl.8 \
		$(DESTDIR)$(UNITDIR)/stcpd.service \
		$(DESTDIR)$(DOCDIR)/stcpd.conf.example
	-rmdir $(DESTDIR)$(DOCDIR)

# Multi-segment emission experiment (tests/bench/emit/, docs/ARCHITECTURE.md
# "Multi-segment emission"); not part of `all`. `sudo make emit-bench`.
EMIT_DIR  := tests/bench/emit
EMIT_BIN  := $(BUILD)/emit_srv.bpf.o $(BUILD)/emit_cli.bpf.o $(BUILD)/emit_bench

.PHONY: emit-bench emit-build
emit-build: $(EMIT_BIN)

$(BUILD)/emit_%.bpf.o: $(EMIT_DIR)/emit_%.bpf.c $(EMIT_DIR)/emit.h $(HEADERS) vmlinux.h | $(BUILD)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/emit_bench: $(EMIT_DIR)/emit_bench.c $(EMIT_DIR)/emit.h $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS) -I$(EMIT_DIR) $< -o $@ $(LDLIBS_BPF)

emit-bench:
	scripts/deps.sh --ensure
	$(MAKE) all emit-build
	$(EMIT_DIR)/run.sh
