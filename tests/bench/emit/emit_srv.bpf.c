// SPDX-License-Identifier: GPL-2.0
/*
 * Server side of the multi-segment emission benchmark (tests/bench/emit/).
 * One arriving trigger (a TCP ACK to EMIT_SRV_PORT) releases N full-sized
 * segments, by one of three mechanisms chosen in emit_cfg.mode:
 *
 *  (A) EMIT_M_DEVMAP: emit_xdp turns the trigger into a header template and
 *      broadcasts it (bpf_redirect_map(BPF_F_BROADCAST)) into a devmap of
 *      N + 1 slots that all name the ingress device, each with the devmap
 *      program emit_devmap. Copy k becomes segment k; the last copy (the
 *      original frame, which may have no tailroom) is dropped.
 *  (B) EMIT_M_TC: emit_xdp passes the trigger up; emit_tc (TC ingress)
 *      grows the skb once, then for k = 0..N-1 rewrites it into segment k
 *      and bpf_clone_redirect()s it to the same device's egress; TC_ACT_SHOT.
 *  (C) EMIT_M_TX: emit_xdp grows the trigger in place into segment 0 and
 *      returns XDP_TX (N = 1).
 *
 * Every segment's TCP checksum is the checksum of its headers seeded with
 * the precomputed checksum of its payload (emit_seg.csum), as a content
 * cache would store it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "tests/bench/emit/emit.h"

#define ETH_P_IP_  0x0800
#define IPPROTO_TCP_ 6
#define TC_ACT_OK_   0
#define TC_ACT_SHOT_ 2

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct emit_cfg);
} emit_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ES_MAX);
	__type(key, __u32);
	__type(value, __u64);
} emit_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EMIT_MAX_SEGS);
	__type(key, __u32);
	__type(value, struct emit_seg);
} emit_content SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EO_MAX);
	__type(key, __u32);
	__type(value, struct emit_probe);
} emit_probe SEC(".maps");

/* Per CPU: the tag stamped on the last broadcast template (emit_xdp) and
 * the copy index reached for it (emit_devmap). */
struct dm_state {
	__u32 tag;  /* emit_xdp: last tag issued */
	__u32 seen; /* emit_devmap: tag of the template being numbered */
	__u32 k;    /* emit_devmap: index of the copy last numbered */
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dm_state);
} emit_dm_state SEC(".maps");

/* One devmap per N, with N + 1 slots (the spare takes the original). */
#define DEVMAP(name, slots)                                   \
	struct {                                              \
		__uint(type, BPF_MAP_TYPE_DEVMAP);            \
		__uint(max_entries, slots);                   \
		__type(key, __u32);                           \
		__type(value, struct bpf_devmap_val);         \
	} name SEC(".maps")

DEVMAP(emit_dm1, 2);
DEVMAP(emit_dm2, 3);
DEVMAP(emit_dm4, 5);
DEVMAP(emit_dm8, 9);
DEVMAP(emit_dm16, 17);
DEVMAP(emit_dm32, 33);
DEVMAP(emit_dm_slot, 2); /* slot 0: emit_devmap, slot 1: emit_devmap2 */

/* Headers of a trigger or a segment, copied to the stack with the
 * Ethernet header at offset 2 so that the IPv4 and TCP headers are aligned
 * (the verifier wants aligned stack accesses). The frame bytes are eth..opt,
 * EMIT_HDR of them. */
struct hdr {
	__u8 pad[2];
	__u8 eth[14];
	struct iphdr ip;
	struct tcphdr tcp;
	__u8 opt[12]; /* NOP NOP TS(10) */
};

struct csum_blk {
	__be32 saddr;
	__be32 daddr;
	__u8 zero;
	__u8 proto;
	__be16 len;
	struct tcphdr tcp;
	__u8 opt[12];
};

static __always_inline void stat(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&emit_stats, &slot);

	if (v)
		*v += 1;
}

static __always_inline struct emit_cfg *cfg(void)
{
	__u32 z = 0;

	return bpf_map_lookup_elem(&emit_cfg, &z);
}

static __always_inline __u16 fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Checksum of the IPv4 header (check must be 0 on entry). */
static __always_inline __u16 ip_csum(struct iphdr *ip)
{
	return fold(bpf_csum_diff(0, 0, (__be32 *)ip, sizeof(*ip), 0));
}

/* TCP checksum of a segment with header th (+ 12 option bytes at opt) and
 * a payload whose own sum is pay_csum. */
static __always_inline __u16 tcp_csum(__be32 saddr, __be32 daddr,
				      const struct tcphdr *th, const __u8 *opt,
				      __u32 pay_csum)
{
	struct csum_blk b = {};

	b.saddr = saddr;
	b.daddr = daddr;
	b.proto = IPPROTO_TCP_;
	b.len = bpf_htons(32 + EMIT_MSS);
	__builtin_memcpy(&b.tcp, th, sizeof(b.tcp));
	__builtin_memcpy(b.opt, opt, sizeof(b.opt));
	b.tcp.check = 0;
	return fold(bpf_csum_diff(0, 0, (__be32 *)&b, sizeof(b), pay_csum));
}

/* A trigger: IPv4, no IP options, TCP to EMIT_SRV_PORT with a 32-byte
 * header. */
static __always_inline bool trigger(void *data, void *data_end)
{
	struct iphdr *ip = data + 14;
	struct tcphdr *th = data + 34;

	if (data + EMIT_HDR > data_end)
		return false;
	if (*(__be16 *)(data + 12) != bpf_htons(ETH_P_IP_))
		return false;
	if (ip->ihl != 5 || ip->protocol != IPPROTO_TCP_)
		return false;
	return th->dest == bpf_htons(EMIT_SRV_PORT) && th->doff == 8;
}

/* Turns the trigger's headers into the reply template shared by all its
 * segments: addresses and ports swapped, IPv4 header final (length of a
 * full segment), TSecr = the trigger's TSval. Per segment, seq, TSval and
 * the TCP checksum remain. */
static __always_inline void make_template(struct hdr *h)
{
	__u8 mac[6];
	__be32 a;
	__be16 p;
	__u32 tsval;

	__builtin_memcpy(mac, h->eth, 6);
	__builtin_memcpy(h->eth, h->eth + 6, 6);
	__builtin_memcpy(h->eth + 6, mac, 6);
	a = h->ip.saddr;
	h->ip.saddr = h->ip.daddr;
	h->ip.daddr = a;
	h->ip.tot_len = bpf_htons(EMIT_FRAME - 14);
	h->ip.id = 0;
	h->ip.frag_off = bpf_htons(0x4000);
	h->ip.ttl = 64;
	h->ip.check = 0;
	h->ip.check = ip_csum(&h->ip);
	p = h->tcp.source;
	h->tcp.source = h->tcp.dest;
	h->tcp.dest = p;
	h->tcp.ack_seq = h->tcp.seq;
	h->tcp.seq = 0;
	h->tcp.window = bpf_htons(65535);
	h->tcp.psh = 1;
	h->tcp.ack = 1;
	h->tcp.check = 0;
	__builtin_memcpy(&tsval, h->opt + 4, 4);
	h->opt[0] = 1;
	h->opt[1] = 1;
	h->opt[2] = 8;
	h->opt[3] = 10;
	__builtin_memcpy(h->opt + 8, &tsval, 4); /* TSecr = trigger id */
}

/* Fills the per-segment fields of template h for segment k of n. */
static __always_inline void finish_seg(struct hdr *h, __u32 k, __u32 n,
				       __u32 pay_csum)
{
	__u32 t, g;

	__builtin_memcpy(&t, h->opt + 8, 4);
	g = bpf_ntohl(t) * n + k;
	h->tcp.seq = bpf_htonl(g * EMIT_MSS);
	t = bpf_htonl(g);
	__builtin_memcpy(h->opt + 4, &t, 4);
	h->tcp.check =
		tcp_csum(h->ip.saddr, h->ip.daddr, &h->tcp, h->opt, pay_csum);
}

/* Records the largest tail growth that works on this frame. */
static __noinline int probe_grow(struct xdp_md *ctx, __u32 origin)
{
	static const int deltas[] = { 64, 128, 256, 512, 1024, 1448,
				      2048, 3000, 3500, 4000 };
	struct emit_probe *pr = bpf_map_lookup_elem(&emit_probe, &origin);
	__s64 best = -1;
	int i;

	if (!pr)
		return 0;
	for (i = 0; i < (int)(sizeof(deltas) / sizeof(deltas[0])); i++) {
		if (bpf_xdp_adjust_tail(ctx, deltas[i]))
			break;
		best = deltas[i];
		bpf_xdp_adjust_tail(ctx, -deltas[i]);
	}
	pr->count++;
	if (best > pr->max_grow || pr->count == 1)
		pr->max_grow = best;
	pr->len = ctx->data_end - ctx->data;
	return 0;
}

static __always_inline long broadcast(__u32 n)
{
	switch (n) {
	case 1:
		return bpf_redirect_map(&emit_dm1, 0, BPF_F_BROADCAST);
	case 2:
		return bpf_redirect_map(&emit_dm2, 0, BPF_F_BROADCAST);
	case 4:
		return bpf_redirect_map(&emit_dm4, 0, BPF_F_BROADCAST);
	case 8:
		return bpf_redirect_map(&emit_dm8, 0, BPF_F_BROADCAST);
	case 16:
		return bpf_redirect_map(&emit_dm16, 0, BPF_F_BROADCAST);
	case 32:
		return bpf_redirect_map(&emit_dm32, 0, BPF_F_BROADCAST);
	}
	return XDP_DROP;
}

/* (C): the trigger itself becomes segment 0. */
static __noinline int xdp_tx_one(struct xdp_md *ctx)
{
	struct emit_seg *c;
	struct hdr h;
	__u32 z = 0;
	int len = ctx->data_end - ctx->data;

	c = bpf_map_lookup_elem(&emit_content, &z);
	if (!c || bpf_xdp_load_bytes(ctx, 0, h.eth, EMIT_HDR)) {
		stat(ES_TX_FAIL);
		return XDP_DROP;
	}
	if (bpf_xdp_adjust_tail(ctx, EMIT_FRAME - len)) {
		stat(ES_GROW_FAIL);
		return XDP_DROP;
	}
	make_template(&h);
	finish_seg(&h, 0, 1, c->csum);
	if (bpf_xdp_store_bytes(ctx, 0, h.eth, EMIT_HDR) ||
	    bpf_xdp_store_bytes(ctx, EMIT_HDR, c->data, EMIT_MSS)) {
		stat(ES_TX_FAIL);
		return XDP_DROP;
	}
	stat(ES_EMIT);
	return XDP_TX;
}

/* (A), in emit_xdp: the template, tagged, for emit_devmap. */
static __noinline int xdp_broadcast(struct xdp_md *ctx, __u32 mode, __u32 n)
{
	struct dm_state *st;
	struct hdr h;
	__u32 z = 0;

	st = bpf_map_lookup_elem(&emit_dm_state, &z);
	if (!st || bpf_xdp_load_bytes(ctx, 0, h.eth, EMIT_HDR))
		return XDP_DROP;
	make_template(&h);
	/* The tag tells emit_devmap where the copies of one template begin;
	 * it rides in seq, which emit_devmap overwrites. */
	st->tag++;
	if (!st->tag)
		st->tag = 1;
	h.tcp.seq = st->tag;
	if (bpf_xdp_store_bytes(ctx, 0, h.eth, EMIT_HDR))
		return XDP_DROP;
	if (mode == EMIT_M_SLOTPROG)
		return bpf_redirect_map(&emit_dm_slot, 0, BPF_F_BROADCAST);
	return broadcast(n);
}

SEC("xdp")
int emit_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct emit_cfg *cf = cfg();

	if (!cf || !trigger(data, data_end))
		return XDP_PASS;
	switch (cf->mode) {
	case EMIT_M_PROBE:
		probe_grow(ctx, EO_XDP);
		return XDP_PASS;
	case EMIT_M_TC:
		stat(ES_TRIG);
		return XDP_PASS;
	case EMIT_M_TX:
		stat(ES_TRIG);
		return xdp_tx_one(ctx);
	case EMIT_M_DEVMAP:
	case EMIT_M_SLOTPROG:
		stat(ES_TRIG);
		return xdp_broadcast(ctx, cf->mode, cf->nseg);
	}
	return XDP_PASS;
}

/* (A): copy k of a broadcast becomes segment k. Copies of one template are
 * enqueued one after the other on this CPU's bulk queue of the device and
 * run here in that order, so a per-CPU counter, reset when the tag
 * changes, numbers them. */
static __always_inline int devmap_seg(struct xdp_md *ctx)
{
	struct emit_cfg *cf = cfg();
	struct dm_state *st;
	struct emit_seg *c;
	struct hdr h;
	__u32 z = 0, k, n;
	int len;

	st = bpf_map_lookup_elem(&emit_dm_state, &z);
	if (!cf || !st || bpf_xdp_load_bytes(ctx, 0, h.eth, EMIT_HDR))
		return XDP_DROP;
	if (h.tcp.seq != st->seen) {
		st->seen = h.tcp.seq;
		st->k = 0;
	} else {
		st->k++;
	}
	k = st->k;
	n = cf->nseg;
	if (cf->dm_probe)
		probe_grow(ctx, k < n ? EO_DM_CLONE : EO_DM_ORIG);
	if (k >= n || k >= EMIT_MAX_SEGS) {
		stat(ES_SPARE_DROP);
		return XDP_DROP;
	}
	c = bpf_map_lookup_elem(&emit_content, &k);
	if (!c)
		return XDP_DROP;
	len = ctx->data_end - ctx->data;
	if (bpf_xdp_adjust_tail(ctx, EMIT_FRAME - len)) {
		stat(ES_GROW_FAIL);
		return XDP_DROP;
	}
	finish_seg(&h, k, n, c->csum);
	if (bpf_xdp_store_bytes(ctx, 0, h.eth, EMIT_HDR) ||
	    bpf_xdp_store_bytes(ctx, EMIT_HDR, c->data, EMIT_MSS))
		return XDP_DROP;
	stat(ES_EMIT);
	return XDP_PASS;
}

SEC("xdp/devmap")
int emit_devmap(struct xdp_md *ctx)
{
	stat(ES_DM_RUNS);
	return devmap_seg(ctx);
}

/* Only for the slot probe: a second devmap program, in slot 1 of
 * emit_dm_slot. */
SEC("xdp/devmap")
int emit_devmap2(struct xdp_md *ctx)
{
	stat(ES_DM2_RUNS);
	return devmap_seg(ctx);
}

static __always_inline void tc_probe(struct __sk_buff *skb, __u32 origin,
				     __u32 len)
{
	struct emit_probe *pr = bpf_map_lookup_elem(&emit_probe, &origin);
	long r = bpf_skb_change_tail(skb, len, 0);

	if (!pr)
		return;
	pr->count++;
	pr->max_grow = r;
	pr->len = skb->len;
}

struct tc_loop {
	struct __sk_buff *skb;
	struct hdr h;
	__u32 n;
	__u32 ifindex;
};

/* One bpf_loop step of emit_tc: the skb becomes segment k and a clone of it
 * goes out of the device. */
static long tc_one(__u32 k, void *arg)
{
	struct tc_loop *l = arg;
	struct emit_seg *c;

	c = bpf_map_lookup_elem(&emit_content, &k);
	if (!c)
		return 1;
	finish_seg(&l->h, k, l->n, c->csum);
	if (bpf_skb_store_bytes(l->skb, 0, l->h.eth, EMIT_HDR, 0) ||
	    bpf_skb_store_bytes(l->skb, EMIT_HDR, c->data, EMIT_MSS, 0) ||
	    bpf_clone_redirect(l->skb, l->ifindex, 0)) {
		stat(ES_TC_FAIL);
		return 0;
	}
	stat(ES_EMIT);
	return 0;
}

/* (B). */
SEC("tc")
int emit_tc(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct emit_cfg *cf = cfg();
	struct tc_loop l;

	if (!cf || !trigger(data, data_end))
		return TC_ACT_OK_;
	if (cf->mode != EMIT_M_TC)
		return TC_ACT_OK_; /* the growth probes pass triggers up */
	stat(ES_TC_TRIG);
	l.skb = skb;
	l.n = cf->nseg;
	l.ifindex = cf->ifindex;
	if (l.n > EMIT_MAX_SEGS)
		l.n = EMIT_MAX_SEGS;
	if (bpf_skb_load_bytes(skb, 0, l.h.eth, EMIT_HDR))
		return TC_ACT_SHOT_;
	make_template(&l.h);
	if (cf->probe_gso) {
		tc_probe(skb, EO_TC_16000, 16000);
		tc_probe(skb, EO_TC_65535, 65535);
	}
	if (bpf_skb_change_tail(skb, EMIT_FRAME, 0)) {
		stat(ES_GROW_FAIL);
		return TC_ACT_SHOT_;
	}
	bpf_loop(l.n, tc_one, &l, 0);
	return TC_ACT_SHOT_;
}
