/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Requests that span several segments (docs/PROTOCOL.md 7.8). The fast path
 * hands stcpd every segment of such a request, whole (STCP_EV_REQ_FIRST,
 * STCP_EV_REQ_CONT on the stcp_misses ring). This joins them per
 * connection and, once the header section has ended, gives back a frame to
 * run through the fast path instead: the first segment's headers (its
 * sequence number passes the handshake cookie) with a short request that
 * means the same to the fast path (request line, Host, If-None-Match,
 * Connection, Range).
 * Bounded: STCP_REASM_CONNS connections, STCP_REASM_MAX bytes each, entries
 * dropped REASM_TTL_S after their last segment. Functions return 0 or a
 * negative errno.
 */
#ifndef STCP_DAEMON_REASM_H
#define STCP_DAEMON_REASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define STCP_REASM_CONNS 256
/* Room for a frame that runs through the fast path: one page, less the
 * XDP headroom and the skb_shared_info that BPF_PROG_RUN keeps. */
#define STCP_REASM_FRAME_MAX 3072

struct stcp_reasm_conn;

struct stcp_reasm {
	struct stcp_reasm_conn *conns; /* STCP_REASM_CONNS */
	time_t (*clock)(void);	       /* seconds; tests move it */
	uint64_t joined;	       /* requests completed, ever */
	uint64_t too_big;	       /* answered 431, ever */
	uint64_t dropped;	       /* malformed or evicted, ever */
};

int stcp_reasm_init(struct stcp_reasm *r);
void stcp_reasm_free(struct stcp_reasm *r);

/*
 * Adds one segment's frame (kind STCP_EV_REQ_FIRST or STCP_EV_REQ_CONT).
 * Returns 1 and fills out (STCP_REASM_FRAME_MAX bytes) and *out_len when a
 * frame is to be run through the fast path now: the request is complete,
 * or the client resent its first segment after it was; 0 when more
 * segments are needed; a negative errno for a frame that cannot be used.
 */
/* Or'd into kind: a segment read back from Redis, not from the network. */
#define STCP_REASM_FROM_REDIS 0x100u
int stcp_reasm_add(struct stcp_reasm *r, uint32_t kind, const uint8_t *frame,
		   uint32_t len, uint8_t *out, uint32_t *out_len);

/* A frame's TCP sequence number (0 and *seq set), or -EINVAL. */
int stcp_reasm_seq(const uint8_t *frame, uint32_t len, uint32_t *seq);

#endif /* STCP_DAEMON_REASM_H */
