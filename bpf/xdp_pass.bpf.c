// SPDX-License-Identifier: GPL-2.0
/*
 * Pass-through program for the client side of a veth pair: native XDP_TX on
 * one veth end is only delivered when its peer has an XDP program too.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_PASS;
}
