// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only XDP program for the HTTP request parser (bpf/http.h): copies the
 * TCP payload of the frame into the per-CPU scratch map as the data path
 * will, runs stcp_http_parse() on it and leaves the result in the scratch
 * map's req. Returns XDP_DROP after a parse, XDP_PASS for a frame that is
 * not Ethernet + IPv4/IPv6 + TCP, XDP_ABORTED if the copy failed.
 *
 * copy_only (set by the runner through the skeleton's .bss) skips the
 * parse: the baseline the cost figure is measured against.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "../../bpf/http.h"

#define ETH_P_IP_   0x0800
#define ETH_P_IPV6_ 0x86DD

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stcp_http_scratch);
} http_scratch SEC(".maps");

__u32 copy_only;

SEC("xdp")
int http_parse(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct stcp_http_scratch *s;
	struct ethhdr *eth = data;
	struct tcphdr *th;
	__u32 off, end, n, zero = 0;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP_)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_TCP)
			return XDP_PASS;
		off = sizeof(*eth) + ip->ihl * 4;
		end = sizeof(*eth) + bpf_ntohs(ip->tot_len);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6_)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_TCP)
			return XDP_PASS;
		off = sizeof(*eth) + sizeof(*ip6);
		end = off + bpf_ntohs(ip6->payload_len);
	} else {
		return XDP_PASS;
	}
	if (off > 128)
		return XDP_PASS;
	th = data + off;
	if ((void *)(th + 1) > data_end)
		return XDP_PASS;
	off += th->doff * 4;
	if (end > data_end - data)
		end = data_end - data;
	n = end > off ? end - off : 0;

	s = bpf_map_lookup_elem(&http_scratch, &zero);
	if (!s)
		return XDP_ABORTED;
	if (n > STCP_HTTP_MAX_REQ)
		n = STCP_HTTP_MAX_REQ;
	if (n) {
		/* 1..STCP_HTTP_MAX_REQ in a form the verifier can follow. */
		__u32 m = n - 1;

		asm volatile("" : "+r"(m));
		if (bpf_xdp_load_bytes(ctx, off, s->buf,
				       (m & (STCP_HTTP_MAX_REQ - 1)) + 1))
			return XDP_ABORTED;
	}
	if (!copy_only)
		stcp_http_parse(s->buf, n, &s->req);
	return XDP_DROP;
}
