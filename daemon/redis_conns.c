// SPDX-License-Identifier: GPL-2.0
/*
 * The overflow state in Redis (redis_conns.h says what and why).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "common.h"
#include "redis_conns.h"
#include "redis_keys.h"

#define RETRY_MS      1000   /* between connection attempts */
#define MAX_PENDING   4096   /* writes queued before a flush is forced */
#define KEY_MAX	      (64 + 6 + 2 * sizeof(struct stcp_flow) + 1)

struct stcp_connd {
	struct stcp_redis_addr addr;
	char where[300];
	char prefix[64];
	unsigned int ttl_s;
	redisContext *rc;
	uint64_t next_try_ms;
	unsigned int pending; /* writes sent whose replies are not read */
	bool outage;	      /* warned about the current outage */
	bool ever_connected;
	struct stcp_connd_stats st;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* PREFIX + what + the flow in hex. */
static int flow_key(const char *prefix, const char *what,
		    const struct stcp_flow *flow, char *out, size_t len)
{
	const uint8_t *b = (const uint8_t *)flow;
	int n = snprintf(out, len, "%s%s", prefix, what);

	if (n < 0 || (size_t)n + 2 * sizeof(*flow) + 1 > len)
		return -ENAMETOOLONG;
	for (size_t i = 0; i < sizeof(*flow); i++)
		snprintf(out + n + 2 * i, 3, "%02x", b[i]);
	return 0;
}

int stcp_connd_key(const char *prefix, const struct stcp_flow *flow,
		   char *out, size_t len)
{
	return flow_key(prefix, "conn:", flow, out, len);
}

/* The link failed: one warning per outage, then quiet retries. */
static void link_lost(struct stcp_connd *cd, const char *reason)
{
	char why[160];

	/* reason may be the context's own error string. */
	snprintf(why, sizeof(why), "%s", reason);
	if (cd->rc) {
		redisFree(cd->rc);
		cd->rc = NULL;
	}
	cd->st.put_lost += cd->pending;
	cd->pending = 0;
	cd->next_try_ms = mono_ms() + RETRY_MS;
	if (!cd->outage) {
		cd->outage = true;
		log_warn("redis: connection state: %s %s: %s; connections "
			 "stay on the replica that has them, reconnecting",
			 cd->ever_connected ? "lost" : "cannot reach",
			 cd->where, why);
	}
}

/* Connected, or trying when due; false while Redis is away. The link is
 * made as the key keeper's is (stcp_redis_connect(): timeouts, AUTH). */
static bool link_ready(struct stcp_connd *cd)
{
	char why[160];

	if (cd->rc)
		return true;
	if (mono_ms() < cd->next_try_ms)
		return false;
	cd->rc = stcp_redis_connect(&cd->addr, why, sizeof(why));
	if (!cd->rc) {
		link_lost(cd, why);
		return false;
	}
	if (cd->outage)
		log_info("redis: connection state: connected to %s again",
			 cd->where);
	cd->outage = false;
	cd->ever_connected = true;
	return true;
}

int stcp_connd_new(struct stcp_connd **out, const char *redis,
		   const char *prefix, unsigned int ttl_s)
{
	struct stcp_connd *cd = calloc(1, sizeof(*cd));
	int err;

	if (!cd)
		return -ENOMEM;
	err = stcp_redis_addr_parse(redis, &cd->addr);
	if (err || strlen(prefix) >= sizeof(cd->prefix)) {
		free(cd);
		return err ? err : -ENAMETOOLONG;
	}
	snprintf(cd->where, sizeof(cd->where), "%s", redis);
	snprintf(cd->prefix, sizeof(cd->prefix), "%s", prefix);
	cd->ttl_s = ttl_s;
	*out = cd;
	return 0;
}

void stcp_connd_free(struct stcp_connd *cd)
{
	if (!cd)
		return;
	stcp_connd_flush(cd);
	if (cd->rc)
		redisFree(cd->rc);
	free(cd);
}

void stcp_connd_put(struct stcp_connd *cd, const struct stcp_flow *flow,
		    const struct stcp_conn *c)
{
	char key[KEY_MAX], ttl[16];

	if (!link_ready(cd) || stcp_connd_key(cd->prefix, flow, key,
					      sizeof(key))) {
		cd->st.put_lost++;
		return;
	}
	snprintf(ttl, sizeof(ttl), "%u", cd->ttl_s);
	if (redisAppendCommand(cd->rc, "SET %s %b EX %s", key, c, sizeof(*c),
			       ttl) != REDIS_OK) {
		cd->st.put_lost++;
		link_lost(cd, "cannot queue a command");
		return;
	}
	if (++cd->pending >= MAX_PENDING)
		stcp_connd_flush(cd);
}

void stcp_connd_flush(struct stcp_connd *cd)
{
	while (cd->rc && cd->pending) {
		redisReply *r = NULL;

		if (redisGetReply(cd->rc, (void **)&r) != REDIS_OK || !r) {
			link_lost(cd, cd->rc->err ? cd->rc->errstr :
						    "no reply");
			return;
		}
		cd->pending--;
		if (r->type == REDIS_REPLY_ERROR) {
			cd->st.put_lost++;
			log_debug("redis: connection state: %.*s",
				  (int)r->len, r->str);
		} else {
			cd->st.puts++;
		}
		freeReplyObject(r);
	}
}

int stcp_connd_set(struct stcp_connd *cd, const struct stcp_flow *flow,
		   const struct stcp_conn *c)
{
	stcp_connd_put(cd, flow, c);
	stcp_connd_flush(cd);
	return cd->rc ? 0 : -EIO;
}

int stcp_connd_get(struct stcp_connd *cd, const struct stcp_flow *flow,
		   struct stcp_conn *c)
{
	char key[KEY_MAX];
	redisReply *r;
	int err = -EIO;

	stcp_connd_flush(cd);
	if (!link_ready(cd) || stcp_connd_key(cd->prefix, flow, key,
					      sizeof(key))) {
		cd->st.get_failed++;
		return -EIO;
	}
	r = redisCommand(cd->rc, "GET %s", key);
	if (!r || cd->rc->err) {
		if (r)
			freeReplyObject(r);
		link_lost(cd, cd->rc->err ? cd->rc->errstr : "no reply");
		cd->st.get_failed++;
		return -EIO;
	}
	if (r->type == REDIS_REPLY_NIL) {
		err = -ENOENT;
		cd->st.gets_none++;
	} else if (r->type == REDIS_REPLY_STRING && r->len == sizeof(*c)) {
		memcpy(c, r->str, sizeof(*c));
		err = 0;
		cd->st.gets_found++;
	} else {
		/* Not ours, or another version's layout: as good as none. */
		err = -ENOENT;
		cd->st.gets_none++;
	}
	freeReplyObject(r);
	return err;
}

void stcp_connd_get_stats(const struct stcp_connd *cd,
			  struct stcp_connd_stats *st)
{
	*st = cd->st;
}

/* The reply to a command of the pipeline, or NULL with the link dropped. */
static redisReply *reply_of(struct stcp_connd *cd)
{
	redisReply *r = NULL;

	if (redisGetReply(cd->rc, (void **)&r) != REDIS_OK || !r) {
		link_lost(cd, cd->rc->err ? cd->rc->errstr : "no reply");
		return NULL;
	}
	return r;
}

int stcp_connd_reasm_add(struct stcp_connd *cd, const struct stcp_flow *flow,
			 bool first, uint32_t seq, const uint8_t *frame,
			 uint32_t len, bool fetch,
			 void (*each)(void *ctx, bool first,
				      const uint8_t *frame, uint32_t len),
			 void *ctx)
{
	char key[KEY_MAX], field[16], ttl[16];
	redisReply *r;
	int n = 0;

	stcp_connd_flush(cd);
	if (!link_ready(cd) ||
	    flow_key(cd->prefix, "reasm:", flow, key, sizeof(key)))
		return -EIO;
	if (first)
		snprintf(field, sizeof(field), "f");
	else
		snprintf(field, sizeof(field), "c%08x", seq);
	snprintf(ttl, sizeof(ttl), "%u", STCP_CONND_REASM_TTL_S);
	if (redisAppendCommand(cd->rc, "HSET %s %s %b", key, field, frame,
			       (size_t)len) != REDIS_OK ||
	    redisAppendCommand(cd->rc, "EXPIRE %s %s", key, ttl) != REDIS_OK ||
	    (fetch && redisAppendCommand(cd->rc, "HGETALL %s", key) !=
			      REDIS_OK)) {
		link_lost(cd, "cannot queue a command");
		return -EIO;
	}
	for (int i = 0; i < 2; i++) {
		r = reply_of(cd);
		if (!r)
			return -EIO;
		freeReplyObject(r);
	}
	if (!fetch)
		return 0;
	r = reply_of(cd);
	if (!r)
		return -EIO;
	/* field, value, field, value... */
	if (r->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0; i + 1 < r->elements; i += 2) {
			const redisReply *f = r->element[i];
			const redisReply *v = r->element[i + 1];

			if (f->type != REDIS_REPLY_STRING ||
			    v->type != REDIS_REPLY_STRING || !f->len)
				continue;
			each(ctx, f->str[0] == 'f', (const uint8_t *)v->str,
			     (uint32_t)v->len);
			n++;
		}
	}
	freeReplyObject(r);
	return n;
}
