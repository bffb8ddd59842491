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
#include "stcp_cookie.h"
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
#define TCPOPT_TIMESTAMP 8

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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, STCP_MAX_OBJECTS);
	__type(key, struct stcp_obj_key);
	__type(value, struct stcp_obj);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stcp_objects SEC(".maps");

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
};

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
	/* Write the headers and a struct tx_desc instead of the payload. */
	__u32 defer;
};

/* Where a request is copied, parsed and answered: per CPU, never pinned.
 * The reply lives here too, to keep the deepest call chain's stack small. */
struct req_scratch {
	struct stcp_http_scratch http;
	struct reply r;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct req_scratch);
} stcp_req_scratch SEC(".maps");

/*
 * Page-sized copies for replies that do not fit the request's frame: stcpd
 * fills both slots with the ingress interface and stcp_devmap_tx; a
 * broadcast gives one clone with a whole page of room, and the original
 * frame (the last slot), which cannot grow and drops itself.
 */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct bpf_devmap_val);
} stcp_tx_devmap SEC(".maps");

/* What a deferred reply's frame carries after its final headers: where
 * stcp_devmap_tx finds the payload. */
struct tx_desc {
	__u32 magic;
	__u32 hdr_page;
	__u32 hdr_len;
	__u32 body_page;
	__u32 body_len;
	__u32 pad;
};
#define TX_DESC_MAGIC 0x73746370u

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
	if (plen) {
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

	frame_len = sizeof(eth) + iplen + thlen +
		    (r->defer ? sizeof(struct tx_desc) : plen);
	cur_len = bpf_xdp_get_buff_len(ctx);
	if (bpf_xdp_adjust_tail(ctx, (int)frame_len - (int)cur_len))
		return frame_len > cur_len ? EMIT_TOO_BIG : EMIT_ERR;
	if (bpf_xdp_store_bytes(ctx, 0, &eth, sizeof(eth)) ||
	    bpf_xdp_store_bytes(ctx, sizeof(eth), &ih, iplen) ||
	    bpf_xdp_store_bytes(ctx, sizeof(eth) + iplen, tcp, thlen))
		return EMIT_ERR;
	if (r->defer) {
		struct tx_desc d = {
			.magic = TX_DESC_MAGIC,
			.hdr_page = r->hdr_page,
			.hdr_len = r->hdr_len,
			.body_page = r->body_page,
			.body_len = r->body_len,
		};

		return bpf_xdp_store_bytes(ctx, sizeof(eth) + iplen + thlen,
					   &d, sizeof(d)) ?
			       EMIT_ERR :
			       0;
	}
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
	__u32 now = now_tick(), cur_slot = 0, tick;
	__u32 want_pos = (flags & COOKIE_CLOSE) ? stcp_ts_pos(isn + 1) :
						  stcp_ts_pos_synack(isn);
	struct stcp_cfg *cfg;

	stcp_cookie_fields(isn, has_ts, tsecr, &c);
	if (has_ts && c.pos != want_pos)
		return COOKIE_BAD;
	tick = stcp_tick_with_parity(now, c.tick_parity);

	cfg = bpf_map_lookup_elem(&stcp_cfg, &cur_slot);
	if (cfg)
		cur_slot = cfg->key_cur & 1;

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

/* The payload one segment may carry to this client, timestamps on. */
static __always_inline __u32 seg_payload_max(const struct seg *s, __u32 opts)
{
	__u32 cls = opts & STCP_OPT_MSS_MASK, mss, ours;

	mss = cls == 3 ? STCP_MSS_CLASS_3 :
	      cls == 2 ? STCP_MSS_CLASS_2 :
	      cls == 1 ? STCP_MSS_CLASS_1 :
			 STCP_MSS_CLASS_0;
	ours = s->flow.family == STCP_AF_INET ? STCP_DEFAULT_MSS_V4 :
						STCP_DEFAULT_MSS_V6;
	return (mss < ours ? mss : ours) - 12;
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
		return obj->resp[STCP_V_304_CLOSE];
	return obj->resp[STCP_V_200_CLOSE];
}

/*
 * The first request of a connection (docs/PROTOCOL.md 6.2): answered with
 * the whole response and our FIN in one segment, when it fits; the request
 * is acknowledged by that segment only, so if it is lost the client's
 * retransmission timer asks again.
 */
static __noinline int handle_request(struct xdp_md *ctx, struct seg *s,
				     const struct tcp_opts *o, __u32 match)
{
	__u32 zero = 0, n, slot, opts = (match >> COOKIE_OPTS_SHIFT) & 0x7f;
	struct stcp_http_scratch *sc;
	struct req_scratch *rs;
	struct stcp_resp *resp;
	struct reply *r;
	int err;

	/* Without a TSecr there is nowhere to carry the response slot. */
	if (!o->has_ts)
		return send_rst(ctx, s, STCP_C_DATA_REFUSED);
	rs = bpf_map_lookup_elem(&stcp_req_scratch, &zero);
	if (!rs)
		return send_rst(ctx, s, STCP_C_DATA_REFUSED);
	sc = &rs->http;
	r = &rs->r;
	__builtin_memset(r, 0, sizeof(*r));
	n = s->payload_len;
	if (n > STCP_HTTP_MAX_REQ)
		n = STCP_HTTP_MAX_REQ;
	if (n) {
		__u32 m = n - 1;

		/* 1..STCP_HTTP_MAX_REQ in a form the verifier follows. */
		asm volatile("" : "+r"(m));
		if (bpf_xdp_load_bytes(ctx, s->opt_off + s->opt_len, sc->buf,
				       (m & (STCP_HTTP_MAX_REQ - 1)) + 1))
			return send_rst(ctx, s, STCP_C_DATA_REFUSED);
	}
	stcp_http_parse(sc->buf, n, &sc->req);
	slot = response_slot(&sc->req) & STCP_DTS_SLOT_MASK;
	resp = bpf_map_lookup_elem(&stcp_resps, &slot);
	if (!resp || !(resp->flags & STCP_RESP_VALID))
		return send_rst(ctx, s, STCP_C_DATA_REFUSED);

	r->hdr_page = resp->hdr_page;
	r->hdr_len = resp->hdr_len;
	if (sc->req.method != STCP_HTTP_HEAD) {
		if (resp->body_len > STCP_PAGE_SIZE)
			return send_rst(ctx, s, STCP_C_RESPONSE_TOO_BIG);
		r->body_page = resp->body_page;
		r->body_len = resp->body_len;
	}
	/* One segment: no larger than the client's MSS class allows, less
	 * the timestamp option, and than our own MSS. */
	if (r->hdr_len + r->body_len > seg_payload_max(s, opts))
		return send_rst(ctx, s, STCP_C_RESPONSE_TOO_BIG);
	r->seq = s->ack;
	/* The whole segment, and the client's FIN if it came with it. */
	r->ack = s->seq + s->payload_len + !!(s->flags & TCP_FLAG_FIN);
	r->flags = TCP_FLAG_ACK | TCP_FLAG_PSH | TCP_FLAG_FIN;
	r->window = SYNACK_WINDOW;
	set_ts_option(r,
		      stcp_data_tsval(s->ack, 0, opts,
				      match >> COOKIE_SLOT_SHIFT, slot),
		      o->tsval);
	err = emit_reply(ctx, s, r);
	if (err == EMIT_TOO_BIG) {
		struct bpf_devmap_val *dv;

		/* Too big for this frame: a page-sized copy builds it. */
		dv = bpf_map_lookup_elem(&stcp_tx_devmap, &zero);
		if (!dv || !dv->ifindex)
			return send_rst(ctx, s, STCP_C_RESPONSE_TOO_BIG);
		r->defer = 1;
		if (emit_reply(ctx, s, r))
			return finish(STCP_C_DROP_TX_FAILED, XDP_DROP);
		return finish(STCP_C_REQUEST_ANSWERED,
			      bpf_redirect_map(&stcp_tx_devmap, 0,
					       BPF_F_BROADCAST));
	}
	if (err)
		return finish(STCP_C_DROP_TX_FAILED, XDP_DROP);
	count(STCP_C_TX_DATA);
	return finish(STCP_C_REQUEST_ANSWERED, XDP_TX);
}

/*
 * A segment after our single-segment response: its TSecr names the response
 * slot and key, so ISN + 1 = ack - length - 1 exactly; the flow hash bits of
 * that ISN and the TSecr's position field must agree. A FIN gets its ACK.
 */
static __noinline int handle_after_response(struct xdp_md *ctx,
					    struct seg *s,
					    const struct tcp_opts *o)
{
	__u32 slot = o->tsecr & STCP_DTS_SLOT_MASK, key_slot, total, isn1, f;
	__u32 zero = 0;
	struct req_scratch *rs;
	struct stcp_resp *resp;
	struct stcp_key *k;
	struct reply *r;

	if (!o->has_ts || s->payload_len)
		return -1;
	resp = bpf_map_lookup_elem(&stcp_resps, &slot);
	if (!resp || !(resp->flags & STCP_RESP_VALID))
		return -1;
	key_slot = (o->tsecr >> STCP_DTS_KEY_BIT) & 1;
	k = bpf_map_lookup_elem(&stcp_keys, &key_slot);
	if (!k || !k->valid)
		return -1;
	/* The response had the body, or only the header (HEAD): the ISN
	 * implied by one of the two lengths must carry our flow hash and
	 * stand in the TSecr's position field. */
	f = (__u32)stcp_flow_hash(k->k0, k->k1, &s->flow) & STCP_TS_F_MASK;
	total = resp->hdr_len + resp->body_len;
	isn1 = s->ack - total - 1;
	if (stcp_ts_pos(isn1) != o->tsecr >> STCP_TS_POS_SHIFT ||
	    ((isn1 - 1) & STCP_TS_F_MASK) != f) {
		total = resp->hdr_len;
		isn1 = s->ack - total - 1;
		if (stcp_ts_pos(isn1) != o->tsecr >> STCP_TS_POS_SHIFT ||
		    ((isn1 - 1) & STCP_TS_F_MASK) != f)
			return -1;
	}
	if (!(s->flags & TCP_FLAG_FIN))
		return finish(STCP_C_RESPONSE_ACKED, XDP_DROP);

	rs = bpf_map_lookup_elem(&stcp_req_scratch, &zero);
	if (!rs)
		return -1;
	r = &rs->r;
	__builtin_memset(r, 0, sizeof(*r));
	r->seq = s->ack;
	r->ack = s->seq + 1;
	r->flags = TCP_FLAG_ACK;
	r->window = SYNACK_WINDOW;
	set_ts_option(r, stcp_tsval_at(o->tsecr, s->ack), o->tsval);
	return reply_or_count_failure(ctx, s, r, STCP_C_FIN_ANSWERED,
				      STCP_C_TX_ACK);
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

/*
 * A segment that is not a SYN. Before any data has flowed, the client's
 * sequence and acknowledgement numbers still point at both ISNs: seq - 1 is
 * its ISN and ack - 1 ours, or seq - 2 and ack - 2 once both FINs are out.
 */
static __noinline int handle_ack(struct xdp_md *ctx, struct seg *s)
{
	struct tcp_opts o = {};
	__u32 ts_flag, match;
	int res;

	if (!(s->flags & TCP_FLAG_ACK))
		return finish(STCP_C_DROP_BAD_FLAGS, XDP_DROP);
	if (load_tcp_opts(ctx, s, &o))
		return finish(STCP_C_DROP_MALFORMED, XDP_DROP);
	ts_flag = o.has_ts ? COOKIE_HAS_TS : 0;

	match = check_cookie(s, s->ack - 1, s->seq - 1, o.tsecr, ts_flag);
	res = match & COOKIE_RES_MASK;
	if (res == COOKIE_OK) {
		if (s->payload_len)
			return handle_request(ctx, s, &o, match);
		if (!(s->flags & TCP_FLAG_FIN))
			return finish(STCP_C_HANDSHAKE_DONE, XDP_DROP);
		return answer_close(ctx, s, &o);
	}

	/* The last ACK of a close, acknowledging our FIN. */
	if (res == COOKIE_BAD && !s->payload_len &&
	    !(s->flags & TCP_FLAG_FIN)) {
		int res2 = check_cookie(s, s->ack - 2, s->seq - 2, o.tsecr,
					ts_flag | COOKIE_CLOSE) &
			   COOKIE_RES_MASK;

		if (res2 == COOKIE_OK)
			return finish(STCP_C_HANDSHAKE_DONE, XDP_DROP);
		if (res2 == COOKIE_STALE)
			res = COOKIE_STALE;
	}

	if (res == COOKIE_BAD) {
		int after = handle_after_response(ctx, s, &o);

		if (after >= 0)
			return after;
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
	struct seg s = {};
	__u32 l4_off = 0, l4_len = 0, disp, zero = 0, doff;
	struct tcphdr *th;
	struct stcp_cfg *cfg;
	struct stcp_key *key;
	int frag = 0;

	count(STCP_C_RX_PACKETS);
	if ((void *)(eth + 1) > data_end)
		return finish(STCP_C_PASS_MALFORMED, XDP_PASS);

	if (eth->h_proto == bpf_htons(ETH_P_IP))
		disp = parse_ipv4(data, data_end, &s, &l4_off, &l4_len, &frag);
	else if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		disp = parse_ipv6(data, data_end, &s, &l4_off, &l4_len, &frag);
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
	s.flow.cport = th->source;
	s.flow.sport = th->dest;
	if (!is_service(&s.flow))
		return finish(STCP_C_PASS_OTHER_DEST, XDP_PASS);

	/* From here on the packet is ours: answer it or drop it, never pass
	 * it up, or the kernel would reset the connection. */
	if (frag)
		return finish(STCP_C_DROP_FRAGMENT, XDP_DROP);
	doff = th->doff * 4;
	if (doff < sizeof(*th) || doff > l4_len)
		return finish(STCP_C_DROP_MALFORMED, XDP_DROP);

	__builtin_memcpy(s.eth_src, eth->h_source, 6);
	__builtin_memcpy(s.eth_dst, eth->h_dest, 6);
	s.seq = bpf_ntohl(th->seq);
	s.ack = bpf_ntohl(th->ack_seq);
	s.flags = ((__u8 *)th)[13];
	s.opt_off = l4_off + sizeof(*th);
	s.opt_len = doff - sizeof(*th);
	s.payload_len = l4_len - doff;

	if (s.flags & TCP_FLAG_RST)
		return finish(STCP_C_DROP_RST, XDP_DROP);

	cfg = bpf_map_lookup_elem(&stcp_cfg, &zero);
	if (!cfg)
		return finish(STCP_C_DROP_NO_KEY, XDP_DROP);

	if (s.flags & TCP_FLAG_SYN) {
		__u32 slot = cfg->key_cur & 1;

		if (s.flags & (TCP_FLAG_ACK | TCP_FLAG_FIN))
			return finish(STCP_C_DROP_BAD_FLAGS, XDP_DROP);
		key = bpf_map_lookup_elem(&stcp_keys, &slot);
		if (!key || !key->valid)
			return finish(STCP_C_DROP_NO_KEY, XDP_DROP);
		return handle_syn(ctx, &s, key, cfg);
	}
	return handle_ack(ctx, &s);
}

/*
 * Runs on each copy of a deferred reply (stcp_tx_devmap): grows the frame
 * from its final headers and descriptor to the whole reply and copies the
 * payload in. Only a copy with room can; the other drops itself, so no copy
 * depends on another or on any per-CPU state.
 */
SEC("xdp/devmap")
int stcp_devmap_tx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 off, iplen, plen;
	struct tcphdr *th;
	struct tx_desc d;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	iplen = eth->h_proto == bpf_htons(ETH_P_IPV6) ? 40 : 20;
	th = data + sizeof(*eth) + iplen;
	if ((void *)(th + 1) > data_end)
		return XDP_DROP;
	off = sizeof(*eth) + iplen + th->doff * 4;
	if (off > 128 || bpf_xdp_load_bytes(ctx, off, &d, sizeof(d)) ||
	    d.magic != TX_DESC_MAGIC)
		return XDP_DROP;
	if (d.hdr_len > STCP_PAGE_SIZE || d.body_len > STCP_PAGE_SIZE)
		return XDP_DROP;
	plen = d.hdr_len + d.body_len;
	if (bpf_xdp_adjust_tail(ctx, (int)plen - (int)sizeof(d)))
		return XDP_DROP;
	if (store_page(ctx, off, d.hdr_page, d.hdr_len) ||
	    store_page(ctx, off + d.hdr_len, d.body_page, d.body_len))
		return XDP_DROP;
	count(STCP_C_TX_DATA);
	return XDP_PASS;
}
