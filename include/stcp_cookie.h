/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The handshake continuation: how the server's ISN and the SYN-ACK's TSval
 * carry a MAC, the negotiated options and the flow hash. docs/PROTOCOL.md
 * (sections 2-5) explains the choices; this header is the one definition
 * that the XDP program and userspace (tests) both compute with.
 *
 * With timestamps:
 *   ISN   = [31:24] H1 >> 56 | [23:0] H0 (flow hash F, 24 bits)
 *   TSval = [31:22] position field | [21] tick & 1 | [20:14] option byte |
 *           [13:0] H1 (14 bits)
 * The position field of a segment is (seq >> 10) & 0x3ff of the sequence
 * number it stands for; the SYN-ACK's is one less than the ISN's, so every
 * later segment is PAWS-newer. ISN bits 10-19 lie in the flow hash, so the
 * field is recomputable from any later packet.
 * Without timestamps:
 *   ISN   = [31:24] H1 >> 56 | [23] tick & 1 | [22:16] option byte |
 *           [15:0] H0 (flow hash F, 16 bits)
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

/* Option byte (7 bits): an input of H1 and carried in the cookie. */
#define STCP_OPT_MSS_MASK 0x03u /* bits 0-1: index into the MSS classes */
#define STCP_OPT_WS_SHIFT 2 /* bits 2-5: 0 no window scaling, else ws + 1 */
#define STCP_OPT_WS_MASK 0x0fu
#define STCP_OPT_SACK 0x40u /* bit 6: SACK permitted */
#define STCP_OPT_MASK 0x7fu
/* RFC 7323 allows 14; 13 keeps the window-scale code below 15, so that no
 * data TSval has all of its low 22 bits set (STCP_DTS_KA). A client with 14
 * is taken to have 13: its window looks half as large as it is. */
#define STCP_MAX_WSCALE 13

/* Client MSS classes; the cookie keeps the largest one not above the offer. */
#define STCP_MSS_CLASS_0 536
#define STCP_MSS_CLASS_1 1220
#define STCP_MSS_CLASS_2 1440
#define STCP_MSS_CLASS_3 1460

/* Bit layout, timestamps negotiated. */
#define STCP_ISN_MAC_SHIFT 24
#define STCP_TS_F_MASK 0x00ffffffu
#define STCP_TS_POS_SHIFT 22
#define STCP_TS_POS_MASK 0x3ffu
#define STCP_TS_SEQ_SHIFT 10 /* one position step per 1 KB of sequence */
#define STCP_TS_TICK_BIT 21
#define STCP_TS_OPT_SHIFT 14
#define STCP_TS_MAC_MASK 0x00003fffu
#define STCP_TS_LOW_MASK 0x003fffffu /* all but the position field */
/* Bit layout, no timestamps. */
#define STCP_NTS_TICK_BIT 23
#define STCP_NTS_OPT_SHIFT 16
#define STCP_NTS_F_MASK 0x0000ffffu

struct stcp_flow {
	__u32 caddr[4]; /* client address, as on the wire; IPv4 in [0] */
	__u32 saddr[4]; /* service address */
	__u16 cport; /* network order */
	__u16 sport;
	__u32 family; /* STCP_AF_INET or STCP_AF_INET6 */
};

STCP_INLINE void stcp_sip_flow(struct stcp_sip *s, const struct stcp_flow *f)
{
	stcp_sip_word(s, ((__u64)f->caddr[1] << 32) | f->caddr[0]);
	stcp_sip_word(s, ((__u64)f->caddr[3] << 32) | f->caddr[2]);
	stcp_sip_word(s, ((__u64)f->saddr[1] << 32) | f->saddr[0]);
	stcp_sip_word(s, ((__u64)f->saddr[3] << 32) | f->saddr[2]);
}

/* H0: the flow hash. Recomputable from any packet of the connection. */
STCP_INLINE __u64 stcp_flow_hash(__u64 k0, __u64 k1, const struct stcp_flow *f)
{
	struct stcp_sip s;

	stcp_sip_init(&s, k0, k1);
	stcp_sip_flow(&s, f);
	stcp_sip_word(&s, ((__u64)f->cport << 48) | ((__u64)f->sport << 32) |
				  f->family);
	return stcp_sip_final(&s, 5);
}

/* H1: the handshake MAC over the flow, the client's ISN, tick and options. */
STCP_INLINE __u64 stcp_handshake_mac(__u64 k0, __u64 k1,
				     const struct stcp_flow *f, __u32 cisn,
				     __u32 tick, __u32 opts)
{
	struct stcp_sip s;

	stcp_sip_init(&s, k0, k1);
	stcp_sip_flow(&s, f);
	stcp_sip_word(&s, ((__u64)f->cport << 48) | ((__u64)f->sport << 32) |
				  cisn);
	stcp_sip_word(&s, ((__u64)tick << 32) | (f->family << 16) |
				  (opts & STCP_OPT_MASK));
	return stcp_sip_final(&s, 6);
}

STCP_INLINE __u32 stcp_isn_ts(__u64 h0, __u64 h1)
{
	return ((__u32)(h1 >> 56) << STCP_ISN_MAC_SHIFT) |
	       ((__u32)h0 & STCP_TS_F_MASK);
}

STCP_INLINE __u32 stcp_isn_nots(__u64 h0, __u64 h1, __u32 tick, __u32 opts)
{
	return ((__u32)(h1 >> 56) << STCP_ISN_MAC_SHIFT) |
	       ((tick & 1) << STCP_NTS_TICK_BIT) |
	       ((opts & STCP_OPT_MASK) << STCP_NTS_OPT_SHIFT) |
	       ((__u32)h0 & STCP_NTS_F_MASK);
}

/* The position field of the segment that stands for sequence number seq. */
STCP_INLINE __u32 stcp_ts_pos(__u32 seq)
{
	return (seq >> STCP_TS_SEQ_SHIFT) & STCP_TS_POS_MASK;
}

/* The SYN-ACK's position field: one step before anything sent after it. */
STCP_INLINE __u32 stcp_ts_pos_synack(__u32 isn)
{
	return (stcp_ts_pos(isn) - 1) & STCP_TS_POS_MASK;
}

STCP_INLINE __u32 stcp_tsval_make(__u32 pos, __u64 h1, __u32 tick,
				  __u32 opts)
{
	return ((pos & STCP_TS_POS_MASK) << STCP_TS_POS_SHIFT) |
	       ((tick & 1) << STCP_TS_TICK_BIT) |
	       ((opts & STCP_OPT_MASK) << STCP_TS_OPT_SHIFT) |
	       ((__u32)h1 & STCP_TS_MAC_MASK);
}

/* The same cookie, standing for another sequence number (the FIN's). */
STCP_INLINE __u32 stcp_tsval_at(__u32 tsval, __u32 seq)
{
	return (stcp_ts_pos(seq) << STCP_TS_POS_SHIFT) |
	       (tsval & STCP_TS_LOW_MASK);
}

/*
 * Data segments (docs/PROTOCOL.md 7.2): the TSval carries what the server
 * needs again when the client echoes it.
 *   [31:22] position field of the segment's sequence number
 *   [21:19] response offset >> 24
 *   [18:17] client MSS class      [16:13] client window-scale code
 *   [12]    SACK permitted         [11:0]  response slot (stcp_resps)
 * The key is not named: the flow hash under the current key, else the
 * previous one, must make the ACK number a segment boundary.
 *
 * A later response of a keep-alive connection (7.10) has all of bits 21:0
 * set instead (STCP_DTS_KA; the window-scale code never reaches 15, so no
 * TSval of the layout above looks like it): stcp_conns has its slot, start
 * and options. Being the largest
 * value of the low bits, it keeps the TSval from going back in PAWS order
 * where a response's first segment shares a 1 KB block with the last
 * segment of the response before it.
 */
#define STCP_DTS_HI_SHIFT 19
#define STCP_DTS_HI_MASK 0x7u
#define STCP_DTS_MSS_SHIFT 17
#define STCP_DTS_WS_SHIFT 13
#define STCP_DTS_SACK_BIT 12
#define STCP_DTS_SLOT_MASK 0xfffu
#define STCP_DTS_KA STCP_TS_LOW_MASK

STCP_INLINE __u32 stcp_data_tsval(__u32 seq, __u32 hi, __u32 opts,
				  __u32 resp_slot)
{
	return (stcp_ts_pos(seq) << STCP_TS_POS_SHIFT) |
	       ((hi & STCP_DTS_HI_MASK) << STCP_DTS_HI_SHIFT) |
	       ((opts & STCP_OPT_MSS_MASK) << STCP_DTS_MSS_SHIFT) |
	       (((opts >> STCP_OPT_WS_SHIFT) & STCP_OPT_WS_MASK)
		<< STCP_DTS_WS_SHIFT) |
	       (!!(opts & STCP_OPT_SACK) << STCP_DTS_SACK_BIT) |
	       (resp_slot & STCP_DTS_SLOT_MASK);
}

/* The option byte a data TSval carries. */
STCP_INLINE __u32 stcp_dts_opts(__u32 tsval)
{
	return ((tsval >> STCP_DTS_MSS_SHIFT) & STCP_OPT_MSS_MASK) |
	       (((tsval >> STCP_DTS_WS_SHIFT) & STCP_OPT_WS_MASK)
		<< STCP_OPT_WS_SHIFT) |
	       ((tsval >> STCP_DTS_SACK_BIT) & 1 ? STCP_OPT_SACK : 0);
}

/* Whether an echoed data TSval is a keep-alive response's (7.10). */
STCP_INLINE int stcp_dts_is_ka(__u32 tsecr)
{
	return (tsecr & STCP_TS_LOW_MASK) == STCP_DTS_KA;
}

/* What a cookie says about itself before any hash is computed. */
struct stcp_cookie_fields {
	__u32 f; /* flow hash bits */
	__u32 f_mask;
	__u32 opts;
	__u32 tick_parity;
	__u32 pos; /* timestamps only: the TSecr's position field */
};

STCP_INLINE void stcp_cookie_fields(__u32 isn, int has_ts, __u32 tsecr,
				    struct stcp_cookie_fields *c)
{
	if (has_ts) {
		c->f_mask = STCP_TS_F_MASK;
		c->opts = (tsecr >> STCP_TS_OPT_SHIFT) & STCP_OPT_MASK;
		c->tick_parity = (tsecr >> STCP_TS_TICK_BIT) & 1;
		c->pos = tsecr >> STCP_TS_POS_SHIFT;
	} else {
		c->f_mask = STCP_NTS_F_MASK;
		c->opts = (isn >> STCP_NTS_OPT_SHIFT) & STCP_OPT_MASK;
		c->tick_parity = (isn >> STCP_NTS_TICK_BIT) & 1;
		c->pos = 0;
	}
	c->f = isn & c->f_mask;
}

/* The most recent tick not after now with the given parity. */
STCP_INLINE __u32 stcp_tick_with_parity(__u32 now, __u32 parity)
{
	return (now & 1) == (parity & 1) ? now : now - 1;
}

STCP_INLINE __u32 stcp_opts_wscale_code(__u32 opts)
{
	return (opts >> STCP_OPT_WS_SHIFT) & STCP_OPT_WS_MASK;
}

STCP_INLINE __u32 stcp_opts_mss_class(__u32 opts)
{
	return opts & STCP_OPT_MSS_MASK;
}

#endif /* STCP_COOKIE_H */
