/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The overflow state in Redis (include/stcp_conn.h, docs/PROTOCOL.md
 * 7.12): stcp_conns entries, which the fast path writes in the replica
 * that answered a request, stored under PREFIX "conn:" + the flow in hex
 * (80 digits) as the 32 bytes of struct stcp_conn, with a TTL, so that
 * another replica given the same --redis can continue the connection.
 *
 * Its own hiredis link, apart from the key keeper's: writes are pipelined
 * (queued by stcp_connd_put(), sent and their replies read by
 * stcp_connd_flush()), so a burst of requests costs one round trip per
 * burst, not per request. A lookup waits for its reply (500 ms at most).
 * When Redis is away, writes are dropped (counted), lookups fail, stcpd
 * says so once and reconnects at most once a second.
 */
#ifndef STCP_REDIS_CONNS_H
#define STCP_REDIS_CONNS_H

#include <stdbool.h>
#include <stdint.h>

#include "stcp_conn.h"

struct stcp_connd;

struct stcp_connd_stats {
	uint64_t puts;	     /* entries written to Redis */
	uint64_t put_lost;   /* entries not written: Redis away or failing */
	uint64_t gets_found; /* lookups that found the entry */
	uint64_t gets_none;  /* lookups that found nothing */
	uint64_t get_failed; /* lookups Redis could not answer */
};

/* redis: the --redis value; prefix: --redis-prefix. Connects lazily. */
int stcp_connd_new(struct stcp_connd **out, const char *redis,
		   const char *prefix, unsigned int ttl_s);
void stcp_connd_free(struct stcp_connd *cd);

/* Queues the entry's write; sent by the next stcp_connd_flush(). */
void stcp_connd_put(struct stcp_connd *cd, const struct stcp_flow *flow,
		    const struct stcp_conn *c);

/* Writes the entry and waits for Redis to have it: 0, or -EIO. */
int stcp_connd_set(struct stcp_connd *cd, const struct stcp_flow *flow,
		   const struct stcp_conn *c);

/* Sends the queued writes and reads their replies. */
void stcp_connd_flush(struct stcp_connd *cd);

/* Looks the flow up: 0 and *c filled, -ENOENT, or -EIO (Redis away). */
int stcp_connd_get(struct stcp_connd *cd, const struct stcp_flow *flow,
		   struct stcp_conn *c);

void stcp_connd_get_stats(const struct stcp_connd *cd,
			  struct stcp_connd_stats *st);

/*
 * Requests in several segments across replicas (docs/PROTOCOL.md 7.8):
 * every segment a replica hands to its reassembly also goes to Redis, in
 * the hash PREFIX "reasm:" + the flow in hex (field "f" for the first
 * segment's frame, "c" + its sequence number in hex for a later one),
 * which lives STCP_CONND_REASM_TTL_S.
 *
 * stcp_connd_reasm_add() stores frame (first: whether it is the first
 * segment); with fetch, it also reads the hash back, after the write, in
 * the same round trip, and calls each(ctx, first, frame, len) for every
 * frame in it, the one just written included. Returns the number of
 * frames seen, or -EIO (Redis away).
 */
#define STCP_CONND_REASM_TTL_S 30
int stcp_connd_reasm_add(struct stcp_connd *cd, const struct stcp_flow *flow,
			 bool first, uint32_t seq, const uint8_t *frame,
			 uint32_t len, bool fetch,
			 void (*each)(void *ctx, bool first,
				      const uint8_t *frame, uint32_t len),
			 void *ctx);


/* The Redis key of a flow: PREFIX "conn:" and 80 hex digits. */
int stcp_connd_key(const char *prefix, const struct stcp_flow *flow,
		   char *out, size_t len);

#endif /* STCP_REDIS_CONNS_H */
