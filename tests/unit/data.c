// SPDX-License-Identifier: GPL-2.0
/*
 * The single-segment data path (docs/PROTOCOL.md 6.2) through
 * BPF_PROG_RUN: a real handshake with the program, then a request whose
 * answer must be the cached response byte for byte, with our FIN, the TSval
 * of section 6.1, and correct checksums; then the segments that follow a
 * response (the client's FIN, its ACK, a forged FIN).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include <sched.h>

#include "unit.h"
#include "stcp_tx.h"
#include "stcp_conn.h"
#include "stcp.skel.h"
#include "../../daemon/cache.h"

static const char body[] = "hello, stateless world\n";

struct dconn;
static int run_reply(struct tcase *t, const struct pkt_spec *s,
		     struct unit_run *r, struct pkt_view *v,
		     struct pkt_tcpopts *o, const char *what);
static bool conn_entry(uint32_t base, struct stcp_conn *out);
static bool conn_entry_flow(uint32_t base, struct stcp_flow *flow,
			    struct stcp_conn *out);

struct dconn {
	struct pkt_spec spec; /* addresses and ports, reused per segment */
	uint32_t cisn, isn, synack_tsval, cli_tsval;
	bool ts;
	bool nots_sack; /* without ts: offer SACK and WS in the SYN */
};

/* MSS 1460, SACK_PERM, TS, NOP, WS 7: option byte 0x63 in the cookie. */
#define LINUX_OPTS 0x63u

static void dconn_spec(struct dconn *c, int family, uint16_t port)
{
	pkt_spec_init(&c->spec, family);
	if (family == 6) {
		pkt_set_addr(c->spec.saddr, 6, UNIT_CLI_V6);
		pkt_set_addr(c->spec.daddr, 6, UNIT_SVC_V6);
	} else {
		pkt_set_addr(c->spec.saddr, 4, UNIT_CLI_V4);
		pkt_set_addr(c->spec.daddr, 4, UNIT_SVC_V4);
	}
	c->spec.sport = port;
	c->spec.dport = UNIT_SVC_PORT;
}

static int run(struct tcase *t, const struct pkt_spec *s, struct unit_run *r)
{
	uint8_t in[PKT_MAX_FRAME];
	size_t len = pkt_build(s, in, sizeof(in));

	if (!len || unit_run_frame(&unit_main, in, len, r) || r->err) {
		tc_fail(t, "test run failed");
		return -1;
	}
	return 0;
}

/* The handshake, against the program itself. */
static int dconn_open(struct tcase *t, struct dconn *c, int family,
		      uint16_t port, bool ts)
{
	static const uint8_t linux_syn[20] = { 2, 4, 0x05, 0xb4, 4, 2, 8, 10,
					       0, 0, 0, 1, 0, 0, 0, 0,
					       1, 3, 3, 7 };
	struct pkt_spec s;
	struct pkt_tcpopts o;
	struct pkt_view v;
	struct unit_run r;
	char why[128];

	bool nots_sack = c->nots_sack;

	memset(c, 0, sizeof(*c));
	c->nots_sack = nots_sack;
	dconn_spec(c, family, port);
	c->cisn = 0x10203040u + port;
	c->cli_tsval = 1;
	c->ts = ts;
	s = c->spec;
	s.seq = c->cisn;
	s.flags = PKT_TH_SYN;
	s.window = 64240;
	if (ts) {
		memcpy(s.tcpopt, linux_syn, sizeof(linux_syn));
		s.tcpopt_len = sizeof(linux_syn);
	} else if (c->nots_sack) {
		/* Linux with net.ipv4.tcp_timestamps=0: MSS, SACK, WS 7. */
		static const uint8_t nots_syn[12] = { 2, 4, 0x05, 0xb4, 1, 1,
						      4, 2, 1, 3, 3, 7 };

		memcpy(s.tcpopt, nots_syn, sizeof(nots_syn));
		s.tcpopt_len = sizeof(nots_syn);
	} else {
		memcpy(s.tcpopt, linux_syn, 4); /* MSS only */
		s.tcpopt_len = 4;
	}
	if (run(t, &s, &r))
		return -1;
	if (r.verdict != XDP_TX || pkt_parse(r.out, r.out_len, &v, why,
					     sizeof(why))) {
		tc_fail(t, "no SYN-ACK (%s)", verdict_name(r.verdict));
		return -1;
	}
	pkt_parse_tcpopts(v.opt, v.opt_len, &o);
	c->isn = v.seq;
	c->synack_tsval = o.has_ts ? o.tsval : 0;
	return 0;
}

/* A client segment: seq/ack relative to both ISNs, TS echoing tsecr. */
static struct pkt_spec dconn_seg(struct dconn *c, uint32_t seq_off,
				 uint32_t ack_off, uint8_t flags,
				 uint32_t tsecr, const char *payload)
{
	struct pkt_spec s = c->spec;

	s.seq = c->cisn + 1 + seq_off;
	s.ack = c->isn + 1 + ack_off;
	s.flags = flags;
	s.window = 502;
	if (c->ts)
		pkt_opt_linux_ts(&s, ++c->cli_tsval, tsecr);
	if (payload) {
		s.payload = (const uint8_t *)payload;
		s.payload_len = strlen(payload);
	}
	return s;
}

/* The bytes a response slot stands for: header, then body unless HEAD. */
static size_t slot_bytes(uint32_t slot, bool head, uint8_t *out, size_t cap)
{
	static char hdr[STCP_PAGE_SIZE + 1];
	struct stcp_resp resp;
	struct stcp_page pg;
	size_t n;

	if (stcp_resp_read(unit_main.m.pages, unit_main.m.resps, slot, &resp,
			   hdr))
		return 0;
	n = resp.hdr_len;
	if (n > cap)
		return 0;
	memcpy(out, hdr, n);
	if (head || !resp.body_len)
		return n;
	if (resp.body_len > STCP_PAGE_SIZE || n + resp.body_len > cap ||
	    bpf_map_lookup_elem(unit_main.m.pages, &resp.body_page, &pg))
		return 0;
	memcpy(out + n, pg.data, resp.body_len);
	return n + resp.body_len;
}

static uint32_t object_slot_v(const char *path, int variant)
{
	struct stcp_obj_key k;
	struct stcp_obj o;

	memset(&k, 0, sizeof(k));
	snprintf(k.path, sizeof(k.path), "%s", path);
	if (bpf_map_lookup_elem(unit_main.m.objects, &k, &o))
		return ~0u;
	return o.resp[variant];
}

static uint32_t object_slot(const char *path)
{
	return object_slot_v(path, STCP_V_200_CLOSE);
}

/*
 * Sends req on a fresh connection and checks the whole-response segment:
 * the bytes of slot, our FIN, seq/ack, TSval, checksums, counters. Returns
 * the response length (payload) or -1.
 */
static long check_response(struct tcase *t, struct dconn *c, const char *req,
			   uint32_t slot, bool head, uint32_t *data_tsval)
{
	static uint8_t want[2 * STCP_PAGE_SIZE];
	struct pkt_spec s = dconn_seg(c, 0, 0, PKT_TH_ACK | PKT_TH_PSH,
				      c->synack_tsval, req);
	size_t wlen = slot_bytes(slot, head, want, sizeof(want));
	struct pkt_tcpopts o;
	struct pkt_view v;
	struct unit_run r;
	char why[128];
	uint32_t tsval;

	if (!wlen) {
		tc_fail(t, "cannot read response slot %u", slot);
		return -1;
	}
	if (run(t, &s, &r))
		return -1;
	expect_counters(t, &r, STCP_C_REQUEST_ANSWERED, STCP_C_TX_DATA);
	if (r.verdict != XDP_TX ||
	    pkt_parse(r.out, r.out_len, &v, why, sizeof(why))) {
		tc_fail(t, "verdict %s, reply %s", verdict_name(r.verdict),
			why);
		return -1;
	}
	EXPECT(t, v.tcp_csum_ok && (v.family == 6 || v.ip_csum_ok),
	       "bad checksum");
	EXPECT(t, v.flags == (PKT_TH_FIN | PKT_TH_PSH | PKT_TH_ACK),
	       "flags 0x%02x", v.flags);
	EXPECT(t, v.seq == c->isn + 1, "seq 0x%08x, want ISN+1 0x%08x", v.seq,
	       c->isn + 1);
	EXPECT(t, v.ack == c->cisn + 1 + (uint32_t)strlen(req),
	       "ack 0x%08x, want the end of the request", v.ack);
	EXPECT(t, v.payload_len == wlen, "payload %zu bytes, want %zu",
	       v.payload_len, wlen);
	EXPECT(t,
	       v.payload_len == wlen &&
		       !memcmp(v.opt + v.opt_len, want, wlen),
	       "payload differs from the cached response");
	pkt_parse_tcpopts(v.opt, v.opt_len, &o);
	tsval = stcp_data_tsval(c->isn + 1, 0, LINUX_OPTS, slot);
	EXPECT(t, o.has_ts && o.tsval == tsval && o.tsecr == c->cli_tsval,
	       "TS %08x/%08x, want %08x/%08x", o.tsval, o.tsecr, tsval,
	       c->cli_tsval);
	EXPECT(t, (int32_t)(o.tsval - c->synack_tsval) > 0,
	       "data TSval not PAWS-newer than the SYN-ACK's");
	*data_tsval = o.tsval;
	return (long)wlen;
}

static void case_get(int family, bool head)
{
	char name[96], req[128];
	struct tcase t = { 0 };
	struct dconn c = { 0 };
	uint32_t slot = object_slot("/hello.txt"), tsval;
	struct pkt_spec s;
	struct pkt_view v;
	struct unit_run r;
	char why[128];
	long len;

	snprintf(name, sizeof(name),
		 "data: IPv%d %s /hello.txt -> whole response + FIN, then the "
		 "close",
		 family, head ? "HEAD" : "GET");
	t.name = name;
	snprintf(req, sizeof(req),
		 "%s /hello.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
		 head ? "HEAD" : "GET");
	if (slot == ~0u) {
		tc_fail(&t, "/hello.txt is not cached");
		goto out;
	}
	if (dconn_open(&t, &c, family, (uint16_t)(40000 + family + head), true))
		goto out;
	len = check_response(&t, &c, req, slot, head, &tsval);
	if (len < 0)
		goto out;

	/* The client's ACK of response and FIN: dropped. */
	s = dconn_seg(&c, (uint32_t)strlen(req), (uint32_t)len + 1,
		      PKT_TH_ACK, tsval, NULL);
	if (run(&t, &s, &r))
		goto out;
	EXPECT(&t, r.verdict == XDP_DROP, "ACK after response: %s",
	       verdict_name(r.verdict));
	expect_counters(&t, &r, STCP_C_RESPONSE_ACKED, -1);

	/* Its FIN: answered with our ACK, PAWS-newer than the response. */
	s = dconn_seg(&c, (uint32_t)strlen(req), (uint32_t)len + 1,
		      PKT_TH_ACK | PKT_TH_FIN, tsval, NULL);
	if (run(&t, &s, &r))
		goto out;
	expect_counters(&t, &r, STCP_C_FIN_ANSWERED, STCP_C_TX_ACK);
	if (r.verdict != XDP_TX ||
	    pkt_parse(r.out, r.out_len, &v, why, sizeof(why))) {
		tc_fail(&t, "FIN after response: %s", verdict_name(r.verdict));
		goto out;
	}
	EXPECT(&t,
	       v.flags == PKT_TH_ACK && v.seq == c.isn + (uint32_t)len + 2 &&
		       v.ack == s.seq + 1 && v.tcp_csum_ok,
	       "ACK of FIN: flags 0x%02x seq 0x%08x ack 0x%08x", v.flags,
	       v.seq, v.ack);
	{
		struct pkt_tcpopts o;

		pkt_parse_tcpopts(v.opt, v.opt_len, &o);
		/* PAWS needs non-decreasing: equal within one 1 KB block. */
		EXPECT(&t, o.has_ts && (int32_t)(o.tsval - tsval) >= 0,
		       "ACK of FIN TSval 0x%08x older than 0x%08x", o.tsval,
		       tsval);
	}

	/* The same FIN with an ACK number one off is not ours: reset. */
	s = dconn_seg(&c, (uint32_t)strlen(req), (uint32_t)len + 2,
		      PKT_TH_ACK | PKT_TH_FIN, tsval, NULL);
	if (run(&t, &s, &r))
		goto out;
	EXPECT(&t, r.verdict == XDP_TX, "forged FIN: %s",
	       verdict_name(r.verdict));
	expect_counters(&t, &r, STCP_C_BAD_COOKIE, STCP_C_TX_RST);
out:
	tc_report(&t);
}

static void case_status(const char *req, uint32_t slot, const char *what)
{
	char name[128];
	struct tcase t = { 0 };
	struct dconn c = { 0 };
	uint32_t tsval;

	snprintf(name, sizeof(name), "data: %s -> the fixed %s response",
		 what, what);
	t.name = name;
	if (!dconn_open(&t, &c, 4, (uint16_t)(41000 + slot), true))
		check_response(&t, &c, req, slot, false, &tsval);
	tc_report(&t);
}

/*
 * An object without response slots (STCP_SLOT_NONE), as stcpd stores the
 * ones beyond the 1020 that have them: without stcpd (this program was
 * loaded without stcp_have_daemon), the request gets the fixed 503.
 */
static void case_slot_none(void)
{
	const char *req = "GET /noslots.bin HTTP/1.1\r\nHost: a\r\n\r\n";
	struct tcase t = { .name = "data: an object without slots and no "
				   "stcpd -> the fixed 503" };
	struct stcp_obj_key k;
	struct stcp_obj o;
	struct dconn c = { 0 };
	uint32_t tsval;

	memset(&k, 0, sizeof(k));
	memset(&o, 0, sizeof(o));
	snprintf(k.path, sizeof(k.path), "/noslots.bin");
	for (int v = 0; v < STCP_VARIANTS; v++)
		o.resp[v] = STCP_SLOT_NONE;
	o.size = 100;
	o.id = 77;
	if (bpf_map_update_elem(unit_main.m.objects, &k, &o, BPF_ANY)) {
		tc_fail(&t, "cannot add the object: %s", strerror(errno));
		goto out;
	}
	if (!dconn_open(&t, &c, 4, 41950, true))
		check_response(&t, &c, req, STCP_RESP_503, false, &tsval);
	bpf_map_delete_elem(unit_main.m.objects, &k);
out:
	tc_report(&t);
}

/* The last frame the ring gave, for case_request_parts. */
static struct stcp_miss_event ring_last;
static int ring_seen;

static int ring_take(void *ctx, void *data, size_t len)
{
	(void)ctx;
	if (len >= sizeof(ring_last))
		memcpy(&ring_last, data, sizeof(ring_last));
	ring_seen++;
	return 0;
}

/*
 * A request whose header does not end in its first segment: that segment
 * (its sequence number passes the cookie) and the next (which matches the
 * flow stcp_reasm now holds) go whole to stcpd through the ring; a segment
 * of the flow with another ACK number is refused as before.
 */
static void case_request_parts(void)
{
	const char *part1 = "GET /hello.txt HTTP/1.1\r\nHost: a\r\nX-Big: aaaa";
	const char *part2 = "bbbb\r\n\r\n";
	struct tcase t = { .name = "data: a request in two segments goes to "
				   "stcpd, both segments, whole" };
	uint8_t in[PKT_MAX_FRAME];
	struct ring_buffer *rb;
	struct pkt_spec s;
	struct unit_run r;
	struct dconn c = { 0 };
	size_t in_len;

	rb = ring_buffer__new(bpf_map__fd(unit_main.skel->maps.stcp_misses),
			      ring_take, NULL, NULL);
	if (!rb) {
		tc_fail(&t, "ring_buffer__new: %s", strerror(errno));
		tc_report(&t);
		return;
	}
	if (dconn_open(&t, &c, 4, 41900, true))
		goto out;
	s = dconn_seg(&c, 0, 0, PKT_TH_ACK | PKT_TH_PSH, c.synack_tsval, part1);
	in_len = pkt_build(&s, in, sizeof(in));
	ring_seen = 0;
	if (run(&t, &s, &r))
		goto out;
	EXPECT(&t, r.verdict == XDP_DROP, "first part: %s",
	       verdict_name(r.verdict));
	expect_counters(&t, &r, STCP_C_REQUEST_PART, -1);
	ring_buffer__consume(rb);
	EXPECT(&t,
	       ring_seen == 1 && ring_last.kind == STCP_EV_REQ_FIRST &&
		       ring_last.len == in_len &&
		       !memcmp(ring_last.frame, in, in_len),
	       "first part: %d events, kind %u, %u bytes (frame %zu)",
	       ring_seen, ring_last.kind, ring_last.len, in_len);

	s = dconn_seg(&c, (uint32_t)strlen(part1), 0, PKT_TH_ACK | PKT_TH_PSH,
		      c.synack_tsval, part2);
	ring_seen = 0;
	if (run(&t, &s, &r))
		goto out;
	expect_counters(&t, &r, STCP_C_REQUEST_PART, -1);
	ring_buffer__consume(rb);
	EXPECT(&t, ring_seen == 1 && ring_last.kind == STCP_EV_REQ_CONT,
	       "second part: %d events, kind %u", ring_seen, ring_last.kind);

	/* Same flow, an ACK number the entry does not hold: not a part. */
	s = dconn_seg(&c, (uint32_t)strlen(part1), 1, PKT_TH_ACK | PKT_TH_PSH,
		      c.synack_tsval, part2);
	ring_seen = 0;
	if (run(&t, &s, &r))
		goto out;
	ring_buffer__consume(rb);
	EXPECT(&t, ring_seen == 0 && r.verdict == XDP_TX,
	       "wrong ACK number: %d events, %s, want an RST", ring_seen,
	       verdict_name(r.verdict));
	expect_counters(&t, &r, STCP_C_BAD_COOKIE, STCP_C_TX_RST);
out:
	ring_buffer__free(rb);
	tc_report(&t);
}

/* If-None-Match: the stored ETag (strong or weak form) or "*" gets the
 * 304 variant; another tag gets the 200. */
static void case_inm(const char *label, const char *fmt, bool want_304)
{
	static char hdr[STCP_PAGE_SIZE + 1];
	char name[128], etag[96], val[128], req[256];
	uint32_t s200 = object_slot("/hello.txt");
	uint32_t s304 = object_slot_v("/hello.txt", STCP_V_304_CLOSE);
	struct tcase t = { 0 };
	struct stcp_resp resp;
	struct dconn c = { 0 };
	uint32_t tsval;

	snprintf(name, sizeof(name), "data: If-None-Match %s -> %s", label,
		 want_304 ? "304" : "200");
	t.name = name;
	if (s200 == ~0u || s304 == ~0u ||
	    stcp_resp_read(unit_main.m.pages, unit_main.m.resps, s200, &resp,
			   hdr) ||
	    !stcp_hdr_field(hdr, "ETag", etag, sizeof(etag))) {
		tc_fail(&t, "no cached /hello.txt with an ETag");
		goto out;
	}
	snprintf(val, sizeof(val), fmt, etag);
	snprintf(req, sizeof(req),
		 "GET /hello.txt HTTP/1.1\r\nHost: a\r\nIf-None-Match: %s"
		 "\r\nConnection: close\r\n\r\n",
		 val);
	if (!dconn_open(&t, &c, 4, (uint16_t)(43000 + (label[0] & 0xff)),
			true))
		check_response(&t, &c, req, want_304 ? s304 : s200, false,
			       &tsval);
out:
	tc_report(&t);
}

/*
 * A client without timestamps (docs/PROTOCOL.md 7.11): a one-segment
 * response in place with no TCP option and our FIN, entered in stcp_conns;
 * the client's ACK of it is dropped and its FIN answered, both decoded
 * from the entry.
 */
static void case_no_ts(void)
{
	static uint8_t want[2 * STCP_PAGE_SIZE];
	const char *req =
		"GET /hello.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	struct tcase t = {
		.name = "data: no timestamps: the response without options, "
			"then the close, from stcp_conns"
	};
	uint32_t slot = object_slot("/hello.txt"), len;
	size_t wlen = slot_bytes(slot, false, want, sizeof(want));
	struct pkt_tcpopts o;
	struct stcp_conn e;
	struct pkt_spec s;
	struct pkt_view v;
	struct unit_run r;
	struct dconn c = { 0 };

	if (!wlen || dconn_open(&t, &c, 4, 42000, false))
		goto out;
	s = dconn_seg(&c, 0, 0, PKT_TH_ACK | PKT_TH_PSH, 0, req);
	if (run_reply(&t, &s, &r, &v, &o, "request"))
		goto out;
	expect_counters(&t, &r, STCP_C_REQUEST_ANSWERED, STCP_C_TX_DATA);
	len = (uint32_t)v.payload_len;
	EXPECT(&t,
	       v.flags == (PKT_TH_FIN | PKT_TH_PSH | PKT_TH_ACK) &&
		       !v.opt_len && v.seq == c.isn + 1 &&
		       v.ack == c.cisn + 1 + (uint32_t)strlen(req) &&
		       len == wlen && !memcmp(v.opt + v.opt_len, want, wlen) &&
		       v.tcp_csum_ok && v.ip_csum_ok,
	       "response: flags 0x%02x, %zu option bytes, %u bytes",
	       v.flags, v.opt_len, len);
	EXPECT(&t,
	       conn_entry(c.isn + 1, &e) && e.slot == slot &&
		       e.flags == (STCP_CONN_F_CLOSE | STCP_CONN_F_NOTS) &&
		       e.total == len && e.high == 1,
	       "no stcp_conns entry for the response");

	s = dconn_seg(&c, (uint32_t)strlen(req), len + 1, PKT_TH_ACK, 0, NULL);
	if (run(&t, &s, &r))
		goto out;
	EXPECT(&t, r.verdict == XDP_DROP, "ACK of response and FIN: %s",
	       verdict_name(r.verdict));
	expect_counters(&t, &r, STCP_C_RESPONSE_ACKED, -1);

	s = dconn_seg(&c, (uint32_t)strlen(req), len + 1,
		      PKT_TH_ACK | PKT_TH_FIN, 0, NULL);
	if (run_reply(&t, &s, &r, &v, &o, "FIN"))
		goto out;
	expect_counters(&t, &r, STCP_C_FIN_ANSWERED, STCP_C_TX_ACK);
	EXPECT(&t,
	       v.flags == PKT_TH_ACK && !v.opt_len &&
		       v.seq == c.isn + 2 + len && v.ack == s.seq + 1,
	       "ACK of FIN: flags 0x%02x seq 0x%08x", v.flags, v.seq);

	/* An ACK number off the response's boundaries: not ours. */
	s = dconn_seg(&c, (uint32_t)strlen(req), 3, PKT_TH_ACK, 0, NULL);
	if (run(&t, &s, &r))
		goto out;
	expect_counters(&t, &r, STCP_C_BAD_COOKIE, STCP_C_TX_RST);
out:
	tc_report(&t);
}

/* The multi-segment object: 20,000 bytes, 14 or 15 segments with its
 * header. */
#define BIG_LEN 20000
static uint8_t big_body[BIG_LEN];

/* Runs stcp_devmap_tx on one copy of a descriptor. */
static int run_copy(const struct stcp_tx_desc *d, uint32_t *verdict,
		    uint8_t *out, uint32_t *out_len)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = d,
		    .data_size_in = sizeof(*d), .data_out = out,
		    .data_size_out = PKT_MAX_FRAME, .repeat = 1);
	int err = bpf_prog_test_run_opts(
		bpf_program__fd(unit_main.skel->progs.stcp_devmap_tx), &o);

	*verdict = o.retval;
	*out_len = o.data_size_out;
	return err;
}

/*
 * Broadcasts d the way a devmap would (ncopies clones, then the original)
 * and checks every copy: the k-th segment of the ranges, byte for byte
 * against want, with its sequence and acknowledgement numbers and TSval;
 * unused clones dropped; the original turned into the flush frame.
 */
static void check_copies(struct tcase *t, const struct stcp_tx_desc *d,
			 const uint8_t *want, uint32_t slot, uint32_t ack0)
{
	static uint8_t out[PKT_MAX_FRAME];
	uint32_t verdict, out_len, k = 0;
	struct pkt_tcpopts o;
	struct pkt_view v;
	char why[128];

	for (uint32_t c = 0; c <= d->ncopies; c++) {
		uint32_t seg = ~0u, rest = c, off, len;

		for (int i = 0; i < STCP_TX_RANGES; i++) {
			if (rest < d->count[i]) {
				seg = d->first[i] + rest;
				break;
			}
			rest -= d->count[i];
		}
		if (run_copy(d, &verdict, out, &out_len)) {
			tc_fail(t, "copy %u: test run failed", c);
			return;
		}
		if (c == d->ncopies) {
			EXPECT(t,
			       verdict == XDP_PASS &&
				       out_len == STCP_TX_KICK_LEN &&
				       out[12] == 0x88 && out[13] == 0xb5,
			       "original: verdict %s, %u bytes, not the flush "
			       "frame",
			       verdict_name(verdict), out_len);
			continue;
		}
		if (c >= d->nseg) {
			EXPECT(t, verdict == XDP_DROP, "copy %u: %s, want drop",
			       c, verdict_name(verdict));
			continue;
		}
		k++;
		if (verdict != XDP_PASS ||
		    pkt_parse(out, out_len, &v, why, sizeof(why))) {
			tc_fail(t, "copy %u: %s (%s)", c, verdict_name(verdict),
				why);
			return;
		}
		off = seg * d->seg_size;
		len = d->total - off < d->seg_size ? d->total - off :
						     d->seg_size;
		EXPECT(t, v.tcp_csum_ok && (v.family == 6 || v.ip_csum_ok),
		       "segment %u: bad checksum", seg);
		EXPECT(t, v.seq == d->isn1 + off, "segment %u: seq 0x%08x", seg,
		       v.seq);
		EXPECT(t, v.payload_len == len &&
				  !memcmp(v.opt + v.opt_len, want + off, len),
		       "segment %u: payload differs (%zu bytes, want %u)", seg,
		       v.payload_len, len);
		EXPECT(t, v.ack == stcp_seg_ack(d) && d->req_end == ack0,
		       "segment %u: ack 0x%08x, req_end 0x%08x", seg, v.ack,
		       d->req_end);
		EXPECT(t,
		       v.flags == (off + len == d->total ?
					   PKT_TH_ACK | PKT_TH_PSH |
						   (d->flags & STCP_TX_F_CLOSE ?
							    PKT_TH_FIN :
							    0) :
					   PKT_TH_ACK),
		       "segment %u: flags 0x%02x", seg, v.flags);
		pkt_parse_tcpopts(v.opt, v.opt_len, &o);
		if (d->flags & STCP_TX_F_NO_TS) {
			EXPECT(t, !v.opt_len, "segment %u: %zu option bytes",
			       seg, v.opt_len);
			continue;
		}
		EXPECT(t,
		       o.has_ts &&
			       o.tsval == (d->ts_low == STCP_DTS_KA ?
						   (stcp_ts_pos(v.seq)
						    << STCP_TS_POS_SHIFT) |
							   STCP_DTS_KA :
						   stcp_data_tsval(v.seq,
								   off >> 24,
								   LINUX_OPTS,
								   slot)),
		       "segment %u: TSval 0x%08x", seg, o.tsval);
	}
	EXPECT(t, k == d->nseg, "%u segments built, want %u", k, d->nseg);
}

/* The descriptor a run redirected, or NULL. */
static const struct stcp_tx_desc *desc_of(struct tcase *t,
					  const struct unit_run *r)
{
	const struct stcp_tx_desc *d = (const void *)r->out;

	if (r->verdict != XDP_REDIRECT || r->out_len != sizeof(*d) ||
	    d->magic != STCP_TX_MAGIC) {
		tc_fail(t, "verdict %s, %u bytes: no transmit descriptor",
			verdict_name(r->verdict), r->out_len);
		return NULL;
	}
	return d;
}

/*
 * What the multi-segment cases share: they run on CPU 0 (the copies of one
 * broadcast are numbered per CPU), the copies' devmap has a slot (as stcpd
 * fills it in native mode), and want, unless NULL, holds the bytes of the
 * response in slot (its header, then /big.bin's body).
 */
struct multi_env {
	cpu_set_t old;
	struct stcp_resp resp;
};

static int multi_begin(struct tcase *t, struct multi_env *m, uint32_t slot,
		       uint8_t *want)
{
	static char hdr[STCP_PAGE_SIZE + 1];
	struct bpf_devmap_val dv = { .ifindex = 1 };
	uint32_t zero = 0;
	cpu_set_t cpus;

	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	sched_getaffinity(0, sizeof(m->old), &m->old);
	sched_setaffinity(0, sizeof(cpus), &cpus);
	if (slot == ~0u || stcp_resp_read(unit_main.m.pages, unit_main.m.resps,
					  slot, &m->resp, hdr)) {
		tc_fail(t, "the object is not cached");
		return -1;
	}
	if (want) {
		memcpy(want, hdr, m->resp.hdr_len);
		memcpy(want + m->resp.hdr_len, big_body, BIG_LEN);
	}
	if (bpf_map_update_elem(
		    bpf_map__fd(unit_main.skel->maps.stcp_tx_dm64), &zero, &dv,
		    BPF_ANY)) {
		tc_fail(t, "cannot fill stcp_tx_dm64: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void multi_end(struct multi_env *m)
{
	uint32_t zero = 0;

	bpf_map_delete_elem(bpf_map__fd(unit_main.skel->maps.stcp_tx_dm64),
			    &zero);
	sched_setaffinity(0, sizeof(m->old), &m->old);
}

/*
 * A response of 14 segments (15 over IPv6, whose MSS is smaller;
 * docs/PROTOCOL.md 7): the request releases the
 * initial window of 10, acknowledging none of the request; each copy of the
 * broadcast is run through stcp_devmap_tx and checked; an ACK of two
 * segments echoing segment 0 releases f(0)..f(2) = [10, 14); a SACK with
 * segment 3 missing resends it; a D-SACK echo is dropped; the request byte
 * the client resends after everything arrived gets a pure ACK.
 */
static void case_multi(int family)
{
	static uint8_t want[2 * STCP_PAGE_SIZE + BIG_LEN];
	const char *req =
		"GET /big.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	uint32_t slot = object_slot("/big.bin"), reqlen = strlen(req), tsval0;
	uint32_t hdr_len, sz = family == 4 ? 1448 : 1428, nsegs;
	const struct stcp_tx_desc *d;
	struct tcase t = { 0 };
	struct multi_env m;
	struct pkt_spec s;
	struct unit_run r;
	struct dconn c = { 0 };
	char name[96];

	snprintf(name, sizeof(name),
		 "data: IPv%d GET of 20 KB: clones, ACK clock, SACK, "
		 "D-SACK, close",
		 family);
	t.name = name;
	if (multi_begin(&t, &m, slot, want))
		goto out;
	hdr_len = m.resp.hdr_len;
	nsegs = (hdr_len + BIG_LEN + sz - 1) / sz;
	if (dconn_open(&t, &c, family, (uint16_t)(44000 + family), true))
		goto out;

	s = dconn_seg(&c, 0, 0, PKT_TH_ACK | PKT_TH_PSH, c.synack_tsval, req);
	if (run(&t, &s, &r))
		goto out;
	expect_counters(&t, &r, STCP_C_REQUEST_ANSWERED, -1);
	d = desc_of(&t, &r);
	if (!d)
		goto out;
	EXPECT(&t,
	       d->nseg == STCP_IW && d->nranges == 1 && d->first[0] == 0 &&
		       d->count[0] == STCP_IW && d->ncopies == 16 &&
		       d->nsegs == nsegs && d->total == hdr_len + BIG_LEN &&
		       d->seg_size == sz && d->isn1 == c.isn + 1 &&
		       d->flags == (STCP_TX_F_CLOSE | STCP_TX_F_ACK_NONE),
	       "request: nseg %u ranges %u [%u,+%u) copies %u of %u segs, "
	       "flags 0x%x",
	       d->nseg, d->nranges, d->first[0], d->count[0], d->ncopies,
	       d->nsegs, d->flags);
	check_copies(&t, d, want, slot, c.cisn + 1);
	tsval0 = stcp_data_tsval(c.isn + 1, 0, LINUX_OPTS, slot);

	/* ACK of segments 0-1, echoing segment 0: releases [10, 14),
	 * f(0) = 10 and f(2) = 14. */
	s = dconn_seg(&c, reqlen, 2 * sz, PKT_TH_ACK, tsval0, NULL);
	s.window = 4000; /* scaled by 2^7: far more than the response */
	if (run(&t, &s, &r))
		goto out;
	expect_counters(&t, &r, STCP_C_DATA_ACK_RELEASED, -1);
	d = desc_of(&t, &r);
	if (!d)
		goto out;
	EXPECT(&t,
	       d->nseg == 4 && d->first[0] == 10 && d->count[0] == 4 &&
		       d->req_end == s.seq && !(d->flags & STCP_TX_F_ACK_NONE),
	       "ACK of 2: nseg %u [%u,+%u) req_end 0x%08x", d->nseg,
	       d->first[0], d->count[0], d->req_end);
	check_copies(&t, d, want, slot, s.seq);

	/* Segment 3 lost, 4 arrived: SACK [4, 5) resends 3 and only 3. */
	s = dconn_seg(&c, reqlen, 3 * sz, PKT_TH_ACK,
		      stcp_data_tsval(c.isn + 1 + 2 * sz, 0, LINUX_OPTS, slot),
		      NULL);
	s.window = 4000;
	{
		uint32_t e[2] = { c.isn + 1 + 4 * sz, c.isn + 1 + 5 * sz };

		pkt_opt_sack(&s, e, 1);
	}
	if (run(&t, &s, &r))
		goto out;
	expect_counters(&t, &r, STCP_C_DATA_SACK, STCP_C_TX_RETRANS);
	d = desc_of(&t, &r);
	if (!d)
		goto out;
	EXPECT(&t, d->first[0] == 3 && d->count[0] == 1,
	       "SACK: first range [%u,+%u), want segment 3 resent",
	       d->first[0], d->count[0]);
	check_copies(&t, d, want, slot, s.seq);

	/* The echo of a duplicate of segment 12, which the ACK of segments
	 * 0-1 released: a D-SACK inside the block [10, 14) (RFC 2883 4.1.2)
	 * on that same ACK. Dropped, or duplicates would answer duplicates. */
	s = dconn_seg(&c, reqlen, 2 * sz, PKT_TH_ACK, tsval0, NULL);
	s.window = 4000;
	{
		uint32_t e[4] = { c.isn + 1 + 12 * sz, c.isn + 1 + 13 * sz,
				  c.isn + 1 + 10 * sz, c.isn + 1 + 14 * sz };

		pkt_opt_sack(&s, e, 2);
	}
	if (run(&t, &s, &r))
		goto out;
	EXPECT(&t, r.verdict == XDP_DROP, "D-SACK echo: %s",
	       verdict_name(r.verdict));
	expect_counters(&t, &r, STCP_C_DATA_DSACK, -1);

	/* A D-SACK outside [f(t), f(j)) (TSecr of segment 2 itself, so the
	 * range is empty): dropped all the same, since it only repeats an
	 * earlier ACK. */
	s = dconn_seg(&c, reqlen, 2 * sz, PKT_TH_ACK,
		      stcp_data_tsval(c.isn + 1 + 2 * sz, 0, LINUX_OPTS, slot),
		      NULL);
	s.window = 4000;
	{
		uint32_t e[2] = { c.isn + 1 + 13 * sz, c.isn + 1 + 14 * sz };
		uint32_t e2[4] = { e[0], e[1], e[0], e[1] };

		pkt_opt_sack(&s, e2, 2);
	}
	if (run(&t, &s, &r))
		goto out;
	EXPECT(&t, r.verdict == XDP_DROP, "D-SACK of f(j) - 1: %s",
	       verdict_name(r.verdict));
	expect_counters(&t, &r, STCP_C_DATA_DSACK, -1);

	/* Segment 5 lost, nothing after it arrived: the client's timer
	 * resends the request bytes still unacknowledged (its final CRLF). The answer
	 * goes back to segment 5 and still leaves them unacknowledged. */
	s = dconn_seg(&c, reqlen - STCP_ACK_LAG, 5 * sz,
		      PKT_TH_ACK | PKT_TH_PSH,
		      stcp_data_tsval(c.isn + 1 + 4 * sz, 0, LINUX_OPTS, slot),
		      &req[reqlen - STCP_ACK_LAG]);
	s.window = 4000;
	if (run(&t, &s, &r))
		goto out;
	expect_counters(&t, &r, STCP_C_DATA_PROBE, STCP_C_TX_RETRANS);
	d = desc_of(&t, &r);
	if (!d)
		goto out;
	EXPECT(&t, d->first[0] == 5 && stcp_seg_ack(d) == s.seq,
	       "probe: first range [%u,+%u), ack 0x%08x, want 5 and 0x%08x",
	       d->first[0], d->count[0], stcp_seg_ack(d), s.seq);
	check_copies(&t, d, want, slot, s.seq + STCP_ACK_LAG);

	/* Everything arrived; the client's timer resends the last request
	 * byte: a pure ACK of it. */
	s = dconn_seg(&c, reqlen - 1, hdr_len + BIG_LEN + 1,
		      PKT_TH_ACK | PKT_TH_PSH,
		      stcp_data_tsval(c.isn + 1 + (nsegs - 1) * sz, 0,
				      LINUX_OPTS, slot),
		      "\n");
	if (run(&t, &s, &r))
		goto out;
	expect_counters(&t, &r, STCP_C_DATA_PROBE, STCP_C_TX_ACK);
	{
		struct pkt_view v;
		char why[128];

		EXPECT(&t,
		       r.verdict == XDP_TX &&
			       !pkt_parse(r.out, r.out_len, &v, why,
					  sizeof(why)) &&
			       v.ack == c.cisn + 1 + reqlen && !v.payload_len,
		       "last request byte: %s, want a pure ACK of it",
		       verdict_name(r.verdict));
	}
out:
	multi_end(&m);
	tc_report(&t);
}

/* Runs s and parses the one segment it answers with. */
static int run_reply(struct tcase *t, const struct pkt_spec *s,
		     struct unit_run *r, struct pkt_view *v,
		     struct pkt_tcpopts *o, const char *what)
{
	char why[128];

	if (run(t, s, r))
		return -1;
	if (r->verdict != XDP_TX ||
	    pkt_parse(r->out, r->out_len, v, why, sizeof(why))) {
		tc_fail(t, "%s: verdict %s, no reply", what,
			verdict_name(r->verdict));
		return -1;
	}
	pkt_parse_tcpopts(v->opt, v->opt_len, o);
	return 0;
}

/* The stcp_conns entry whose response starts at base, if any. */
/* The stcp_conns entry whose response starts at base, and its flow. */
static bool conn_entry_flow(uint32_t base, struct stcp_flow *flow,
			    struct stcp_conn *out)
{
	int fd = bpf_map__fd(unit_main.skel->maps.stcp_conns);
	struct stcp_flow k, next;
	void *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		k = next;
		prev = &k;
		if (!bpf_map_lookup_elem(fd, &k, out) && out->base == base) {
			*flow = k;
			return true;
		}
	}
	return false;
}

static bool conn_entry(uint32_t base, struct stcp_conn *out)
{
	struct stcp_flow flow;

	return conn_entry_flow(base, &flow, out);
}

/*
 * Keep-alive (docs/PROTOCOL.md 7.10): the first response is the keep-alive
 * variant without our FIN; the second request, sent from the end of it, is
 * answered from there and entered in stcp_conns, its segments carrying the
 * keep-alive TSval; a late ACK of the first response is dropped; a third
 * request behind the CRLF the ACK lag leaves asks to close and gets the
 * close variant with our FIN. A keep-alive TSecr on a flow without an
 * entry is reset; a client's FIN after a keep-alive response gets ours.
 */
static void case_keepalive(int family)
{
	static uint8_t want_ka[2 * STCP_PAGE_SIZE], want_cl[2 * STCP_PAGE_SIZE];
	const char *req = "GET /hello.txt HTTP/1.1\r\nHost: a\r\n\r\n";
	const char *req_close = "\r\nGET /hello.txt HTTP/1.1\r\nHost: a\r\n"
				"Connection: close\r\n\r\n";
	uint32_t ka = object_slot_v("/hello.txt", STCP_V_200_KEEPALIVE);
	uint32_t cl = object_slot("/hello.txt");
	uint32_t reqlen = strlen(req), len, base2, base3, tsval1, tsval2;
	size_t wka = slot_bytes(ka, false, want_ka, sizeof(want_ka));
	size_t wcl = slot_bytes(cl, false, want_cl, sizeof(want_cl));
	struct stcp_conn e;
	struct tcase t = { 0 };
	struct pkt_tcpopts o;
	struct dconn c = { 0 }, c2 = { 0 };
	struct pkt_spec s;
	struct pkt_view v;
	struct unit_run r;
	char name[96];

	snprintf(name, sizeof(name),
		 "data: IPv%d keep-alive: three requests on one connection, "
		 "then the close",
		 family);
	t.name = name;
	if (!wka || !wcl) {
		tc_fail(&t, "/hello.txt variants not cached");
		goto out;
	}
	if (dconn_open(&t, &c, family, (uint16_t)(45000 + family), true))
		goto out;

	s = dconn_seg(&c, 0, 0, PKT_TH_ACK | PKT_TH_PSH, c.synack_tsval, req);
	if (run_reply(&t, &s, &r, &v, &o, "first request"))
		goto out;
	expect_counters(&t, &r, STCP_C_REQUEST_ANSWERED, STCP_C_TX_DATA);
	len = (uint32_t)v.payload_len;
	tsval1 = o.tsval;
	EXPECT(&t,
	       v.flags == (PKT_TH_PSH | PKT_TH_ACK) && v.seq == c.isn + 1 &&
		       v.ack == c.cisn + 1 + reqlen && len == wka &&
		       !memcmp(v.opt + v.opt_len, want_ka, wka) &&
		       tsval1 == stcp_data_tsval(c.isn + 1, 0, LINUX_OPTS, ka),
	       "first response: flags 0x%02x seq 0x%08x, %u bytes, TSval "
	       "0x%08x: want the keep-alive variant, no FIN",
	       v.flags, v.seq, len, tsval1);

	/* Its ACK: nothing is left unacknowledged, nothing to say. */
	s = dconn_seg(&c, reqlen, len, PKT_TH_ACK, tsval1, NULL);
	if (run(&t, &s, &r))
		goto out;
	EXPECT(&t, r.verdict == XDP_DROP, "ACK of the first response: %s",
	       verdict_name(r.verdict));
	expect_counters(&t, &r, STCP_C_RESPONSE_ACKED, -1);

	s = dconn_seg(&c, reqlen, len, PKT_TH_ACK | PKT_TH_PSH, tsval1, req);
	if (run_reply(&t, &s, &r, &v, &o, "second request"))
		goto out;
	expect_counters(&t, &r, STCP_C_REQUEST_NEXT, STCP_C_TX_DATA);
	base2 = c.isn + 1 + len;
	tsval2 = o.tsval;
	EXPECT(&t,
	       v.flags == (PKT_TH_PSH | PKT_TH_ACK) && v.seq == base2 &&
		       v.ack == c.cisn + 1 + 2 * reqlen &&
		       v.payload_len == wka &&
		       !memcmp(v.opt + v.opt_len, want_ka, wka) &&
		       tsval2 == ((stcp_ts_pos(base2) << STCP_TS_POS_SHIFT) |
				  STCP_DTS_KA) &&
		       (int32_t)(tsval2 - tsval1) >= 0,
	       "second response: flags 0x%02x seq 0x%08x ack 0x%08x, %zu "
	       "bytes, TSval 0x%08x after 0x%08x",
	       v.flags, v.seq, v.ack, v.payload_len, tsval2, tsval1);
	EXPECT(&t,
	       conn_entry(base2, &e) && e.slot == ka && e.total == len &&
		       e.req_start == c.cisn + 1 + reqlen && !e.flags &&
		       e.opts == LINUX_OPTS,
	       "no stcp_conns entry for the second response");

	/* A late ACK of the first response, echoing the second's TSval. */
	s = dconn_seg(&c, 2 * reqlen, len - 1, PKT_TH_ACK, tsval2, NULL);
	if (run(&t, &s, &r))
		goto out;
	EXPECT(&t, r.verdict == XDP_DROP, "late ACK: %s",
	       verdict_name(r.verdict));
	expect_counters(&t, &r, STCP_C_DATA_ACK_IDLE, -1);

	/* The third request comes after the CRLF the ACK lag would leave
	 * (the client's timer sends both together) and asks to close. */
	s = dconn_seg(&c, 2 * reqlen - 2, 2 * len, PKT_TH_ACK | PKT_TH_PSH,
		      tsval2, req_close);
	if (run_reply(&t, &s, &r, &v, &o, "third request"))
		goto out;
	expect_counters(&t, &r, STCP_C_REQUEST_NEXT, STCP_C_TX_DATA);
	base3 = base2 + len;
	EXPECT(&t,
	       v.flags == (PKT_TH_FIN | PKT_TH_PSH | PKT_TH_ACK) &&
		       v.seq == base3 &&
		       v.ack == s.seq + (uint32_t)strlen(req_close) &&
		       v.payload_len == wcl &&
		       !memcmp(v.opt + v.opt_len, want_cl, wcl) &&
		       (int32_t)(o.tsval - tsval2) >= 0,
	       "third response: flags 0x%02x seq 0x%08x, %zu bytes: want "
	       "the close variant with our FIN",
	       v.flags, v.seq, v.payload_len);
	EXPECT(&t, conn_entry(base3, &e) && e.flags == STCP_CONN_F_CLOSE,
	       "the third response's entry does not say close");

	/* The client's FIN after ours: its ACK. */
	s = dconn_seg(&c, 2 * reqlen - 2 + (uint32_t)strlen(req_close),
		      2 * len + (uint32_t)wcl + 1,
		      PKT_TH_ACK | PKT_TH_FIN, o.tsval, NULL);
	if (run_reply(&t, &s, &r, &v, &o, "FIN after the close"))
		goto out;
	expect_counters(&t, &r, STCP_C_FIN_ANSWERED, STCP_C_TX_ACK);
	EXPECT(&t,
	       v.flags == PKT_TH_ACK && v.seq == base3 + wcl + 1 &&
		       v.ack == s.seq + 1,
	       "ACK of FIN: flags 0x%02x seq 0x%08x", v.flags, v.seq);

	/* Another connection: a keep-alive TSecr it has no entry for. */
	if (dconn_open(&t, &c2, family, (uint16_t)(45100 + family), true))
		goto out;
	s = dconn_seg(&c2, reqlen, 100, PKT_TH_ACK, tsval2, NULL);
	if (run(&t, &s, &r))
		goto out;
	EXPECT(&t, r.verdict == XDP_TX, "no entry: %s",
	       verdict_name(r.verdict));
	expect_counters(&t, &r, STCP_C_CONN_MISSING, STCP_C_TX_RST);

	/* Its first response, then its FIN: our FIN with the ACK. */
	s = dconn_seg(&c2, 0, 0, PKT_TH_ACK | PKT_TH_PSH, c2.synack_tsval,
		      req);
	if (run_reply(&t, &s, &r, &v, &o, "first request (2)"))
		goto out;
	s = dconn_seg(&c2, reqlen, len, PKT_TH_ACK | PKT_TH_FIN, o.tsval,
		      NULL);
	if (run_reply(&t, &s, &r, &v, &o, "FIN after keep-alive"))
		goto out;
	expect_counters(&t, &r, STCP_C_FIN_ANSWERED, STCP_C_TX_ACK);
	EXPECT(&t,
	       v.flags == (PKT_TH_FIN | PKT_TH_ACK) &&
		       v.seq == c2.isn + 1 + len && v.ack == s.seq + 1,
	       "FIN after keep-alive: flags 0x%02x seq 0x%08x ack 0x%08x, "
	       "want our FIN",
	       v.flags, v.seq, v.ack);
out:
	tc_report(&t);
}

/*
 * A 20 KB keep-alive response after a first one: its descriptor starts at
 * the end of the first response, carries the keep-alive TSval and no FIN;
 * an ACK echoing it releases [10, 14) as for a first response; a request
 * that comes before the response ended is a probe that also refuses the
 * keep-alive (the entry and the copies say close); the client's final ACK
 * then gets our FIN.
 */
static void case_keepalive_multi(void)
{
	static uint8_t want[2 * STCP_PAGE_SIZE + BIG_LEN];
	const char *req1 = "GET /hello.txt HTTP/1.1\r\nHost: a\r\n\r\n";
	const char *req2 = "GET /big.bin HTTP/1.1\r\nHost: a\r\n\r\n";
	uint32_t slot = object_slot_v("/big.bin", STCP_V_200_KEEPALIVE);
	uint32_t l1 = strlen(req1), l2 = strlen(req2), sz = 1448;
	uint32_t len1, base, total, tsval1, ka0;
	struct tcase t = { .name = "data: IPv4 keep-alive 20 KB second "
				   "response: clones, ACK clock, pipelining "
				   "refused, our FIN" };
	const struct stcp_tx_desc *d;
	struct pkt_tcpopts o;
	struct multi_env m;
	struct stcp_conn e;
	struct pkt_spec s;
	struct pkt_view v;
	struct unit_run r;
	struct dconn c = { 0 };

	if (multi_begin(&t, &m, slot, want))
		goto out;
	total = m.resp.hdr_len + BIG_LEN;
	if (dconn_open(&t, &c, 4, 45200, true))
		goto out;
	s = dconn_seg(&c, 0, 0, PKT_TH_ACK | PKT_TH_PSH, c.synack_tsval, req1);
	if (run_reply(&t, &s, &r, &v, &o, "first request"))
		goto out;
	len1 = (uint32_t)v.payload_len;
	tsval1 = o.tsval;
	base = c.isn + 1 + len1;

	s = dconn_seg(&c, l1, len1, PKT_TH_ACK | PKT_TH_PSH, tsval1, req2);
	if (run(&t, &s, &r))
		goto out;
	expect_counters(&t, &r, STCP_C_REQUEST_NEXT, -1);
	d = desc_of(&t, &r);
	if (!d)
		goto out;
	EXPECT(&t,
	       d->isn1 == base && d->ts_low == STCP_DTS_KA &&
		       d->flags == STCP_TX_F_ACK_NONE && d->total == total &&
		       d->nseg == STCP_IW && d->first[0] == 0,
	       "second request: isn1 0x%08x ts_low 0x%x flags 0x%x nseg %u",
	       d->isn1, d->ts_low, d->flags, d->nseg);
	check_copies(&t, d, want, slot, c.cisn + 1 + l1);
	ka0 = (stcp_ts_pos(base) << STCP_TS_POS_SHIFT) | STCP_DTS_KA;

	/* ACK of segments 0-1 echoing segment 0: [10, 14) again. */
	s = dconn_seg(&c, l1 + l2, len1 + 2 * sz, PKT_TH_ACK, ka0, NULL);
	s.window = 4000;
	if (run(&t, &s, &r))
		goto out;
	expect_counters(&t, &r, STCP_C_DATA_ACK_RELEASED, -1);
	d = desc_of(&t, &r);
	if (!d)
		goto out;
	EXPECT(&t,
	       d->nseg == 4 && d->first[0] == 10 && d->isn1 == base &&
		       d->ts_low == STCP_DTS_KA && !d->flags,
	       "ACK of 2: nseg %u [%u,+%u) flags 0x%x", d->nseg, d->first[0],
	       d->count[0], d->flags);
	check_copies(&t, d, want, slot, s.seq);

	/* The next request before this response ended. */
	s = dconn_seg(&c, l1 + l2, len1 + 2 * sz, PKT_TH_ACK | PKT_TH_PSH, ka0,
		      req1);
	s.window = 4000;
	if (run(&t, &s, &r))
		goto out;
	EXPECT(&t,
	       r.delta[STCP_C_PIPELINE_REFUSED] == 1 &&
		       r.delta[STCP_C_DATA_PROBE] == 1,
	       "pipelined request: pipeline_refused %llu, data_probe %llu",
	       (unsigned long long)r.delta[STCP_C_PIPELINE_REFUSED],
	       (unsigned long long)r.delta[STCP_C_DATA_PROBE]);
	d = desc_of(&t, &r);
	if (!d)
		goto out;
	EXPECT(&t, d->flags == STCP_TX_F_CLOSE && d->first[0] == 2,
	       "pipelined request: flags 0x%x, first %u: want a close from 2",
	       d->flags, d->first[0]);
	EXPECT(&t, conn_entry(base, &e) && e.flags == STCP_CONN_F_CLOSE,
	       "the entry does not say close");

	/* All of it, without our FIN (the last segment went out before):
	 * our FIN now. */
	s = dconn_seg(&c, l1 + l2 + l1, len1 + total, PKT_TH_ACK,
		      (stcp_ts_pos(base + total - 1) << STCP_TS_POS_SHIFT) |
			      STCP_DTS_KA,
		      NULL);
	if (run_reply(&t, &s, &r, &v, &o, "final ACK"))
		goto out;
	expect_counters(&t, &r, STCP_C_RESPONSE_ACKED, STCP_C_TX_ACK);
	EXPECT(&t,
	       v.flags == (PKT_TH_FIN | PKT_TH_ACK) && v.seq == base + total &&
		       v.ack == s.seq,
	       "final ACK: flags 0x%02x seq 0x%08x, want our FIN", v.flags,
	       v.seq);
out:
	multi_end(&m);
	tc_report(&t);
}

/*
 * A 20 KB response to a client without timestamps (docs/PROTOCOL.md
 * 7.11): 14 segments of 1460 bytes with no option; the ACK of two releases
 * [10, 14), as with timestamps, and the entry remembers 14 as sent, so
 * the same ACK again releases nothing.
 */
static void case_no_ts_multi(void)
{
	static uint8_t want[2 * STCP_PAGE_SIZE + BIG_LEN];
	const char *req =
		"GET /big.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	uint32_t slot = object_slot("/big.bin"), reqlen = strlen(req);
	uint32_t sz = 1460, nsegs;
	struct tcase t = { .name = "data: no timestamps, 20 KB: clones "
				   "without options, ACK clock from "
				   "stcp_conns" };
	const struct stcp_tx_desc *d;
	struct stcp_flow flow;
	struct multi_env m;
	struct stcp_conn e;
	struct pkt_spec s;
	struct unit_run r;
	struct dconn c = { 0 };

	if (multi_begin(&t, &m, slot, want))
		goto out;
	nsegs = (m.resp.hdr_len + BIG_LEN + sz - 1) / sz;
	c.nots_sack = true;
	if (dconn_open(&t, &c, 4, 45300, false))
		goto out;
	s = dconn_seg(&c, 0, 0, PKT_TH_ACK | PKT_TH_PSH, 0, req);
	if (run(&t, &s, &r))
		goto out;
	expect_counters(&t, &r, STCP_C_REQUEST_ANSWERED, -1);
	d = desc_of(&t, &r);
	if (!d)
		goto out;
	EXPECT(&t,
	       d->seg_size == sz && d->nsegs == nsegs && d->nseg == STCP_IW &&
		       d->flags == (STCP_TX_F_CLOSE | STCP_TX_F_ACK_NONE |
				    STCP_TX_F_NO_TS),
	       "request: seg_size %u, %u segs, nseg %u, flags 0x%x",
	       d->seg_size, d->nsegs, d->nseg, d->flags);
	check_copies(&t, d, want, slot, c.cisn + 1);
	EXPECT(&t, conn_entry(c.isn + 1, &e) && e.high == STCP_IW,
	       "entry: high %u, want %u", e.high, STCP_IW);

	s = dconn_seg(&c, reqlen, 2 * sz, PKT_TH_ACK, 0, NULL);
	s.window = 4000;
	if (run(&t, &s, &r))
		goto out;
	expect_counters(&t, &r, STCP_C_DATA_ACK_RELEASED, -1);
	d = desc_of(&t, &r);
	if (!d)
		goto out;
	EXPECT(&t, d->nseg == 4 && d->first[0] == 10,
	       "ACK of 2: nseg %u [%u,+%u)", d->nseg, d->first[0],
	       d->count[0]);
	check_copies(&t, d, want, slot, s.seq);
	EXPECT(&t, conn_entry(c.isn + 1, &e) && e.high == 14,
	       "entry: high %u, want 14", e.high);

	/* The same ACK again (a duplicate): nothing new to send. */
	if (run(&t, &s, &r))
		goto out;
	EXPECT(&t, r.verdict == XDP_DROP, "duplicate ACK: %s",
	       verdict_name(r.verdict));
	expect_counters(&t, &r, STCP_C_DATA_ACK_IDLE, -1);

	/* Without timestamps the cookie is the ISN alone: a data ACK can
	 * carry numbers that pass for a handshake ACK. Moved so that this
	 * connection's own handshake numbers fall two segments into the
	 * response, just after the request, the entry makes the segment a
	 * data ACK; with its request far away, a new connection on the same
	 * ports, the cookie answers. */
	if (!conn_entry_flow(c.isn + 1, &flow, &e))
		goto out;
	e.base = c.isn + 1 - 2 * sz;
	e.req_start = c.cisn + 1 - reqlen;
	e.high = 2;
	if (bpf_map_update_elem(bpf_map__fd(unit_main.skel->maps.stcp_conns),
				&flow, &e, BPF_EXIST)) {
		tc_fail(&t, "cannot move the entry");
		goto out;
	}
	s = dconn_seg(&c, 0, 0, PKT_TH_ACK, 0, NULL);
	if (run(&t, &s, &r))
		goto out;
	expect_counters(&t, &r, STCP_C_DATA_ACK_RELEASED, -1);
	d = desc_of(&t, &r);
	EXPECT(&t, d && d->first[0] == 2,
	       "handshake numbers two segments into the response: first %u",
	       d ? d->first[0] : ~0u);
	e.req_start = c.cisn + 1 + 0x40000000u;
	bpf_map_update_elem(bpf_map__fd(unit_main.skel->maps.stcp_conns),
			    &flow, &e, BPF_EXIST);
	if (run(&t, &s, &r))
		goto out;
	EXPECT(&t, r.verdict == XDP_DROP, "new connection's ACK: %s",
	       verdict_name(r.verdict));
	expect_counters(&t, &r, STCP_C_HANDSHAKE_DONE, -1);
out:
	multi_end(&m);
	tc_report(&t);
}

/*
 * A first response, keep-alive. Its end's ACK gets a pure ACK, unless SACK
 * blocks show the next response under way. While it is under way, the request resent whole (its
 * sequence number is the client's ISN + 1, which the ISN's handshake MAC
 * vouches for) is a probe that keeps the keep-alive; the next request
 * sent before the response ended is a probe that refuses it.
 */
static void case_first_resend_or_pipeline(void)
{
	const char *req = "GET /big.bin HTTP/1.1\r\nHost: a\r\n\r\n";
	uint32_t slot = object_slot_v("/big.bin", STCP_V_200_KEEPALIVE);
	uint32_t reqlen = strlen(req), sz = 1448, tsval0, tsend, total;
	struct tcase t = { .name = "data: a keep-alive first response: its "
				   "end's ACK answered unless SACKs show the "
				   "next; a resent request keeps the "
				   "keep-alive, an early next one refuses it" };
	const struct stcp_tx_desc *d;
	struct multi_env m;
	struct pkt_spec s;
	struct unit_run r;
	struct dconn c = { 0 };

	if (multi_begin(&t, &m, slot, NULL))
		goto out;
	if (dconn_open(&t, &c, 4, 45500, true))
		goto out;
	s = dconn_seg(&c, 0, 0, PKT_TH_ACK | PKT_TH_PSH, c.synack_tsval, req);
	if (run(&t, &s, &r))
		goto out;
	expect_counters(&t, &r, STCP_C_REQUEST_ANSWERED, -1);
	tsval0 = stcp_data_tsval(c.isn + 1, 0, LINUX_OPTS, slot);

	/* All of it arrived: the ACK gets a pure ACK of the CRLF the ACK lag
	 * held back. With a SACK block past its end (the next response's
	 * first segment lost), that ACK would cover the unanswered next
	 * request: dropped instead. */
	total = m.resp.hdr_len + BIG_LEN;
	tsend = stcp_data_tsval(c.isn + 1 + (total - 1) / sz * sz, 0,
				LINUX_OPTS, slot);
	s = dconn_seg(&c, reqlen, total, PKT_TH_ACK, tsend, NULL);
	if (run(&t, &s, &r))
		goto out;
	EXPECT(&t, r.verdict == XDP_TX, "ACK of all: %s, want a pure ACK",
	       verdict_name(r.verdict));
	expect_counters(&t, &r, STCP_C_RESPONSE_ACKED, STCP_C_TX_ACK);
	s = dconn_seg(&c, 2 * reqlen, total, PKT_TH_ACK, tsend, NULL);
	{
		uint32_t e[2] = { c.isn + 1 + total + sz,
				  c.isn + 1 + total + 2 * sz };

		pkt_opt_sack(&s, e, 1);
	}
	if (run(&t, &s, &r))
		goto out;
	EXPECT(&t, r.verdict == XDP_DROP,
	       "ACK of all with a SACK block past it: %s, want a drop",
	       verdict_name(r.verdict));
	expect_counters(&t, &r, STCP_C_DATA_ACK_IDLE, -1);

	/* Segments 0 and 1 arrived, none of the request is acknowledged:
	 * the client's timer resends all of it. */
	s = dconn_seg(&c, 0, 2 * sz, PKT_TH_ACK | PKT_TH_PSH, tsval0, req);
	s.window = 4000;
	if (run(&t, &s, &r))
		goto out;
	d = desc_of(&t, &r);
	EXPECT(&t,
	       r.delta[STCP_C_DATA_PROBE] == 1 &&
		       r.delta[STCP_C_PIPELINE_REFUSED] == 0 && d &&
		       !(d->flags & STCP_TX_F_CLOSE),
	       "resent request: data_probe %llu, pipeline_refused %llu",
	       (unsigned long long)r.delta[STCP_C_DATA_PROBE],
	       (unsigned long long)r.delta[STCP_C_PIPELINE_REFUSED]);

	/* The next request, from the end of this one. */
	s = dconn_seg(&c, reqlen, 2 * sz, PKT_TH_ACK | PKT_TH_PSH, tsval0, req);
	s.window = 4000;
	if (run(&t, &s, &r))
		goto out;
	d = desc_of(&t, &r);
	EXPECT(&t,
	       r.delta[STCP_C_DATA_PROBE] == 1 &&
		       r.delta[STCP_C_PIPELINE_REFUSED] == 1 && d &&
		       (d->flags & STCP_TX_F_CLOSE),
	       "early next request: data_probe %llu, pipeline_refused %llu",
	       (unsigned long long)r.delta[STCP_C_DATA_PROBE],
	       (unsigned long long)r.delta[STCP_C_PIPELINE_REFUSED]);
out:
	multi_end(&m);
	tc_report(&t);
}

/* The stall events the ring gave, for case_stall. */
static struct stcp_stall_event stall_last;
static int stall_seen;

static int stall_take(void *ctx, void *data, size_t len)
{
	(void)ctx;
	if (len >= sizeof(stall_last) &&
	    *(const uint32_t *)data == STCP_EV_STALL) {
		memcpy(&stall_last, data, sizeof(stall_last));
		stall_seen++;
	}
	return 0;
}

#define HUGE_LEN (200 * 1024)

/*
 * The stall timer (docs/PROTOCOL.md 7.13): an ACK of a 200 KB response
 * (over 64 segments) leaves its fields in stcp_stalls; with no ACK after
 * it, the timer hands it to stcpd on the ring once after 40 ms (and not
 * again before 80 more); the ACK of the whole response drops the entry.
 */
static void case_stall(void)
{
	const char *req =
		"GET /huge.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	struct tcase t = { .name = "data: stall timer: a long response's "
				   "last ACK goes to stcpd 40 ms later, once; "
				   "its end drops it" };
	int fd = bpf_map__fd(unit_main.skel->maps.stcp_stalls);
	uint32_t slot = object_slot("/huge.bin"), reqlen = strlen(req);
	uint32_t sz = 1448, tsval0, total, n = 0;
	struct stcp_flow k, next;
	struct ring_buffer *rb;
	struct multi_env m;
	struct dconn c = { 0 };
	struct pkt_spec s;
	struct unit_run r;
	void *prev = NULL;

	rb = ring_buffer__new(bpf_map__fd(unit_main.skel->maps.stcp_misses),
			      stall_take, NULL, NULL);
	if (multi_begin(&t, &m, slot, NULL) || !rb) {
		tc_fail(&t, "cannot read the ring");
		goto out;
	}
	total = m.resp.hdr_len + HUGE_LEN;
	if (dconn_open(&t, &c, 4, 45400, true))
		goto out;
	s = dconn_seg(&c, 0, 0, PKT_TH_ACK | PKT_TH_PSH, c.synack_tsval, req);
	if (run(&t, &s, &r))
		goto out;
	expect_counters(&t, &r, STCP_C_REQUEST_ANSWERED, -1);
	tsval0 = stcp_data_tsval(c.isn + 1, 0, LINUX_OPTS, slot);
	ring_buffer__consume(rb);
	stall_seen = 0;

	s = dconn_seg(&c, reqlen, 2 * sz, PKT_TH_ACK, tsval0, NULL);
	s.window = 4000;
	if (run(&t, &s, &r))
		goto out;
	expect_counters(&t, &r, STCP_C_DATA_ACK_RELEASED, -1);
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		k = next;
		prev = &k;
		n++;
	}
	EXPECT(&t, n == 1, "%u stcp_stalls entries, want 1", n);
	usleep(20 * 1000);
	ring_buffer__consume(rb);
	EXPECT(&t, stall_seen == 0, "the timer fired after 20 ms");
	usleep(80 * 1000);
	ring_buffer__consume(rb);
	EXPECT(&t,
	       stall_seen == 1 && stall_last.a.ack == s.ack &&
		       stall_last.a.seq == s.seq && stall_last.a.has_ts &&
		       stall_last.a.tsecr == tsval0 &&
		       stall_last.a.tsval == c.cli_tsval &&
		       stall_last.a.window == 4000 &&
		       stall_last.flow.cport == htons(45400),
	       "after 100 ms: %d stall events (ack 0x%08x, want 0x%08x)",
	       stall_seen, stall_last.a.ack, s.ack);

	/* The whole response and our FIN acknowledged: no timer left. */
	s = dconn_seg(&c, reqlen, total + 1, PKT_TH_ACK,
		      stcp_data_tsval(c.isn + 1 + (total - 1) / sz * sz,
				      (total - 1) / sz * sz >> 24, LINUX_OPTS,
				      slot),
		      NULL);
	if (run(&t, &s, &r))
		goto out;
	expect_counters(&t, &r, STCP_C_RESPONSE_ACKED, -1);
	EXPECT(&t, bpf_map_get_next_key(fd, NULL, &next),
	       "an stcp_stalls entry is left after the response's end");
out:
	multi_end(&m);
	ring_buffer__free(rb);
	tc_report(&t);
}

/* 5 MB: more than half of UNIT_MAIN_PAGES, so windowed, with a ring of
 * STCP_RING_MIN_PAGES (1 MB) of which the load fills the first half. */
#define WIN_LEN (5 * 1024 * 1024)
static uint8_t win_body[WIN_LEN];

/*
 * A windowed body (include/stcp_cache.h): the request's segments come from
 * the ring the load filled; an ACK whose segments need pages past it is
 * handed to stcpd (window_miss, the pages it needs in the event), and once
 * stcp_cache_window() has loaded them the same ACK sends them, byte for
 * byte from the ring; a copy whose ring page is being rewritten (tag 0)
 * is dropped (window_torn).
 */
static void case_window(struct stcp_cache *cache)
{
	static uint8_t want[STCP_PAGE_SIZE + WIN_LEN];
	static char hdr[STCP_PAGE_SIZE + 1];
	const char *req =
		"GET /win.bin HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	uint32_t slot = object_slot("/win.bin"), reqlen = strlen(req);
	uint32_t sz = 1448, a, seg, verdict, out_len, pg, zero = 0;
	int tags = bpf_map__fd(unit_main.skel->maps.stcp_page_tags);
	struct tcase t = { .name = "data: a windowed body: segments from the "
				   "ring, pages past it loaded by stcpd for "
				   "the packet, a page being rewritten not "
				   "sent" };
	static uint8_t out[PKT_MAX_FRAME];
	struct stcp_tx_desc dcopy;
	const struct stcp_tx_desc *d;
	struct stcp_resp resp;
	struct ring_buffer *rb;
	struct multi_env m;
	struct dconn c = { 0 };
	struct pkt_spec s;
	struct unit_run r;
	uint64_t before[STCP_C_MAX], after[STCP_C_MAX];
	int err;

	rb = ring_buffer__new(bpf_map__fd(unit_main.skel->maps.stcp_misses),
			      ring_take, NULL, NULL);
	if (multi_begin(&t, &m, slot, NULL) || !rb ||
	    stcp_resp_read(unit_main.m.pages, unit_main.m.resps, slot, &resp,
			   hdr)) {
		tc_fail(&t, "no ring, or /win.bin is not cached");
		goto out;
	}
	EXPECT(&t,
	       (resp.flags & STCP_RESP_WINDOWED) &&
		       resp.body_npages == STCP_RING_MIN_PAGES &&
		       resp.body_len == WIN_LEN,
	       "/win.bin: flags 0x%x, %u ring pages", resp.flags,
	       resp.body_npages);
	memcpy(want, hdr, resp.hdr_len);
	memcpy(want + resp.hdr_len, win_body, WIN_LEN);
	if (dconn_open(&t, &c, 4, 45600, true))
		goto out;
	s = dconn_seg(&c, 0, 0, PKT_TH_ACK | PKT_TH_PSH, c.synack_tsval, req);
	if (run(&t, &s, &r))
		goto out;
	expect_counters(&t, &r, STCP_C_REQUEST_ANSWERED, -1);
	d = desc_of(&t, &r);
	if (!d)
		goto out;
	EXPECT(&t, d->body_mask == STCP_RING_MIN_PAGES - 1,
	       "request: body_mask 0x%x", d->body_mask);
	check_copies(&t, d, want, slot, c.cisn + 1);

	/* Acknowledged up to 800 KB: its segments need body pages past the
	 * 512 KB the load put in the ring. */
	seg = 800 * 1024 / sz;
	a = seg * sz;
	s = dconn_seg(&c, reqlen, a, PKT_TH_ACK,
		      stcp_data_tsval(c.isn + 1 + a - sz, 0, LINUX_OPTS, slot),
		      NULL);
	ring_seen = 0;
	if (run(&t, &s, &r))
		goto out;
	EXPECT(&t, r.verdict == XDP_DROP, "ACK past the ring: %s",
	       verdict_name(r.verdict));
	expect_counters(&t, &r, STCP_C_CACHE_MISS, STCP_C_WINDOW_MISS);
	ring_buffer__consume(rb);
	EXPECT(&t,
	       ring_seen == 1 && ring_last.kind == STCP_EV_WINDOW &&
		       ring_last.slot == slot &&
		       ring_last.first >= (a - resp.hdr_len) / STCP_PAGE_SIZE &&
		       ring_last.last >= ring_last.first &&
		       ring_last.last < ring_last.first + 32,
	       "%d events, kind %u, pages %llu..%llu", ring_seen,
	       ring_last.kind, (unsigned long long)ring_last.first,
	       (unsigned long long)ring_last.last);
	err = stcp_cache_window(cache, slot, ring_last.first, ring_last.last,
				true);
	EXPECT(&t, !err, "stcp_cache_window: %s", strerror(-err));
	if (run(&t, &s, &r))
		goto out;
	expect_counters(&t, &r, STCP_C_DATA_ACK_RELEASED, -1);
	d = desc_of(&t, &r);
	if (!d)
		goto out;
	/* The first page the event named is the first one sent. */
	EXPECT(&t,
	       d->first[0] >= seg &&
		       (d->first[0] * sz - resp.hdr_len) / STCP_PAGE_SIZE ==
			       ring_last.first,
	       "after the load: first segment %u, event from page %llu",
	       d->first[0], (unsigned long long)ring_last.first);
	check_copies(&t, d, want, slot, s.seq);

	/* The same ACK, with the first segment's page being rewritten. */
	if (run(&t, &s, &r))
		goto out;
	d = desc_of(&t, &r);
	if (!d)
		goto out;
	dcopy = *d;
	pg = resp.body_page + ((d->first[0] * sz - resp.hdr_len) /
				       STCP_PAGE_SIZE &
			       (STCP_RING_MIN_PAGES - 1));
	bpf_map_update_elem(tags, &pg, &zero, BPF_ANY);
	unit_counters(&unit_main, before);
	EXPECT(&t,
	       !run_copy(&dcopy, &verdict, out, &out_len) &&
		       verdict == XDP_DROP,
	       "copy of a page being rewritten: %s", verdict_name(verdict));
	unit_counters(&unit_main, after);
	EXPECT(&t, after[STCP_C_WINDOW_TORN] == before[STCP_C_WINDOW_TORN] + 1,
	       "window_torn did not count it");
out:
	multi_end(&m);
	ring_buffer__free(rb);
	tc_report(&t);
}

void data_run_all(void)
{
	char root[] = "/tmp/stcp-unit-data.XXXXXX", path[64];
	struct tcase t = { .name = "data: load a root with /hello.txt" };
	struct stcp_cache cache;
	bool loaded = false;
	FILE *f;

	if (!mkdtemp(root)) {
		tc_fail(&t, "mkdtemp: %s", strerror(errno));
		tc_report(&t);
		return;
	}
	snprintf(path, sizeof(path), "%s/hello.txt", root);
	f = fopen(path, "w");
	if (!f || fputs(body, f) < 0 || fclose(f)) {
		tc_fail(&t, "cannot write %s", path);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/big.bin", root);
	for (size_t i = 0; i < BIG_LEN; i++)
		big_body[i] = (uint8_t)(i * 7 + i / 251);
	f = fopen(path, "w");
	if (!f || fwrite(big_body, 1, BIG_LEN, f) != BIG_LEN || fclose(f)) {
		tc_fail(&t, "cannot write %s", path);
		goto out;
	}
	{
		static uint8_t huge[HUGE_LEN];

		snprintf(path, sizeof(path), "%s/huge.bin", root);
		for (size_t i = 0; i < HUGE_LEN; i++)
			huge[i] = (uint8_t)(i * 13 + i / 509);
		f = fopen(path, "w");
		if (!f || fwrite(huge, 1, HUGE_LEN, f) != HUGE_LEN ||
		    fclose(f)) {
			tc_fail(&t, "cannot write %s", path);
			goto out;
		}
		snprintf(path, sizeof(path), "%s/big.bin", root);
	}
	snprintf(path, sizeof(path), "%s/win.bin", root);
	for (size_t i = 0; i < WIN_LEN; i++)
		win_body[i] = (uint8_t)(i * 29 + i / 4099);
	f = fopen(path, "w");
	if (!f || fwrite(win_body, 1, WIN_LEN, f) != WIN_LEN || fclose(f)) {
		tc_fail(&t, "cannot write %s", path);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/big.bin", root);
	if (stcp_cache_init(&cache, unit_main.m.pages, unit_main.m.resps,
			    unit_main.m.objects)) {
		tc_fail(&t, "cannot set up the cache");
		goto out;
	}
	cache.tags_fd = bpf_map__fd(unit_main.skel->maps.stcp_page_tags);
	if (stcp_cache_load(&cache, root)) {
		tc_fail(&t, "cannot load the cache");
		goto out;
	}
	loaded = true;
	tc_report(&t);

	case_get(4, false);
	case_get(6, false);
	case_get(4, true);
	case_status("GET /nope HTTP/1.1\r\nHost: a\r\n\r\n", STCP_RESP_404,
		    "404");
	case_status("DELETE / HTTP/1.1\r\nHost: a\r\n\r\n", STCP_RESP_405,
		    "405");
	case_status("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", STCP_RESP_400,
		    "400");
	case_request_parts();
	case_slot_none();
	case_inm("with the ETag", "%s", true);
	case_inm("with its weak form", "W/%s", true);
	case_inm("*", "*", true);
	case_inm("another tag", "\"nope\"", false);
	case_no_ts();
	case_multi(4);
	case_multi(6);
	case_keepalive(4);
	case_keepalive(6);
	case_keepalive_multi();
	case_no_ts_multi();
	case_first_resend_or_pipeline();
	case_stall();
	case_window(&cache);
out:
	if (loaded) {
		stcp_cache_clear(&cache);
		stcp_cache_destroy(&cache);
	} else if (t.failures) {
		tc_report(&t);
	}
	unlink(path);
	snprintf(path, sizeof(path), "%s/hello.txt", root);
	unlink(path);
	snprintf(path, sizeof(path), "%s/huge.bin", root);
	unlink(path);
	snprintf(path, sizeof(path), "%s/win.bin", root);
	unlink(path);
	rmdir(root);
}
