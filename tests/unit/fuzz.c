// SPDX-License-Identifier: GPL-2.0
/*
 * The fuzz case: a deterministic stream of frames (random bytes, and valid
 * SYN / ACK / FIN / data segments of both families, with valid cookies,
 * then damaged) run through stcp_xdp one by one. Whatever the input:
 *  - the verdict is XDP_PASS, XDP_DROP or XDP_TX;
 *  - an XDP_PASS frame is handed on unchanged;
 *  - an XDP_TX frame is Ethernet + IPv4/IPv6 + TCP with lengths matching
 *    the frame, a valid IPv4 header checksum and a valid TCP checksum, sent
 *    back along the reverse path from a service address and port, and is a
 *    SYN-ACK (whose ISN is our cookie for the input and whose options answer
 *    the input's, as read by a reference option parser), a RST (seq =
 *    SEG.ACK) or a FIN-ACK;
 *  - over the whole run, every frame lands in exactly one disposition slot,
 *    and the verdicts and emitted frames agree with the counters.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>

#include "unit.h"

#define MAX_SHOWN 10
#define FRAME_MIN PKT_ETH_HLEN
#define FRAME_MAX 1500

struct rng {
	uint64_t s;
};

#define ARRAY_N(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t rnd(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t below(struct rng *r, uint32_t n)
{
	return n ? (uint32_t)(rnd(r) % n) : 0;
}

static bool chance(struct rng *r, uint32_t pct)
{
	return below(r, 100) < pct;
}

static void rnd_bytes(struct rng *r, uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)rnd(r);
}

struct fuzz {
	struct rng rng;
	struct tcase *t;
	long violations;
	long n_pass, n_drop, n_tx, n_synack, n_rst, n_finack, n_data, n_ack;
	long gen[16];
	struct {
		const char *fmt; /* the check that failed */
		long n;
	} kinds[32];
	int n_kinds;
	uint32_t svc4[4], svc6[4];
};

enum gen_kind {
	G_RANDOM,
	G_RANDOM_IP,
	G_SYN,
	G_ACK,
	G_FIN,
	G_DATA,
	G_LAST_ACK,
	G_ACK_RANDOM,
	G_OTHER_FLAGS,
	G_NKINDS,
};

static const char *const gen_names[G_NKINDS] = {
	"random bytes", "random IP", "SYN",	   "valid ACK",	  "valid FIN",
	"valid data",	"last ACK",  "random ACK", "other flags",
};

/* ------------------------------------------------------------------ */
/* Generation */

static const uint16_t mss_values[] = { 0,    1,	   100,	 535,  536,
				       1219, 1220, 1300, 1439, 1440,
				       1459, 1460, 1500, 9000, 65535 };

static void opt_random_valid(struct rng *r, struct pkt_spec *s)
{
	int n = (int)below(r, 8);

	for (int i = 0; i < n; i++) {
		switch (below(r, 7)) {
		case 0:
			pkt_opt_mss(s,
				    mss_values[below(
					    r, sizeof(mss_values) /
						       sizeof(mss_values[0]))]);
			break;
		case 1:
			pkt_opt_ws(s, (uint8_t)below(r, 20));
			break;
		case 2:
			pkt_opt_sack_perm(s);
			break;
		case 3:
			pkt_opt_ts(s, (uint32_t)rnd(r), (uint32_t)rnd(r));
			break;
		case 4:
			pkt_opt_nop(s);
			break;
		case 5: {
			/* Unknown kind with a sane length. */
			uint8_t b[8];
			uint8_t l = (uint8_t)(2 + below(r, 7));

			rnd_bytes(r, b, sizeof(b));
			b[0] = (uint8_t)(9 + below(r, 240));
			b[1] = l;
			pkt_opt_bytes(s, b, l);
			break;
		}
		default: {
			/* SACK blocks, as in a later segment. */
			uint8_t b[10] = { 5, 10 };

			rnd_bytes(r, b + 2, 8);
			pkt_opt_bytes(s, b, sizeof(b));
			break;
		}
		}
	}
}

static void opt_broken(struct rng *r, struct pkt_spec *s)
{
	static const uint8_t kinds[] = { 2, 3, 4, 8, 5, 30, 34, 254 };
	uint8_t b[PKT_MAX_TCPOPT];
	size_t room;
	uint8_t olen;

	opt_random_valid(r, s);
	room = PKT_MAX_TCPOPT - s->tcpopt_len;
	if (room < 2)
		return;
	b[0] = kinds[below(r, sizeof(kinds))];
	switch (below(r, 4)) {
	case 0:
		olen = (uint8_t)below(r, 2); /* 0 or 1 */
		break;
	case 1:
		olen = (uint8_t)(room + 1 + below(r, 40)); /* past the end */
		break;
	case 2:
		olen = (uint8_t)(2 + below(r, 12)); /* odd length */
		break;
	default:
		olen = (uint8_t)rnd(r);
		break;
	}
	b[1] = olen;
	rnd_bytes(r, b + 2, sizeof(b) - 2);
	pkt_opt_bytes(s, b,
		      room < 12 ? room : 2 + below(r, (uint32_t)room - 1));
	if (chance(r, 30))
		opt_random_valid(r, s);
}

static void rand_opts(struct rng *r, struct pkt_spec *s)
{
	uint32_t m = below(r, 100);

	s->tcpopt_len = 0;
	if (m < 30) {
		pkt_opt_linux_syn(
			s,
			mss_values[below(r, sizeof(mss_values) /
						    sizeof(mss_values[0]))],
			(uint32_t)rnd(r), (uint8_t)below(r, 20));
	} else if (m < 60) {
		opt_random_valid(r, s);
	} else if (m < 75) {
		s->tcpopt_len = below(r, PKT_MAX_TCPOPT + 1);
		rnd_bytes(r, s->tcpopt, s->tcpopt_len);
	} else if (m < 90) {
		opt_broken(r, s);
	}
}

static void rand_addr(struct rng *r, int family, uint32_t a[4])
{
	memset(a, 0, 16);
	if (family == 6)
		rnd_bytes(r, (uint8_t *)a, 16);
	else
		a[0] = (uint32_t)rnd(r);
}

static void rand_l3(struct fuzz *fz, struct pkt_spec *s)
{
	struct rng *r = &fz->rng;

	if (s->family == 4) {
		if (chance(r, 12)) {
			s->ipopt_len = below(r, PKT_MAX_IPOPT + 1);
			if (chance(r, 50))
				memset(s->ipopt, 1, s->ipopt_len);
			else
				rnd_bytes(r, s->ipopt, s->ipopt_len);
		}
		if (chance(r, 8)) {
			s->frag = (uint16_t)(chance(r, 50) ? PKT_IP_MF : 0);
			if (chance(r, 50))
				s->frag |= (uint16_t)below(r, 0x2000);
		}
		if (chance(r, 20))
			s->frag |= PKT_IP_DF;
		s->ip_id = (uint16_t)rnd(r);
		s->ttl = (uint8_t)rnd(r);
	} else if (chance(r, 20)) {
		static const uint8_t types[] = { PKT_IPPROTO_HOPOPTS,
						 PKT_IPPROTO_DSTOPTS,
						 PKT_IPPROTO_ROUTING,
						 PKT_IPPROTO_FRAGMENT };
		int n = 1 + (int)below(r, PKT_MAX_EXTHDR);

		for (int i = 0; i < n; i++) {
			uint8_t type = types[below(r, sizeof(types))];

			if (type == PKT_IPPROTO_FRAGMENT)
				pkt_ext_frag(
					s,
					(uint16_t)(chance(r, 50)
							   ? 0
							   : below(r, 0x2000)),
					chance(r, 50), (uint32_t)rnd(r));
			else
				pkt_ext_opts(s, type, 2 + below(r, 58));
		}
	}
	if (chance(r, 3))
		s->bad_ip_csum = true;
	if (chance(r, 3))
		s->bad_tcp_csum = true;
	if (chance(r, 10))
		s->trailer = below(r, 24);
}

/* Fills the common part: addresses, ports, usually our service. */
static void rand_flow(struct fuzz *fz, struct pkt_spec *s)
{
	struct rng *r = &fz->rng;
	int family = chance(r, 50) ? 4 : 6;

	pkt_spec_init(s, family);
	rnd_bytes(r, s->smac, 6);
	rnd_bytes(r, s->dmac, 6);
	rand_addr(r, family, s->saddr);
	memcpy(s->daddr, family == 6 ? fz->svc6 : fz->svc4, 16);
	s->sport = (uint16_t)rnd(r);
	s->dport = UNIT_SVC_PORT;
	if (chance(r, 10)) {
		if (chance(r, 50))
			s->dport = (uint16_t)rnd(r);
		else if (family == 4)
			s->daddr[0] ^= htonl(1u + below(r, 255));
		else
			s->daddr[3] ^= htonl(1u + below(r, 255));
	}
	s->window = (uint16_t)rnd(r);
}

static void cookie_seg(struct fuzz *fz, struct pkt_spec *s, enum gen_kind k)
{
	struct rng *r = &fz->rng;
	struct stcp_flow f;
	uint32_t tick = unit_tick(), opts = (uint32_t)below(r, 128);
	uint32_t cisn = (uint32_t)rnd(r), isn, tsecr;
	bool ts = chance(r, 70);

	if (chance(r, 15))
		tick -= below(r, 5);
	unit_flow_of(s, &f);
	isn = unit_isn(&f, cisn, tick, opts, ts, &tsecr);
	s->seq = cisn + 1;
	s->ack = isn + 1;
	s->flags = PKT_TH_ACK;
	switch (k) {
	case G_FIN:
		s->flags |= PKT_TH_FIN;
		break;
	case G_DATA:
		s->flags |= PKT_TH_PSH | (chance(r, 20) ? PKT_TH_FIN : 0);
		break;
	case G_LAST_ACK:
		s->seq = cisn + 2;
		s->ack = isn + 2;
		tsecr = stcp_tsval_at(tsecr, isn + 1);
		break;
	default:
		break;
	}
	s->tcpopt_len = 0;
	if (ts ? chance(r, 90) : chance(r, 30))
		pkt_opt_linux_ts(s, (uint32_t)rnd(r),
				 chance(r, 85) ? tsecr : (uint32_t)rnd(r));
	if (chance(r, 10))
		opt_random_valid(r, s);
}

static size_t gen_random(struct fuzz *fz, uint8_t *b, bool ip)
{
	struct rng *r = &fz->rng;
	size_t len = FRAME_MIN + below(r, FRAME_MAX - FRAME_MIN + 1);

	rnd_bytes(r, b, len);
	if (!ip)
		return len;
	if (chance(r, 50)) {
		b[12] = 0x08;
		b[13] = 0x00;
		if (len > 14)
			b[14] = (uint8_t)(0x40 | (b[14] & 0x0f));
		if (len >= 34 && chance(r, 70)) {
			b[14 + 9] = PKT_IPPROTO_TCP;
			memcpy(b + 14 + 16, &fz->svc4[0], 4);
			b[14 + 6] &= 0x40 | 0x80;
			if (chance(r, 50))
				b[14] = 0x45;
			if (len >= 14 + (size_t)(b[14] & 0xf) * 4 + 4 &&
			    chance(r, 80)) {
				size_t l4 = 14 + (size_t)(b[14] & 0xf) * 4;

				b[l4 + 2] = 0;
				b[l4 + 3] = UNIT_SVC_PORT;
			}
		}
	} else {
		b[12] = 0x86;
		b[13] = 0xdd;
		if (len > 14)
			b[14] = (uint8_t)(0x60 | (b[14] & 0x0f));
		if (len >= 54 && chance(r, 70)) {
			b[14 + 6] = PKT_IPPROTO_TCP;
			memcpy(b + 14 + 24, fz->svc6, 16);
			if (len >= 58 && chance(r, 80)) {
				b[54 + 2] = 0;
				b[54 + 3] = UNIT_SVC_PORT;
			}
		}
	}
	return len;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

/* The L4 offset of an input the program accepted, found the way a parser
 * following RFC 8200 would, for at most four extension headers. */
static size_t ref_l4_off(const uint8_t *in, size_t len)
{
	size_t off;
	uint8_t nh;

	if (len < 15)
		return 0;
	if (rd16(in + 12) == PKT_ETH_P_IP)
		return 14 + (size_t)(in[14] & 0x0f) * 4;
	if (len < 54)
		return 0;
	off = 54;
	nh = in[20];
	for (int i = 0; i < 4; i++) {
		if (nh != 0 && nh != 43 && nh != 60 && nh != 44)
			break;
		if (off + 8 > len)
			return 0;
		if (nh == 44) {
			nh = in[off];
			off += 8;
		} else {
			size_t hl = ((size_t)in[off + 1] + 1) * 8;

			nh = in[off];
			off += hl;
		}
	}
	return off;
}

static void mutate(struct fuzz *fz, uint8_t *b, size_t *len)
{
	struct rng *r = &fz->rng;
	size_t l4 = ref_l4_off(b, *len);
	size_t n;

	switch (below(r, 10)) {
	case 0: /* flip bytes anywhere */
		n = 1 + below(r, 8);
		for (size_t i = 0; i < n; i++)
			b[below(r, (uint32_t)*len)] ^=
				(uint8_t)(1 + below(r, 255));
		break;
	case 1: /* flip a bit in the headers */
		b[below(r, (uint32_t)(*len < 120 ? *len : 120))] ^=
			(uint8_t)(1u << below(r, 8));
		break;
	case 2: /* truncate */
		*len = FRAME_MIN + below(r, (uint32_t)(*len - FRAME_MIN + 1));
		break;
	case 3: /* IP total / payload length */
		if (b[12] == 0x08 && *len >= 18) {
			uint16_t v =
				chance(r, 50)
					? (uint16_t)rnd(r)
					: (uint16_t)(((b[16] << 8) | b[17]) +
						     below(r, 64) - 32);
			b[16] = v >> 8;
			b[17] = (uint8_t)v;
		} else if (*len >= 20) {
			uint16_t v =
				chance(r, 50)
					? (uint16_t)rnd(r)
					: (uint16_t)(((b[18] << 8) | b[19]) +
						     below(r, 64) - 32);
			b[18] = v >> 8;
			b[19] = (uint8_t)v;
		}
		break;
	case 4: /* doff */
		if (l4 && l4 + 13 <= *len)
			b[l4 + 12] = (uint8_t)((below(r, 16) << 4) |
					       (b[l4 + 12] & 0x0f));
		break;
	case 5: /* flags */
		if (l4 && l4 + 14 <= *len)
			b[l4 + 13] = (uint8_t)rnd(r);
		break;
	case 6: /* append junk */
		n = 1 + below(r, 64);
		if (*len + n > FRAME_MAX)
			n = FRAME_MAX - *len;
		rnd_bytes(r, b + *len, n);
		*len += n;
		break;
	case 7: /* IPv4 ihl / IPv6 next header */
		if (b[12] == 0x08 && *len > 14)
			b[14] = (uint8_t)(0x40 | below(r, 16));
		else if (*len > 20)
			b[20] = (uint8_t)(chance(r, 50) ? rnd(r) : 0);
		break;
	case 8: /* an option byte */
		if (l4 && l4 + 20 < *len) {
			size_t span = *len - (l4 + 20);

			b[l4 + 20 +
			  below(r, (uint32_t)(span < 40 ? span : 40))] =
				(uint8_t)rnd(r);
		}
		break;
	default: /* a random header byte */
		b[below(r, (uint32_t)(*len < 100 ? *len : 100))] =
			(uint8_t)rnd(r);
		break;
	}
}

static size_t generate(struct fuzz *fz, uint8_t *b, enum gen_kind *kind)
{
	static const uint8_t payload[256] = { 'x' };
	struct rng *r = &fz->rng;
	struct pkt_spec s;
	uint32_t pick = below(r, 100);
	enum gen_kind k;
	size_t len;

	if (pick < 10)
		k = G_RANDOM;
	else if (pick < 20)
		k = G_RANDOM_IP;
	else if (pick < 45)
		k = G_SYN;
	else if (pick < 60)
		k = G_ACK;
	else if (pick < 68)
		k = G_FIN;
	else if (pick < 76)
		k = G_DATA;
	else if (pick < 84)
		k = G_LAST_ACK;
	else if (pick < 92)
		k = G_ACK_RANDOM;
	else
		k = G_OTHER_FLAGS;
	*kind = k;
	if (k == G_RANDOM || k == G_RANDOM_IP)
		return gen_random(fz, b, k == G_RANDOM_IP);

	rand_flow(fz, &s);
	switch (k) {
	case G_SYN:
		s.seq = (uint32_t)rnd(r);
		s.flags = PKT_TH_SYN;
		if (chance(r, 10))
			s.flags |= PKT_TH_ECE | PKT_TH_CWR;
		if (chance(r, 5))
			s.ack = (uint32_t)rnd(r);
		rand_opts(r, &s);
		break;
	case G_ACK_RANDOM:
		s.seq = (uint32_t)rnd(r);
		s.ack = (uint32_t)rnd(r);
		s.flags = PKT_TH_ACK | (chance(r, 30) ? PKT_TH_FIN : 0);
		rand_opts(r, &s);
		break;
	case G_OTHER_FLAGS:
		s.seq = (uint32_t)rnd(r);
		s.ack = (uint32_t)rnd(r);
		s.flags = (uint8_t)rnd(r);
		rand_opts(r, &s);
		break;
	default:
		cookie_seg(fz, &s, k);
		break;
	}
	if (k == G_DATA || chance(r, 8)) {
		s.payload = payload;
		s.payload_len = 1 + below(r, sizeof(payload));
	}
	rand_l3(fz, &s);
	len = pkt_build(&s, b, PKT_MAX_FRAME);
	if (!len || len > FRAME_MAX) {
		/* Options beyond what fits: fall back to random bytes. */
		*kind = G_RANDOM;
		return gen_random(fz, b, false);
	}
	if (chance(r, 65)) {
		int n = 1 + (int)below(r, 3);

		for (int i = 0; i < n; i++)
			mutate(fz, b, &len);
	}
	return len;
}

/* ------------------------------------------------------------------ */
/* Checking */

static void violation(struct fuzz *fz, const uint8_t *in, size_t len,
		      const uint8_t *out, size_t out_len, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

static void violation(struct fuzz *fz, const uint8_t *in, size_t len,
		      const uint8_t *out, size_t out_len, const char *fmt, ...)
{
	char why[256], h[2 * FRAME_MAX + 1];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	for (int i = 0; i <= fz->n_kinds && i < 32; i++) {
		if (i == fz->n_kinds) {
			fz->kinds[i].fmt = fmt;
			fz->n_kinds++;
		}
		if (fz->kinds[i].fmt == fmt) {
			fz->kinds[i].n++;
			break;
		}
	}
	if (fz->violations == 0)
		tc_fail(fz->t, "%s", why);
	fz->violations++;
	if (fz->violations > MAX_SHOWN)
		return;
	printf("# fuzz violation %ld: %s\n", fz->violations, why);
	pkt_hex_line(in, len, h, sizeof(h));
	printf("#   input  (%zu bytes): %s\n", len, h);
	if (out) {
		pkt_hex_line(out, out_len, h, sizeof(h));
		printf("#   output (%zu bytes): %s\n", out_len, h);
	}
}

static uint32_t rd32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | p[3];
}

/* The cookie option byte for what the client offered (stcp_cookie.h). */
static uint32_t ref_cookie_opts(const struct pkt_tcpopts *o)
{
	static const uint16_t table[] = { STCP_MSS_CLASS_0, STCP_MSS_CLASS_1,
					  STCP_MSS_CLASS_2, STCP_MSS_CLASS_3 };
	uint32_t opts = 0, mss = o->has_mss ? o->mss : STCP_MSS_CLASS_0;

	if (o->sack_perm)
		opts |= STCP_OPT_SACK;
	if (o->has_ws)
		opts |= ((o->ws > STCP_MAX_WSCALE ? STCP_MAX_WSCALE : o->ws) +
			 1u)
			<< STCP_OPT_WS_SHIFT;
	for (uint32_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i] <= mss)
			opts = (opts & ~STCP_OPT_MSS_MASK) | i;
	return opts;
}

static void check_tx(struct fuzz *fz, const uint8_t *in, size_t len,
		     const uint8_t *out, size_t out_len, uint32_t tick_b,
		     uint32_t tick_a)
{
	struct pkt_view v;
	char why[160];
	int family = rd16(in + 12) == PKT_ETH_P_IPV6 ? 6 : 4;
	uint32_t in_saddr[4] = { 0 }, in_daddr[4] = { 0 };
	size_t l4 = ref_l4_off(in, len), alen = family == 6 ? 16 : 4;
	uint32_t in_seq, in_ack;
	uint8_t in_flags;

#define VIOL(...) violation(fz, in, len, out, out_len, __VA_ARGS__)
	if (pkt_parse(out, out_len, &v, why, sizeof(why))) {
		VIOL("XDP_TX frame does not parse: %s", why);
		return;
	}
	if (v.family == 4 && !v.ip_csum_ok)
		VIOL("XDP_TX frame: bad IPv4 header checksum");
	if (!v.tcp_csum_ok)
		VIOL("XDP_TX frame: bad TCP checksum");
	if (v.family != family)
		VIOL("XDP_TX frame: family %d for an IPv%d input", v.family,
		     family);
	if (v.family == 4 && (v.ihl != 5 || v.frag != PKT_IP_DF || v.ttl != 64))
		VIOL("XDP_TX frame: ihl %u frag 0x%04x ttl %u", v.ihl, v.frag,
		     v.ttl);
	if (v.family == 6 && (v.vtcfl != 0x60000000u || v.hop_limit != 64))
		VIOL("XDP_TX frame: vtcfl 0x%08x hop limit %u", v.vtcfl,
		     v.hop_limit);
	if (memcmp(v.dmac, in + 6, 6) || memcmp(v.smac, in, 6))
		VIOL("XDP_TX frame: MACs not swapped");
	if (v.family != family)
		return;
	if (family == 4) {
		memcpy(in_saddr, in + 26, 4);
		memcpy(in_daddr, in + 30, 4);
	} else {
		memcpy(in_saddr, in + 22, 16);
		memcpy(in_daddr, in + 38, 16);
	}
	if (memcmp(v.saddr, in_daddr, alen) || memcmp(v.daddr, in_saddr, alen))
		VIOL("XDP_TX frame: addresses not swapped");
	if (memcmp(v.saddr, family == 6 ? fz->svc6 : fz->svc4, alen) ||
	    v.sport != UNIT_SVC_PORT)
		VIOL("XDP_TX frame: not from a service address and port");
	if (!l4 || l4 + 20 > len) {
		VIOL("XDP_TX for an input without a TCP header");
		return;
	}
	if (v.sport != rd16(in + l4 + 2) || v.dport != rd16(in + l4))
		VIOL("XDP_TX frame: ports not swapped");
	in_seq = rd32(in + l4 + 4);
	in_ack = rd32(in + l4 + 8);
	in_flags = in[l4 + 13];

	if (v.flags == (PKT_TH_SYN | PKT_TH_ACK)) {
		size_t doff = (size_t)(in[l4 + 12] >> 4) * 4;
		struct pkt_tcpopts io, ro;
		struct stcp_flow f;
		uint32_t opts, isn = 0;
		uint32_t want_tsval = 0;
		bool found = false;

		fz->n_synack++;
		if ((in_flags & (PKT_TH_SYN | PKT_TH_ACK | PKT_TH_FIN |
				 PKT_TH_RST)) != PKT_TH_SYN)
			VIOL("SYN-ACK for input flags 0x%02x", in_flags);
		if (doff < 20 || l4 + doff > len) {
			VIOL("SYN-ACK for an input with doff %zu", doff);
			return;
		}
		pkt_parse_tcpopts(in + l4 + 20, doff - 20, &io);
		opts = ref_cookie_opts(&io);
		memset(&f, 0, sizeof(f));
		memcpy(f.caddr, in_saddr, 16);
		memcpy(f.saddr, in_daddr, 16);
		f.cport = htons(rd16(in + l4));
		f.sport = htons(rd16(in + l4 + 2));
		f.family = family == 6 ? STCP_AF_INET6 : STCP_AF_INET;
		pkt_parse_tcpopts(v.opt, v.opt_len, &ro);
		for (uint32_t k = tick_b; k <= tick_a && !found; k++) {
			isn = unit_isn(&f, in_seq, k, opts, io.has_ts,
				       &want_tsval);
			found = isn == v.seq;
		}
		if (!found)
			VIOL("SYN-ACK ISN 0x%08x is not our cookie (expected "
			     "0x%08x, option byte 0x%02x)",
			     v.seq, isn, opts);
		if (v.ack != in_seq + 1 || v.window != 65535)
			VIOL("SYN-ACK ack 0x%08x window %u", v.ack, v.window);
		pkt_parse_tcpopts(v.opt, v.opt_len, &ro);
		if (ro.stopped_early || !ro.has_mss ||
		    ro.mss != (family == 6 ? STCP_DEFAULT_MSS_V6
					   : STCP_DEFAULT_MSS_V4) ||
		    ro.sack_perm != io.sack_perm || ro.has_ts != io.has_ts ||
		    ro.has_ws != io.has_ws || (ro.has_ws && ro.ws != 0))
			VIOL("SYN-ACK options do not answer the SYN's (mss %d "
			     "sack %d ts %d ws %d -> mss %d sack %d ts %d ws "
			     "%d)",
			     io.has_mss ? io.mss : -1, io.sack_perm, io.has_ts,
			     io.has_ws ? io.ws : -1, ro.has_mss ? ro.mss : -1,
			     ro.sack_perm, ro.has_ts, ro.has_ws ? ro.ws : -1);
		else if (ro.has_ts && found &&
			 (ro.tsval != want_tsval ||
			  ro.tsecr != io.tsval))
			VIOL("SYN-ACK TSval 0x%08x TSecr 0x%08x", ro.tsval,
			     ro.tsecr);
	} else if (v.flags == PKT_TH_RST) {
		fz->n_rst++;
		if (v.seq != in_ack || v.ack != 0 || v.opt_len || v.window)
			VIOL("RST seq 0x%08x (SEG.ACK 0x%08x) ack 0x%08x "
			     "optlen %zu window %u",
			     v.seq, in_ack, v.ack, v.opt_len, v.window);
		if (!(in_flags & PKT_TH_ACK))
			VIOL("RST for an input without ACK");
	} else if (v.flags == (PKT_TH_FIN | PKT_TH_ACK)) {
		fz->n_finack++;
		if (v.seq != in_ack || v.ack != in_seq + 1 || v.window != 65535)
			VIOL("FIN|ACK seq 0x%08x ack 0x%08x window %u", v.seq,
			     v.ack, v.window);
		if ((in_flags & (PKT_TH_FIN | PKT_TH_ACK)) !=
		    (PKT_TH_FIN | PKT_TH_ACK))
			VIOL("FIN|ACK for input flags 0x%02x", in_flags);
	} else if (v.flags == (PKT_TH_FIN | PKT_TH_PSH | PKT_TH_ACK)) {
		/* A whole response: it acknowledges the whole request segment
		 * (and its FIN) and starts at the client's ACK point. */
		size_t doff = (size_t)(in[l4 + 12] >> 4) * 4;
		size_t end = family == 4 ? 14 + (size_t)rd16(in + 16) :
					   54 + (size_t)rd16(in + 18);
		uint32_t in_plen = end > l4 + doff ? (uint32_t)(end - l4 - doff)
						   : 0;

		fz->n_data++;
		if (!in_plen || !(in_flags & PKT_TH_ACK))
			VIOL("response for an input without data (flags 0x%02x)",
			     in_flags);
		if (v.seq != in_ack ||
		    v.ack != in_seq + in_plen + !!(in_flags & PKT_TH_FIN) ||
		    v.window != 65535 || !v.payload_len)
			VIOL("response seq 0x%08x ack 0x%08x window %u len %zu",
			     v.seq, v.ack, v.window, v.payload_len);
		/* The payload follows the options in the frame. */
		if (v.opt + v.opt_len + 9 > out + out_len ||
		    memcmp(v.opt + v.opt_len, "HTTP/1.1 ", 9))
			VIOL("response payload does not start with a status "
			     "line");
		return;
	} else if (v.flags == PKT_TH_ACK) {
		/* Our ACK of the client's FIN after a response. */
		fz->n_ack++;
		if (v.seq != in_ack || v.ack != in_seq + 1 ||
		    !(in_flags & PKT_TH_FIN))
			VIOL("ACK seq 0x%08x ack 0x%08x for flags 0x%02x",
			     v.seq, v.ack, in_flags);
	} else {
		VIOL("XDP_TX frame with TCP flags 0x%02x", v.flags);
	}
	if (v.payload_len)
		VIOL("XDP_TX frame carries %zu bytes of data", v.payload_len);
#undef VIOL
}

static uint64_t sum_slots(const uint64_t *d, const int *slots, size_t n)
{
	uint64_t s = 0;

	for (size_t i = 0; i < n; i++)
		s += d[slots[i]];
	return s;
}

int fuzz_run(uint64_t seed, long count, struct tcase *t)
{
	static const int pass_slots[] = {
		STCP_C_PASS_NON_IP,	STCP_C_PASS_NON_TCP,
		STCP_C_PASS_OTHER_DEST, STCP_C_PASS_MALFORMED,
		STCP_C_PASS_FRAGMENT,
	};
	static const int tx_slots[] = {
		STCP_C_SYN_ANSWERED,	 STCP_C_FIN_ANSWERED,
		STCP_C_DATA_REFUSED,	 STCP_C_BAD_COOKIE,
		STCP_C_STALE_COOKIE,	 STCP_C_REQUEST_ANSWERED,
		STCP_C_RESPONSE_TOO_BIG,
	};
	static const int drop_slots[] = {
		STCP_C_HANDSHAKE_DONE, STCP_C_DROP_RST,
		STCP_C_DROP_MALFORMED, STCP_C_DROP_FRAGMENT,
		STCP_C_DROP_NO_KEY,    STCP_C_DROP_BAD_FLAGS,
		STCP_C_DROP_TX_FAILED, STCP_C_RESPONSE_ACKED,
		STCP_C_DATA_ACK_IDLE,  STCP_C_DATA_DSACK,
		STCP_C_CACHE_MISS,     STCP_C_CACHE_MISS_LOST,
		STCP_C_REQUEST_PART,   STCP_C_REQUEST_PART_LOST,
	};
	static uint8_t in[PKT_MAX_FRAME], out[PKT_MAX_FRAME];
	uint64_t before[STCP_C_MAX], after[STCP_C_MAX], d[STCP_C_MAX];
	uint64_t disp_sum = 0;
	struct fuzz fz;
	struct stcp_listen_key k;

	memset(&fz, 0, sizeof(fz));
	fz.rng.s = seed;
	fz.t = t;
	stcp_listen_parse(UNIT_LISTEN_V4, &k);
	memcpy(fz.svc4, k.addr, 16);
	stcp_listen_parse(UNIT_LISTEN_V6, &k);
	memcpy(fz.svc6, k.addr, 16);

	if (unit_reset_key(&unit_main) || unit_counters(&unit_main, before)) {
		tc_fail(t, "cannot prepare the maps");
		return 1;
	}
	for (long i = 0; i < count; i++) {
		enum gen_kind kind;
		size_t len = generate(&fz, in, &kind);
		uint32_t verdict, out_len, tb, ta;
		int err;

		fz.gen[kind]++;
		tb = unit_tick();
		err = unit_run_fast(&unit_main, in, len, &verdict, out,
				    &out_len);
		ta = unit_tick();
		if (err) {
			violation(&fz, in, len, NULL, 0,
				  "packet %ld: test run failed: %s", i,
				  strerror(-err));
			continue;
		}
		switch (verdict) {
		case XDP_PASS:
			fz.n_pass++;
			if (out_len != len || memcmp(in, out, len))
				violation(&fz, in, len, out, out_len,
					  "packet %ld: XDP_PASS frame modified",
					  i);
			break;
		case XDP_DROP:
			fz.n_drop++;
			break;
		case XDP_TX:
			fz.n_tx++;
			check_tx(&fz, in, len, out, out_len, tb, ta);
			break;
		default:
			violation(&fz, in, len, out, out_len,
				  "packet %ld: verdict %u (%s)", i, verdict,
				  verdict_name(verdict));
			break;
		}
	}
	if (unit_counters(&unit_main, after)) {
		tc_fail(t, "cannot read the counters");
		return 1;
	}
	for (int i = 0; i < STCP_C_MAX; i++)
		d[i] = after[i] - before[i];
	for (int i = 0; i < STCP_C_MAX; i++)
		if (stcp_counter_is_disposition(i))
			disp_sum += d[i];

	printf("# fuzz inputs:");
	for (int g = 0; g < G_NKINDS; g++)
		printf(" %s %ld%s", gen_names[g], fz.gen[g],
		       g + 1 < G_NKINDS ? "," : "\n");
	printf("# fuzz verdicts: XDP_PASS %ld, XDP_DROP %ld, XDP_TX %ld "
	       "(SYN-ACK %ld, RST %ld, FIN-ACK %ld)\n",
	       fz.n_pass, fz.n_drop, fz.n_tx, fz.n_synack, fz.n_rst,
	       fz.n_finack);
	printf("# fuzz counter deltas:\n");
	for (int i = 0; i < STCP_C_MAX; i++)
		printf("#   %-16s %8llu\n", stcp_counter_names[i],
		       (unsigned long long)d[i]);

	EXPECT(t, d[STCP_C_RX_PACKETS] == (uint64_t)count,
	       "rx_packets moved by %llu for %ld packets",
	       (unsigned long long)d[STCP_C_RX_PACKETS], count);
	EXPECT(t, disp_sum == (uint64_t)count,
	       "dispositions sum to %llu for %ld packets",
	       (unsigned long long)disp_sum, count);
	EXPECT(t, sum_slots(d, pass_slots, ARRAY_N(pass_slots)) == (uint64_t)fz.n_pass,
	       "%ld XDP_PASS but pass_* slots sum to %llu", fz.n_pass,
	       (unsigned long long)sum_slots(d, pass_slots, ARRAY_N(pass_slots)));
	EXPECT(t, sum_slots(d, tx_slots, ARRAY_N(tx_slots)) == (uint64_t)fz.n_tx,
	       "%ld XDP_TX but answered/refused/cookie slots sum to %llu",
	       fz.n_tx, (unsigned long long)sum_slots(d, tx_slots, ARRAY_N(tx_slots)));
	EXPECT(t, sum_slots(d, drop_slots, ARRAY_N(drop_slots)) == (uint64_t)fz.n_drop,
	       "%ld XDP_DROP but drop slots sum to %llu", fz.n_drop,
	       (unsigned long long)sum_slots(d, drop_slots, ARRAY_N(drop_slots)));
	EXPECT(t,
	       d[STCP_C_TX_SYNACK] == (uint64_t)fz.n_synack &&
		       d[STCP_C_TX_RST] == (uint64_t)fz.n_rst &&
		       d[STCP_C_TX_ACK] == (uint64_t)(fz.n_finack + fz.n_ack) &&
		       d[STCP_C_TX_DATA] == (uint64_t)fz.n_data,
	       "emitted frames SYN-ACK %ld RST %ld FIN-ACK+ACK %ld data %ld, "
	       "counters %llu %llu %llu %llu",
	       fz.n_synack, fz.n_rst, fz.n_finack + fz.n_ack, fz.n_data,
	       (unsigned long long)d[STCP_C_TX_SYNACK],
	       (unsigned long long)d[STCP_C_TX_RST],
	       (unsigned long long)d[STCP_C_TX_ACK],
	       (unsigned long long)d[STCP_C_TX_DATA]);
	/* The generator must reach every disposition a keyed instance can
	 * reach, or the run proves less than it claims. */
	if (count >= 20000) {
		for (int i = 0; i < STCP_C_MAX; i++) {
			if (!stcp_counter_is_disposition(i))
				continue;
			/* Not reachable by this generator: no key is
			 * missing, every frame can be shaped, segments
			 * after a response need the response's TSval (the
			 * fixture tables cover those), and its requests
			 * all get an answer (a refusal needs a response of
			 * several segments to a client without SACK). */
			if (i == STCP_C_DROP_NO_KEY ||
			    i == STCP_C_DATA_REFUSED ||
			    i == STCP_C_DROP_TX_FAILED ||
			    i == STCP_C_RESPONSE_TOO_BIG ||
			    i == STCP_C_RESPONSE_ACKED ||
			    i >= STCP_C_DATA_ACK_RELEASED)
				continue;
			EXPECT(t, d[i] > 0, "generator never reached %s",
			       stcp_counter_names[i]);
		}
	}
	if (fz.violations) {
		printf("# fuzz: %ld violations (first %d shown), by check:\n",
		       fz.violations, MAX_SHOWN);
		for (int i = 0; i < fz.n_kinds; i++)
			printf("#   %8ld  %s\n", fz.kinds[i].n,
			       fz.kinds[i].fmt);
	}
	if (fz.violations > 1)
		tc_fail(t, "%ld violations in all", fz.violations);
	return (int)fz.violations;
}
