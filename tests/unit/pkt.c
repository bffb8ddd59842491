// SPDX-License-Identifier: GPL-2.0
/*
 * Test packet builder and parser; see pkt.h. Written byte by byte so the
 * result does not depend on struct layouts or host byte order.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "pkt.h"

static const uint8_t client_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };
static const uint8_t server_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x02 };

void pkt_spec_init(struct pkt_spec *s, int family)
{
	memset(s, 0, sizeof(*s));
	s->family = family;
	memcpy(s->smac, client_mac, 6);
	memcpy(s->dmac, server_mac, 6);
	s->ttl = 64;
	s->window = 64240;
	s->ip_len = -1;
}

void pkt_set_addr(uint32_t addr[4], int family, const char *text)
{
	memset(addr, 0, 16);
	if (inet_pton(family == 6 ? AF_INET6 : AF_INET, text, addr) != 1) {
		fprintf(stderr, "pkt: bad address %s\n", text);
		memset(addr, 0, 16);
	}
}

int pkt_opt_bytes(struct pkt_spec *s, const uint8_t *b, size_t n)
{
	if (s->tcpopt_len + n > PKT_MAX_TCPOPT)
		return -1;
	memcpy(s->tcpopt + s->tcpopt_len, b, n);
	s->tcpopt_len += n;
	return 0;
}

int pkt_opt_nop(struct pkt_spec *s)
{
	const uint8_t b[] = { PKT_TCPOPT_NOP };

	return pkt_opt_bytes(s, b, sizeof(b));
}

int pkt_opt_mss(struct pkt_spec *s, uint16_t mss)
{
	const uint8_t b[] = { PKT_TCPOPT_MSS, 4, mss >> 8, mss & 0xff };

	return pkt_opt_bytes(s, b, sizeof(b));
}

int pkt_opt_ws(struct pkt_spec *s, uint8_t shift)
{
	const uint8_t b[] = { PKT_TCPOPT_WS, 3, shift };

	return pkt_opt_bytes(s, b, sizeof(b));
}

int pkt_opt_sack_perm(struct pkt_spec *s)
{
	const uint8_t b[] = { PKT_TCPOPT_SACK_PERM, 2 };

	return pkt_opt_bytes(s, b, sizeof(b));
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static uint32_t get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | p[3];
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

int pkt_opt_ts(struct pkt_spec *s, uint32_t tsval, uint32_t tsecr)
{
	uint8_t b[10] = { PKT_TCPOPT_TS, 10 };

	put32(b + 2, tsval);
	put32(b + 6, tsecr);
	return pkt_opt_bytes(s, b, sizeof(b));
}

int pkt_opt_linux_syn(struct pkt_spec *s, uint16_t mss, uint32_t tsval,
		      uint8_t wscale)
{
	return pkt_opt_mss(s, mss) || pkt_opt_sack_perm(s) ||
	       pkt_opt_ts(s, tsval, 0) || pkt_opt_nop(s) ||
	       pkt_opt_ws(s, wscale);
}

int pkt_opt_linux_ts(struct pkt_spec *s, uint32_t tsval, uint32_t tsecr)
{
	return pkt_opt_nop(s) || pkt_opt_nop(s) || pkt_opt_ts(s, tsval, tsecr);
}

int pkt_opt_sack(struct pkt_spec *s, const uint32_t *edges, int nblocks)
{
	uint8_t b[4 + 8 * 4] = { PKT_TCPOPT_NOP, PKT_TCPOPT_NOP, 5 };

	if (nblocks < 1 || nblocks > 4)
		return -1;
	b[3] = (uint8_t)(2 + 8 * nblocks);
	for (int i = 0; i < 2 * nblocks; i++)
		put32(b + 4 + 4 * i, edges[i]);
	return pkt_opt_bytes(s, b, 4 + 8 * (size_t)nblocks);
}

int pkt_ext_opts(struct pkt_spec *s, uint8_t type, size_t padn_len)
{
	struct pkt_exthdr *e;

	if (s->n_ext >= PKT_MAX_EXTHDR || padn_len + 2 > sizeof(e->data))
		return -1;
	e = &s->ext[s->n_ext++];
	memset(e, 0, sizeof(*e));
	e->type = type;
	/* PadN: type 1, length, zeros. With 6 bytes, the minimal header. */
	e->data[0] = 1;
	e->data[1] = (uint8_t)(padn_len - 2);
	e->len = (uint8_t)padn_len;
	return 0;
}

int pkt_ext_frag(struct pkt_spec *s, uint16_t off_units, bool more, uint32_t id)
{
	struct pkt_exthdr *e;

	if (s->n_ext >= PKT_MAX_EXTHDR)
		return -1;
	e = &s->ext[s->n_ext++];
	memset(e, 0, sizeof(*e));
	e->type = PKT_IPPROTO_FRAGMENT;
	e->frag_off = off_units & PKT_IP_OFFMASK;
	e->frag_more = more;
	e->frag_id = id;
	return 0;
}

uint32_t pkt_csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t s = sum;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		s += (uint32_t)((p[i] << 8) | p[i + 1]);
	if (i < len)
		s += (uint32_t)(p[i] << 8);
	while (s >> 32)
		s = (s & 0xffffffffu) + (s >> 32);
	return (uint32_t)s;
}

uint16_t pkt_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

bool pkt_ipv4_csum_ok(const uint8_t *ip, size_t avail)
{
	size_t hl;

	if (avail < PKT_IPV4_HLEN)
		return false;
	hl = (size_t)(ip[0] & 0x0f) * 4;
	if (hl < PKT_IPV4_HLEN || hl > avail)
		return false;
	return pkt_csum_fold(pkt_csum_add(0, ip, hl)) == 0;
}

uint16_t pkt_tcp_csum_v4(const uint32_t saddr, const uint32_t daddr,
			 const uint8_t *tcp, size_t len)
{
	uint8_t ph[12];
	uint32_t sum;

	memcpy(ph, &saddr, 4);
	memcpy(ph + 4, &daddr, 4);
	ph[8] = 0;
	ph[9] = PKT_IPPROTO_TCP;
	put16(ph + 10, (uint16_t)len);
	sum = pkt_csum_add(0, ph, sizeof(ph));
	sum = pkt_csum_add(sum, tcp, len);
	return pkt_csum_fold(sum);
}

uint16_t pkt_tcp_csum_v6(const uint32_t saddr[4], const uint32_t daddr[4],
			 const uint8_t *tcp, size_t len)
{
	uint8_t ph[40] = { 0 };
	uint32_t sum;

	memcpy(ph, saddr, 16);
	memcpy(ph + 16, daddr, 16);
	put32(ph + 32, (uint32_t)len);
	ph[39] = PKT_IPPROTO_TCP;
	sum = pkt_csum_add(0, ph, sizeof(ph));
	sum = pkt_csum_add(sum, tcp, len);
	return pkt_csum_fold(sum);
}

static size_t round4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

/* Writes the L4 part (TCP or raw) at p; returns its length. */
static size_t build_l4(const struct pkt_spec *s, uint8_t *p, size_t cap)
{
	size_t optlen = round4(s->tcpopt_len);
	size_t hl = PKT_TCP_HLEN + optlen;
	int doff;

	if (s->ip_proto && s->ip_proto != PKT_IPPROTO_TCP) {
		if (s->l4_raw_len > cap)
			return (size_t)-1;
		if (s->l4_raw_len)
			memcpy(p, s->l4_raw, s->l4_raw_len);
		return s->l4_raw_len;
	}
	if (hl + s->payload_len > cap)
		return (size_t)-1;
	memset(p, 0, hl);
	put16(p, s->sport);
	put16(p + 2, s->dport);
	put32(p + 4, s->seq);
	put32(p + 8, s->ack);
	doff = s->doff_words ? s->doff_words : (int)(hl / 4);
	p[12] = (uint8_t)((doff & 0x0f) << 4);
	p[13] = s->flags;
	put16(p + 14, s->window);
	put16(p + 18, s->urg_ptr);
	memcpy(p + PKT_TCP_HLEN, s->tcpopt, s->tcpopt_len);
	if (s->payload_len)
		memcpy(p + hl, s->payload, s->payload_len);
	return hl + s->payload_len;
}

static size_t exthdr_len(const struct pkt_exthdr *e)
{
	if (e->type == PKT_IPPROTO_FRAGMENT)
		return 8;
	return (2 + (size_t)e->len + 7) & ~(size_t)7;
}

size_t pkt_build(const struct pkt_spec *s, uint8_t *buf, size_t cap)
{
	uint8_t l4proto = s->ip_proto ? s->ip_proto : PKT_IPPROTO_TCP;
	size_t off = PKT_ETH_HLEN, l3, l4, l4len, iphl, total;

	if (cap < PKT_ETH_HLEN + PKT_IPV6_HLEN)
		return 0;
	memset(buf, 0, cap < PKT_MAX_FRAME ? cap : PKT_MAX_FRAME);
	memcpy(buf, s->dmac, 6);
	memcpy(buf + 6, s->smac, 6);
	put16(buf + 12, s->family == 6 ? PKT_ETH_P_IPV6 : PKT_ETH_P_IP);
	l3 = off;

	if (s->family == 6) {
		size_t ext_total = 0;

		off += PKT_IPV6_HLEN;
		for (int i = 0; i < s->n_ext; i++) {
			const struct pkt_exthdr *e = &s->ext[i];
			size_t el = exthdr_len(e);
			uint8_t *h = buf + off;

			if (off + el > cap)
				return 0;
			memset(h, 0, el);
			h[0] = i + 1 < s->n_ext ? s->ext[i + 1].type : l4proto;
			if (e->type == PKT_IPPROTO_FRAGMENT) {
				put16(h + 2,
				      (uint16_t)((e->frag_off << 3) |
						 (e->frag_more ? 1 : 0)));
				put32(h + 4, e->frag_id);
			} else {
				h[1] = (uint8_t)(el / 8 - 1);
				memcpy(h + 2, e->data, e->len);
			}
			off += el;
			ext_total += el;
		}
		l4 = off;
		l4len = build_l4(s, buf + l4, cap - l4);
		if (l4len == (size_t)-1)
			return 0;
		put32(buf + l3, (6u << 28) | (s->flow_label & 0xfffff));
		put16(buf + l3 + 4, s->ip_len > 0
					    ? (uint16_t)s->ip_len
					    : (uint16_t)(ext_total + l4len));
		buf[l3 + 6] = s->n_ext ? s->ext[0].type : l4proto;
		buf[l3 + 7] = s->ttl;
		memcpy(buf + l3 + 8, s->saddr, 16);
		memcpy(buf + l3 + 24, s->daddr, 16);
		if (l4proto == PKT_IPPROTO_TCP) {
			uint16_t c = pkt_tcp_csum_v6(s->saddr, s->daddr,
						     buf + l4, l4len);

			if (s->bad_tcp_csum)
				c ^= 0x5a5a;
			put16(buf + l4 + 16, c);
		}
	} else {
		size_t optlen = round4(s->ipopt_len);
		int ihl;

		iphl = PKT_IPV4_HLEN + optlen;
		l4 = off + iphl;
		if (l4 > cap)
			return 0;
		l4len = build_l4(s, buf + l4, cap - l4);
		if (l4len == (size_t)-1)
			return 0;
		ihl = s->ihl_words ? s->ihl_words : (int)(iphl / 4);
		buf[l3] = (uint8_t)(0x40 | (ihl & 0x0f));
		buf[l3 + 1] = s->tos;
		put16(buf + l3 + 2, s->ip_len > 0 ? (uint16_t)s->ip_len
						  : (uint16_t)(iphl + l4len));
		put16(buf + l3 + 4, s->ip_id);
		put16(buf + l3 + 6, s->frag);
		buf[l3 + 8] = s->ttl;
		buf[l3 + 9] = l4proto;
		memcpy(buf + l3 + 12, &s->saddr[0], 4);
		memcpy(buf + l3 + 16, &s->daddr[0], 4);
		memcpy(buf + l3 + 20, s->ipopt, s->ipopt_len);
		if (l4proto == PKT_IPPROTO_TCP) {
			uint16_t c = pkt_tcp_csum_v4(s->saddr[0], s->daddr[0],
						     buf + l4, l4len);

			if (s->bad_tcp_csum)
				c ^= 0x5a5a;
			put16(buf + l4 + 16, c);
		}
		{
			uint16_t c =
				pkt_csum_fold(pkt_csum_add(0, buf + l3, iphl));

			if (s->bad_ip_csum)
				c ^= 0x5a5a;
			put16(buf + l3 + 10, c);
		}
	}
	total = l4 + l4len + s->trailer;
	if (total > cap)
		return 0;
	return total;
}

void pkt_parse_tcpopts(const uint8_t *opt, size_t len, struct pkt_tcpopts *o)
{
	size_t i = 0;

	memset(o, 0, sizeof(*o));
	while (i < len) {
		uint8_t kind = opt[i], olen;

		if (kind == PKT_TCPOPT_EOL)
			return;
		if (kind == PKT_TCPOPT_NOP) {
			i++;
			continue;
		}
		if (i + 1 >= len) {
			o->stopped_early = true;
			return;
		}
		olen = opt[i + 1];
		if (olen < 2 || i + olen > len) {
			o->stopped_early = true;
			return;
		}
		if (kind == PKT_TCPOPT_MSS && olen == 4) {
			o->has_mss = true;
			o->mss = get16(opt + i + 2);
		} else if (kind == PKT_TCPOPT_WS && olen == 3) {
			o->has_ws = true;
			o->ws = opt[i + 2];
		} else if (kind == PKT_TCPOPT_SACK_PERM && olen == 2) {
			o->sack_perm = true;
		} else if (kind == PKT_TCPOPT_TS && olen == 10) {
			o->has_ts = true;
			o->tsval = get32(opt + i + 2);
			o->tsecr = get32(opt + i + 6);
		}
		i += olen;
	}
}

#define FAIL(...)                                                              \
	do {                                                                   \
		if (why && why_len)                                            \
			snprintf(why, why_len, __VA_ARGS__);                   \
		return -1;                                                     \
	} while (0)

int pkt_parse(const uint8_t *buf, size_t len, struct pkt_view *v, char *why,
	      size_t why_len)
{
	const uint8_t *ip, *th;
	size_t l4len;

	memset(v, 0, sizeof(*v));
	v->frame_len = len;
	if (len < PKT_ETH_HLEN)
		FAIL("frame of %zu bytes, shorter than Ethernet", len);
	memcpy(v->dmac, buf, 6);
	memcpy(v->smac, buf + 6, 6);
	v->ethertype = get16(buf + 12);
	v->l3_off = PKT_ETH_HLEN;
	ip = buf + PKT_ETH_HLEN;

	if (v->ethertype == PKT_ETH_P_IP) {
		size_t hl;

		v->family = 4;
		if (len < PKT_ETH_HLEN + PKT_IPV4_HLEN)
			FAIL("IPv4 header truncated (%zu bytes)", len);
		if ((ip[0] >> 4) != 4)
			FAIL("IPv4 version %u", ip[0] >> 4);
		v->ihl = ip[0] & 0x0f;
		hl = (size_t)v->ihl * 4;
		if (v->ihl < 5 || PKT_ETH_HLEN + hl > len)
			FAIL("IPv4 ihl %u does not fit", v->ihl);
		v->tos = ip[1];
		v->tot_len = get16(ip + 2);
		v->ip_id = get16(ip + 4);
		v->frag = get16(ip + 6);
		v->ttl = ip[8];
		v->proto = ip[9];
		memcpy(&v->saddr[0], ip + 12, 4);
		memcpy(&v->daddr[0], ip + 16, 4);
		v->ip_csum_ok = pkt_ipv4_csum_ok(ip, len - PKT_ETH_HLEN);
		if (v->tot_len != len - PKT_ETH_HLEN)
			FAIL("IPv4 tot_len %u but %zu bytes follow Ethernet",
			     v->tot_len, len - PKT_ETH_HLEN);
		if (v->proto != PKT_IPPROTO_TCP)
			FAIL("IPv4 protocol %u", v->proto);
		v->l4_off = PKT_ETH_HLEN + hl;
	} else if (v->ethertype == PKT_ETH_P_IPV6) {
		v->family = 6;
		if (len < PKT_ETH_HLEN + PKT_IPV6_HLEN)
			FAIL("IPv6 header truncated (%zu bytes)", len);
		v->vtcfl = get32(ip);
		if ((v->vtcfl >> 28) != 6)
			FAIL("IPv6 version %u", v->vtcfl >> 28);
		v->plen = get16(ip + 4);
		v->nexthdr = ip[6];
		v->hop_limit = ip[7];
		memcpy(v->saddr, ip + 8, 16);
		memcpy(v->daddr, ip + 24, 16);
		if (v->plen != len - PKT_ETH_HLEN - PKT_IPV6_HLEN)
			FAIL("IPv6 payload_len %u but %zu bytes follow",
			     v->plen, len - PKT_ETH_HLEN - PKT_IPV6_HLEN);
		if (v->nexthdr != PKT_IPPROTO_TCP)
			FAIL("IPv6 next header %u", v->nexthdr);
		v->l4_off = PKT_ETH_HLEN + PKT_IPV6_HLEN;
	} else {
		FAIL("ethertype 0x%04x", v->ethertype);
	}

	l4len = len - v->l4_off;
	v->l4_len = l4len;
	if (l4len < PKT_TCP_HLEN)
		FAIL("TCP header truncated (%zu bytes)", l4len);
	th = buf + v->l4_off;
	v->sport = get16(th);
	v->dport = get16(th + 2);
	v->seq = get32(th + 4);
	v->ack = get32(th + 8);
	v->doff = th[12] >> 4;
	v->res = th[12] & 0x0f;
	v->flags = th[13];
	v->window = get16(th + 14);
	v->check = get16(th + 16);
	v->urg_ptr = get16(th + 18);
	if (v->doff < 5 || (size_t)v->doff * 4 > l4len)
		FAIL("TCP doff %u with %zu bytes of TCP", v->doff, l4len);
	v->opt = th + PKT_TCP_HLEN;
	v->opt_len = (size_t)v->doff * 4 - PKT_TCP_HLEN;
	v->payload_len = l4len - (size_t)v->doff * 4;
	if (v->family == 4)
		v->tcp_csum_ok = pkt_tcp_csum_v4(v->saddr[0], v->daddr[0], th,
						 l4len) == 0;
	else
		v->tcp_csum_ok =
			pkt_tcp_csum_v6(v->saddr, v->daddr, th, l4len) == 0;
	return 0;
}

void pkt_hex_line(const uint8_t *buf, size_t len, char *out, size_t out_len)
{
	size_t o = 0;

	if (!out_len)
		return;
	out[0] = '\0';
	for (size_t i = 0; i < len && o + 3 < out_len; i++)
		o += (size_t)snprintf(out + o, out_len - o, "%02x", buf[i]);
}

void pkt_hexdump(const char *title, const uint8_t *buf, size_t len)
{
	fprintf(stderr, "# %s (%zu bytes):\n", title, len);
	for (size_t i = 0; i < len; i += 16) {
		fprintf(stderr, "#   %04zx:", i);
		for (size_t j = i; j < i + 16 && j < len; j++)
			fprintf(stderr, " %02x", buf[j]);
		fputc('\n', stderr);
	}
}
