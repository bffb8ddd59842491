// SPDX-License-Identifier: GPL-2.0
/*
 * stcp fast path: answers TCP for the service addresses with no state per
 * connection. This file holds the parsing, the handshake and the replies;
 * docs/PROTOCOL.md holds the reasoning.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "stcp_maps.h"
#include "stcp_cache.h"
#include "stcp_conn.h"
#include "stcp_cookie.h"
#include "stcp_tx.h"
#include "http.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP_ 6
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define IP_DF 0x4000

#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_MSS 2
#define TCPOPT_WINDOW 3
#define TCPOPT_SACK_PERM 4
#define TCPOPT_SACK 5
#define TCPOPT_TIMESTAMP 8
#define MAX_SACK_BLOCKS 4

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_PSH 0x08
#define TCP_FLAG_ACK 0x10

#define MAX_TCP_OPTLEN 40
#define MAX_IPV6_EXTHDRS 4
#define REPLY_TTL 64
#define SYNACK_WINDOW 65535
/* check_cookie() flags. */
#define COOKIE_HAS_TS 0x1u
#define COOKIE_CLOSE 0x2u /* the cookie stands for ISN + 1 (our FIN) */

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stcp_cfg);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stcp_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, STCP_NUM_KEYS);
	__type(key, __u32);
	__type(value, struct stcp_key);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stcp_keys SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, STCP_MAX_LISTEN);
	__type(key, struct stcp_listen_key);
	__type(value, struct stcp_listen_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stcp_listen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STCP_C_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stcp_counters SEC(".maps");

/* The content cache (include/stcp_cache.h), filled by stcpd. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, STCP_DEFAULT_PAGES);
	__type(key, __u32);
	__type(value, struct stcp_page);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stcp_pages SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, STCP_MAX_RESPS);
	__type(key, __u32);
	__type(value, struct stcp_resp);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stcp_resps SEC(".maps");

/* Per slot of a windowed body: the end of the last load asked for ahead
 * of its downloads (window_prefetch()). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, STCP_MAX_RESPS);
	__type(key, __u32);
	__type(value, __u32);
} stcp_prefetch SEC(".maps");

/* Which body page each ring page of a windowed body holds
 * (STCP_RESP_WINDOWED); stcpd sizes it as stcp_pages. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, STCP_DEFAULT_PAGES);
	__type(key, __u32);
	__type(value, __u32);
} stcp_page_tags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, STCP_MAX_OBJECTS);
	__type(key, struct stcp_obj_key);
	__type(value, struct stcp_obj);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stcp_objects SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, STCP_MISS_RING_BYTES);
} stcp_misses SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, STCP_MAX_RESPS);
	__type(key, __u32);
	__type(value, __u32);
} stcp_slot_use SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, STCP_MAX_RESPS);
	__type(key, __u32);
	__type(value, __u32);
} stcp_slot_gen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, STCP_MAX_RANGES);
	__type(key, struct stcp_range_key);
	__type(value, __u32);
} stcp_ranges SEC(".maps");

/* Set by stcpd before it loads the program: someone reads stcp_misses and
 * builds range responses. Loaded by `ip link`, Range gets the whole 200. */
const volatile __u32 stcp_have_daemon = 0;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, STCP_REASM_FLOWS);
	__type(key, struct stcp_flow);
	__type(value, struct stcp_reasm_val);
} stcp_reasm SEC(".maps");

/* Where the later responses of keep-alive connections start
 * (include/stcp_conn.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, STCP_CONNS_MAX);
	__type(key, struct stcp_flow);
	__type(value, struct stcp_conn);
} stcp_conns SEC(".maps");

/* The stall timers (include/stcp_conn.h): the client's latest ACK of a
 * long response, and a timer that hands it to stcpd as a probe when no
 * other ACK follows. */
struct stcp_stall {
	struct bpf_timer timer;
	struct stcp_stall_ack a;
	__u32 fires; /* since the last ACK */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, STCP_STALLS_MAX);
	__type(key, struct stcp_flow);
	__type(value, struct stcp_stall);
} stcp_stalls SEC(".maps");

/* Set by stcpd with --redis: entries go to Redis through it, and one that
 * is missing here is looked up there (include/stcp_conn.h). */
const volatile __u32 stcp_conn_sync = 0;

/* What the parser learns of a packet for the service. */
struct seg {
	struct stcp_flow flow;
	__u8 eth_src[6];
	__u8 eth_dst[6];
	__u32 seq; /* host order */
	__u32 ack;
	__u32 payload_len;
	__u32 opt_off; /* offset of the TCP options from the frame start */
	__u32 opt_len;
	__u8 flags;
	__u16 window; /* as sent, unscaled */
};

struct tcp_opts {
	__u32 tsval;
	__u32 tsecr;
	__u16 mss;
	__u8 wscale;
	__u8 has_mss;
	__u8 has_ws;
	__u8 has_ts;
	__u8 sack_ok;
	__u8 nsack; /* SACK blocks, copied to stcp_req_scratch.sack */
};

struct reply {
	__u32 seq;
	__u32 ack;
	__u8 flags;
	__u16 window;
	__u32 optlen; /* multiple of 4, at most 20 */
	__u32 opts[5];
	/* Payload: hdr_len bytes of page hdr_page, then body_len bytes of
	 * page body_page (each within one page). */
	__u32 hdr_page;
	__u32 hdr_len;
	__u32 body_page;
	__u32 body_len;
	/* The payload is in the frame already, after the headers to be
	 * written; psum is its ones' complement sum. */
	__u32 in_frame;
	__u32 psum;
};

/* One SACK block, in segments of the response. */
struct sack_seg {
	__u32 lo;
	__u32 hi;
};

/* What one data ACK says, decoded. */
struct data_ack {
	__u64 a;     /* response bytes acknowledged */
	__u32 total; /* response bytes */
	__u32 sz;    /* payload per segment */
	__u32 nsegs;
	__u32 j;     /* first segment not acknowledged */
	__u32 t;     /* the segment whose TSval the ACK echoes */
	__u32 rseg;  /* segments below the client's right edge */
	__u32 wseg;  /* the same, past the response's end too */
	__u32 opts;
	__u32 isn1;
	__u32 slot;
	__u32 close;	 /* the response ends with our FIN */
	__u32 ka;	 /* a later response: stcp_conns has it */
	__u32 req_start; /* ka: the client's first request byte */
	__u32 nots;	 /* no timestamps: high stands in for t */
	__u32 key_slot;	 /* first response: the key its flow hash is under */
	__u32 lead;	 /* DATA_NEXT_REQUEST: bytes before the request */
	__u32 high;	 /* nots: segments [0, high) have been sent */
	struct stcp_resp resp; /* the slot the TSecr names */
};

/* Per CPU, never pinned: where a request is copied and parsed, replies
 * and transmit descriptors are built, and SACK blocks are kept, to keep the
 * deepest call chain's stack small. */
struct req_scratch {
	struct stcp_http_scratch http;
	struct reply r;
	__u32 sack[2 * MAX_SACK_BLOCKS]; /* start, end; host order */
	struct sack_seg sb[MAX_SACK_BLOCKS]; /* the same, decoded */
	struct data_ack dk;
	struct stcp_tx_desc tx;		 /* built by stcp_xdp */
	struct stcp_tx_desc tx_in;	 /* read by stcp_devmap_tx */
	struct tcp_opts o;		 /* handle_ack's */
	struct seg seg;			 /* stcp_xdp's */
	struct stcp_conn conn;		 /* an stcp_conns entry to write */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct req_scratch);
} stcp_req_scratch SEC(".maps");

static __always_inline struct req_scratch *scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&stcp_req_scratch, &zero);
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stcp_tx_state);
} stcp_tx_state SEC(".maps");

/*
 * Page-sized copies (include/stcp_tx.h): stcpd fills every slot with the
 * interface and stcp_devmap_tx. A broadcast through stcp_tx_dmN gives N
 * clones, each with a page of room, and then the original frame.
 */
#define TX_DEVMAP(name, slots)                                \
	struct {                                              \
		__uint(type, BPF_MAP_TYPE_DEVMAP);            \
		__uint(max_entries, slots);                   \
		__type(key, __u32);                           \
		__type(value, struct bpf_devmap_val);         \
	} name SEC(".maps")

TX_DEVMAP(stcp_tx_dm1, 2);
TX_DEVMAP(stcp_tx_dm2, 3);
TX_DEVMAP(stcp_tx_dm4, 5);
TX_DEVMAP(stcp_tx_dm8, 9);
TX_DEVMAP(stcp_tx_dm16, 17);
TX_DEVMAP(stcp_tx_dm32, 33);
TX_DEVMAP(stcp_tx_dm64, 65);

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&stcp_counters, &slot);

	if (v)
		*v += 1;
}

/* Every return path goes through here so each packet has one disposition. */
static __always_inline int finish(__u32 disposition, int action)
{
	count(disposition);
	return action;
}

/*
 * Hands the untouched frame to stcpd and drops it: a packet that needs an
 * evicted slot (stcpd loads the object and runs the frame through here
 * again, include/stcp_cache.h), or a segment of a request that spans
 * several (stcpd joins them). If the ring is full, the client's
 * retransmission will bring the frame again.
 */
static __noinline int report_frame(struct xdp_md *ctx, __u32 kind,
				   __u32 slot, __u64 first, __u64 last)
{
	struct req_scratch *rs = scratch();
	__u32 len = ctx->data_end - ctx->data, m;
	/* A range response not built yet, or an stcp_conns entry not here,
	 * counts as a cache miss. */
	int miss = kind != STCP_EV_REQ_FIRST && kind != STCP_EV_REQ_CONT &&
		   kind != STCP_EV_CONN_REQ;
	__u32 lost = miss || kind == STCP_EV_CONN_REQ ?
			     STCP_C_CACHE_MISS_LOST :
			     STCP_C_REQUEST_PART_LOST;
	struct stcp_miss_event *e;

	if (!len || len > STCP_MISS_FRAME_MAX)
		return finish(lost, XDP_DROP);
	e = bpf_ringbuf_reserve(&stcp_misses, sizeof(*e), 0);
	if (!e)
		return finish(lost, XDP_DROP);
	m = len - 1;
	asm volatile("" : "+r"(m));
	if (bpf_xdp_load_bytes(ctx, 0, e->frame,
			       (m & (STCP_MISS_FRAME_MAX - 1)) + 1)) {
		bpf_ringbuf_discard(e, 0);
		return finish(lost, XDP_DROP);
	}
	e->kind = kind;
	e->slot = slot;
	e->first = first;
	e->last = last;
	e->ifindex = ctx->ingress_ifindex;
	e->rxq = ctx->rx_queue_index;
	e->len = len;
	/* The segment stcp_xdp parsed is the one reported, and
	 * handle_request() left the entry it wants written in rs->conn. */
	if (rs && kind != STCP_EV_CACHE_MISS && kind != STCP_EV_RANGE)
		__builtin_memcpy(&e->flow, &rs->seg.flow, sizeof(e->flow));
	else
		__builtin_memset(&e->flow, 0, sizeof(e->flow));
	__builtin_memset(&e->conn, 0, sizeof(e->conn));
	if (rs && kind == STCP_EV_CONN_REQ) {
		__builtin_memcpy(&e->conn, &rs->conn, sizeof(e->conn));
	} else if (rs && kind == STCP_EV_CONN_MISS) {
		/* The entry that did not do, for stcpd to tell whether a
		 * newer one has come since. */
		struct stcp_conn *c =
			bpf_map_lookup_elem(&stcp_conns, &rs->seg.flow);

		if (c)
			__builtin_memcpy(&e->conn, c, sizeof(e->conn));
	}
	bpf_ringbuf_submit(e, 0);
	return finish(miss ? STCP_C_CACHE_MISS :
		      kind == STCP_EV_CONN_REQ ? STCP_C_CONN_SYNC :
						 STCP_C_REQUEST_PART,
		      XDP_DROP);
}

static __always_inline int report_miss(struct xdp_md *ctx, __u32 slot)
{
	return report_frame(ctx, STCP_EV_CACHE_MISS, slot, 0, 0);
}

/* For stcpd's choice of what to evict; written only when it changes, so
 * a popular slot's cache line is not bounced on every request. */
static __always_inline void note_slot_use(__u32 slot)
{
	__u32 *t = bpf_map_lookup_elem(&stcp_slot_use, &slot);
	__u32 now = (__u32)(bpf_ktime_get_coarse_ns() >> 30);

	if (t && *t != now)
		*t = now;
}

/* For stcpd's choice of slots to take back (STCP_SLOT_NONE): the current
 * key's generation, at least that of the request's handshake. */
static __always_inline void note_slot_gen(__u32 slot)
{
	__u32 zero = 0, cur, *g = bpf_map_lookup_elem(&stcp_slot_gen, &slot);
	struct stcp_cfg *cfg = bpf_map_lookup_elem(&stcp_cfg, &zero);
	struct stcp_key *k;

	if (!g || !cfg)
		return;
	cur = cfg->key_cur & 1;
	k = bpf_map_lookup_elem(&stcp_keys, &cur);
	if (k && (__s32)(k->gen - *g) > 0)
		*g = k->gen;
}

static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline int is_service(const struct stcp_flow *f)
{
	struct stcp_listen_key k = {};

	k.family = f->family;
	k.port = f->sport;
	k.addr[0] = f->saddr[0];
	k.addr[1] = f->saddr[1];
	k.addr[2] = f->saddr[2];
	k.addr[3] = f->saddr[3];
	return bpf_map_lookup_elem(&stcp_listen, &k) != NULL;
}

/* One option walk, on the stack so a bpf_loop callback can share it. */
struct opt_walk {
	__u8 buf[64];
	__u32 len;
	__u32 i;
	__u32 sack_at; /* offset of the first SACK block in buf */
	struct tcp_opts o;
};

/* Reads byte i of the walk buffer; the barrier keeps the mask, which the
 * verifier needs and the compiler would otherwise prove redundant. */
static __always_inline __u32 optb(const struct opt_walk *w, __u32 i)
{
	asm volatile("" : "+r"(i));
	return w->buf[i & 63];
}

static __always_inline __u32 optb32(const struct opt_walk *w, __u32 i)
{
	return (optb(w, i) << 24) | (optb(w, i + 1) << 16) |
	       (optb(w, i + 2) << 8) | optb(w, i + 3);
}

/*
 * One option per call. Malformed lengths end the walk, as in the kernel's
 * tcp_parse_options(): what came before still counts. A callback keeps the
 * verifier from unrolling the walk at every call site.
 */
static long walk_one_opt(__u32 n, struct opt_walk *w)
{
	__u32 i = w->i, kind, olen;

	(void)n;
	if (i >= w->len || i >= MAX_TCP_OPTLEN)
		return 1;
	kind = optb(w, i);
	if (kind == TCPOPT_EOL)
		return 1;
	if (kind == TCPOPT_NOP) {
		w->i = i + 1;
		return 0;
	}
	if (i + 1 >= w->len)
		return 1;
	olen = optb(w, i + 1);
	if (olen < 2 || i + olen > w->len)
		return 1;
	if (kind == TCPOPT_MSS && olen == 4) {
		w->o.has_mss = 1;
		w->o.mss = (optb(w, i + 2) << 8) | optb(w, i + 3);
	} else if (kind == TCPOPT_WINDOW && olen == 3) {
		w->o.has_ws = 1;
		w->o.wscale = optb(w, i + 2);
	} else if (kind == TCPOPT_SACK_PERM && olen == 2) {
		w->o.sack_ok = 1;
	} else if (kind == TCPOPT_SACK && olen >= 10 && (olen - 2) % 8 == 0) {
		w->o.nsack = (olen - 2) / 8;
		w->sack_at = i + 2;
	} else if (kind == TCPOPT_TIMESTAMP && olen == 10) {
		w->o.has_ts = 1;
		w->o.tsval = optb32(w, i + 2);
		w->o.tsecr = optb32(w, i + 6);
	}
	w->i = i + olen;
	return 0;
}

static __noinline int load_tcp_opts(struct xdp_md *ctx,
					 const struct seg *s,
					 struct tcp_opts *o)
{
	struct opt_walk w = {};
	__u32 len = s->opt_len;

	if (len == 0)
		return 0;
	if (len > MAX_TCP_OPTLEN)
		return -1;
	if (bpf_xdp_load_bytes(ctx, s->opt_off, w.buf, len))
		return -1;
	w.len = len;
	/* The two layouts almost every segment has, without the walk.
	 * An ACK's: NOP NOP TS. */
	if (len == 12 && w.buf[0] == TCPOPT_NOP && w.buf[1] == TCPOPT_NOP &&
	    w.buf[2] == TCPOPT_TIMESTAMP && w.buf[3] == 10) {
		o->has_ts = 1;
		o->tsval = optb32(&w, 4);
		o->tsecr = optb32(&w, 8);
		return 0;
	}
	/* Linux's SYN: MSS, SACK_PERM, TS, NOP, WS. */
	if (len == 20 && w.buf[0] == TCPOPT_MSS && w.buf[1] == 4 &&
	    w.buf[4] == TCPOPT_SACK_PERM && w.buf[5] == 2 &&
	    w.buf[6] == TCPOPT_TIMESTAMP && w.buf[7] == 10 &&
	    w.buf[16] == TCPOPT_NOP && w.buf[17] == TCPOPT_WINDOW &&
	    w.buf[18] == 3) {
		o->has_mss = 1;
		o->mss = (w.buf[2] << 8) | w.buf[3];
		o->sack_ok = 1;
		o->has_ts = 1;
		o->tsval = optb32(&w, 8);
		o->tsecr = optb32(&w, 12);
		o->has_ws = 1;
		o->wscale = w.buf[19];
		return 0;
	}
	bpf_loop(MAX_TCP_OPTLEN, walk_one_opt, &w, 0);
	*o = w.o;
	if (o->nsack) {
		struct req_scratch *rs = scratch();

		if (!rs || o->nsack > MAX_SACK_BLOCKS) {
			o->nsack = 0;
			return 0;
		}
		for (__u32 i = 0; i < MAX_SACK_BLOCKS; i++) {
			if (i >= o->nsack)
				break;
			rs->sack[2 * i] = optb32(&w, w.sack_at + 8 * i);
			rs->sack[2 * i + 1] = optb32(&w, w.sack_at + 8 * i + 4);
		}
	}
	return 0;
}

static __always_inline __u32 now_tick(void)
{
	return (__u32)(bpf_ktime_get_tai_ns() >> STCP_CLOCK_SHIFT);
}

static __always_inline __u32 mss_class(__u32 mss)
{
	if (mss >= STCP_MSS_CLASS_3)
		return 3;
	if (mss >= STCP_MSS_CLASS_2)
		return 2;
	if (mss >= STCP_MSS_CLASS_1)
		return 1;
	return 0;
}

/* The option byte of the cookie: what the client offered and we accepted. */
static __always_inline __u32 cookie_opts(const struct tcp_opts *o)
{
	__u32 opts = mss_class(o->has_mss ? o->mss : STCP_MSS_CLASS_0);

	if (o->sack_ok)
		opts |= STCP_OPT_SACK;
	if (o->has_ws) {
		__u32 ws = o->wscale > STCP_MAX_WSCALE ? STCP_MAX_WSCALE :
							 o->wscale;
		opts |= (ws + 1) << STCP_OPT_WS_SHIFT;
	}
	return opts;
}

/* The one option of every segment after the handshake: NOP NOP TS. */
static __always_inline void set_ts_option(struct reply *r, __u32 tsval,
					  __u32 tsecr)
{
	__u8 *ob = (__u8 *)r->opts;

	ob[0] = TCPOPT_NOP;
	ob[1] = TCPOPT_NOP;
	ob[2] = TCPOPT_TIMESTAMP;
	ob[3] = 10;
	r->opts[1] = bpf_htonl(tsval);
	r->opts[2] = bpf_htonl(tsecr);
	r->optlen = 12;
}

#define EMIT_ERR 1 /* the reply could not be built */
#define EMIT_TOO_BIG 2 /* the frame could not grow to the reply's size */

/* Ones' complement partial sum of len bytes of a page (any len <= 4096),
 * as csum_partial() would compute it for data at an even offset. */
static __always_inline __u64 csum_page(const struct stcp_page *pg, __u32 len,
				       __u64 sum)
{
	__u32 words = len & ~3u, base, rest;

	if (len > STCP_PAGE_SIZE)
		return sum;
	/* Whole 256-byte chunks at constant offsets, then one smaller. */
	for (__u32 i = 0; i < STCP_PAGE_SIZE / 256; i++) {
		if ((i + 1) * 256 > words)
			break;
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&pg->data[i * 256], 256,
				    sum);
	}
	base = words & ~255u;
	rest = words & 252u;
	asm volatile("" : "+r"(base));
	base &= 0xf00;
	if (rest)
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&pg->data[base], rest,
				    sum);
	/* The last 1-3 bytes, as little-endian 16-bit words. */
	rest = len & 3u;
	asm volatile("" : "+r"(words));
	words &= 0xffc;
	if (rest >= 1)
		sum += pg->data[words];
	if (rest >= 2)
		sum += (__u32)pg->data[(words + 1) & 0xfff] << 8;
	if (rest == 3)
		sum += pg->data[(words + 2) & 0xfff];
	return sum;
}

static __always_inline __u32 fold16(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u32)sum;
}

/* Copies len bytes of page pg_idx to the frame at off. */
static __always_inline int store_page(struct xdp_md *ctx, __u32 off,
				      __u32 pg_idx, __u32 len)
{
	struct stcp_page *pg;

	if (!len)
		return 0;
	pg = bpf_map_lookup_elem(&stcp_pages, &pg_idx);
	if (!pg || len > STCP_PAGE_SIZE)
		return -1;
	return bpf_xdp_store_bytes(ctx, off, pg->data, len);
}

/*
 * Turns the frame into the reply: headers written from scratch at fixed
 * offsets (IP options and IPv6 extension headers of the input are dropped),
 * the frame trimmed or grown to fit, checksums computed on the stack.
 */
static __noinline int emit_reply(struct xdp_md *ctx, const struct seg *s,
				      const struct reply *r)
{
	struct ethhdr eth;
	union {
		struct iphdr v4;
		struct ipv6hdr v6;
	} ih = {};
	__u32 tcp[10] = {};
	__be32 ph_tail[2] = {};
	struct tcphdr *th = (struct tcphdr *)tcp;
	__u32 thlen = sizeof(struct tcphdr) + r->optlen;
	__u32 plen = r->hdr_len + r->body_len;
	__u32 tcplen = thlen + plen;
	__u32 iplen, frame_len, cur_len;
	__u64 sum, psum = 0;

	if (r->optlen > 20 || r->hdr_len > STCP_PAGE_SIZE ||
	    r->body_len > STCP_PAGE_SIZE)
		return EMIT_ERR;
	if (r->in_frame) {
		psum = r->psum;
	} else if (plen) {
		struct stcp_page *pg;
		__u32 idx = r->hdr_page, b;

		pg = bpf_map_lookup_elem(&stcp_pages, &idx);
		if (!pg)
			return EMIT_ERR;
		psum = fold16(csum_page(pg, r->hdr_len, 0));
		if (r->body_len) {
			idx = r->body_page;
			pg = bpf_map_lookup_elem(&stcp_pages, &idx);
			if (!pg)
				return EMIT_ERR;
			b = fold16(csum_page(pg, r->body_len, 0));
			/* The body starts at an odd offset when the header
			 * length is odd: its 16-bit sum is byte-swapped. */
			if (r->hdr_len & 1)
				b = ((b & 0xff) << 8) | (b >> 8);
			psum += b;
		}
	}
	__builtin_memcpy(eth.h_dest, s->eth_src, 6);
	__builtin_memcpy(eth.h_source, s->eth_dst, 6);

	th->source = s->flow.sport;
	th->dest = s->flow.cport;
	th->seq = bpf_htonl(r->seq);
	th->ack_seq = bpf_htonl(r->ack);
	th->doff = thlen / 4;
	th->fin = !!(r->flags & TCP_FLAG_FIN);
	th->syn = !!(r->flags & TCP_FLAG_SYN);
	th->rst = !!(r->flags & TCP_FLAG_RST);
	th->psh = !!(r->flags & TCP_FLAG_PSH);
	th->ack = !!(r->flags & TCP_FLAG_ACK);
	th->window = bpf_htons(r->window);
	tcp[5] = r->opts[0];
	tcp[6] = r->opts[1];
	tcp[7] = r->opts[2];
	tcp[8] = r->opts[3];
	tcp[9] = r->opts[4];

	/* The pseudo header: the addresses as they sit in the IP header just
	 * built, then protocol and length. */
	if (s->flow.family == STCP_AF_INET) {
		struct iphdr *ip = &ih.v4;

		iplen = sizeof(*ip);
		ip->version = 4;
		ip->ihl = 5;
		ip->tot_len = bpf_htons(iplen + tcplen);
		ip->frag_off = bpf_htons(IP_DF);
		ip->ttl = REPLY_TTL;
		ip->protocol = IPPROTO_TCP_;
		ip->saddr = s->flow.saddr[0];
		ip->daddr = s->flow.caddr[0];
		ip->check = csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)ip,
						    sizeof(*ip), 0));
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&ip->saddr, 8, 0);
		ph_tail[0] = bpf_htonl(IPPROTO_TCP_ << 16 | tcplen);
		sum = bpf_csum_diff(NULL, 0, ph_tail, 4, sum);
		eth.h_proto = bpf_htons(ETH_P_IP);
	} else {
		struct ipv6hdr *ip6 = &ih.v6;

		iplen = sizeof(*ip6);
		ip6->version = 6;
		ip6->payload_len = bpf_htons(tcplen);
		ip6->nexthdr = IPPROTO_TCP_;
		ip6->hop_limit = REPLY_TTL;
		__builtin_memcpy(&ip6->saddr, s->flow.saddr, 16);
		__builtin_memcpy(&ip6->daddr, s->flow.caddr, 16);
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&ip6->saddr, 32, 0);
		ph_tail[0] = bpf_htonl(tcplen);
		ph_tail[1] = bpf_htonl(IPPROTO_TCP_);
		sum = bpf_csum_diff(NULL, 0, ph_tail, 8, sum);
		eth.h_proto = bpf_htons(ETH_P_IPV6);
	}
	sum = bpf_csum_diff(NULL, 0, (__be32 *)tcp, thlen, sum);
	th->check = csum_fold(sum + psum);

	frame_len = sizeof(eth) + iplen + thlen + plen;
	cur_len = bpf_xdp_get_buff_len(ctx);
	if (bpf_xdp_adjust_tail(ctx, (int)frame_len - (int)cur_len))
		return frame_len > cur_len ? EMIT_TOO_BIG : EMIT_ERR;
	if (bpf_xdp_store_bytes(ctx, 0, &eth, sizeof(eth)) ||
	    bpf_xdp_store_bytes(ctx, sizeof(eth), &ih, iplen) ||
	    bpf_xdp_store_bytes(ctx, sizeof(eth) + iplen, tcp, thlen))
		return EMIT_ERR;
	if (r->in_frame)
		return 0;
	if (store_page(ctx, sizeof(eth) + iplen + thlen, r->hdr_page,
		       r->hdr_len) ||
	    store_page(ctx, sizeof(eth) + iplen + thlen + r->hdr_len,
		       r->body_page, r->body_len))
		return EMIT_ERR;
	return 0;
}

static __always_inline int reply_or_count_failure(struct xdp_md *ctx,
						  const struct seg *s,
						  const struct reply *r,
						  __u32 disposition,
						  __u32 tx_counter)
{
	if (emit_reply(ctx, s, r))
		return finish(STCP_C_DROP_TX_FAILED, XDP_DROP);
	count(tx_counter);
	return finish(disposition, XDP_TX);
}

/* RFC 9293 3.10.7.1: a segment with ACK for no connection gets <SEQ=SEG.ACK><CTL=RST>. */
static __always_inline int send_rst(struct xdp_md *ctx, const struct seg *s,
				    __u32 disposition)
{
	struct reply r = {};

	r.seq = s->ack;
	r.flags = TCP_FLAG_RST;
	return reply_or_count_failure(ctx, s, &r, disposition, STCP_C_TX_RST);
}

static __noinline int handle_syn(struct xdp_md *ctx, struct seg *s,
				      const struct stcp_key *key,
				      const struct stcp_cfg *cfg)
{
	struct tcp_opts o = {};
	struct reply r = {};
	__u32 opts, tick, isn, n = 0, mss;
	__u8 *ob = (__u8 *)r.opts;
	__u64 h0, h1;

	if (load_tcp_opts(ctx, s, &o))
		return finish(STCP_C_DROP_MALFORMED, XDP_DROP);

	opts = cookie_opts(&o);
	tick = now_tick();
	h0 = stcp_flow_hash(key->k0, key->k1, &s->flow);
	h1 = stcp_handshake_mac(key->k0, key->k1, &s->flow, s->seq, tick, opts);
	isn = o.has_ts ? stcp_isn_ts(h0, h1) :
			 stcp_isn_nots(h0, h1, tick, opts);

	if (s->flow.family == STCP_AF_INET)
		mss = cfg->mss_v4 ? cfg->mss_v4 : STCP_DEFAULT_MSS_V4;
	else
		mss = cfg->mss_v6 ? cfg->mss_v6 : STCP_DEFAULT_MSS_V6;

	ob[0] = TCPOPT_MSS;
	ob[1] = 4;
	ob[2] = mss >> 8;
	ob[3] = mss & 0xff;
	n = 4;
	if (o.has_ts) {
		__u32 tsval = bpf_htonl(
			stcp_tsval_make(stcp_ts_pos_synack(isn), h1, tick, opts));
		__u32 tsecr = bpf_htonl(o.tsval);

		if (o.sack_ok) {
			ob[4] = TCPOPT_SACK_PERM;
			ob[5] = 2;
		} else {
			ob[4] = TCPOPT_NOP;
			ob[5] = TCPOPT_NOP;
		}
		ob[6] = TCPOPT_TIMESTAMP;
		ob[7] = 10;
		r.opts[2] = tsval;
		r.opts[3] = tsecr;
		n = 16;
	} else if (o.sack_ok) {
		ob[4] = TCPOPT_NOP;
		ob[5] = TCPOPT_NOP;
		ob[6] = TCPOPT_SACK_PERM;
		ob[7] = 2;
		n = 8;
	}
	/* n is 4, 8 or 16 here; the bound is for the verifier. */
	if (o.has_ws && n <= sizeof(r.opts) - 4) {
		/* Our own shift is 0: requests are small; the window that
		 * matters is the client's, which this enables. */
		ob[n] = TCPOPT_NOP;
		ob[n + 1] = TCPOPT_WINDOW;
		ob[n + 2] = 3;
		ob[n + 3] = 0;
		n += 4;
	}
	r.optlen = n;
	r.seq = isn;
	r.ack = s->seq + 1;
	r.flags = TCP_FLAG_SYN | TCP_FLAG_ACK;
	r.window = SYNACK_WINDOW;
	return reply_or_count_failure(ctx, s, &r, STCP_C_SYN_ANSWERED,
				      STCP_C_TX_SYNACK);
}

/* check_cookie() returns the result in the low bits and, for COOKIE_OK,
 * the key slot and option byte that matched above them. */
enum cookie_result {
	COOKIE_BAD = 0,
	COOKIE_OK = 1,
	COOKIE_STALE = 2,
};
#define COOKIE_RES_MASK 0x3
#define COOKIE_SLOT_SHIFT 8
#define COOKIE_OPTS_SHIFT 16

static __always_inline int mac_matches(__u64 h1, __u32 isn, int has_ts,
				       __u32 tsecr)
{
	if ((__u32)(h1 >> 56) != isn >> STCP_ISN_MAC_SHIFT)
		return 0;
	return !has_ts || (tsecr & STCP_TS_MAC_MASK) ==
				  ((__u32)h1 & STCP_TS_MAC_MASK);
}

/* The key slot new cookies are minted with; the other one still counts. */
static __always_inline __u32 current_key_slot(void)
{
	__u32 zero = 0;
	struct stcp_cfg *cfg = bpf_map_lookup_elem(&stcp_cfg, &zero);

	return cfg ? cfg->key_cur & 1 : 0;
}

/* The 24 flow hash bits of the flow under the key in slot, or -1 when
 * that slot holds no key. */
static __always_inline __s64 flow_f_under(__u32 slot,
					  const struct stcp_flow *flow)
{
	struct stcp_key *k = bpf_map_lookup_elem(&stcp_keys, &slot);

	if (!k || !k->valid)
		return -1;
	return (__u32)stcp_flow_hash(k->k0, k->k1, flow) & STCP_TS_F_MASK;
}

/*
 * Checks that isn (and, with timestamps, tsecr) is a cookie we minted for
 * this flow and client ISN, under the current or the previous key. The flow
 * hash bits reject a wrong key for the price of one hash.
 */
static __noinline int check_cookie(const struct seg *s, __u32 isn, __u32 cisn,
				   __u32 tsecr, __u32 flags)
{
	struct stcp_cookie_fields c;
	int has_ts = !!(flags & COOKIE_HAS_TS);
	__u32 now = now_tick(), cur_slot, tick;
	__u32 want_pos = (flags & COOKIE_CLOSE) ? stcp_ts_pos(isn + 1) :
						  stcp_ts_pos_synack(isn);

	stcp_cookie_fields(isn, has_ts, tsecr, &c);
	if (has_ts && c.pos != want_pos)
		return COOKIE_BAD;
	tick = stcp_tick_with_parity(now, c.tick_parity);

	cur_slot = current_key_slot();

	for (__u32 i = 0; i < STCP_NUM_KEYS; i++) {
		__u32 slot = cur_slot ^ i;
		struct stcp_key *k = bpf_map_lookup_elem(&stcp_keys, &slot);
		__u64 h1;

		if (!k || !k->valid)
			continue;
		if (((__u32)stcp_flow_hash(k->k0, k->k1, &s->flow) & c.f_mask) !=
		    c.f)
			continue;
		h1 = stcp_handshake_mac(k->k0, k->k1, &s->flow, cisn, tick,
					c.opts);
		if (mac_matches(h1, isn, has_ts, tsecr))
			return COOKIE_OK | (slot << COOKIE_SLOT_SHIFT) |
			       (c.opts << COOKIE_OPTS_SHIFT);
		/* Only to tell stale from forged in the counters. */
		h1 = stcp_handshake_mac(k->k0, k->k1, &s->flow, cisn, tick - 2,
					c.opts);
		if (mac_matches(h1, isn, has_ts, tsecr))
			return COOKIE_STALE;
	}
	return COOKIE_BAD;
}

/* The payload one segment may carry to this client: the MSS, less the
 * timestamp option when ts. */
static __always_inline __u32 seg_payload_max(const struct seg *s, __u32 opts,
					     __u32 ts)
{
	__u32 cls = opts & STCP_OPT_MSS_MASK, mss, ours;

	mss = cls == 3 ? STCP_MSS_CLASS_3 :
	      cls == 2 ? STCP_MSS_CLASS_2 :
	      cls == 1 ? STCP_MSS_CLASS_1 :
			 STCP_MSS_CLASS_0;
	ours = s->flow.family == STCP_AF_INET ? STCP_DEFAULT_MSS_V4 :
						STCP_DEFAULT_MSS_V6;
	return (mss < ours ? mss : ours) - (ts ? 12 : 0);
}

/* The fixed error response for a parser status. */
static __always_inline __u32 error_slot(__u32 status)
{
	switch (status) {
	case 405:
		return STCP_RESP_405;
	case 414:
		return STCP_RESP_414;
	case STCP_HTTP_INCOMPLETE: /* a stateless server cannot join segments */
	case 431:
		return STCP_RESP_431;
	default:
		return STCP_RESP_400;
	}
}

/*
 * A single-range GET (RFC 9110 14.2): the range against the object's size,
 * then its response's slot from stcp_ranges, or RANGE_ASK_DAEMON when
 * stcpd has not built it yet (the request's range is left in the request).
 */
#define RANGE_ASK_DAEMON 0xffffffffu
static __always_inline __u32 range_slot(struct stcp_http_req *req,
					const struct stcp_obj *obj)
{
	struct stcp_range_key k = { .slot = obj->resp[STCP_V_200_CLOSE] };
	__u64 size = obj->size;
	__u32 *slot;

	if (k.slot == STCP_SLOT_NONE)
		return STCP_SLOT_NONE;

	if (req->range_suffix) {
		if (!req->range_last) {
			k.first = k.last = STCP_RANGE_416;
		} else {
			k.first = req->range_last >= size ?
					  0 :
					  size - req->range_last;
			k.last = size - 1;
		}
	} else if (req->range_first >= size) {
		k.first = k.last = STCP_RANGE_416;
	} else {
		k.first = req->range_first;
		k.last = req->range_last >= size ? size - 1 : req->range_last;
	}
	if (!size)
		k.first = k.last = STCP_RANGE_416;
	slot = bpf_map_lookup_elem(&stcp_ranges, &k);
	if (slot)
		return *slot;
	req->range_first = k.first;
	req->range_last = k.last;
	return RANGE_ASK_DAEMON;
}

/* The response slot for a parsed request, or an error slot. */
static __always_inline __u32 response_slot(struct stcp_http_req *req)
{
	struct stcp_obj *obj;

	if (req->status != STCP_HTTP_OK)
		return error_slot(req->status);
	obj = bpf_map_lookup_elem(&stcp_objects, &req->key);
	if (!obj) {
		__builtin_memset(req->host, 0, sizeof(req->host));
		obj = bpf_map_lookup_elem(&stcp_objects, &req->key);
	}
	if (!obj)
		return STCP_RESP_404;
	/* RFC 9110 13.1.2: weak comparison; "*" matches any current entity.
	 * A list of several tags hashes differently and gets the 200, which
	 * is always a correct answer. */
	if (req->has_inm &&
	    (req->inm_star || req->if_none_match == obj->etag_hash ||
	     req->if_none_match == obj->etag_weak_hash))
		return obj->resp[req->keep_alive ? STCP_V_304_KEEPALIVE :
						   STCP_V_304_CLOSE];
	if (req->has_range && !req->range_bad && req->method == STCP_HTTP_GET &&
	    stcp_have_daemon)
		return range_slot(req, obj);
	return obj->resp[req->keep_alive ? STCP_V_200_KEEPALIVE :
					   STCP_V_200_CLOSE];
}

/* The client's receive window in bytes (the option byte has its scale). */
static __always_inline __u64 client_window(const struct seg *s, __u32 opts)
{
	__u32 code = stcp_opts_wscale_code(opts);

	return (__u64)s->window << (code ? (code - 1) & 15 : 0);
}

/* Segments [0, n) lie wholly below the right edge a + win, or all of them
 * when the last one does. */
static __always_inline __u32 segs_below_edge(__u64 a, __u64 win, __u32 total,
					     __u32 sz, __u32 nsegs)
{
	__u64 edge = a + win;

	if (edge >= total)
		return nsegs;
	return (__u32)(edge / sz);
}

static __always_inline __u32 min_u32(__u32 a, __u32 b)
{
	return a < b ? a : b;
}

static __always_inline __u64 min_u64(__u64 a, __u64 b)
{
	return a < b ? a : b;
}

static __always_inline __u32 max_u32(__u32 a, __u32 b)
{
	return a > b ? a : b;
}

/* The parts of a transmit descriptor that every segment of one response
 * to one client shares. */
static __always_inline void tx_desc_init(struct stcp_tx_desc *d,
					 const struct seg *s, __u32 isn1,
					 __u32 ts_low)
{
	__builtin_memcpy(d->eth_dst, s->eth_src, 6);
	__builtin_memcpy(d->eth_src, s->eth_dst, 6);
	d->family = s->flow.family;
	d->nseg = 0;
	d->nranges = 0;
	__builtin_memset(d->count, 0, sizeof(d->count));
	d->flags = 0;
	d->sport = s->flow.sport;
	d->dport = s->flow.cport;
	__builtin_memcpy(d->saddr, s->flow.saddr, 16);
	__builtin_memcpy(d->daddr, s->flow.caddr, 16);
	d->isn1 = isn1;
	d->req_end = s->seq + s->payload_len + !!(s->flags & TCP_FLAG_FIN);
	d->ts_low = ts_low;
	d->window = SYNACK_WINDOW;
}

static __always_inline void tx_desc_resp(struct stcp_tx_desc *d,
					 const struct stcp_resp *resp,
					 __u32 total, __u32 sz)
{
	d->seg_size = sz;
	d->total = total;
	d->nsegs = (total + sz - 1) / sz;
	d->hdr_page = resp->hdr_page;
	d->hdr_len = resp->hdr_len;
	d->body_page = resp->body_page;
	d->body_mask = resp->flags & STCP_RESP_WINDOWED ?
			       resp->body_npages - 1 :
			       0xffffffffu;
}

/* The tag of the ring page holding body page idx of a windowed body, or
 * NULL. */
static __always_inline __u32 *ring_tag(__u32 body_page, __u32 mask, __u32 idx)
{
	__u32 pg = body_page + (idx & mask);

	return bpf_map_lookup_elem(&stcp_page_tags, &pg);
}

struct ring_scan {
	__u32 body_page, mask, b0, b1, missing;
};

static long ring_scan_page(__u32 j, void *ctx)
{
	struct ring_scan *r = ctx;
	__u32 idx = r->b0 + j, pg, *t;

	if (idx > r->b1)
		return 1;
	pg = r->body_page + (idx & r->mask);
	t = bpf_map_lookup_elem(&stcp_page_tags, &pg);
	if (t && (*t & STCP_TAG_IDX_MASK) == idx + 1)
		return 0;
	r->missing = idx + 1;
	return 1;
}

/*
 * Whether the ring of a windowed body holds every body page that segments
 * [first, first + n) of a response of total bytes need: 0 if so, else the
 * first missing body page + 1, with *hi the last page they need. A range
 * of at most STCP_TX_MAX_SEGS segments of at most 1500 bytes spans at
 * most 25 pages. bpf_loop: the verifier walks the page check once.
 */
static __always_inline __u32 ring_missing(const struct stcp_resp *resp,
				     __u32 total, __u32 sz, __u32 first,
				     __u32 n, __u32 *hi)
{
	__u32 start = first * sz, end = min_u32((first + n) * sz, total);
	struct ring_scan r = {};

	if (!n || end <= resp->hdr_len)
		return 0;
	r.body_page = resp->body_page;
	r.mask = resp->body_npages - 1;
	r.b0 = (start > resp->hdr_len ? start - resp->hdr_len : 0) >> 12;
	r.b1 = (end - resp->hdr_len - 1) >> 12;
	*hi = r.b1;
	bpf_loop(26, ring_scan_page, &r, 0);
	return r.missing;
}

/* Whether stcpd has set up the page-sized copies (native mode only). */
static __always_inline int tx_copies_ready(void)
{
	__u32 zero = 0;
	struct bpf_devmap_val *dv = bpf_map_lookup_elem(&stcp_tx_dm64, &zero);

	return dv && dv->ifindex;
}

/*
 * Replaces the frame by the descriptor and broadcasts it to the smallest
 * devmap with enough clones (include/stcp_tx.h). Returns the XDP action, or
 * -1 if the frame could not be reshaped.
 */
static __noinline int tx_broadcast(struct xdp_md *ctx, struct stcp_tx_desc *d)
{
	struct stcp_tx_state *st;
	__u32 zero = 0, n = d->nseg;
	int delta;

	st = bpf_map_lookup_elem(&stcp_tx_state, &zero);
	if (!st || !n || n > STCP_TX_MAX_SEGS)
		return -1;
	d->tag = ++st->tag;
	d->magic = STCP_TX_MAGIC;
	delta = (int)sizeof(*d) - (int)bpf_xdp_get_buff_len(ctx);
	/* An ACK is shorter than the descriptor: grow into the headroom,
	 * which XDP always has (fact 6: the tail may have none). */
	if (delta > 0 && bpf_xdp_adjust_head(ctx, -delta))
		return -1;
	if (delta < 0 && bpf_xdp_adjust_tail(ctx, delta))
		return -1;
	d->ncopies = n == 1 ? 1 : n == 2 ? 2 : n <= 4 ? 4 : n <= 8 ? 8 :
		     n <= 16 ? 16 : n <= 32 ? 32 : 64;
	if (bpf_xdp_store_bytes(ctx, 0, d, sizeof(*d)))
		return -1;
	switch (d->ncopies) {
	case 1:
		return bpf_redirect_map(&stcp_tx_dm1, 0, BPF_F_BROADCAST);
	case 2:
		return bpf_redirect_map(&stcp_tx_dm2, 0, BPF_F_BROADCAST);
	case 4:
		return bpf_redirect_map(&stcp_tx_dm4, 0, BPF_F_BROADCAST);
	case 8:
		return bpf_redirect_map(&stcp_tx_dm8, 0, BPF_F_BROADCAST);
	case 16:
		return bpf_redirect_map(&stcp_tx_dm16, 0, BPF_F_BROADCAST);
	case 32:
		return bpf_redirect_map(&stcp_tx_dm32, 0, BPF_F_BROADCAST);
	default:
		return bpf_redirect_map(&stcp_tx_dm64, 0, BPF_F_BROADCAST);
	}
}

/* Appends segments [first, first + n) to the descriptor's ranges, within
 * STCP_TX_MAX_SEGS in all. */
static __always_inline void tx_add_range(struct stcp_tx_desc *d, __u32 first,
					 __u32 n)
{
	__u32 i = d->nranges, room = STCP_TX_MAX_SEGS - d->nseg;

	if (!n || i >= STCP_TX_RANGES || d->nseg >= STCP_TX_MAX_SEGS)
		return;
	if (n > room)
		n = room;
	d->first[i] = first;
	d->count[i] = n;
	d->nseg += n;
	d->nranges = i + 1;
}

static __always_inline int tx_send(struct xdp_md *ctx, struct stcp_tx_desc *d,
				   __u32 disposition)
{
	int act = tx_broadcast(ctx, d);

	if (act < 0)
		return finish(STCP_C_DROP_TX_FAILED, XDP_DROP);
	return finish(disposition, act);
}

/* Largest response served: the data TSval has 3 bits above the 24 that the
 * acknowledgement number gives. */
#define MAX_RESPONSE (1u << 27)

/*
 * Bytes at the start of a request's payload to skip: the CRLF our ACK lag
 * leaves unacknowledged at the end of the request before, which the
 * client's timer resends together with the next request (include/stcp_tx.h,
 * STCP_ACK_LAG). RFC 9112 2.2: a server should ignore an empty line before
 * the request line.
 */
static __always_inline __u32 request_lead(struct xdp_md *ctx,
					  const struct seg *s)
{
	__u8 b[2] = {};

	if (!s->payload_len ||
	    bpf_xdp_load_bytes(ctx, s->opt_off + s->opt_len, b,
			       s->payload_len >= 2 ? 2 : 1))
		return 0;
	if (b[0] == '\n')
		return 1;
	if (b[0] == '\r')
		return s->payload_len >= 2 && b[1] == '\n' ? 2 : 1;
	return 0;
}

/* Whether the segment's payload starts a GET or HEAD request: a request
 * of its own (pipelined), not the rest of a header section. */
static __always_inline int starts_request(struct xdp_md *ctx,
					  const struct seg *s)
{
	__u8 b[4] = {};

	if (s->payload_len < 4 ||
	    bpf_xdp_load_bytes(ctx, s->opt_off + s->opt_len, b, 4))
		return 0;
	return (b[0] == 'G' && b[1] == 'E' && b[2] == 'T' && b[3] == ' ') ||
	       (b[0] == 'H' && b[1] == 'E' && b[2] == 'A' && b[3] == 'D');
}

/* With --redis, sends a connection's entry as it now stands to stcpd for
 * Redis, without waiting (include/stcp_conn.h). */
static __noinline void conn_publish(const struct stcp_flow *flow,
				    const struct stcp_conn *c)
{
	struct stcp_conn_event *e;

	if (!stcp_conn_sync)
		return;
	e = bpf_ringbuf_reserve(&stcp_misses, sizeof(*e), 0);
	if (!e) {
		count(STCP_C_CONN_SYNC_LOST);
		return;
	}
	e->kind = STCP_EV_CONN_PUT;
	e->pad = 0;
	__builtin_memcpy(&e->flow, flow, sizeof(e->flow));
	__builtin_memcpy(&e->conn, c, sizeof(e->conn));
	bpf_ringbuf_submit(e, 0);
}

/* Writes an entry that closes the connection after the response that
 * starts at base, and publishes it; built in the scratch map, not on the
 * deep data path's stack. */
static __noinline void conn_put_close(const struct seg *s, __u32 base,
				      __u32 slot, __u32 total, __u32 opts)
{
	struct req_scratch *rs = scratch();
	struct stcp_conn *c;

	if (!rs)
		return;
	c = &rs->conn;
	__builtin_memset(c, 0, sizeof(*c));
	c->base = base;
	c->slot = slot;
	c->total = total;
	c->opts = opts;
	c->flags = STCP_CONN_F_CLOSE;
	if (!bpf_map_update_elem(&stcp_conns, &s->flow, c, BPF_ANY))
		conn_publish(&s->flow, c);
}

/*
 * A request: the first of a connection (docs/PROTOCOL.md 7.1), or, with
 * next (1 + the bytes before it, which data_after_response() measured), a
 * later one on a keep-alive connection (7.10), whose response
 * starts at the ACK number and is entered in stcp_conns. A response that
 * fits one segment goes out in the request's own frame when it has room
 * (with our FIN unless it is a keep-alive variant); anything else goes out
 * as page-sized copies: the first min(IW, window) segments now, the rest
 * as the client's ACKs release them.
 */
static __noinline int handle_request(struct xdp_md *ctx, struct seg *s,
				     const struct tcp_opts *o, __u32 opts,
				     __u32 next)
{
	__u32 n, slot, sz, ts_low, lead = 0, close, nsegs;
	struct stcp_http_scratch *sc;
	struct req_scratch *rs;
	struct stcp_tx_desc *d;
	struct stcp_resp *resp;
	__u64 total;
	struct reply *r;
	int err;

	rs = scratch();
	if (!rs)
		return send_rst(ctx, s, STCP_C_DATA_REFUSED);
	sc = &rs->http;
	r = &rs->r;
	__builtin_memset(r, 0, sizeof(*r));
	if (next)
		lead = (next - 1) & 3;
	n = s->payload_len - lead;
	if (n > STCP_HTTP_MAX_REQ)
		n = STCP_HTTP_MAX_REQ;
	if (n) {
		__u32 m = n - 1;

		/* 1..STCP_HTTP_MAX_REQ in a form the verifier follows. */
		asm volatile("" : "+r"(m));
		if (bpf_xdp_load_bytes(ctx, s->opt_off + s->opt_len + lead,
				       sc->buf,
				       (m & (STCP_HTTP_MAX_REQ - 1)) + 1))
			return send_rst(ctx, s, STCP_C_DATA_REFUSED);
	}
	stcp_http_parse(sc->buf, n, &sc->req);
	if (sc->req.status == STCP_HTTP_INCOMPLETE) {
		/* The rest is in later segments: stcpd joins them. Their
		 * sequence numbers fail the cookie; this entry vouches. */
		struct stcp_reasm_val rv = { .ack = s->ack, .seq = s->seq };

		if (bpf_map_update_elem(&stcp_reasm, &s->flow, &rv, BPF_ANY))
			return finish(STCP_C_REQUEST_PART_LOST, XDP_DROP);
		return report_frame(ctx, STCP_EV_REQ_FIRST, 0, 0, 0);
	}
	/* A client that closes its side wants nothing after this; one that
	 * sent more requests with this one (pipelining) is acknowledged all
	 * of them and gets the first answered and the close, so it sends
	 * the others again on a new connection (RFC 9112 9.3.2). */
	if ((s->flags & TCP_FLAG_FIN) || sc->req.extra) {
		if (sc->req.extra && sc->req.keep_alive)
			count(STCP_C_PIPELINE_REFUSED);
		sc->req.keep_alive = 0;
	}
	slot = response_slot(&sc->req);
	if (slot == STCP_SLOT_NONE) {
		struct stcp_obj *obj = bpf_map_lookup_elem(&stcp_objects,
							   &sc->req.key);

		if (obj && stcp_have_daemon) {
			count(STCP_C_SLOT_MISS);
			return report_frame(ctx, STCP_EV_SLOTS, STCP_SLOT_NONE,
					    obj->id, 0);
		}
		slot = STCP_RESP_503;
	}
	if (slot == RANGE_ASK_DAEMON) {
		struct stcp_obj *obj = bpf_map_lookup_elem(&stcp_objects,
							   &sc->req.key);

		/* response_slot() cleared the host if the any-host entry
		 * answered, so the key finds the object again. */
		if (!obj)
			return send_rst(ctx, s, STCP_C_DATA_REFUSED);
		return report_frame(ctx, STCP_EV_RANGE,
				    obj->resp[STCP_V_200_CLOSE],
				    sc->req.range_first, sc->req.range_last);
	}
	slot &= STCP_DTS_SLOT_MASK;
	resp = bpf_map_lookup_elem(&stcp_resps, &slot);
	if (resp && (resp->flags & STCP_RESP_EVICTED))
		return report_miss(ctx, slot);
	if (!resp || !(resp->flags & STCP_RESP_VALID))
		return send_rst(ctx, s, STCP_C_DATA_REFUSED);
	note_slot_use(slot);
	note_slot_gen(slot);
	close = !(resp->flags & STCP_RESP_KEEPALIVE);

	sz = seg_payload_max(s, opts, o->has_ts);
	total = resp->hdr_len;
	if (sc->req.method != STCP_HTTP_HEAD)
		total += resp->body_len;
	if (total > MAX_RESPONSE ||
	    (sc->req.method == STCP_HTTP_HEAD && total > sz))
		return send_rst(ctx, s, STCP_C_RESPONSE_TOO_BIG);
	if (total > sz && !(opts & STCP_OPT_SACK))
		/* Loss recovery without SACK needs the overflow state. */
		return send_rst(ctx, s, STCP_C_DATA_REFUSED);
	ts_low = stcp_data_tsval(0, 0, opts, slot);
	/* The segments the request releases: the initial window, or fewer if
	 * the client's window is smaller; one segment probes a shut one. */
	nsegs = ((__u32)total + sz - 1) / sz;
	n = max_u32(min_u32(min_u32(nsegs, STCP_IW),
			    segs_below_edge(0, client_window(s, opts),
					    (__u32)total, sz, nsegs)),
		    1);
	if (resp->flags & STCP_RESP_WINDOWED) {
		__u32 hi = 0, lo = ring_missing(resp, (__u32)total, sz, 0, n,
						&hi);

		if (lo) {
			count(STCP_C_WINDOW_MISS);
			return report_frame(ctx, STCP_EV_WINDOW, slot, lo - 1,
					    hi);
		}
	}
	/* A later response starts where no packet says (7.10); without
	 * timestamps, nothing carries the slot back at all (7.11). */
	if (next || !o->has_ts) {
		struct stcp_conn *c = &rs->conn;

		c->base = s->ack;
		c->req_start = s->seq + lead;
		c->slot = slot;
		c->total = (__u32)total;
		c->opts = opts;
		c->flags = (close ? STCP_CONN_F_CLOSE : 0) |
			   (o->has_ts ? 0 : STCP_CONN_F_NOTS);
		c->high = n;
		c->pad = 0;
		if (stcp_conn_sync) {
			/* Redis first (stcpd writes it there, and here, and
			 * runs this again): no other replica can see an ACK
			 * of this response before it can find the entry. */
			struct stcp_conn *here =
				bpf_map_lookup_elem(&stcp_conns, &s->flow);

			if (!here || here->base != c->base ||
			    here->req_start != c->req_start ||
			    here->slot != c->slot)
				return report_frame(ctx, STCP_EV_CONN_REQ, 0,
						    0, 0);
		} else if (bpf_map_update_elem(&stcp_conns, &s->flow, c,
					       BPF_ANY)) {
			return send_rst(ctx, s, STCP_C_CONN_MISSING);
		}
		ts_low = STCP_DTS_KA;
	}

	if (total <= sz) {
		r->hdr_page = resp->hdr_page;
		r->hdr_len = resp->hdr_len;
		r->body_page = resp->body_page;
		r->body_len = (__u32)total - resp->hdr_len;
		r->seq = s->ack;
		/* The whole segment, and the client's FIN if it came with
		 * it. */
		r->ack = s->seq + s->payload_len + !!(s->flags & TCP_FLAG_FIN);
		r->flags = TCP_FLAG_ACK | TCP_FLAG_PSH |
			   (close ? TCP_FLAG_FIN : 0);
		r->window = SYNACK_WINDOW;
		if (o->has_ts)
			set_ts_option(r, ts_low | (stcp_ts_pos(s->ack)
						   << STCP_TS_POS_SHIFT),
				      o->tsval);
		err = emit_reply(ctx, s, r);
		if (!err) {
			count(STCP_C_TX_DATA);
			return finish(next ? STCP_C_REQUEST_NEXT :
					     STCP_C_REQUEST_ANSWERED,
				      XDP_TX);
		}
		if (err != EMIT_TOO_BIG)
			return finish(STCP_C_DROP_TX_FAILED, XDP_DROP);
		/* Too big for this frame: a page-sized copy builds it. */
	}
	if (!tx_copies_ready())
		return send_rst(ctx, s, STCP_C_RESPONSE_TOO_BIG);

	d = &rs->tx;
	tx_desc_init(d, s, s->ack, ts_low);
	tx_desc_resp(d, resp, (__u32)total, sz);
	if (close)
		d->flags |= STCP_TX_F_CLOSE;
	if (!o->has_ts)
		d->flags |= STCP_TX_F_NO_TS;
	d->tsecr = o->tsval;
	if (d->nsegs > 1) {
		d->flags |= STCP_TX_F_ACK_NONE;
		d->req_end = s->seq;
	}
	tx_add_range(d, 0, n);
	return tx_send(ctx, d, next ? STCP_C_REQUEST_NEXT :
				      STCP_C_REQUEST_ANSWERED);
}

/* Sorts up to four blocks by start: a fixed network of compare-swaps. */
static __always_inline void sort_blocks(struct sack_seg *b)
{
#define CSWAP(i, j)                                  \
	if (b[j].lo < b[i].lo) {                     \
		__u32 lo = b[i].lo, hi = b[i].hi;    \
		b[i].lo = b[j].lo;                   \
		b[i].hi = b[j].hi;                   \
		b[j].lo = lo;                        \
		b[j].hi = hi;                        \
	}
	CSWAP(0, 1)
	CSWAP(2, 3)
	CSWAP(0, 2)
	CSWAP(1, 3)
	CSWAP(1, 2)
#undef CSWAP
}

/* Whether hole [.., he) is due for a resend: when the newest arrival,
 * segment e - 1, lies a multiple of period segments above it (the first
 * right above it, then about once a round trip). */
static __always_inline int hole_due(__u32 he, __u32 e, __u32 period)
{
	return e > he && !((e - 1 - he) % period);
}

/* Appends the segments of [from, stop) that no (sorted) block covers:
 * every hole, or (period != 0) the holes hole_due() picks. */
static __always_inline void add_holes(struct stcp_tx_desc *d,
				      const struct sack_seg *b, __u32 from,
				      __u32 stop, __u32 e, __u32 period)
{
	__u32 x = from;

	for (__u32 i = 0; i < MAX_SACK_BLOCKS; i++) {
		__u32 he;

		if (b[i].hi <= x || b[i].lo == b[i].hi)
			continue;
		if (b[i].lo >= stop)
			break;
		he = min_u32(b[i].lo, stop);
		if (he > x && (!period || hole_due(he, e, period)))
			tx_add_range(d, x, he - x);
		x = b[i].hi;
	}
	if (x < stop && (!period || hole_due(stop, e, period)))
		tx_add_range(d, x, stop - x);
}

/*
 * SACK recovery (section 7.4). The client lists first the block that the
 * segment which made it send this ACK joined, at its top. The hole right
 * below that block is resent while the block is young (see below); any
 * hole below it again when the newest arrival lies a multiple of the window
 * above the hole, about once a round trip while it stays open, without
 * any memory of having sent it. A probe
 * (the client's timer) resends every hole. Half the window stays in
 * flight above what the client holds: one new segment per arrival, after
 * the first half window of them (the halving of RFC 6675).
 */
static __noinline __u32 plan_sack(struct stcp_tx_desc *d,
				  const struct data_ack *k, struct sack_seg *b,
				  __u32 nb, __u32 probe)
{
	__u32 newest_lo = b[0].lo, e = b[0].hi, sacked = 0, top = 0, x;
	__u32 m = b[0].hi - b[0].lo;
	__u32 below = k->j; /* where the hole right below the newest starts */
	for (__u32 i = 0; i < MAX_SACK_BLOCKS; i++) {
		if (i >= nb) {
			b[i].lo = b[i].hi = 0xffffffffu; /* sorts last */
			continue;
		}
		sacked += b[i].hi - b[i].lo;
		top = max_u32(top, b[i].hi);
		if (i > 0 && b[i].hi <= newest_lo)
			below = max_u32(below, b[i].hi);
	}
	sort_blocks(b);
	if (probe)
		add_holes(d, b, k->j, top, 0, 0);
	else {
		/* A young newest block: the hole right below it is news.
		 * Its first sighting cannot be told from a later one (a
		 * client's GRO merges arrivals into one ACK), so every ACK
		 * while it is young resends it: at most STCP_SACK_YOUNG
		 * copies for a client that ACKs each arrival, the D-SACKs
		 * of which are not answered. */
		if (m <= STCP_SACK_YOUNG)
			add_holes(d, b, below, newest_lo, 0, 0);
		add_holes(d, b, k->j, below, e, stcp_cwnd(k->t));
	}
	if (d->nseg)
		count(STCP_C_TX_RETRANS);
	/* Half the window in flight above what the client holds (RFC 6675's
	 * pipe after halving): the first half window of arrivals releases
	 * nothing, then each releases one more segment. */
	x = k->j + sacked + stcp_cwnd(k->t) / 2;
	if (x - 1 >= top && x - 1 < k->rseg && x - 1 < k->nsegs)
		tx_add_range(d, x - 1, 1);
	if (!d->nseg && !probe &&
	    (x >= min_u32(k->rseg, k->nsegs) || top >= k->rseg)) {
		/* The window (or STCP_PAWS_SPAN) holds new data back, so
		 * the arrivals, and their ACKs, are about to dry up while
		 * the ACK point's hole stays open: the client's timer,
		 * which backs off, would be all that is left. Each of
		 * these last ACKs resends that hole instead. */
		tx_add_range(d, k->j, 1);
		count(STCP_C_TX_RETRANS);
	}
	return d->nseg;
}

/*
 * ACK clocking without SACK blocks (section 7.3): the ACK stands for
 * segments [t, j); what t's ACK released, f(t), is out already, unless the
 * client's window held it back, in which case the window's edge then is
 * estimated from the edge now (a window that grew faster than estimated
 * leaves a gap that SACK recovery fills; slower, a few duplicates).
 */
static __always_inline __u32 plan_clock(struct stcp_tx_desc *d,
					const struct data_ack *k, int probe)
{
	__u32 lo, hi, held;

	if (probe) {
		/* The client's retransmission timer fired: a lost tail, FIN
		 * or window update. Go back to its ACK point. */
		lo = k->j;
		hi = k->rseg;
	} else if (k->nots) {
		/* No TSecr to tell what was out: stcp_conns says (7.11). */
		lo = max_u32(k->j, k->high);
		hi = min_u32(stcp_release_end(k->j, k->nsegs), k->rseg);
	} else {
		/* A Linux receiver grows its window by up to two segments
		 * per segment received (tcp_grow_window), so the edge then
		 * was at least the edge now less three times the advance. */
		held = 3 * (k->j - k->t) + 1;
		held = k->wseg > held ? k->wseg - held : 0;
		lo = max_u32(k->j, min_u32(stcp_release_end(k->t, k->nsegs),
					   held));
		hi = min_u32(stcp_release_end(k->j, k->nsegs), k->rseg);
	}
	if (lo < hi)
		tx_add_range(d, lo, hi - lo);
	if (probe && d->nseg)
		count(STCP_C_TX_RETRANS);
	return d->nseg;
}

/* The response offset that ACK number ack stands for under flow hash f,
 * given the echoed TSval (section 7.2); back is set to how far below it
 * segment t's 1 KB block starts. */
static __always_inline __u64 ack_offset(__u32 ack, __u32 tsecr, __u32 f,
					__u32 *back)
{
	__u32 alo = (ack - 1 - f) & STCP_TS_F_MASK, dist;
	__u64 a;

	/* How far back (in 1 KB blocks) the echoed segment starts. */
	dist = (stcp_ts_pos(ack) - (tsecr >> STCP_TS_POS_SHIFT)) &
	       STCP_TS_POS_MASK;
	*back = (ack & 1023) + (dist << 10);
	a = (__u64)((tsecr >> STCP_DTS_HI_SHIFT) & STCP_DTS_HI_MASK) << 24 | alo;
	/* Segment t starts in [a - back, a - back + 1024) and its offset has
	 * the TSecr's bits 24-26: if that whole range lies below them, a is
	 * in the next 16 MB. */
	if (alo + 1023 < *back)
		a += 1u << 24;
	return a;
}

/* Whether a is a place an ACK of this response can point at: a segment
 * boundary, the end, or past our FIN. */
static __always_inline int ack_in_response(__u64 a, __u64 total, __u32 sz)
{
	return a <= total + 1 && (a == total || a == total + 1 || !(a % sz));
}

/* What decode_data_ack() returns besides 0 (ours). */
#define DECODE_NOT_OURS -1
#define DECODE_CONN_MISSING -2 /* a keep-alive TSecr, no stcp_conns entry */
#define DECODE_OLD -3	       /* an ACK from before the latest request */
#define DECODE_CONN_GONE -4    /* not in Redis either (stcpd said so) */

/*
 * A later response of a keep-alive connection (7.10), or any response to a
 * client without timestamps (7.11): stcp_conns has where it starts, its
 * slot, length and the option byte; the ACK number must still fall on one
 * of its boundaries. Sets k->a, total, resp and, with timestamps, back.
 */
static __always_inline int decode_conn_ack(const struct seg *s,
					   const struct tcp_opts *o,
					   struct data_ack *k, __u32 *back)
{
	struct stcp_conn *c = bpf_map_lookup_elem(&stcp_conns, &s->flow);
	struct stcp_resp *resp;
	__u32 slot, dist;

	if (!c)
		return DECODE_CONN_MISSING;
	/* stcpd has just found nothing in Redis for this flow: not ours.
	 * An older verdict does not stop it from looking again. */
	if (c->flags & STCP_CONN_F_GONE)
		return (__u32)(bpf_ktime_get_coarse_ns() >> 20) - c->high <
				       STCP_CONN_GONE_MS ?
			       DECODE_CONN_GONE :
			       DECODE_CONN_MISSING;
	/* Timestamps are on for the whole connection or off (RFC 7323). */
	if (!o->has_ts != !!(c->flags & STCP_CONN_F_NOTS))
		return DECODE_NOT_OURS;
	/* A late ACK of an earlier response on the connection. */
	if ((__s32)(s->ack - c->base) < 0)
		return DECODE_OLD;
	slot = c->slot & STCP_DTS_SLOT_MASK;
	resp = bpf_map_lookup_elem(&stcp_resps, &slot);
	if (!resp || !(resp->flags & (STCP_RESP_VALID | STCP_RESP_EVICTED)))
		return DECODE_NOT_OURS;
	k->opts = c->opts & STCP_OPT_MASK;
	k->sz = seg_payload_max(s, k->opts, o->has_ts);
	k->a = s->ack - c->base;
	k->total = c->total;
	if (k->total > MAX_RESPONSE)
		return DECODE_NOT_OURS;
	/* Past this response: another replica may have answered a later
	 * request, and Redis have its entry (include/stcp_conn.h). */
	if (stcp_conn_sync && k->a > (__u64)k->total + 1)
		return DECODE_CONN_MISSING;
	if (!ack_in_response(k->a, k->total, k->sz))
		return DECODE_NOT_OURS;
	k->resp = *resp;
	k->slot = slot;
	k->isn1 = c->base;
	k->close = !!(c->flags & STCP_CONN_F_CLOSE);
	k->ka = 1;
	k->req_start = c->req_start;
	k->nots = !o->has_ts;
	k->high = c->high;
	dist = (stcp_ts_pos(s->ack) - (o->tsecr >> STCP_TS_POS_SHIFT)) &
	       STCP_TS_POS_MASK;
	*back = (s->ack & 1023) + (dist << 10);
	return 0;
}

/*
 * The first response of a connection (7.2): the TSecr names the response
 * slot, MSS class, window scale and the offset bits above 24 of segment t;
 * the flow hash under the current key, else the previous one, turns the
 * ACK number into the offset acknowledged, which must be a segment
 * boundary, the end, or the FIN (of the GET response, or of a HEAD's).
 */
static __always_inline int decode_first_ack(const struct seg *s,
					    const struct tcp_opts *o,
					    struct data_ack *k, __u32 *back)
{
	__u32 tsecr = o->tsecr, slot = tsecr & STCP_DTS_SLOT_MASK;
	__u32 cur, found = 0;
	struct stcp_resp *resp;
	__u64 hi_t, alt;
	__u64 a = 0, total = 0;

	resp = bpf_map_lookup_elem(&stcp_resps, &slot);
	if (!resp || !(resp->flags & (STCP_RESP_VALID | STCP_RESP_EVICTED)))
		return DECODE_NOT_OURS;
	k->opts = stcp_dts_opts(tsecr);
	k->sz = seg_payload_max(s, k->opts, 1);
	cur = current_key_slot();
	for (__u32 i = 0; i < STCP_NUM_KEYS; i++) {
		__s64 f = flow_f_under(cur ^ i, &s->flow);

		if (f < 0)
			continue;
		a = ack_offset(s->ack, tsecr, (__u32)f, back);
		total = resp->hdr_len + resp->body_len;
		k->key_slot = cur ^ i;
		if (ack_in_response(a, total, k->sz)) {
			found = 1;
			break;
		}
		/* The position field tells the 16 MB carry only while t
		 * lies within 1 MB of a; after a long SACK recovery it may
		 * not. 2^24 is no multiple of any segment size, so at most
		 * one of a and the other carry is a boundary. */
		hi_t = (__u64)((tsecr >> STCP_DTS_HI_SHIFT) & STCP_DTS_HI_MASK)
		       << 24;
		alt = a >= hi_t + (1u << 24) ? a - (1u << 24) : a + (1u << 24);
		if (ack_in_response(alt, total, k->sz)) {
			a = alt;
			found = 1;
			break;
		}
		total = resp->hdr_len;
		if (a == total || a == total + 1) {
			found = 1;
			break;
		}
	}
	if (!found || total > MAX_RESPONSE)
		return DECODE_NOT_OURS;
	k->resp = *resp;
	k->slot = slot;
	k->a = a;
	k->total = (__u32)total;
	k->isn1 = s->ack - (__u32)a;
	k->close = !(resp->flags & STCP_RESP_KEEPALIVE);
	return 0;
}

/*
 * Decodes a segment after a response started (section 7.2, 7.10). Returns
 * 0 if it is ours, else DECODE_*.
 */
static __noinline int decode_data_ack(const struct seg *s,
				      const struct tcp_opts *o,
				      struct data_ack *k)
{
	__u32 back = 0;
	__u64 win;
	__s64 lo_off;
	int err;

	if (!o->has_ts) {
		err = decode_conn_ack(s, o, k, &back);
		/* Without timestamps nothing says an entry should be
		 * there: unless another replica may have it, a segment of
		 * no connection of ours. */
		if (err == DECODE_CONN_MISSING && !stcp_conn_sync)
			err = DECODE_NOT_OURS;
		if (err == DECODE_CONN_GONE)
			err = DECODE_NOT_OURS;
	} else if (stcp_dts_is_ka(o->tsecr))
		err = decode_conn_ack(s, o, k, &back);
	else
		err = decode_first_ack(s, o, k, &back);
	if (err)
		return err;
	k->nsegs = (k->total + k->sz - 1) / k->sz;
	k->j = k->a >= k->total ? k->nsegs : (__u32)k->a / k->sz;
	/* t: the segment starting in the echoed TSval's 1 KB block; if none
	 * does (a peer we do not understand, or no timestamps), assume the
	 * ACK is fresh. */
	k->t = k->j;
	lo_off = (__s64)k->a - back;
	if (k->nots) {
		/* no TSecr: t stays j, and high says what was out */
	} else if (lo_off <= 0) {
		if (lo_off > -1024)
			k->t = 0;
	} else {
		__u32 tt = ((__u32)lo_off + k->sz - 1) / k->sz;

		if ((__s64)tt * k->sz < lo_off + 1024)
			k->t = tt;
	}
	if (k->t > k->j)
		k->t = k->j;
	win = client_window(s, k->opts);
	k->rseg = segs_below_edge(k->a, min_u64(win, STCP_PAWS_SPAN), k->total,
				  k->sz, k->nsegs);
	/* The edge in segments, not capped at the response's end: what
	 * tells whether the window held a release back. */
	k->wseg = (__u32)min_u64((k->a + win) / k->sz, 0xffffffffu);
	return 0;
}

/* The data path's ranges against a windowed body's ring: 1 when a body
 * page is missing, with k->j the first missing and k->t the last page the
 * ranges need, which the caller reports. */
static __noinline int window_missing(const struct stcp_tx_desc *d,
				     struct data_ack *k)
{
	__u32 lo = 0xffffffffu, hi = 0;

	for (__u32 i = 0; i < STCP_TX_RANGES; i++) {
		__u32 h = 0, m;

		if (i >= d->nranges)
			break;
		m = ring_missing(&k->resp, k->total, k->sz, d->first[i],
				 d->count[i], &h);
		if (m && m - 1 < lo)
			lo = m - 1;
		if (h > hi)
			hi = h;
	}
	k->j = lo;
	k->t = hi;
	return lo != 0xffffffffu;
}

/*
 * Once fewer than an eighth of a ring lies loaded past the last page this
 * ACK sends (k->t), asks stcpd for the next quarter without holding the
 * packet, so that a download of a windowed body seldom waits for a load.
 * One request per quarter and download: the slot remembers where the last
 * one ended.
 */
static __noinline void window_prefetch(const struct data_ack *k)
{
	__u32 w = k->resp.body_npages, p = k->t + w / 8, pg, slot = k->slot;
	__u64 body_np = (k->resp.body_len + STCP_PAGE_SIZE - 1) >> 12;
	struct stcp_miss_event *e;
	__u32 *t, *last;

	if (w < 8 || p >= body_np)
		return;
	pg = k->resp.body_page + (p & (w - 1));
	t = bpf_map_lookup_elem(&stcp_page_tags, &pg);
	if (t && (*t & STCP_TAG_IDX_MASK) == p + 1)
		return;
	last = bpf_map_lookup_elem(&stcp_prefetch, &slot);
	/* Asked already, unless by a download a ring or more away. */
	if (!last || (p < *last && p + w > *last))
		return;
	*last = p + w / 4;
	e = bpf_ringbuf_reserve(&stcp_misses, sizeof(*e), 0);
	if (!e)
		return;
	e->kind = STCP_EV_WINDOW;
	e->slot = slot;
	e->first = p;
	e->last = p + w / 4 - 1;
	e->ifindex = 0;
	e->rxq = 0;
	e->len = 0;
	__builtin_memset(&e->flow, 0, sizeof(e->flow));
	__builtin_memset(&e->conn, 0, sizeof(e->conn));
	bpf_ringbuf_submit(e, 0);
	count(STCP_C_WINDOW_PREFETCH);
}

static __noinline int report_window(struct xdp_md *ctx,
				    const struct data_ack *k)
{
	count(STCP_C_WINDOW_MISS);
	return report_frame(ctx, STCP_EV_WINDOW, k->slot, k->j, k->t);
}

/*
 * SACK blocks of this ACK that name response data above the ACK point, as
 * segments. A D-SACK (RFC 2883: a first block below the ACK point, or
 * inside the second) is skipped, or, with echo_check, makes the whole ACK
 * one to drop (-1, see below).
 */
/* RFC 2883 4.1.2: a first block inside the second is a D-SACK too. */
static __always_inline int nb_dsack_inside(const struct req_scratch *rs,
					   const struct tcp_opts *o,
					   const struct data_ack *k, __u32 lo,
					   __u32 hi)
{
	__u32 lo2, hi2;

	if (o->nsack < 2)
		return 0;
	lo2 = rs->sack[2] - k->isn1;
	hi2 = rs->sack[3] - k->isn1;
	return lo >= lo2 && hi <= hi2;
}

static __always_inline int load_sack(const struct req_scratch *rs,
				     const struct tcp_opts *o,
				     struct data_ack *k, struct sack_seg *b,
				     int echo_check)
{
	__u32 nb = 0;

	for (__u32 i = 0; i < MAX_SACK_BLOCKS; i++) {
		__u32 lo, hi;

		if (i >= o->nsack)
			break;
		lo = rs->sack[2 * i] - k->isn1;
		hi = rs->sack[2 * i + 1] - k->isn1;
		if (i == 0 && (hi <= k->a || nb_dsack_inside(rs, o, k, lo, hi))) {
			/* The client sends a D-SACK for a duplicate's
			 * arrival, which mostly repeats an earlier ACK that
			 * was answered: answering again sends the same
			 * segments again, whose arrivals are duplicates in
			 * turn (seen: hundreds of copies of one segment).
			 * Dropped; a probe never is. */
			if (echo_check)
				return -1;
			continue;
		}
		if (lo >= hi || lo < k->a || hi > k->total + 1)
			continue;
		b[nb & 3].lo = lo / k->sz;
		b[nb & 3].hi = hi >= k->total ? k->nsegs : hi / k->sz;
		nb++;
	}
	return nb;
}

/* What handle_data_ack() leaves to its caller, whose stack is shallower. */
#define DATA_NOT_OURS -1
#define DATA_ANSWER_FIN -2 /* a pure ACK of the client's bytes (and FIN) */
#define DATA_NO_COPIES -3
#define DATA_MISS -4 /* the response's slot is evicted: a cache miss */
#define DATA_NEXT_REQUEST -5 /* keep-alive: the connection's next request */
#define DATA_CLOSE -6 /* keep-alive response done: our FIN and ACK */
#define DATA_CONN_MISSING -7
#define DATA_CONN_FETCH -8 /* the entry may be in Redis: ask stcpd */

/*
 * Whether a segment that carries more than the ACK lag's CRLF while a first
 * response is under way is the request resent whole (its burst was lost,
 * so the client's timer resends all of it): its sequence number is then
 * the client's ISN + 1, which the ISN's handshake MAC vouches for (section
 * 4; the option byte is the data TSval's, the tick now or the one before).
 * Otherwise it is the next request, sent before this response ended.
 */
static __noinline int first_request_resent(const struct seg *s,
					   const struct data_ack *k)
{
	__u32 slot = k->key_slot & 1, now = now_tick(), isn = k->isn1 - 1;
	struct stcp_key *key = bpf_map_lookup_elem(&stcp_keys, &slot);

	if (!key || !key->valid)
		return 0;
	for (__u32 i = 0; i < 2; i++) {
		__u64 h1 = stcp_handshake_mac(key->k0, key->k1, &s->flow,
					      s->seq - 1, now - i, k->opts);

		if ((__u32)(h1 >> 56) == isn >> STCP_ISN_MAC_SHIFT)
			return 1;
	}
	return 0;
}

/*
 * Whether a keep-alive response that ended without our FIN is to be closed
 * now: a request came before it ended (refuse_pipeline()).
 */
static __always_inline int conn_closing(const struct seg *s,
					const struct data_ack *k)
{
	struct stcp_conn *c;

	if (k->close)
		return 1;
	if (k->ka)
		return 0;
	c = bpf_map_lookup_elem(&stcp_conns, &s->flow);
	return c && c->base == k->isn1 && (c->flags & STCP_CONN_F_CLOSE);
}

/*
 * A request arrived while a keep-alive response was still under way
 * (pipelining, RFC 9112 9.3.2). Its bytes will be acknowledged by the
 * segments that follow, which cannot know where the request before it
 * ended, so it cannot be answered: the connection closes once the response
 * has arrived, and the client sends the request again on a new one
 * (first_request_resent() and the entry's req_start tell it from the
 * request resent whole). The first response has no stcp_conns entry; this
 * one is its only one.
 */
static __always_inline void refuse_pipeline(const struct seg *s,
					    struct data_ack *k)
{
	struct stcp_conn *c = bpf_map_lookup_elem(&stcp_conns, &s->flow);

	if (k->ka) {
		/* The entry is changed in place; only Redis needs telling. */
		if (c) {
			c->flags |= STCP_CONN_F_CLOSE;
			conn_publish(&s->flow, c);
		}
	} else {
		conn_put_close(s, k->isn1, k->slot, k->total, k->opts);
	}
	k->close = 1;
	count(STCP_C_PIPELINE_REFUSED);
}

/* refuse_pipeline() for a request that came before any of the first
 * response arrived: what conn_closing() reads is enough. */
static __always_inline void refuse_pipeline_early(const struct seg *s)
{
	conn_put_close(s, s->ack, 0, 0, 0);
	count(STCP_C_PIPELINE_REFUSED);
}

/*
 * The client has all of the response. At its end (a == total) our FIN is
 * not acknowledged: after a keep-alive response, none was sent, and the
 * next segment may be the next request, the client's FIN, the CRLF our ACK
 * lag left it holding, or the ACK that tells us it is done, which gets a
 * pure ACK of that CRLF so that a client that waits for it (Nagle) sends
 * its next request at once. A response that closes (a close variant, or
 * one whose keep-alive was refused) gets our FIN again. Past our FIN, the
 * client's FIN or its last request bytes get their ACK.
 */
static __always_inline int data_after_response(struct xdp_md *ctx,
					       struct seg *s,
					       const struct tcp_opts *o,
					       const struct data_ack *k)
{
	struct req_scratch *rs = scratch();
	__u32 lead;

	if (!rs)
		return finish(STCP_C_DROP_MALFORMED, XDP_DROP);
	if (k->a == k->total) {
		if ((s->flags & TCP_FLAG_FIN) || conn_closing(s, k))
			return DATA_CLOSE;
		lead = request_lead(ctx, s);
		if (s->payload_len > lead) {
			rs->dk.lead = lead; /* handle_request() skips them */
			return DATA_NEXT_REQUEST;
		}
		if (s->payload_len)
			return DATA_ANSWER_FIN;
		/* SACK blocks past this response: the next one is under way
		 * and its first segment lost. The client's sequence number
		 * is past its next request then, and acknowledging it would
		 * leave that request unanswered for good; unacknowledged,
		 * the client's timer resends it (as for a first request,
		 * before_first_segment()). */
		for (__u32 i = 0; i < MAX_SACK_BLOCKS; i++)
			if (i < o->nsack &&
			    rs->sack[2 * i] - k->isn1 >= k->total)
				return finish(STCP_C_DATA_ACK_IDLE, XDP_DROP);
		if (k->nsegs > 1)
			return DATA_ANSWER_FIN;
		return finish(STCP_C_RESPONSE_ACKED, XDP_DROP);
	}
	if (!(s->flags & TCP_FLAG_FIN) && !s->payload_len)
		return finish(STCP_C_RESPONSE_ACKED, XDP_DROP);
	return DATA_ANSWER_FIN;
}

/* Without timestamps, what has been sent is remembered (7.11): the end of
 * the highest range of this descriptor, if above what the entry says. */
static __always_inline void note_high(const struct seg *s,
				      const struct stcp_tx_desc *d)
{
	struct stcp_conn *c = bpf_map_lookup_elem(&stcp_conns, &s->flow);
	__u32 top = 0;

	if (!c)
		return;
	for (__u32 i = 0; i < STCP_TX_RANGES; i++)
		if (i < d->nranges)
			top = max_u32(top, d->first[i] + d->count[i]);
	if (top > c->high)
		c->high = top;
}

#define CLOCK_MONOTONIC_ 1

/* The stall timer fired: the client has sent nothing since its last ACK.
 * Hand that ACK to stcpd as a probe, and wait twice as long. */
static int stall_fired(void *map __attribute__((unused)),
		       struct stcp_flow *key, struct stcp_stall *v)
{
	struct stcp_stall_event *e;

	if (v->fires >= STCP_STALL_MAX_FIRES)
		return 0; /* the client's own timer is left */
	v->fires++;
	e = bpf_ringbuf_reserve(&stcp_misses, sizeof(*e), 0);
	if (e) {
		e->kind = STCP_EV_STALL;
		e->pad = 0;
		__builtin_memcpy(&e->flow, key, sizeof(e->flow));
		__builtin_memcpy(&e->a, &v->a, sizeof(e->a));
		bpf_ringbuf_submit(e, 0);
		count(STCP_C_STALL_PROBE);
	} else {
		count(STCP_C_STALL_LOST);
	}
	bpf_timer_start(&v->timer,
			((__u64)STCP_STALL_BASE_MS * 1000000) << (v->fires & 7),
			0);
	return 0;
}

/*
 * Keeps a long response's latest ACK and (re)arms its stall timer; the
 * response done, drops both. The probe stcpd builds from it carries one
 * request byte, which no client sends (its timer resends the two of the
 * ACK lag): that one leaves the timer as its callback set it.
 */
static __noinline void stall_note(struct xdp_md *ctx, const struct seg *s,
				  const struct tcp_opts *o,
				  const struct data_ack *k)
{
	struct req_scratch *rs;
	struct stcp_stall *v;

	/* A short response never has an entry: nothing to look up. */
	if (k->nsegs <= STCP_STALL_MIN_SEGS)
		return;
	if (k->a >= k->total) {
		bpf_map_delete_elem(&stcp_stalls, &s->flow);
		return;
	}
	rs = scratch();
	if (!rs || s->payload_len == 1)
		return;
	v = bpf_map_lookup_elem(&stcp_stalls, &s->flow);
	if (!v) {
		struct stcp_stall z = {};

		if (bpf_map_update_elem(&stcp_stalls, &s->flow, &z,
					BPF_NOEXIST))
			return;
		v = bpf_map_lookup_elem(&stcp_stalls, &s->flow);
		if (!v)
			return;
		bpf_timer_init(&v->timer, &stcp_stalls, CLOCK_MONOTONIC_);
		bpf_timer_set_callback(&v->timer, stall_fired);
	}
	v->a.seq = s->seq + s->payload_len + !!(s->flags & TCP_FLAG_FIN);
	v->a.ack = s->ack;
	v->a.tsval = o->tsval;
	v->a.tsecr = o->tsecr;
	v->a.has_ts = o->has_ts;
	v->a.nsack = o->nsack > MAX_SACK_BLOCKS ? MAX_SACK_BLOCKS : o->nsack;
	__builtin_memcpy(v->a.sack, rs->sack, sizeof(v->a.sack));
	v->a.ifindex = ctx->ingress_ifindex;
	v->a.window = s->window;
	__builtin_memcpy(v->a.eth_src, s->eth_src, 6);
	__builtin_memcpy(v->a.eth_dst, s->eth_dst, 6);
	v->fires = 0;
	bpf_timer_start(&v->timer, (__u64)STCP_STALL_BASE_MS * 1000000, 0);
}

/*
 * A segment of a connection whose response has started: an ACK that
 * releases more of it, a SACK that asks for holes, the rest of the request
 * resent by the client's timer, the next request, or the close. Returns an
 * XDP action or one of DATA_*.
 */
static __noinline int handle_data_ack(struct xdp_md *ctx, struct seg *s,
				      const struct tcp_opts *o)
{
	struct req_scratch *rs = scratch();
	struct stcp_tx_desc *d;
	struct data_ack *k;
	__u32 n, disp, probe;
	int nb, err;

	if (!rs)
		return -1;
	k = &rs->dk;
	__builtin_memset(k, 0, sizeof(*k));
	err = decode_data_ack(s, o, k);
	if (err == DECODE_OLD)
		return finish(STCP_C_DATA_ACK_IDLE, XDP_DROP);
	if (err == DECODE_CONN_MISSING)
		return stcp_conn_sync ? DATA_CONN_FETCH : DATA_CONN_MISSING;
	if (err == DECODE_CONN_GONE)
		return DATA_CONN_MISSING;
	if (err)
		return DATA_NOT_OURS;

	stall_note(ctx, s, o, k);
	if (k->a >= k->total)
		return data_after_response(ctx, s, o, k);
	if (k->resp.flags & STCP_RESP_EVICTED)
		return DATA_MISS;
	if (!tx_copies_ready())
		return DATA_NO_COPIES;

	/* The client's timer resent request bytes or its FIN: something of
	 * ours is lost with nothing in flight to tell (fact 7). */
	probe = s->payload_len > 0 || (s->flags & TCP_FLAG_FIN);
	/* More than the CRLF the ACK lag holds back, and not the request
	 * resent whole: the next request, before this response ended. It
	 * stays a probe, so a misjudged resend costs only the keep-alive. */
	if (s->payload_len && !k->close &&
	    s->payload_len > request_lead(ctx, s) &&
	    !(k->ka ? s->seq == k->req_start : first_request_resent(s, k)))
		refuse_pipeline(s, k);

	d = &rs->tx;
	tx_desc_init(d, s, k->isn1,
		     k->ka ? STCP_DTS_KA :
			     o->tsecr & ~(STCP_TS_POS_MASK << STCP_TS_POS_SHIFT |
					  STCP_DTS_HI_MASK
						  << STCP_DTS_HI_SHIFT));
	tx_desc_resp(d, &k->resp, k->total, k->sz);
	if (k->close)
		d->flags |= STCP_TX_F_CLOSE;
	if (k->nots)
		d->flags |= STCP_TX_F_NO_TS;
	d->tsecr = o->tsval;

	/* A probe carries the client's SACK state as it stands, a D-SACK
	 * included: it is never an echo, or a stall would never end. */
	nb = o->nsack ? load_sack(rs, o, k, rs->sb, !probe) : 0;
	if (nb < 0)
		return finish(STCP_C_DATA_DSACK, XDP_DROP);
	if (nb > 0) {
		n = plan_sack(d, k, rs->sb, nb, probe);
		disp = STCP_C_DATA_SACK;
	} else {
		n = plan_clock(d, k, probe);
		disp = probe ? STCP_C_DATA_PROBE : STCP_C_DATA_ACK_RELEASED;
	}
	if (!n)
		return finish(STCP_C_DATA_ACK_IDLE, XDP_DROP);
	if (k->resp.flags & STCP_RESP_WINDOWED) {
		if (window_missing(d, k))
			return report_window(ctx, k);
		window_prefetch(k);
	}
	if (k->nots)
		note_high(s, d);
	return tx_send(ctx, d, disp);
}

/* FIN before any data. The SYN-ACK's cookie standing for ISN + 1 is
 * PAWS-newer and still carries the MAC. */
static __noinline int answer_close(struct xdp_md *ctx, struct seg *s,
				   const struct tcp_opts *o)
{
	struct reply r = {};

	r.seq = s->ack;
	r.ack = s->seq + 1;
	r.flags = TCP_FLAG_FIN | TCP_FLAG_ACK;
	r.window = SYNACK_WINDOW;
	if (o->has_ts)
		set_ts_option(&r, stcp_tsval_at(o->tsecr, s->ack), o->tsval);
	return reply_or_count_failure(ctx, s, &r, STCP_C_FIN_ANSWERED,
				      STCP_C_TX_ACK);
}

/* The client's FIN, or its last request bytes, once it has all of our
 * response: its ACK, with the TSval standing for the sequence number after
 * our response (and FIN); with fin, our FIN too, which ends a keep-alive
 * connection. */
static __noinline int answer_fin_after_response(struct xdp_md *ctx,
						struct seg *s,
						const struct tcp_opts *o,
						__u32 fin)
{
	struct reply r = {};

	r.seq = s->ack;
	r.ack = s->seq + s->payload_len + !!(s->flags & TCP_FLAG_FIN);
	r.flags = TCP_FLAG_ACK | (fin ? TCP_FLAG_FIN : 0);
	r.window = SYNACK_WINDOW;
	if (o->has_ts)
		set_ts_option(&r, stcp_tsval_at(o->tsecr, s->ack), o->tsval);
	return reply_or_count_failure(ctx, s, &r,
				      s->flags & TCP_FLAG_FIN ?
					      STCP_C_FIN_ANSWERED :
				      s->payload_len ? STCP_C_DATA_PROBE :
						       STCP_C_RESPONSE_ACKED,
				      STCP_C_TX_ACK);
}

/*
 * A client that lost our first segment but got later ones acknowledges
 * ISN + 1 with SACK blocks and echoes the SYN-ACK's TSval (its ts_recent
 * moves only in order), from a sequence number past its request, so neither the
 * handshake MAC (it needs the client ISN) nor the data TSval applies. The
 * ISN's flow hash and the SYN-ACK's position field still tell our own
 * connection: it is dropped, not reset; the client's timer resends the
 * request, which is answered again.
 */
static __noinline int before_first_segment(const struct seg *s,
					   const struct tcp_opts *o)
{
	__u32 isn = s->ack - 1, cur;

	if (o->tsecr >> STCP_TS_POS_SHIFT != stcp_ts_pos_synack(isn))
		return 0;
	cur = current_key_slot();
	for (__u32 i = 0; i < STCP_NUM_KEYS; i++)
		if (flow_f_under(cur ^ i, &s->flow) ==
		    (__s64)(isn & STCP_TS_F_MASK))
			return 1;
	return 0;
}

/*
 * Without timestamps the cookie is the ISN alone, of which 24 bits are
 * checked: about one ACK in 2^22 of a long response would pass for a
 * handshake ACK (or for a stale one, and be reset). Such a connection has
 * an entry (7.11): an ACK inside its response, from just after its
 * request, is a data ACK and never tried as a cookie. A new connection on
 * the same ports passes for one only if both its ISNs land there.
 */
static __always_inline int nots_response_ack(const struct seg *s)
{
	struct stcp_conn *c = bpf_map_lookup_elem(&stcp_conns, &s->flow);
	__u32 a;

	if (!c || (c->flags & (STCP_CONN_F_NOTS | STCP_CONN_F_GONE)) !=
			  STCP_CONN_F_NOTS)
		return 0;
	a = s->ack - c->base;
	/* a == 0 acknowledges nothing: a resent request or handshake ACK,
	 * which the cookie tells. */
	return a && a <= c->total + 1 &&
	       s->seq - c->req_start <= STCP_REASM_MAX + 1;
}

/*
 * A segment that is not a SYN. Before any data has flowed, the client's
 * sequence and acknowledgement numbers still point at both ISNs: seq - 1 is
 * its ISN and ack - 1 ours, or seq - 2 and ack - 2 once both FINs are out.
 */
static __noinline int handle_ack(struct xdp_md *ctx, struct seg *s)
{
	struct req_scratch *rs = scratch();
	__u32 ts_flag, match;
	struct tcp_opts *o;
	int res, data_ack;

	if (!(s->flags & TCP_FLAG_ACK))
		return finish(STCP_C_DROP_BAD_FLAGS, XDP_DROP);
	if (!rs)
		return finish(STCP_C_DROP_MALFORMED, XDP_DROP);
	/* In the scratch map, not on the stack: the data path's call chain
	 * is deep. */
	o = &rs->o;
	__builtin_memset(o, 0, sizeof(*o));
	if (load_tcp_opts(ctx, s, o))
		return finish(STCP_C_DROP_MALFORMED, XDP_DROP);
	ts_flag = o->has_ts ? COOKIE_HAS_TS : 0;

	data_ack = !o->has_ts && nots_response_ack(s);
	match = data_ack ? COOKIE_BAD :
			   check_cookie(s, s->ack - 1, s->seq - 1, o->tsecr,
					ts_flag);
	res = match & COOKIE_RES_MASK;
	if (res == COOKIE_OK) {
		if (s->payload_len)
			return handle_request(ctx, s, o,
					      (match >> COOKIE_OPTS_SHIFT) &
						      STCP_OPT_MASK,
					      0);
		if (!(s->flags & TCP_FLAG_FIN))
			return finish(STCP_C_HANDSHAKE_DONE, XDP_DROP);
		return answer_close(ctx, s, o);
	}

	/* The last ACK of a close, acknowledging our FIN. */
	if (res == COOKIE_BAD && !data_ack && !s->payload_len &&
	    !(s->flags & TCP_FLAG_FIN)) {
		int res2 = check_cookie(s, s->ack - 2, s->seq - 2, o->tsecr,
					ts_flag | COOKIE_CLOSE) &
			   COOKIE_RES_MASK;

		if (res2 == COOKIE_OK)
			return finish(STCP_C_HANDSHAKE_DONE, XDP_DROP);
		if (res2 == COOKIE_STALE)
			res = COOKIE_STALE;
	}

	if (res == COOKIE_BAD && s->payload_len) {
		struct stcp_reasm_val *rv =
			bpf_map_lookup_elem(&stcp_reasm, &s->flow);

		/* Not its first segment: stcpd runs that again with the
		 * joined request, and on a keep-alive connection it fails
		 * the cookie too. */
		if (rv && rv->ack == s->ack && rv->seq != s->seq)
			return report_frame(ctx, STCP_EV_REQ_CONT, 0, 0, 0);
	}
	if (res == COOKIE_BAD) {
		int after = handle_data_ack(ctx, s, o);

		if (after >= 0)
			return after;
		if (after == DATA_ANSWER_FIN || after == DATA_CLOSE)
			return answer_fin_after_response(ctx, s, o,
							 after == DATA_CLOSE);
		if (after == DATA_NEXT_REQUEST)
			return handle_request(ctx, s, o, rs->dk.opts,
					      rs->dk.lead + 1);
		if (after == DATA_CONN_MISSING)
			return send_rst(ctx, s, STCP_C_CONN_MISSING);
		if (after == DATA_CONN_FETCH)
			return report_frame(ctx, STCP_EV_CONN_MISS, 0, 0, 0);
		if (after == DATA_NO_COPIES)
			return send_rst(ctx, s, STCP_C_RESPONSE_TOO_BIG);
		if (after == DATA_MISS)
			return report_miss(ctx, o->tsecr & STCP_DTS_SLOT_MASK);
		if (o->has_ts && (o->nsack || s->payload_len) &&
		    before_first_segment(s, o)) {
			/* With --redis, header bytes after a first segment
			 * that another replica saw (docs/PROTOCOL.md 7.8):
			 * stcpd joins them through Redis. */
			if (s->payload_len && stcp_conn_sync &&
			    !starts_request(ctx, s)) {
				count(STCP_C_REQUEST_PART_ELSEWHERE);
				return report_frame(ctx, STCP_EV_REQ_CONT, 0, 0,
						    0);
			}
			/* A request sent before any of the answer to the
			 * first arrived (pipelining): see refuse_pipeline(). */
			if (s->payload_len)
				refuse_pipeline_early(s);
			return finish(STCP_C_DATA_ACK_IDLE, XDP_DROP);
		}
	}
	return send_rst(ctx, s, res == COOKIE_STALE ? STCP_C_STALE_COOKIE :
						      STCP_C_BAD_COOKIE);
}

/* Parses IPv4 up to the TCP header. Returns a disposition or 0 to go on. */
static __always_inline __u32 parse_ipv4(void *data, void *data_end,
					struct seg *s, __u32 *l4_off,
					__u32 *l4_len, int *frag)
{
	struct iphdr *ip = data + sizeof(struct ethhdr);
	__u32 ihl, tot;

	if ((void *)(ip + 1) > data_end)
		return STCP_C_PASS_MALFORMED;
	if (ip->version != 4 || ip->ihl < 5)
		return STCP_C_PASS_MALFORMED;
	if (ip->protocol != IPPROTO_TCP_)
		return STCP_C_PASS_NON_TCP;
	ihl = ip->ihl * 4;
	tot = bpf_ntohs(ip->tot_len);
	if (tot < ihl || (void *)ip + tot > data_end)
		return STCP_C_PASS_MALFORMED;
	if (ip->frag_off & bpf_htons(IP_OFFSET))
		return STCP_C_PASS_FRAGMENT; /* no port to tell; see PROTOCOL.md */
	*frag = !!(ip->frag_off & bpf_htons(IP_MF));
	s->flow.family = STCP_AF_INET;
	s->flow.caddr[0] = ip->saddr;
	s->flow.saddr[0] = ip->daddr;
	*l4_off = sizeof(struct ethhdr) + ihl;
	*l4_len = tot - ihl;
	return 0;
}

static __always_inline __u32 parse_ipv6(void *data, void *data_end,
					struct seg *s, __u32 *l4_off,
					__u32 *l4_len, int *frag)
{
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
	__u32 off = sizeof(struct ethhdr) + sizeof(*ip6);
	__u32 plen;
	__u8 nh;

	if ((void *)(ip6 + 1) > data_end)
		return STCP_C_PASS_MALFORMED;
	if (ip6->version != 6)
		return STCP_C_PASS_MALFORMED;
	plen = bpf_ntohs(ip6->payload_len);
	if ((void *)(ip6 + 1) + plen > data_end)
		return STCP_C_PASS_MALFORMED;
	nh = ip6->nexthdr;

	for (int i = 0; i < MAX_IPV6_EXTHDRS; i++) {
		__u8 *eh = data + off;
		__u32 hlen;

		if (nh != 0 && nh != 43 && nh != 60 && nh != 44)
			break;
		if ((void *)(eh + 8) > data_end)
			return STCP_C_PASS_MALFORMED;
		if (nh == 44) {
			/* Fragment header: only the first fragment has ports.
			 * An atomic fragment (offset 0, no M flag) is a whole
			 * packet (RFC 8200 4.5, RFC 6946). */
			if ((eh[2] << 8 | (eh[3] & 0xf8)) != 0)
				return STCP_C_PASS_FRAGMENT;
			*frag = eh[3] & 1;
			hlen = 8;
		} else {
			hlen = (eh[1] + 1) * 8;
		}
		nh = eh[0];
		off += hlen;
	}
	if (nh != IPPROTO_TCP_)
		return STCP_C_PASS_NON_TCP;
	if (off > sizeof(struct ethhdr) + sizeof(*ip6) + plen)
		return STCP_C_PASS_MALFORMED;
	s->flow.family = STCP_AF_INET6;
	__builtin_memcpy(s->flow.caddr, &ip6->saddr, 16);
	__builtin_memcpy(s->flow.saddr, &ip6->daddr, 16);
	*l4_off = off;
	*l4_len = sizeof(struct ethhdr) + sizeof(*ip6) + plen - off;
	return 0;
}

SEC("xdp")
int stcp_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct req_scratch *rs;
	struct seg *s;
	__u32 l4_off = 0, l4_len = 0, disp, zero = 0, doff;
	struct tcphdr *th;
	struct stcp_cfg *cfg;
	struct stcp_key *key;
	int frag = 0;

	count(STCP_C_RX_PACKETS);
	/* The parsed segment lives in the scratch map: the deepest call
	 * chain (request, reply) needs the stack. */
	rs = scratch();
	if (!rs)
		return finish(STCP_C_PASS_MALFORMED, XDP_PASS);
	s = &rs->seg;
	__builtin_memset(s, 0, sizeof(*s));
	if ((void *)(eth + 1) > data_end)
		return finish(STCP_C_PASS_MALFORMED, XDP_PASS);

	if (eth->h_proto == bpf_htons(ETH_P_IP))
		disp = parse_ipv4(data, data_end, s, &l4_off, &l4_len, &frag);
	else if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		disp = parse_ipv6(data, data_end, s, &l4_off, &l4_len, &frag);
	else
		return finish(STCP_C_PASS_NON_IP, XDP_PASS);
	if (disp)
		return finish(disp, XDP_PASS);

	/* Ports are needed to tell whether this is ours at all. */
	if (l4_off > 1500)
		return finish(STCP_C_PASS_MALFORMED, XDP_PASS);
	th = data + l4_off;
	if ((void *)(th + 1) > data_end || l4_len < sizeof(*th))
		return finish(STCP_C_PASS_MALFORMED, XDP_PASS);
	s->flow.cport = th->source;
	s->flow.sport = th->dest;
	if (!is_service(&s->flow))
		return finish(STCP_C_PASS_OTHER_DEST, XDP_PASS);

	/* From here on the packet is ours: answer it or drop it, never pass
	 * it up, or the kernel would reset the connection. */
	if (frag)
		return finish(STCP_C_DROP_FRAGMENT, XDP_DROP);
	doff = th->doff * 4;
	if (doff < sizeof(*th) || doff > l4_len)
		return finish(STCP_C_DROP_MALFORMED, XDP_DROP);

	__builtin_memcpy(s->eth_src, eth->h_source, 6);
	__builtin_memcpy(s->eth_dst, eth->h_dest, 6);
	s->seq = bpf_ntohl(th->seq);
	s->ack = bpf_ntohl(th->ack_seq);
	s->flags = ((__u8 *)th)[13];
	s->opt_off = l4_off + sizeof(*th);
	s->opt_len = doff - sizeof(*th);
	s->payload_len = l4_len - doff;
	s->window = bpf_ntohs(th->window);

	if (s->flags & TCP_FLAG_RST)
		return finish(STCP_C_DROP_RST, XDP_DROP);

	cfg = bpf_map_lookup_elem(&stcp_cfg, &zero);
	if (!cfg)
		return finish(STCP_C_DROP_NO_KEY, XDP_DROP);

	if (s->flags & TCP_FLAG_SYN) {
		__u32 slot = cfg->key_cur & 1;

		if (s->flags & (TCP_FLAG_ACK | TCP_FLAG_FIN))
			return finish(STCP_C_DROP_BAD_FLAGS, XDP_DROP);
		key = bpf_map_lookup_elem(&stcp_keys, &slot);
		if (!key || !key->valid)
			return finish(STCP_C_DROP_NO_KEY, XDP_DROP);
		return handle_syn(ctx, s, key, cfg);
	}
	return handle_ack(ctx, s);
}

/* Copies len bytes at offset q of page pidx to the frame at foff, in
 * power-of-two pieces the verifier can bound (len and q + len at most one
 * page). Global: the verifier checks it once, not at each of the three
 * places stcp_devmap_tx copies from. */
__noinline int copy_piece(struct xdp_md *ctx, __u32 foff, __u32 pidx, __u32 q,
			  __u32 len)
{
	struct stcp_page *pg;

	if (!len)
		return 0;
	pg = bpf_map_lookup_elem(&stcp_pages, &pidx);
	if (!pg || len > 2047 || q > STCP_PAGE_SIZE)
		return -1;
#define COPY_STEP(b)                                                        \
	if (len & (b)) {                                                    \
		if (q > STCP_PAGE_SIZE - (b) ||                             \
		    bpf_xdp_store_bytes(ctx, foff, &pg->data[q], (b)))      \
			return -1;                                          \
		q += (b);                                                   \
		foff += (b);                                                \
	}
	COPY_STEP(1024)
	COPY_STEP(512)
	COPY_STEP(256)
	COPY_STEP(128)
	COPY_STEP(64)
	COPY_STEP(32)
	COPY_STEP(16)
	COPY_STEP(8)
	COPY_STEP(4)
	COPY_STEP(2)
	COPY_STEP(1)
#undef COPY_STEP
	return 0;
}

/* Ones' complement sum of len bytes of the frame from start (even), as
 * csum_partial() would compute it; -1 if they are not all there.
 * bpf_csum_diff() takes at most 512 bytes at a time. */
static __always_inline __s64 csum_frame(struct xdp_md *ctx, __u32 start,
					__u32 len)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 sum = 0;
	__u8 *p;

	if (start > 128 || len > 2047)
		return -1;
	p = data + start;
	for (__u32 i = 0; i < 8; i++) {
		if (len < 256)
			break;
		if ((void *)(p + 256) > end)
			return -1;
		sum = bpf_csum_diff(NULL, 0, (__be32 *)p, 256, sum);
		p += 256;
		len -= 256;
	}
#define CSUM_STEP(b)                                                      \
	if (len & (b)) {                                                  \
		if ((void *)(p + (b)) > end)                              \
			return -1;                                        \
		sum = bpf_csum_diff(NULL, 0, (__be32 *)p, (b), sum);      \
		p += (b);                                                 \
	}
	CSUM_STEP(128)
	CSUM_STEP(64)
	CSUM_STEP(32)
	CSUM_STEP(16)
	CSUM_STEP(8)
	CSUM_STEP(4)
#undef CSUM_STEP
	/* The last 1-3 bytes, as little-endian 16-bit words. */
	if (len & 2) {
		if ((void *)(p + 2) > end)
			return -1;
		sum += p[0] | (__u32)p[1] << 8;
		p += 2;
	}
	if (len & 1) {
		if ((void *)(p + 1) > end)
			return -1;
		sum += p[0];
	}
	return fold16(sum);
}

/* The tags of a windowed body's pages idx and, with two, idx + 1, or 0
 * if the ring does not hold them. */
static __noinline __u64 ring_tags(const struct stcp_tx_desc *d, __u32 idx,
				  __u32 two)
{
	__u32 *t1 = ring_tag(d->body_page, d->body_mask, idx), *t2;
	__u64 v;

	if (!t1 || (*t1 & STCP_TAG_IDX_MASK) != idx + 1)
		return 0;
	v = *t1;
	if (!two)
		return v;
	t2 = ring_tag(d->body_page, d->body_mask, idx + 1);
	if (!t2 || (*t2 & STCP_TAG_IDX_MASK) != idx + 2)
		return 0;
	return v | (__u64)*t2 << 32;
}

/* Response bytes [off, off + len) to the frame at foff: the header page,
 * then the body's pages (a segment spans at most two). Returns -1 on
 * failure, 1 when a windowed body's ring page changed under the copy. */
static __always_inline int copy_payload(struct xdp_md *ctx, __u32 foff,
					const struct stcp_tx_desc *d, __u32 off,
					__u32 len)
{
	__u32 n1 = 0, n2, bo, q, i, two;
	__u64 tags = 0;

	if (off < d->hdr_len) {
		n1 = min_u32(len, d->hdr_len - off);
		if (copy_piece(ctx, foff, d->hdr_page, off, n1))
			return -1;
	}
	if (len <= n1)
		return 0;
	bo = off + n1 - d->hdr_len;
	i = bo >> 12;
	q = bo & (STCP_PAGE_SIZE - 1);
	n2 = min_u32(len - n1, STCP_PAGE_SIZE - q);
	two = len > n1 + n2;
	if (d->body_mask != 0xffffffffu) {
		tags = ring_tags(d, i, two);
		if (!tags)
			return 1;
	}
	if (copy_piece(ctx, foff + n1, d->body_page + (i & d->body_mask), q,
		       n2))
		return -1;
	if (two && copy_piece(ctx, foff + n1 + n2,
			      d->body_page + ((i + 1) & d->body_mask), 0,
			      len - n1 - n2))
		return -1;
	/* The same tags after the copy: no rewrite of the pages began
	 * before it ended (stcpd zeroes a tag first). */
	if (tags && ring_tags(d, i, two) != tags)
		return 1;
	return 0;
}

/* The broadcast's original, last, frame: the small frame no host accepts
 * that makes the devmap code signal the device (include/stcp_tx.h). */
static __always_inline int flush_frame(struct xdp_md *ctx,
				       const struct stcp_tx_desc *d)
{
	struct ethhdr eth;

	if (bpf_xdp_adjust_tail(ctx, STCP_TX_KICK_LEN - (int)sizeof(*d)))
		return XDP_DROP;
	__builtin_memcpy(eth.h_dest, d->eth_src, 6);
	__builtin_memcpy(eth.h_source, d->eth_src, 6);
	eth.h_proto = bpf_htons(STCP_TX_KICK_ETHERTYPE);
	if (bpf_xdp_store_bytes(ctx, 0, &eth, sizeof(eth)))
		return XDP_DROP;
	count(STCP_C_TX_FLUSH);
	return XDP_PASS;
}

/*
 * Runs on each copy of a transmit descriptor (include/stcp_tx.h): copy k of
 * a broadcast becomes the k-th segment of its ranges. The copies of one broadcast
 * run in order on the CPU that made it, so a per-CPU count numbers them;
 * copies past nseg, and the original frame (last), drop themselves.
 */
SEC("xdp/devmap")
int stcp_devmap_tx(struct xdp_md *ctx)
{
	struct stcp_tx_state *st;
	struct stcp_tx_desc *d;
	struct req_scratch *rs;
	__u32 zero = 0, k, off, len, hoff, last, seq;
	struct seg sg = {};
	struct reply *r;
	__s64 psum;
	int err;

	rs = scratch();
	st = bpf_map_lookup_elem(&stcp_tx_state, &zero);
	if (!rs || !st)
		return XDP_DROP;
	d = &rs->tx_in;
	if (bpf_xdp_get_buff_len(ctx) != sizeof(*d) ||
	    bpf_xdp_load_bytes(ctx, 0, d, sizeof(*d)) ||
	    d->magic != STCP_TX_MAGIC)
		return XDP_DROP;
	if (st->seen != d->tag) {
		st->seen = d->tag;
		st->k = 0;
	} else {
		st->k++;
	}
	k = st->k;
	if (k == d->ncopies)
		return flush_frame(ctx, d);
	if (k >= d->nseg || k >= STCP_TX_MAX_SEGS)
		return XDP_DROP;
	off = 0xffffffffu;
	for (__u32 i = 0; i < STCP_TX_RANGES; i++) {
		if (k < d->count[i]) {
			off = (d->first[i] + k) * d->seg_size;
			break;
		}
		k -= d->count[i];
	}
	if (off >= d->total || !d->seg_size || d->seg_size > 1500)
		return XDP_DROP;
	len = min_u32(d->seg_size, d->total - off);
	hoff = sizeof(struct ethhdr) +
	       (d->family == STCP_AF_INET ? sizeof(struct iphdr) :
					    sizeof(struct ipv6hdr)) +
	       sizeof(struct tcphdr) + (d->flags & STCP_TX_F_NO_TS ? 0 : 12);
	if (bpf_xdp_adjust_tail(ctx, (int)(hoff + len) - (int)sizeof(*d)))
		return XDP_DROP;
	err = copy_payload(ctx, hoff, d, off, len);
	if (err > 0)
		count(STCP_C_WINDOW_TORN);
	if (err)
		return XDP_DROP;
	psum = csum_frame(ctx, hoff, len);
	if (psum < 0)
		return XDP_DROP;

	sg.flow.family = d->family;
	sg.flow.sport = d->sport;
	sg.flow.cport = d->dport;
	__builtin_memcpy(sg.flow.saddr, d->saddr, 16);
	__builtin_memcpy(sg.flow.caddr, d->daddr, 16);
	__builtin_memcpy(sg.eth_src, d->eth_dst, 6);
	__builtin_memcpy(sg.eth_dst, d->eth_src, 6);

	r = &rs->r;
	__builtin_memset(r, 0, sizeof(*r));
	last = off + len == d->total;
	seq = d->isn1 + off;
	r->seq = seq;
	r->ack = stcp_seg_ack(d);
	r->flags = TCP_FLAG_ACK;
	if (last)
		r->flags |= TCP_FLAG_PSH |
			    (d->flags & STCP_TX_F_CLOSE ? TCP_FLAG_FIN : 0);
	r->window = d->window;
	if (!(d->flags & STCP_TX_F_NO_TS))
		set_ts_option(r,
			      d->ts_low | stcp_ts_pos(seq) << STCP_TS_POS_SHIFT |
				      ((off >> 24) & STCP_DTS_HI_MASK)
					      << STCP_DTS_HI_SHIFT,
			      d->tsecr);
	r->in_frame = 1;
	r->hdr_len = len;
	r->psum = (__u32)psum;
	if (emit_reply(ctx, &sg, r))
		return XDP_DROP;
	count(STCP_C_TX_DATA);
	return XDP_PASS;
}
