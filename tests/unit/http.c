// SPDX-License-Identifier: GPL-2.0
/*
 * The HTTP request parser (bpf/http.h) through tests/unit/http_parse.bpf.c:
 * every request is sent as the payload of an IPv4 TCP segment, the program
 * copies it into its per-CPU scratch map and parses it, and the result is
 * read back from that map (the runner is pinned to one CPU meanwhile).
 *
 * - http_table: requests of real clients (curl, wget, Python, ab, wrk, a
 *   browser) and one or more rows per rule of RFC 9110/9112 the parser
 *   applies, with the fields expected.
 * - generated rows: lengths at the limits (191/192-byte paths, a request of
 *   exactly STCP_HTTP_MAX_REQ bytes, 431, 414, a host over 63 bytes).
 * - the cost per request (BPF_PROG_RUN repeat, minus a copy-only run).
 * - a fuzz of 20,000 requests: generated valid ones (every field compared
 *   with what the generator put in), mutations of those and random bytes;
 *   whatever the input the run succeeds, the result is consistent, req_len
 *   never exceeds the bytes given, and a second parse after a run that
 *   leaves other bytes in the scratch buffer gives the same result.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "stcp_http.h"
#include "http_parse.skel.h"
#include "unit.h"

#define HTTP_FUZZ_COUNT 20000
#define MAX_PAYLOAD	(STCP_HTTP_MAX_REQ + 256)

static struct http_parse_bpf *hskel;
static int hprog_fd = -1, hmap_fd = -1;
static int hcpu = -1, hncpus;
static size_t hstride;
static uint8_t *hvals;

/* ------------------------------------------------------------------ */
/* Running one payload */

struct hrun {
	int err;
	uint32_t retval;
	uint32_t duration; /* ns per run, with repeat */
	struct stcp_http_req req;
};

static int run_payload(const void *p, size_t n, uint32_t repeat, struct hrun *r)
{
	static uint8_t frame[PKT_MAX_FRAME], out[PKT_MAX_FRAME];
	struct pkt_spec s;
	size_t flen;
	uint32_t key = 0;

	memset(r, 0, sizeof(*r));
	pkt_spec_init(&s, 4);
	pkt_set_addr(s.saddr, 4, UNIT_CLI_V4);
	pkt_set_addr(s.daddr, 4, UNIT_SVC_V4);
	s.sport = 40000;
	s.dport = UNIT_SVC_PORT;
	s.seq = 1;
	s.ack = 1;
	s.flags = PKT_TH_ACK | PKT_TH_PSH;
	s.payload = p;
	s.payload_len = n;
	flen = pkt_build(&s, frame, sizeof(frame));
	if (!flen)
		return r->err = -EINVAL;

	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame,
		    .data_size_in = (uint32_t)flen, .data_out = out,
		    .data_size_out = sizeof(out), .repeat = repeat);
	r->err = bpf_prog_test_run_opts(hprog_fd, &o);
	if (r->err)
		return r->err = r->err < 0 ? r->err : -r->err;
	r->retval = o.retval;
	r->duration = o.duration;
	if (bpf_map_lookup_elem(hmap_fd, &key, hvals))
		return r->err = -errno;
	memcpy(&r->req,
	       hvals + (size_t)hcpu * hstride +
		       offsetof(struct stcp_http_scratch, req),
	       sizeof(r->req));
	return 0;
}

static const char *status_name(int st)
{
	static char b[4][16];
	static int i;

	if (st == STCP_HTTP_INCOMPLETE)
		return "INCOMPLETE";
	i = (i + 1) % 4;
	snprintf(b[i], sizeof(b[i]), "%d", st);
	return b[i];
}

/* A short printable form of a request, for failure messages. */
static const char *show(const void *p, size_t n)
{
	static char b[200];
	const uint8_t *s = p;
	size_t o = 0;

	for (size_t i = 0; i < n && o + 6 < sizeof(b); i++) {
		if (s[i] == '\r')
			o += (size_t)snprintf(b + o, sizeof(b) - o, "\\r");
		else if (s[i] == '\n')
			o += (size_t)snprintf(b + o, sizeof(b) - o, "\\n");
		else if (s[i] < 0x20 || s[i] >= 0x7f)
			o += (size_t)snprintf(b + o, sizeof(b) - o, "\\x%02x",
					      s[i]);
		else
			b[o++] = (char)s[i];
	}
	b[o] = 0;
	return b;
}

/* ------------------------------------------------------------------ */
/* Expectations */

enum { KA_DERIVE = 0, KA_YES, KA_NO };
enum { R_NONE = 0, R_ONE, R_BAD };

struct hexp {
	int status;
	/* The rest is checked when status is 0. */
	int method;  /* 0: GET */
	int version; /* 0: 11 */
	int conn;
	int ka;		  /* KA_*: KA_DERIVE applies the rule */
	const char *path; /* NULL: "/" */
	const char *host; /* NULL: "" */
	int nohost;	  /* no Host field */
	int query, absolute, host_long;
	const char *inm; /* the trimmed value; NULL: none */
	int star;
	int range; /* R_* */
	uint64_t rfirst, rlast;
	int suffix;
	size_t extra;
};

static void check_str(struct tcase *t, const char *what, const char *got,
		      size_t cap, unsigned int got_len, const char *want)
{
	size_t wl = strlen(want);

	if (got_len != wl || memcmp(got, want, wl))
		tc_fail(t, "%s \"%.*s\" (%u), expected \"%s\" (%zu)", what,
			(int)(got_len < cap ? got_len : cap), got, got_len,
			want, wl);
	for (size_t i = wl; i < cap; i++) {
		if (got[i]) {
			tc_fail(t, "%s not NUL-padded at %zu", what, i);
			break;
		}
	}
}

static void check_req(struct tcase *t, const struct hexp *e, size_t n,
		      const struct hrun *r)
{
	const struct stcp_http_req *q = &r->req;
	size_t given = n > STCP_HTTP_MAX_REQ ? STCP_HTTP_MAX_REQ : n;
	int version = e->version ? e->version : 11;
	int method = e->method ? e->method : STCP_HTTP_GET;
	int ka;

	if (r->err) {
		tc_fail(t, "prog run: %s", strerror(-r->err));
		return;
	}
	EXPECT(t, r->retval == XDP_DROP, "verdict %s", verdict_name(r->retval));
	if (q->status != e->status) {
		tc_fail(t, "status %s, expected %s", status_name(q->status),
			status_name(e->status));
		return;
	}
	EXPECT(t, q->cur.done == 1, "parser did not finish");
	if (e->status) {
		EXPECT(t, q->keep_alive == 0, "keep_alive %u on an error",
		       q->keep_alive);
		return;
	}
	EXPECT(t, q->method == method, "method %u, expected %d", q->method,
	       method);
	EXPECT(t, q->version == version, "version %u, expected %d", q->version,
	       version);
	EXPECT(t, q->conn == e->conn, "conn %u, expected %d", q->conn, e->conn);
	if (e->ka == KA_DERIVE)
		ka = version == 11 ? e->conn != STCP_CONN_CLOSE
				   : e->conn == STCP_CONN_KEEPALIVE;
	else
		ka = e->ka == KA_YES;
	EXPECT(t, q->keep_alive == ka, "keep_alive %u, expected %d",
	       q->keep_alive, ka);
	check_str(t, "path", q->path, STCP_PATH_LEN, q->path_len,
		  e->path ? e->path : "/");
	check_str(t, "host", q->host, STCP_HOST_LEN, q->host_len,
		  e->host ? e->host : "");
	EXPECT(t, q->has_host == !e->nohost, "has_host %u", q->has_host);
	EXPECT(t, q->has_query == e->query, "has_query %u", q->has_query);
	EXPECT(t, q->absolute == e->absolute, "absolute %u", q->absolute);
	EXPECT(t, q->host_long == e->host_long, "host_long %u", q->host_long);
	if (e->inm) {
		uint64_t h = stcp_http_hash(e->inm, strlen(e->inm));

		EXPECT(t, q->has_inm == 1, "has_inm %u", q->has_inm);
		EXPECT(t, q->if_none_match == h,
		       "if_none_match 0x%016llx, expected 0x%016llx (hash of "
		       "%s)",
		       (unsigned long long)q->if_none_match,
		       (unsigned long long)h, e->inm);
	} else {
		EXPECT(t, q->has_inm == 0, "has_inm %u", q->has_inm);
	}
	EXPECT(t, q->inm_star == e->star, "inm_star %u", q->inm_star);
	EXPECT(t, q->has_range == (e->range != R_NONE), "has_range %u",
	       q->has_range);
	EXPECT(t, q->range_bad == (e->range == R_BAD), "range_bad %u",
	       q->range_bad);
	if (e->range == R_ONE) {
		EXPECT(t,
		       q->range_first == e->rfirst &&
			       q->range_last == e->rlast &&
			       q->range_suffix == e->suffix,
		       "range %llu-%llu suffix %u, expected %llu-%llu suffix "
		       "%d",
		       (unsigned long long)q->range_first,
		       (unsigned long long)q->range_last, q->range_suffix,
		       (unsigned long long)e->rfirst,
		       (unsigned long long)e->rlast, e->suffix);
	}
	EXPECT(t, q->extra == e->extra, "extra %u, expected %zu", q->extra,
	       e->extra);
	EXPECT(t, q->req_len + q->extra == given,
	       "req_len %u + extra %u != %zu bytes given", q->req_len, q->extra,
	       given);
}

/* ------------------------------------------------------------------ */
/* The table */

struct http_fx {
	const char *name;
	const char *req;
	struct hexp e;
};

#define H  "Host: a\r\n"
#define GH "GET / HTTP/1.1\r\n" H

#define CURL_REQ                                                               \
	"GET / HTTP/1.1\r\nHost: 198.18.0.1\r\nUser-Agent: curl/7.88.1\r\n"    \
	"Accept: */*\r\n\r\n"
#define BROWSER_REQ                                                            \
	"GET /sub/style.css?v=3 HTTP/1.1\r\n"                                  \
	"Host: www.example.com\r\n"                                            \
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) "               \
	"Gecko/20100101 Firefox/115.0\r\n"                                     \
	"Accept: text/css,*/*;q=0.1\r\n"                                       \
	"Accept-Language: en-US,en;q=0.5\r\n"                                  \
	"Accept-Encoding: gzip, deflate, br\r\n"                               \
	"Connection: keep-alive\r\n"                                           \
	"Referer: http://www.example.com/index.html\r\n"                       \
	"Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n"     \
	"Sec-Fetch-Dest: style\r\n"                                            \
	"Sec-Fetch-Mode: no-cors\r\n"                                          \
	"Sec-Fetch-Site: same-origin\r\n"                                      \
	"If-None-Match: \"1a2b-3c4d-5e6f\"\r\n"                                \
	"Cache-Control: max-age=0\r\n"                                         \
	"\r\n"
#define PIPE2 "GET /b HTTP/1.1\r\nHost: a\r\n\r\n"

/* clang-format off */
static const struct http_fx http_table[] = {
	/* Real clients */
	{ "curl 7.88 default request", CURL_REQ,
	  { .host = "198.18.0.1" } },
	{ "wget 1.21: Connection: Keep-Alive",
	  "GET /index.html HTTP/1.1\r\nUser-Agent: Wget/1.21.3\r\n"
	  "Accept: */*\r\nAccept-Encoding: identity\r\nHost: 198.18.0.1\r\n"
	  "Connection: Keep-Alive\r\n\r\n",
	  { .path = "/index.html", .host = "198.18.0.1",
	    .conn = STCP_CONN_KEEPALIVE } },
	{ "Python http.client: Host with port",
	  "GET /a/b.txt HTTP/1.1\r\nHost: 198.18.0.1:8080\r\n"
	  "Accept-Encoding: identity\r\n\r\n",
	  { .path = "/a/b.txt", .host = "198.18.0.1" } },
	{ "Python urllib: Connection: close, query",
	  "GET /?x=1 HTTP/1.1\r\nAccept-Encoding: identity\r\n"
	  "Host: www.example.com\r\nUser-Agent: Python-urllib/3.11\r\n"
	  "Connection: close\r\n\r\n",
	  { .host = "www.example.com", .conn = STCP_CONN_CLOSE, .query = 1,
	    .ka = KA_NO } },
	{ "ab 2.3: HTTP/1.0, no keep-alive",
	  "GET / HTTP/1.0\r\nHost: 198.18.0.1\r\nUser-Agent: ApacheBench/2.3\r\n"
	  "Accept: */*\r\n\r\n",
	  { .version = 10, .host = "198.18.0.1", .ka = KA_NO } },
	{ "ab -k: HTTP/1.0 with Connection: Keep-Alive",
	  "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: 198.18.0.1\r\n"
	  "User-Agent: ApacheBench/2.3\r\nAccept: */*\r\n\r\n",
	  { .version = 10, .host = "198.18.0.1",
	    .conn = STCP_CONN_KEEPALIVE, .ka = KA_YES } },
	{ "wrk: GET with Host:port only",
	  "GET /1k.bin HTTP/1.1\r\nHost: 198.18.0.1:80\r\n\r\n",
	  { .path = "/1k.bin", .host = "198.18.0.1" } },
	{ "browser-like request (Firefox headers, cookie, If-None-Match)",
	  BROWSER_REQ,
	  { .path = "/sub/style.css", .host = "www.example.com", .query = 1,
	    .conn = STCP_CONN_KEEPALIVE, .inm = "\"1a2b-3c4d-5e6f\"" } },

	/* Versions and keep-alive */
	{ "HTTP/1.0 without Host is accepted (any host)",
	  "GET /x HTTP/1.0\r\n\r\n",
	  { .version = 10, .path = "/x", .nohost = 1, .ka = KA_NO } },
	{ "HTTP/1.0 with Connection: keep-alive",
	  "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	  { .version = 10, .nohost = 1, .conn = STCP_CONN_KEEPALIVE,
	    .ka = KA_YES } },
	{ "HTTP/1.0 with keep-alive and close: close wins",
	  "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
	  { .version = 10, .nohost = 1, .conn = STCP_CONN_CLOSE,
	    .ka = KA_NO } },
	{ "HTTP/1.1 default is keep-alive", GH "\r\n",
	  { .host = "a", .ka = KA_YES } },
	{ "HTTP/1.1 Connection: close", GH "Connection: close\r\n\r\n",
	  { .host = "a", .conn = STCP_CONN_CLOSE, .ka = KA_NO } },
	{ "Connection: keep-alive, Upgrade",
	  GH "Connection: keep-alive, Upgrade\r\n\r\n",
	  { .host = "a", .conn = STCP_CONN_KEEPALIVE, .ka = KA_YES } },
	{ "Connection: Upgrade,CLOSE (case, no blank)",
	  GH "Connection: Upgrade,CLOSE\r\n\r\n",
	  { .host = "a", .conn = STCP_CONN_CLOSE, .ka = KA_NO } },
	{ "two Connection fields: keep-alive then close",
	  GH "Connection: keep-alive\r\nconnection:close\r\n\r\n",
	  { .host = "a", .conn = STCP_CONN_CLOSE, .ka = KA_NO } },
	{ "Connection: keep-alives, closed (not the tokens)",
	  GH "Connection: keep-alives, closed\r\n\r\n",
	  { .host = "a", .ka = KA_YES } },
	{ "Connection list longer than one run, keep-alive last",
	  GH "Connection: Upgrade, HTTP2-Settings, TE,Keep-Alive\r\n\r\n",
	  { .host = "a", .conn = STCP_CONN_KEEPALIVE, .ka = KA_YES } },
	{ "Connection token longer than one run ending in keep-alive",
	  GH "Connection: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxkeep-alive\r\n\r\n",
	  { .host = "a" } },
	{ "Connection with a non-token byte is 400",
	  GH "Connection: close;x\r\n\r\n", { .status = 400 } },
	{ "HTTP/1.2 is read as 1.1", "GET / HTTP/1.2\r\n" H "\r\n",
	  { .host = "a" } },
	{ "HTTP/2.0 is 505", "GET / HTTP/2.0\r\n" H "\r\n",
	  { .status = 505 } },
	{ "HTTP/0.9 is 505", "GET / HTTP/0.9\r\n" H "\r\n",
	  { .status = 505 } },
	{ "lowercase http/1.1 is 400", "GET / http/1.1\r\n" H "\r\n",
	  { .status = 400 } },
	{ "HTTP/1.10 is 400", "GET / HTTP/1.10\r\n" H "\r\n",
	  { .status = 400 } },
	{ "blank after the version is 400", "GET / HTTP/1.1 \r\n" H "\r\n",
	  { .status = 400 } },
	{ "no version (HTTP/0.9 form) is 400", "GET /\r\n\r\n",
	  { .status = 400 } },

	/* Methods */
	{ "HEAD", "HEAD /index.html HTTP/1.1\r\n" H "\r\n",
	  { .method = STCP_HTTP_HEAD, .path = "/index.html", .host = "a" } },
	{ "POST is 405",
	  "POST /form HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\nhello",
	  { .status = 405 } },
	{ "lowercase get is another method: 405", "get / HTTP/1.1\r\n" H "\r\n",
	  { .status = 405 } },
	{ "OPTIONS * is 405", "OPTIONS * HTTP/1.1\r\n" H "\r\n",
	  { .status = 405 } },
	{ "malformed method token G(T is 400", "G(T / HTTP/1.1\r\n" H "\r\n",
	  { .status = 400 } },
	{ "method ended by a tab is 400", "GET\t/ HTTP/1.1\r\n" H "\r\n",
	  { .status = 400 } },
	{ "blank before the method is 400", " GET / HTTP/1.1\r\n" H "\r\n",
	  { .status = 400 } },

	/* Request-target */
	{ "GET  / (two spaces) is 400", "GET  / HTTP/1.1\r\n" H "\r\n",
	  { .status = 400 } },
	{ "GET * is 400", "GET * HTTP/1.1\r\n" H "\r\n", { .status = 400 } },
	{ "query stripped from the path",
	  "GET /search/a.html?q=1&r=/x?y HTTP/1.1\r\n" H "\r\n",
	  { .path = "/search/a.html", .host = "a", .query = 1 } },
	{ "path keeps raw bytes (%, UTF-8, sub-delims)",
	  "GET /a%20b/\xc3\xa9t\xc3\xa9/x;y=1,z!$&'()*+@: HTTP/1.1\r\n" H "\r\n",
	  { .path = "/a%20b/\xc3\xa9t\xc3\xa9/x;y=1,z!$&'()*+@:",
	    .host = "a" } },
	{ "tab in the path is 400", "GET /a\tb HTTP/1.1\r\n" H "\r\n",
	  { .status = 400 } },
	{ "fragment in the target is 400", "GET /a#f HTTP/1.1\r\n" H "\r\n",
	  { .status = 400 } },
	{ "DEL in the query is 400", "GET /a?\x7f HTTP/1.1\r\n" H "\r\n",
	  { .status = 400 } },
	{ "absolute-form: host from the target, lowercased, port dropped",
	  "GET http://Example.COM:8080/x/y?z HTTP/1.1\r\n"
	  "Host: other.example\r\n\r\n",
	  { .path = "/x/y", .host = "example.com", .query = 1,
	    .absolute = 1 } },
	{ "absolute-form HTTP:// without a path is /",
	  "GET HTTP://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
	  { .host = "example.com", .absolute = 1 } },
	{ "absolute-form https with a query and no path",
	  "GET https://example.com?q HTTP/1.1\r\nHost: example.com\r\n\r\n",
	  { .host = "example.com", .absolute = 1, .query = 1 } },
	{ "absolute-form with an IPv6 literal",
	  "GET http://[2001:DB8::1]:80/v6 HTTP/1.1\r\n" H "\r\n",
	  { .path = "/v6", .host = "[2001:db8::1]", .absolute = 1 } },
	{ "absolute-form with userinfo is 400",
	  "GET http://user@example.com/ HTTP/1.1\r\n" H "\r\n",
	  { .status = 400 } },
	{ "absolute-form with an empty host is 400",
	  "GET http:///x HTTP/1.1\r\n" H "\r\n", { .status = 400 } },
	{ "absolute-form with another scheme is 400",
	  "GET ftp://example.com/ HTTP/1.1\r\n" H "\r\n", { .status = 400 } },
	{ "absolute-form still needs Host in HTTP/1.1",
	  "GET http://example.com/ HTTP/1.1\r\n\r\n", { .status = 400 } },

	/* Host */
	{ "Host with port", "GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
	  { .host = "example.com" } },
	{ "uppercase Host is lowercased",
	  "GET / HTTP/1.1\r\nHost: WWW.Example.COM\r\n\r\n",
	  { .host = "www.example.com" } },
	{ "IPv6 literal Host keeps its brackets",
	  "GET / HTTP/1.1\r\nHost: [2001:DB8::1]:80\r\n\r\n",
	  { .host = "[2001:db8::1]" } },
	{ "IPv6 literal without ] is 400",
	  "GET / HTTP/1.1\r\nHost: [2001:db8::1\r\n\r\n", { .status = 400 } },
	{ "Host with blanks around the value and no blank after the colon",
	  "GET / HTTP/1.1\r\nHOST:\t example.com \t\r\n\r\n",
	  { .host = "example.com" } },
	{ "empty Host is any host", "GET / HTTP/1.1\r\nHost:\r\n\r\n",
	  { .host = "" } },
	{ "Host with a blank inside is 400",
	  "GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n", { .status = 400 } },
	{ "Host with a slash is 400", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
	  { .status = 400 } },
	{ "Host with a non-digit port is 400",
	  "GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n", { .status = 400 } },
	{ "missing Host in HTTP/1.1 is 400",
	  "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", { .status = 400 } },
	{ "two Host fields are 400",
	  "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", { .status = 400 } },
	{ "Host with an empty port", "GET / HTTP/1.1\r\nHost: a.b:\r\n\r\n",
	  { .host = "a.b" } },
	{ "Host of 40 bytes (longer than one run)",
	  "GET / HTTP/1.1\r\nHost: abcdefghij-abcdefghij.abcdefghij.EXAMPLE:8080"
	  "\r\n\r\n",
	  { .host = "abcdefghij-abcdefghij.abcdefghij.example" } },
	{ "Hostname: is not Host",
	  "GET / HTTP/1.1\r\nHostname: b\r\nHost: a\r\nX-Host: c\r\n\r\n",
	  { .host = "a" } },

	/* If-None-Match */
	{ "If-None-Match with a quoted tag",
	  GH "If-None-Match: \"abc\"\r\n\r\n",
	  { .host = "a", .inm = "\"abc\"" } },
	{ "If-None-Match W/ weak tag, blanks trimmed",
	  GH "if-none-match:  \t W/\"abc\" \t \r\n\r\n",
	  { .host = "a", .inm = "W/\"abc\"" } },
	{ "If-None-Match: *", GH "If-None-Match: *\r\n\r\n",
	  { .host = "a", .inm = "*", .star = 1 } },
	{ "If-None-Match list hashed as sent",
	  GH "If-None-Match: \"a\", \"b\"\r\n\r\n",
	  { .host = "a", .inm = "\"a\", \"b\"" } },
	{ "two If-None-Match fields hash as their join",
	  GH "If-None-Match: \"a\" \r\nIf-None-Match:\"b\"\r\n\r\n",
	  { .host = "a", .inm = "\"a\", \"b\"" } },
	{ "If-None-Match of 70 bytes (longer than one run)",
	  GH "If-None-Match: \"0123456789abcdef0123456789abcdef0123456789abcdef"
	  "0123456789abcdef-xy\"\r\n\r\n",
	  { .host = "a",
	    .inm = "\"0123456789abcdef0123456789abcdef0123456789abcdef"
		   "0123456789abcdef-xy\"" } },
	{ "empty If-None-Match is ignored", GH "If-None-Match: \r\n\r\n",
	  { .host = "a" } },
	{ "If-None-Match with a control byte is 400",
	  GH "If-None-Match: \"a\x01\"\r\n\r\n", { .status = 400 } },

	/* Range */
	{ "Range bytes=0-99", GH "Range: bytes=0-99\r\n\r\n",
	  { .host = "a", .range = R_ONE, .rfirst = 0, .rlast = 99 } },
	{ "Range bytes=100- (open)", GH "Range: bytes=100-\r\n\r\n",
	  { .host = "a", .range = R_ONE, .rfirst = 100,
	    .rlast = STCP_RANGE_OPEN } },
	{ "Range bytes=-500 (suffix)", GH "Range: bytes=-500\r\n\r\n",
	  { .host = "a", .range = R_ONE, .rlast = 500, .suffix = 1 } },
	{ "Range BYTES=7-7 (unit case-insensitive), trailing comma",
	  GH "range: BYTES=7-7 , \r\n\r\n",
	  { .host = "a", .range = R_ONE, .rfirst = 7, .rlast = 7 } },
	{ "Range with a 19-digit last position",
	  GH "Range: bytes=0-1844674407370955161\r\n\r\n",
	  { .host = "a", .range = R_ONE, .rfirst = 0,
	    .rlast = 1844674407370955161ull } },
	{ "Range bytes=0-1,5-9 (two ranges) is ignored",
	  GH "Range: bytes=0-1,5-9\r\n\r\n", { .host = "a", .range = R_BAD } },
	{ "Range bytes=9-5 is ignored", GH "Range: bytes=9-5\r\n\r\n",
	  { .host = "a", .range = R_BAD } },
	{ "Range items=0-1 is ignored", GH "Range: items=0-1\r\n\r\n",
	  { .host = "a", .range = R_BAD } },
	{ "Range bytes= and bytes=- are ignored",
	  GH "Range: bytes=-\r\n\r\n", { .host = "a", .range = R_BAD } },
	{ "Range with a 20-digit position is ignored",
	  GH "Range: bytes=0-99999999999999999999\r\n\r\n",
	  { .host = "a", .range = R_BAD } },
	{ "two Range fields are ignored",
	  GH "Range: bytes=0-1\r\nRange: bytes=0-1\r\n\r\n",
	  { .host = "a", .range = R_BAD } },

	/* Framing */
	{ "pipelined second request counted in extra", GH "\r\n" PIPE2,
	  { .host = "a", .extra = sizeof(PIPE2) - 1 } },
	{ "empty lines before the request-line",
	  "\r\n\n\r\nGET / HTTP/1.1\r\n" H "\r\n", { .host = "a" } },
	{ "bare LF line ends", "GET /lf HTTP/1.1\nHost: a\nConnection: close\n\n",
	  { .path = "/lf", .host = "a", .conn = STCP_CONN_CLOSE } },
	{ "mixed LF and CRLF, LF then CRLF at the end",
	  "GET / HTTP/1.1\nHost: a\r\nX: y\n\r\n", { .host = "a" } },
	{ "bare CR ending the request-line is 400",
	  "GET / HTTP/1.1\rHost: a\r\n\r\n", { .status = 400 } },
	{ "no blank line: incomplete", GH "Accept: */*\r\n",
	  { .status = STCP_HTTP_INCOMPLETE } },
	{ "ends inside the request-line: incomplete", "GET /ind",
	  { .status = STCP_HTTP_INCOMPLETE } },
	{ "ends on the last CR: incomplete", GH "\r",
	  { .status = STCP_HTTP_INCOMPLETE } },
	{ "ends inside a known name: incomplete", GH "Connec",
	  { .status = STCP_HTTP_INCOMPLETE } },
	{ "empty payload: incomplete", "", { .status = STCP_HTTP_INCOMPLETE } },

	/* Field lines */
	{ "field without a colon is 400", GH "Accept */*\r\n\r\n",
	  { .status = 400 } },
	{ "blank before the colon is 400", "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
	  { .status = 400 } },
	{ "empty field name is 400", GH ": x\r\n\r\n", { .status = 400 } },
	{ "non-token byte in a name is 400", GH "X(y): z\r\n\r\n",
	  { .status = 400 } },
	{ "obs-fold is 400", GH "X-A: b\r\n c\r\n\r\n", { .status = 400 } },
	{ "blank line start before the first field is 400",
	  "GET / HTTP/1.1\r\n Host: a\r\n\r\n", { .status = 400 } },
	{ "field name of 60 bytes, value of 300",
	  GH "X-abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefgh: "
	  "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
	  "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
	  "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
	  "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"
	  "vvvvvvvvvvvvvvvvvvvvvvvvvvvv\r\n\r\n",
	  { .host = "a" } },
	{ "a 40-byte name with a blank before the colon is 400",
	  GH "X-abcdefghijabcdefghijabcdefghijabcdefgh : v\r\n\r\n",
	  { .status = 400 } },
	{ "unknown field values are skipped whatever they hold",
	  GH "X-Long: \x01\x7f\xff\r zz \"q\" Host: b\r\n\r\n",
	  { .host = "a" } },
	{ "Transfer-Encoding is 400", GH "Transfer-Encoding: chunked\r\n\r\n",
	  { .status = 400 } },
	{ "transfer-encoding (lowercase) is 400",
	  GH "transfer-encoding:gzip\r\n\r\n", { .status = 400 } },
	{ "Content-Length: 0 is accepted", GH "Content-Length: 0\r\n\r\n",
	  { .host = "a" } },
	{ "Content-Length: 0, 00 is accepted", GH "Content-Length: 0, 00\r\n\r\n",
	  { .host = "a" } },
	{ "HEAD with Content-Length: 0",
	  "HEAD / HTTP/1.1\r\n" H "Content-Length:0\r\n\r\n",
	  { .method = STCP_HTTP_HEAD, .host = "a" } },
	{ "Content-Length: 5 is 400", GH "Content-Length: 5\r\n\r\nhello",
	  { .status = 400 } },
	{ "Content-Length: 10 (leading 1) is 400", GH "Content-Length: 10\r\n\r\n",
	  { .status = 400 } },
	{ "Content-Length: abc is 400", GH "Content-Length: abc\r\n\r\n",
	  { .status = 400 } },
	{ "empty Content-Length is 400", GH "Content-Length: \r\n\r\n",
	  { .status = 400 } },
};
/* clang-format on */

static void run_fixture(const char *name, const void *p, size_t n,
			const struct hexp *e)
{
	struct tcase t = { .name = name };
	struct hrun r;

	run_payload(p, n, 1, &r);
	check_req(&t, e, n, &r);
	if (t.failures)
		tc_fail(&t, "input \"%s\"", show(p, n));
	tc_report(&t);
}

static void run_table(void)
{
	char name[256];

	for (size_t i = 0; i < sizeof(http_table) / sizeof(http_table[0]);
	     i++) {
		const struct http_fx *fx = &http_table[i];

		snprintf(name, sizeof(name), "http: %s", fx->name);
		run_fixture(name, fx->req, strlen(fx->req), &fx->e);
	}
}

/* ------------------------------------------------------------------ */
/* Generated rows: lengths at the limits */

/* "GET <path><query> HTTP/1.1\r\nHost: a\r\n" + fill + "\r\n" */
static size_t build_long(char *out, size_t plen, size_t qlen)
{
	size_t n = 0;

	n += (size_t)sprintf(out + n, "GET /");
	for (size_t i = 1; i < plen; i++)
		out[n++] = (char)('a' + i % 26);
	if (qlen) {
		out[n++] = '?';
		for (size_t i = 1; i < qlen; i++)
			out[n++] = (char)('0' + i % 10);
	}
	n += (size_t)sprintf(out + n, " HTTP/1.1\r\nHost: a\r\n\r\n");
	return n;
}

/* A request of exactly total bytes: an X-Fill field sized to fit. */
static size_t build_exact(char *out, size_t total, bool end)
{
	const char *head = "GET /exact HTTP/1.1\r\nHost: a\r\nX-Fill: ";
	const char *tail = end ? "\r\n\r\n" : "\r\n";
	size_t n = strlen(head), tl = strlen(tail);

	memcpy(out, head, n);
	while (n < total - tl)
		out[n++] = 'f';
	memcpy(out + n, tail, tl);
	return n + tl;
}

static void run_generated(void)
{
	static char buf[MAX_PAYLOAD + 64], path[256];
	struct hexp e;
	size_t n;

	/* 191 bytes: the longest path an stcp_obj_key holds. */
	n = build_long(buf, 191, 0);
	memcpy(path, buf + 4, 191);
	path[191] = 0;
	e = (struct hexp){ .path = path, .host = "a" };
	run_fixture("http: 191-byte path is accepted", buf, n, &e);

	n = build_long(buf, 192, 0);
	e = (struct hexp){ .status = 414 };
	run_fixture("http: 192-byte path is 414", buf, n, &e);

	n = build_long(buf, 100, 300);
	memcpy(path, buf + 4, 100);
	path[100] = 0;
	e = (struct hexp){ .path = path, .host = "a", .query = 1 };
	run_fixture("http: 100-byte path with a 300-byte query is accepted "
		    "(the limit is the path's)",
		    buf, n, &e);

	n = build_long(buf, 10, STCP_HTTP_MAX_REQ);
	e = (struct hexp){ .status = 414 };
	run_fixture("http: a query filling the whole buffer is 414", buf, n,
		    &e);

	n = build_exact(buf, STCP_HTTP_MAX_REQ, true);
	e = (struct hexp){ .path = "/exact", .host = "a" };
	run_fixture("http: request of exactly STCP_HTTP_MAX_REQ bytes", buf, n,
		    &e);

	n = build_exact(buf, STCP_HTTP_MAX_REQ, false);
	e = (struct hexp){ .status = 431 };
	run_fixture("http: STCP_HTTP_MAX_REQ bytes without the blank line is "
		    "431",
		    buf, n, &e);

	n = build_exact(buf, STCP_HTTP_MAX_REQ + 100, true);
	e = (struct hexp){ .status = 431 };
	run_fixture("http: a longer payload whose end is past the limit is 431",
		    buf, n, &e);

	n = build_exact(buf, 1448, false);
	e = (struct hexp){ .status = STCP_HTTP_INCOMPLETE };
	run_fixture("http: a full 1448-byte segment without the end is "
		    "incomplete",
		    buf, n, &e);

	n = (size_t)sprintf(buf,
			    "GET / HTTP/1.1\r\nHost: "
			    "%s:80\r\n\r\n",
			    "abcdefghij.abcdefghij.abcdefghij.abcdefghij."
			    "abcdefghij.abcdefghij.com");
	e = (struct hexp){ .host = "", .host_long = 1 };
	run_fixture("http: a 69-byte host leaves host[] empty, host_long set",
		    buf, n, &e);

	n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n",
			    "abcdefghij.abcdefghij.abcdefghij.abcdefghij."
			    "abcdefghij.abcdefgh");
	e = (struct hexp){ .host = "abcdefghij.abcdefghij.abcdefghij."
				   "abcdefghij.abcdefghij.abcdefgh" };
	run_fixture("http: a 63-byte host fits", buf, n, &e);

	n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < 100; i++)
		n += (size_t)sprintf(buf + n, "X-H%d: v\r\n", i);
	n += (size_t)sprintf(buf + n, "Host: a\r\n\r\n");
	e = (struct hexp){ .host = "a" };
	run_fixture("http: 100 short fields then Host", buf, n, &e);
}

/* ------------------------------------------------------------------ */
/* Cost */

static int cost_of(const char *req, uint32_t copy_only, uint32_t *ns)
{
	struct hrun r;
	uint32_t best = UINT32_MAX;

	hskel->bss->copy_only = copy_only;
	for (int i = 0; i < 5; i++) {
		if (run_payload(req, strlen(req), 50000, &r))
			break;
		if (r.duration < best)
			best = r.duration;
	}
	hskel->bss->copy_only = 0;
	*ns = best;
	return r.err;
}

static void run_cost(void)
{
	struct tcase t = { .name = "http: cost per request measured "
				   "(BPF_PROG_RUN, repeat 50000, best of 5)" };
	const struct {
		const char *name, *req;
	} reqs[] = { { "curl", CURL_REQ }, { "browser", BROWSER_REQ } };

	for (size_t i = 0; i < 2; i++) {
		uint32_t full, base;

		if (cost_of(reqs[i].req, 0, &full) ||
		    cost_of(reqs[i].req, 1, &base)) {
			tc_fail(&t, "prog run failed");
			break;
		}
		printf("# http parse cost: %s request, %zu bytes: %u ns per "
		       "run, %u ns copy-only, parse %d ns\n",
		       reqs[i].name, strlen(reqs[i].req), full, base,
		       (int)full - (int)base);
		EXPECT(&t, full > 0 && full < 100000,
		       "%s: %u ns per run is not plausible", reqs[i].name,
		       full);
	}
	tc_report(&t);
}

/* ------------------------------------------------------------------ */
/* Fuzz */

struct hrng {
	uint64_t s;
};

static uint64_t hrnd(struct hrng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint32_t hbelow(struct hrng *r, uint32_t n)
{
	return n ? (uint32_t)(hrnd(r) % n) : 0;
}

static bool hchance(struct hrng *r, uint32_t pct)
{
	return hbelow(r, 100) < pct;
}

struct gen {
	char buf[MAX_PAYLOAD + 512];
	size_t n;
	struct hexp e;
	char path[STCP_PATH_LEN + 8];
	char host[STCP_HOST_LEN + 16];
	char inm[128];
};

static void put(struct gen *g, const char *s, size_t n)
{
	if (g->n + n < sizeof(g->buf)) {
		memcpy(g->buf + g->n, s, n);
		g->n += n;
	}
}

static void puts_(struct gen *g, const char *s)
{
	put(g, s, strlen(s));
}

static void put_ows(struct hrng *r, struct gen *g)
{
	static const char *ows[] = { "", "", " ", " ", "\t", "  ", " \t " };

	puts_(g, ows[hbelow(r, 7)]);
}

static const char *eol(struct hrng *r, bool lf)
{
	return lf || hchance(r, 3) ? "\n" : "\r\n";
}

/* Random case for letters. */
static void put_case(struct hrng *r, struct gen *g, const char *s)
{
	for (; *s; s++) {
		char c = *s;

		if (c >= 'a' && c <= 'z' && hchance(r, 30))
			c = (char)(c - 32);
		put(g, &c, 1);
	}
}

static void rand_from(struct hrng *r, char *out, size_t n, const char *set)
{
	size_t sl = strlen(set);

	for (size_t i = 0; i < n; i++)
		out[i] = set[hbelow(r, (uint32_t)sl)];
	out[n] = 0;
}

#define ALNUM "abcdefghijklmnopqrstuvwxyz0123456789"
#define PATHC ALNUM "ABCXYZ-._~!$&'()*+,;=:@/%"

/* A valid request with its expected result in g->e. */
static void gen_valid(struct hrng *r, struct gen *g)
{
	bool lf = hchance(r, 10), v10 = hchance(r, 25), absolute;
	bool close = false, ka = false;
	size_t plen, hlen;
	char tmp[300];
	int nfields, order[8], nord = 0;

	memset(g, 0, sizeof(*g));
	g->e.version = v10 ? 10 : 11;
	if (hchance(r, 10))
		puts_(g, hchance(r, 50) ? "\r\n" : "\n\r\n");
	if (hchance(r, 20)) {
		puts_(g, "HEAD ");
		g->e.method = STCP_HTTP_HEAD;
	} else {
		puts_(g, "GET ");
	}

	/* The host, for the target or the Host field. */
	switch (hbelow(r, 4)) {
	case 0:
		snprintf(g->host, sizeof(g->host), "%u.%u.%u.%u",
			 hbelow(r, 256), hbelow(r, 256), hbelow(r, 256),
			 hbelow(r, 256));
		break;
	case 1:
		snprintf(g->host, sizeof(g->host), "[2001:db8::%x]",
			 hbelow(r, 65536));
		break;
	default:
		hlen = 1 + hbelow(r, hchance(r, 10) ? 70 : 30);
		rand_from(r, g->host, hlen, ALNUM "-.");
		break;
	}
	hlen = strlen(g->host);
	g->e.host_long = hlen > STCP_HOST_LEN - 1;
	g->e.host = g->e.host_long ? "" : g->host;

	absolute = hchance(r, 15);
	if (absolute) {
		g->e.absolute = 1;
		put_case(r, g, hchance(r, 50) ? "http://" : "https://");
		put_case(r, g, g->host);
		if (hchance(r, 40)) {
			snprintf(tmp, sizeof(tmp), ":%u", hbelow(r, 65536));
			puts_(g, tmp);
		}
	}
	/* The path (absolute-form may have none). */
	if (absolute && hchance(r, 20)) {
		strcpy(g->path, "/");
	} else {
		plen = 1 + hbelow(r, hchance(r, 10) ? 191 : 40);
		rand_from(r, g->path + 1, plen - 1, PATHC);
		g->path[0] = '/';
		for (size_t i = 1; i < plen; i++)
			if (hchance(r, 2))
				g->path[i] = (char)(0x80 + hbelow(r, 128));
		puts_(g, g->path);
	}
	g->e.path = g->path;
	if (hchance(r, 30)) {
		g->e.query = 1;
		rand_from(r, tmp, hbelow(r, 60), PATHC "?");
		puts_(g, "?");
		puts_(g, tmp);
	}
	puts_(g, v10 ? " HTTP/1.0" : " HTTP/1.1");
	puts_(g, eol(r, lf));

	/* Fields in random order: 0 Host, 1 Connection, 2 If-None-Match,
	 * 3 Range, 4 Content-Length; others between them. */
	if (!v10 || hchance(r, 70))
		order[nord++] = 0;
	else
		g->e.nohost = 1;
	/* Without Host the host is the target's, or none. */
	if (g->e.nohost && !absolute) {
		g->e.host = "";
		g->e.host_long = 0;
	}
	for (int k = 1; k < 5; k++)
		if (hchance(r, 40))
			order[nord++] = k;
	for (int i = nord - 1; i > 0; i--) {
		int j = (int)hbelow(r, (uint32_t)i + 1), x = order[i];

		order[i] = order[j];
		order[j] = x;
	}
	nfields = (int)hbelow(r, 12);
	for (int i = 0, k = 0; i < nfields + nord; i++) {
		bool known = k < nord && (hchance(r, 50) || i >= nfields);

		if (!known) {
			static const char *names[] = {
				"User-Agent",	   "Accept",
				"Accept-Language", "Accept-Encoding",
				"Cookie",	   "Referer",
				"X-Forwarded-For", "DNT",
				"Cache-Control",   "Hosts",
				"Ranges",	   "If-Match",
				"Connections",	   "Content-Type",
			};
			char v[200];

			put_case(r, g, names[hbelow(r, 14)]);
			puts_(g, ":");
			put_ows(r, g);
			rand_from(r, v, hbelow(r, 150),
				  ALNUM " \t\"(),/:;<=>?@[\\]{}*\x80\xfe");
			puts_(g, v);
			put_ows(r, g);
			puts_(g, eol(r, lf));
			continue;
		}
		switch (order[k++]) {
		case 0:
			put_case(r, g, "host:");
			put_ows(r, g);
			if (absolute)
				puts_(g, "elsewhere.example");
			else
				put_case(r, g, g->host);
			if (hchance(r, 30)) {
				snprintf(tmp, sizeof(tmp), ":%u",
					 hbelow(r, 65536));
				puts_(g, tmp);
			}
			put_ows(r, g);
			break;
		case 1: {
			static const char *toks[] = {
				"close", "keep-alive", "Upgrade",
				"TE",	 "foo",	       "keep-alives"
			};
			int nt = 1 + (int)hbelow(r, 3);

			put_case(r, g, "connection:");
			put_ows(r, g);
			for (int j = 0; j < nt; j++) {
				int w = (int)hbelow(r, 6);

				if (j) {
					put_ows(r, g);
					puts_(g, ",");
					put_ows(r, g);
				}
				put_case(r, g, toks[w]);
				close |= w == 0;
				ka |= w == 1;
			}
			put_ows(r, g);
			break;
		}
		case 2:
			put_case(r, g, "if-none-match:");
			put_ows(r, g);
			if (hchance(r, 15)) {
				strcpy(g->inm, "*");
			} else {
				rand_from(r, tmp, 1 + hbelow(r, 40), ALNUM "-");
				snprintf(g->inm, sizeof(g->inm), "%s\"%s\"",
					 hchance(r, 30) ? "W/" : "", tmp);
			}
			puts_(g, g->inm);
			put_ows(r, g);
			g->e.inm = g->inm;
			g->e.star = g->inm[0] == '*';
			break;
		case 3: {
			uint64_t a = hbelow(r, 100000), b = hbelow(r, 100000);

			put_case(r, g, "range:");
			put_ows(r, g);
			put_case(r, g, "bytes=");
			g->e.range = R_ONE;
			switch (hbelow(r, 5)) {
			case 0:
				snprintf(tmp, sizeof(tmp), "%llu-",
					 (unsigned long long)a);
				g->e.rfirst = a;
				g->e.rlast = STCP_RANGE_OPEN;
				break;
			case 1:
				snprintf(tmp, sizeof(tmp), "-%llu",
					 (unsigned long long)b);
				g->e.rlast = b;
				g->e.suffix = 1;
				break;
			case 2:
				snprintf(tmp, sizeof(tmp), "%llu-%llu,%llu-",
					 (unsigned long long)a,
					 (unsigned long long)(a + b),
					 (unsigned long long)b);
				g->e.range = R_BAD;
				break;
			default:
				snprintf(tmp, sizeof(tmp), "%llu-%llu",
					 (unsigned long long)(a < b ? a : b),
					 (unsigned long long)(a < b ? b : a));
				g->e.rfirst = a < b ? a : b;
				g->e.rlast = a < b ? b : a;
				break;
			}
			puts_(g, tmp);
			put_ows(r, g);
			break;
		}
		default:
			put_case(r, g, "content-length:");
			put_ows(r, g);
			puts_(g, "0");
			put_ows(r, g);
			break;
		}
		puts_(g, eol(r, lf));
	}
	g->e.conn = close ? STCP_CONN_CLOSE
		    : ka  ? STCP_CONN_KEEPALIVE
			  : STCP_CONN_DEFAULT;
	puts_(g, eol(r, lf));
	/* Pipelining: another request or junk after this one. */
	if (hchance(r, 10)) {
		size_t before = g->n, x = hbelow(r, 200);

		if (hchance(r, 50)) {
			puts_(g, PIPE2);
		} else {
			rand_from(r, tmp, x, ALNUM "\r\n :");
			puts_(g, tmp);
		}
		g->e.extra = g->n - before;
	}
}

/* A valid request that fits in STCP_HTTP_MAX_REQ bytes; the expected extra
 * is what of the rest was given. */
static void gen_valid_fit(struct hrng *r, struct gen *g)
{
	size_t req_len;

	do {
		gen_valid(r, g);
		req_len = g->n - g->e.extra;
	} while (req_len > STCP_HTTP_MAX_REQ);
	g->e.extra =
		(g->n > STCP_HTTP_MAX_REQ ? STCP_HTTP_MAX_REQ : g->n) - req_len;
}

/* Invariants of any result. Returns the number of violations added. */
static void check_any(struct tcase *t, const uint8_t *p, size_t n,
		      const struct hrun *r)
{
	const struct stcp_http_req *q = &r->req;
	size_t given = n > STCP_HTTP_MAX_REQ ? STCP_HTTP_MAX_REQ : n;
	int st = q->status;

	if (r->err) {
		tc_fail(t, "prog run: %s", strerror(-r->err));
		return;
	}
	EXPECT(t, r->retval == XDP_DROP, "verdict %s", verdict_name(r->retval));
	EXPECT(t, q->cur.done == 1, "parser did not finish");
	EXPECT(t,
	       st == 0 || st == STCP_HTTP_INCOMPLETE || st == 400 ||
		       st == 405 || st == 414 || st == 431 || st == 505,
	       "status %d", st);
	EXPECT(t, q->req_len <= given, "req_len %u > %zu bytes given",
	       q->req_len, given);
	if (st) {
		EXPECT(t, q->keep_alive == 0, "keep_alive on status %d", st);
		EXPECT(t, q->req_len == 0, "req_len %u on status %d",
		       q->req_len, st);
		EXPECT(t, st != 431 || given == STCP_HTTP_MAX_REQ,
		       "431 with %zu bytes", given);
		return;
	}
	EXPECT(t, q->req_len + q->extra == given, "req_len + extra != %zu",
	       given);
	EXPECT(t, q->req_len >= 2 && p[q->req_len - 1] == '\n',
	       "request does not end with LF");
	EXPECT(t, q->method == STCP_HTTP_GET || q->method == STCP_HTTP_HEAD,
	       "method %u", q->method);
	EXPECT(t, q->version == 10 || q->version == 11, "version %u",
	       q->version);
	EXPECT(t,
	       q->path_len >= 1 && q->path_len < STCP_PATH_LEN &&
		       q->path[0] == '/',
	       "path_len %u", q->path_len);
	for (size_t i = 0; i < STCP_PATH_LEN; i++)
		if ((i < q->path_len) != (q->path[i] != 0)) {
			tc_fail(t, "path byte %zu", i);
			break;
		}
	EXPECT(t, q->host_len < STCP_HOST_LEN, "host_len %u", q->host_len);
	for (size_t i = 0; i < STCP_HOST_LEN; i++)
		if ((i < q->host_len) != (q->host[i] != 0) ||
		    (q->host[i] >= 'A' && q->host[i] <= 'Z')) {
			tc_fail(t, "host byte %zu", i);
			break;
		}
	EXPECT(t, q->version == 10 || q->has_host, "1.1 without Host");
	EXPECT(t,
	       q->keep_alive == (q->version == 11
					 ? q->conn != STCP_CONN_CLOSE
					 : q->conn == STCP_CONN_KEEPALIVE),
	       "keep_alive %u with conn %u version %u", q->keep_alive, q->conn,
	       q->version);
	EXPECT(t, !q->range_bad || q->has_range, "range_bad without Range");
	EXPECT(t, !q->inm_star || q->has_inm, "inm_star without INM");
}

/* Damages a valid request in 1..4 places. */
static void mutate(struct hrng *r, struct gen *g)
{
	static const char special[] = " \t\r\n:;,/?#*-=\"\\[]@%\x00\x7f\xff"
				      "0123456789HhCcRrIiTt";
	int k = 1 + (int)hbelow(r, 4);

	for (int i = 0; i < k && g->n; i++) {
		size_t at = hbelow(r, (uint32_t)g->n);
		char c = hchance(r, 70)
				 ? special[hbelow(r, sizeof(special) - 1)]
				 : (char)hrnd(r);

		switch (hbelow(r, 5)) {
		case 0: /* replace */
			g->buf[at] = c;
			break;
		case 1: /* insert */
			if (g->n + 1 < sizeof(g->buf)) {
				memmove(g->buf + at + 1, g->buf + at,
					g->n - at);
				g->buf[at] = c;
				g->n++;
			}
			break;
		case 2: /* delete */
			memmove(g->buf + at, g->buf + at + 1, g->n - at - 1);
			g->n--;
			break;
		case 3: /* truncate */
			g->n = at;
			break;
		default: { /* repeat a chunk (a field line, often) */
			size_t len = 1 + hbelow(r, 40);

			if (at + len > g->n)
				len = g->n - at;
			if (g->n + len < sizeof(g->buf)) {
				memmove(g->buf + at + len, g->buf + at,
					g->n - at);
				g->n += len;
			}
			break;
		}
		}
	}
}

static void gen_random(struct hrng *r, struct gen *g)
{
	static const char alpha[] = "GETHEADPOST /?:\r\n\t-,=HTTP/1.01.1"
				    "hostconnectionrangebytes*\"W";

	memset(g, 0, sizeof(*g));
	g->n = hchance(r, 5) ? STCP_HTTP_MAX_REQ + hbelow(r, 100)
			     : hbelow(r, 300);
	for (size_t i = 0; i < g->n; i++)
		g->buf[i] = hchance(r, 50)
				    ? (char)hrnd(r)
				    : alpha[hbelow(r, sizeof(alpha) - 1)];
}

/* Fills the scratch buffer with bytes that would change the outcome of a
 * parser reading past len: the same bytes followed by line ends, or
 * random bytes. */
static void poison(struct hrng *r, const struct gen *g)
{
	static uint8_t p[MAX_PAYLOAD];
	struct hrun pr;
	size_t n = STCP_HTTP_MAX_REQ;

	if (hchance(r, 50)) {
		memcpy(p, g->buf, g->n < n ? g->n : n);
		for (size_t i = g->n; i < n; i++)
			p[i] = (i & 1) ? '\n' : '\r';
	} else {
		for (size_t i = 0; i < n; i++)
			p[i] = (uint8_t)hrnd(r);
	}
	run_payload(p, n, 1, &pr);
}

static void run_fuzz(uint64_t seed)
{
	static struct gen g;
	char name[160];
	struct tcase t = { .name = name };
	struct hrng r = { .s = seed ^ 0x4854545053ull };
	long n_valid = 0, n_mut = 0, n_rand = 0, by_status[6] = { 0 };
	struct hrun r1, r2;

	snprintf(name, sizeof(name),
		 "http: fuzz %d requests (generated, mutated, random), "
		 "seed 0x%llx",
		 HTTP_FUZZ_COUNT, (unsigned long long)seed);
	for (long i = 0; i < HTTP_FUZZ_COUNT && t.failures < 20; i++) {
		int kind = (int)hbelow(&r, 100);
		int before = t.failures;

		if (kind < 45) {
			gen_valid_fit(&r, &g);
			n_valid++;
		} else if (kind < 85) {
			gen_valid(&r, &g);
			mutate(&r, &g);
			n_mut++;
		} else {
			gen_random(&r, &g);
			n_rand++;
		}
		run_payload(g.buf, g.n, 1, &r1);
		check_any(&t, (const uint8_t *)g.buf, g.n, &r1);
		if (kind < 45)
			check_req(&t, &g.e, g.n, &r1);
		poison(&r, &g);
		run_payload(g.buf, g.n, 1, &r2);
		if (!r1.err && !r2.err &&
		    memcmp(&r1.req, &r2.req, sizeof(r1.req)))
			tc_fail(&t, "second parse differs (status %d vs %d)",
				r1.req.status, r2.req.status);
		/* The request alone parses the same, without the extra. */
		if (!r1.err && r1.req.status == 0 && r1.req.extra) {
			run_payload(g.buf, r1.req.req_len, 1, &r2);
			r2.req.extra = r1.req.extra;
			r2.req.cur.len = r1.req.cur.len;
			if (memcmp(&r1.req, &r2.req, sizeof(r1.req)))
				tc_fail(&t, "the request without its extra "
					    "parses differently");
		}
		if (t.failures != before)
			tc_fail(&t, "  case %ld: \"%s\" (%zu bytes)", i,
				show(g.buf, g.n), g.n);
		switch (r1.req.status) {
		case 0:
			by_status[0]++;
			break;
		case STCP_HTTP_INCOMPLETE:
			by_status[1]++;
			break;
		case 400:
			by_status[2]++;
			break;
		case 405:
		case 505:
			by_status[3]++;
			break;
		default:
			by_status[4]++;
			break;
		}
	}
	printf("# http fuzz: %ld generated, %ld mutated, %ld random; results "
	       "%ld ok, %ld incomplete, %ld 400, %ld 405/505, %ld 414/431\n",
	       n_valid, n_mut, n_rand, by_status[0], by_status[1], by_status[2],
	       by_status[3], by_status[4]);
	tc_report(&t);
}

/* ------------------------------------------------------------------ */

static int http_open(struct tcase *t)
{
	cpu_set_t set;

	hskel = http_parse_bpf__open_and_load();
	if (!hskel) {
		tc_fail(t, "http_parse_bpf__open_and_load: %s",
			strerror(errno));
		return -1;
	}
	hprog_fd = bpf_program__fd(hskel->progs.http_parse);
	hmap_fd = bpf_map__fd(hskel->maps.http_scratch);
	hncpus = libbpf_num_possible_cpus();
	hstride = (sizeof(struct stcp_http_scratch) + 7) & ~(size_t)7;
	if (hncpus <= 0) {
		tc_fail(t, "libbpf_num_possible_cpus: %d", hncpus);
		return -1;
	}
	hvals = calloc((size_t)hncpus, hstride);
	if (!hvals) {
		tc_fail(t, "out of memory");
		return -1;
	}
	/* The test run happens on this CPU: stay on it. */
	hcpu = sched_getcpu();
	CPU_ZERO(&set);
	CPU_SET(hcpu, &set);
	if (hcpu < 0 || hcpu >= hncpus ||
	    sched_setaffinity(0, sizeof(set), &set)) {
		tc_fail(t, "cannot pin to cpu %d: %s", hcpu, strerror(errno));
		return -1;
	}
	EXPECT(t,
	       bpf_map__value_size(hskel->maps.http_scratch) ==
		       sizeof(struct stcp_http_scratch),
	       "scratch value size %u, expected %zu",
	       bpf_map__value_size(hskel->maps.http_scratch),
	       sizeof(struct stcp_http_scratch));
	return t->failures ? -1 : 0;
}

void http_run_all(uint64_t seed)
{
	struct tcase t = { .name = "http: load the parser test program "
				   "(http_parse.bpf.o), verifier accepts it" };
	cpu_set_t saved;
	bool pinned;

	pinned = !sched_getaffinity(0, sizeof(saved), &saved);
	if (http_open(&t) == 0) {
		tc_report(&t);
		run_table();
		run_generated();
		run_cost();
		run_fuzz(seed);
	} else {
		tc_report(&t);
	}
	if (pinned)
		sched_setaffinity(0, sizeof(saved), &saved);
	http_parse_bpf__destroy(hskel);
	hskel = NULL;
	free(hvals);
	hvals = NULL;
}
