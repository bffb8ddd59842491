// SPDX-License-Identifier: GPL-2.0
/*
 * Client side of the multi-segment emission benchmark (tests/bench/emit/).
 *
 *  emit_inject: run by BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES on
 *      the client veth; stamps the next trigger id into the trigger's TSval
 *      and returns XDP_TX, which really transmits it to the server veth.
 *  emit_count: attached to the client veth; counts the segments that come
 *      back, checks their numbering (and checksums when asked) and drops
 *      them, except the last segment of a trigger, which it turns into the
 *      next trigger while the ACK clock (emit_clock) runs. Everything else
 *      passes.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "tests/bench/emit/emit.h"

#define ETH_P_IP_    0x0800
#define IPPROTO_TCP_ 6

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct emit_rx);
} emit_rx SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} emit_next_tid SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct emit_clock);
} emit_clock SEC(".maps");

SEC("xdp")
int emit_inject(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 *ts = data + EMIT_OFF_TSVAL;
	__u64 *tid;
	__u32 z = 0, v;

	if ((void *)(ts + 4) > data_end)
		return XDP_DROP;
	tid = bpf_map_lookup_elem(&emit_next_tid, &z);
	if (!tid)
		return XDP_DROP;
	/* atomic: the client veth's NAPI may run the clock on another CPU */
	v = bpf_htonl((__u32)__sync_fetch_and_add(tid, 1));
	__builtin_memcpy(ts, &v, 4);
	return XDP_TX;
}

static __always_inline __u16 fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

struct pseudo {
	__be32 saddr;
	__be32 daddr;
	__u8 zero;
	__u8 proto;
	__be16 len;
};

/* Both checksums of a full segment (the frame is EMIT_FRAME bytes). */
static __noinline int csum_ok(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *ip = data + 14;
	__u8 *tcp = data + 34;
	struct pseudo ph = {};
	__s64 s;

	if (data + EMIT_FRAME > data_end)
		return 0;
	if (fold(bpf_csum_diff(0, 0, (__be32 *)ip, 20, 0)) != 0xffff)
		return 0;
	ph.saddr = ip->saddr;
	ph.daddr = ip->daddr;
	ph.proto = IPPROTO_TCP_;
	ph.len = bpf_htons(EMIT_FRAME - 34);
	s = bpf_csum_diff(0, 0, (__be32 *)&ph, sizeof(ph), 0);
	/* 32 + 1448 = 1480 bytes, in pieces of at most 512 */
	s = bpf_csum_diff(0, 0, (__be32 *)tcp, 512, s);
	s = bpf_csum_diff(0, 0, (__be32 *)(tcp + 512), 512, s);
	s = bpf_csum_diff(0, 0, (__be32 *)(tcp + 1024), 456, s);
	return fold(s) == 0xffff;
}

/* The ACK clock: the last segment of a trigger becomes the next trigger. */
static __noinline int next_trigger(struct xdp_md *ctx, __u32 g)
{
	struct emit_clock *ck;
	__u64 *tid;
	__u32 z = 0, v;

	ck = bpf_map_lookup_elem(&emit_clock, &z);
	tid = bpf_map_lookup_elem(&emit_next_tid, &z);
	if (!ck || !tid || !ck->n || *tid >= ck->limit)
		return XDP_DROP;
	if (bpf_ntohl(g) % ck->n != ck->n - 1)
		return XDP_DROP;
	if (bpf_xdp_adjust_tail(ctx, EMIT_HDR - EMIT_FRAME) ||
	    bpf_xdp_store_bytes(ctx, 0, ck->tmpl, EMIT_HDR))
		return XDP_DROP;
	v = bpf_htonl((__u32)__sync_fetch_and_add(tid, 1));
	if (bpf_xdp_store_bytes(ctx, EMIT_OFF_TSVAL, &v, 4))
		return XDP_DROP;
	return XDP_TX;
}

SEC("xdp")
int emit_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + 14;
	struct tcphdr *th = data + 34;
	struct emit_rx *rx;
	__u32 z = 0, g32;
	__u64 g, now;

	if ((void *)(th + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP_) ||
	    ip->protocol != IPPROTO_TCP_ ||
	    th->source != bpf_htons(EMIT_SRV_PORT) ||
	    th->dest != bpf_htons(EMIT_CLI_PORT))
		return XDP_PASS;
	rx = bpf_map_lookup_elem(&emit_rx, &z);
	if (!rx)
		return XDP_DROP;
	now = bpf_ktime_get_ns();
	if (!rx->frames && !rx->bad)
		rx->first_ns = now;
	rx->last_ns = now;
	if (data + EMIT_FRAME != data_end || ip->ihl != 5 || th->doff != 8) {
		rx->bad++;
		return XDP_DROP;
	}
	if (rx->verify && !csum_ok(ctx))
		rx->csum_bad++;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + EMIT_HDR > data_end)
		return XDP_DROP;
	__builtin_memcpy(&g32, data + EMIT_OFF_TSVAL, 4);
	g = bpf_ntohl(g32);
	rx->frames++;
	rx->bytes += EMIT_FRAME;
	if (g == rx->next) {
		rx->next = g + 1;
	} else if (g > rx->next) {
		rx->gaps++;
		rx->missing += g - rx->next;
		rx->next = g + 1;
	} else {
		rx->reorder++;
	}
	return next_trigger(ctx, g32);
}
