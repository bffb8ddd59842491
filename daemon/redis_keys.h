/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stcpd's key keeper: the rotation schedule (--key-rotate-s), rotations on
 * request (SIGUSR1, sent by `stcpctl keys rotate`) and, with --redis, the
 * MAC keys shared by every replica that uses the same Redis.
 *
 * The key record is the hash PREFIX "keys" = {gen, cur, prev, rotated_at}:
 * gen a decimal generation, cur and prev 32 hex digits (16 bytes: k0 then
 * k1, each little-endian; prev may be empty), rotated_at unix seconds. A
 * rotation takes the lock PREFIX "rotate-lock" and moves cur to prev in one
 * Lua script that also checks gen, so concurrent replicas never fork the key
 * history. Replicas poll gen every second and install a newer record. The
 * fast path never waits for Redis: when it is away stcpd serves with the
 * keys it has and reconnects with a backoff.
 *
 * Everything runs in the caller's thread from stcp_keyd_run(); nothing
 * blocks longer than the connect and command timeouts (500 ms each).
 */
#ifndef STCP_REDIS_KEYS_H
#define STCP_REDIS_KEYS_H

#include <stdbool.h>
#include <stdint.h>

#define STCP_REDIS_DEFAULT_PREFIX "stcp:"
#define STCP_KEY_ROTATE_DEFAULT_S 3600
/* Most seconds --key-rotate-s takes: a year. */
#define STCP_KEY_ROTATE_MAX_S (366u * 86400u)

/* A parsed --redis value. */
struct stcp_redis_addr {
	bool is_unix;
	char host[256]; /* without the brackets of an IPv6 address */
	int port;
	char path[108]; /* sizeof(sun_path) */
};

/* "HOST:PORT", "[V6ADDR]:PORT" or "unix:PATH"; -EINVAL otherwise. */
int stcp_redis_addr_parse(const char *s, struct stcp_redis_addr *a);

struct stcp_keyd_opts {
	const char *redis;     /* --redis, NULL for local keys only */
	const char *prefix;    /* --redis-prefix */
	unsigned int rotate_s; /* --key-rotate-s, 0: no schedule */
};

/* What an operator may want to know about the Redis link; logged (the
 * stcp_cfg map has no spare room for it). */
struct stcp_keyd_stats {
	bool redis_connected;
	unsigned long reconnects;
	char last_error[128];
};

struct stcp_keyd;

/*
 * Starts the keeper on maps that already hold a local key. With --redis it
 * connects once and installs the shared keys (creating the record from the
 * local key if there is none); if Redis cannot be reached it warns and goes
 * on with the local key. Returns 0 or a negative errno (memory, bad
 * options), never a Redis failure.
 */
int stcp_keyd_new(struct stcp_keyd **out, const struct stcp_keyd_opts *o,
		  int keys_fd, int cfg_fd);
void stcp_keyd_free(struct stcp_keyd *kd);

/* Asks for a rotation (SIGUSR1); done by the next stcp_keyd_run(). */
void stcp_keyd_request_rotate(struct stcp_keyd *kd);

/* Does what is due: polling, reconnecting, scheduled or asked rotations. */
void stcp_keyd_run(struct stcp_keyd *kd);

/* Milliseconds until stcp_keyd_run() has something to do; -1: nothing. */
long stcp_keyd_timeout_ms(const struct stcp_keyd *kd);

void stcp_keyd_get_stats(const struct stcp_keyd *kd,
			 struct stcp_keyd_stats *st);

/*
 * The keeper's link, for the other users of the same Redis (the content
 * source, content_redis.c), so that one connection, one reconnection
 * schedule and one outage warning serve both. stcp_keyd_command() returns
 * NULL while the link is down, and when the command fails on the link
 * (which it then drops, logs as the keeper does, and reconnects later);
 * an error reply is returned like any other.
 */
struct redisReply;
struct redisContext;
bool stcp_keyd_connected(const struct stcp_keyd *kd);
struct redisReply *stcp_keyd_command(struct stcp_keyd *kd, int argc,
				     const char **argv, const size_t *lens);

/*
 * A connection of one's own (stcpctl): the 500 ms connect and command
 * timeouts, and AUTH from STCP_REDIS_USER and STCP_REDIS_PASSWORD as
 * stcpd does. NULL and why on failure.
 */
struct redisContext *stcp_redis_connect(const struct stcp_redis_addr *a,
					char *why, size_t len);

#endif /* STCP_REDIS_KEYS_H */
