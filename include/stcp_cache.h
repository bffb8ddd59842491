/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The content cache: every object is stored as its complete HTTP response
 * (status line, headers, body) in three maps shared by the fast path and
 * stcpd. stcpd fills them from --root at start-up and on `stcpctl reload`;
 * the fast path only reads them.
 *
 *   stcp_objects  (host, path) -> one stcp_resp slot per variant
 *   stcp_resps    slot -> where a response's header and body bytes are
 *   stcp_pages    page -> 4096 bytes
 *
 * A response is hdr_len header bytes at offset 0 of page hdr_page, then
 * body_len body bytes stored contiguously from page body_page on (the body
 * starts page-aligned and takes body_npages pages). The two 200 variants of
 * an object share the body pages; only their header pages differ.
 *
 * Lookup by the fast path: (host, path), then ("", path). The host is
 * lowercased and has no port; for now stcpd stores every object under the
 * host "" (any host). Both strings are NUL-padded to their full size.
 *
 * Replacement: stcpd never rewrites pages or slots that a download may still
 * be reading. A changed file gets new pages and new slots, and its
 * stcp_objects entry is switched over to them; the old ones are freed only
 * when STCP_CACHE_GRACE_S seconds have passed and the MAC key has rotated
 * twice since. A download is bound to its handshake's key, which is refused
 * two rotations later, so no download that could have looked up the old
 * slots is alive when they are reused. A slot's gen grows by one every time
 * the slot is written.
 */
#ifndef STCP_CACHE_H
#define STCP_CACHE_H

#include "stcp_types.h"
#include "stcp_cookie.h"
#include "stcp_conn.h"

/* Pinned by name next to the maps of stcp_maps.h. */
#define STCP_MAP_PAGES	 "stcp_pages"
#define STCP_MAP_RESPS	 "stcp_resps"
#define STCP_MAP_OBJECTS "stcp_objects"

/* stcp_pages: BPF_MAP_TYPE_ARRAY of pages. stcpd sizes it from --cache-mb
 * before the maps are created; this is the size compiled into the object
 * (what `ip link ... xdp obj` creates). */
#define STCP_PAGE_SIZE	   4096
#define STCP_DEFAULT_PAGES 32768 /* 128 MiB */
struct stcp_page {
	__u8 data[STCP_PAGE_SIZE];
};

/* stcp_resps: BPF_MAP_TYPE_ARRAY, one complete response per slot. */
#define STCP_MAX_RESPS	4096
#define STCP_RESP_VALID 0x1u
/* A body follows the header (possibly of length 0, an empty file). HEAD is
 * answered from the same slot with only its hdr_len header bytes. */
#define STCP_RESP_HAS_BODY 0x2u
/*
 * The slot belongs to an object whose bytes are not in the pages now (the
 * cache budget is smaller than the content): hdr_len and body_len are
 * still the response's, and a packet that needs them goes to stcpd as a
 * cache miss (stcp_misses), which loads the object into the same slot,
 * byte for byte what it was, and runs the packet through the fast path
 * again. VALID is clear meanwhile.
 */
#define STCP_RESP_EVICTED 0x4u
/* A keep-alive variant: the response does not end the connection, so no
 * FIN follows its last byte (docs/PROTOCOL.md 7.10). */
#define STCP_RESP_KEEPALIVE 0x8u
/*
 * A windowed body: an object too large for its share of the cache keeps
 * only a ring of body_npages pages (a power of two) from body_page on;
 * body page i (bytes [4096 i, 4096 i + 4096) of the body) lives in ring
 * page body_page + (i & (body_npages - 1)) while that page's entry in
 * stcp_page_tags says so (STCP_TAG_IDX). Before it sends, the fast path
 * checks every page its segments need; if one is not there, the packet
 * goes to stcpd (STCP_EV_WINDOW, the body pages first..last), which loads
 * them and what follows and runs the packet again. stcpd zeroes a page's
 * tag before it rewrites the page and tags it after, with a generation
 * in the high bits: a copy that read the tag before and after its bytes
 * and saw the same value read one whole page (else it is dropped,
 * window_torn, and the client's recovery sends it again).
 */
#define STCP_RESP_WINDOWED 0x10u
#define STCP_TAG_IDX_MASK 0xffffu /* body page index + 1; 0: empty */
#define STCP_TAG_GEN_SHIFT 16
/* Largest ring, and the smallest: it must hold every page one packet's
 * segments can name (within the 512 KB PAWS span, 7.3) twice over. */
#define STCP_RING_MAX_PAGES 2048
#define STCP_RING_MIN_PAGES 256

struct stcp_resp {
	__u32 hdr_page;	 /* header bytes at offset 0 of this page */
	__u32 hdr_len;	 /* 1..STCP_PAGE_SIZE */
	__u32 body_page; /* first body page; 0 when body_npages is 0 */
	__u32 body_npages;
	__u64 body_len;
	__u32 gen;   /* + 1 on every write of this slot */
	__u32 flags; /* STCP_RESP_* */
};

/*
 * Slots [0, STCP_RESP_FIXED_END) hold fixed error responses, written by
 * stcpd at start-up: a short text/plain body, Content-Length and
 * Connection: close. The rest are allocated to objects.
 */
enum stcp_resp_fixed {
	STCP_RESP_400 = 0, /* Bad Request */
	STCP_RESP_404 = 1, /* Not Found */
	STCP_RESP_405 = 2, /* Method Not Allowed (Allow: GET, HEAD) */
	STCP_RESP_414 = 3, /* URI Too Long */
	STCP_RESP_431 = 4, /* Request Header Fields Too Large */
	STCP_RESP_500 = 5, /* Internal Server Error */
	/* Service Unavailable: an object without slots while every slot is
	 * in use (STCP_SLOT_NONE below) */
	STCP_RESP_503 = 6,
	STCP_RESP_NUM_FIXED = 7,
	STCP_RESP_FIXED_END = 16, /* 7..15 reserved for more */
};

/* stcp_objects: BPF_MAP_TYPE_HASH. */
#define STCP_MAX_OBJECTS 16384
#define STCP_HOST_LEN	 64
#define STCP_PATH_LEN	 192 /* so a path has at most 191 bytes */

struct stcp_obj_key {
	char host[STCP_HOST_LEN]; /* lowercase, no port; "" = any host */
	char path[STCP_PATH_LEN]; /* "/" + path under the root, raw bytes */
};

/*
 * The responses of one object. Headers are identical across variants except
 * for the Connection header (close or keep-alive); 304 has no body.
 */
enum stcp_variant {
	STCP_V_200_CLOSE = 0,
	STCP_V_200_KEEPALIVE = 1,
	STCP_V_304_CLOSE = 2,
	STCP_V_304_KEEPALIVE = 3,
	STCP_VARIANTS = 4,
};

#ifndef __bpf__
/* Names used by stcpctl (text and JSON) and the tests. */
static const char *const stcp_variant_names[STCP_VARIANTS] = {
	[STCP_V_200_CLOSE] = "200_close",
	[STCP_V_200_KEEPALIVE] = "200_keepalive",
	[STCP_V_304_CLOSE] = "304_close",
	[STCP_V_304_KEEPALIVE] = "304_keepalive",
};
#endif

struct stcp_obj {
	__u32 resp[STCP_VARIANTS]; /* slots in stcp_resps, by variant */
	__u64 size;		   /* body bytes */
	__u64 mtime;		   /* the file's mtime, ns since the epoch */
	/* stcp_http_hash() of the ETag as sent ("...") and of its weak form
	 * (W/"..."): an If-None-Match equal to either gets the 304. */
	__u64 etag_hash;
	__u64 etag_weak_hash;
	__u32 source; /* enum stcp_obj_source; the fast path ignores it */
	__u32 id;     /* stcpd's number for the object (STCP_EV_SLOTS) */
};

/*
 * More objects than slots: the data TSval names a response by 12 bits
 * (4096 slots, 4 per object), so stcpd gives slots only to objects that
 * are requested. An object without them has STCP_SLOT_NONE in every
 * resp[]; a request for it goes to stcpd (STCP_EV_SLOTS, first = its id),
 * which gives it free slots, or takes those of an object no request has
 * named since the MAC key rotated twice (stcp_slot_gen: no download of it
 * can still be alive, as for replaced files), and runs the request again.
 * When none can be had, the object's resp[] name STCP_RESP_503 for a
 * second. A program without stcpd answers 503 itself.
 */
#define STCP_SLOT_NONE 0xfffffffeu

/* Where stcpd took an object from (stcp_obj.source), for stcpctl. */
enum stcp_obj_source {
	STCP_SRC_ROOT = 0,  /* a file under --root */
	STCP_SRC_REDIS = 1, /* in Redis: stcpd --redis, stcpctl content add */
};

/*
 * stcp_misses: BPF_MAP_TYPE_RINGBUF of the program stcpd loads (not
 * pinned: only that program reports to that daemon). One record per
 * packet that met an evicted slot: the whole frame, so that stcpd can
 * run it through the fast path again once the object is back.
 */
/* A power of two (the verifier bounds it by a mask), above the 2118 bytes
 * of the request stcpd runs for a 431 (daemon/reasm.c), which without
 * timestamps goes through the ring again (STCP_EV_CONN_REQ). */
#define STCP_MISS_FRAME_MAX 4096
#define STCP_MISS_RING_BYTES (4u << 20)
/*
 * The same ring carries the segments of requests that span several
 * (docs/PROTOCOL.md 7.8): the first (it passed the handshake cookie, so
 * its sequence number is the client's ISN + 1) and the ones after it (they
 * match stcp_reasm). stcpd joins them and runs a short equivalent of the
 * request through the fast path.
 */
enum stcp_event_kind {
	STCP_EV_CACHE_MISS = 0,
	STCP_EV_REQ_FIRST = 1,
	STCP_EV_REQ_CONT = 2,
	STCP_EV_RANGE = 3, /* a Range no stcp_ranges entry answers yet */
	/* include/stcp_conn.h: an entry written (a struct stcp_conn_event,
	 * not this record), and a packet that needs an entry this replica
	 * does not have. */
	STCP_EV_CONN_PUT = 4,
	STCP_EV_CONN_MISS = 5,
	/* A request whose entry (conn) stcpd writes to Redis, then into
	 * stcp_conns, before it runs the request again. */
	STCP_EV_CONN_REQ = 6,
	/* include/stcp_conn.h: a stall timer fired (a struct
	 * stcp_stall_event, not this record). */
	STCP_EV_STALL = 7,
	/* Ring pages of a windowed body (STCP_RESP_WINDOWED) that are not
	 * there: slot, and body pages first..last. With no frame (len 0),
	 * a load ahead of the downloads, which are not waiting for it. */
	STCP_EV_WINDOW = 8,
	/* A request for an object without slots (STCP_SLOT_NONE): its id. */
	STCP_EV_SLOTS = 9,
};

/*
 * stcp_ranges: BPF_MAP_TYPE_HASH of the program stcpd loads (not pinned:
 * loaded by `ip link`, the program serves the whole 200 to a Range request,
 * stcp_have_daemon). A single-range GET's response
 * (206, or 416) is built by stcpd on the first request for it, in a slot of
 * its own, like any other response: the fast path normalises the range
 * against the object's size (first <= last < size; a suffix or open end
 * resolved) and looks up (200 slot, first, last); an unsatisfiable range
 * is (200 slot, STCP_RANGE_416, STCP_RANGE_416).
 */
#define STCP_MAX_RANGES	 256
#define STCP_RANGE_416	 (~0ULL)
struct stcp_range_key {
	__u32 slot; /* the object's STCP_V_200_CLOSE slot */
	__u32 pad;
	__u64 first;
	__u64 last;
};
/* stcp_reasm: BPF_MAP_TYPE_LRU_HASH, struct stcp_flow -> struct
 * stcp_reasm_val, written by the fast path at the first segment of a
 * request that spans segments. */
#define STCP_REASM_FLOWS 4096
struct stcp_reasm_val {
	__u32 ack; /* our sequence number the request's segments carry */
	/* The first segment's sequence number: that segment (resent, or run
	 * again by stcpd with the joined request) is not a later part. */
	__u32 seq;
};
/* The most request bytes stcpd joins; a header section longer than this
 * gets 431. */
#define STCP_REASM_MAX (16 * 1024)
struct stcp_miss_event {
	__u32 kind; /* enum stcp_event_kind */
	__u32 slot; /* STCP_EV_CACHE_MISS, STCP_EV_RANGE (the 200 slot) */
	__u64 first, last; /* STCP_EV_RANGE: the stcp_range_key's */
	__u32 ifindex; /* where the frame arrived */
	__u32 rxq;
	__u32 len; /* bytes of frame[] */
	struct stcp_flow flow; /* STCP_EV_CONN_MISS, _REQ: the connection */
	/* STCP_EV_CONN_REQ: its entry; STCP_EV_CONN_MISS: the one that did
	 * not do (zero: none) */
	struct stcp_conn conn;
	__u8 frame[STCP_MISS_FRAME_MAX];
};

/* stcp_page_tags: BPF_MAP_TYPE_ARRAY of the program stcpd loads, one
 * __u32 per stcp_pages page (stcpd sizes both): for a page of a windowed
 * body's ring, STCP_TAG_IDX_MASK bits say which body page it holds. */

/* stcp_slot_gen: BPF_MAP_TYPE_ARRAY of the program stcpd loads,
 * STCP_MAX_RESPS entries of __u32: the generation of the current MAC key
 * (stcp_key.gen) when a request last named the slot, written only when it
 * grows. */

/* stcp_slot_use: BPF_MAP_TYPE_ARRAY, STCP_MAX_RESPS entries of __u32: the
 * coarse time (bpf_ktime_get_coarse_ns() >> 30, about seconds) at which a
 * request last named the slot. stcpd evicts the least recently used. */

/* How long a replaced or deleted object's pages and slots stay untouched. */
#define STCP_CACHE_GRACE_S 120

#endif /* STCP_CACHE_H */
