/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared definitions of the multi-segment emission benchmark: the BPF
 * programs (emit_srv.bpf.c on the server veth, emit_cli.bpf.c on the client
 * veth) and the driver (emit_bench.c). See docs/ARCHITECTURE.md,
 * "Multi-segment emission".
 *
 * Frames. A trigger is a 66-byte IPv4 TCP ACK (Ethernet 14, IPv4 20, TCP 20
 * + NOP NOP TS 12) from the client to EMIT_SRV_PORT; its TSval carries the
 * trigger id t (0, 1, 2, ...). For trigger t the server emits N segments of
 * EMIT_FRAME bytes (EMIT_MSS of payload); segment k carries the global
 * segment number g = t * N + k in its TSval, sequence number g * EMIT_MSS,
 * the payload of content slot k, and TSecr = t. The client counts them and
 * checks that g only ever grows by one.
 */
#ifndef EMIT_H
#define EMIT_H

#include "stcp_types.h"

#define EMIT_MSS       1448
#define EMIT_HDR       66 /* Ethernet 14 + IPv4 20 + TCP 32 */
#define EMIT_FRAME     (EMIT_HDR + EMIT_MSS) /* 1514 */
#define EMIT_MAX_SEGS  32
#define EMIT_SRV_PORT  80
#define EMIT_CLI_PORT  40000
#define EMIT_OFF_TSVAL 58 /* TSval in a frame with EMIT_HDR headers */
#define EMIT_OFF_TSECR 62

enum emit_mode {
	EMIT_M_OFF = 0,
	EMIT_M_DEVMAP = 1, /* (A) XDP broadcast into a devmap + devmap program */
	EMIT_M_TC = 2,     /* (B) XDP_PASS, TC ingress bpf_clone_redirect loop */
	EMIT_M_TX = 3,     /* (C) XDP_TX of the trigger grown in place, N = 1 */
	EMIT_M_PROBE = 4,  /* growth probe in the XDP program, then XDP_PASS */
	EMIT_M_SLOTPROG = 5, /* broadcast into emit_dm_slot: 2 slots, 2 programs */
};

struct emit_cfg {
	__u32 mode;
	__u32 nseg;      /* segments per trigger, 1..EMIT_MAX_SEGS */
	__u32 ifindex;   /* server veth (TC clone target) */
	__u32 probe_gso; /* TC: also try bpf_skb_change_tail to 16000 and 65535 */
	__u32 dm_probe;  /* devmap program: record growth room, then build */
};

/* Server per-CPU counters (emit_stats). */
enum emit_stat {
	ES_TRIG,         /* triggers seen by the XDP program */
	ES_EMIT,         /* segments built and handed on (XDP_PASS/TX/clone) */
	ES_GROW_FAIL,    /* bpf_xdp_adjust_tail / bpf_skb_change_tail failed */
	ES_SPARE_DROP,   /* devmap: the spare (last, original) copy dropped */
	ES_DM_RUNS,      /* devmap program emit_devmap runs */
	ES_DM2_RUNS,     /* devmap program emit_devmap2 runs (slot probe) */
	ES_TC_TRIG,      /* triggers seen by the TC program */
	ES_TC_FAIL,      /* bpf_clone_redirect or a store failed */
	ES_TX_FAIL,      /* XDP: could not build the frame */
	ES_MAX,
};

/* Growth probe results (emit_probe, array, indexed by enum emit_origin). */
enum emit_origin {
	EO_XDP,        /* the XDP program, on the arriving frame */
	EO_DM_CLONE,   /* a devmap program on a broadcast clone (k < N) */
	EO_DM_ORIG,    /* a devmap program on the last copy (the original) */
	EO_TC_16000,   /* TC: bpf_skb_change_tail(16000) result (0 or -errno) */
	EO_TC_65535,   /* TC: bpf_skb_change_tail(65535) result */
	EO_MAX,
};

struct emit_probe {
	__u64 count;
	__s64 max_grow; /* largest growth that worked, -1 none; TC: return */
	__u32 len;      /* frame length seen */
	__u32 pad;
};

/* Content: EMIT_MAX_SEGS segments with their payload checksum. */
struct emit_seg {
	__u8 data[EMIT_MSS];
	__u32 csum; /* 16-bit ones' complement sum of data, native order */
};

/* Client receive state (emit_rx, array of 1, written by one NAPI only). */
struct emit_rx {
	__u64 frames;   /* emitted segments received */
	__u64 bytes;
	__u64 bad;      /* wrong length or layout */
	__u64 csum_bad; /* IPv4 or TCP checksum wrong (when verify is set) */
	__u64 next;     /* next expected global segment number */
	__u64 gaps;     /* arrivals above next: gap events */
	__u64 missing;  /* segment numbers skipped by those gaps */
	__u64 reorder;  /* arrivals below next */
	__u64 first_ns;
	__u64 last_ns;
	__u32 verify;   /* set by the driver: check both checksums */
	__u32 pad;
};

/* Client ACK clock (emit_clock, array of 1): when the last segment of a
 * trigger arrives (g % n == n - 1) and fewer than limit triggers were sent,
 * emit_count turns that segment into the next trigger (tmpl, TSval = next
 * trigger id) and XDP_TXes it back, so a fixed number of triggers is in
 * flight, as under a TCP ACK clock; n = 0 turns the clock off. */
struct emit_clock {
	__u32 n;
	__u32 pad;
	__u64 limit;
	__u8 tmpl[EMIT_HDR];
	__u8 pad2[6];
};

#endif /* EMIT_H */
