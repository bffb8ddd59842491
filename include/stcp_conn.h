/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Keep-alive: the one thing the packets of a later response cannot carry
 * (docs/PROTOCOL.md 6 and 7.10). A connection's first response starts at
 * our ISN + 1, which the flow hash in the ACK number recovers; a later
 * response starts wherever the earlier ones ended, a sum no packet tells.
 * So when a connection's second (third, ...) request is answered, the fast
 * path writes where that response starts into stcp_conns, and the data
 * TSval of its segments says "look it up" (STCP_DTS_KA).
 *
 * stcp_conns: BPF_MAP_TYPE_LRU_HASH of the loaded program, struct
 * stcp_flow -> struct stcp_conn. Only connections that have made a second
 * request have an entry; a connection-per-request client never does,
 * unless it sent no timestamps (docs/PROTOCOL.md 7.11): then nothing
 * carries the response slot back, and every response has an entry. The
 * map is bounded: when a connection's entry has been evicted, its next
 * packet is reset (conn_missing), which a client sees like a server that
 * closed an idle connection.
 */
#ifndef STCP_CONN_H
#define STCP_CONN_H

#include "stcp_types.h"
#include "stcp_cookie.h"

#define STCP_CONNS_MAX 65536

/* The response ends with our FIN (a Connection: close variant). */
#define STCP_CONN_F_CLOSE 0x1u
/* The client sent no timestamps: every response of the connection, the
 * first too, has an entry, and high stands in for what a TSecr tells. */
#define STCP_CONN_F_NOTS 0x2u
/* Written by stcpd when Redis has no entry for the flow either, with high
 * the time (CLOCK_MONOTONIC_COARSE, ns >> 20): the packet it runs again,
 * and the flow's for STCP_CONN_GONE_MS, are reset; after that a packet of
 * the flow makes stcpd look again. */
#define STCP_CONN_F_GONE 0x4u
#define STCP_CONN_GONE_MS 100

struct stcp_conn {
	__u32 base;	 /* our sequence number of the response's byte 0 */
	__u32 req_start; /* the client's sequence number of its first byte */
	__u32 slot;	 /* stcp_resps slot of the response */
	__u32 total;	 /* response bytes (a HEAD's: its header) */
	__u32 opts;	 /* the option byte: MSS class, window scale, SACK */
	__u32 flags;	 /* STCP_CONN_F_* */
	__u32 high;	 /* NOTS: segments [0, high) have been sent */
	__u32 pad;
};

/*
 * With --redis (stcp_conn_sync set by stcpd), every entry the fast path
 * writes also goes to stcpd on the stcp_misses ring as this record
 * (STCP_EV_CONN_PUT), and stcpd stores it in Redis under
 * PREFIX "conn:" + the flow in hex, for STCP_CONN_TTL_S seconds. A packet
 * that needs an entry this replica does not have goes to stcpd whole
 * (STCP_EV_CONN_MISS), which looks the flow up in Redis, writes what it
 * finds (or a STCP_CONN_F_GONE entry) into stcp_conns and runs the packet
 * through the fast path again: another replica continues the connection.
 */
#define STCP_CONN_TTL_S 600
struct stcp_conn_event {
	__u32 kind; /* STCP_EV_CONN_PUT */
	__u32 pad;
	struct stcp_flow flow;
	struct stcp_conn conn;
};

/*
 * The stall timer (docs/PROTOCOL.md 7.13): a client whose last segments
 * of a long response were lost has nothing left to ACK, and only its own
 * retransmission timer, which backs off, ends the stall. For responses of
 * more than STCP_STALL_MIN_SEGS segments the fast path keeps, per
 * connection, the client's latest ACK (stcp_stalls, an LRU hash of
 * STCP_STALLS_MAX whose value holds a bpf_timer) and arms a timer with
 * every ACK. When it fires, STCP_STALL_BASE_MS after the last ACK (then
 * twice that, and so on, STCP_STALL_MAX_FIRES times), it hands the ACK to
 * stcpd as this record (STCP_EV_STALL), which builds the segment the
 * client's timer would send (its sequence number less one byte, the last
 * request byte: a probe) and runs it through the fast path: every hole is
 * resent, or everything from the ACK point up to the window.
 */
#define STCP_STALL_MIN_SEGS 64
#define STCP_STALLS_MAX 16384
#define STCP_STALL_BASE_MS 40
#define STCP_STALL_MAX_FIRES 6
struct stcp_stall_ack {
	__u32 seq;   /* the client's sequence number: its next byte */
	__u32 ack;   /* its acknowledgement number */
	__u32 tsval; /* its TSval and TSecr (has_ts) */
	__u32 tsecr;
	__u32 sack[8]; /* its SACK blocks, host order */
	__u32 ifindex; /* where it came in */
	__u16 window;  /* as sent */
	__u8 nsack;
	__u8 has_ts;
	__u8 eth_src[6]; /* the client's */
	__u8 eth_dst[6]; /* ours */
};
struct stcp_stall_event {
	__u32 kind; /* STCP_EV_STALL */
	__u32 pad;
	struct stcp_flow flow;
	struct stcp_stall_ack a;
};

#endif /* STCP_CONN_H */
