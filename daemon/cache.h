/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The content cache loader: walks a document root and stores every regular
 * file as complete HTTP responses in stcp_pages, stcp_resps and
 * stcp_objects (include/stcp_cache.h). stcpd owns the page and slot
 * allocators; a reload writes changed files into new pages and slots and
 * frees the old ones only after a grace period. Functions return 0 or a
 * negative errno.
 */
#ifndef STCP_DAEMON_CACHE_H
#define STCP_DAEMON_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "stcp_cache.h"

struct stcp_cache_file;
struct stcp_cache_pending;
struct stcp_cache_range;

/* What the cache holds now, and what the last load did. */
struct stcp_cache_stats {
	uint32_t files; /* cached files */
	uint32_t keys;	/* stcp_objects entries: files + "/dir/" index paths */
	uint64_t bytes; /* body bytes of the cached files */
	uint32_t file_pages; /* pages of the cached files (headers + bodies) */
	uint32_t pages_used; /* all pages in use: files, pending, fixed */
	uint32_t npages;     /* stcp_pages max_entries */
	uint32_t resps_used;
	uint32_t nresps;
	uint32_t pending; /* replaced files waiting for the grace period and
			   * two key rotations */
	uint32_t pending_pages; /* their pages */
	uint32_t resident; /* files whose bytes are in pages now */
	uint64_t evictions; /* files evicted to make room, ever */
	uint64_t fills;	    /* files loaded again for a cache miss, ever */
	uint32_t windowed; /* files with a windowed body (a ring of pages) */
	uint64_t window_fills; /* ring loads for a packet, ever */
	uint64_t window_pages; /* pages those loads wrote */
	uint32_t unslotted;    /* objects without slots now */
	uint64_t slot_gives, slot_takes, slots_full; /* STCP_SLOT_NONE */
	uint32_t redis;	    /* cached objects that came from Redis */
	/* The last load: */
	uint32_t added, changed, removed, unchanged, skipped;
};

struct stcp_cache {
	int pages_fd;
	int resps_fd;
	int objects_fd;
	uint32_t npages;
	uint32_t nresps;
	uint64_t *page_bits; /* bit set: page in use */
	uint32_t pages_used;
	uint8_t *resp_used;
	uint32_t *resp_gen; /* the gen last written to each slot */
	uint32_t resps_used;
	struct stcp_cache_file *files; /* sorted by path */
	size_t nfiles;
	struct stcp_cache_pending *pending;
	size_t npending;
	size_t pending_cap;
	unsigned int grace_s; /* STCP_CACHE_GRACE_S */
	/* Seconds on CLOCK_MONOTONIC, for the grace period; tests replace
	 * it with a clock they move. */
	time_t (*clock)(void);
	/*
	 * The generation of the current MAC key (stcp_keys, stcp_cfg). A
	 * download is bound to the key of its handshake and dies when that
	 * key is two rotations old, so what was retired under generation g
	 * is freed only once the current one is g + 2 or more (and the grace
	 * period is over). By default read from keys_fd and cfg_fd, which
	 * stcpd sets after stcp_cache_init; while they are -1 it returns 0
	 * and nothing retired is ever freed. Tests replace it.
	 */
	uint32_t (*key_gen)(const struct stcp_cache *c);
	int keys_fd;
	int cfg_fd;
	/* stcp_slot_use of the program that reports misses, for the choice
	 * of what to evict; -1: evict the longest resident first. */
	int slot_use_fd;
	int rootfd; /* the root of the last load, for stcp_cache_fill */
	/*
	 * The bytes of an object of another source (Redis, stcpd's
	 * content_redis.c), for a cache miss or a range: *buf (malloc'd,
	 * the caller frees it) and *len of version `version` of path.
	 * -ESTALE when the source holds another version now, -ENOENT when
	 * it holds none, another negative errno when it cannot be read.
	 * NULL: such objects cannot be read again (-ENOENT).
	 */
	int (*blob_fetch)(void *ctx, const char *path, uint64_t version,
			  uint8_t **buf, uint64_t *len);
	void *blob_ctx;
	/* Range responses (stcp_ranges of the attached program, -1 until
	 * then): built on demand, at most STCP_MAX_RANGES, the oldest
	 * retired first, all of them at every load. */
	int ranges_fd;
	struct stcp_cache_range *ranges;
	size_t nranges;
	uint64_t ranges_built;
	uint64_t load_seq;
	uint64_t evictions, fills;
	uint32_t not_resident_loads;
	/* stcp_page_tags of the attached program (-1 until then): objects
	 * larger than half the cache are stored with a windowed body, a
	 * ring of pages loaded as downloads need them (include/stcp_cache.h),
	 * once it is there. */
	int tags_fd;
	uint32_t tag_gen;
	/* stcp_slot_gen of the attached program (-1 until then): objects
	 * beyond the slots get theirs when requested (STCP_SLOT_NONE). */
	int slot_gen_fd;
	uint32_t next_id, unslotted_loads;
	uint64_t slot_gives, slot_takes, slots_full;
	uint64_t window_fills, window_pages;
	struct stcp_cache_stats last;
};

/*
 * Takes over the three maps: empties stcp_objects, invalidates the slots a
 * previous run left (their gens go on counting from where they were) and
 * writes the fixed error responses. Sizes come from the maps themselves.
 */
int stcp_cache_init(struct stcp_cache *c, int pages_fd, int resps_fd,
		    int objects_fd);
/*
 * Loads root, or reloads it: new and changed files get new pages and slots,
 * unchanged files keep theirs, deleted files leave stcp_objects. Replaced
 * pages and slots are freed once STCP_CACHE_GRACE_S have passed and the MAC
 * key has rotated twice (struct stcp_cache, key_gen). A file that cannot be
 * stored is skipped with a warning; errors are returned only for the root
 * itself, the maps, or memory.
 */
int stcp_cache_load(struct stcp_cache *c, const char *root);
/*
 * A cache miss on slot: loads the file that owns it into pages again,
 * evicting the least recently used files if needed, and marks its slots
 * valid. 0 when the slot is resident (now or already), -ENOENT when no
 * file owns it any more, -ESTALE when the file changed on disk since (the
 * next reload stores the new version in new slots), -ENOSPC when no room
 * can be made, or another negative errno.
 */
int stcp_cache_fill(struct stcp_cache *c, uint32_t slot);
/*
 * A packet needs body pages first..last of the windowed object that owns
 * slot (or, without ahead, the fast path asks for them before its
 * downloads get there): loads them, and with ahead what follows them up
 * to half the ring, into its ring (and the object itself first if it was
 * evicted). 0 when they are there, -ESTALE when the object changed since
 * (its slots are then invalidated, so its downloads are reset), or what
 * stcp_cache_fill returns.
 */
int stcp_cache_window(struct stcp_cache *c, uint32_t slot, uint64_t first,
		      uint64_t last, bool ahead);
/*
 * A request for the object numbered id, which has no slots: gives it free
 * slots, or those of the least recently requested object that no request
 * has named since the MAC key rotated twice (which then has none), and
 * loads it. 0 when it has slots; -ENOSPC when none could be had: its
 * requests get 503 for a second; -ENOENT when no object has that id.
 */
int stcp_cache_slots(struct stcp_cache *c, uint32_t id);
/*
 * Builds the response of a single-range GET on the object whose 200 slot is
 * slot200 (a 206 for [first, last], or a 416 when first is STCP_RANGE_416)
 * in a slot of its own, and enters it in stcp_ranges. When it cannot be
 * built, the entry names the whole 200 instead, which is always a correct
 * answer. Returns 0 once an entry is there, or a negative errno.
 */
int stcp_cache_range(struct stcp_cache *c, uint32_t slot200, uint64_t first,
		     uint64_t last);
/* Frees what has waited out its grace period and two key rotations. */
void stcp_cache_reap(struct stcp_cache *c);
/* Removes every object this cache stored from stcp_objects. */
void stcp_cache_clear(struct stcp_cache *c);
/* Frees the memory; leaves the maps alone. */
void stcp_cache_destroy(struct stcp_cache *c);
void stcp_cache_get_stats(const struct stcp_cache *c,
			  struct stcp_cache_stats *s);

/* The Content-Type for a path, by its extension (case-insensitive). */
const char *stcp_content_type(const char *path);

/*
 * Objects of another source than the root: Redis (stcpd --redis, `stcpctl
 * content add`). Stored with the same responses as files (four variants,
 * ETag "rVERSION-SIZE-MTIMENS" in hex, Last-Modified from mtime_ns), in
 * the same pages and slots, evicted and reloaded (through blob_fetch) the
 * same way, and replaced through the same grace period. At a path that
 * also names a file under the root, the blob wins; when the blob goes, the
 * file comes back (read from the root of the last load).
 */
#define STCP_CONTENT_TYPE_MAX 128 /* with its NUL */
struct stcp_cache_blob {
	const char *path; /* stcp_content_path_check() */
	const uint8_t *body;
	uint64_t size;
	const char *type; /* NULL or "": by the path's extension */
	uint64_t version; /* > 0; a new one for every change */
	uint64_t mtime_ns;
};

/*
 * Whether path may name a blob: starts with '/', 2..STCP_PATH_LEN - 1
 * bytes, none of them NUL, controls, space, DEL, '%' (the fast path does
 * not decode percent-encoding), '?' or '#' (they end the path in a
 * request); no empty, "." or ".." segment (clients remove dot segments
 * before sending), and no trailing '/' (a directory is served from its
 * index.html). NULL when it may, else why not.
 */
const char *stcp_content_path_check(const char *path, size_t len);
/* A Content-Type value: 1..STCP_CONTENT_TYPE_MAX - 1 visible ASCII bytes
 * or spaces, not starting with a space. NULL when fine, else why not. */
const char *stcp_content_type_check(const char *type, size_t len);
/* The version of the blob cached at path, 0 when there is none. */
uint64_t stcp_cache_blob_version(const struct stcp_cache *c, const char *path);
/*
 * Stores b, or a new version of it, in new pages and slots, and points its
 * stcp_objects entries at them; what it replaces (an older version, or a
 * file under the root at the same path) goes through the grace period.
 * Returns 0, 1 when it was not stored (with a warning; an older version
 * stays), or a negative errno for the maps.
 */
int stcp_cache_blob_put(struct stcp_cache *c, const struct stcp_cache_blob *b);
/*
 * Removes every blob whose path is not among keep[0..n) (sorted by
 * strcmp), putting the root's file at that path back when there is one.
 * Returns how many were removed.
 */
int stcp_cache_blob_prune(struct stcp_cache *c, const char *const *keep,
			  size_t n);

/*
 * Reads slot's stcp_resp and its header page; hdr gets the hdr_len header
 * bytes and a NUL (it must hold STCP_PAGE_SIZE + 1 bytes).
 */
int stcp_resp_read(int pages_fd, int resps_fd, uint32_t slot,
		   struct stcp_resp *r, char *hdr);
/* Copies the value of header field name (case-insensitive) from a header
 * block; false when absent. */
bool stcp_hdr_field(const char *hdr, const char *name, char *out, size_t len);

#endif /* STCP_DAEMON_CACHE_H */
