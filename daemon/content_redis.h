/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Redis as a content source: objects written by `stcpctl content add|rm`
 * and served by every stcpd given the same --redis and --redis-prefix.
 *
 * The layout, under PREFIX (--redis-prefix, default "stcp:"):
 *
 *   PREFIX "content:gen"    a counter (INCR), bumped by every add and rm
 *   PREFIX "content:paths"  a sorted set: member the path, score the
 *                           version of the object stored at it
 *   PREFIX "content:" PATH  a hash per object (PATH starts with '/', so it
 *                           never meets the two keys above):
 *                             body      the bytes, binary-safe
 *                             type      Content-Type (absent: from the
 *                                       path's extension, as for files)
 *                             version   decimal, > 0: the value of
 *                                       content:gen after the add that
 *                                       wrote it, so unique and rising
 *                             mtime_ns  decimal ns since the epoch, the
 *                                       time of the add (Last-Modified)
 *
 * An add or rm is one Lua script (INCR, hash, sorted set), so a reader sees
 * every object whole. stcpd polls content:gen every second (one GET);
 * when it moved it reads the sorted set (ZRANGE WITHSCORES) and fetches
 * (HMGET) only the objects whose version it does not hold. A blob wins
 * over a file under --root at the same path (daemon/cache.h).
 *
 * stcpd's side runs on the key keeper's link (redis_keys.h): blocking
 * hiredis calls with 500 ms timeouts, from the main loop; while Redis is
 * away the cache keeps what it has and nothing is polled.
 */
#ifndef STCP_CONTENT_REDIS_H
#define STCP_CONTENT_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STCP_CONTENT_KEY "content:"
/* The most body bytes stcpctl sends: Redis's own limit on a string
 * (proto-max-bulk-len, 512 MB by default). */
#define STCP_CONTENT_MAX_BODY (512ull * 1024 * 1024)

struct stcp_cache;
struct stcp_keyd;
struct redisContext;
struct stcp_content_redis;

/*
 * stcpd: the Redis source of cache c, on kd's link; also sets c's
 * blob_fetch, so that a miss on an evicted blob reads it again. Returns 0
 * or -ENOMEM.
 */
int stcp_content_redis_new(struct stcp_content_redis **out,
			   struct stcp_keyd *kd, const char *prefix,
			   struct stcp_cache *c);
void stcp_content_redis_free(struct stcp_content_redis *cr);
/*
 * Polls the generation when due (force: now, and the objects are read
 * again even if it did not move) and brings the cache in line when it
 * moved. Returns true when the cache changed.
 */
bool stcp_content_redis_run(struct stcp_content_redis *cr, bool force);
/* Milliseconds until the next poll; -1 while the link is down (the key
 * keeper's timeout covers the reconnection). */
long stcp_content_redis_timeout_ms(const struct stcp_content_redis *cr);

/*
 * stcpctl: stores body as the object at path (checked by the caller) with
 * type (NULL: by extension) and mtime_ns, and bumps the generation; *version
 * gets the object's version. 0, or -EIO with why.
 */
int stcp_content_redis_add(struct redisContext *rc, const char *prefix,
			   const char *path, const uint8_t *body, size_t len,
			   const char *type, uint64_t mtime_ns,
			   uint64_t *version, char *why, size_t why_len);
/* Removes the object at path and bumps the generation (*gen gets it).
 * -ENOENT when there is none (nothing changes), -EIO with why. */
int stcp_content_redis_rm(struct redisContext *rc, const char *prefix,
			  const char *path, uint64_t *gen, char *why,
			  size_t why_len);

#endif /* STCP_CONTENT_REDIS_H */
