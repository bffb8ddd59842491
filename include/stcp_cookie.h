/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The handshake continuation: how the server's ISN and the SYN-ACK's TSval
 * carry a MAC and the client's negotiated options. docs/PROTOCOL.md explains
 * the choices; this header is the one definition both sides compute with.
 *
 * ISN (32 bits):  [31:10] MAC, 22 bits
 *                 [9:8]   coarse clock, low 2 bits
 *                 [7:0]   negotiated options (STCP_OPT_*)
 * SYN-ACK TSval:  [31:24] position field: ((ISN >> 16) - 1) & 0xff, so every
 *                         later segment, whose field is (seq >> 16) & 0xff
 *                         with seq > ISN, is PAWS-newer than the SYN-ACK
 *                 [23:0]  MAC, 24 more bits from the same SipHash output
 */
#ifndef STCP_COOKIE_H
#define STCP_COOKIE_H

#include "stcp_types.h"
#include "stcp_maps.h"
#include "stcp_siphash.h"

/* Coarse clock: TAI nanoseconds >> 36, about 68.7 s a tick. */
#define STCP_CLOCK_SHIFT 36
/* A cookie minted at tick t is accepted at ticks t and t + 1. */
#define STCP_COOKIE_MAX_AGE 1
/* How far back a failed cookie is checked to tell "stale" from "forged". */
#define STCP_COOKIE_STALE_LOOKBACK 3

#define STCP_ISN_MAC_SHIFT 10
#define STCP_ISN_MAC_BITS 22
#define STCP_ISN_CLOCK_SHIFT 8
#define STCP_ISN_CLOCK_MASK 0x3u
#define STCP_ISN_OPT_MASK 0xffu

/* Option byte, low 8 bits of the ISN and part of the MAC input. */
#define STCP_OPT_TS 0x01u /* timestamps negotiated */
#define STCP_OPT_SACK 0x02u /* SACK permitted */
#define STCP_OPT_WS_SHIFT 2 /* 4 bits: 0 no window scaling, else wscale+1 */
#define STCP_OPT_WS_MASK 0x0fu
#define STCP_OPT_MSS_SHIFT 6 /* 2 bits: index into stcp_mss_table */
#define STCP_OPT_MSS_MASK 0x03u

#define STCP_MAX_WSCALE 14

/* TSval: position field in the top 8 bits, one step per 64 KB of sequence. */
#define STCP_TS_POS_SHIFT 24
#define STCP_TS_SEQ_SHIFT 16
#define STCP_TS_LOW_MASK 0x00ffffffu

/* Client MSS classes; the cookie keeps the largest one not above the offer. */
#define STCP_MSS_TABLE_INIT { 536, 1220, 1440, 1460 }

struct stcp_flow {
	__u32 caddr[4]; /* client address, as on the wire; IPv4 in [0] */
	__u32 saddr[4]; /* service address */
	__u16 cport; /* network order */
	__u16 sport;
	__u32 family; /* STCP_AF_INET or STCP_AF_INET6 */
};

STCP_INLINE __u64 stcp_cookie_hash(__u64 k0, __u64 k1,
				   const struct stcp_flow *f, __u32 cisn,
				   __u32 tick, __u32 opts)
{
	struct stcp_sip s;

	stcp_sip_init(&s, k0, k1);
	stcp_sip_word(&s, ((__u64)f->caddr[1] << 32) | f->caddr[0]);
	stcp_sip_word(&s, ((__u64)f->caddr[3] << 32) | f->caddr[2]);
	stcp_sip_word(&s, ((__u64)f->saddr[1] << 32) | f->saddr[0]);
	stcp_sip_word(&s, ((__u64)f->saddr[3] << 32) | f->saddr[2]);
	stcp_sip_word(&s, ((__u64)f->cport << 48) | ((__u64)f->sport << 32) |
				  cisn);
	stcp_sip_word(&s, ((__u64)tick << 32) | (f->family << 16) |
				  (opts & STCP_ISN_OPT_MASK));
	return stcp_sip_final(&s, 6);
}

STCP_INLINE __u32 stcp_isn_from_hash(__u64 h, __u32 tick, __u32 opts)
{
	return ((__u32)(h >> (64 - STCP_ISN_MAC_BITS)) << STCP_ISN_MAC_SHIFT) |
	       ((tick & STCP_ISN_CLOCK_MASK) << STCP_ISN_CLOCK_SHIFT) |
	       (opts & STCP_ISN_OPT_MASK);
}

/* The TSval position field of a segment whose first byte is at seq. */
STCP_INLINE __u32 stcp_ts_pos_of_seq(__u32 seq)
{
	return (seq >> STCP_TS_SEQ_SHIFT) & 0xffu;
}

STCP_INLINE __u32 stcp_synack_tsval(__u64 h, __u32 isn)
{
	__u32 pos = (stcp_ts_pos_of_seq(isn) - 1) & 0xffu;

	return (pos << STCP_TS_POS_SHIFT) | ((__u32)h & STCP_TS_LOW_MASK);
}

STCP_INLINE __u32 stcp_isn_opts(__u32 isn)
{
	return isn & STCP_ISN_OPT_MASK;
}

/* The full tick a cookie was minted at, given its 2 low bits and now. */
STCP_INLINE __u32 stcp_isn_tick(__u32 isn, __u32 now_tick)
{
	__u32 low = (isn >> STCP_ISN_CLOCK_SHIFT) & STCP_ISN_CLOCK_MASK;

	return now_tick - ((now_tick - low) & STCP_ISN_CLOCK_MASK);
}

STCP_INLINE __u32 stcp_opts_wscale(__u32 opts)
{
	return (opts >> STCP_OPT_WS_SHIFT) & STCP_OPT_WS_MASK;
}

STCP_INLINE __u32 stcp_opts_mss_idx(__u32 opts)
{
	return (opts >> STCP_OPT_MSS_SHIFT) & STCP_OPT_MSS_MASK;
}

#endif /* STCP_COOKIE_H */
