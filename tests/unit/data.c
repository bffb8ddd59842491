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

#include "unit.h"
#include "../../daemon/cache.h"

static const char body[] = "hello, stateless world\n";

struct dconn {
	struct pkt_spec spec; /* addresses and ports, reused per segment */
	uint32_t cisn, isn, synack_tsval, cli_tsval;
	bool ts;
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

static uint32_t key_slot(void)
{
	struct stcp_cfg cfg;

	return stcp_cfg_read(unit_main.m.cfg, &cfg) ? 0 : cfg.key_cur & 1;
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
	tsval = stcp_data_tsval(c->isn + 1, 0, LINUX_OPTS, key_slot(), slot);
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
	struct dconn c;
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
	snprintf(req, sizeof(req), "%s /hello.txt HTTP/1.1\r\nHost: a\r\n\r\n",
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
	struct dconn c;
	uint32_t tsval;

	snprintf(name, sizeof(name), "data: %s -> the fixed %s response",
		 what, what);
	t.name = name;
	if (!dconn_open(&t, &c, 4, (uint16_t)(41000 + slot), true))
		check_response(&t, &c, req, slot, false, &tsval);
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
	struct dconn c;
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
		 "\r\n\r\n",
		 val);
	if (!dconn_open(&t, &c, 4, (uint16_t)(43000 + (label[0] & 0xff)),
			true))
		check_response(&t, &c, req, want_304 ? s304 : s200, false,
			       &tsval);
out:
	tc_report(&t);
}

static void case_no_ts(void)
{
	struct tcase t = {
		.name = "data: a request without timestamps is refused (RST)"
	};
	struct pkt_spec s;
	struct unit_run r;
	struct dconn c;

	if (!dconn_open(&t, &c, 4, 42000, false)) {
		s = dconn_seg(&c, 0, 0, PKT_TH_ACK | PKT_TH_PSH, 0,
			      "GET /hello.txt HTTP/1.1\r\nHost: a\r\n\r\n");
		if (!run(&t, &s, &r)) {
			EXPECT(&t, r.verdict == XDP_TX, "verdict %s",
			       verdict_name(r.verdict));
			expect_counters(&t, &r, STCP_C_DATA_REFUSED,
					STCP_C_TX_RST);
		}
	}
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
	if (stcp_cache_init(&cache, unit_main.m.pages, unit_main.m.resps,
			    unit_main.m.objects) ||
	    stcp_cache_load(&cache, root)) {
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
	case_status("GET / HTTP/1.1\r\nHost: a\r\n", STCP_RESP_431,
		    "431 (request not complete in its segment)");
	case_inm("with the ETag", "%s", true);
	case_inm("with its weak form", "W/%s", true);
	case_inm("*", "*", true);
	case_inm("another tag", "\"nope\"", false);
	case_no_ts();
out:
	if (loaded) {
		stcp_cache_clear(&cache);
		stcp_cache_destroy(&cache);
	} else if (t.failures) {
		tc_report(&t);
	}
	unlink(path);
	rmdir(root);
}
