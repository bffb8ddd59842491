// SPDX-License-Identifier: GPL-2.0
/*
 * Redis as a content source (content_redis.h has the layout): stcpd's poll
 * and sync on the key keeper's link, the fetch of an evicted object for a
 * cache miss, and stcpctl's add and rm scripts. The cache itself
 * (daemon/cache.c) builds the responses and keeps the replaced versions
 * through their grace period; this file only reads and writes Redis.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "cache.h"
#include "common.h"
#include "content_redis.h"
#include "redis_keys.h"

#define POLL_MS 1000

/* KEYS[1] gen, KEYS[2] paths, KEYS[3] the object; ARGV path, body, type
 * ("" for none), mtime_ns. Returns the new version. */
static const char add_lua[] =
	"local v = redis.call('INCR', KEYS[1])\n"
	"redis.call('DEL', KEYS[3])\n"
	"redis.call('HSET', KEYS[3], 'version', v, 'mtime_ns', ARGV[4],\n"
	"           'body', ARGV[2])\n"
	"if ARGV[3] ~= '' then\n"
	"  redis.call('HSET', KEYS[3], 'type', ARGV[3])\n"
	"end\n"
	"redis.call('ZADD', KEYS[2], v, ARGV[1])\n"
	"return v\n";

/* KEYS as for add; ARGV[1] the path. Returns the new generation, or 0
 * when there was no such object. */
static const char rm_lua[] = "local a = redis.call('ZREM', KEYS[2], ARGV[1])\n"
			     "local b = redis.call('DEL', KEYS[3])\n"
			     "if a == 0 and b == 0 then\n"
			     "  return 0\n"
			     "end\n"
			     "return redis.call('INCR', KEYS[1])\n";

struct stcp_content_redis {
	struct stcp_keyd *kd;
	struct stcp_cache *cache;
	char *prefix;
	char *gen_key;	 /* PREFIX "content:gen" */
	char *paths_key; /* PREFIX "content:paths" */
	bool synced;	 /* synced_gen is what the cache holds */
	uint64_t synced_gen;
	uint64_t next_poll_ms;
	char last_err[160]; /* the last error reply logged */
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* PREFIX "content:" PATH, malloc'd. */
static char *object_key(const char *prefix, const char *path)
{
	char *k;

	if (asprintf(&k, "%s" STCP_CONTENT_KEY "%s", prefix, path) < 0)
		return NULL;
	return k;
}

/* A decimal u64 from a string reply (or a bulk string); -EINVAL if not. */
static int reply_u64(const redisReply *r, uint64_t *out)
{
	unsigned long long v;
	char buf[24], *end;

	if (r->type == REDIS_REPLY_INTEGER && r->integer >= 0) {
		*out = (uint64_t)r->integer;
		return 0;
	}
	if (r->type != REDIS_REPLY_STRING || !r->len || r->len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, r->str, r->len);
	buf[r->len] = '\0';
	if (buf[0] < '0' || buf[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* An error reply: logged once until another one comes. */
static bool error_reply(struct stcp_content_redis *cr, const redisReply *r,
			const char *what)
{
	char msg[sizeof(cr->last_err)];

	if (r->type != REDIS_REPLY_ERROR)
		return false;
	snprintf(msg, sizeof(msg), "%s: %.*s", what, (int)r->len, r->str);
	if (strcmp(msg, cr->last_err)) {
		log_warn("redis: %s (the cache keeps what it has)", msg);
		memcpy(cr->last_err, msg, sizeof(msg));
	}
	return true;
}

/* HMGET of an object's fields; NULL when the link failed. */
static redisReply *hmget(struct stcp_content_redis *cr, const char *path,
			 const char *const *fields, int nfields)
{
	const char *argv[8] = { "HMGET" };
	size_t lens[8];
	redisReply *r;
	char *key = object_key(cr->prefix, path);

	if (!key)
		return NULL;
	argv[1] = key;
	for (int i = 0; i < nfields && i < 6; i++)
		argv[2 + i] = fields[i];
	for (int i = 0; i < 2 + nfields; i++)
		lens[i] = strlen(argv[i]);
	r = stcp_keyd_command(cr->kd, 2 + nfields, argv, lens);
	free(key);
	return r;
}

/* The cache's blob_fetch: the body of version `version` of path. */
static int fetch(void *ctx, const char *path, uint64_t version, uint8_t **buf,
		 uint64_t *len)
{
	static const char *const fields[] = { "version", "body" };
	struct stcp_content_redis *cr = ctx;
	redisReply *r;
	uint64_t v;
	int err = 0;

	if (!stcp_keyd_connected(cr->kd))
		return -ENOTCONN;
	r = hmget(cr, path, fields, 2);
	if (!r)
		return -ENOTCONN;
	if (error_reply(cr, r, "reading an object")) {
		err = -EIO;
	} else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
		err = -EPROTO;
	} else if (r->element[0]->type == REDIS_REPLY_NIL) {
		err = -ENOENT;
	} else if (reply_u64(r->element[0], &v) || v != version ||
		   r->element[1]->type != REDIS_REPLY_STRING) {
		err = -ESTALE;
	} else {
		*len = r->element[1]->len;
		*buf = malloc(*len ? *len : 1);
		if (!*buf)
			err = -ENOMEM;
		else
			memcpy(*buf, r->element[1]->str, *len);
	}
	freeReplyObject(r);
	return err;
}

struct sync_counts {
	unsigned int added, changed, removed, unchanged, skipped;
};

/*
 * Reads one object and stores it. Returns 1 when it is (or stays) in the
 * cache, 0 when skipped for good (gone, malformed), -1 when the link failed.
 */
static int sync_object(struct stcp_content_redis *cr, const char *path,
		       struct sync_counts *n)
{
	static const char *const fields[] = { "version", "mtime_ns", "type",
					      "body" };
	struct stcp_cache_blob b = { .path = path };
	char type[STCP_CONTENT_TYPE_MAX];
	bool had = stcp_cache_blob_version(cr->cache, path) != 0;
	redisReply *r, **e;
	int rc = 0, err;

	r = hmget(cr, path, fields, 4);
	if (!r)
		return -1;
	if (error_reply(cr, r, "reading an object") ||
	    r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
		n->skipped++;
		rc = had; /* keep the version we have */
		goto out;
	}
	e = r->element;
	if (e[0]->type == REDIS_REPLY_NIL) {
		/* Removed since the index was read: the next poll sees it. */
		log_debug("redis: %s: removed while being read", path);
		goto out;
	}
	if (reply_u64(e[0], &b.version) || !b.version ||
	    (e[1]->type != REDIS_REPLY_NIL && reply_u64(e[1], &b.mtime_ns)) ||
	    (e[2]->type != REDIS_REPLY_NIL &&
	     e[2]->type != REDIS_REPLY_STRING) ||
	    e[3]->type != REDIS_REPLY_STRING) {
		log_warn("redis: object %s is malformed (version, mtime_ns, "
			 "type or body); skipped (write it again with "
			 "'stcpctl content add')",
			 path);
		n->skipped++;
		rc = had;
		goto out;
	}
	type[0] = '\0';
	if (e[2]->type == REDIS_REPLY_STRING) {
		if (e[2]->len >= sizeof(type) ||
		    strlen(e[2]->str) != e[2]->len) {
			log_warn("redis: object %s: bad type; skipped", path);
			n->skipped++;
			rc = had;
			goto out;
		}
		memcpy(type, e[2]->str, e[2]->len + 1);
	}
	b.type = type;
	b.body = (const uint8_t *)e[3]->str;
	b.size = e[3]->len;
	err = stcp_cache_blob_put(cr->cache, &b);
	if (err) {
		n->skipped++;
		rc = had;
		goto out;
	}
	if (had)
		n->changed++;
	else
		n->added++;
	rc = 1;
out:
	freeReplyObject(r);
	return rc;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Brings the cache in line with the index: new and changed objects are
 * read and stored, those no longer listed are removed. Returns 0, or -1
 * when the link failed on the way (what was stored stays; nothing is
 * removed).
 */
static int sync_all(struct stcp_content_redis *cr, uint64_t gen, bool *changed)
{
	const char *argv[] = { "ZRANGE", cr->paths_key, "0", "-1",
			       "WITHSCORES" };
	size_t lens[5];
	struct sync_counts n = { 0 };
	const char **keep = NULL;
	size_t nkeep = 0;
	redisReply *r;
	int err = 0;

	for (int i = 0; i < 5; i++)
		lens[i] = strlen(argv[i]);
	r = stcp_keyd_command(cr->kd, 5, argv, lens);
	if (!r)
		return -1;
	if (error_reply(cr, r, "reading the content index") ||
	    r->type != REDIS_REPLY_ARRAY || r->elements % 2) {
		freeReplyObject(r);
		return -1;
	}
	keep = calloc(r->elements / 2 + 1, sizeof(*keep));
	if (!keep) {
		log_warn("redis: out of memory reading the content index");
		freeReplyObject(r);
		return -1;
	}
	for (size_t i = 0; i + 1 < r->elements && !err; i += 2) {
		const redisReply *p = r->element[i], *sc = r->element[i + 1];
		const char *why = NULL;
		uint64_t score = 0;
		int rc;

		if (p->type != REDIS_REPLY_STRING)
			continue;
		why = stcp_content_path_check(p->str, p->len);
		if (why) {
			log_warn("redis: %s lists '%.*s', which %s; skipped",
				 cr->paths_key,
				 (int)(p->len > 200 ? 200 : p->len), p->str,
				 why);
			n.skipped++;
			continue;
		}
		if (!reply_u64(sc, &score) && score &&
		    stcp_cache_blob_version(cr->cache, p->str) == score) {
			n.unchanged++;
			keep[nkeep++] = p->str;
			continue;
		}
		rc = sync_object(cr, p->str, &n);
		if (rc < 0)
			err = -1;
		else if (rc)
			keep[nkeep++] = p->str;
	}
	if (!err) {
		qsort(keep, nkeep, sizeof(*keep), str_cmp);
		n.removed = (unsigned int)stcp_cache_blob_prune(cr->cache, keep,
								nkeep);
	}
	*changed = n.added || n.changed || n.removed;
	if (*changed || n.skipped || !cr->synced)
		log_info("content: Redis generation %" PRIu64 "%s: %u added, "
			 "%u changed, %u removed, %u unchanged, %u skipped",
			 gen, err ? " (incomplete: the link failed)" : "",
			 n.added, n.changed, n.removed, n.unchanged, n.skipped);
	free(keep);
	freeReplyObject(r);
	return err;
}

bool stcp_content_redis_run(struct stcp_content_redis *cr, bool force)
{
	const char *argv[] = { "GET", cr->gen_key };
	size_t lens[2] = { 3, strlen(cr->gen_key) };
	bool changed = false;
	redisReply *r;
	uint64_t gen = 0;

	if (!stcp_keyd_connected(cr->kd))
		return false;
	if (!force && mono_ms() < cr->next_poll_ms)
		return false;
	cr->next_poll_ms = mono_ms() + POLL_MS;
	r = stcp_keyd_command(cr->kd, 2, argv, lens);
	if (!r)
		return false;
	if (error_reply(cr, r, "reading the content generation") ||
	    (r->type != REDIS_REPLY_NIL && reply_u64(r, &gen))) {
		if (r->type != REDIS_REPLY_ERROR)
			log_warn("redis: %s is not a counter; the cache keeps "
				 "what it has",
				 cr->gen_key);
		freeReplyObject(r);
		return false;
	}
	freeReplyObject(r);
	/* No counter: nothing was ever added, or Redis lost its data; the
	 * index is then empty too, and the cache follows it. */
	if (!force && cr->synced && gen == cr->synced_gen)
		return false;
	if (!sync_all(cr, gen, &changed)) {
		cr->synced = true;
		cr->synced_gen = gen;
	}
	return changed;
}

long stcp_content_redis_timeout_ms(const struct stcp_content_redis *cr)
{
	uint64_t now = mono_ms();

	if (!cr || !stcp_keyd_connected(cr->kd))
		return -1;
	return cr->next_poll_ms > now ? (long)(cr->next_poll_ms - now) : 0;
}

int stcp_content_redis_new(struct stcp_content_redis **out,
			   struct stcp_keyd *kd, const char *prefix,
			   struct stcp_cache *c)
{
	struct stcp_content_redis *cr;

	*out = NULL;
	cr = calloc(1, sizeof(*cr));
	if (!cr)
		return -ENOMEM;
	cr->kd = kd;
	cr->cache = c;
	cr->prefix = strdup(prefix);
	if (!cr->prefix ||
	    asprintf(&cr->gen_key, "%s" STCP_CONTENT_KEY "gen", prefix) < 0 ||
	    asprintf(&cr->paths_key, "%s" STCP_CONTENT_KEY "paths", prefix) <
		    0) {
		free(cr->prefix);
		free(cr);
		return -ENOMEM;
	}
	c->blob_fetch = fetch;
	c->blob_ctx = cr;
	*out = cr;
	return 0;
}

void stcp_content_redis_free(struct stcp_content_redis *cr)
{
	if (!cr)
		return;
	if (cr->cache->blob_ctx == cr) {
		cr->cache->blob_fetch = NULL;
		cr->cache->blob_ctx = NULL;
	}
	free(cr->prefix);
	free(cr->gen_key);
	free(cr->paths_key);
	free(cr);
}

/* ---- stcpctl ---- */

/* Runs a script on rc: KEYS gen, paths, the object; returns its integer. */
static int run_script(redisContext *rc, const char *script, const char *prefix,
		      const char *path, int nargs, const char **args,
		      const size_t *arg_lens, uint64_t *out, char *why,
		      size_t why_len)
{
	const char *argv[10];
	size_t lens[10];
	char *gen = NULL, *paths = NULL, *obj = NULL;
	redisReply *r = NULL;
	int err = -EIO;

	if (asprintf(&gen, "%s" STCP_CONTENT_KEY "gen", prefix) < 0)
		gen = NULL;
	if (asprintf(&paths, "%s" STCP_CONTENT_KEY "paths", prefix) < 0)
		paths = NULL;
	obj = object_key(prefix, path);
	if (!gen || !paths || !obj) {
		snprintf(why, why_len, "out of memory");
		err = -ENOMEM;
		goto out;
	}
	argv[0] = "EVAL";
	argv[1] = script;
	argv[2] = "3";
	argv[3] = gen;
	argv[4] = paths;
	argv[5] = obj;
	for (int i = 0; i < 6; i++)
		lens[i] = strlen(argv[i]);
	for (int i = 0; i < nargs; i++) {
		argv[6 + i] = args[i];
		lens[6 + i] = arg_lens[i];
	}
	r = redisCommandArgv(rc, 6 + nargs, argv, lens);
	if (!r || rc->err) {
		snprintf(why, why_len, "%s", rc->err ? rc->errstr : "no reply");
		goto out;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(why, why_len, "%.*s", (int)r->len, r->str);
		goto out;
	}
	if (r->type != REDIS_REPLY_INTEGER || r->integer < 0) {
		snprintf(why, why_len, "unexpected reply");
		goto out;
	}
	*out = (uint64_t)r->integer;
	err = 0;
out:
	if (r)
		freeReplyObject(r);
	free(gen);
	free(paths);
	free(obj);
	return err;
}

int stcp_content_redis_add(redisContext *rc, const char *prefix,
			   const char *path, const uint8_t *body, size_t len,
			   const char *type, uint64_t mtime_ns,
			   uint64_t *version, char *why, size_t why_len)
{
	char mtime[24];
	const char *args[4];
	size_t lens[4];

	snprintf(mtime, sizeof(mtime), "%" PRIu64, mtime_ns);
	args[0] = path;
	args[1] = len ? (const char *)body : "";
	args[2] = type ? type : "";
	args[3] = mtime;
	lens[0] = strlen(path);
	lens[1] = len;
	lens[2] = strlen(args[2]);
	lens[3] = strlen(mtime);
	return run_script(rc, add_lua, prefix, path, 4, args, lens, version,
			  why, why_len);
}

int stcp_content_redis_rm(redisContext *rc, const char *prefix,
			  const char *path, uint64_t *gen, char *why,
			  size_t why_len)
{
	const char *args[1] = { path };
	size_t lens[1] = { strlen(path) };
	int err;

	err = run_script(rc, rm_lua, prefix, path, 1, args, lens, gen, why,
			 why_len);
	if (!err && !*gen)
		return -ENOENT;
	return err;
}
