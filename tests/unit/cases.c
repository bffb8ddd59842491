// SPDX-License-Identifier: GPL-2.0
/*
 * Fixture tables, in the manner of katran's lib/testing: each row names an
 * input, the verdict, the one disposition counter (and emitted-frame
 * counter) it must move, and what the output frame must be, field by field.
 *
 * - syn_table: a SYN in, a SYN-ACK out: ISN == our cookie, every option.
 * - hs_table: SYN (or a cookie minted by the test), then one or more
 *   segments of the same connection: handshake ACK, bad and stale cookies,
 *   key rotation, FIN before data and the last ACK, data.
 * - misc_table: everything that is not ours or not acceptable.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>

#include "unit.h"

#define CLI_ISN	     0x1a2b3c4du
#define CLI_TSVAL    0x00c0ffeeu
#define CLI_TS_BYTES 0x00, 0xc0, 0xff, 0xee
#define REPLY_TTL    64
#define REPLY_WINDOW 65535

/* Option templates: bytes, O_TSV / O_TSE stand for 4 bytes of the expected
 * TSval / TSecr, O_END ends the list. */
#define O_TSV 0x100
#define O_TSE 0x101
#define O_END (-1)
#define OPTS(...)                                                              \
	{                                                                      \
		__VA_ARGS__, O_END                                             \
	}
#define NO_OPTS                                                                \
	{                                                                      \
		O_END                                                          \
	}
#define OPT_TPL_MAX 64

#define MSS_1460 2, 4, 0x05, 0xb4
#define MSS_1440 2, 4, 0x05, 0xa0
#define LINUX_SYN(ws)                                                          \
	MSS_1460, 4, 2, 8, 10, CLI_TS_BYTES, 0, 0, 0, 0, 1, 3, 3, ws

static size_t expand_opts(const short *tpl, uint32_t tsv, uint32_t tse,
			  uint8_t *out)
{
	size_t n = 0;

	for (int i = 0; i < OPT_TPL_MAX && tpl[i] != O_END; i++) {
		if (tpl[i] == O_TSV || tpl[i] == O_TSE) {
			uint32_t v = tpl[i] == O_TSV ? tsv : tse;

			out[n++] = v >> 24;
			out[n++] = v >> 16;
			out[n++] = v >> 8;
			out[n++] = v;
		} else {
			out[n++] = (uint8_t)tpl[i];
		}
	}
	return n;
}

static void hex(const uint8_t *b, size_t n, char *out, size_t len)
{
	pkt_hex_line(b, n, out, len);
	if (!n && len)
		snprintf(out, len, "(none)");
}

static bool same_addr(const uint32_t *a, const uint32_t *b, int family)
{
	return !memcmp(a, b, family == 6 ? 16 : 4);
}

/*
 * What every reply must be: Ethernet and IP headers written from scratch
 * for the reverse direction, TCP ports swapped, the given flags, optlen
 * bytes of options, no payload, both checksums right. Fills v.
 */
static bool check_reply(struct tcase *t, const struct pkt_spec *in,
			const struct unit_run *r, uint8_t flags, size_t optlen,
			struct pkt_view *v)
{
	size_t iphl = in->family == 6 ? PKT_IPV6_HLEN : PKT_IPV4_HLEN;
	char why[160];

	if (r->verdict != XDP_TX) {
		tc_fail(t, "verdict %s, expected XDP_TX",
			verdict_name(r->verdict));
		return false;
	}
	if (pkt_parse(r->out, r->out_len, v, why, sizeof(why))) {
		tc_fail(t, "reply does not parse: %s", why);
		return false;
	}
	EXPECT(t, v->family == in->family, "reply family %d", v->family);
	EXPECT(t, r->out_len == PKT_ETH_HLEN + iphl + PKT_TCP_HLEN + optlen,
	       "reply frame %u bytes, expected %zu", r->out_len,
	       PKT_ETH_HLEN + iphl + PKT_TCP_HLEN + optlen);
	EXPECT(t,
	       !memcmp(v->dmac, in->smac, 6) && !memcmp(v->smac, in->dmac, 6),
	       "MACs not swapped");
	EXPECT(t,
	       same_addr(v->saddr, in->daddr, in->family) &&
		       same_addr(v->daddr, in->saddr, in->family),
	       "IP addresses not swapped");
	if (in->family == 4) {
		EXPECT(t, v->ihl == 5, "reply ihl %u", v->ihl);
		EXPECT(t, v->tos == 0, "reply tos %u", v->tos);
		EXPECT(t, v->tot_len == iphl + PKT_TCP_HLEN + optlen,
		       "reply tot_len %u", v->tot_len);
		EXPECT(t, v->frag == PKT_IP_DF, "reply frag_off 0x%04x",
		       v->frag);
		EXPECT(t, v->ttl == REPLY_TTL, "reply ttl %u", v->ttl);
		EXPECT(t, v->ip_csum_ok, "bad IPv4 header checksum");
	} else {
		EXPECT(t, v->vtcfl == 0x60000000u, "reply vtc/flow 0x%08x",
		       v->vtcfl);
		EXPECT(t, v->plen == PKT_TCP_HLEN + optlen,
		       "reply payload_len %u", v->plen);
		EXPECT(t, v->hop_limit == REPLY_TTL, "reply hop limit %u",
		       v->hop_limit);
	}
	EXPECT(t, v->sport == in->dport && v->dport == in->sport,
	       "ports %u -> %u, expected %u -> %u", v->sport, v->dport,
	       in->dport, in->sport);
	EXPECT(t, v->flags == flags, "TCP flags 0x%02x, expected 0x%02x",
	       v->flags, flags);
	EXPECT(t, v->res == 0, "reserved TCP bits 0x%x", v->res);
	EXPECT(t, v->urg_ptr == 0, "urgent pointer %u", v->urg_ptr);
	EXPECT(t, v->opt_len == optlen, "TCP options %zu bytes, expected %zu",
	       v->opt_len, optlen);
	EXPECT(t, v->payload_len == 0, "reply carries %zu bytes of data",
	       v->payload_len);
	EXPECT(t, v->tcp_csum_ok, "bad TCP checksum 0x%04x", v->check);
	return t->failures == 0;
}

static void expect_opt_bytes(struct tcase *t, const struct pkt_view *v,
			     const uint8_t *want, size_t n)
{
	char got_s[128], want_s[128];

	if (v->opt_len == n && !memcmp(v->opt, want, n))
		return;
	hex(v->opt, v->opt_len, got_s, sizeof(got_s));
	hex(want, n, want_s, sizeof(want_s));
	tc_fail(t, "TCP options %s, expected %s", got_s, want_s);
}

/* The RST of RFC 9293 3.10.7.1 for a segment with ACK: <SEQ=SEG.ACK>. */
static void check_rst(struct tcase *t, const struct pkt_spec *in,
		      const struct unit_run *r)
{
	struct pkt_view v;

	if (!check_reply(t, in, r, PKT_TH_RST, 0, &v))
		return;
	EXPECT(t, v.seq == in->ack, "RST seq 0x%08x, expected SEG.ACK 0x%08x",
	       v.seq, in->ack);
	EXPECT(t, v.ack == 0, "RST ack 0x%08x", v.ack);
	EXPECT(t, v.window == 0, "RST window %u", v.window);
}

/* ------------------------------------------------------------------ */
/* SYN -> SYN-ACK */

struct syn_fx {
	const char *name;
	int family;
	short copts[OPT_TPL_MAX]; /* client options, bytes */
	uint8_t cookie_opts;	  /* expected option byte (STCP_OPT_*) */
	short ropts[OPT_TPL_MAX]; /* expected SYN-ACK options */
	size_t ipopt_len;	  /* IPv4 options: RA then NOPs */
	size_t hbh;	  /* IPv6 hop-by-hop header, PadN length (0: none) */
	size_t dstopt;	  /* IPv6 destination options header */
	bool atomic_frag; /* IPv6 fragment header, offset 0, M=0 */
	size_t trailer;	  /* Ethernet padding */
	size_t payload;	  /* data in the SYN */
	uint16_t cfg_mss; /* written to stcp_cfg for this case */
	uint8_t extra_flags;
};

/* clang-format off */
static const struct syn_fx syn_table[] = {
	{ .name = "v4 SYN, Linux options (MSS 1460, SACK_PERM, TS, NOP, WS 7)",
	  .family = 4,
	  .copts = OPTS(LINUX_SYN(7)),
	  .cookie_opts = 0x63,
	  .ropts = OPTS(MSS_1460, 4, 2, 8, 10, O_TSV, O_TSE, 1, 3, 3, 0) },
	{ .name = "v6 SYN, Linux options (MSS 1460, SACK_PERM, TS, NOP, WS 7)",
	  .family = 6,
	  .copts = OPTS(LINUX_SYN(7)),
	  .cookie_opts = 0x63,
	  .ropts = OPTS(MSS_1440, 4, 2, 8, 10, O_TSV, O_TSE, 1, 3, 3, 0) },
	{ .name = "v4 SYN without options",
	  .family = 4,
	  .copts = NO_OPTS,
	  .cookie_opts = 0x00,
	  .ropts = OPTS(MSS_1460) },
	{ .name = "v6 SYN without options",
	  .family = 6,
	  .copts = NO_OPTS,
	  .cookie_opts = 0x00,
	  .ropts = OPTS(MSS_1440) },
	{ .name = "v4 SYN with only MSS 1460",
	  .family = 4,
	  .copts = OPTS(MSS_1460),
	  .cookie_opts = 0x03,
	  .ropts = OPTS(MSS_1460) },
	{ .name = "v6 SYN with only MSS 1440",
	  .family = 6,
	  .copts = OPTS(MSS_1440),
	  .cookie_opts = 0x02,
	  .ropts = OPTS(MSS_1440) },
	{ .name = "v4 SYN with only MSS 1300 (class 1220)",
	  .family = 4,
	  .copts = OPTS(2, 4, 0x05, 0x14),
	  .cookie_opts = 0x01,
	  .ropts = OPTS(MSS_1460) },
	{ .name = "v4 SYN with only MSS 400 (below the table: class 536)",
	  .family = 4,
	  .copts = OPTS(2, 4, 0x01, 0x90),
	  .cookie_opts = 0x00,
	  .ropts = OPTS(MSS_1460) },
	{ .name = "v4 SYN with MSS and TS, no SACK",
	  .family = 4,
	  .copts = OPTS(MSS_1460, 1, 1, 8, 10, CLI_TS_BYTES, 0, 0, 0, 0),
	  .cookie_opts = 0x03,
	  .ropts = OPTS(MSS_1460, 1, 1, 8, 10, O_TSV, O_TSE) },
	{ .name = "v6 SYN with MSS and TS, no SACK",
	  .family = 6,
	  .copts = OPTS(MSS_1440, 1, 1, 8, 10, CLI_TS_BYTES, 0, 0, 0, 0),
	  .cookie_opts = 0x02,
	  .ropts = OPTS(MSS_1440, 1, 1, 8, 10, O_TSV, O_TSE) },
	{ .name = "v4 SYN with MSS and SACK_PERM, no TS",
	  .family = 4,
	  .copts = OPTS(MSS_1460, 1, 1, 4, 2),
	  .cookie_opts = 0x43,
	  .ropts = OPTS(MSS_1460, 1, 1, 4, 2) },
	{ .name = "v4 SYN with MSS and WS 0",
	  .family = 4,
	  .copts = OPTS(MSS_1460, 1, 3, 3, 0),
	  .cookie_opts = 0x07,
	  .ropts = OPTS(MSS_1460, 1, 3, 3, 0) },
	{ .name = "v4 SYN with MSS and WS 14 (cookie caps it at 13)",
	  .family = 4,
	  .copts = OPTS(MSS_1460, 1, 3, 3, 14),
	  .cookie_opts = 0x3b,
	  .ropts = OPTS(MSS_1460, 1, 3, 3, 0) },
	{ .name = "v4 SYN with MSS and WS 15 (cookie caps it at 13)",
	  .family = 4,
	  .copts = OPTS(MSS_1460, 1, 3, 3, 15),
	  .cookie_opts = 0x3b,
	  .ropts = OPTS(MSS_1460, 1, 3, 3, 0) },
	{ .name = "v4 SYN, Linux options with WS 14 (capped at 13)",
	  .family = 4,
	  .copts = OPTS(LINUX_SYN(14)),
	  .cookie_opts = 0x7b,
	  .ropts = OPTS(MSS_1460, 4, 2, 8, 10, O_TSV, O_TSE, 1, 3, 3, 0) },
	{ .name = "v4 SYN, Linux options with WS 15 (capped at 13)",
	  .family = 4,
	  .copts = OPTS(LINUX_SYN(15)),
	  .cookie_opts = 0x7b,
	  .ropts = OPTS(MSS_1460, 4, 2, 8, 10, O_TSV, O_TSE, 1, 3, 3, 0) },
	{ .name = "v4 SYN with 12 bytes of IP options -> reply has ihl 5",
	  .family = 4,
	  .copts = OPTS(LINUX_SYN(7)),
	  .cookie_opts = 0x63,
	  .ropts = OPTS(MSS_1460, 4, 2, 8, 10, O_TSV, O_TSE, 1, 3, 3, 0),
	  .ipopt_len = 12 },
	{ .name = "v4 SYN with 40 bytes of IP options (ihl 15), no TCP options",
	  .family = 4,
	  .copts = NO_OPTS,
	  .cookie_opts = 0x00,
	  .ropts = OPTS(MSS_1460),
	  .ipopt_len = 40 },
	{ .name = "v6 SYN behind a hop-by-hop header",
	  .family = 6,
	  .copts = OPTS(LINUX_SYN(7)),
	  .cookie_opts = 0x63,
	  .ropts = OPTS(MSS_1440, 4, 2, 8, 10, O_TSV, O_TSE, 1, 3, 3, 0),
	  .hbh = 6 },
	{ .name = "v6 SYN behind hop-by-hop and destination options headers",
	  .family = 6,
	  .copts = OPTS(MSS_1440),
	  .cookie_opts = 0x02,
	  .ropts = OPTS(MSS_1440),
	  .hbh = 14,
	  .dstopt = 6 },
	{ .name = "v6 SYN in an atomic fragment (RFC 6946): answered",
	  .family = 6,
	  .copts = OPTS(LINUX_SYN(7)),
	  .cookie_opts = 0x63,
	  .ropts = OPTS(MSS_1440, 4, 2, 8, 10, O_TSV, O_TSE, 1, 3, 3, 0),
	  .atomic_frag = true },
	{ .name = "v4 SYN in a padded 60-byte frame -> 58-byte reply",
	  .family = 4,
	  .copts = NO_OPTS,
	  .cookie_opts = 0x00,
	  .ropts = OPTS(MSS_1460),
	  .trailer = 6 },
	{ .name = "v4 SYN carrying 100 bytes of data -> SYN-ACK acks the SYN only",
	  .family = 4,
	  .copts = OPTS(MSS_1460),
	  .cookie_opts = 0x03,
	  .ropts = OPTS(MSS_1460),
	  .payload = 100 },
	{ .name = "v4 SYN with ECE|CWR (ECN setup) -> plain SYN-ACK",
	  .family = 4,
	  .copts = OPTS(MSS_1460),
	  .cookie_opts = 0x03,
	  .ropts = OPTS(MSS_1460),
	  .extra_flags = PKT_TH_ECE | PKT_TH_CWR },
	{ .name = "v4 SYN, option with length 1 ends the walk: MSS kept, TS lost",
	  .family = 4,
	  .copts = OPTS(MSS_1460, 0x22, 1, 8, 10, CLI_TS_BYTES, 0, 0, 0, 0),
	  .cookie_opts = 0x03,
	  .ropts = OPTS(MSS_1460) },
	{ .name = "v4 SYN, EOL ends the options",
	  .family = 4,
	  .copts = OPTS(MSS_1460, 0, 4, 2),
	  .cookie_opts = 0x03,
	  .ropts = OPTS(MSS_1460) },
	{ .name = "v4 SYN, unknown option skipped",
	  .family = 4,
	  .copts = OPTS(MSS_1460, 0xfe, 4, 0xaa, 0xbb, 4, 2),
	  .cookie_opts = 0x43,
	  .ropts = OPTS(MSS_1460, 1, 1, 4, 2) },
	{ .name = "v4 SYN, TS of wrong length ignored, walk goes on",
	  .family = 4,
	  .copts = OPTS(8, 8, 1, 2, 3, 4, 5, 6, MSS_1460),
	  .cookie_opts = 0x03,
	  .ropts = OPTS(MSS_1460) },
	{ .name = "v4 SYN, option running past the end ignored",
	  .family = 4,
	  .copts = OPTS(MSS_1460, 4, 2, 8, 30, 1, 2),
	  .cookie_opts = 0x43,
	  .ropts = OPTS(MSS_1460, 1, 1, 4, 2) },
	{ .name = "v4 SYN, repeated MSS: the last one counts",
	  .family = 4,
	  .copts = OPTS(2, 4, 0x02, 0x18, MSS_1460),
	  .cookie_opts = 0x03,
	  .ropts = OPTS(MSS_1460) },
	{ .name = "v4 SYN, 36 NOPs then MSS (40 bytes of options)",
	  .family = 4,
	  .copts = OPTS(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
			1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
			MSS_1460),
	  .cookie_opts = 0x03,
	  .ropts = OPTS(MSS_1460) },
	{ .name = "v4 SYN, stcp_cfg.mss_v4 = 1400 is advertised",
	  .family = 4,
	  .copts = OPTS(MSS_1460),
	  .cookie_opts = 0x03,
	  .ropts = OPTS(2, 4, 0x05, 0x78),
	  .cfg_mss = 1400 },
	{ .name = "v6 SYN, stcp_cfg.mss_v6 = 1280 is advertised",
	  .family = 6,
	  .copts = OPTS(MSS_1440),
	  .cookie_opts = 0x02,
	  .ropts = OPTS(2, 4, 0x05, 0x00),
	  .cfg_mss = 1280 },
};
/* clang-format on */

static void spec_base(struct pkt_spec *s, int family, uint16_t cport)
{
	pkt_spec_init(s, family);
	if (family == 6) {
		pkt_set_addr(s->saddr, 6, UNIT_CLI_V6);
		pkt_set_addr(s->daddr, 6, UNIT_SVC_V6);
	} else {
		pkt_set_addr(s->saddr, 4, UNIT_CLI_V4);
		pkt_set_addr(s->daddr, 4, UNIT_SVC_V4);
	}
	s->sport = cport;
	s->dport = UNIT_SVC_PORT;
}

static void spec_opts(struct pkt_spec *s, const short *tpl)
{
	s->tcpopt_len = expand_opts(tpl, 0, 0, s->tcpopt);
}

static void spec_ipopts(struct pkt_spec *s, size_t n)
{
	/* Router Alert, then NOPs. */
	memset(s->ipopt, 1, n);
	if (n >= 4) {
		s->ipopt[0] = 0x94;
		s->ipopt[1] = 4;
		s->ipopt[2] = 0;
		s->ipopt[3] = 0;
	}
	s->ipopt_len = n;
}

static int set_cfg_mss(struct unit_env *e, int family, uint16_t mss)
{
	struct stcp_cfg cfg;
	int err = stcp_cfg_read(e->m.cfg, &cfg);

	if (err)
		return err;
	if (family == 6)
		cfg.mss_v6 = mss;
	else
		cfg.mss_v4 = mss;
	return stcp_cfg_write(e->m.cfg, &cfg);
}

/*
 * The SYN-ACK for the SYN in s: everything of check_reply(), the ISN equal
 * to our cookie at the tick before or after the run, the option byte, the
 * options byte for byte. Returns the ISN and hash the reply matched.
 */
static bool check_synack(struct tcase *t, const struct pkt_spec *s,
			 const struct unit_run *r, uint8_t cookie_opts,
			 const short *ropts, uint32_t *isn_out,
			 uint32_t *tsval_out)
{
	uint8_t want[64];
	size_t optlen;
	struct pkt_view v;
	struct stcp_flow f;
	struct pkt_tcpopts co, ro;
	uint32_t tsecr, want_tsval = 0, got_opts;
	bool found = false;

	pkt_parse_tcpopts(s->tcpopt, s->tcpopt_len, &co);
	tsecr = co.has_ts ? co.tsval : 0;
	optlen = expand_opts(ropts, 0, tsecr, want);
	if (!check_reply(t, s, r, PKT_TH_SYN | PKT_TH_ACK, optlen, &v)) {
		if (r->verdict == XDP_TX && v.opt_len) {
			char got[128];

			hex(v.opt, v.opt_len, got, sizeof(got));
			tc_fail(t, "options were %s", got);
		}
		return false;
	}
	pkt_parse_tcpopts(v.opt, v.opt_len, &ro);
	EXPECT(t, !ro.stopped_early, "reply options malformed");
	unit_flow_of(s, &f);
	for (uint32_t tick = r->tick_before; tick <= r->tick_after; tick++) {
		uint32_t tv;
		uint32_t i = unit_isn(&f, s->seq, tick, cookie_opts, co.has_ts,
				      &tv);

		if (i == v.seq && (!co.has_ts || tv == ro.tsval)) {
			want_tsval = tv;
			found = true;
			break;
		}
	}
	/* Whatever we send later stands for a sequence number >= ISN + 1 and
	 * carries that number's 1 KB block in the top 10 bits: it must be
	 * serial-after this TSval, or PAWS would drop it. */
	if (co.has_ts) {
		uint32_t later = ((v.seq + 1) >> 10 & 0x3ff) << 22;

		EXPECT(t, (int32_t)(later - (ro.tsval & 0xffc00000u)) > 0,
		       "SYN-ACK TSval 0x%08x not PAWS-older than data at ISN+1",
		       ro.tsval);
	}
	/* The option byte rides in the TSval, or in the ISN without one. */
	got_opts = co.has_ts ? (ro.tsval >> STCP_TS_OPT_SHIFT) & STCP_OPT_MASK :
			       (v.seq >> STCP_NTS_OPT_SHIFT) & STCP_OPT_MASK;
	EXPECT(t, got_opts == cookie_opts,
	       "cookie option byte 0x%02x, expected 0x%02x", got_opts,
	       cookie_opts);
	EXPECT(t, found, "ISN 0x%08x / TSval 0x%08x is not our cookie (tick %u)",
	       v.seq, ro.tsval, r->tick_before);
	EXPECT(t, v.ack == s->seq + 1, "ack 0x%08x, expected 0x%08x", v.ack,
	       s->seq + 1);
	EXPECT(t, v.window == REPLY_WINDOW, "window %u", v.window);
	/* Expected options with the TSval of the cookie we matched (or of
	 * the one sent, to report option differences on their own). */
	expand_opts(ropts, found ? want_tsval : ro.tsval, tsecr, want);
	expect_opt_bytes(t, &v, want, optlen);
	if (isn_out)
		*isn_out = v.seq;
	if (tsval_out)
		*tsval_out = ro.tsval;
	return t->failures == 0;
}

static void run_syn_fx(const struct syn_fx *fx, int idx, struct tcase *t)
{
	uint8_t in[PKT_MAX_FRAME], payload[256];
	struct unit_run r;
	struct pkt_spec s;
	size_t len;

	spec_base(&s, fx->family, (uint16_t)(33000 + idx));
	s.seq = CLI_ISN + (uint32_t)idx * 7919;
	s.flags = PKT_TH_SYN | fx->extra_flags;
	spec_opts(&s, fx->copts);
	if (fx->ipopt_len)
		spec_ipopts(&s, fx->ipopt_len);
	if (fx->hbh)
		pkt_ext_opts(&s, PKT_IPPROTO_HOPOPTS, fx->hbh);
	if (fx->dstopt)
		pkt_ext_opts(&s, PKT_IPPROTO_DSTOPTS, fx->dstopt);
	if (fx->atomic_frag)
		pkt_ext_frag(&s, 0, false, 0x5678);
	if (fx->payload) {
		for (size_t i = 0; i < sizeof(payload); i++)
			payload[i] = (uint8_t)('a' + i % 26);
		s.payload = payload;
		s.payload_len = fx->payload;
	}
	s.trailer = fx->trailer;
	len = pkt_build(&s, in, sizeof(in));
	if (!len) {
		tc_fail(t, "cannot build the input");
		return;
	}
	if (fx->cfg_mss && set_cfg_mss(&unit_main, fx->family, fx->cfg_mss)) {
		tc_fail(t, "cannot write stcp_cfg");
		return;
	}
	if (unit_run_frame(&unit_main, in, len, &r))
		tc_fail(t, "test run failed: %s", strerror(-r.err));
	else {
		check_synack(t, &s, &r, fx->cookie_opts, fx->ropts, NULL,
			     NULL);
		expect_counters(t, &r, STCP_C_SYN_ANSWERED, STCP_C_TX_SYNACK);
	}
	if (fx->cfg_mss && set_cfg_mss(&unit_main, fx->family, 0))
		tc_fail(t, "cannot restore stcp_cfg");
	if (t->failures && unit_verbose)
		pkt_hexdump(t->name, in, len);
}

/* ------------------------------------------------------------------ */
/* Handshake continuations */

enum profile {
	PROF_LINUX, /* MSS 1460, SACK_PERM, TS, NOP, WS 7 */
	PROF_NONE,  /* no options */
	PROF_TS,    /* MSS 1460, NOP, NOP, TS */
};

static const struct {
	short opts[OPT_TPL_MAX];
	uint8_t cookie_opts;
	bool ts;
} profiles[] = {
	[PROF_LINUX] = { OPTS(LINUX_SYN(7)), 0x63, true },
	[PROF_NONE] = { NO_OPTS, 0x00, false },
	[PROF_TS] = { OPTS(MSS_1460, 1, 1, 8, 10, CLI_TS_BYTES, 0, 0, 0, 0),
		      0x03, true },
};

enum cookie_src {
	CK_SYN,	    /* from a SYN-ACK of the program */
	CK_TICK_M1, /* minted by the test, 1 tick old */
	CK_TICK_M2,
	CK_TICK_M3,
};

enum key_op {
	KEYS_KEEP,
	KEYS_ROTATE1, /* stcp_keys_rotate once after the SYN-ACK */
	KEYS_ROTATE2, /* twice */
};

enum seg_kind {
	SEG_ACK,       /* <c+1, isn+1>, TS echoing our SYN-ACK if negotiated */
	SEG_ACK_NO_TS, /* the same without the TS option */
	SEG_ACK_BAD_TSECR,  /* TSecr off by one */
	SEG_ACK_RANDOM_ISN, /* acknowledges an ISN we never sent */
	SEG_ACK_BAD_CSEQ,   /* <c+2, isn+1>: not the client ISN of the cookie */
	SEG_ACK_OTHER_PORT, /* the cookie of this flow, from another port */
	SEG_DATA,	    /* PSH|ACK with a request */
	SEG_FIN,	    /* FIN|ACK <c+1, isn+1> */
	SEG_FIN_DATA,	    /* FIN|PSH|ACK with data */
	SEG_LAST_ACK,	    /* <c+2, isn+2>, TSecr = our FIN's TSval */
	SEG_LAST_ACK_BAD_TSECR,
};

enum reply_kind {
	R_NONE,
	R_RST,
	R_FINACK,
};

struct hs_step {
	enum seg_kind seg;
	uint32_t verdict;
	int disp;
	int tx; /* -1: nothing emitted */
	enum reply_kind reply;
};

struct hs_fx {
	const char *name;
	int family;
	enum profile prof;
	enum cookie_src ck;
	enum key_op keys;
	struct hs_step steps[3];
};

#define STEP_DONE                                                              \
	{                                                                      \
		SEG_ACK, XDP_DROP, STCP_C_HANDSHAKE_DONE, -1, R_NONE           \
	}
#define STEP_RST(seg, disp)                                                    \
	{                                                                      \
		seg, XDP_TX, disp, STCP_C_TX_RST, R_RST                        \
	}
#define STEP_FIN                                                               \
	{                                                                      \
		SEG_FIN, XDP_TX, STCP_C_FIN_ANSWERED, STCP_C_TX_ACK, R_FINACK  \
	}
#define STEP_LAST_ACK                                                          \
	{                                                                      \
		SEG_LAST_ACK, XDP_DROP, STCP_C_HANDSHAKE_DONE, -1, R_NONE      \
	}
#define STEP_END                                                               \
	{                                                                      \
		.verdict = (uint32_t)-1                                        \
	}

/* clang-format off */
static const struct hs_fx hs_table[] = {
	{ "v4 handshake ACK with timestamps -> XDP_DROP, handshake_done", 4,
	  PROF_LINUX, CK_SYN, KEYS_KEEP, { STEP_DONE, STEP_END } },
	{ "v6 handshake ACK with timestamps -> XDP_DROP, handshake_done", 6,
	  PROF_LINUX, CK_SYN, KEYS_KEEP, { STEP_DONE, STEP_END } },
	{ "v4 handshake ACK without timestamps -> handshake_done", 4,
	  PROF_NONE, CK_SYN, KEYS_KEEP, { STEP_DONE, STEP_END } },
	{ "v6 handshake ACK without timestamps -> handshake_done", 6,
	  PROF_NONE, CK_SYN, KEYS_KEEP, { STEP_DONE, STEP_END } },
	{ "v4 handshake ACK, TS without SACK -> handshake_done", 4, PROF_TS,
	  CK_SYN, KEYS_KEEP, { STEP_DONE, STEP_END } },
	{ "v4 ACK for a random ISN -> RST seq=SEG.ACK, bad_cookie", 4,
	  PROF_LINUX, CK_SYN, KEYS_KEEP,
	  { STEP_RST(SEG_ACK_RANDOM_ISN, STCP_C_BAD_COOKIE), STEP_END } },
	{ "v6 ACK for a random ISN -> RST seq=SEG.ACK, bad_cookie", 6,
	  PROF_NONE, CK_SYN, KEYS_KEEP,
	  { STEP_RST(SEG_ACK_RANDOM_ISN, STCP_C_BAD_COOKIE), STEP_END } },
	{ "v4 ACK with the right ISN but a wrong TSecr -> bad_cookie", 4,
	  PROF_LINUX, CK_SYN, KEYS_KEEP,
	  { STEP_RST(SEG_ACK_BAD_TSECR, STCP_C_BAD_COOKIE), STEP_END } },
	{ "v6 ACK with the right ISN but a wrong TSecr -> bad_cookie", 6,
	  PROF_LINUX, CK_SYN, KEYS_KEEP,
	  { STEP_RST(SEG_ACK_BAD_TSECR, STCP_C_BAD_COOKIE), STEP_END } },
	{ "v4 ACK without TS after TS was negotiated -> bad_cookie", 4,
	  PROF_LINUX, CK_SYN, KEYS_KEEP,
	  { STEP_RST(SEG_ACK_NO_TS, STCP_C_BAD_COOKIE), STEP_END } },
	{ "v4 ACK whose seq is not the cookie's client ISN + 1 -> bad_cookie",
	  4, PROF_NONE, CK_SYN, KEYS_KEEP,
	  { STEP_RST(SEG_ACK_BAD_CSEQ, STCP_C_BAD_COOKIE), STEP_END } },
	{ "v4 valid cookie replayed from another client port -> bad_cookie",
	  4, PROF_NONE, CK_SYN, KEYS_KEEP,
	  { STEP_RST(SEG_ACK_OTHER_PORT, STCP_C_BAD_COOKIE), STEP_END } },
	{ "v4 cookie minted one tick ago is accepted", 4, PROF_LINUX,
	  CK_TICK_M1, KEYS_KEEP, { STEP_DONE, STEP_END } },
	{ "v4 cookie minted 2 ticks ago -> RST, stale_cookie", 4, PROF_LINUX,
	  CK_TICK_M2, KEYS_KEEP,
	  { STEP_RST(SEG_ACK, STCP_C_STALE_COOKIE), STEP_END } },
	{ "v4 cookie minted 3 ticks ago -> RST, stale_cookie", 4, PROF_NONE,
	  CK_TICK_M3, KEYS_KEEP,
	  { STEP_RST(SEG_ACK, STCP_C_STALE_COOKIE), STEP_END } },
	{ "v6 cookie minted 2 ticks ago -> RST, stale_cookie", 6, PROF_LINUX,
	  CK_TICK_M2, KEYS_KEEP,
	  { STEP_RST(SEG_ACK, STCP_C_STALE_COOKIE), STEP_END } },
	{ "v4 last ACK of a close on a 2-tick-old cookie -> stale_cookie", 4,
	  PROF_LINUX, CK_TICK_M2, KEYS_KEEP,
	  { STEP_RST(SEG_LAST_ACK, STCP_C_STALE_COOKIE), STEP_END } },
	{ "v4 ACK after one key rotation is still accepted", 4, PROF_LINUX,
	  CK_SYN, KEYS_ROTATE1, { STEP_DONE, STEP_END } },
	{ "v6 ACK after one key rotation is still accepted", 6, PROF_NONE,
	  CK_SYN, KEYS_ROTATE1, { STEP_DONE, STEP_END } },
	{ "v4 ACK after two key rotations -> RST, bad_cookie", 4, PROF_LINUX,
	  CK_SYN, KEYS_ROTATE2,
	  { STEP_RST(SEG_ACK, STCP_C_BAD_COOKIE), STEP_END } },
	{ "v4 FIN before data -> FIN|ACK; last ACK -> handshake_done", 4,
	  PROF_LINUX, CK_SYN, KEYS_KEEP,
	  { STEP_FIN, STEP_LAST_ACK, STEP_END } },
	{ "v6 FIN before data -> FIN|ACK; last ACK -> handshake_done", 6,
	  PROF_LINUX, CK_SYN, KEYS_KEEP,
	  { STEP_FIN, STEP_LAST_ACK, STEP_END } },
	{ "v4 FIN before data, no timestamps -> FIN|ACK; last ACK done", 4,
	  PROF_NONE, CK_SYN, KEYS_KEEP,
	  { STEP_FIN, STEP_LAST_ACK, STEP_END } },
	{ "v4 handshake ACK, then FIN -> FIN|ACK, then last ACK", 4,
	  PROF_TS, CK_SYN, KEYS_KEEP, { STEP_DONE, STEP_FIN, STEP_LAST_ACK } },
	{ "v4 last ACK with a wrong TSecr -> RST, bad_cookie", 4, PROF_LINUX,
	  CK_SYN, KEYS_KEEP,
	  { STEP_FIN,
	    STEP_RST(SEG_LAST_ACK_BAD_TSECR, STCP_C_BAD_COOKIE),
	    STEP_END } },
	{ "v4 data on a valid cookie -> RST seq=SEG.ACK, data_refused", 4,
	  PROF_LINUX, CK_SYN, KEYS_KEEP,
	  { STEP_RST(SEG_DATA, STCP_C_DATA_REFUSED), STEP_END } },
	{ "v6 data on a valid cookie -> RST seq=SEG.ACK, data_refused", 6,
	  PROF_NONE, CK_SYN, KEYS_KEEP,
	  { STEP_RST(SEG_DATA, STCP_C_DATA_REFUSED), STEP_END } },
	{ "v4 FIN carrying data on a valid cookie -> RST, data_refused", 4,
	  PROF_LINUX, CK_SYN, KEYS_KEEP,
	  { STEP_RST(SEG_FIN_DATA, STCP_C_DATA_REFUSED), STEP_END } },
};
/* clang-format on */

/* What the test knows of the connection. */
struct conn {
	struct pkt_spec syn;
	uint32_t cisn, isn;
	bool ts;
	uint32_t synack_tsval;
	uint32_t fin_tsval;
	uint32_t cli_tsval; /* the client's clock, advanced per segment */
};

static const char request[] = "GET / HTTP/1.1\r\nHost: stcp\r\n\r\n";

static void build_seg(const struct conn *c, enum seg_kind seg,
		      struct pkt_spec *s)
{
	uint32_t tsecr = c->synack_tsval;
	bool with_ts = c->ts;

	spec_base(s, c->syn.family, c->syn.sport);
	s->seq = c->cisn + 1;
	s->ack = c->isn + 1;
	s->flags = PKT_TH_ACK;
	s->window = 502;
	switch (seg) {
	case SEG_ACK:
		break;
	case SEG_ACK_NO_TS:
		with_ts = false;
		break;
	case SEG_ACK_BAD_TSECR:
		tsecr ^= 1;
		break;
	case SEG_ACK_RANDOM_ISN:
		/* Any ISN but ours; the low byte keeps the option byte. */
		s->ack = (c->isn ^ 0x5a5a5400u) + 1;
		break;
	case SEG_ACK_BAD_CSEQ: {
		/* Without timestamps the cookie checks only 8 MAC bits of the
		 * client ISN, so a wrong one passes 2 times in 256 (or counts
		 * as stale): take the first that no tick the check tries,
		 * stale ones included, lets through. */
		uint32_t now = unit_tick(), opts = (c->isn >> STCP_NTS_OPT_SHIFT) &
						  STCP_OPT_MASK;
		struct stcp_flow f;

		unit_flow_of(s, &f);
		for (uint32_t k = 1; k < 64; k++) {
			bool hit = false;

			for (uint32_t d = 0; d < 5; d++)
				hit |= (uint32_t)(stcp_handshake_mac(
						UNIT_K0, UNIT_K1, &f,
						c->cisn + k, now - d, opts) >>
						  56) ==
				       c->isn >> STCP_ISN_MAC_SHIFT;
			if (!hit) {
				s->seq = c->cisn + 1 + k;
				break;
			}
		}
		break;
	}
	case SEG_ACK_OTHER_PORT:
		s->sport = (uint16_t)(c->syn.sport + 1);
		break;
	case SEG_DATA:
		s->flags = PKT_TH_ACK | PKT_TH_PSH;
		s->payload = (const uint8_t *)request;
		s->payload_len = sizeof(request) - 1;
		break;
	case SEG_FIN:
		s->flags = PKT_TH_ACK | PKT_TH_FIN;
		break;
	case SEG_FIN_DATA:
		s->flags = PKT_TH_ACK | PKT_TH_FIN | PKT_TH_PSH;
		s->payload = (const uint8_t *)request;
		s->payload_len = sizeof(request) - 1;
		break;
	case SEG_LAST_ACK:
	case SEG_LAST_ACK_BAD_TSECR:
		s->seq = c->cisn + 2;
		s->ack = c->isn + 2;
		tsecr = c->fin_tsval ^ (seg == SEG_LAST_ACK_BAD_TSECR);
		break;
	}
	if (with_ts)
		pkt_opt_linux_ts(s, c->cli_tsval, tsecr);
}

/* Our FIN's TSval: the SYN-ACK's cookie with the position of ISN + 1. */
static uint32_t expected_fin_tsval(uint32_t synack_tsval, uint32_t isn)
{
	return ((stcp_ts_pos(isn + 1) & STCP_TS_POS_MASK) << STCP_TS_POS_SHIFT) |
	       (synack_tsval & STCP_TS_LOW_MASK);
}

static void check_finack(struct tcase *t, struct conn *c,
			 const struct pkt_spec *in, const struct unit_run *r)
{
	struct pkt_view v;
	uint8_t want[12] = { 1, 1, 8, 10 };
	uint32_t tsval = expected_fin_tsval(c->synack_tsval, c->isn);
	struct pkt_tcpopts o;

	if (!check_reply(t, in, r, PKT_TH_FIN | PKT_TH_ACK, c->ts ? 12 : 0, &v))
		return;
	EXPECT(t, v.seq == c->isn + 1, "FIN seq 0x%08x, expected ISN+1 0x%08x",
	       v.seq, c->isn + 1);
	EXPECT(t, v.ack == in->seq + 1, "FIN ack 0x%08x, expected 0x%08x",
	       v.ack, in->seq + 1);
	EXPECT(t, v.window == REPLY_WINDOW, "FIN window %u", v.window);
	if (!c->ts)
		return;
	want[4] = tsval >> 24;
	want[5] = tsval >> 16;
	want[6] = tsval >> 8;
	want[7] = tsval;
	want[8] = c->cli_tsval >> 24;
	want[9] = c->cli_tsval >> 16;
	want[10] = c->cli_tsval >> 8;
	want[11] = c->cli_tsval;
	expect_opt_bytes(t, &v, want, sizeof(want));
	pkt_parse_tcpopts(v.opt, v.opt_len, &o);
	EXPECT(t,
	       o.has_ts && o.tsval >> STCP_TS_POS_SHIFT == stcp_ts_pos(c->isn + 1),
	       "FIN TSval position field 0x%03x, expected 0x%03x",
	       o.tsval >> STCP_TS_POS_SHIFT, stcp_ts_pos(c->isn + 1));
	EXPECT(t, (int32_t)(o.tsval - c->synack_tsval) > 0,
	       "FIN TSval 0x%08x not PAWS-newer than SYN-ACK TSval 0x%08x",
	       o.tsval, c->synack_tsval);
	c->fin_tsval = o.tsval;
}

/* The ISN and TSval of a SYN-ACK, or a failure if its ISN is not our
 * cookie for the SYN in s. */
static bool synack_cookie(struct tcase *t, const struct pkt_spec *s,
			  const struct unit_run *r, uint8_t cookie_opts,
			  bool has_ts, uint32_t *isn, uint32_t *tsval)
{
	struct pkt_view v;
	struct pkt_tcpopts o;
	struct stcp_flow f;
	char why[160];

	if (r->verdict != XDP_TX) {
		tc_fail(t, "SYN: verdict %s, expected XDP_TX",
			verdict_name(r->verdict));
		return false;
	}
	if (pkt_parse(r->out, r->out_len, &v, why, sizeof(why))) {
		tc_fail(t, "SYN-ACK does not parse: %s", why);
		return false;
	}
	if (v.flags != (PKT_TH_SYN | PKT_TH_ACK)) {
		tc_fail(t, "SYN: reply flags 0x%02x", v.flags);
		return false;
	}
	unit_flow_of(s, &f);
	pkt_parse_tcpopts(v.opt, v.opt_len, &o);
	for (uint32_t k = r->tick_before; k <= r->tick_after; k++) {
		uint32_t tv;

		if (unit_isn(&f, s->seq, k, cookie_opts, has_ts, &tv) ==
			    v.seq &&
		    (!has_ts || (o.has_ts && o.tsval == tv))) {
			*isn = v.seq;
			*tsval = tv;
			return true;
		}
	}
	tc_fail(t, "SYN-ACK ISN 0x%08x is not our cookie", v.seq);
	return false;
}

static int rotate_keys(int n)
{
	for (int i = 0; i < n; i++) {
		int err = stcp_keys_rotate(unit_main.m.keys, unit_main.m.cfg);

		if (err)
			return err;
	}
	return 0;
}

static void run_hs_fx(const struct hs_fx *fx, int idx, struct tcase *t)
{
	uint8_t in[PKT_MAX_FRAME];
	struct unit_run r;
	struct conn c;
	size_t len;
	int err;

	memset(&c, 0, sizeof(c));
	spec_base(&c.syn, fx->family, (uint16_t)(41000 + idx * 2));
	c.cisn = CLI_ISN ^ ((uint32_t)idx << 20);
	c.syn.seq = c.cisn;
	c.syn.flags = PKT_TH_SYN;
	spec_opts(&c.syn, profiles[fx->prof].opts);
	c.ts = profiles[fx->prof].ts;
	c.cli_tsval = CLI_TSVAL;

	if (fx->ck == CK_SYN) {
		len = pkt_build(&c.syn, in, sizeof(in));
		if (unit_run_frame(&unit_main, in, len, &r)) {
			tc_fail(t, "SYN: test run failed: %s",
				strerror(-r.err));
			return;
		}
		/* The SYN-ACK itself is syn_table's business; here only the
		 * ISN and TSval the client would continue with matter. */
		if (!synack_cookie(t, &c.syn, &r,
				   profiles[fx->prof].cookie_opts, c.ts, &c.isn,
				   &c.synack_tsval))
			return;
	} else {
		struct stcp_flow f;
		uint32_t age = fx->ck == CK_TICK_M1   ? 1
			       : fx->ck == CK_TICK_M2 ? 2
						      : 3;

		unit_flow_of(&c.syn, &f);
		c.isn = unit_isn(&f, c.cisn, unit_tick() - age,
				 profiles[fx->prof].cookie_opts, c.ts,
				 &c.synack_tsval);
	}
	c.fin_tsval = expected_fin_tsval(c.synack_tsval, c.isn);

	if (fx->keys != KEYS_KEEP) {
		err = rotate_keys(fx->keys == KEYS_ROTATE1 ? 1 : 2);
		if (err) {
			tc_fail(t, "stcp_keys_rotate: %s", strerror(-err));
			goto out;
		}
	}

	for (int i = 0; i < 3 && fx->steps[i].verdict != (uint32_t)-1; i++) {
		const struct hs_step *st = &fx->steps[i];
		struct pkt_spec s;
		int before = t->failures;

		c.cli_tsval += 10;
		build_seg(&c, st->seg, &s);
		len = pkt_build(&s, in, sizeof(in));
		if (unit_run_frame(&unit_main, in, len, &r)) {
			tc_fail(t, "step %d: test run failed: %s", i + 1,
				strerror(-r.err));
			break;
		}
		if (r.verdict != st->verdict)
			tc_fail(t, "step %d: verdict %s, expected %s", i + 1,
				verdict_name(r.verdict),
				verdict_name(st->verdict));
		expect_counters(t, &r, st->disp, st->tx);
		if (st->reply == R_RST)
			check_rst(t, &s, &r);
		else if (st->reply == R_FINACK)
			check_finack(t, &c, &s, &r);
		if (t->failures != before) {
			if (unit_verbose)
				pkt_hexdump("input", in, len);
			break;
		}
	}
out:
	if (fx->keys != KEYS_KEEP && unit_reset_key(&unit_main))
		tc_fail(t, "cannot reinstall the test key");
}

/* ------------------------------------------------------------------ */
/* Everything else: not ours, or ours and not acceptable. */

typedef size_t (*make_fn)(uint8_t *buf, size_t cap);

struct misc_fx {
	const char *name;
	struct unit_env *env;
	make_fn make;
	uint32_t verdict;
	int disp;
};

static size_t mk_arp(uint8_t *b, size_t cap)
{
	static const uint8_t arp[] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0,  0,   0, 0,
		1,    0x08, 0x06, 0,	1,    0x08, 0,	  6,  4,   0, 1,
		0x02, 0,    0,	  0,	0,    1,    198,  51, 100, 7, 0,
		0,    0,    0,	  0,	0,    198,  18,	  0,  1,
	};

	if (cap < sizeof(arp))
		return 0;
	memcpy(b, arp, sizeof(arp));
	return sizeof(arp);
}

static void syn4(struct pkt_spec *s)
{
	spec_base(s, 4, 50123);
	s->seq = CLI_ISN;
	s->flags = PKT_TH_SYN;
	pkt_opt_mss(s, 1460);
}

static void syn6(struct pkt_spec *s)
{
	spec_base(s, 6, 50123);
	s->seq = CLI_ISN;
	s->flags = PKT_TH_SYN;
	pkt_opt_mss(s, 1440);
}

static size_t mk_icmp4(uint8_t *b, size_t cap)
{
	static const uint8_t echo[] = { 8, 0, 0xf7, 0xfe, 0, 1, 0, 0 };
	struct pkt_spec s;

	syn4(&s);
	s.ip_proto = PKT_IPPROTO_ICMP;
	s.l4_raw = echo;
	s.l4_raw_len = sizeof(echo);
	return pkt_build(&s, b, cap);
}

static size_t mk_icmp6(uint8_t *b, size_t cap)
{
	static const uint8_t echo[] = { 128, 0, 0, 0, 0, 1, 0, 1 };
	struct pkt_spec s;

	syn6(&s);
	s.ip_proto = PKT_IPPROTO_ICMPV6;
	s.l4_raw = echo;
	s.l4_raw_len = sizeof(echo);
	return pkt_build(&s, b, cap);
}

static size_t mk_udp4(uint8_t *b, size_t cap)
{
	/* UDP to the service address and port: not TCP, not ours. */
	static const uint8_t udp[] = { 0xc3, 0x50, 0, 80, 0, 12,
				       0,    0,	   1, 2,  3, 4 };
	struct pkt_spec s;

	syn4(&s);
	s.ip_proto = PKT_IPPROTO_UDP;
	s.l4_raw = udp;
	s.l4_raw_len = sizeof(udp);
	return pkt_build(&s, b, cap);
}

static size_t mk_port81(uint8_t *b, size_t cap)
{
	struct pkt_spec s;

	syn4(&s);
	s.dport = 81;
	return pkt_build(&s, b, cap);
}

static size_t mk_addr4(uint8_t *b, size_t cap)
{
	struct pkt_spec s;

	syn4(&s);
	pkt_set_addr(s.daddr, 4, "198.18.0.2");
	return pkt_build(&s, b, cap);
}

static size_t mk_port443_v6(uint8_t *b, size_t cap)
{
	struct pkt_spec s;

	syn6(&s);
	s.dport = 443;
	return pkt_build(&s, b, cap);
}

static size_t mk_addr6(uint8_t *b, size_t cap)
{
	struct pkt_spec s;

	syn6(&s);
	pkt_set_addr(s.daddr, 6, "2001:db8::2");
	return pkt_build(&s, b, cap);
}

static size_t mk_reverse4(uint8_t *b, size_t cap)
{
	/* A SYN-ACK from the service port to a client: the direction of our
	 * own replies, never ours to answer. */
	struct pkt_spec s;

	syn4(&s);
	memcpy(s.saddr, s.daddr, 16);
	pkt_set_addr(s.daddr, 4, UNIT_CLI_V4);
	s.sport = UNIT_SVC_PORT;
	s.dport = 50123;
	s.flags = PKT_TH_SYN | PKT_TH_ACK;
	return pkt_build(&s, b, cap);
}

static size_t mk_frag4_first(uint8_t *b, size_t cap)
{
	struct pkt_spec s;

	syn4(&s);
	s.frag = PKT_IP_MF;
	return pkt_build(&s, b, cap);
}

static size_t mk_frag4_later(uint8_t *b, size_t cap)
{
	static const uint8_t body[48] = { 0 };
	struct pkt_spec s;

	syn4(&s);
	s.frag = 185; /* offset 1480 bytes, last fragment */
	s.ip_proto = PKT_IPPROTO_TCP;
	s.flags = 0;
	s.tcpopt_len = 0;
	s.payload = body;
	s.payload_len = 28;
	return pkt_build(&s, b, cap);
}

static size_t mk_frag4_later_mf(uint8_t *b, size_t cap)
{
	struct pkt_spec s;

	syn4(&s);
	s.frag = PKT_IP_MF | 2;
	return pkt_build(&s, b, cap);
}

static size_t mk_frag6_first(uint8_t *b, size_t cap)
{
	struct pkt_spec s;

	syn6(&s);
	pkt_ext_frag(&s, 0, true, 0x1234);
	return pkt_build(&s, b, cap);
}

static size_t mk_frag6_later(uint8_t *b, size_t cap)
{
	struct pkt_spec s;

	syn6(&s);
	pkt_ext_frag(&s, 181, false, 0x1234);
	return pkt_build(&s, b, cap);
}

static size_t mk_trunc_ip4(uint8_t *b, size_t cap)
{
	struct pkt_spec s;
	size_t len;

	syn4(&s);
	len = pkt_build(&s, b, cap);
	return len ? PKT_ETH_HLEN + 10 : 0;
}

static size_t mk_trunc_ip6(uint8_t *b, size_t cap)
{
	struct pkt_spec s;
	size_t len;

	syn6(&s);
	len = pkt_build(&s, b, cap);
	return len ? PKT_ETH_HLEN + 30 : 0;
}

static size_t mk_totlen_long(uint8_t *b, size_t cap)
{
	struct pkt_spec s;

	syn4(&s);
	s.ip_len = 200; /* the frame holds 44 bytes of IP */
	return pkt_build(&s, b, cap);
}

static size_t mk_ihl4(uint8_t *b, size_t cap)
{
	struct pkt_spec s;

	syn4(&s);
	s.ihl_words = 4;
	return pkt_build(&s, b, cap);
}

static size_t mk_ipver(uint8_t *b, size_t cap)
{
	struct pkt_spec s;
	size_t len;

	syn4(&s);
	len = pkt_build(&s, b, cap);
	b[PKT_ETH_HLEN] = 0x65; /* version 6 in an IPv4 ethertype */
	return len;
}

static size_t mk_plen6_long(uint8_t *b, size_t cap)
{
	struct pkt_spec s;

	syn6(&s);
	s.ip_len = 300;
	return pkt_build(&s, b, cap);
}

static size_t mk_trunc_tcp4(uint8_t *b, size_t cap)
{
	struct pkt_spec s;
	size_t len;

	/* tot_len says 20 + 10: half a TCP header. */
	syn4(&s);
	s.tcpopt_len = 0;
	s.ip_len = 30;
	len = pkt_build(&s, b, cap);
	return len ? PKT_ETH_HLEN + 30 : 0;
}

static size_t mk_doff15(uint8_t *b, size_t cap)
{
	struct pkt_spec s;

	syn4(&s);
	s.doff_words = 15; /* 60 bytes of header in a 24-byte segment */
	return pkt_build(&s, b, cap);
}

static size_t mk_doff4(uint8_t *b, size_t cap)
{
	struct pkt_spec s;

	syn4(&s);
	s.doff_words = 4;
	return pkt_build(&s, b, cap);
}

static size_t mk_doff_v6(uint8_t *b, size_t cap)
{
	struct pkt_spec s;

	syn6(&s);
	s.doff_words = 8;
	return pkt_build(&s, b, cap);
}

static size_t mk_flags(uint8_t *b, size_t cap, int family, uint8_t flags)
{
	struct pkt_spec s;

	if (family == 6)
		syn6(&s);
	else
		syn4(&s);
	s.flags = flags;
	s.ack = 0x01020304;
	s.tcpopt_len = 0;
	return pkt_build(&s, b, cap);
}

static size_t mk_rst(uint8_t *b, size_t cap)
{
	return mk_flags(b, cap, 4, PKT_TH_RST);
}

static size_t mk_rst_ack6(uint8_t *b, size_t cap)
{
	return mk_flags(b, cap, 6, PKT_TH_RST | PKT_TH_ACK);
}

static size_t mk_syn_rst(uint8_t *b, size_t cap)
{
	return mk_flags(b, cap, 4, PKT_TH_SYN | PKT_TH_RST);
}

static size_t mk_synack(uint8_t *b, size_t cap)
{
	return mk_flags(b, cap, 4, PKT_TH_SYN | PKT_TH_ACK);
}

static size_t mk_synack6(uint8_t *b, size_t cap)
{
	return mk_flags(b, cap, 6, PKT_TH_SYN | PKT_TH_ACK);
}

static size_t mk_synfin(uint8_t *b, size_t cap)
{
	return mk_flags(b, cap, 4, PKT_TH_SYN | PKT_TH_FIN);
}

static size_t mk_fin_noack(uint8_t *b, size_t cap)
{
	return mk_flags(b, cap, 4, PKT_TH_FIN);
}

static size_t mk_noflags(uint8_t *b, size_t cap)
{
	return mk_flags(b, cap, 6, 0);
}

static size_t mk_syn4(uint8_t *b, size_t cap)
{
	struct pkt_spec s;

	syn4(&s);
	return pkt_build(&s, b, cap);
}

static size_t mk_syn6(uint8_t *b, size_t cap)
{
	struct pkt_spec s;

	syn6(&s);
	return pkt_build(&s, b, cap);
}

/* clang-format off */
static const struct misc_fx misc_table[] = {
	{ "ARP request -> XDP_PASS, pass_non_ip", &unit_main, mk_arp,
	  XDP_PASS, STCP_C_PASS_NON_IP },
	{ "IPv4 ICMP echo -> XDP_PASS, pass_non_tcp", &unit_main, mk_icmp4,
	  XDP_PASS, STCP_C_PASS_NON_TCP },
	{ "IPv6 ICMPv6 echo -> XDP_PASS, pass_non_tcp", &unit_main, mk_icmp6,
	  XDP_PASS, STCP_C_PASS_NON_TCP },
	{ "IPv4 UDP to the service address and port -> pass_non_tcp",
	  &unit_main, mk_udp4, XDP_PASS, STCP_C_PASS_NON_TCP },
	{ "v4 SYN to 198.18.0.1:81 -> XDP_PASS, pass_other_dest", &unit_main,
	  mk_port81, XDP_PASS, STCP_C_PASS_OTHER_DEST },
	{ "v4 SYN to 198.18.0.2:80 -> XDP_PASS, pass_other_dest", &unit_main,
	  mk_addr4, XDP_PASS, STCP_C_PASS_OTHER_DEST },
	{ "v6 SYN to [2001:db8::1]:443 -> XDP_PASS, pass_other_dest",
	  &unit_main, mk_port443_v6, XDP_PASS, STCP_C_PASS_OTHER_DEST },
	{ "v6 SYN to [2001:db8::2]:80 -> XDP_PASS, pass_other_dest",
	  &unit_main, mk_addr6, XDP_PASS, STCP_C_PASS_OTHER_DEST },
	{ "v4 SYN-ACK from the service port to a client -> pass_other_dest",
	  &unit_main, mk_reverse4, XDP_PASS, STCP_C_PASS_OTHER_DEST },
	{ "v4 first fragment (MF) to the service -> XDP_DROP, drop_fragment",
	  &unit_main, mk_frag4_first, XDP_DROP, STCP_C_DROP_FRAGMENT },
	{ "v4 non-first fragment -> XDP_PASS, pass_fragment", &unit_main,
	  mk_frag4_later, XDP_PASS, STCP_C_PASS_FRAGMENT },
	{ "v4 middle fragment (MF, offset 16) -> XDP_PASS, pass_fragment",
	  &unit_main, mk_frag4_later_mf, XDP_PASS, STCP_C_PASS_FRAGMENT },
	{ "v6 first fragment (M=1) to the service -> drop_fragment",
	  &unit_main, mk_frag6_first, XDP_DROP, STCP_C_DROP_FRAGMENT },
	{ "v6 non-first fragment -> XDP_PASS, pass_fragment", &unit_main,
	  mk_frag6_later, XDP_PASS, STCP_C_PASS_FRAGMENT },
	{ "v4 truncated IP header (10 bytes) -> XDP_PASS, pass_malformed",
	  &unit_main, mk_trunc_ip4, XDP_PASS, STCP_C_PASS_MALFORMED },
	{ "v6 truncated IP header (30 bytes) -> XDP_PASS, pass_malformed",
	  &unit_main, mk_trunc_ip6, XDP_PASS, STCP_C_PASS_MALFORMED },
	{ "v4 tot_len beyond the frame -> pass_malformed", &unit_main,
	  mk_totlen_long, XDP_PASS, STCP_C_PASS_MALFORMED },
	{ "v4 ihl 4 -> pass_malformed", &unit_main, mk_ihl4, XDP_PASS,
	  STCP_C_PASS_MALFORMED },
	{ "IPv4 ethertype with IP version 6 -> pass_malformed", &unit_main,
	  mk_ipver, XDP_PASS, STCP_C_PASS_MALFORMED },
	{ "v6 payload_len beyond the frame -> pass_malformed", &unit_main,
	  mk_plen6_long, XDP_PASS, STCP_C_PASS_MALFORMED },
	{ "v4 truncated TCP header (10 bytes) -> pass_malformed", &unit_main,
	  mk_trunc_tcp4, XDP_PASS, STCP_C_PASS_MALFORMED },
	{ "v4 SYN with doff 15 past the segment -> XDP_DROP, drop_malformed",
	  &unit_main, mk_doff15, XDP_DROP, STCP_C_DROP_MALFORMED },
	{ "v4 SYN with doff 4 -> XDP_DROP, drop_malformed", &unit_main,
	  mk_doff4, XDP_DROP, STCP_C_DROP_MALFORMED },
	{ "v6 SYN with doff past the segment -> drop_malformed", &unit_main,
	  mk_doff_v6, XDP_DROP, STCP_C_DROP_MALFORMED },
	{ "v4 RST to the service -> XDP_DROP, drop_rst", &unit_main, mk_rst,
	  XDP_DROP, STCP_C_DROP_RST },
	{ "v6 RST|ACK to the service -> XDP_DROP, drop_rst", &unit_main,
	  mk_rst_ack6, XDP_DROP, STCP_C_DROP_RST },
	{ "v4 SYN|RST -> XDP_DROP, drop_rst", &unit_main, mk_syn_rst,
	  XDP_DROP, STCP_C_DROP_RST },
	{ "v4 SYN|ACK in -> XDP_DROP, drop_bad_flags", &unit_main, mk_synack,
	  XDP_DROP, STCP_C_DROP_BAD_FLAGS },
	{ "v6 SYN|ACK in -> XDP_DROP, drop_bad_flags", &unit_main,
	  mk_synack6, XDP_DROP, STCP_C_DROP_BAD_FLAGS },
	{ "v4 SYN|FIN -> XDP_DROP, drop_bad_flags", &unit_main, mk_synfin,
	  XDP_DROP, STCP_C_DROP_BAD_FLAGS },
	{ "v4 FIN without ACK -> XDP_DROP, drop_bad_flags", &unit_main,
	  mk_fin_noack, XDP_DROP, STCP_C_DROP_BAD_FLAGS },
	{ "v6 segment with no flags -> XDP_DROP, drop_bad_flags", &unit_main,
	  mk_noflags, XDP_DROP, STCP_C_DROP_BAD_FLAGS },
	{ "no key installed: v4 SYN -> XDP_DROP, drop_no_key", &unit_nokey,
	  mk_syn4, XDP_DROP, STCP_C_DROP_NO_KEY },
	{ "no key installed: v6 SYN -> XDP_DROP, drop_no_key", &unit_nokey,
	  mk_syn6, XDP_DROP, STCP_C_DROP_NO_KEY },
};
/* clang-format on */

static void run_misc_fx(const struct misc_fx *fx, struct tcase *t)
{
	uint8_t in[PKT_MAX_FRAME];
	struct unit_run r;
	size_t len = fx->make(in, sizeof(in));

	if (!len) {
		tc_fail(t, "cannot build the input");
		return;
	}
	if (unit_run_frame(fx->env, in, len, &r)) {
		tc_fail(t, "test run failed: %s", strerror(-r.err));
		return;
	}
	EXPECT(t, r.verdict == fx->verdict, "verdict %s, expected %s",
	       verdict_name(r.verdict), verdict_name(fx->verdict));
	expect_counters(t, &r, fx->disp, -1);
	if (fx->verdict == XDP_PASS)
		EXPECT(t, r.out_len == len && !memcmp(r.out, in, len),
		       "XDP_PASS frame was modified");
	if (t->failures && unit_verbose)
		pkt_hexdump(t->name, in, len);
}

/* ------------------------------------------------------------------ */

/*
 * A case whose failure could come from the coarse clock ticking between
 * the test's cookie and the program's run is run once more.
 */
#define RUN_CASE(name_, call)                                                  \
	do {                                                                   \
		struct tcase t_;                                               \
		uint32_t tk_;                                                  \
		for (int try_ = 0; try_ < 2; try_++) {                         \
			memset(&t_, 0, sizeof(t_));                            \
			t_.name = (name_);                                     \
			tk_ = unit_tick();                                     \
			call;                                                  \
			if (!t_.failures || unit_tick() == tk_)                \
				break;                                         \
			printf("# %s: clock ticked, retrying\n", t_.name);     \
		}                                                              \
		tc_report(&t_);                                                \
	} while (0)

void cases_run_all(void)
{
	for (size_t i = 0; i < sizeof(syn_table) / sizeof(syn_table[0]); i++)
		RUN_CASE(syn_table[i].name,
			 run_syn_fx(&syn_table[i], (int)i, &t_));
	for (size_t i = 0; i < sizeof(hs_table) / sizeof(hs_table[0]); i++)
		RUN_CASE(hs_table[i].name,
			 run_hs_fx(&hs_table[i], (int)i, &t_));
	for (size_t i = 0; i < sizeof(misc_table) / sizeof(misc_table[0]); i++)
		RUN_CASE(misc_table[i].name, run_misc_fx(&misc_table[i], &t_));
}
