/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Every map the fast path shares with stcpd and stcpctl: names, keys, values
 * and counter slots. None of these maps grows with the number of clients.
 */
#ifndef STCP_MAPS_H
#define STCP_MAPS_H

#include "stcp_types.h"

/* Maps are pinned by name under this directory, by libbpf and by `ip link`. */
#define STCP_PIN_DIR "/sys/fs/bpf/xdp/globals" /* where `ip link` pins */
#define STCP_MAP_CFG "stcp_cfg"
#define STCP_MAP_KEYS "stcp_keys"
#define STCP_MAP_LISTEN "stcp_listen"
#define STCP_MAP_COUNTERS "stcp_counters"

#define STCP_PROG_NAME "stcp_xdp"

#define STCP_AF_INET 4
#define STCP_AF_INET6 6

/* stcp_listen: the service addresses. Port and address in network order. */
#define STCP_MAX_LISTEN 64
struct stcp_listen_key {
	__u8 family; /* STCP_AF_INET or STCP_AF_INET6 */
	__u8 pad;
	__u16 port;
	__u32 addr[4]; /* IPv4 uses addr[0], the rest zero */
};

struct stcp_listen_val {
	__u32 flags; /* reserved, 0 */
};

/*
 * stcp_keys: two MAC keys. stcp_cfg.key_cur names the current one; the other
 * is the previous key, still accepted. A rotation overwrites the previous
 * slot and then flips key_cur, so readers never see a half-written current
 * key.
 */
#define STCP_NUM_KEYS 2
struct stcp_key {
	__u64 k0;
	__u64 k1;
	__u32 valid; /* 0 until a key has been written */
	__u32 gen; /* rotation counter, for operators; never part of the MAC */
};

/* stcp_cfg: single entry. The fast path reads key_cur and the MSS caps. */
struct stcp_cfg {
	__u32 key_cur; /* 0 or 1 */
	__u16 mss_v4; /* MSS we advertise; 0 means the default */
	__u16 mss_v6;
	/* Written by stcpd for stcpctl; unused by the fast path. */
	__u32 ifindex;
	__u32 attach_mode; /* enum stcp_attach_mode */
	__u32 daemon_pid;
	/* Content cache loads stcpd has finished (start-up and every SIGHUP),
	 * with STCP_CFG_LOAD_FAILED set when the last one failed: what
	 * `stcpctl reload` waits for. */
	__u32 cache_loads;
	__u64 keys_rotated_at; /* unix seconds */
};

#define STCP_CFG_LOAD_FAILED 0x80000000u
#define STCP_CFG_LOAD_COUNT 0x7fffffffu

enum stcp_attach_mode {
	STCP_MODE_UNKNOWN = 0,
	STCP_MODE_NATIVE = 1,
	STCP_MODE_GENERIC = 2,
	STCP_MODE_IPLINK = 3, /* loaded by `ip link`, no daemon */
};

#define STCP_DEFAULT_MSS_V4 1460
#define STCP_DEFAULT_MSS_V6 1440

/*
 * stcp_counters: per-CPU u64 at fixed slots. The slots for which
 * stcp_counter_is_disposition() holds are dispositions: every packet the
 * program sees adds one to exactly one of them, so their sum equals
 * STCP_C_RX_PACKETS. The others count what was emitted. Numbers are part of
 * the interface: append, never renumber.
 */
#define STCP_C_DISP_FIRST 1

enum stcp_counter {
	STCP_C_RX_PACKETS = 0,
	/* dispositions: passed to the kernel, not ours */
	STCP_C_PASS_NON_IP = 1,
	STCP_C_PASS_NON_TCP = 2,
	STCP_C_PASS_OTHER_DEST = 3,
	STCP_C_PASS_MALFORMED = 4, /* unparsable IP: the kernel drops it */
	STCP_C_PASS_FRAGMENT = 5, /* non-first fragment: no ports to match */
	/* dispositions: ours, answered */
	STCP_C_SYN_ANSWERED = 6,
	STCP_C_FIN_ANSWERED = 7,
	STCP_C_DATA_REFUSED = 8, /* valid cookie, data not served: RST */
	/* dispositions: ours, consumed without an answer */
	STCP_C_HANDSHAKE_DONE = 9,
	STCP_C_DROP_RST = 10,
	STCP_C_DROP_MALFORMED = 11,
	STCP_C_DROP_FRAGMENT = 12,
	STCP_C_DROP_NO_KEY = 13,
	STCP_C_DROP_BAD_FLAGS = 14,
	STCP_C_DROP_TX_FAILED = 15, /* could not shape the reply frame */
	/* dispositions: ours, failed validation (answered with RST) */
	STCP_C_BAD_COOKIE = 16,
	STCP_C_STALE_COOKIE = 17,
	/* dispositions: the data path */
	STCP_C_REQUEST_ANSWERED = 18, /* a request's first segments sent */
	STCP_C_RESPONSE_TOO_BIG = 19, /* over 128 MB, or no copies: RST */
	STCP_C_RESPONSE_ACKED = 20, /* client ACK after our response */
	STCP_C_DISP_END = 21,
	/* emitted frames */
	STCP_C_TX_SYNACK = 21,
	STCP_C_TX_RST = 22,
	STCP_C_TX_ACK = 23,
	STCP_C_TX_DATA = 24,
	/* dispositions: the multi-segment data path (docs/PROTOCOL.md 7) */
	STCP_C_DATA_ACK_RELEASED = 25, /* an ACK released new segments */
	STCP_C_DATA_ACK_IDLE = 26, /* a valid ACK with nothing to release */
	STCP_C_DATA_SACK = 27, /* an ACK with SACK blocks: recovery */
	STCP_C_DATA_DSACK = 28, /* a duplicate's ACK (D-SACK): ignored */
	STCP_C_DATA_PROBE = 29, /* request bytes resent: go back */
	STCP_C_DISP_END2 = 30,
	/* emitted frames */
	STCP_C_TX_RETRANS = 30, /* ACKs that resent segments (in tx_data) */
	STCP_C_TX_FLUSH = 31, /* flush frames (include/stcp_tx.h) */
	/* dispositions: cache misses (include/stcp_cache.h) */
	STCP_C_CACHE_MISS = 32, /* handed to stcpd, which runs it again */
	STCP_C_CACHE_MISS_LOST = 33, /* stcp_misses full: dropped */
	/* dispositions: requests that span segments (docs/PROTOCOL.md 7.8) */
	STCP_C_REQUEST_PART = 34, /* handed to stcpd, which joins them */
	STCP_C_REQUEST_PART_LOST = 35, /* stcp_misses full: dropped */
	/* Keep-alive (docs/PROTOCOL.md 7.10). */
	STCP_C_REQUEST_NEXT = 36, /* a later request of a connection answered */
	STCP_C_CONN_MISSING = 37, /* its stcp_conns entry is gone: RST */
	/* With --redis: a request whose stcp_conns entry stcpd writes to
	 * Redis before it runs the request again (include/stcp_conn.h). */
	STCP_C_CONN_SYNC = 38,
	STCP_C_DISP_END3 = 39,
	/* A request before the response ended: the connection closes after
	 * it (counted besides the segment's disposition). */
	STCP_C_PIPELINE_REFUSED = 39,
	/* An stcp_conns entry not sent to stcpd for Redis: the ring was
	 * full (include/stcp_conn.h). */
	STCP_C_CONN_SYNC_LOST = 40,
	/* Stall timers that fired and handed a probe to stcpd, and those
	 * the full ring lost (include/stcp_conn.h). */
	STCP_C_STALL_PROBE = 41,
	STCP_C_STALL_LOST = 42,
	/* Windowed bodies (include/stcp_cache.h): packets that needed ring
	 * pages stcpd had not loaded (besides their cache_miss), and copies
	 * dropped because their ring page changed while being read. */
	STCP_C_WINDOW_MISS = 43,
	STCP_C_WINDOW_TORN = 44,
	/* Requests for an object without slots handed to stcpd (besides
	 * their cache_miss; include/stcp_cache.h STCP_SLOT_NONE). */
	STCP_C_SLOT_MISS = 45,
	/* Ring loads asked for ahead of a windowed body's downloads, which
	 * go on meanwhile (include/stcp_cache.h). */
	STCP_C_WINDOW_PREFETCH = 46,
	/* With --redis: a later part of a request whose first segment this
	 * replica has not seen, handed to stcpd (besides request_part;
	 * docs/PROTOCOL.md 7.8). */
	STCP_C_REQUEST_PART_ELSEWHERE = 47,
	STCP_C_MAX = 48,
};

/* Whether counter slot i is a disposition (see above). */
static inline int stcp_counter_is_disposition(int i)
{
	return (i >= STCP_C_DISP_FIRST && i < STCP_C_DISP_END) ||
	       (i >= STCP_C_DATA_ACK_RELEASED && i < STCP_C_DISP_END2) ||
	       (i >= STCP_C_CACHE_MISS && i < STCP_C_DISP_END3);
}


#ifndef __bpf__
/* Names used by stcpctl (text and JSON) and the tests. */
static const char *const stcp_counter_names[STCP_C_MAX] = {
	[STCP_C_RX_PACKETS] = "rx_packets",
	[STCP_C_PASS_NON_IP] = "pass_non_ip",
	[STCP_C_PASS_NON_TCP] = "pass_non_tcp",
	[STCP_C_PASS_OTHER_DEST] = "pass_other_dest",
	[STCP_C_PASS_MALFORMED] = "pass_malformed",
	[STCP_C_PASS_FRAGMENT] = "pass_fragment",
	[STCP_C_SYN_ANSWERED] = "syn_answered",
	[STCP_C_FIN_ANSWERED] = "fin_answered",
	[STCP_C_DATA_REFUSED] = "data_refused",
	[STCP_C_HANDSHAKE_DONE] = "handshake_done",
	[STCP_C_DROP_RST] = "drop_rst",
	[STCP_C_DROP_MALFORMED] = "drop_malformed",
	[STCP_C_DROP_FRAGMENT] = "drop_fragment",
	[STCP_C_DROP_NO_KEY] = "drop_no_key",
	[STCP_C_DROP_BAD_FLAGS] = "drop_bad_flags",
	[STCP_C_DROP_TX_FAILED] = "drop_tx_failed",
	[STCP_C_BAD_COOKIE] = "bad_cookie",
	[STCP_C_STALE_COOKIE] = "stale_cookie",
	[STCP_C_REQUEST_ANSWERED] = "request_answered",
	[STCP_C_RESPONSE_TOO_BIG] = "response_too_big",
	[STCP_C_RESPONSE_ACKED] = "response_acked",
	[STCP_C_TX_SYNACK] = "tx_synack",
	[STCP_C_TX_RST] = "tx_rst",
	[STCP_C_TX_ACK] = "tx_ack",
	[STCP_C_TX_DATA] = "tx_data",
	[STCP_C_DATA_ACK_RELEASED] = "data_ack_released",
	[STCP_C_DATA_ACK_IDLE] = "data_ack_idle",
	[STCP_C_DATA_SACK] = "data_sack",
	[STCP_C_DATA_DSACK] = "data_dsack",
	[STCP_C_DATA_PROBE] = "data_probe",
	[STCP_C_TX_RETRANS] = "tx_retrans",
	[STCP_C_TX_FLUSH] = "tx_flush",
	[STCP_C_CACHE_MISS] = "cache_miss",
	[STCP_C_CACHE_MISS_LOST] = "cache_miss_lost",
	[STCP_C_REQUEST_PART] = "request_part",
	[STCP_C_REQUEST_PART_LOST] = "request_part_lost",
	[STCP_C_REQUEST_NEXT] = "request_next",
	[STCP_C_CONN_MISSING] = "conn_missing",
	[STCP_C_CONN_SYNC] = "conn_sync",
	[STCP_C_PIPELINE_REFUSED] = "pipeline_refused",
	[STCP_C_CONN_SYNC_LOST] = "conn_sync_lost",
	[STCP_C_STALL_PROBE] = "stall_probe",
	[STCP_C_STALL_LOST] = "stall_lost",
	[STCP_C_WINDOW_MISS] = "window_miss",
	[STCP_C_WINDOW_TORN] = "window_torn",
	[STCP_C_SLOT_MISS] = "slot_miss",
	[STCP_C_WINDOW_PREFETCH] = "window_prefetch",
	[STCP_C_REQUEST_PART_ELSEWHERE] = "request_part_elsewhere",
};
#endif

#endif /* STCP_MAPS_H */
