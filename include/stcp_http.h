/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The HTTP/1.x request as the fast path's parser (bpf/http.h) leaves it, and
 * the per-CPU scratch area it works in. Shared by the BPF programs and
 * userspace (tests, and stcpd for stcp_http_hash() of its ETags).
 *
 * The caller copies the TCP payload of one segment (at most
 * STCP_HTTP_MAX_REQ bytes) into stcp_http_scratch.buf with
 * bpf_xdp_load_bytes() and calls stcp_http_parse(buf, len, &scratch->req).
 * Only one segment is ever looked at: a request that spans several is
 * joined by stcpd (docs/PROTOCOL.md 7.8).
 */
#ifndef STCP_HTTP_H
#define STCP_HTTP_H

#include "stcp_types.h"
#include "stcp_cache.h"

/*
 * The most request bytes the parser looks at. A request whose header
 * section does not end within them is answered 431. 2048 is above any
 * single segment on a 1500-byte MTU (1460 bytes of payload at most), so on
 * such a link the limit only shows for jumbo frames; see
 * STCP_HTTP_INCOMPLETE for requests that span segments. A power of two: the
 * parser masks offsets with STCP_HTTP_MAX_REQ - 1 for the verifier.
 */
#define STCP_HTTP_MAX_REQ 2048
/* Slack after the buffer: the parser reads whole 8-byte words (up to 24
 * bytes at a line start) and never uses bytes past len. */
#define STCP_HTTP_PAD 32

/*
 * stcp_http_req.status: 0, STCP_HTTP_INCOMPLETE, or the HTTP status code of
 * the error to answer (400, 405, 414, 431, 505).
 *
 * STCP_HTTP_INCOMPLETE: the bytes given ended before the blank line that
 * ends the header section (and before any error). The rest of the request
 * is in later segments: the data path hands this one and those to stcpd,
 * which joins them (docs/PROTOCOL.md 7.8).
 */
#define STCP_HTTP_OK	     0
#define STCP_HTTP_INCOMPLETE 1

enum stcp_http_method {
	STCP_HTTP_OTHER = 0, /* only with status 405 or an earlier error */
	STCP_HTTP_GET = 1,
	STCP_HTTP_HEAD = 2,
};

/* What the Connection header fields asked for. close wins over
 * keep-alive when both are present. */
enum stcp_http_conn {
	STCP_CONN_DEFAULT = 0,
	STCP_CONN_CLOSE = 1,
	STCP_CONN_KEEPALIVE = 2,
};

/* range_last of "bytes=a-": no last position. */
#define STCP_RANGE_OPEN (~0ULL)

/* The parser's position and the state of the field being read. Internal to
 * bpf/http.h; it lives in map memory next to the result (see there). */
struct stcp_http_cursor {
	__u32 pos;   /* next byte */
	__u32 len;   /* bytes given, at most STCP_HTTP_MAX_REQ */
	__u32 state; /* enum in bpf/http.h */
	__u32 sub;   /* state within a field value */
	__u64 acc;   /* token bytes or a number being read */
	__u64 h;     /* If-None-Match: running hash */
	__u32 n;     /* bytes or digits of the current item */
	__u32 tlen;  /* If-None-Match: bytes up to the last non-blank one */
	__u32 aux;   /* bytes shifted out of acc; first byte of a value */
	__u8 done;
	__u8 conn_close;
	__u8 conn_ka;
	__u8 pad;
};

struct stcp_http_req {
	__u16 status;	   /* see STCP_HTTP_OK above */
	__u8 method;	   /* enum stcp_http_method */
	__u8 version;	   /* 10 or 11 (HTTP/1.2..1.9 read as 11) */
	__u8 conn;	   /* enum stcp_http_conn */
	__u8 keep_alive;   /* the decision: 1.1 unless close; 1.0 only with
			    * keep-alive; 0 whenever status != 0 */
	__u8 has_host;	   /* a Host field was present (maybe empty) */
	__u8 host_long;	   /* the host had more than 63 bytes: host[] is empty,
			    * so only the any-host ("") entry can match */
	__u8 absolute;	   /* absolute-form target: host[] comes from it */
	__u8 has_query;	   /* the target had a "?query" (not in path[]) */
	__u8 has_inm;	   /* an If-None-Match field with a non-empty value */
	__u8 inm_star;	   /* ... and its value was "*" */
	__u8 has_range;	   /* a Range field was present */
	__u8 range_suffix; /* "bytes=-n": range_last holds n, range_first 0 */
	__u8 range_bad;	   /* not one well-formed bytes range: ignore Range */
	__u8 pad0;
	__u16 path_len; /* bytes in path[], 1..191 */
	__u16 host_len; /* bytes in host[], 0..63 */
	__u16 req_len;	/* bytes of the request through its final blank line */
	__u16 extra;	/* bytes given after the request (pipelining); of the
			 * bytes given, so at most STCP_HTTP_MAX_REQ - req_len */
	__u64 if_none_match; /* stcp_http_hash() of the field value, trimmed;
			      * several fields hash as their ", " join */
	__u64 range_first;
	__u64 range_last; /* STCP_RANGE_OPEN for "bytes=a-" */
	/* NUL-padded, so &req->key is a ready stcp_objects key. */
	union {
		struct stcp_obj_key key;
		struct {
			char host[STCP_HOST_LEN]; /* lowercase, no port */
			char path[STCP_PATH_LEN]; /* no query, raw bytes */
		};
	};
	__u8 spill[8]; /* the parser's 8-byte path stores may reach here */
	struct stcp_http_cursor cur;
};

/* The per-CPU scratch value (BPF_MAP_TYPE_PERCPU_ARRAY, one entry). */
struct stcp_http_scratch {
	__u8 buf[STCP_HTTP_MAX_REQ + STCP_HTTP_PAD];
	struct stcp_http_req req;
};

/*
 * The If-None-Match hash: 64-bit FNV-1a over the bytes of the field value as
 * sent, without the surrounding blanks. stcpd hashes each ETag it stores the
 * same way (its strong form "..." and, for a weak comparison, W/"...").
 */
#define STCP_HTTP_HASH_INIT  0xcbf29ce484222325ULL
#define STCP_HTTP_HASH_PRIME 0x100000001b3ULL

STCP_INLINE __u64 stcp_http_hash_step(__u64 h, __u8 c)
{
	return (h ^ c) * STCP_HTTP_HASH_PRIME;
}

#ifndef __bpf__
STCP_INLINE __u64 stcp_http_hash(const void *p, unsigned long n)
{
	const __u8 *b = (const __u8 *)p;
	__u64 h = STCP_HTTP_HASH_INIT;

	for (unsigned long i = 0; i < n; i++)
		h = stcp_http_hash_step(h, b[i]);
	return h;
}
#endif

#endif /* STCP_HTTP_H */
