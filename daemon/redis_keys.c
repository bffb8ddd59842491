// SPDX-License-Identifier: GPL-2.0
/*
 * stcpd's key keeper: the rotation schedule, rotations on request and the
 * keys shared through Redis (redis_keys.h says what and why). Key material
 * is never logged: only generations, times and Redis's error messages,
 * which do not echo arguments.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <hiredis/hiredis.h>

#include "common.h"
#include "redis_keys.h"

#define IO_TIMEOUT_MS	500 /* connect, and every command */
#define POLL_MS		1000
#define BACKOFF_MIN_MS	100
#define BACKOFF_MAX_MS	10000
#define LOCK_TTL_MS	"10000"
#define RETRY_MS	1000 /* a failed local rotation, a busy rotate lock */
#define HEX_KEY_LEN	32
#define COARSE_SLACK_MS 20 /* time() lags CLOCK_REALTIME by up to a tick */

/* KEYS[1] the record; ARGV gen, cur, prev, rotated_at. Creates the record
 * from ARGV only if there is none, and returns what is there, with a fifth
 * element: 1 if this call created it. */
static const char create_lua[] =
	"local created = 0\n"
	"if redis.call('EXISTS', KEYS[1]) == 0 then\n"
	"  redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'cur', ARGV[2],\n"
	"             'prev', ARGV[3], 'rotated_at', ARGV[4])\n"
	"  created = 1\n"
	"end\n"
	"local r = redis.call('HMGET', KEYS[1], 'gen', 'cur', 'prev',\n"
	"                     'rotated_at')\n"
	"r[5] = created\n"
	"return r\n";

/* KEYS[1] the record, KEYS[2] the lock; ARGV the gen the caller saw, the
 * new key, now, the lock token. Rotates only while the caller holds the
 * lock and gen is still the one it saw; returns the record. */
static const char rotate_lua[] =
	"if redis.call('GET', KEYS[2]) ~= ARGV[4] then\n"
	"  return redis.error_reply('STCPLOCK rotate lock not held')\n"
	"end\n"
	"local r = redis.call('HMGET', KEYS[1], 'gen', 'cur')\n"
	"if r[1] == ARGV[1] and r[2] and #r[2] == 32 then\n"
	"  redis.call('HSET', KEYS[1], 'gen', tostring(tonumber(r[1]) + 1),\n"
	"             'prev', r[2], 'cur', ARGV[2], 'rotated_at', ARGV[3])\n"
	"end\n"
	"return redis.call('HMGET', KEYS[1], 'gen', 'cur', 'prev',\n"
	"                  'rotated_at')\n";

/* KEYS[1] the lock, ARGV[1] our token: releases it only if it is ours. */
static const char unlock_lua[] =
	"if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
	"  return redis.call('DEL', KEYS[1])\n"
	"end\n"
	"return 0\n";

struct key_record {
	uint32_t gen;
	uint64_t cur[2];
	uint64_t prev[2];
	bool has_prev;
	uint64_t rotated_at;
};

enum rec_status { REC_OK, REC_MISSING, REC_BAD };

struct stcp_keyd {
	int keys_fd;
	int cfg_fd;
	unsigned int rotate_s;
	bool redis;
	struct stcp_redis_addr addr;
	char where[300]; /* the --redis value, for the log */
	char *rec_key;	 /* PREFIX "keys" */
	char *lock_key;	 /* PREFIX "rotate-lock" */
	char token[320]; /* pid@host, the lock's value */
	redisContext *rc;
	struct stcp_keyd_stats st;
	bool ever_connected;
	bool outage; /* the link is down and that was logged */
	uint64_t down_since_ms;
	uint64_t next_connect_ms;
	unsigned int backoff_ms;
	uint64_t next_poll_ms;
	bool need_sync;	     /* fetch the whole record at the next poll */
	bool rotate_asked;   /* SIGUSR1 not yet acted on */
	bool rotating;	     /* a rotation of rotate_base is wanted */
	bool rotating_asked; /* ... because it was asked, not scheduled */
	uint32_t rotate_base;
	bool postponed_logged;
	uint64_t retry_ms; /* no rotation attempt before this */
	bool local_failed_logged;
	char reply_err[128]; /* the last Redis error reply logged */
	bool record_bad_logged;
};

static uint64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

/* ---- --redis syntax ---- */

static int parse_port(const char *s, int *port)
{
	unsigned long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v == 0 || v > 65535)
		return -EINVAL;
	*port = (int)v;
	return 0;
}

static bool host_name_ok(const char *h)
{
	if (!*h || *h == '-' || *h == '.')
		return false;
	for (; *h; h++) {
		if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') ||
		      (*h >= '0' && *h <= '9') || *h == '-' || *h == '.' ||
		      *h == '_'))
			return false;
	}
	return true;
}

int stcp_redis_addr_parse(const char *s, struct stcp_redis_addr *a)
{
	const char *host, *port_s;
	struct in6_addr a6;
	size_t hlen;

	memset(a, 0, sizeof(*a));
	if (!s || !*s)
		return -EINVAL;
	if (!strncmp(s, "unix:", 5)) {
		size_t n = strlen(s + 5);

		if (!n || n >= sizeof(a->path))
			return -EINVAL;
		memcpy(a->path, s + 5, n + 1);
		a->is_unix = true;
		return 0;
	}
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		host = s + 1;
		hlen = (size_t)(rb - host);
		port_s = rb + 2;
	} else {
		const char *colon = strrchr(s, ':');

		if (!colon || strchr(s, ':') != colon)
			return -EINVAL;
		host = s;
		hlen = (size_t)(colon - s);
		port_s = colon + 1;
	}
	if (!hlen || hlen >= sizeof(a->host))
		return -EINVAL;
	memcpy(a->host, host, hlen);
	a->host[hlen] = '\0';
	if (s[0] == '[' ? inet_pton(AF_INET6, a->host, &a6) != 1
			: !host_name_ok(a->host))
		return -EINVAL;
	return parse_port(port_s, &a->port);
}

/* ---- key material ---- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* 32 hex digits: bytes 0-7 are k0, 8-15 k1, each little-endian. */
static int key_from_hex(const char *s, size_t len, uint64_t kv[2])
{
	if (len != HEX_KEY_LEN)
		return -EINVAL;
	kv[0] = kv[1] = 0;
	for (int i = 0; i < 16; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			kv[0] = kv[1] = 0;
			return -EINVAL;
		}
		kv[i / 8] |= (uint64_t)(hi << 4 | lo) << (8 * (i % 8));
	}
	return 0;
}

static void key_to_hex(const uint64_t kv[2], char out[HEX_KEY_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < 16; i++) {
		unsigned int b =
			(unsigned int)(kv[i / 8] >> (8 * (i % 8))) & 0xff;

		out[2 * i] = digits[b >> 4];
		out[2 * i + 1] = digits[b & 15];
	}
	out[HEX_KEY_LEN] = '\0';
}

/* The keys in the local map; the caller wipes them. */
static int local_read(const struct stcp_keyd *kd, struct stcp_cfg *cfg,
		      struct stcp_key *cur, struct stcp_key *prev)
{
	uint32_t s;
	int err;

	err = stcp_cfg_read(kd->cfg_fd, cfg);
	if (err)
		return err;
	s = cfg->key_cur & 1;
	if (bpf_map_lookup_elem(kd->keys_fd, &s, cur))
		return -errno;
	s ^= 1;
	if (bpf_map_lookup_elem(kd->keys_fd, &s, prev))
		return -errno;
	return 0;
}

/* Generation of the current local key (0: none) and the rotation time. */
static uint32_t local_gen(const struct stcp_keyd *kd, uint64_t *rotated_at)
{
	struct stcp_key cur, prev;
	struct stcp_cfg cfg;
	uint32_t gen = 0;

	if (rotated_at)
		*rotated_at = 0;
	if (!local_read(kd, &cfg, &cur, &prev)) {
		gen = cur.valid ? cur.gen : 0;
		if (rotated_at)
			*rotated_at = cfg.keys_rotated_at;
	}
	explicit_bzero(&cur, sizeof(cur));
	explicit_bzero(&prev, sizeof(prev));
	return gen;
}

/* ---- the link ---- */

static void schedule_connect(struct stcp_keyd *kd)
{
	unsigned int b = kd->backoff_ms;

	/* Anywhere in [b/2, b]: replicas that lost Redis together do not
	 * all come back in the same millisecond. */
	kd->next_connect_ms =
		mono_ms() + b / 2 + (unsigned int)random() % (b / 2 + 1);
	kd->backoff_ms = b >= BACKOFF_MAX_MS / 2 ? BACKOFF_MAX_MS : 2 * b;
}

/* The link failed: one warning per outage, then quiet retries. */
static void link_lost(struct stcp_keyd *kd, const char *why)
{
	snprintf(kd->st.last_error, sizeof(kd->st.last_error), "%s", why);
	if (kd->rc) {
		redisFree(kd->rc);
		kd->rc = NULL;
	}
	kd->st.redis_connected = false;
	if (!kd->outage) {
		kd->outage = true;
		kd->down_since_ms = mono_ms();
		kd->backoff_ms = BACKOFF_MIN_MS;
		if (kd->ever_connected)
			log_warn("redis: lost the connection to %s: %s; "
				 "serving with the keys it has, reconnecting",
				 kd->where, why);
		else
			log_warn("redis: cannot connect to %s: %s; serving "
				 "with a local key, retrying",
				 kd->where, why);
	} else {
		log_debug("redis: %s: %s", kd->where, why);
	}
	schedule_connect(kd);
}

/* One command; NULL when the link failed (and was dropped). */
static redisReply *command(struct stcp_keyd *kd, int argc, const char **argv,
			   const size_t *lens)
{
	redisReply *r;
	char why[128];

	r = redisCommandArgv(kd->rc, argc, argv, lens);
	if (r && !kd->rc->err)
		return r;
	snprintf(why, sizeof(why), "%s",
		 kd->rc->err ? kd->rc->errstr : "no reply");
	if (r)
		freeReplyObject(r);
	link_lost(kd, why);
	return NULL;
}

/* An error reply: logged once per connection, unless another one came
 * in between. */
static bool reply_error(struct stcp_keyd *kd, const redisReply *r,
			const char *what)
{
	char msg[sizeof(kd->st.last_error)];

	if (r->type != REDIS_REPLY_ERROR)
		return false;
	snprintf(msg, sizeof(msg), "%s: %.*s", what, (int)r->len, r->str);
	memcpy(kd->st.last_error, msg, sizeof(msg));
	if (strcmp(kd->reply_err, msg)) {
		log_warn("redis: %s at %s (keeping the keys we have)", msg,
			 kd->where);
		memcpy(kd->reply_err, msg, sizeof(msg));
	}
	return true;
}

static bool str_elem(const redisReply *e)
{
	return e->type == REDIS_REPLY_STRING;
}

static int parse_u64(const redisReply *e, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char buf[24], *end;

	if (!str_elem(e) || !e->len || e->len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, e->str, e->len);
	buf[e->len] = '\0';
	if (buf[0] < '0' || buf[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* r: HMGET gen cur prev rotated_at. *bad names the faulty field. */
static enum rec_status parse_record(const redisReply *r, struct key_record *rec,
				    const char **bad)
{
	redisReply **e;
	uint64_t v;

	memset(rec, 0, sizeof(*rec));
	*bad = "reply";
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 4)
		return REC_BAD;
	e = r->element;
	if (e[0]->type == REDIS_REPLY_NIL && e[1]->type == REDIS_REPLY_NIL)
		return REC_MISSING;
	*bad = "gen";
	if (parse_u64(e[0], UINT32_MAX, &v) || !v)
		return REC_BAD;
	rec->gen = (uint32_t)v;
	*bad = "cur";
	if (!str_elem(e[1]) || key_from_hex(e[1]->str, e[1]->len, rec->cur))
		return REC_BAD;
	*bad = "prev";
	if (str_elem(e[2]) && e[2]->len) {
		if (key_from_hex(e[2]->str, e[2]->len, rec->prev))
			return REC_BAD;
		rec->has_prev = true;
	} else if (!str_elem(e[2]) && e[2]->type != REDIS_REPLY_NIL) {
		return REC_BAD;
	}
	*bad = "rotated_at";
	if (e[3]->type != REDIS_REPLY_NIL && parse_u64(e[3], UINT64_MAX, &v))
		return REC_BAD;
	rec->rotated_at = e[3]->type == REDIS_REPLY_NIL ? 0 : v;
	*bad = NULL;
	return REC_OK;
}

/* Installs a record read from Redis; returns the generation before. */
static int install(struct stcp_keyd *kd, const struct key_record *rec,
		   uint32_t *before)
{
	int err;

	*before = local_gen(kd, NULL);
	err = stcp_keys_install_pair(kd->keys_fd, kd->cfg_fd,
				     rec->has_prev ? rec->prev : NULL, rec->cur,
				     rec->gen, rec->rotated_at);
	if (err)
		log_warn("keys: cannot install generation %u from Redis: %s",
			 rec->gen, strerror(-err));
	return err;
}

/* What sync_full found. */
enum sync_result {
	SYNC_FAILED,  /* link lost, error reply, bad record: logged */
	SYNC_SAME,    /* Redis holds exactly our keys */
	SYNC_ADOPTED, /* we took Redis's keys */
};

static bool same_key(const uint64_t *kv, const struct stcp_key *k)
{
	return k->valid && kv[0] == k->k0 && kv[1] == k->k1;
}

/*
 * Reads the whole record and installs it; creates it from the local keys
 * if there is none (first replica, or a Redis that restarted empty), so
 * that a Redis restart never replaces keys the replicas agree on.
 * *created says whether this call wrote the record.
 */
static enum sync_result sync_full(struct stcp_keyd *kd, bool *created)
{
	char cur_hex[HEX_KEY_LEN + 1] = "", prev_hex[HEX_KEY_LEN + 1] = "";
	char gen_s[16], at_s[24];
	struct stcp_key cur, prev;
	struct key_record rec;
	struct stcp_cfg cfg;
	enum sync_result res = SYNC_FAILED;
	enum rec_status rs;
	const char *bad;
	redisReply *r;
	uint32_t before;
	uint64_t kv[2];
	bool same;
	int err;

	*created = false;
	memset(&rec, 0, sizeof(rec));
	err = local_read(kd, &cfg, &cur, &prev);
	if (err) {
		log_warn("keys: cannot read the local keys: %s",
			 strerror(-err));
		goto out;
	}
	if (!cur.valid || !cur.gen) {
		/* Not expected: stcpd installs a key before this runs. */
		if (getrandom(kv, sizeof(kv), 0) != (ssize_t)sizeof(kv))
			goto out;
		cur.k0 = kv[0];
		cur.k1 = kv[1];
		cur.valid = 1;
		cur.gen = 1;
		prev.valid = 0;
		cfg.keys_rotated_at = (uint64_t)time(NULL);
	}
	kv[0] = cur.k0;
	kv[1] = cur.k1;
	key_to_hex(kv, cur_hex);
	if (prev.valid) {
		kv[0] = prev.k0;
		kv[1] = prev.k1;
		key_to_hex(kv, prev_hex);
	}
	snprintf(gen_s, sizeof(gen_s), "%u", cur.gen);
	snprintf(at_s, sizeof(at_s), "%" PRIu64, (uint64_t)cfg.keys_rotated_at);
	{
		const char *argv[] = { "EVAL",	    create_lua, "1",
				       kd->rec_key, gen_s,	cur_hex,
				       prev_hex,    at_s };
		size_t lens[8];

		for (int i = 0; i < 8; i++)
			lens[i] = strlen(argv[i]);
		r = command(kd, 8, argv, lens);
	}
	if (!r)
		goto out;
	if (reply_error(kd, r, "creating the key record")) {
		freeReplyObject(r);
		goto out;
	}
	rs = parse_record(r, &rec, &bad);
	*created = rs == REC_OK && r->elements > 4 &&
		   r->element[4]->type == REDIS_REPLY_INTEGER &&
		   r->element[4]->integer == 1;
	freeReplyObject(r);
	if (rs != REC_OK) {
		if (!kd->record_bad_logged)
			log_warn("redis: %s at %s is malformed (%s); keeping "
				 "the keys we have (fix or delete it)",
				 kd->rec_key, kd->where,
				 rs == REC_MISSING ? "vanished" : bad);
		kd->record_bad_logged = true;
		goto out;
	}
	kd->record_bad_logged = false;
	same = rec.gen == cur.gen && same_key(rec.cur, &cur) &&
	       rec.has_prev == !!prev.valid &&
	       (!rec.has_prev || same_key(rec.prev, &prev)) &&
	       rec.rotated_at == cfg.keys_rotated_at;
	if (install(kd, &rec, &before))
		goto out;
	res = same ? SYNC_SAME : SYNC_ADOPTED;
out:
	explicit_bzero(cur_hex, sizeof(cur_hex));
	explicit_bzero(prev_hex, sizeof(prev_hex));
	explicit_bzero(&cur, sizeof(cur));
	explicit_bzero(&prev, sizeof(prev));
	explicit_bzero(&rec, sizeof(rec));
	explicit_bzero(kv, sizeof(kv));
	return res;
}

static const char *sync_note(enum sync_result res, bool created)
{
	switch (res) {
	case SYNC_FAILED:
		return ", key record not read yet";
	case SYNC_ADOPTED:
		return " from Redis";
	default:
		return created ? ", record written from ours" : "";
	}
}

redisContext *stcp_redis_connect(const struct stcp_redis_addr *a, char *why,
				 size_t len)
{
	struct timeval tv = { .tv_sec = 0, .tv_usec = IO_TIMEOUT_MS * 1000 };
	const char *pass = getenv("STCP_REDIS_PASSWORD");
	const char *user = getenv("STCP_REDIS_USER");
	redisContext *c;

	if (a->is_unix)
		c = redisConnectUnixWithTimeout(a->path, tv);
	else
		c = redisConnectWithTimeout(a->host, a->port, tv);
	if (!c || c->err) {
		snprintf(why, len, "%s", c ? c->errstr : "out of memory");
		goto fail;
	}
	if (redisSetTimeout(c, tv) != REDIS_OK) {
		snprintf(why, len, "cannot set the command timeout");
		goto fail;
	}
	if (pass && *pass) {
		const char *argv[3] = { "AUTH" };
		size_t lens[3];
		int argc = 1;
		redisReply *r;

		if (user && *user)
			argv[argc++] = user;
		argv[argc++] = pass;
		for (int i = 0; i < argc; i++)
			lens[i] = strlen(argv[i]);
		r = redisCommandArgv(c, argc, argv, lens);
		if (!r || c->err) {
			snprintf(why, len, "AUTH: %s",
				 c->err ? c->errstr : "no reply");
			if (r)
				freeReplyObject(r);
			goto fail;
		}
		if (r->type == REDIS_REPLY_ERROR) {
			snprintf(why, len, "AUTH: %.*s", (int)r->len, r->str);
			freeReplyObject(r);
			goto fail;
		}
		freeReplyObject(r);
	}
	return c;
fail:
	if (c)
		redisFree(c);
	return NULL;
}

/* Connects, authenticates if asked to, and takes the shared keys. */
static void link_up(struct stcp_keyd *kd)
{
	enum sync_result res;
	redisContext *c;
	bool created;
	char why[160];

	c = stcp_redis_connect(&kd->addr, why, sizeof(why));
	if (!c) {
		link_lost(kd, why);
		return;
	}
	kd->rc = c;
	kd->reply_err[0] = '\0'; /* error replies: once per connection */
	res = sync_full(kd, &created);
	if (!kd->rc)
		return; /* lost again, logged */
	kd->need_sync = res == SYNC_FAILED;
	kd->st.redis_connected = true;
	kd->backoff_ms = BACKOFF_MIN_MS;
	kd->next_poll_ms = mono_ms() + POLL_MS;
	if (kd->outage) {
		uint64_t down = mono_ms() - kd->down_since_ms;

		if (kd->ever_connected)
			kd->st.reconnects++;
		log_info("redis: connected to %s%s after %" PRIu64 ".%" PRIu64
			 " s (reconnects: %lu, last error: %s); "
			 "key generation %u%s",
			 kd->where, kd->ever_connected ? " again" : "",
			 down / 1000, down % 1000 / 100, kd->st.reconnects,
			 kd->st.last_error, local_gen(kd, NULL),
			 sync_note(res, created));
		kd->outage = false;
	} else {
		log_info("redis: connected to %s; key generation %u%s",
			 kd->where, local_gen(kd, NULL),
			 sync_note(res, created));
	}
	kd->ever_connected = true;
}

/* Every POLL_MS: one HGET; the whole record only when gen moved. */
static void poll_record(struct stcp_keyd *kd)
{
	const char *argv[6] = { "HGET", kd->rec_key, "gen" };
	struct key_record rec;
	enum rec_status rs;
	const char *bad;
	redisReply *r;
	uint32_t before;
	uint64_t gen;
	size_t lens[6];
	bool created;

	if (kd->need_sync) {
		kd->need_sync = sync_full(kd, &created) == SYNC_FAILED;
		return;
	}
	for (int i = 0; i < 3; i++)
		lens[i] = strlen(argv[i]);
	r = command(kd, 3, argv, lens);
	if (!r)
		return;
	if (reply_error(kd, r, "reading the key generation")) {
		freeReplyObject(r);
		return;
	}
	if (r->type == REDIS_REPLY_NIL) {
		/* Gone: Redis restarted without persistence, or someone
		 * deleted it. Write ours back (unless a replica was first). */
		freeReplyObject(r);
		if (sync_full(kd, &created) == SYNC_FAILED)
			kd->need_sync = true;
		else
			log_info("redis: the key record %s was missing; %s",
				 kd->rec_key,
				 created ? "wrote ours back"
					 : "another replica wrote it back");
		return;
	}
	if (parse_u64(r, UINT32_MAX, &gen)) {
		freeReplyObject(r);
		kd->need_sync = true; /* sync_full says what is wrong */
		return;
	}
	freeReplyObject(r);
	if ((uint32_t)gen == local_gen(kd, NULL))
		return;
	argv[0] = "HMGET";
	argv[2] = "gen";
	argv[3] = "cur";
	argv[4] = "prev";
	argv[5] = "rotated_at";
	for (int i = 0; i < 6; i++)
		lens[i] = strlen(argv[i]);
	r = command(kd, 6, argv, lens);
	if (!r)
		return;
	if (reply_error(kd, r, "reading the key record")) {
		freeReplyObject(r);
		return;
	}
	rs = parse_record(r, &rec, &bad);
	freeReplyObject(r);
	if (rs != REC_OK) {
		kd->need_sync = true;
	} else if (!install(kd, &rec, &before)) {
		log_info("keys: generation %u from Redis (was %u)", rec.gen,
			 before);
	}
	explicit_bzero(&rec, sizeof(rec));
}

/* ---- rotation ---- */

/*
 * Due by time(), the clock keys_rotated_at is written with: it is the
 * coarse clock and lags CLOCK_REALTIME by up to a tick, so a rotation at
 * the exact second would record the second before and come back early.
 */
static bool schedule_due(const struct stcp_keyd *kd, uint64_t *due_ms)
{
	uint64_t at;

	if (!kd->rotate_s)
		return false;
	local_gen(kd, &at);
	*due_ms = (at + kd->rotate_s) * 1000;
	return (uint64_t)time(NULL) >= at + kd->rotate_s;
}

/* Turns an asked or due rotation into a wanted one, against the
 * generation current now (after a poll, with Redis). */
static void want_rotation(struct stcp_keyd *kd)
{
	uint64_t due_ms;

	if (kd->rotating)
		return;
	if (!kd->rotate_asked && !schedule_due(kd, &due_ms))
		return;
	kd->rotating = true;
	kd->rotating_asked = kd->rotate_asked;
	kd->rotate_asked = false;
	kd->rotate_base = local_gen(kd, NULL);
	kd->postponed_logged = false;
}

static const char *rotation_why(const struct stcp_keyd *kd, char *buf,
				size_t len)
{
	if (kd->rotating_asked)
		return "asked (SIGUSR1)";
	snprintf(buf, len, "every %u s", kd->rotate_s);
	return buf;
}

static void rotate_local(struct stcp_keyd *kd)
{
	char why[32];
	int err;

	want_rotation(kd);
	if (!kd->rotating || mono_ms() < kd->retry_ms)
		return;
	err = stcp_keys_rotate(kd->keys_fd, kd->cfg_fd);
	if (err) {
		if (!kd->local_failed_logged)
			log_warn("keys: cannot rotate: %s; retrying",
				 strerror(-err));
		kd->local_failed_logged = true;
		kd->retry_ms = mono_ms() + RETRY_MS;
		return;
	}
	kd->local_failed_logged = false;
	log_info("keys: rotated to generation %u (%s)", local_gen(kd, NULL),
		 rotation_why(kd, why, sizeof(why)));
	kd->rotating = false;
}

/* Under the lock: new key, cur to prev, gen + 1, in one script. */
static void rotate_redis(struct stcp_keyd *kd)
{
	char new_hex[HEX_KEY_LEN + 1], base_s[16], now_s[24], why[32];
	const char *argv[9];
	struct key_record rec;
	enum rec_status rs = REC_BAD;
	size_t lens[9];
	redisReply *r;
	uint32_t before;
	const char *bad;
	uint64_t kv[2];
	bool ours;

	if (mono_ms() < kd->retry_ms)
		return;
	kd->retry_ms = mono_ms() + RETRY_MS;
	argv[0] = "SET";
	argv[1] = kd->lock_key;
	argv[2] = kd->token;
	argv[3] = "NX";
	argv[4] = "PX";
	argv[5] = LOCK_TTL_MS;
	for (int i = 0; i < 6; i++)
		lens[i] = strlen(argv[i]);
	r = command(kd, 6, argv, lens);
	if (!r)
		return;
	if (reply_error(kd, r, "taking the rotate lock")) {
		freeReplyObject(r);
		return;
	}
	if (r->type == REDIS_REPLY_NIL) {
		freeReplyObject(r);
		log_debug("redis: %s is held by another replica; retrying",
			  kd->lock_key);
		return;
	}
	freeReplyObject(r);

	if (getrandom(kv, sizeof(kv), 0) != (ssize_t)sizeof(kv)) {
		log_warn("keys: getrandom: %s", strerror(errno));
		goto unlock;
	}
	key_to_hex(kv, new_hex);
	snprintf(base_s, sizeof(base_s), "%u", kd->rotate_base);
	snprintf(now_s, sizeof(now_s), "%lld", (long long)time(NULL));
	argv[0] = "EVAL";
	argv[1] = rotate_lua;
	argv[2] = "2";
	argv[3] = kd->rec_key;
	argv[4] = kd->lock_key;
	argv[5] = base_s;
	argv[6] = new_hex;
	argv[7] = now_s;
	argv[8] = kd->token;
	for (int i = 0; i < 9; i++)
		lens[i] = strlen(argv[i]);
	r = command(kd, 9, argv, lens);
	explicit_bzero(new_hex, sizeof(new_hex));
	if (!r)
		goto wipe; /* the lock expires by itself */
	if (!reply_error(kd, r, "rotating"))
		rs = parse_record(r, &rec, &bad);
	freeReplyObject(r);
unlock:
	argv[0] = "EVAL";
	argv[1] = unlock_lua;
	argv[2] = "1";
	argv[3] = kd->lock_key;
	argv[4] = kd->token;
	for (int i = 0; i < 5; i++)
		lens[i] = strlen(argv[i]);
	r = command(kd, 5, argv, lens);
	if (r)
		freeReplyObject(r);
	if (rs != REC_OK) {
		/* Missing: write ours back, then rotate. Malformed: say so
		 * (once). */
		kd->need_sync = true;
		goto wipe;
	}
	ours = rec.cur[0] == kv[0] && rec.cur[1] == kv[1];
	if (install(kd, &rec, &before))
		goto wipe;
	if (rec.gen != kd->rotate_base) {
		if (ours)
			log_info("keys: rotated to generation %u through "
				 "Redis (%s)",
				 rec.gen, rotation_why(kd, why, sizeof(why)));
		else
			log_info("keys: generation %u from Redis (was %u; "
				 "another replica rotated)",
				 rec.gen, before);
		kd->rotating = false;
		kd->retry_ms = 0;
	}
wipe:
	explicit_bzero(kv, sizeof(kv));
	explicit_bzero(&rec, sizeof(rec));
}

/* ---- the keeper ---- */

int stcp_keyd_new(struct stcp_keyd **out, const struct stcp_keyd_opts *o,
		  int keys_fd, int cfg_fd)
{
	const char *prefix = o->prefix ? o->prefix : STCP_REDIS_DEFAULT_PREFIX;
	struct stcp_keyd *kd;
	char host[256];

	*out = NULL;
	kd = calloc(1, sizeof(*kd));
	if (!kd)
		return -ENOMEM;
	kd->keys_fd = keys_fd;
	kd->cfg_fd = cfg_fd;
	kd->rotate_s = o->rotate_s;
	srandom((unsigned int)getpid() ^ (unsigned int)mono_ms());
	if (!o->redis) {
		*out = kd;
		return 0;
	}
	if (stcp_redis_addr_parse(o->redis, &kd->addr)) {
		free(kd);
		return -EINVAL;
	}
	kd->redis = true;
	snprintf(kd->where, sizeof(kd->where), "%s", o->redis);
	if (asprintf(&kd->rec_key, "%skeys", prefix) < 0 ||
	    asprintf(&kd->lock_key, "%srotate-lock", prefix) < 0) {
		kd->rec_key = kd->lock_key = NULL;
		stcp_keyd_free(kd);
		return -ENOMEM;
	}
	if (gethostname(host, sizeof(host)))
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	snprintf(kd->token, sizeof(kd->token), "%d@%s", (int)getpid(), host);
	link_up(kd);
	*out = kd;
	return 0;
}

void stcp_keyd_free(struct stcp_keyd *kd)
{
	if (!kd)
		return;
	if (kd->redis)
		log_info("redis: %s at exit, %lu reconnects%s%s",
			 kd->st.redis_connected ? "connected" : "disconnected",
			 kd->st.reconnects,
			 kd->st.last_error[0] ? ", last error: " : "",
			 kd->st.last_error);
	if (kd->rc)
		redisFree(kd->rc);
	free(kd->rec_key);
	free(kd->lock_key);
	free(kd);
}

void stcp_keyd_request_rotate(struct stcp_keyd *kd)
{
	kd->rotate_asked = true;
}

void stcp_keyd_run(struct stcp_keyd *kd)
{
	uint64_t due_ms;
	uint64_t now;

	if (!kd->redis) {
		rotate_local(kd);
		return;
	}
	now = mono_ms();
	if (!kd->rc) {
		if (now >= kd->next_connect_ms)
			link_up(kd);
	} else if (now >= kd->next_poll_ms ||
		   (!kd->need_sync &&
		    (kd->rotate_asked ||
		     (!kd->rotating && schedule_due(kd, &due_ms))))) {
		kd->next_poll_ms = now + POLL_MS;
		poll_record(kd);
	}
	if (!kd->rc) {
		/* Never rotate alone: that would fork the key history. */
		if ((kd->rotate_asked || kd->rotating) &&
		    !kd->postponed_logged) {
			log_warn("keys: rotation postponed until %s is back",
				 kd->where);
			kd->postponed_logged = true;
		}
		return;
	}
	if (kd->need_sync)
		return;
	want_rotation(kd);
	if (!kd->rotating)
		return;
	if (local_gen(kd, NULL) != kd->rotate_base) {
		log_debug("keys: another replica rotated to generation %u",
			  local_gen(kd, NULL));
		kd->rotating = false;
		return;
	}
	rotate_redis(kd);
}

long stcp_keyd_timeout_ms(const struct stcp_keyd *kd)
{
	uint64_t now = mono_ms(), due_ms = 0, at, wall;
	int64_t t = -1;

	if (kd->redis && !kd->rc)
		return kd->next_connect_ms > now
			       ? (long)(kd->next_connect_ms - now)
			       : 0;
	if (kd->redis)
		t = kd->next_poll_ms > now ? (int64_t)(kd->next_poll_ms - now)
					   : 0;
	if (kd->redis && kd->need_sync)
		return (long)t; /* nothing else before the record is read */
	if (kd->rotate_asked)
		return 0;
	if (kd->rotating) {
		at = kd->retry_ms > now ? kd->retry_ms - now : 0;
		if (t < 0 || (int64_t)at < t)
			t = (int64_t)at;
	} else if (kd->rotate_s) {
		wall = clock_ms(CLOCK_REALTIME);
		at = 0;
		if (!schedule_due(kd, &due_ms)) {
			/* A little after the second starts (see schedule_due),
			 * and no busy loop while time() catches up. */
			due_ms += COARSE_SLACK_MS;
			at = due_ms > wall ? due_ms - wall : 0;
			if (at < COARSE_SLACK_MS / 2)
				at = COARSE_SLACK_MS / 2;
		}
		if (t < 0 || (int64_t)at < t)
			t = (int64_t)at;
	}
	return (long)t;
}

void stcp_keyd_get_stats(const struct stcp_keyd *kd, struct stcp_keyd_stats *st)
{
	*st = kd->st;
}

bool stcp_keyd_connected(const struct stcp_keyd *kd)
{
	return kd && kd->rc;
}

redisReply *stcp_keyd_command(struct stcp_keyd *kd, int argc, const char **argv,
			      const size_t *lens)
{
	if (!kd || !kd->rc)
		return NULL;
	return command(kd, argc, argv, lens);
}
