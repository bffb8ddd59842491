/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The HTTP/1.x request parser of the fast path (RFC 9110, RFC 9112):
 *
 *   int stcp_http_parse(const __u8 *buf, __u32 len,
 *                       struct stcp_http_req *req);
 *
 * buf is stcp_http_scratch.buf of a per-CPU map value holding a copy of one
 * segment's payload, len its length (clamped to STCP_HTTP_MAX_REQ), req the
 * same value's req. It returns req->status (include/stcp_http.h).
 *
 * How it is built for the verifier and for speed:
 *  - A bpf_loop() callback, http_step(), runs HTTP_STEPS "elements". An
 *    element follows the states in the order of the code, so it usually
 *    covers a whole line: the request-line up to the first field, or the
 *    rest of one field line and the name of the next. Inside it, runs of
 *    plain bytes go by tight loops of at most HTTP_RUN bytes, most of them
 *    8 bytes at a time (SWAR): names (tchar), paths and queries, the value
 *    of a field we do not read (up to its LF); hosts, Connection tokens and
 *    If-None-Match values byte by byte. A run that is cut at HTTP_RUN ends
 *    the element. Every element consumes at least one byte or ends the
 *    parse, so STCP_HTTP_MAX_REQ + 2 calls always suffice.
 *  - All parser state lives in req->cur, i.e. in map memory, and is read
 *    back with HTTP_RD() at the start of an element and after each step,
 *    so the verifier sees unknown scalars there and prunes: the callback is
 *    verified about once per element of HTTP_STEPS instead of once per
 *    combination of states. The loop context on the stack holds only the
 *    two pointers.
 *  - Offsets are masked with STCP_HTTP_MAX_REQ - 1 and the buffer has
 *    STCP_HTTP_PAD bytes of slack, so word loads need no further checks;
 *    nothing past len is ever used (the scratch holds older packets there),
 *    which the tests check by parsing every input twice around a run that
 *    leaves other bytes behind it.
 *  - Field names: the first byte, lowercased, selects at most two of the
 *    six names we read (host, connection, if-none-match, range,
 *    content-length, transfer-encoding); each is one to three masked 8-byte
 *    compares, case folded by OR-ing 0x20 into letter positions only.
 *
 * Errors: the first error met in byte order decides the status and ends the
 * parse (an unknown method is 405 at once; the rest of the request is not
 * read). A request that is well formed so far but ends early is
 * STCP_HTTP_INCOMPLETE, or 431 (414 inside the request-target) when the
 * bytes given reached STCP_HTTP_MAX_REQ.
 */
#ifndef STCP_BPF_HTTP_H
#define STCP_BPF_HTTP_H

#include "stcp_http.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "bpf/http.h compares little-endian words"
#endif

enum http_state {
	HS_LEAD = 0, /* before the request-line: empty lines allowed */
	HS_METHOD,
	HS_TARGET, /* first byte of the request-target */
	HS_PATH,
	HS_QUERY,
	HS_AUTH, /* authority of an absolute-form target */
	HS_VERSION,
	HS_EOL,	 /* the request-line's line end */
	HS_LINE, /* start of a field line, or the final empty line */
	HS_NAME, /* a field name we do not read */
	HS_SKIP, /* the rest of a line we do not read */
	/* Field values we read; a line end finishes them. */
	HS_HOST,
	HS_CONN,
	HS_INM,
	HS_RANGE,
	HS_CLEN,
};

/* Host sub-states (cur.sub), for the Host field and an absolute-form
 * authority. */
enum http_host_sub {
	HO_NAME = 0, /* reg-name or IPv4address */
	HO_V6,	     /* inside [...] */
	HO_V6_END,   /* after ']' */
	HO_PORT,
	HO_OWS,	  /* Host field: leading blanks */
	HO_TRAIL, /* Host field: trailing blanks */
};

/* Range sub-states. */
enum http_range_sub {
	RS_OWS = 0,
	RS_UNIT,
	RS_FIRST,
	RS_LAST,
	RS_SUFFIX,
	RS_AFTER, /* after the one range-spec: blanks, commas */
	RS_LIST,  /* after a comma: only blanks and empty elements */
};

#define HTTP_MASK (STCP_HTTP_MAX_REQ - 1)

/* Bytes of a little-endian word, and the same for case folding: 0x20 in
 * the positions of lowercase letters. KM marks the bytes a pattern uses
 * (patterns never contain NUL). */
#define HTTP_B8(a, b, c, d, e, f, g, h)                                        \
	((__u64)(a) | (__u64)(b) << 8 | (__u64)(c) << 16 | (__u64)(d) << 24 |  \
	 (__u64)(e) << 32 | (__u64)(f) << 40 | (__u64)(g) << 48 |              \
	 (__u64)(h) << 56)
#define HTTP_LM(ch) (((ch) >= 'a' && (ch) <= 'z') ? 0x20 : 0)
#define HTTP_KM(ch) ((ch) ? 0xff : 0)
/* w holds the 8 bytes at some offset: do they spell the pattern, letters in
 * any case? */
#define HTTP_WEQ(w, a, b, c, d, e, f, g, h)                                    \
	((((w) | HTTP_B8(HTTP_LM(a), HTTP_LM(b), HTTP_LM(c), HTTP_LM(d),       \
			 HTTP_LM(e), HTTP_LM(f), HTTP_LM(g), HTTP_LM(h))) &    \
	  HTTP_B8(HTTP_KM(a), HTTP_KM(b), HTTP_KM(c), HTTP_KM(d), HTTP_KM(e),  \
		  HTTP_KM(f), HTTP_KM(g), HTTP_KM(h))) ==                      \
	 HTTP_B8(a, b, c, d, e, f, g, h))

/* Tokens accumulated as acc = acc << 8 | byte: the last bytes, first one
 * highest. */
#define HTTP_BE2(a, b) (((__u64)(a) << 8) | (__u64)(b))
#define HTTP_BE5(a, b, c, d, e)                                                \
	(HTTP_BE2(a, b) << 24 | HTTP_BE2(c, d) << 8 | (e))
#define HTTP_BE8(a, b, c, d, e, f, g, h)                                       \
	(HTTP_BE2(a, b) << 48 | HTTP_BE2(c, d) << 32 | HTTP_BE2(e, f) << 16 |  \
	 HTTP_BE2(g, h))

/* Character classes, as 128-bit sets (bit c of lo for c < 64, of hi for
 * 64 <= c < 128). tchar (RFC 9110 5.6.2); reg-name of a host (unreserved,
 * pct-encoded, sub-delims; RFC 3986 3.2.2); the same plus ':' inside an
 * IP-literal. */
#define HTTP_TCHAR_LO 0x03ff6cfa00000000ULL
#define HTTP_TCHAR_HI 0x57ffffffc7fffffeULL
#define HTTP_REG_LO   0x2bff7ff200000000ULL
#define HTTP_REG_HI   0x47fffffe87fffffeULL
#define HTTP_V6_LO    0x2fff7ff200000000ULL
#define HTTP_V6_HI    HTTP_REG_HI

/*
 * A fresh read of parser state from map memory. The verifier knows nothing
 * of map memory, so a value read this way is an unknown scalar: states that
 * differ only in such values meet again, and the verifier can prune. Values
 * kept in registers instead (the compiler forwards stores to loads) would
 * carry their exact ranges from one state of the parse into the next and
 * multiply the paths it has to walk.
 */
#define HTTP_RD(x) (*(volatile __typeof__(x) *)&(x))

struct http_walk {
	const __u8 *buf;
	struct stcp_http_req *req;
};

/* Is byte c in the set (lo, hi)? Without branches: the lanes call it on
 * every byte, and a branch on c < 64 would mispredict at each '-'. */
static __always_inline __u32 http_in(__u32 c, __u64 lo, __u64 hi)
{
	__u64 w = lo ^ ((lo ^ hi) & -(__u64)((c >> 6) & 1));

	return ((w >> (c & 63)) & 1) & ((c >> 7) ^ 1);
}

static __always_inline int http_blank(__u32 c)
{
	return c == ' ' || c == '\t';
}

static __always_inline int http_digit(__u32 c)
{
	return c - '0' < 10;
}

static __always_inline __u32 http_lower(__u32 c)
{
	return c - 'A' < 26 ? c | 0x20 : c;
}

/* The barrier keeps the mask, which the verifier needs and the compiler
 * could otherwise drop. */
static __always_inline __u32 http_byte(const __u8 *buf, __u32 i)
{
	asm volatile("" : "+r"(i));
	return buf[i & HTTP_MASK];
}

/* The 8 bytes at i + k, k < STCP_HTTP_PAD - 7. */
static __always_inline __u64 http_word(const __u8 *buf, __u32 i, __u32 k)
{
	asm volatile("" : "+r"(i));
	i &= HTTP_MASK;
	return *(const __u64 *)(buf + i + k);
}

/* Index of the lowest byte with bit 7 set in t (t != 0). */
static __always_inline __u32 http_first_byte(__u64 t)
{
	__u32 k = 0;

	if (!(t & 0xffffffffULL)) {
		k = 4;
		t >>= 32;
	}
	if (!(t & 0xffff)) {
		k += 2;
		t >>= 16;
	}
	if (!(t & 0xff))
		k += 1;
	return k;
}

/*
 * SWAR byte classes: bit 7 of each byte of the result says whether that
 * byte of x is >= a (HTTP_GE) or <= b (HTTP_LE). Exact lane by lane when
 * every byte of x is below 0x80: the sums then never carry into the next
 * byte.
 */
#define HTTP_ONES	 0x0101010101010101ULL
#define HTTP_HIGH	 0x8080808080808080ULL
#define HTTP_GE(x, a)	 ((x) + HTTP_ONES * (0x80 - (a)))
#define HTTP_LE(x, b)	 (~((x) + HTTP_ONES * (0x7f - (b))))
#define HTTP_IN(x, a, b) (HTTP_GE(x, a) & HTTP_LE(x, b))

static __always_inline long http_end(struct stcp_http_req *req, __u32 status)
{
	req->status = status;
	req->keep_alive = 0;
	req->cur.done = 1;
	return 1;
}

/* The bytes given ended in the middle of the request. */
static __always_inline long http_eod(struct stcp_http_req *req, __u32 len,
				     __u32 state)
{
	if (len < STCP_HTTP_MAX_REQ)
		return http_end(req, STCP_HTTP_INCOMPLETE);
	if (state == HS_PATH || state == HS_QUERY || state == HS_AUTH)
		return http_end(req, 414);
	return http_end(req, 431);
}

/*
 * A line end at pos, where c (CR or LF) is: its length (1 for LF, 2 for
 * CRLF), 0 when a CR is the last byte given, -1 for a CR not followed by LF
 * (RFC 9112 2.2: a bare LF is accepted as a line end, a bare CR is not).
 */
static __always_inline int http_eol(const __u8 *buf, __u32 pos, __u32 len,
				    __u32 c)
{
	if (c == '\n')
		return 1;
	if (pos + 1 >= len)
		return 0;
	return http_byte(buf, pos + 1) == '\n' ? 2 : -1;
}

/* Appends one byte to host[], lowercased. */
static __always_inline void http_host_put(struct stcp_http_req *req, __u32 c)
{
	__u32 hl = req->host_len;

	if (hl < STCP_HOST_LEN - 1) {
		req->host[hl & (STCP_HOST_LEN - 1)] = http_lower(c);
		req->host_len = hl + 1;
	} else {
		req->host_long = 1;
	}
}

/*
 * One byte of uri-host [ ":" port ] (RFC 9110 7.2, RFC 3986 3.2.2): 0 when
 * it belongs to the host (stored when store is set), 1 when it ends the
 * host (not consumed), -1 when it cannot be part of one. cur.n counts the
 * host's bytes.
 */
static __always_inline int http_host_byte(struct stcp_http_req *req, __u32 c,
					  int store)
{
	__u32 sub = req->cur.sub;

	if (sub == HO_NAME) {
		if (c == '[' && req->cur.n == 0) {
			req->cur.sub = HO_V6;
		} else if (c == ':') {
			req->cur.sub = HO_PORT;
			return 0;
		} else if (!http_in(c, HTTP_REG_LO, HTTP_REG_HI)) {
			return 1;
		}
	} else if (sub == HO_V6) {
		if (c == ']')
			req->cur.sub = HO_V6_END;
		else if (!http_in(c, HTTP_V6_LO, HTTP_V6_HI))
			return -1;
	} else if (sub == HO_V6_END) {
		if (c != ':')
			return 1;
		req->cur.sub = HO_PORT;
		return 0;
	} else {
		return http_digit(c) ? 0 : 1;
	}
	req->cur.n++;
	if (store)
		http_host_put(req, c);
	return 0;
}

/* Sets path[] to "/" (absolute-form without a path). */
static __always_inline void http_root_path(struct stcp_http_req *req)
{
	req->path[0] = '/';
	req->path_len = 1;
}

/*
 * Runs: the bytes of one class from pos on, at most HTTP_RUN of them and
 * none past len, consumed by a tight loop (the verifier walks it HTTP_RUN
 * times). The byte that ends a run is then handled on its own.
 */
#define HTTP_RUN 32
/* Words a skip looks at per element. */
#define HTTP_SKIP_WORDS 8

/* Bit 7 set in each byte of w that ends a path (path) or a query:
 * controls, SP, DEL, '#', and '?' for a path. Non-ASCII bytes do not. */
static __always_inline __u64 http_tgt_stop(__u64 w, int path)
{
	__u64 x = w & ~HTTP_HIGH;
	__u64 f = HTTP_LE(x, 0x20) | HTTP_GE(x, 0x7f) | HTTP_IN(x, 0x23, 0x23);

	if (path)
		f |= HTTP_IN(x, 0x3f, 0x3f);
	return f & ~w & HTTP_HIGH;
}

/*
 * Bytes of a path (appended to path[], at most 191 in all) or of a query,
 * 8 at a time, not past len. Each word is stored whole at path + path_len
 * with the bytes that do not belong to the path zeroed, so path[] stays
 * NUL-padded; near the end of path[] the store reaches into req->spill.
 */
static __always_inline __u32 http_run_target(const __u8 *buf,
					     struct stcp_http_req *req,
					     __u32 pos, __u32 len, int path)
{
	__u32 pl = req->path_len, i, k = 0;
	__u64 w, f, at;

#pragma clang loop unroll(disable)
	for (i = 0; i < HTTP_RUN / 8; i++) {
		w = http_word(buf, pos, i * 8);
		f = http_tgt_stop(w, path);
		k = f ? http_first_byte(f) : 8;
		if (pos + i * 8 + k > len)
			k = len - pos - i * 8;
		if (path) {
			/* The check on the register the store uses, for the
			 * verifier. */
			at = pl;
			asm volatile("" : "+r"(at));
			if (at >= STCP_PATH_LEN - 1) {
				k = 0;
				break;
			}
			if (k > STCP_PATH_LEN - 1 - at)
				k = STCP_PATH_LEN - 1 - at;
			if (k < 8)
				w &= (1ULL << (k * 8)) - 1;
			*(__u64 *)(req->path + at) = w;
			pl = at + k;
		}
		if (k < 8)
			break;
	}
	if (path)
		req->path_len = pl;
	return i < HTTP_RUN / 8 ? i * 8 + k : HTTP_RUN;
}

/* reg-name bytes of a host, stored lowercased when store, then ":port". */
static __always_inline __u32 http_run_host(const __u8 *buf,
					   struct stcp_http_req *req, __u32 pos,
					   __u32 len, int store)
{
	__u32 sub = req->cur.sub, n = req->cur.n, i, c;

	if (sub != HO_NAME && sub != HO_PORT)
		return 0;
#pragma clang loop unroll(disable)
	for (i = 0; i < HTTP_RUN; i++) {
		if (pos + i >= len)
			break;
		c = http_byte(buf, pos + i);
		if (sub == HO_PORT) {
			if (!http_digit(c))
				break;
		} else if (http_in(c, HTTP_REG_LO, HTTP_REG_HI)) {
			n++;
			if (store)
				http_host_put(req, c);
		} else if (c == ':') {
			sub = HO_PORT;
		} else {
			break;
		}
	}
	req->cur.sub = sub;
	req->cur.n = n;
	return i;
}

/* Bit 7 set in each byte of w that is not a tchar: controls, SP, DEL,
 * non-ASCII and the delimiters DQUOTE and "(),/:;<=>?@[\]{}". */
static __always_inline __u64 http_not_tchar(__u64 w)
{
	__u64 x = w & ~HTTP_HIGH;

	return (w | HTTP_LE(x, 0x20) | HTTP_GE(x, 0x7f) |
		HTTP_IN(x, 0x22, 0x22) | HTTP_IN(x, 0x28, 0x29) |
		HTTP_IN(x, 0x2c, 0x2c) | HTTP_IN(x, 0x2f, 0x2f) |
		HTTP_IN(x, 0x3a, 0x40) | HTTP_IN(x, 0x5b, 0x5d) |
		HTTP_IN(x, 0x7b, 0x7b) | HTTP_IN(x, 0x7d, 0x7d)) &
	       HTTP_HIGH;
}

/* tchar bytes (a field name), 8 at a time, not past len. */
static __always_inline __u32 http_run_tchar(const __u8 *buf, __u32 pos,
					    __u32 len)
{
	__u32 i, k = 0;
	__u64 f;

#pragma clang loop unroll(disable)
	for (i = 0; i < HTTP_RUN / 8; i++) {
		f = http_not_tchar(http_word(buf, pos, k));
		if (f) {
			k += http_first_byte(f);
			break;
		}
		k += 8;
	}
	return pos + k > len ? len - pos : k;
}

/* Connection: the bytes of one token, lowercased into cur.acc. */
static __always_inline __u32 http_run_conn(const __u8 *buf,
					   struct stcp_http_req *req, __u32 pos,
					   __u32 len)
{
	__u64 acc = req->cur.acc, hi = req->cur.aux;
	__u32 i, c;

#pragma clang loop unroll(disable)
	for (i = 0; i < HTTP_RUN; i++) {
		if (pos + i >= len)
			break;
		c = http_byte(buf, pos + i);
		if (!http_in(c, HTTP_TCHAR_LO, HTTP_TCHAR_HI))
			break;
		hi = (hi << 8 | acc >> 56) & 0xffff;
		acc = acc << 8 | http_lower(c);
	}
	req->cur.acc = acc;
	req->cur.aux = hi;
	req->cur.n += i;
	return i;
}

/* If-None-Match bytes other than blanks and controls, hashed. */
static __always_inline __u32 http_run_inm(const __u8 *buf,
					  struct stcp_http_req *req, __u32 pos,
					  __u32 len)
{
	__u64 h = req->cur.h;
	__u32 i, c, n = req->cur.n;

#pragma clang loop unroll(disable)
	for (i = 0; i < HTTP_RUN; i++) {
		if (pos + i >= len)
			break;
		c = http_byte(buf, pos + i);
		if (c <= 0x20 || c == 0x7f)
			break;
		if (n + i == 0)
			req->cur.aux = c;
		h = stcp_http_hash_step(h, c);
	}
	if (i) {
		req->cur.h = h;
		req->if_none_match = h;
		req->cur.n = n + i;
		req->cur.tlen = n + i;
	}
	return i;
}

/* The next element starts at pos in state. */
static __always_inline long http_yield(struct stcp_http_req *req, __u32 pos,
				       __u32 state)
{
	req->cur.pos = pos;
	req->cur.state = state;
	return 0;
}

/* A method other than the two fast-pathed ones, one byte per element. */
static __always_inline long http_method(struct stcp_http_req *req, __u32 pos,
					__u32 c)
{
	__u64 acc = req->cur.acc;
	__u32 n = req->cur.n;

	if (http_in(c, HTTP_TCHAR_LO, HTTP_TCHAR_HI)) {
		req->cur.acc = acc << 8 | c;
		req->cur.n = n + 1;
		return http_yield(req, pos + 1, HS_METHOD);
	}
	if (c != ' ' || n == 0)
		return http_end(req, 400);
	/* Methods are case-sensitive (RFC 9110 9.1). */
	if (n == 3 && acc == (HTTP_BE2('G', 'E') << 8 | 'T'))
		req->method = STCP_HTTP_GET;
	else if (n == 4 &&
		 acc == (HTTP_BE2('H', 'E') << 16 | HTTP_BE2('A', 'D')))
		req->method = STCP_HTTP_HEAD;
	else
		return http_end(req, 405);
	return http_yield(req, pos + 1, HS_TARGET);
}

/* The blank line: the request is complete. */
static __always_inline long http_done(struct stcp_http_req *req, __u32 pos,
				      __u32 len)
{
	/* RFC 9112 3.2: a 1.1 request without Host is a 400. */
	if (req->version == 11 && !req->has_host)
		return http_end(req, 400);
	if (req->cur.conn_close)
		req->conn = STCP_CONN_CLOSE;
	else if (req->cur.conn_ka)
		req->conn = STCP_CONN_KEEPALIVE;
	if (req->version == 11)
		req->keep_alive = !req->cur.conn_close;
	else
		req->keep_alive = req->conn == STCP_CONN_KEEPALIVE;
	if (req->host_long) {
		__builtin_memset(req->host, 0, STCP_HOST_LEN);
		req->host_len = 0;
	}
	if (req->range_bad) {
		req->range_first = 0;
		req->range_last = 0;
		req->range_suffix = 0;
	}
	req->req_len = pos;
	req->extra = len - pos;
	req->status = STCP_HTTP_OK;
	req->cur.done = 1;
	return 1;
}

/*
 * Start of a field line at pos (c is its first byte, neither CR nor LF):
 * a known name with its colon. Returns the state for its value (HS_SKIP
 * for a second Range) with *adv the bytes of "name:", -1 for any other
 * name, -2 when the parse ended (Transfer-Encoding, a second Host).
 */
static __always_inline int http_field(const __u8 *buf,
				      struct stcp_http_req *req, __u32 pos,
				      __u32 len, __u32 c, __u32 *adv)
{
	__u32 lc = c | 0x20, state, n;
	__u64 w0, w1, w2;

	w0 = http_word(buf, pos, 0);
	if (lc == 'h') {
		if (!HTTP_WEQ(w0, 'h', 'o', 's', 't', ':', 0, 0, 0))
			return -1;
		state = HS_HOST;
		n = 5;
	} else if (lc == 'r') {
		if (!HTTP_WEQ(w0, 'r', 'a', 'n', 'g', 'e', ':', 0, 0))
			return -1;
		state = HS_RANGE;
		n = 6;
	} else if (lc == 'c') {
		w1 = http_word(buf, pos, 8);
		if (HTTP_WEQ(w0, 'c', 'o', 'n', 'n', 'e', 'c', 't', 'i') &&
		    HTTP_WEQ(w1, 'o', 'n', ':', 0, 0, 0, 0, 0)) {
			state = HS_CONN;
			n = 11;
		} else if (HTTP_WEQ(w0, 'c', 'o', 'n', 't', 'e', 'n', 't',
				    '-') &&
			   HTTP_WEQ(w1, 'l', 'e', 'n', 'g', 't', 'h', ':', 0)) {
			state = HS_CLEN;
			n = 15;
		} else {
			return -1;
		}
	} else if (lc == 'i') {
		w1 = http_word(buf, pos, 8);
		if (!HTTP_WEQ(w0, 'i', 'f', '-', 'n', 'o', 'n', 'e', '-') ||
		    !HTTP_WEQ(w1, 'm', 'a', 't', 'c', 'h', ':', 0, 0))
			return -1;
		state = HS_INM;
		n = 14;
	} else if (lc == 't') {
		w1 = http_word(buf, pos, 8);
		w2 = http_word(buf, pos, 16);
		if (!HTTP_WEQ(w0, 't', 'r', 'a', 'n', 's', 'f', 'e', 'r') ||
		    !HTTP_WEQ(w1, '-', 'e', 'n', 'c', 'o', 'd', 'i', 'n') ||
		    !HTTP_WEQ(w2, 'g', ':', 0, 0, 0, 0, 0, 0))
			return -1;
		state = HS_SKIP;
		n = 18;
	} else {
		return -1;
	}
	/* The bytes compared must all have been given; nothing is changed
	 * before this point. */
	if (pos + n > len)
		return -1;
	*adv = n;
	req->cur.acc = 0;
	req->cur.aux = 0;
	req->cur.n = 0;
	if (state == HS_HOST) {
		/* RFC 9110 7.2 with RFC 9112 3.2: exactly one Host. */
		if (req->has_host) {
			http_end(req, 400);
			return -2;
		}
		req->has_host = 1;
		req->cur.sub = HO_OWS;
	} else if (state == HS_RANGE) {
		if (req->has_range) {
			/* Two Range fields: not a single range. */
			req->range_bad = 1;
			state = HS_SKIP;
		}
		req->has_range = 1;
		req->cur.sub = RS_OWS;
	} else if (state == HS_INM) {
		/* Several fields are one list: hash as if joined by ", ". */
		if (req->has_inm)
			req->cur.h = stcp_http_hash_step(
				stcp_http_hash_step(req->if_none_match, ','),
				' ');
		else
			req->cur.h = STCP_HTTP_HASH_INIT;
		req->cur.tlen = 0;
	} else if (n == 18) {
		/* No body is read: Transfer-Encoding is refused outright. */
		http_end(req, 400);
		return -2;
	}
	return state;
}

/* Connection: one token of the list ended. */
static __always_inline void http_conn_token(struct stcp_http_req *req)
{
	__u64 acc = req->cur.acc;
	__u32 n = req->cur.n;

	if (n == 5 && acc == HTTP_BE5('c', 'l', 'o', 's', 'e'))
		req->cur.conn_close = 1;
	else if (n == 10 &&
		 acc == HTTP_BE8('e', 'p', '-', 'a', 'l', 'i', 'v', 'e') &&
		 req->cur.aux == HTTP_BE2('k', 'e'))
		req->cur.conn_ka = 1;
	req->cur.acc = 0;
	req->cur.aux = 0;
	req->cur.n = 0;
}

/* Range: the one range-spec ended; 0 or -1 when it is not valid. */
static __always_inline int http_range_spec(struct stcp_http_req *req, __u32 sub)
{
	__u64 acc = req->cur.acc;

	if (sub == RS_SUFFIX) {
		if (req->cur.n == 0)
			return -1;
		req->range_suffix = 1;
		req->range_first = 0;
		req->range_last = acc;
		return 0;
	}
	if (req->cur.n == 0) {
		req->range_last = STCP_RANGE_OPEN;
		return 0;
	}
	/* RFC 9110 14.1.1: last-pos < first-pos is invalid. */
	if (acc < req->range_first)
		return -1;
	req->range_last = acc;
	return 0;
}

/* One byte of a Range value (RFC 9110 14.1.2, 14.2): 0, or -1 when the
 * field is not one bytes range. */
static __always_inline int http_range_byte(struct stcp_http_req *req, __u32 c)
{
	__u32 sub = req->cur.sub;

	if (sub == RS_OWS) {
		if (http_blank(c))
			return 0;
		sub = RS_UNIT;
		req->cur.sub = sub;
	}
	if (sub == RS_UNIT) {
		if (c == '=') {
			/* Range units are case-insensitive (14.1). */
			if (req->cur.n != 5 ||
			    req->cur.acc != HTTP_BE5('b', 'y', 't', 'e', 's'))
				return -1;
			req->cur.sub = RS_FIRST;
			req->cur.acc = 0;
			req->cur.n = 0;
			return 0;
		}
		if (!http_in(c, HTTP_TCHAR_LO, HTTP_TCHAR_HI))
			return -1;
		req->cur.acc = req->cur.acc << 8 | http_lower(c);
		req->cur.n++;
		return 0;
	}
	if (sub == RS_FIRST || sub == RS_LAST || sub == RS_SUFFIX) {
		if (http_digit(c)) {
			/* 19 digits always fit in 64 bits. */
			if (req->cur.n >= 19)
				return -1;
			req->cur.acc = req->cur.acc * 10 + (c - '0');
			req->cur.n++;
			return 0;
		}
		if (sub == RS_FIRST) {
			if (http_blank(c) && req->cur.n == 0)
				return 0;
			if (c != '-')
				return -1;
			if (req->cur.n == 0) {
				req->cur.sub = RS_SUFFIX;
			} else {
				req->range_first = req->cur.acc;
				req->cur.sub = RS_LAST;
			}
			req->cur.acc = 0;
			req->cur.n = 0;
			return 0;
		}
		if (!http_blank(c) && c != ',')
			return -1;
		if (http_range_spec(req, sub))
			return -1;
		req->cur.sub = c == ',' ? RS_LIST : RS_AFTER;
		return 0;
	}
	if (http_blank(c))
		return 0;
	if (c == ',') {
		req->cur.sub = RS_LIST;
		return 0;
	}
	/* Anything after the first range-spec (but blanks and empty list
	 * elements, which RFC 9110 5.6.1 says to ignore) is a second one. */
	return -1;
}

/* A field value we read ended at a line end: 0, or an error status. */
static __always_inline __u32 http_value_end(struct stcp_http_req *req,
					    __u32 state)
{
	__u32 sub = req->cur.sub;

	if (state == HS_HOST) {
		if (sub == HO_V6)
			return 400;
	} else if (state == HS_CONN) {
		http_conn_token(req);
	} else if (state == HS_INM) {
		if (req->cur.tlen) {
			req->inm_star = !req->has_inm && req->cur.tlen == 1 &&
					req->cur.aux == '*';
			req->has_inm = 1;
		}
	} else if (state == HS_RANGE) {
		if (sub == RS_OWS || sub == RS_UNIT || sub == RS_FIRST ||
		    ((sub == RS_LAST || sub == RS_SUFFIX) &&
		     http_range_spec(req, sub)))
			req->range_bad = 1;
	} else {
		/* Content-Length: 1#DIGIT, each element 0 (RFC 9110 8.6). */
		if (req->cur.n == 0)
			return 400;
	}
	return 0;
}

/* One byte (not CR or LF) of a field value we read. */
static __always_inline long http_value(struct stcp_http_req *req, __u32 pos,
				       __u32 state, __u32 c)
{
	__u32 n;
	int r;

	if (state == HS_HOST) {
		__u32 sub = req->cur.sub;

		if (sub == HO_OWS) {
			if (http_blank(c))
				goto next;
			req->cur.sub = HO_NAME;
		} else if (sub == HO_TRAIL) {
			if (http_blank(c))
				goto next;
			return http_end(req, 400);
		}
		/* With an absolute-form target its host is used and Host is
		 * only checked (RFC 9112 3.2.2). */
		r = http_host_byte(req, c, !req->absolute);
		if (r == 0)
			goto next;
		if (r < 0 || !http_blank(c))
			return http_end(req, 400);
		req->cur.sub = HO_TRAIL;
		goto next;
	}
	if (state == HS_CONN) {
		if (c != ',' && !http_blank(c))
			return http_end(req, 400);
		http_conn_token(req);
		goto next;
	}
	if (state == HS_INM) {
		/* The value as sent, without the blanks around it; the run
		 * took everything else. */
		n = req->cur.n;
		if (!http_blank(c))
			return http_end(req, 400);
		if (n) {
			req->cur.h = stcp_http_hash_step(req->cur.h, c);
			req->cur.n = n + 1;
		}
		goto next;
	}
	if (state == HS_RANGE) {
		if (http_range_byte(req, c)) {
			req->range_bad = 1;
			state = HS_SKIP;
		}
		goto next;
	}
	/* HS_CLEN: a body is not supported, so only zeros are accepted. */
	if (http_blank(c))
		goto next;
	if (c == ',') {
		if (req->cur.n == 0)
			return http_end(req, 400);
		req->cur.n = 0;
		goto next;
	}
	if (c != '0')
		return http_end(req, 400);
	req->cur.n++;
next:
	return http_yield(req, pos + 1, state);
}

/* Moves on to byte p in state s within the element; the bytes given may
 * end there. */
#define HTTP_GO(p, s)                                                          \
	do {                                                                   \
		req->cur.pos = (p);                                            \
		pos = HTTP_RD(req->cur.pos);                                   \
		state = (s);                                                   \
		if (pos >= len)                                                \
			return http_eod(req, len, state);                      \
		c = http_byte(buf, pos);                                       \
	} while (0)

/*
 * One element: in the common case a whole line (the request-line, or a
 * field line up to the next line's start), since the states follow each
 * other in the order of the code; a run of HTTP_RUN bytes, or a byte of
 * the rarer states, ends an element early. 1 ends the parse.
 */
static __always_inline long http_one(const __u8 *buf, struct stcp_http_req *req)
{
	__u32 pos = HTTP_RD(req->cur.pos), len = HTTP_RD(req->cur.len);
	__u32 state = HTTP_RD(req->cur.state);
	__u32 c, k, n;
	__u64 w;
	int r;

	if (pos >= len)
		return http_eod(req, len, state);
	c = http_byte(buf, pos);

	/* --- the request-line --- */
	if (state == HS_LEAD) {
		/* RFC 9112 2.2: empty lines before the request-line. */
		if (c == '\r' || c == '\n') {
			r = http_eol(buf, pos, len, c);
			if (r == 0)
				return http_eod(req, len, state);
			if (r < 0)
				return http_end(req, 400);
			return http_yield(req, pos + r, HS_LEAD);
		}
		state = HS_METHOD;
		if (pos + 5 <= len) {
			w = http_word(buf, pos, 0);
			if ((w & 0xffffffffULL) ==
			    HTTP_B8('G', 'E', 'T', ' ', 0, 0, 0, 0)) {
				req->method = STCP_HTTP_GET;
				HTTP_GO(pos + 4, HS_TARGET);
			} else if ((w & 0xffffffffffULL) ==
				   HTTP_B8('H', 'E', 'A', 'D', ' ', 0, 0, 0)) {
				req->method = STCP_HTTP_HEAD;
				HTTP_GO(pos + 5, HS_TARGET);
			}
		}
	}
	if (state == HS_METHOD)
		return http_method(req, pos, c);
	if (state == HS_TARGET) {
		if (c == '/') {
			http_root_path(req);
			HTTP_GO(pos + 1, HS_PATH);
		} else {
			/* absolute-form (RFC 9112 3.2.2); asterisk-form is
			 * for OPTIONS only, authority-form for CONNECT. */
			if ((c | 0x20) != 'h')
				return http_end(req, 400);
			if (pos + 8 > len)
				return http_eod(req, len, HS_AUTH);
			w = http_word(buf, pos, 0);
			if (HTTP_WEQ(w, 'h', 't', 't', 'p', ':', '/', '/', 0))
				k = 7;
			else if (HTTP_WEQ(w, 'h', 't', 't', 'p', 's', ':', '/',
					  '/'))
				k = 8;
			else
				return http_end(req, 400);
			req->absolute = 1;
			req->cur.sub = HO_NAME;
			req->cur.n = 0;
			HTTP_GO(pos + k, HS_AUTH);
		}
	}
	if (state == HS_AUTH) {
		k = http_run_host(buf, req, pos, len, 1);
		if (k == HTTP_RUN)
			return http_yield(req, pos + k, state);
		if (k)
			HTTP_GO(pos + k, state);
		r = http_host_byte(req, c, 1);
		if (r == 0)
			return http_yield(req, pos + 1, state);
		/* An http URI needs a host (RFC 9110 4.2.1); userinfo ("@")
		 * is refused (4.2.4). */
		if (r < 0 || req->cur.n == 0)
			return http_end(req, 400);
		http_root_path(req);
		if (c == '/') {
			HTTP_GO(pos + 1, HS_PATH);
		} else if (c == '?') {
			req->has_query = 1;
			HTTP_GO(pos + 1, HS_QUERY);
		} else if (c == ' ') {
			HTTP_GO(pos + 1, HS_VERSION);
		} else {
			return http_end(req, 400);
		}
	}
	if (state == HS_PATH || state == HS_QUERY) {
		k = http_run_target(buf, req, pos, len, state == HS_PATH);
		if (k == HTTP_RUN)
			return http_yield(req, pos + k, state);
		if (k)
			HTTP_GO(pos + k, state);
		if (state == HS_PATH && c == '?') {
			/* The query is not part of the path. */
			req->has_query = 1;
			HTTP_GO(pos + 1, HS_QUERY);
			k = http_run_target(buf, req, pos, len, 0);
			if (k == HTTP_RUN)
				return http_yield(req, pos + k, state);
			if (k)
				HTTP_GO(pos + k, state);
		}
		if (c != ' ') {
			if (c < 0x21 || c == 0x7f || c == '#')
				return http_end(req, 400);
			/* A path byte that path[] has no room for. */
			return http_end(req, 414);
		}
		HTTP_GO(pos + 1, HS_VERSION);
	}
	if (state == HS_VERSION) {
		/* HTTP-version = "HTTP/" DIGIT "." DIGIT, then the line end */
		if (pos + 8 > len)
			return http_eod(req, len, state);
		w = http_word(buf, pos, 0);
		if ((w & 0xffffffffffULL) !=
		    HTTP_B8('H', 'T', 'T', 'P', '/', 0, 0, 0))
			return http_end(req, 400);
		k = (w >> 40) & 0xff;
		if (!http_digit(k) || ((w >> 48) & 0xff) != '.' ||
		    !http_digit(w >> 56))
			return http_end(req, 400);
		if (k != '1')
			return http_end(req, 505);
		/* A higher 1.x minor is read as 1.1 (RFC 9110 2.5). */
		req->version = (w >> 56) == '0' ? 10 : 11;
		HTTP_GO(pos + 8, HS_EOL);
		if (c != '\r' && c != '\n')
			return http_end(req, 400);
		r = http_eol(buf, pos, len, c);
		if (r == 0)
			return http_eod(req, len, state);
		if (r < 0)
			return http_end(req, 400);
		HTTP_GO(pos + r, HS_LINE);
	}

	/* --- the field lines --- */
	if (state == HS_SKIP) {
		/* Find the LF, 8 bytes at a time; CR and everything else
		 * before it are not looked at. */
		__u64 t = 0;
		__u32 i;

#pragma clang loop unroll(disable)
		for (i = 0; i < HTTP_SKIP_WORDS; i++) {
			__u64 x =
				http_word(buf, pos, 0) ^ 0x0a0a0a0a0a0a0a0aULL;

			t = (x - 0x0101010101010101ULL) & ~x &
			    0x8080808080808080ULL;
			if (t)
				break;
			if (pos + 8 >= len)
				return http_eod(req, len, state);
			pos += 8;
		}
		if (!t)
			return http_yield(req, pos, state);
		k = http_first_byte(t);
		if (pos + k >= len)
			return http_eod(req, len, state);
		HTTP_GO(pos + k + 1, HS_LINE);
	}
	if (state == HS_LINE) {
		if (c == '\r' || c == '\n') {
			r = http_eol(buf, pos, len, c);
			if (r == 0)
				return http_eod(req, len, state);
			if (r < 0)
				return http_end(req, 400);
			return http_done(req, pos + r, len);
		}
		/* obs-fold, or blanks before the first field (RFC 9112 2.2,
		 * 5.2): refused. */
		if (http_blank(c))
			return http_end(req, 400);
		r = http_field(buf, req, pos, len, c, &k);
		if (r == -2)
			return 1;
		if (r == HS_SKIP)
			return http_yield(req, pos + k, r);
		if (r >= 0) {
			HTTP_GO(pos + k, r);
			/* The usual blank after the colon. */
			if (http_blank(c))
				HTTP_GO(pos + 1, state);
		} else {
			req->cur.n = 0;
			state = HS_NAME;
		}
	}
	if (state == HS_NAME) {
		/* A name we do not read, up to its colon. */
		k = http_run_tchar(buf, pos, len);
		n = req->cur.n + k;
		if (k == HTTP_RUN) {
			req->cur.n = n;
			return http_yield(req, pos + k, state);
		}
		HTTP_GO(pos + k, state);
		/* No blank before the colon (RFC 9112 5.1), no empty name,
		 * no line without a colon. */
		if (c != ':' || n == 0)
			return http_end(req, 400);
		return http_yield(req, pos + 1, HS_SKIP);
	}

	/* --- a field value we read --- */
	k = 0;
	if (state == HS_HOST) {
		if (req->cur.sub == HO_OWS && !http_blank(c))
			req->cur.sub = HO_NAME;
		/* With an absolute-form target its host is used and Host is
		 * only checked (RFC 9112 3.2.2). */
		k = http_run_host(buf, req, pos, len, !req->absolute);
	} else if (state == HS_CONN) {
		k = http_run_conn(buf, req, pos, len);
	} else if (state == HS_INM) {
		k = http_run_inm(buf, req, pos, len);
	}
	if (k == HTTP_RUN)
		return http_yield(req, pos + k, state);
	if (k)
		HTTP_GO(pos + k, state);
	if (c == '\r' || c == '\n') {
		__u32 err;

		r = http_eol(buf, pos, len, c);
		if (r == 0)
			return http_eod(req, len, state);
		if (r < 0)
			return http_end(req, 400);
		err = http_value_end(req, state);
		if (err)
			return http_end(req, err);
		return http_yield(req, pos + r, HS_LINE);
	}
	return http_value(req, pos, state, c);
}

/*
 * The bpf_loop() callback: up to HTTP_STEPS elements per call, which
 * matters where a call and return are dear (retpolines, safe RET). The
 * inner loop is not unrolled; the verifier walks it HTTP_STEPS times, and
 * its work grows about linearly with HTTP_STEPS. Measured on the 6.18 VM
 * (curl / browser request, verifier instructions processed): 1 step 125 /
 * 515 ns, 67k; 2 steps 113 / 467 ns, 93k; 4 steps 100 / 530 ns before the
 * SWAR runs, 194k.
 */
#define HTTP_STEPS 2

static long http_step(__u32 idx, void *ctx)
{
	struct http_walk *wk = ctx;
	const __u8 *buf = wk->buf;
	struct stcp_http_req *req = wk->req;

	(void)idx;
#pragma clang loop unroll(disable)
	for (int i = 0; i < HTTP_STEPS; i++) {
		if (req->cur.done || http_one(buf, req))
			return 1;
	}
	return 0;
}

/*
 * Parses the len bytes at buf into *req (all of it rewritten). buf and req
 * must be the two halves of one struct stcp_http_scratch in map memory:
 * buf needs STCP_HTTP_MAX_REQ + STCP_HTTP_PAD bytes, and req in map memory
 * is what keeps the verifier's work small (see HTTP_RD). Returns
 * req->status.
 */
static __always_inline int stcp_http_parse(const __u8 *buf, __u32 len,
					   struct stcp_http_req *req)
{
	struct http_walk wk = { .buf = buf, .req = req };

	__builtin_memset(req, 0, sizeof(*req));
	if (len > STCP_HTTP_MAX_REQ)
		len = STCP_HTTP_MAX_REQ;
	req->cur.len = len;
	bpf_loop(STCP_HTTP_MAX_REQ + 2, http_step, &wk, 0);
	/* Cannot happen: every call consumes a byte or ends the loop. */
	if (!req->cur.done)
		http_end(req, 400);
	return req->status;
}

#endif /* STCP_BPF_HTTP_H */
