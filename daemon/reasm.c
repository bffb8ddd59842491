// SPDX-License-Identifier: GPL-2.0
/*
 * Requests that span several segments (reasm.h, docs/PROTOCOL.md 7.8).
 *
 * Per connection: the first segment's frame (whose headers the short
 * request reuses) and up to REASM_SEGS segments as they came, possibly out
 * of order or more than once. After every segment the bytes from the
 * first one on are joined as far as they are contiguous; once they hold
 * the blank line that ends the header section, the short request is built
 * and the entry is marked done, so that a resent first segment (the
 * client's timer: our answer was lost) gets the same frame again.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "reasm.h"
#include "stcp_cache.h"
#include "stcp_http.h"

#define REASM_SEGS  32
#define REASM_TTL_S 30
/* The fast path answers 431 to a request whose header has not ended
 * within STCP_HTTP_MAX_REQ bytes: a short request of that many bytes
 * without an end stands for one over STCP_REASM_MAX. */
#define TOO_BIG_LEN (STCP_HTTP_MAX_REQ + 16)

struct seg_ref {
	uint32_t seq;
	uint32_t len;
	uint32_t off; /* in store[] */
};

struct stcp_reasm_conn {
	bool used, have_first, done;
	uint8_t key[37]; /* family, client and service address, ports */
	uint32_t ack;
	uint32_t first_seq;
	time_t last;
	uint8_t first[STCP_MISS_FRAME_MAX]; /* the first segment's frame */
	uint32_t first_len, first_hdr; /* frame bytes, bytes before payload */
	uint8_t out[STCP_REASM_FRAME_MAX]; /* the short request's frame */
	uint32_t out_len;
	struct seg_ref segs[REASM_SEGS];
	uint32_t nsegs, used_store;
	uint8_t store[STCP_REASM_MAX + 2048];
};

/* What reasm needs of a frame. */
struct tcp_view {
	uint8_t key[37];
	int family;
	uint32_t l3; /* IP header offset */
	uint32_t seq, ack;
	uint32_t hdr; /* bytes before the payload */
	uint32_t plen;
};

static time_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

int stcp_reasm_init(struct stcp_reasm *r)
{
	memset(r, 0, sizeof(*r));
	r->conns = calloc(STCP_REASM_CONNS, sizeof(*r->conns));
	if (!r->conns)
		return -ENOMEM;
	r->clock = mono_now;
	return 0;
}

void stcp_reasm_free(struct stcp_reasm *r)
{
	free(r->conns);
	r->conns = NULL;
}

static uint32_t be32_at(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* Ethernet, IPv4 without fragments or IPv6 without extension headers,
 * TCP: the only frames the fast path hands over. */
static int parse_frame(const uint8_t *f, uint32_t len, struct tcp_view *v)
{
	uint32_t l4, iplen, doff;
	uint16_t type;

	memset(v, 0, sizeof(*v));
	if (len < 14)
		return -EINVAL;
	type = (uint16_t)(f[12] << 8 | f[13]);
	v->l3 = 14;
	if (type == 0x0800) {
		uint32_t ihl;

		if (len < 34 || (f[14] >> 4) != 4 || f[23] != 6)
			return -EINVAL;
		ihl = (f[14] & 15) * 4u;
		iplen = (uint32_t)(f[16] << 8 | f[17]);
		if (ihl < 20 || iplen < ihl || 14 + iplen > len)
			return -EINVAL;
		l4 = 14 + ihl;
		v->family = 4;
		v->key[0] = 4;
		memcpy(v->key + 1, f + 26, 4); /* client */
		memcpy(v->key + 17, f + 30, 4); /* service */
		iplen += 14;
	} else if (type == 0x86dd) {
		if (len < 54 || (f[14] >> 4) != 6 || f[20] != 6)
			return -EINVAL;
		iplen = 14 + 40 + (uint32_t)(f[18] << 8 | f[19]);
		if (iplen > len)
			return -EINVAL;
		l4 = 54;
		v->family = 6;
		v->key[0] = 6;
		memcpy(v->key + 1, f + 22, 16);
		memcpy(v->key + 17, f + 38, 16);
	} else {
		return -EINVAL;
	}
	if (l4 + 20 > iplen)
		return -EINVAL;
	doff = (f[l4 + 12] >> 4) * 4u;
	if (doff < 20 || l4 + doff > iplen)
		return -EINVAL;
	memcpy(v->key + 33, f + l4, 4); /* both ports */
	v->seq = be32_at(f + l4 + 4);
	v->ack = be32_at(f + l4 + 8);
	v->hdr = l4 + doff;
	v->plen = iplen - v->hdr;
	return v->plen ? 0 : -EINVAL;
}

static struct stcp_reasm_conn *find_conn(struct stcp_reasm *r,
					 const struct tcp_view *v, time_t now)
{
	struct stcp_reasm_conn *free_c = NULL, *oldest = NULL;

	for (size_t i = 0; i < STCP_REASM_CONNS; i++) {
		struct stcp_reasm_conn *c = &r->conns[i];

		if (c->used && now - c->last > REASM_TTL_S)
			c->used = false;
		if (!c->used) {
			if (!free_c)
				free_c = c;
			continue;
		}
		if (!memcmp(c->key, v->key, sizeof(c->key)) && c->ack == v->ack)
			return c;
		if (!oldest || c->last < oldest->last)
			oldest = c;
	}
	if (!free_c) {
		free_c = oldest;
		r->dropped++;
	}
	memset(free_c, 0, offsetof(struct stcp_reasm_conn, out));
	free_c->used = true;
	memcpy(free_c->key, v->key, sizeof(free_c->key));
	free_c->ack = v->ack;
	free_c->nsegs = 0;
	free_c->used_store = 0;
	return free_c;
}

/* The bytes from the first segment on, as far as they are contiguous. */
static uint32_t join(const struct stcp_reasm_conn *c, uint8_t *buf,
		     uint32_t cap)
{
	uint32_t n = 0;
	bool progress = true;

	while (progress && n < cap) {
		progress = false;
		for (uint32_t i = 0; i < c->nsegs; i++) {
			const struct seg_ref *s = &c->segs[i];
			uint32_t at = c->first_seq + n, skip, take;

			/* Serial: s covers sequence number at. */
			if ((int32_t)(at - s->seq) < 0 ||
			    (int32_t)(at - s->seq) >= (int32_t)s->len)
				continue;
			skip = at - s->seq;
			take = s->len - skip;
			if (take > cap - n)
				take = cap - n;
			memcpy(buf + n, c->store + s->off + skip, take);
			n += take;
			progress = true;
		}
	}
	return n;
}

static const char *find_crlf2(const uint8_t *b, uint32_t n)
{
	for (uint32_t i = 0; i + 3 < n; i++) {
		if (b[i] == '\r' && b[i + 1] == '\n' && b[i + 2] == '\r' &&
		    b[i + 3] == '\n')
			return (const char *)b + i;
	}
	return NULL;
}

/* The value of header field name in the lines [p, end), trimmed. */
static bool field(const char *p, const char *end, const char *name,
		  const char **val, size_t *vlen)
{
	size_t nl = strlen(name);

	while (p < end) {
		const char *eol = memchr(p, '\r', (size_t)(end - p));

		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > nl && p[nl] == ':' &&
		    !strncasecmp(p, name, nl)) {
			const char *v = p + nl + 1, *e = eol;

			while (v < e && (*v == ' ' || *v == '\t'))
				v++;
			while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			*val = v;
			*vlen = (size_t)(e - v);
			return true;
		}
		p = eol + 2;
	}
	return false;
}

/* The short request that means the same to the fast path, or the one it
 * answers 431. Returns its length. */
static uint32_t short_request(const uint8_t *b, uint32_t n, char *out,
			      uint32_t cap, bool *too_big)
{
	const char *end = find_crlf2(b, n), *line_end, *val;
	size_t vlen, len;
	int w;

	*too_big = !end;
	if (!end) {
		w = snprintf(out, cap, "GET / HTTP/1.1\r\nX-Stcp-Too-Large: ");
		len = (size_t)w;
		while (len < TOO_BIG_LEN && len < cap)
			out[len++] = 'a';
		return (uint32_t)len;
	}
	line_end = memchr(b, '\r', (size_t)(end - (const char *)b) + 1);
	len = (size_t)(line_end - (const char *)b);
	if (len + 4 > cap)
		len = cap - 4;
	memcpy(out, b, len);
	memcpy(out + len, "\r\n", 2);
	len += 2;
	if (field(line_end + 2, end + 2, "Host", &val, &vlen) &&
	    len + vlen + 10 < cap) {
		len += (size_t)snprintf(out + len, cap - len, "Host: %.*s\r\n",
					(int)vlen, val);
	}
	/* What else the fast path reads: the variant (close or keep-alive)
	 * and the range. */
	static const char *const keep[] = { "If-None-Match", "Connection",
					    "Range" };

	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		if (field(line_end + 2, end + 2, keep[i], &val, &vlen) &&
		    len + strlen(keep[i]) + vlen + 6 < cap)
			len += (size_t)snprintf(out + len, cap - len,
						"%s: %.*s\r\n", keep[i],
						(int)vlen, val);
	}
	if (len + 2 <= cap) {
		memcpy(out + len, "\r\n", 2);
		len += 2;
	}
	return (uint32_t)len;
}

/* The first segment's frame with the short request as its payload. */
static void build_out(struct stcp_reasm_conn *c, const char *req,
		      uint32_t rlen)
{
	uint8_t *f = c->out;
	uint32_t total = c->first_hdr + rlen;

	memcpy(f, c->first, c->first_hdr);
	memcpy(f + c->first_hdr, req, rlen);
	if (f[12] == 0x08) {
		uint32_t ihl = (f[14] & 15) * 4u, sum = 0;
		uint16_t tot = (uint16_t)(total - 14);

		f[16] = (uint8_t)(tot >> 8);
		f[17] = (uint8_t)tot;
		f[24] = f[25] = 0;
		for (uint32_t i = 0; i < ihl; i += 2)
			sum += (uint32_t)(f[14 + i] << 8 | f[15 + i]);
		while (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16);
		f[24] = (uint8_t)(~sum >> 8);
		f[25] = (uint8_t)~sum;
	} else {
		uint16_t pl = (uint16_t)(total - 54);

		f[18] = (uint8_t)(pl >> 8);
		f[19] = (uint8_t)pl;
	}
	/* The TCP checksum is left as it was: the fast path does not verify
	 * incoming checksums (docs/PROTOCOL.md 8), and this frame never
	 * leaves the host. */
	c->out_len = total;
}

int stcp_reasm_add(struct stcp_reasm *r, uint32_t kind, const uint8_t *frame,
		   uint32_t len, uint8_t *out, uint32_t *out_len)
{
	static uint8_t joined[STCP_REASM_MAX + 1];
	char req[TOO_BIG_LEN + 64];
	struct stcp_reasm_conn *c;
	struct tcp_view v;
	time_t now = r->clock();
	uint32_t n, rlen;
	bool too_big, merged = kind & STCP_REASM_FROM_REDIS, stuck = false;
	int err;

	kind &= ~STCP_REASM_FROM_REDIS;
	err = parse_frame(frame, len, &v);
	if (err) {
		r->dropped++;
		return err;
	}
	c = find_conn(r, &v, now);
	c->last = now;
	if (c->done) {
		/* Only the client's own resent first segment asks again. */
		if (kind != STCP_EV_REQ_FIRST || merged)
			return 0;
		memcpy(out, c->out, c->out_len);
		*out_len = c->out_len;
		return 1;
	}
	if (kind == STCP_EV_REQ_FIRST && !c->have_first) {
		c->have_first = true;
		c->first_seq = v.seq;
		memcpy(c->first, frame, len);
		c->first_len = len;
		c->first_hdr = v.hdr;
	}
	/* A segment stored already (resent by the client, or joined in
	 * again from Redis) takes no room twice. The first segment resent
	 * by the client says its retransmission timer fired (a tail loss
	 * probe resends the last one instead): it waits for an ACK, which
	 * never comes before the answer, so the header section cannot end
	 * within what it may send (its initial window, or a lost segment
	 * it will not resend), and it gets the 431 of a header section too
	 * large. */
	for (uint32_t i = 0; i < c->nsegs && !stuck; i++) {
		if (c->segs[i].seq != v.seq || c->segs[i].len != v.plen)
			continue;
		if (merged || !c->have_first || v.seq != c->first_seq)
			return 0;
		stuck = true;
	}
	if (!stuck && c->nsegs < REASM_SEGS &&
	    c->used_store + v.plen <= sizeof(c->store)) {
		struct seg_ref *s = &c->segs[c->nsegs++];

		s->seq = v.seq;
		s->len = v.plen;
		s->off = c->used_store;
		memcpy(c->store + c->used_store, frame + v.hdr, v.plen);
		c->used_store += v.plen;
	}
	if (!c->have_first)
		return 0;
	n = join(c, joined, sizeof(joined));
	if (!find_crlf2(joined, n) && n < STCP_REASM_MAX && !stuck &&
	    c->nsegs < REASM_SEGS && c->used_store < STCP_REASM_MAX)
		return 0;
	rlen = short_request(joined, stuck && !find_crlf2(joined, n) ? 0 : n,
			     req, sizeof(req), &too_big);
	if (c->first_hdr + rlen > STCP_REASM_FRAME_MAX)
		rlen = STCP_REASM_FRAME_MAX - c->first_hdr;
	build_out(c, req, rlen);
	c->done = true;
	if (too_big)
		r->too_big++;
	else
		r->joined++;
	memcpy(out, c->out, c->out_len);
	*out_len = c->out_len;
	return 1;
}

int stcp_reasm_seq(const uint8_t *frame, uint32_t len, uint32_t *seq)
{
	struct tcp_view v;
	int err = parse_frame(frame, len, &v);

	if (err)
		return err;
	*seq = v.seq;
	return 0;
}
