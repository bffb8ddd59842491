// SPDX-License-Identifier: GPL-2.0
/*
 * The content cache loader (cache.h, include/stcp_cache.h).
 *
 * Every regular file under the root becomes four responses (200 and 304,
 * each with Connection: close and keep-alive) in four stcp_resps slots, and
 * one run of pages: the four header pages, then the body. Its stcp_objects
 * entry (and, for index.html, its directory's) points at the slots.
 *
 * The allocators live here, in stcpd: a bitmap over the pages and a flag
 * per slot. Pages and slots are written only while no stcp_objects entry
 * points at them; a replaced or deleted file's pages and slots go to a
 * pending list and are freed after grace_s seconds and two key rotations:
 * a download is bound to its handshake's key (docs/PROTOCOL.md 2), so once
 * that key is gone, nothing can read what it was given any more.
 *
 * The walk opens every directory with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS) from the root and every file with O_NOFOLLOW from its
 * directory, so nothing outside the root is ever read; symlinks are
 * skipped.
 *
 * Blobs (objects from Redis, cache.h) live in the same list as the files,
 * marked with their source, and go through the same code: store_object()
 * builds the responses of either from a struct obj_src (an open file or
 * the bytes in memory) plus the metadata in struct stcp_cache_file. A blob
 * hides the file at its path; a root load leaves blobs alone.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "cache.h"
#include "stcp_http.h"
#include "stcp_maps.h"
#include "common.h"

#define NO_SLOT	     UINT32_MAX
/* A file under the root: never through a symlink, never blocking on a
 * FIFO, never becoming our terminal. */
#define FILE_OPEN_FLAGS (O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
#define INDEX_NAME   "index.html"
#define DEFAULT_TYPE "application/octet-stream"

static int open_beneath(int rootfd, const char *rel);
struct stcp_cache_file;
static int publish(struct stcp_cache *c, const struct stcp_cache_file *f);
static void ranges_retire_slot(struct stcp_cache *c, uint32_t slot200);
static bool same_file(const struct stcp_cache_file *f, const struct stat *st);

/* The slots and the run of pages one stored file holds. The run is the
 * STCP_VARIANTS header pages, in variant order, then the body pages. */
struct held {
	uint32_t resp[STCP_VARIANTS]; /* NO_SLOT when not allocated */
	uint32_t first_page;
	uint32_t npages; /* 0 when not allocated */
};

struct stcp_cache_file {
	char path[STCP_PATH_LEN];
	uint8_t source;			  /* enum stcp_obj_source */
	uint64_t version;		  /* a blob's version; 0 for a file */
	char type[STCP_CONTENT_TYPE_MAX]; /* a blob's type; "": by extension */
	bool has_index; /* index.html: also stored as its directory */
	bool seen;	/* during a load: kept or replaced */
	bool resident;	/* its bytes are in pages; else its slots are evicted */
	uint32_t ring; /* a windowed body's ring pages; 0: the whole body */
	time_t busy_until; /* no slots to be had: 503 until then */
	uint32_t given; /* key generation when it was given its slots */
	uint64_t loaded; /* when it last became resident (c->load_seq) */
	uint32_t hdr_len[STCP_VARIANTS];
	uint64_t dev, ino, size, mtime_ns;
	struct stcp_obj obj;
	struct held h;
};

/* Where the bytes of one version of an object are read from: an open file
 * (fd), or, when fd is -1, a blob's bytes in memory (buf, size bytes; NULL
 * when empty; own is freed by src_close). */
struct obj_src {
	int fd;
	const uint8_t *buf;
	uint8_t *own;
};

struct stcp_cache_range {
	struct stcp_range_key key;
	struct held h; /* h.resp[0]: its slot */
};

struct stcp_cache_pending {
	struct held h;
	time_t due;	  /* CLOCK_MONOTONIC seconds */
	uint32_t key_gen; /* the current key's generation when retired */
};

/* A table, so that a new type is one line. Extensions compare
 * case-insensitively. */
static const struct {
	const char *ext;
	const char *type;
} content_types[] = {
	{ "html", "text/html; charset=utf-8" },
	{ "htm", "text/html; charset=utf-8" },
	{ "css", "text/css" },
	{ "js", "text/javascript" },
	{ "json", "application/json" },
	{ "txt", "text/plain; charset=utf-8" },
	{ "xml", "application/xml" },
	{ "svg", "image/svg+xml" },
	{ "png", "image/png" },
	{ "jpg", "image/jpeg" },
	{ "jpeg", "image/jpeg" },
	{ "gif", "image/gif" },
	{ "webp", "image/webp" },
	{ "ico", "image/x-icon" },
	{ "wasm", "application/wasm" },
	{ "pdf", "application/pdf" },
	{ "woff2", "font/woff2" },
	{ "mp4", "video/mp4" },
};

/* The fixed error responses of slots [0, STCP_RESP_NUM_FIXED). */
static const struct {
	uint32_t slot;
	int code;
	const char *reason;
	const char *extra; /* more header lines */
} fixed_resps[STCP_RESP_NUM_FIXED] = {
	{ STCP_RESP_400, 400, "Bad Request", "" },
	{ STCP_RESP_404, 404, "Not Found", "" },
	{ STCP_RESP_405, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n" },
	{ STCP_RESP_414, 414, "URI Too Long", "" },
	{ STCP_RESP_431, 431, "Request Header Fields Too Large", "" },
	{ STCP_RESP_500, 500, "Internal Server Error", "" },
	{ STCP_RESP_503, 503, "Service Unavailable", "Retry-After: 1\r\n" },
};

const char *stcp_content_type(const char *path)
{
	const char *base = strrchr(path, '/');
	const char *dot;

	base = base ? base + 1 : path;
	dot = strrchr(base, '.');
	if (!dot || !dot[1])
		return DEFAULT_TYPE;
	for (size_t i = 0; i < sizeof(content_types) / sizeof(content_types[0]);
	     i++) {
		if (!strcasecmp(dot + 1, content_types[i].ext))
			return content_types[i].type;
	}
	return DEFAULT_TYPE;
}

static time_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* 0 (so nothing is freed) when the maps are not set or cannot be read. */
static uint32_t key_gen_from_maps(const struct stcp_cache *c)
{
	struct stcp_key k = { 0 };
	struct stcp_cfg cfg = { 0 };
	uint32_t zero = 0;

	if (c->keys_fd < 0 || c->cfg_fd < 0 ||
	    bpf_map_lookup_elem(c->cfg_fd, &zero, &cfg) ||
	    cfg.key_cur >= STCP_NUM_KEYS ||
	    bpf_map_lookup_elem(c->keys_fd, &cfg.key_cur, &k) || !k.valid)
		return 0;
	return k.gen;
}

/* Serial comparison: generations may wrap. */
static bool key_rotated_twice(uint32_t then, uint32_t now)
{
	return (int32_t)(now - then) >= 2;
}

/* ---- allocators ---- */

static bool page_busy(const struct stcp_cache *c, uint32_t p)
{
	return (c->page_bits[p / 64] >> (p % 64)) & 1;
}

static void pages_mark(struct stcp_cache *c, uint32_t first, uint32_t n,
		       bool busy)
{
	for (uint32_t p = first; p < first + n; p++) {
		if (page_busy(c, p) == busy)
			continue;
		c->page_bits[p / 64] ^= 1ull << (p % 64);
		if (busy)
			c->pages_used++;
		else
			c->pages_used--;
	}
}

/* First fit: the lowest run of n free pages. */
static int pages_alloc(struct stcp_cache *c, uint32_t n, uint32_t *first)
{
	uint32_t run = 0, start = 0, p = 0;

	if (!n || n > c->npages - c->pages_used)
		return -ENOSPC;
	while (p < c->npages) {
		if (p % 64 == 0 && c->page_bits[p / 64] == ~0ull) {
			run = 0;
			p += 64;
			continue;
		}
		if (page_busy(c, p)) {
			run = 0;
			p++;
			continue;
		}
		if (!run)
			start = p;
		p++;
		if (++run == n) {
			pages_mark(c, start, n, true);
			*first = start;
			return 0;
		}
	}
	return -ENOSPC;
}

/* The lowest free slot after the fixed ones. */
static int resp_alloc(struct stcp_cache *c, uint32_t *slot)
{
	for (uint32_t s = STCP_RESP_FIXED_END; s < c->nresps; s++) {
		if (!c->resp_used[s]) {
			c->resp_used[s] = 1;
			c->resps_used++;
			*slot = s;
			return 0;
		}
	}
	return -ENOSPC;
}

/* Every write of a slot gets the next gen, including the one that frees
 * it: a (slot, gen) pair is never written twice. */
static int resp_write(struct stcp_cache *c, uint32_t slot, struct stcp_resp *r)
{
	r->gen = ++c->resp_gen[slot];
	return bpf_map_update_elem(c->resps_fd, &slot, r, BPF_ANY) ? -errno : 0;
}

static void held_init(struct held *h)
{
	for (int v = 0; v < STCP_VARIANTS; v++)
		h->resp[v] = NO_SLOT;
	h->first_page = 0;
	h->npages = 0;
}

/* Returns h's slots (marked invalid in the map) and pages to the free
 * pool. Only for what no stcp_objects entry points at any more. */
static void held_free(struct stcp_cache *c, struct held *h)
{
	struct stcp_resp r = { 0 };
	int err;

	for (int v = 0; v < STCP_VARIANTS; v++) {
		uint32_t s = h->resp[v];

		if (s == NO_SLOT || !c->resp_used[s])
			continue;
		memset(&r, 0, sizeof(r));
		err = resp_write(c, s, &r);
		if (err)
			log_warn(
				"cache: cannot invalidate response slot %u: %s",
				s, strerror(-err));
		c->resp_used[s] = 0;
		c->resps_used--;
	}
	if (h->npages)
		pages_mark(c, h->first_page, h->npages, false);
	held_init(h);
}

/* Puts h on the pending list; freed by stcp_cache_reap after grace_s. */
static void held_retire(struct stcp_cache *c, const struct held *h)
{
	struct stcp_cache_pending *p;

	if (c->npending == c->pending_cap) {
		size_t cap = c->pending_cap ? 2 * c->pending_cap : 16;

		p = realloc(c->pending, cap * sizeof(*p));
		if (!p) {
			/* Never freeing is safe; freeing early is not. */
			log_warn("cache: out of memory: %u pages and 4 "
				 "response slots will not be reused",
				 h->npages);
			return;
		}
		c->pending = p;
		c->pending_cap = cap;
	}
	p = &c->pending[c->npending++];
	p->h = *h;
	p->due = c->clock() + (time_t)c->grace_s;
	p->key_gen = c->key_gen(c);
}

static void slots_unbusy(struct stcp_cache *c);

void stcp_cache_reap(struct stcp_cache *c)
{
	slots_unbusy(c);
	time_t now = c->clock();
	uint32_t gen = c->key_gen(c);
	size_t kept = 0;

	for (size_t i = 0; i < c->npending; i++) {
		if (c->pending[i].due <= now &&
		    key_rotated_twice(c->pending[i].key_gen, gen))
			held_free(c, &c->pending[i].h);
		else
			c->pending[kept++] = c->pending[i];
	}
	if (kept != c->npending)
		log_debug("cache: freed %zu replaced objects, %zu pending",
			  c->npending - kept, kept);
	c->npending = kept;
}

/* ---- responses ---- */

static int page_write(struct stcp_cache *c, uint32_t page, const void *data)
{
	return bpf_map_update_elem(c->pages_fd, &page, data, BPF_ANY) ? -errno
								      : 0;
}

/* RFC 9110 IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT". */
static void format_imf(time_t t, char *buf, size_t len)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed",
					 "Thu", "Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr",
					    "May", "Jun", "Jul", "Aug",
					    "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	if (!gmtime_r(&t, &tm)) {
		t = 0;
		gmtime_r(&t, &tm);
	}
	snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d GMT",
		 days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
		 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

struct file_meta {
	uint64_t size;
	const char *type;
	char etag[80];
	char last_modified[64];
};

/* Builds the header of one variant into page (zero-padded); returns its
 * length or a negative errno. */
static int build_header(char *page, enum stcp_variant v,
			const struct file_meta *m)
{
	bool keepalive = v == STCP_V_200_KEEPALIVE || v == STCP_V_304_KEEPALIVE;
	const char *conn = keepalive ? "keep-alive" : "close";
	int n;

	memset(page, 0, STCP_PAGE_SIZE);
	if (v == STCP_V_200_CLOSE || v == STCP_V_200_KEEPALIVE)
		n = snprintf(page, STCP_PAGE_SIZE,
			     "HTTP/1.1 200 OK\r\n"
			     "Server: stcp\r\n"
			     "Content-Length: %" PRIu64 "\r\n"
			     "Content-Type: %s\r\n"
			     "ETag: %s\r\n"
			     "Last-Modified: %s\r\n"
			     "Connection: %s\r\n"
			     "\r\n",
			     m->size, m->type, m->etag, m->last_modified, conn);
	else
		n = snprintf(page, STCP_PAGE_SIZE,
			     "HTTP/1.1 304 Not Modified\r\n"
			     "Server: stcp\r\n"
			     "ETag: %s\r\n"
			     "Last-Modified: %s\r\n"
			     "Connection: %s\r\n"
			     "\r\n",
			     m->etag, m->last_modified, conn);
	if (n < 0 || n >= STCP_PAGE_SIZE)
		return -ENOSPC;
	return n;
}

static uint64_t mtime_ns_of(const struct stat *st)
{
	return (uint64_t)st->st_mtim.tv_sec * 1000000000ull +
	       (uint64_t)st->st_mtim.tv_nsec;
}

/* Reads exactly len bytes at off unless the file ends first; returns how
 * many, or a negative errno. */
static ssize_t pread_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (!n)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* len bytes of f at off (off + len <= f->size); 0, -ESTALE when a file
 * is shorter than its size (it changed), or a negative errno. */
static int src_read(const struct obj_src *s, const struct stcp_cache_file *f,
		    uint64_t off, uint8_t *dst, size_t len)
{
	ssize_t got;

	if (off + len > f->size)
		return -EINVAL;
	if (s->fd < 0) {
		memcpy(dst, s->buf + off, len);
		return 0;
	}
	got = pread_full(s->fd, dst, len, off);
	if (got < 0)
		return (int)got;
	return (size_t)got == len ? 0 : -ESTALE;
}

/* After the bytes were read: still the version f describes? */
static bool src_unchanged(const struct obj_src *s,
			  const struct stcp_cache_file *f)
{
	struct stat st;

	if (s->fd < 0)
		return true; /* bytes in memory do not change */
	return !fstat(s->fd, &st) && same_file(f, &st);
}

static void src_close(struct obj_src *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->own);
	s->fd = -1;
	s->buf = s->own = NULL;
}

/* Says why replaced files still hold pages, when they do. */
static void warn_pending(const struct stcp_cache *c)
{
	uint32_t pages = 0;

	for (size_t i = 0; i < c->npending; i++)
		pages += c->pending[i].h.npages;
	if (pages)
		log_warn("cache: %u pages still hold %zu replaced files, kept "
			 "until %u s have passed and the MAC key has rotated "
			 "twice ('stcpctl keys rotate' twice frees them now, "
			 "and resets the downloads still reading them)",
			 pages, c->npending, c->grace_s);
}

/* The header fields of f's responses, from what its stat said (a file) or
 * what its source said (a blob: "r" and its version where a file has its
 * inode, so the two never share an ETag). */
static void file_meta_of(const struct stcp_cache_file *f, struct file_meta *m)
{
	m->size = f->size;
	m->type = f->type[0] ? f->type : stcp_content_type(f->path);
	if (f->source == STCP_SRC_REDIS)
		snprintf(m->etag, sizeof(m->etag),
			 "\"r%" PRIx64 "-%" PRIx64 "-%" PRIx64 "\"", f->version,
			 f->size, f->mtime_ns);
	else
		snprintf(m->etag, sizeof(m->etag),
			 "\"%" PRIx64 "-%" PRIx64 "-%" PRIx64 "\"", f->ino,
			 f->size, f->mtime_ns);
	format_imf((time_t)(f->mtime_ns / 1000000000ull), m->last_modified,
		   sizeof(m->last_modified));
}

static bool variant_has_body(int v)
{
	return v == STCP_V_200_CLOSE || v == STCP_V_200_KEEPALIVE;
}

/* The flags a variant's slot carries besides VALID or EVICTED. */
static uint32_t variant_flags(int v)
{
	uint32_t f = variant_has_body(v) ? STCP_RESP_HAS_BODY : 0;

	if (v == STCP_V_200_KEEPALIVE || v == STCP_V_304_KEEPALIVE)
		f |= STCP_RESP_KEEPALIVE;
	return f;
}

/* Marks f's slots evicted: the lengths stay, the pages are not named. */
static int write_evicted(struct stcp_cache *c, struct stcp_cache_file *f)
{
	for (int v = 0; v < STCP_VARIANTS; v++) {
		struct stcp_resp r = { 0 };
		int err;

		r.hdr_len = f->hdr_len[v];
		r.flags = STCP_RESP_EVICTED | variant_flags(v);
		if (variant_has_body(v)) {
			r.body_len = f->size;
		}
		err = resp_write(c, f->h.resp[v], &r);
		if (err)
			return err;
	}
	f->resident = false;
	return 0;
}

/* The last use of f by a request (stcp_slot_use), 0 if unknown. */
static uint32_t file_last_use(const struct stcp_cache *c,
			      const struct stcp_cache_file *f)
{
	uint32_t best = 0;

	for (int v = 0; c->slot_use_fd >= 0 && v < STCP_VARIANTS; v++) {
		uint32_t t = 0;

		if (!bpf_map_lookup_elem(c->slot_use_fd, &f->h.resp[v], &t) &&
		    t > best)
			best = t;
	}
	return best;
}

/* 2 ms: far longer than one NAPI poll, in which a program that read an
 * object's stcp_resp before it was evicted finishes with its pages. */
#define EVICT_QUIESCE_NS 2000000L
/* Victims per round: a round frees at least a sixteenth of the cache, so
 * the next misses find room without waiting for a round of their own. */
#define EVICT_MAX_VICTIMS 64

/*
 * Makes room for a run of n pages by evicting the least recently used
 * resident files other than keep: their slots are marked evicted first,
 * and their pages freed once no program can still be reading them.
 * Returns 0 when a run was found (in *first), 1 when none can be.
 */
static int evict_for(struct stcp_cache *c, uint32_t n,
		     const struct stcp_cache_file *keep, uint32_t *first)
{
	for (;;) {
		struct stcp_cache_file *victims[EVICT_MAX_VICTIMS];
		uint32_t want = n > c->npages / 16 ? 2 * n : n + c->npages / 16;
		size_t nv = 0;
		uint32_t gain = 0;

		if (!pages_alloc(c, n, first))
			return 0;
		/* One at least: free pages may all be too scattered. */
		while (nv < EVICT_MAX_VICTIMS &&
		       (!nv || c->npages - c->pages_used + gain < want)) {
			struct stcp_cache_file *v = NULL;
			uint32_t vuse = 0;

			for (size_t i = 0; i < c->nfiles; i++) {
				struct stcp_cache_file *f = &c->files[i];
				uint32_t u;
				bool taken = false;

				if (!f->resident || f == keep || !f->h.npages)
					continue;
				for (size_t j = 0; j < nv; j++)
					taken |= victims[j] == f;
				if (taken)
					continue;
				u = file_last_use(c, f);
				if (!v || u < vuse ||
				    (u == vuse && f->loaded < v->loaded)) {
					v = f;
					vuse = u;
				}
			}
			if (!v)
				break;
			victims[nv++] = v;
			gain += v->h.npages;
		}
		if (!nv)
			return 1;
		for (size_t j = 0; j < nv; j++) {
			int err = write_evicted(c, victims[j]);

			if (err)
				log_warn("cache: cannot evict %s: %s",
					 victims[j]->path, strerror(-err));
		}
		nanosleep(&(struct timespec){ .tv_nsec = EVICT_QUIESCE_NS },
			  NULL);
		for (size_t j = 0; j < nv; j++) {
			struct stcp_cache_file *f = victims[j];

			if (f->resident) /* the write failed: keep it */
				continue;
			pages_mark(c, f->h.first_page, f->h.npages, false);
			f->h.first_page = 0;
			f->h.npages = 0;
			c->evictions++;
			log_debug("cache: evicted %s", f->path);
		}
	}
}

/* ---- windowed bodies (include/stcp_cache.h, STCP_RESP_WINDOWED) ---- */

/* The ring for an object of body_np pages: 0 (stored whole) unless it
 * takes more than half the cache; then a power of two of at most a
 * quarter of it, at least STCP_RING_MIN_PAGES. */
static uint32_t ring_size(const struct stcp_cache *c, uint64_t body_np)
{
	uint32_t w = STCP_RING_MAX_PAGES;

	if (body_np + STCP_VARIANTS <= c->npages / 2)
		return 0;
	while (w > STCP_RING_MIN_PAGES && w + STCP_VARIANTS > c->npages / 4)
		w /= 2;
	return w + STCP_VARIANTS <= c->npages && w < body_np ? w : 0;
}

static int tags_set(struct stcp_cache *c, const uint32_t *pages,
		    const uint32_t *tags, uint32_t n)
{
	LIBBPF_OPTS(bpf_map_batch_opts, o);
	uint32_t cnt = n;

	if (!n)
		return 0;
	return bpf_map_update_batch(c->tags_fd, pages, tags, &cnt, &o) ? -errno :
									 0;
}

/* Every ring page of f empty, before its slots name the ring: the pages
 * may hold tags of another object's ring. */
static int ring_clear(struct stcp_cache *c, struct stcp_cache_file *f)
{
	uint32_t *pages = calloc(f->ring, sizeof(*pages));
	uint32_t *zero = calloc(f->ring, sizeof(*zero));
	int err = -ENOMEM;

	if (!pages || !zero)
		goto out;
	for (uint32_t i = 0; i < f->ring; i++)
		pages[i] = f->h.first_page + STCP_VARIANTS + i;
	err = tags_set(c, pages, zero, f->ring);
out:
	free(pages);
	free(zero);
	return err;
}

static int src_open(struct stcp_cache *c, const struct stcp_cache_file *f,
		    struct obj_src *s);

/*
 * Loads body pages [lo, end) of f into its ring, end taking in hi and
 * half a ring of read-ahead (never a whole ring: what the packet needs
 * stays), but only the pages the ring does not hold: several packets
 * that met the same missing pages cost one read. The bytes come from src,
 * or, when it is NULL, from f's source opened here if anything is
 * missing. Each page's tag is zeroed before the page is rewritten and
 * set after, with a new generation, so that the fast path's copies tell
 * (copy_payload()).
 */
static int ring_fill(struct stcp_cache *c, const struct obj_src *src,
		     struct stcp_cache_file *f, uint64_t lo, uint64_t hi,
		     bool ahead)
{
	uint64_t body_np = (f->size + STCP_PAGE_SIZE - 1) / STCP_PAGE_SIZE;
	uint64_t end = ahead ? lo + f->ring / 2 : hi + 1, first, bytes;
	uint32_t mask = f->ring - 1, ring0 = f->h.first_page + STCP_VARIANTS;
	uint32_t *pages = NULL, *tags = NULL, *zero = NULL, *idx = NULL;
	uint32_t n, cnt = 0;
	struct obj_src own = { .fd = -1 };
	uint8_t *data = NULL;
	LIBBPF_OPTS(bpf_map_batch_opts, o);
	int err = -ENOMEM;

	if (end < hi + 1)
		end = hi + 1;
	if (end > lo + f->ring)
		end = lo + f->ring;
	if (end > body_np)
		end = body_np;
	if (lo >= end)
		return lo < body_np || !body_np ? 0 : -EINVAL;
	n = (uint32_t)(end - lo);
	pages = calloc(n, sizeof(*pages));
	tags = calloc(n, sizeof(*tags));
	zero = calloc(n, sizeof(*zero));
	idx = calloc(n, sizeof(*idx));
	if (!pages || !tags || !zero || !idx)
		goto out;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t pg = ring0 + (uint32_t)((lo + i) & mask), t = 0;

		if (!bpf_map_lookup_elem(c->tags_fd, &pg, &t) &&
		    (t & STCP_TAG_IDX_MASK) == lo + i + 1)
			continue;
		pages[cnt] = pg;
		idx[cnt++] = i;
	}
	err = 0;
	if (!cnt)
		goto out;
	if (!src) {
		err = src_open(c, f, &own);
		if (err)
			goto out;
		src = &own;
	}
	/* One read from the first missing page to the last. */
	first = lo + idx[0];
	bytes = ((lo + idx[cnt - 1] + 1) * STCP_PAGE_SIZE < f->size ?
			 (lo + idx[cnt - 1] + 1) * STCP_PAGE_SIZE :
			 f->size) -
		first * STCP_PAGE_SIZE;
	err = -ENOMEM;
	data = calloc(idx[cnt - 1] - idx[0] + 1, STCP_PAGE_SIZE);
	if (!data)
		goto out;
	err = src_read(src, f, first * STCP_PAGE_SIZE, data, (size_t)bytes);
	if (!err && !src_unchanged(src, f))
		err = -ESTALE;
	if (err)
		goto out;
	c->tag_gen = (c->tag_gen + 1) & STCP_TAG_IDX_MASK;
	for (uint32_t j = 0; j < cnt; j++) {
		uint32_t at = idx[j] - idx[0];

		if (at != j)
			memcpy(data + (size_t)j * STCP_PAGE_SIZE,
			       data + (size_t)at * STCP_PAGE_SIZE,
			       STCP_PAGE_SIZE);
		tags[j] = c->tag_gen << STCP_TAG_GEN_SHIFT |
			  (uint32_t)(lo + idx[j] + 1);
	}
	err = tags_set(c, pages, zero, cnt);
	if (!err) {
		uint32_t k = cnt;

		err = bpf_map_update_batch(c->pages_fd, pages, data, &k, &o) ?
			      -errno :
			      0;
	}
	if (!err)
		err = tags_set(c, pages, tags, cnt);
	if (!err) {
		c->window_fills++;
		c->window_pages += cnt;
	}
out:
	src_close(&own);
	free(pages);
	free(tags);
	free(zero);
	free(idx);
	free(data);
	return err;
}

/*
 * Reads f's bytes from src into a new run of pages and writes its four
 * responses into its slots, valid. With evict, less recently used files
 * make room. Returns 0, 1 when it does not fit (or the cache cannot ever
 * hold it), 2 when the file changed while being read, or a negative errno
 * for the maps.
 */
static int load_pages(struct stcp_cache *c, const struct obj_src *src,
		      struct stcp_cache_file *f, bool evict)
{
	uint64_t body_npages = (f->size + STCP_PAGE_SIZE - 1) / STCP_PAGE_SIZE;
	uint64_t stored = f->ring ? 0 : body_npages;
	uint32_t n, first;
	uint8_t page[STCP_PAGE_SIZE];
	struct file_meta m;
	int err = 0;

	/* A ring is loaded as it is read, which needs the program's
	 * stcp_page_tags: until stcpd has attached, the object waits
	 * evicted for its first request. */
	if (f->ring && c->tags_fd < 0)
		return 1;
	if ((f->ring ? f->ring : body_npages) + STCP_VARIANTS > c->npages)
		return 1;
	n = (uint32_t)(f->ring ? f->ring : body_npages) + STCP_VARIANTS;
	if (pages_alloc(c, n, &first) && (!evict || evict_for(c, n, f, &first)))
		return 1;
	if (f->ring) {
		f->h.first_page = first;
		err = ring_clear(c, f);
		if (!err)
			err = ring_fill(c, src, f, 0, 0, true);
		if (err) {
			err = err == -ESTALE ? 2 : err;
			goto out;
		}
	}
	for (uint64_t i = 0; i < stored; i++) {
		uint64_t left = f->size - i * STCP_PAGE_SIZE;
		size_t want =
			left < STCP_PAGE_SIZE ? (size_t)left : STCP_PAGE_SIZE;

		err = src_read(src, f, i * STCP_PAGE_SIZE, page, want);
		if (err) {
			log_warn("%s: %s", f->path,
				 err == -ESTALE ? "shorter than its size "
						  "(changed while being read)"
						: strerror(-err));
			err = 2;
			goto out;
		}
		memset(page + want, 0, STCP_PAGE_SIZE - want);
		err = page_write(c, first + STCP_VARIANTS + (uint32_t)i, page);
		if (err)
			goto out;
	}
	if (!src_unchanged(src, f)) {
		log_warn("%s: changed while being read", f->path);
		err = 2;
		goto out;
	}
	file_meta_of(f, &m);
	for (int v = 0; v < STCP_VARIANTS; v++) {
		struct stcp_resp r = { 0 };
		int hl = build_header((char *)page, (enum stcp_variant)v, &m);

		if (hl < 0) {
			err = hl;
			goto out;
		}
		r.hdr_page = first + (uint32_t)v;
		r.hdr_len = (uint32_t)hl;
		r.flags = STCP_RESP_VALID | variant_flags(v);
		if (variant_has_body(v)) {
			r.body_page = body_npages ? first + STCP_VARIANTS : 0;
			r.body_npages = (uint32_t)body_npages;
			r.body_len = f->size;
			if (f->ring) {
				r.flags |= STCP_RESP_WINDOWED;
				r.body_npages = f->ring;
			}
		}
		err = page_write(c, r.hdr_page, page);
		if (!err)
			err = resp_write(c, f->h.resp[v], &r);
		if (err)
			goto out;
		f->hdr_len[v] = (uint32_t)hl;
	}
	f->h.first_page = first;
	f->h.npages = n;
	f->resident = true;
	f->loaded = ++c->load_seq;
	return 0;
out:
	pages_mark(c, first, n, false);
	return err;
}

/*
 * Stores the object f describes (path, source, size, mtime_ns, and dev and
 * ino for a file, version and type for a blob), whose bytes src holds,
 * into new slots, and into pages if they have room (else its slots are
 * evicted and a request loads it); f gets the object. Nothing is published
 * in stcp_objects. Returns 0, 1 when the object was skipped (with a
 * warning), or a negative errno for a failure of the maps.
 */
static int store_object(struct stcp_cache *c, const struct obj_src *src,
			struct stcp_cache_file *f)
{
	uint64_t size = f->size;
	uint8_t page[STCP_PAGE_SIZE];
	struct file_meta m;
	int err = 0;

	held_init(&f->h);
	f->ring = ring_size(c, (size + STCP_PAGE_SIZE - 1) / STCP_PAGE_SIZE);
	if (!f->ring &&
	    (size + STCP_PAGE_SIZE - 1) / STCP_PAGE_SIZE + STCP_VARIANTS >
		    c->npages) {
		log_warn("%s: %" PRIu64 " bytes need more pages than the whole "
			 "cache has (%u); skipped (raise --cache-mb)",
			 f->path, size, c->npages);
		return 1;
	}
	f->obj.id = ++c->next_id;
	for (int v = 0; v < STCP_VARIANTS && !err; v++)
		err = resp_alloc(c, &f->h.resp[v]);
	if (err) {
		/* Slots when a request wants them (stcp_cache_slots). */
		held_free(c, &f->h);
		err = 0;
	}
	file_meta_of(f, &m);
	for (int v = 0; v < STCP_VARIANTS; v++) {
		int n = build_header((char *)page, (enum stcp_variant)v, &m);

		if (n < 0) {
			err = n;
			goto fail;
		}
		f->hdr_len[v] = (uint32_t)n;
		f->obj.resp[v] = f->h.resp[v] == NO_SLOT ? STCP_SLOT_NONE :
							   f->h.resp[v];
	}
	if (f->h.resp[0] == NO_SLOT) {
		f->resident = false;
		c->unslotted_loads++;
		goto meta;
	}
	f->given = c->key_gen(c);
	err = load_pages(c, src, f, false);
	if (err == 2) {
		log_warn("%s: skipped until the next reload", f->path);
		err = 1;
		goto fail;
	}
	if (err == 1) {
		/* No room now: a request will load it (a cache miss). */
		err = write_evicted(c, f);
		if (err)
			goto fail;
		c->not_resident_loads++;
	}
	if (err)
		goto fail;
meta:
	f->obj.size = size;
	f->obj.mtime = f->mtime_ns;
	f->obj.source = f->source;
	f->obj.etag_hash = stcp_http_hash(m.etag, strlen(m.etag));
	{
		char weak[sizeof(m.etag) + 2];

		snprintf(weak, sizeof(weak), "W/%s", m.etag);
		f->obj.etag_weak_hash = stcp_http_hash(weak, strlen(weak));
	}
	return 0;
fail:
	if (err < 0)
		log_err("%s: cannot write the cache maps: %s", f->path,
			strerror(-err));
	held_free(c, &f->h);
	return err;
}

/* A file under the root: the open fd, whose stat is st. */
static int store_file(struct stcp_cache *c, int fd, const struct stat *st,
		      struct stcp_cache_file *f)
{
	const struct obj_src src = { .fd = fd };

	f->source = STCP_SRC_ROOT;
	f->dev = (uint64_t)st->st_dev;
	f->ino = (uint64_t)st->st_ino;
	f->size = (uint64_t)st->st_size;
	f->mtime_ns = mtime_ns_of(st);
	return store_object(c, &src, f);
}

static struct stcp_cache_file *file_of_slot(struct stcp_cache *c,
					     uint32_t slot)
{
	if (slot == NO_SLOT)
		return NULL;
	for (size_t i = 0; i < c->nfiles; i++) {
		for (int v = 0; v < STCP_VARIANTS; v++) {
			if (c->files[i].h.resp[v] == slot)
				return &c->files[i];
		}
	}
	return NULL;
}

/* Opens f under the root; the file must still be the one loaded. */
static int open_loaded(struct stcp_cache *c, const struct stcp_cache_file *f)
{
	char dir[STCP_PATH_LEN];
	const char *name = strrchr(f->path, '/') + 1;
	struct stat st;
	int dfd, fd;

	if (c->rootfd < 0)
		return -EBADF;
	snprintf(dir, sizeof(dir), "%.*s", (int)(name - f->path), f->path);
	dfd = open_beneath(c->rootfd, dir);
	if (dfd < 0)
		return dfd;
	fd = openat(dfd, name,
		    FILE_OPEN_FLAGS);
	if (fd < 0) {
		fd = -errno;
		close(dfd);
		return fd;
	}
	close(dfd);
	if (fstat(fd, &st) || !same_file(f, &st)) {
		close(fd);
		return -ESTALE;
	}
	return fd;
}

/* The bytes of the version of f that its slots hold: from the root, or
 * from the blob's source. -ESTALE when that version is gone. */
static int src_open(struct stcp_cache *c, const struct stcp_cache_file *f,
		    struct obj_src *s)
{
	uint64_t len = 0;
	uint8_t *buf = NULL;
	int err;

	s->fd = -1;
	s->buf = s->own = NULL;
	if (f->source == STCP_SRC_ROOT) {
		int fd = open_loaded(c, f);

		if (fd < 0)
			return fd;
		s->fd = fd;
		return 0;
	}
	if (!c->blob_fetch)
		return -ENOENT;
	err = c->blob_fetch(c->blob_ctx, f->path, f->version, &buf, &len);
	if (err)
		return err;
	if (len != f->size) {
		free(buf);
		return -ESTALE;
	}
	s->buf = s->own = buf;
	return 0;
}

/* Retires range response i (its slot and pages wait like a replaced
 * file's) and forgets it. */
static void range_retire(struct stcp_cache *c, size_t i)
{
	if (c->ranges_fd >= 0)
		bpf_map_delete_elem(c->ranges_fd, &c->ranges[i].key);
	held_retire(c, &c->ranges[i].h);
	c->ranges[i] = c->ranges[--c->nranges];
}

static void ranges_retire_all(struct stcp_cache *c)
{
	while (c->nranges)
		range_retire(c, c->nranges - 1);
}

/* Writes a 206 or 416 for f into a new slot and pages; h gets them. */
static int range_build(struct stcp_cache *c, struct stcp_cache_file *f,
		       const struct obj_src *src, uint64_t first, uint64_t last,
		       struct held *h)
{
	bool sat = first != STCP_RANGE_416;
	uint64_t len = sat ? last - first + 1 : 0;
	uint32_t body_np = (uint32_t)((len + STCP_PAGE_SIZE - 1) /
				      STCP_PAGE_SIZE);
	uint8_t page[STCP_PAGE_SIZE];
	struct stcp_resp r = { 0 };
	struct file_meta m;
	int n, err;

	held_init(h);
	if (resp_alloc(c, &h->resp[0]))
		return -ENOSPC;
	h->npages = body_np + 1;
	if (pages_alloc(c, h->npages, &h->first_page) &&
	    evict_for(c, h->npages, f, &h->first_page)) {
		h->npages = 0;
		return -ENOSPC;
	}
	file_meta_of(f, &m);
	memset(page, 0, sizeof(page));
	if (sat)
		n = snprintf((char *)page, sizeof(page),
			     "HTTP/1.1 206 Partial Content\r\n"
			     "Server: stcp\r\n"
			     "Content-Length: %" PRIu64 "\r\n"
			     "Content-Type: %s\r\n"
			     "Content-Range: bytes %" PRIu64 "-%" PRIu64
			     "/%" PRIu64 "\r\n"
			     "ETag: %s\r\n"
			     "Last-Modified: %s\r\n"
			     "Connection: close\r\n\r\n",
			     len, m.type, first, last, f->size, m.etag,
			     m.last_modified);
	else
		n = snprintf((char *)page, sizeof(page),
			     "HTTP/1.1 416 Range Not Satisfiable\r\n"
			     "Server: stcp\r\n"
			     "Content-Length: 0\r\n"
			     "Content-Range: bytes */%" PRIu64 "\r\n"
			     "Connection: close\r\n\r\n",
			     f->size);
	err = page_write(c, h->first_page, page);
	for (uint32_t i = 0; !err && i < body_np; i++) {
		uint64_t off = (uint64_t)i * STCP_PAGE_SIZE;
		size_t want = len - off < STCP_PAGE_SIZE ? (size_t)(len - off) :
							   STCP_PAGE_SIZE;
		err = src_read(src, f, first + off, page, want);
		if (err)
			return err;
		memset(page + want, 0, STCP_PAGE_SIZE - want);
		err = page_write(c, h->first_page + 1 + i, page);
	}
	if (err)
		return err;
	r.hdr_page = h->first_page;
	r.hdr_len = (uint32_t)n;
	r.flags = STCP_RESP_VALID;
	if (sat) {
		r.flags |= STCP_RESP_HAS_BODY;
		r.body_page = h->first_page + 1;
		r.body_npages = body_np;
		r.body_len = len;
	}
	return resp_write(c, h->resp[0], &r);
}

int stcp_cache_range(struct stcp_cache *c, uint32_t slot200, uint64_t first,
		     uint64_t last)
{
	struct stcp_range_key k = { .slot = slot200, .first = first,
				    .last = last };
	struct stcp_cache_file *f = file_of_slot(c, slot200);
	struct obj_src src = { .fd = -1 };
	struct held h;
	uint32_t use = slot200;
	int err;

	if (c->ranges_fd < 0)
		return -EBADF;
	if (!f || f->h.resp[STCP_V_200_CLOSE] != slot200)
		return -ENOENT;
	if (first != STCP_RANGE_416 && (first > last || last >= f->size))
		return -EINVAL;
	if (!c->ranges) {
		c->ranges = calloc(STCP_MAX_RANGES, sizeof(*c->ranges));
		if (!c->ranges)
			return -ENOMEM;
	}
	if (c->nranges == STCP_MAX_RANGES)
		range_retire(c, 0);
	err = src_open(c, f, &src);
	if (err)
		return err;
	err = range_build(c, f, &src, first, last, &h);
	src_close(&src);
	if (!err) {
		use = h.resp[0];
		c->ranges[c->nranges].key = k;
		c->ranges[c->nranges++].h = h;
		c->ranges_built++;
	} else {
		log_warn("%s: cannot build the response to bytes %" PRIu64
			 "-%" PRIu64 " (%s); the whole 200 answers it",
			 f->path, first, last, strerror(-err));
		held_free(c, &h);
	}
	if (bpf_map_update_elem(c->ranges_fd, &k, &use, BPF_ANY)) {
		err = -errno;
		if (use != slot200)
			range_retire(c, c->nranges - 1);
		return err;
	}
	return 0;
}

int stcp_cache_fill(struct stcp_cache *c, uint32_t slot)
{
	struct stcp_cache_file *f = file_of_slot(c, slot);
	struct obj_src src = { .fd = -1 };
	int err;

	if (!f)
		return -ENOENT; /* replaced or deleted since */
	if (f->resident)
		return 0;
	/* -ESTALE when it changed on disk (or in Redis): this slot's
	 * version is gone, and the next reload (or Redis poll) stores the
	 * new one. */
	err = src_open(c, f, &src);
	if (err)
		return err;
	err = load_pages(c, &src, f, true);
	src_close(&src);
	if (err == 1) {
		warn_pending(c);
		return -ENOSPC;
	}
	if (err == 2)
		return -ESTALE;
	if (!err)
		c->fills++;
	return err;
}

/* f's version is gone from its source: its slots answer nothing any more,
 * so the fast path resets its downloads instead of leaving them waiting. */
static void slots_gone(struct stcp_cache *c, struct stcp_cache_file *f)
{
	for (int v = 0; v < STCP_VARIANTS; v++) {
		struct stcp_resp r = { 0 };

		if (f->h.resp[v] != NO_SLOT)
			resp_write(c, f->h.resp[v], &r);
	}
	f->resident = false;
}

int stcp_cache_window(struct stcp_cache *c, uint32_t slot, uint64_t first,
		      uint64_t last, bool ahead)
{
	struct stcp_cache_file *f = file_of_slot(c, slot);
	int err;

	if (!f)
		return -ENOENT;
	if (!f->ring || !f->resident)
		return ahead ? stcp_cache_fill(c, slot) : 0;
	/* Ahead of the downloads, the fast path asks for a quarter ring,
	 * which may run past the end. */
	if (!ahead && last >= (f->size + STCP_PAGE_SIZE - 1) / STCP_PAGE_SIZE)
		last = (f->size + STCP_PAGE_SIZE - 1) / STCP_PAGE_SIZE - 1;
	if (last < first || last - first >= f->ring / 2 ||
	    last >= (f->size + STCP_PAGE_SIZE - 1) / STCP_PAGE_SIZE)
		return -EINVAL;
	err = ring_fill(c, NULL, f, first, last, ahead);
	if (err == -ESTALE) {
		log_info("%s: changed since it was stored: its downloads are "
			 "reset until the next reload",
			 f->path);
		slots_gone(c, f);
	}
	return err;
}

/* ---- objects beyond the slots (include/stcp_cache.h STCP_SLOT_NONE) ---- */

/* The key generation when a request last named f's slots (0: never). */
static uint32_t slots_gen(const struct stcp_cache *c,
			  const struct stcp_cache_file *f)
{
	uint32_t g = 0, t;

	for (int v = 0; v < STCP_VARIANTS; v++) {
		if (!bpf_map_lookup_elem(c->slot_gen_fd, &f->h.resp[v], &t) &&
		    (int32_t)(t - g) > 0)
			g = t;
	}
	return g;
}

/* Whether no download of f's slots can be alive: none was asked for since
 * two key rotations ago (a download dies with its handshake's key), and
 * f was given them before that (f->given is the generation then). */
static bool slots_idle(const struct stcp_cache *c,
		       const struct stcp_cache_file *f, uint32_t gen)
{
	return key_rotated_twice(f->given, gen) &&
	       key_rotated_twice(slots_gen(c, f), gen);
}

/* Takes the slots of the least recently requested idle object: no
 * request finds them first, then, 2 ms later, none has named them since,
 * then its pages and slots are freed. Returns 0 or -ENOSPC. */
static int slots_take(struct stcp_cache *c, const struct stcp_cache_file *keep)
{
	uint32_t gen = c->key_gen(c);

	for (int tries = 0; tries < 8; tries++) {
		struct stcp_cache_file *v = NULL;
		uint32_t vuse = 0;

		for (size_t i = 0; i < c->nfiles; i++) {
			struct stcp_cache_file *f = &c->files[i];
			uint32_t u;

			if (f == keep || f->h.resp[0] == NO_SLOT ||
			    !slots_idle(c, f, gen))
				continue;
			u = file_last_use(c, f);
			if (!v || u < vuse) {
				v = f;
				vuse = u;
			}
		}
		if (!v)
			return -ENOSPC;
		for (int i = 0; i < STCP_VARIANTS; i++)
			v->obj.resp[i] = STCP_SLOT_NONE;
		if (publish(c, v))
			return -EIO;
		nanosleep(&(struct timespec){ .tv_nsec = EVICT_QUIESCE_NS },
			  NULL);
		if (!slots_idle(c, v, gen)) {
			/* A request came in between: it keeps them. */
			for (int i = 0; i < STCP_VARIANTS; i++)
				v->obj.resp[i] = v->h.resp[i];
			publish(c, v);
			continue;
		}
		ranges_retire_slot(c, v->h.resp[STCP_V_200_CLOSE]);
		held_free(c, &v->h);
		v->resident = false;
		c->slot_takes++;
		log_debug("cache: %s gave up its slots", v->path);
		return 0;
	}
	return -ENOSPC;
}

int stcp_cache_slots(struct stcp_cache *c, uint32_t id)
{
	struct stcp_cache_file *f = NULL;
	struct obj_src src = { .fd = -1 };
	int err = 0;

	slots_unbusy(c);
	for (size_t i = 0; i < c->nfiles && !f; i++) {
		if (c->files[i].obj.id == id)
			f = &c->files[i];
	}
	if (!f)
		return -ENOENT;
	if (f->h.resp[0] != NO_SLOT)
		return 0;
	if (f->busy_until > c->clock())
		return -ENOSPC;
	for (int v = 0; v < STCP_VARIANTS && !err; v++) {
		err = resp_alloc(c, &f->h.resp[v]);
		if (err) {
			err = slots_take(c, f);
			if (!err)
				err = resp_alloc(c, &f->h.resp[v]);
		}
	}
	if (err) {
		held_free(c, &f->h);
		c->slots_full++;
		log_info("cache: %s: every response slot is in use; 503 for "
			 "a second",
			 f->path);
		f->busy_until = c->clock() + 1;
		for (int v = 0; v < STCP_VARIANTS; v++)
			f->obj.resp[v] = STCP_RESP_503;
		publish(c, f);
		return -ENOSPC;
	}
	f->given = c->key_gen(c);
	err = src_open(c, f, &src);
	if (!err) {
		err = load_pages(c, &src, f, true);
		if (err == 2)
			err = -ESTALE;
	}
	src_close(&src);
	if (err == 1 || err == -ESTALE)
		err = write_evicted(c, f); /* a miss tries again */
	for (int v = 0; v < STCP_VARIANTS; v++)
		f->obj.resp[v] = f->h.resp[v];
	if (!err)
		err = publish(c, f);
	if (err) {
		held_free(c, &f->h);
		for (int v = 0; v < STCP_VARIANTS; v++)
			f->obj.resp[v] = STCP_SLOT_NONE;
		publish(c, f);
		return err;
	}
	c->slot_gives++;
	return 0;
}

/* Objects that found no slots ask again once their second is over. */
static void slots_unbusy(struct stcp_cache *c)
{
	time_t now = c->clock();

	for (size_t i = 0; i < c->nfiles; i++) {
		struct stcp_cache_file *f = &c->files[i];

		if (!f->busy_until || f->busy_until > now)
			continue;
		f->busy_until = 0;
		if (f->h.resp[0] != NO_SLOT)
			continue;
		for (int v = 0; v < STCP_VARIANTS; v++)
			f->obj.resp[v] = STCP_SLOT_NONE;
		publish(c, f);
	}
}

static int write_fixed(struct stcp_cache *c, int i)
{
	char page[STCP_PAGE_SIZE], body[96];
	struct stcp_resp r = { 0 };
	uint32_t slot = fixed_resps[i].slot, first;
	int blen, hlen, err;

	blen = snprintf(body, sizeof(body), "%d %s\n", fixed_resps[i].code,
			fixed_resps[i].reason);
	err = pages_alloc(c, 2, &first);
	if (err) {
		log_err("cache: %u pages cannot hold the fixed responses",
			c->npages);
		return err;
	}
	memset(page, 0, sizeof(page));
	hlen = snprintf(page, sizeof(page),
			"HTTP/1.1 %d %s\r\n"
			"Server: stcp\r\n"
			"Content-Length: %d\r\n"
			"Content-Type: text/plain; charset=utf-8\r\n"
			"%s"
			"Connection: close\r\n"
			"\r\n",
			fixed_resps[i].code, fixed_resps[i].reason, blen,
			fixed_resps[i].extra);
	err = page_write(c, first, page);
	if (err)
		return err;
	memset(page, 0, sizeof(page));
	memcpy(page, body, (size_t)blen);
	err = page_write(c, first + 1, page);
	if (err)
		return err;
	r.hdr_page = first;
	r.hdr_len = (uint32_t)hlen;
	r.body_page = first + 1;
	r.body_npages = 1;
	r.body_len = (uint64_t)blen;
	r.flags = STCP_RESP_VALID | STCP_RESP_HAS_BODY;
	if (!c->resp_used[slot]) {
		c->resp_used[slot] = 1;
		c->resps_used++;
	}
	return resp_write(c, slot, &r);
}

/* ---- stcp_objects ---- */

static void key_set(struct stcp_obj_key *k, const char *path)
{
	memset(k, 0, sizeof(*k));
	/* host "" stands for any host; paths were checked to fit. */
	memcpy(k->path, path, strnlen(path, sizeof(k->path) - 1));
}

/* "/a/index.html" -> "/a/". */
static void index_path(const char *path, char *out)
{
	size_t n = strlen(path) - strlen(INDEX_NAME);

	memcpy(out, path, n);
	out[n] = '\0';
}

static int publish(struct stcp_cache *c, const struct stcp_cache_file *f)
{
	struct stcp_obj_key k;
	char dir[STCP_PATH_LEN];

	key_set(&k, f->path);
	if (bpf_map_update_elem(c->objects_fd, &k, &f->obj, BPF_ANY))
		return -errno;
	if (!f->has_index)
		return 0;
	index_path(f->path, dir);
	key_set(&k, dir);
	if (bpf_map_update_elem(c->objects_fd, &k, &f->obj, BPF_ANY))
		return -errno;
	return 0;
}

static void unpublish(struct stcp_cache *c, const struct stcp_cache_file *f)
{
	struct stcp_obj_key k;
	char dir[STCP_PATH_LEN];

	key_set(&k, f->path);
	if (bpf_map_delete_elem(c->objects_fd, &k) && errno != ENOENT)
		log_warn("cache: cannot remove %s: %s", f->path,
			 strerror(errno));
	if (!f->has_index)
		return;
	index_path(f->path, dir);
	key_set(&k, dir);
	if (bpf_map_delete_elem(c->objects_fd, &k) && errno != ENOENT)
		log_warn("cache: cannot remove %s: %s", dir, strerror(errno));
}

static int objects_clear_all(int fd)
{
	struct stcp_obj_key k;

	while (!bpf_map_get_next_key(fd, NULL, &k)) {
		if (bpf_map_delete_elem(fd, &k))
			return -errno;
	}
	return errno == ENOENT ? 0 : -errno;
}

void stcp_cache_clear(struct stcp_cache *c)
{
	for (size_t i = 0; i < c->nfiles; i++)
		unpublish(c, &c->files[i]);
}

/* ---- init ---- */

static int map_info(int fd, struct bpf_map_info *info)
{
	__u32 len = sizeof(*info);

	memset(info, 0, sizeof(*info));
	return bpf_obj_get_info_by_fd(fd, info, &len) ? -errno : 0;
}

/* Most files the cache can hold, slots or not: three quarters of
 * stcp_objects, whose other entries are for index.html's directories. */
static size_t max_files(const struct stcp_cache *c)
{
	(void)c;
	return STCP_MAX_OBJECTS / 4 * 3;
}

void stcp_cache_destroy(struct stcp_cache *c)
{
	free(c->page_bits);
	free(c->resp_used);
	free(c->resp_gen);
	free(c->files);
	free(c->pending);
	free(c->ranges);
	if (c->rootfd >= 0)
		close(c->rootfd);
	memset(c, 0, sizeof(*c));
	c->pages_fd = c->resps_fd = c->objects_fd = -1;
	c->keys_fd = c->cfg_fd = c->slot_use_fd = c->rootfd = -1;
	c->ranges_fd = c->tags_fd = c->slot_gen_fd = -1;
}

int stcp_cache_init(struct stcp_cache *c, int pages_fd, int resps_fd,
		    int objects_fd)
{
	struct bpf_map_info pi, ri, oi;
	int err;

	memset(c, 0, sizeof(*c));
	c->pages_fd = pages_fd;
	c->resps_fd = resps_fd;
	c->objects_fd = objects_fd;
	c->grace_s = STCP_CACHE_GRACE_S;
	c->clock = mono_now;
	c->key_gen = key_gen_from_maps;
	c->keys_fd = c->cfg_fd = c->slot_use_fd = c->rootfd = -1;
	c->ranges_fd = c->tags_fd = c->slot_gen_fd = -1;
	err = map_info(pages_fd, &pi);
	if (!err)
		err = map_info(resps_fd, &ri);
	if (!err)
		err = map_info(objects_fd, &oi);
	if (err) {
		log_err("cache: cannot inspect the cache maps: %s",
			strerror(-err));
		goto fail;
	}
	if (pi.value_size != STCP_PAGE_SIZE ||
	    ri.value_size != sizeof(struct stcp_resp) ||
	    ri.max_entries <= STCP_RESP_FIXED_END ||
	    oi.key_size != sizeof(struct stcp_obj_key) ||
	    oi.value_size != sizeof(struct stcp_obj) || !pi.max_entries) {
		log_err("cache: the cache maps do not have this build's "
			"layout");
		err = -EINVAL;
		goto fail;
	}
	c->npages = pi.max_entries;
	c->nresps = ri.max_entries;
	c->page_bits = calloc((c->npages + 63) / 64, sizeof(*c->page_bits));
	c->resp_used = calloc(c->nresps, sizeof(*c->resp_used));
	c->resp_gen = calloc(c->nresps, sizeof(*c->resp_gen));
	c->files = calloc(max_files(c), sizeof(*c->files));
	if (!c->page_bits || !c->resp_used || !c->resp_gen || !c->files) {
		err = -ENOMEM;
		log_err("cache: out of memory");
		goto fail;
	}

	/* Nothing may point at a slot while it is rewritten: objects first. */
	err = objects_clear_all(objects_fd);
	if (err) {
		log_err("cache: cannot empty %s: %s", STCP_MAP_OBJECTS,
			strerror(-err));
		goto fail;
	}
	for (uint32_t s = 0; s < c->nresps; s++) {
		struct stcp_resp r;

		if (bpf_map_lookup_elem(resps_fd, &s, &r)) {
			err = -errno;
			log_err("cache: cannot read %s: %s", STCP_MAP_RESPS,
				strerror(-err));
			goto fail;
		}
		c->resp_gen[s] = r.gen;
		if (!(r.flags & STCP_RESP_VALID) || s < STCP_RESP_NUM_FIXED)
			continue;
		memset(&r, 0, sizeof(r));
		err = resp_write(c, s, &r);
		if (err) {
			log_err("cache: cannot write %s: %s", STCP_MAP_RESPS,
				strerror(-err));
			goto fail;
		}
	}
	for (int i = 0; i < STCP_RESP_NUM_FIXED; i++) {
		err = write_fixed(c, i);
		if (err) {
			if (err != -ENOSPC)
				log_err("cache: cannot write the fixed "
					"responses: %s",
					strerror(-err));
			goto fail;
		}
	}
	return 0;
fail:
	stcp_cache_destroy(c);
	return err;
}

/* ---- the walk ---- */

struct load {
	struct stcp_cache *c;
	int rootfd;
	struct stcp_cache_file *next; /* capacity max_files(c) */
	size_t nnext;
	char (*todo)[STCP_PATH_LEN]; /* directories still to read */
	size_t ntodo, todo_cap;
	uint32_t added, changed, removed, unchanged, skipped;
};

static int file_cmp(const void *a, const void *b)
{
	const struct stcp_cache_file *x = a, *y = b;

	return strcmp(x->path, y->path);
}

static struct stcp_cache_file *find_file(struct stcp_cache *c, const char *path)
{
	struct stcp_cache_file k;

	memcpy(k.path, path, strnlen(path, sizeof(k.path) - 1) + 1);
	k.path[sizeof(k.path) - 1] = '\0';
	return bsearch(&k, c->files, c->nfiles, sizeof(*c->files), file_cmp);
}

/* Cannot overflow: every file in next holds STCP_VARIANTS slots. */
static void push_next(struct load *L, const struct stcp_cache_file *f)
{
	if (L->nnext < max_files(L->c))
		L->next[L->nnext++] = *f;
}

static int push_todo(struct load *L, const char *path)
{
	if (L->ntodo == L->todo_cap) {
		size_t cap = L->todo_cap ? 2 * L->todo_cap : 16;
		void *p = realloc(L->todo, cap * sizeof(*L->todo));

		if (!p)
			return -ENOMEM;
		L->todo = p;
		L->todo_cap = cap;
	}
	snprintf(L->todo[L->ntodo++], STCP_PATH_LEN, "%s", path);
	return 0;
}

/* Bytes the paths may not hold for now: controls, space, DEL, and '%'
 * (the fast path does not decode percent-encoding yet). */
static bool name_ok(const char *name)
{
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (*p < 0x21 || *p == 0x7f || *p == '%')
			return false;
	}
	return true;
}

/* Opens rel ("/" or "/a/b/") under the root without leaving it and
 * without following any symlink. */
static int open_beneath(int rootfd, const char *rel)
{
	struct open_how how = {
		.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
			   RESOLVE_NO_MAGICLINKS,
	};
	const char *p = rel[1] ? rel + 1 : ".";
	long fd;

	fd = syscall(SYS_openat2, rootfd, p, &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

static bool same_file(const struct stcp_cache_file *f, const struct stat *st)
{
	return f->dev == (uint64_t)st->st_dev &&
	       f->ino == (uint64_t)st->st_ino &&
	       f->size == (uint64_t)st->st_size &&
	       f->mtime_ns == mtime_ns_of(st);
}

/* One regular file; returns 0 or a fatal negative errno. */
static int load_file(struct load *L, int dfd, const char *name,
		     const char *path, const struct stat *lst)
{
	struct stcp_cache *c = L->c;
	struct stcp_cache_file *old = find_file(c, path);
	struct stcp_cache_file nf;
	struct stat st;
	size_t plen = strlen(path);
	int fd, err;

	if (old && old->source != STCP_SRC_ROOT) {
		/* A blob at this path hides the file. */
		log_debug("%s: served from Redis, the file is not loaded",
			  path);
		old->seen = true;
		push_next(L, old);
		return 0;
	}
	if (old && same_file(old, lst)) {
		old->seen = true;
		L->unchanged++;
		push_next(L, old);
		return 0;
	}
	if (L->nnext >= max_files(c)) {
		log_warn("%s: more than %zu files; skipped", path,
			 max_files(c));
		goto skip;
	}
	memset(&nf, 0, sizeof(nf));
	memcpy(nf.path, path, plen + 1); /* plen < STCP_PATH_LEN */
	nf.has_index = plen >= sizeof(INDEX_NAME) &&
		       !strcmp(path + plen - strlen(INDEX_NAME), INDEX_NAME) &&
		       path[plen - strlen(INDEX_NAME) - 1] == '/';
	held_init(&nf.h);

	fd = openat(dfd, name,
		    FILE_OPEN_FLAGS);
	if (fd < 0) {
		log_warn("%s: cannot open: %s; skipped", path, strerror(errno));
		goto skip;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) ||
	    st.st_ino != lst->st_ino || st.st_dev != lst->st_dev) {
		log_warn("%s: changed while being opened; skipped", path);
		close(fd);
		goto skip;
	}
	err = store_file(c, fd, &st, &nf);
	close(fd);
	if (err < 0)
		return err;
	if (err)
		goto skip;
	err = publish(c, &nf);
	if (err) {
		log_err("%s: cannot write %s: %s", path, STCP_MAP_OBJECTS,
			strerror(-err));
		/* Possibly published in part: keep it, like a good one. */
	}
	if (old) {
		/* Downloads of the old version may still read its pages. */
		held_retire(c, &old->h);
		old->seen = true;
		L->changed++;
	} else {
		L->added++;
	}
	push_next(L, &nf);
	return err;
skip:
	L->skipped++;
	if (old) {
		log_warn("%s: keeping the version loaded before", path);
		old->seen = true;
		push_next(L, old);
	}
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads one directory: its files now, its subdirectories onto L->todo. */
static int load_dir(struct load *L, const char *rel)
{
	char **names = NULL, **subdirs = NULL;
	size_t nnames = 0, cap = 0, nsub = 0;
	size_t rlen = strlen(rel);
	struct dirent *de;
	DIR *d = NULL;
	int dfd, err = 0;

	dfd = open_beneath(L->rootfd, rel);
	if (dfd < 0) {
		log_warn("%s: cannot open the directory: %s; skipped", rel,
			 strerror(-dfd));
		L->skipped++;
		return 0;
	}
	d = fdopendir(dfd);
	if (!d) {
		err = -errno;
		close(dfd);
		return err;
	}
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (nnames == cap) {
			void *p;

			cap = cap ? 2 * cap : 64;
			p = realloc(names, cap * sizeof(*names));
			if (!p) {
				err = -ENOMEM;
				goto out;
			}
			names = p;
		}
		names[nnames] = strdup(de->d_name);
		if (!names[nnames]) {
			err = -ENOMEM;
			goto out;
		}
		nnames++;
		errno = 0;
	}
	if (errno) {
		log_warn("%s: cannot read the directory: %s; skipped the rest",
			 rel, strerror(errno));
		L->skipped++;
	}
	qsort(names, nnames, sizeof(*names), name_cmp);
	subdirs = calloc(nnames ? nnames : 1, sizeof(*subdirs));
	if (!subdirs) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nnames && !err; i++) {
		const char *name = names[i];
		size_t len = rlen + strlen(name);
		char path[STCP_PATH_LEN];
		struct stat st;

		if (!name_ok(name)) {
			log_info("%s: skipped '%s': spaces, control bytes and "
				 "'%%' are not served yet",
				 rel, name);
			L->skipped++;
			continue;
		}
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW)) {
			log_warn("%s%s: cannot stat: %s; skipped", rel, name,
				 strerror(errno));
			L->skipped++;
			continue;
		}
		/* A directory needs room for its "/" and one more byte. */
		if (len + (S_ISDIR(st.st_mode) ? 2 : 0) >= STCP_PATH_LEN) {
			log_warn("%s%s%s: path longer than %d bytes; skipped",
				 rel, name, S_ISDIR(st.st_mode) ? "/" : "",
				 STCP_PATH_LEN - 1);
			L->skipped++;
			continue;
		}
		memcpy(path, rel, rlen);
		memcpy(path + rlen, name, len - rlen + 1);
		if (S_ISLNK(st.st_mode)) {
			log_info("%s: skipped: a symlink (not followed)", path);
			L->skipped++;
		} else if (S_ISDIR(st.st_mode)) {
			subdirs[nsub++] = names[i];
		} else if (S_ISREG(st.st_mode)) {
			err = load_file(L, dirfd(d), name, path, &st);
		} else {
			log_info("%s: skipped: not a regular file", path);
			L->skipped++;
		}
	}
	/* Reversed, so that the stack pops them in name order. */
	while (nsub && !err) {
		const char *name = subdirs[--nsub];
		size_t nlen = strlen(name);
		char path[STCP_PATH_LEN];

		/* Checked above: rlen + nlen + 2 <= STCP_PATH_LEN - 1. */
		memcpy(path, rel, rlen);
		memcpy(path + rlen, name, nlen);
		memcpy(path + rlen + nlen, "/", 2);
		err = push_todo(L, path);
	}
out:
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	free(subdirs);
	closedir(d);
	return err;
}

/*
 * After the walk: files not seen again are gone (only when the walk was
 * complete, else they are kept), and next becomes the file list.
 */
static void finish_load(struct load *L, bool complete)
{
	struct stcp_cache *c = L->c;

	for (size_t i = 0; i < c->nfiles; i++) {
		struct stcp_cache_file *f = &c->files[i];

		if (f->seen)
			continue;
		if (f->source != STCP_SRC_ROOT) {
			/* A blob: the root's load does not decide. */
			push_next(L, f);
			continue;
		}
		if (complete) {
			unpublish(c, f);
			held_retire(c, &f->h);
			L->removed++;
		} else {
			push_next(L, f);
		}
	}
	for (size_t i = 0; i < L->nnext; i++)
		L->next[i].seen = false;
	qsort(L->next, L->nnext, sizeof(*L->next), file_cmp);
	free(c->files);
	c->files = L->next;
	c->nfiles = L->nnext;
	L->next = NULL;
	c->last.added = L->added;
	c->last.changed = L->changed;
	c->last.removed = L->removed;
	c->last.unchanged = L->unchanged;
	c->last.skipped = L->skipped;
}

int stcp_cache_load(struct stcp_cache *c, const char *root)
{
	struct load L = { .c = c, .rootfd = -1 };
	int err = 0;

	stcp_cache_reap(c);
	/* A range response belongs to one version of its file. */
	ranges_retire_all(c);
	for (size_t i = 0; i < c->nfiles; i++)
		c->files[i].seen = false;
	L.next = calloc(max_files(c), sizeof(*L.next));
	if (!L.next) {
		log_err("cache: out of memory");
		return -ENOMEM;
	}
	L.rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (L.rootfd < 0) {
		err = -errno;
		log_err("cache: cannot open %s: %s", root, strerror(-err));
		goto out;
	}
	err = push_todo(&L, "/");
	while (!err && L.ntodo) {
		char rel[STCP_PATH_LEN];

		memcpy(rel, L.todo[--L.ntodo], sizeof(rel));
		err = load_dir(&L, rel);
	}
	if (err == -ENOMEM)
		log_err("cache: out of memory while reading %s", root);
	else if (err)
		log_err("cache: loading %s failed: %s", root, strerror(-err));
	if (!err) {
		/* Kept for the cache misses of what this load stored. */
		if (c->rootfd >= 0)
			close(c->rootfd);
		c->rootfd = L.rootfd;
	} else {
		close(L.rootfd);
	}
out:
	finish_load(&L, !err);
	free(L.next);
	free(L.todo);
	return err;
}

void stcp_cache_get_stats(const struct stcp_cache *c,
			  struct stcp_cache_stats *s)
{
	*s = c->last;
	s->files = (uint32_t)c->nfiles;
	s->keys = 0;
	s->bytes = 0;
	s->file_pages = 0;
	for (size_t i = 0; i < c->nfiles; i++) {
		s->keys += c->files[i].has_index ? 2 : 1;
		s->bytes += c->files[i].size;
		s->file_pages += c->files[i].h.npages;
	}
	s->pages_used = c->pages_used;
	s->npages = c->npages;
	s->resps_used = c->resps_used;
	s->nresps = c->nresps;
	s->pending = (uint32_t)c->npending;
	s->pending_pages = 0;
	for (size_t i = 0; i < c->npending; i++)
		s->pending_pages += c->pending[i].h.npages;
	s->resident = 0;
	s->redis = 0;
	for (size_t i = 0; i < c->nfiles; i++) {
		s->resident += c->files[i].resident;
		s->redis += c->files[i].source == STCP_SRC_REDIS;
	}
	s->evictions = c->evictions;
	s->fills = c->fills;
	s->windowed = 0;
	for (size_t i = 0; i < c->nfiles; i++)
		s->windowed += c->files[i].ring != 0;
	s->window_fills = c->window_fills;
	s->window_pages = c->window_pages;
	s->unslotted = 0;
	for (size_t i = 0; i < c->nfiles; i++)
		s->unslotted += c->files[i].h.resp[0] == NO_SLOT;
	s->slot_gives = c->slot_gives;
	s->slot_takes = c->slot_takes;
	s->slots_full = c->slots_full;
}

/* ---- blobs: objects from Redis ---- */

const char *stcp_content_path_check(const char *path, size_t len)
{
	size_t seg = 0; /* where the current segment starts */

	if (!len || path[0] != '/')
		return "must start with '/'";
	if (len > STCP_PATH_LEN - 1)
		return "longer than 191 bytes";
	if (len == 1 || path[len - 1] == '/')
		return "ends with '/' (store DIR/index.html to serve DIR/)";
	for (size_t i = 1; i <= len; i++) {
		unsigned char ch = i < len ? (unsigned char)path[i] : '/';
		size_t n = i - seg - 1;

		if (ch == '/') {
			if (!n)
				return "has an empty segment ('//')";
			if ((n == 1 && path[seg + 1] == '.') ||
			    (n == 2 && path[seg + 1] == '.' &&
			     path[seg + 2] == '.'))
				return "has a '.' or '..' segment";
			seg = i;
			continue;
		}
		if (!ch)
			return "holds a NUL byte";
		if (ch < 0x21 || ch == 0x7f)
			return "holds a space or a control byte";
		if (ch == '%')
			return "holds '%' (percent-encoding is not decoded; "
			       "give the bytes themselves)";
		if (ch == '?' || ch == '#')
			return "holds '?' or '#', which end a request's path";
	}
	return NULL;
}

const char *stcp_content_type_check(const char *type, size_t len)
{
	if (!len)
		return "is empty";
	if (len > STCP_CONTENT_TYPE_MAX - 1)
		return "is longer than 127 bytes";
	if (type[0] == ' ')
		return "starts with a space";
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)type[i];

		if ((ch < 0x20 || ch >= 0x7f))
			return "holds a control or non-ASCII byte";
	}
	return NULL;
}

uint64_t stcp_cache_blob_version(const struct stcp_cache *c, const char *path)
{
	struct stcp_cache_file *f = find_file((struct stcp_cache *)c, path);

	return f && f->source == STCP_SRC_REDIS ? f->version : 0;
}

/* Retires the range responses built for the object whose 200 slot is
 * slot200: the slot goes back to the pool after the grace period, and an
 * entry naming it must not answer for its next owner. */
static void ranges_retire_slot(struct stcp_cache *c, uint32_t slot200)
{
	size_t i = 0;

	while (i < c->nranges) {
		if (c->ranges[i].key.slot == slot200)
			range_retire(c, i); /* moves the last one to i */
		else
			i++;
	}
}

/* Puts nf in the sorted list, in place of old (same path) if given. */
static void list_put(struct stcp_cache *c, struct stcp_cache_file *old,
		     const struct stcp_cache_file *nf)
{
	size_t i;

	if (old) {
		*old = *nf;
		return;
	}
	for (i = c->nfiles; i > 0 && strcmp(c->files[i - 1].path, nf->path) > 0;
	     i--)
		;
	memmove(&c->files[i + 1], &c->files[i],
		(c->nfiles - i) * sizeof(*c->files));
	c->files[i] = *nf;
	c->nfiles++;
}

static void blob_init(struct stcp_cache_file *f, const char *path)
{
	size_t plen = strlen(path);

	memset(f, 0, sizeof(*f));
	memcpy(f->path, path, plen + 1);
	f->has_index = plen >= sizeof(INDEX_NAME) &&
		       !strcmp(path + plen - strlen(INDEX_NAME), INDEX_NAME) &&
		       path[plen - strlen(INDEX_NAME) - 1] == '/';
	held_init(&f->h);
}

int stcp_cache_blob_put(struct stcp_cache *c, const struct stcp_cache_blob *b)
{
	size_t plen = strnlen(b->path, STCP_PATH_LEN);
	const struct obj_src src = { .fd = -1, .buf = b->body };
	struct stcp_cache_file *old;
	struct stcp_cache_file nf;
	const char *why;
	int err;

	why = stcp_content_path_check(b->path, plen);
	if (!why && b->type && b->type[0])
		why = stcp_content_type_check(b->type, strlen(b->type));
	if (!why && !b->version)
		why = "has no version";
	if (why) {
		log_warn("redis: object '%.*s' %s; skipped", (int)plen, b->path,
			 why);
		return 1;
	}
	old = find_file(c, b->path);
	if (old && old->source == STCP_SRC_REDIS && old->version == b->version)
		return 0;
	if (!old && c->nfiles >= max_files(c) - 1) {
		log_warn("%s: more than %zu objects; skipped", b->path,
			 max_files(c) - 1);
		return 1;
	}
	blob_init(&nf, b->path);
	nf.source = STCP_SRC_REDIS;
	nf.version = b->version;
	nf.size = b->size;
	nf.mtime_ns = b->mtime_ns;
	if (b->type)
		snprintf(nf.type, sizeof(nf.type), "%s", b->type);
	err = store_object(c, &src, &nf);
	if (err) {
		if (err > 0 && old)
			log_warn("%s: keeping the version loaded before",
				 b->path);
		return err;
	}
	err = publish(c, &nf);
	if (err)
		log_err("%s: cannot write %s: %s", b->path, STCP_MAP_OBJECTS,
			strerror(-err));
	if (old) {
		/* Downloads of the old version may still read its pages. */
		ranges_retire_slot(c, old->h.resp[STCP_V_200_CLOSE]);
		held_retire(c, &old->h);
	}
	/* Possibly published in part: kept, like a good one. */
	list_put(c, old, &nf);
	return err;
}

/* The file under the root at path, stored into f (not published); 0, or
 * nonzero when there is none that can be stored. */
static int root_file_load(struct stcp_cache *c, const char *path,
			  struct stcp_cache_file *f)
{
	const char *name = strrchr(path, '/') + 1;
	char dir[STCP_PATH_LEN];
	struct stat st;
	int dfd, fd, err;

	if (c->rootfd < 0)
		return -ENOENT;
	snprintf(dir, sizeof(dir), "%.*s", (int)(name - path), path);
	dfd = open_beneath(c->rootfd, dir);
	if (dfd < 0)
		return dfd;
	fd = openat(dfd, name, FILE_OPEN_FLAGS);
	err = fd < 0 ? -errno : 0;
	close(dfd);
	if (err)
		return err;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return -ENOENT;
	}
	blob_init(f, path);
	err = store_file(c, fd, &st, f);
	close(fd);
	return err;
}

static int path_cmp(const void *key, const void *elem)
{
	return strcmp(key, *(const char *const *)elem);
}

int stcp_cache_blob_prune(struct stcp_cache *c, const char *const *keep,
			  size_t n)
{
	int removed = 0;
	size_t i = 0;

	while (i < c->nfiles) {
		struct stcp_cache_file *f = &c->files[i];
		struct stcp_cache_file nf;
		struct held h;

		if (f->source != STCP_SRC_REDIS ||
		    (n && bsearch(f->path, keep, n, sizeof(*keep), path_cmp))) {
			i++;
			continue;
		}
		h = f->h;
		ranges_retire_slot(c, h.resp[STCP_V_200_CLOSE]);
		if (!root_file_load(c, f->path, &nf) && !publish(c, &nf)) {
			/* The file takes the path over: entries switched. */
			log_debug("%s: served from the root again", f->path);
			*f = nf;
			i++;
		} else {
			unpublish(c, f);
			memmove(f, f + 1, (c->nfiles - i - 1) * sizeof(*f));
			c->nfiles--;
		}
		held_retire(c, &h);
		removed++;
	}
	return removed;
}

/* ---- readers (stcpctl, tests) ---- */

int stcp_resp_read(int pages_fd, int resps_fd, uint32_t slot,
		   struct stcp_resp *r, char *hdr)
{
	struct stcp_page *pg;
	int err = 0;

	hdr[0] = '\0';
	if (bpf_map_lookup_elem(resps_fd, &slot, r))
		return -errno;
	if (!(r->flags & STCP_RESP_VALID))
		return -ENOENT;
	if (!r->hdr_len || r->hdr_len > STCP_PAGE_SIZE)
		return -EINVAL;
	pg = malloc(sizeof(*pg));
	if (!pg)
		return -ENOMEM;
	if (bpf_map_lookup_elem(pages_fd, &r->hdr_page, pg))
		err = -errno;
	else {
		memcpy(hdr, pg->data, r->hdr_len);
		hdr[r->hdr_len] = '\0';
	}
	free(pg);
	return err;
}

bool stcp_hdr_field(const char *hdr, const char *name, char *out, size_t len)
{
	size_t nlen = strlen(name);
	const char *p = strstr(hdr, "\r\n");

	while (p && p[2] != '\r' && p[2]) {
		const char *line = p + 2, *end = strstr(line, "\r\n");

		if (!end)
			break;
		if ((size_t)(end - line) > nlen && line[nlen] == ':' &&
		    !strncasecmp(line, name, nlen)) {
			const char *v = line + nlen + 1;

			while (*v == ' ' || *v == '\t')
				v++;
			snprintf(out, len, "%.*s", (int)(end - v), v);
			return true;
		}
		p = end;
	}
	return false;
}
