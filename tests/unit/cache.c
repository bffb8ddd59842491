// SPDX-License-Identifier: GPL-2.0
/*
 * The content cache cases: stcp_cache_load (daemon/cache.c) fills the main
 * instance's private stcp_pages, stcp_resps and stcp_objects from a temporary
 * tree; every object is then read back from the maps alone, its responses
 * reassembled from the pages and compared with the files. Then a reload
 * with a changed, a replaced, a touched, a deleted and a new file, the grace
 * period (on a clock the test moves), a cache too small for a file, and a
 * second start over used maps.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "../../daemon/cache.h"
#include "unit.h"

#define MAX_FIELDS	  16
#define TOO_LONG_NAME_LEN 190

struct tfile {
	const char *rel; /* under the root */
	size_t size;
	const char *type; /* expected Content-Type */
	uint8_t *data;
	struct stat st;
};

static struct tfile tree[] = {
	{ .rel = "index.html",
	  .size = 100,
	  .type = "text/html; charset=utf-8" },
	{ .rel = "empty.txt", .size = 0, .type = "text/plain; charset=utf-8" },
	{ .rel = "one.json", .size = 1, .type = "application/json" },
	{ .rel = "s1447.js", .size = 1447, .type = "text/javascript" },
	{ .rel = "s1448.PNG", .size = 1448, .type = "image/png" },
	{ .rel = "s1449.jpeg", .size = 1449, .type = "image/jpeg" },
	{ .rel = "k14.svg", .size = 14 * 1024, .type = "image/svg+xml" },
	{ .rel = "k64.wasm", .size = 64 * 1024, .type = "application/wasm" },
	{ .rel = "m1.mp4", .size = 1024 * 1024, .type = "video/mp4" },
	{ .rel = "sub/index.html",
	  .size = 500,
	  .type = "text/html; charset=utf-8" },
	{ .rel = "sub/style.css", .size = 300, .type = "text/css" },
	{ .rel = "sub/blob.unknownext",
	  .size = 2000,
	  .type = "application/octet-stream" },
	{ .rel = "sub/deeper/noext",
	  .size = 10,
	  .type = "application/octet-stream" },
};

#define NTREE (sizeof(tree) / sizeof(tree[0]))
/* Files plus the two directory paths "/" and "/sub/". */
#define NKEYS (NTREE + 2)

/* Reload: indexes into tree. */
enum {
	T_INDEX = 0,
	T_ONE = 2,
	T_PNG = 4,
	T_SVG = 6,
	T_SUBINDEX = 9,
};

static char root[64];
static char root2[64];
static char root3[64];
static struct stcp_cache cache;
static bool cache_ok; /* the first load worked: the later cases can run */
static time_t fake_now = 1000;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static time_t fake_clock(void)
{
	return fake_now;
}

/* The current MAC key's generation, as the cache sees it; moved by hand. */
static uint32_t fake_gen = 7;

static uint32_t fake_key_gen(const struct stcp_cache *c)
{
	(void)c;
	return fake_gen;
}

static uint8_t *random_bytes(size_t n)
{
	uint8_t *b = malloc(n ? n : 1);

	for (size_t i = 0; b && i < n; i++) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		b[i] = (uint8_t)(rng >> 24);
	}
	return b;
}

static int write_at(const char *dir, const char *rel, const uint8_t *data,
		    size_t n, struct stat *st)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (n && write(fd, data, n) != (ssize_t)n) {
		close(fd);
		return -EIO;
	}
	if (close(fd))
		return -errno;
	return st && stat(path, st) ? -errno : 0;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *dir)
{
	if (dir[0])
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static uint64_t mtime_ns(const struct stat *st)
{
	return (uint64_t)st->st_mtim.tv_sec * 1000000000ull +
	       (uint64_t)st->st_mtim.tv_nsec;
}

/* ---- reading the maps back, independently of daemon/cache.c ---- */

static int lookup_obj_in(struct unit_env *e, const char *path,
			 struct stcp_obj *o)
{
	struct stcp_obj_key k;

	memset(&k, 0, sizeof(k));
	memcpy(k.path, path, strnlen(path, sizeof(k.path) - 1));
	return bpf_map_lookup_elem(e->m.objects, &k, o) ? -errno : 0;
}

static int lookup_obj(const char *path, struct stcp_obj *o)
{
	return lookup_obj_in(&unit_main, path, o);
}

static int read_resp(struct unit_env *e, uint32_t slot, struct stcp_resp *r)
{
	return bpf_map_lookup_elem(e->m.resps, &slot, r) ? -errno : 0;
}

static int read_page(struct unit_env *e, uint32_t page, uint8_t *out)
{
	return bpf_map_lookup_elem(e->m.pages, &page, out) ? -errno : 0;
}

/* The body bytes of r, from its pages; NULL on a read error. */
static uint8_t *read_body(struct unit_env *e, const struct stcp_resp *r)
{
	uint8_t page[STCP_PAGE_SIZE];
	uint8_t *b = malloc(r->body_len ? r->body_len : 1);

	for (uint64_t off = 0; b && off < r->body_len; off += STCP_PAGE_SIZE) {
		uint64_t n = r->body_len - off;

		if (read_page(e,
			      r->body_page + (uint32_t)(off / STCP_PAGE_SIZE),
			      page)) {
			free(b);
			return NULL;
		}
		memcpy(b + off, page, n < STCP_PAGE_SIZE ? n : STCP_PAGE_SIZE);
	}
	return b;
}

struct parsed {
	char status[64];
	int n;
	char name[MAX_FIELDS][32];
	char value[MAX_FIELDS][128];
};

/* Splits a header block; NULL if well-formed, else what is wrong. */
static const char *parse_header(const char *h, size_t len, struct parsed *p)
{
	const char *line = h, *end = h + len, *eol;

	memset(p, 0, sizeof(*p));
	if (len < 4 || memcmp(end - 4, "\r\n\r\n", 4))
		return "does not end with an empty line";
	if (memchr(h, '\0', len))
		return "holds a NUL";
	eol = strstr(line, "\r\n");
	if ((size_t)(eol - line) >= sizeof(p->status))
		return "status line too long";
	memcpy(p->status, line, (size_t)(eol - line));
	line = eol + 2;
	while (line < end - 2) {
		const char *colon;

		eol = strstr(line, "\r\n");
		colon = memchr(line, ':', (size_t)(eol - line));
		if (!colon || colon[1] != ' ' || p->n == MAX_FIELDS ||
		    (size_t)(colon - line) >= sizeof(p->name[0]) ||
		    (size_t)(eol - colon - 2) >= sizeof(p->value[0]))
			return "a header line is not 'Name: value'";
		memcpy(p->name[p->n], line, (size_t)(colon - line));
		memcpy(p->value[p->n], colon + 2, (size_t)(eol - colon - 2));
		for (int i = 0; i < p->n; i++) {
			if (!strcmp(p->name[i], p->name[p->n]))
				return "a header field appears twice";
		}
		p->n++;
		line = eol + 2;
	}
	return NULL;
}

static const char *field(const struct parsed *p, const char *name)
{
	for (int i = 0; i < p->n; i++) {
		if (!strcmp(p->name[i], name))
			return p->value[i];
	}
	return NULL;
}

/* Reads slot's header page: hdr gets hdr_len bytes and a NUL. */
static int read_header(struct unit_env *e, uint32_t slot, struct stcp_resp *r,
		       char *hdr)
{
	uint8_t page[STCP_PAGE_SIZE];
	int err = read_resp(e, slot, r);

	if (err)
		return err;
	if (r->hdr_len == 0 || r->hdr_len > STCP_PAGE_SIZE)
		return -EINVAL;
	err = read_page(e, r->hdr_page, page);
	if (err)
		return err;
	memcpy(hdr, page, r->hdr_len);
	hdr[r->hdr_len] = '\0';
	return 0;
}

static bool etag_ok(const char *etag, const struct stat *st, size_t size)
{
	unsigned long long ino, sz, mt;
	int used = 0;

	if (sscanf(etag, "\"%llx-%llx-%llx\"%n", &ino, &sz, &mt, &used) != 3 ||
	    used != (int)strlen(etag))
		return false;
	for (const char *c = etag + 1; c < etag + used - 1; c++) {
		if (!strchr("0123456789abcdef-", *c))
			return false;
	}
	return ino == (unsigned long long)st->st_ino && sz == size &&
	       mt == mtime_ns(st);
}

/* RFC 9110 IMF-fixdate naming the file's mtime second. */
static bool last_modified_ok(const char *v, const struct stat *st)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	if (strlen(v) != 29)
		return false;
	end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	return end && !*end && timegm(&tm) == st->st_mtim.tv_sec;
}

/*
 * Checks one object from the maps alone: its four responses (header fields
 * by variant, shared validators, the Connection header) and the body of the
 * 200s against data. On success *o holds the object.
 */
static void check_object(struct tcase *t, const char *path, const uint8_t *data,
			 size_t size, const char *type, const struct stat *st,
			 struct stcp_obj *o)
{
	char hdr[STCP_PAGE_SIZE + 1], etag[128] = "", lm[64] = "";
	char want_len[32];
	uint64_t npages = (size + STCP_PAGE_SIZE - 1) / STCP_PAGE_SIZE;
	struct stcp_resp r[STCP_VARIANTS];
	int err;

	err = lookup_obj(path, o);
	if (err) {
		tc_fail(t, "%s: not in stcp_objects (%s)", path,
			strerror(-err));
		return;
	}
	EXPECT(t, o->size == size, "%s: obj.size %llu, file %zu", path,
	       (unsigned long long)o->size, size);
	EXPECT(t, o->mtime == mtime_ns(st), "%s: obj.mtime %llu, file %llu",
	       path, (unsigned long long)o->mtime,
	       (unsigned long long)mtime_ns(st));
	for (int v = 0; v < STCP_VARIANTS; v++) {
		bool is200 = v == STCP_V_200_CLOSE || v == STCP_V_200_KEEPALIVE;
		bool ka =
			v == STCP_V_200_KEEPALIVE || v == STCP_V_304_KEEPALIVE;
		const char *vn = stcp_variant_names[v];
		struct parsed p;
		const char *why, *f;

		for (int w = 0; w < v; w++)
			EXPECT(t, o->resp[w] != o->resp[v],
			       "%s: variants %d and %d share slot %u", path, w,
			       v, o->resp[v]);
		EXPECT(t,
		       o->resp[v] >= STCP_RESP_FIXED_END &&
			       o->resp[v] < STCP_MAX_RESPS,
		       "%s %s: slot %u out of range", path, vn, o->resp[v]);
		err = read_header(&unit_main, o->resp[v], &r[v], hdr);
		if (err) {
			tc_fail(t, "%s %s: slot %u unreadable: %s", path, vn,
				o->resp[v], strerror(-err));
			return;
		}
		EXPECT(t, r[v].flags & STCP_RESP_VALID, "%s %s: not valid",
		       path, vn);
		EXPECT(t, r[v].gen > 0, "%s %s: gen 0", path, vn);
		why = parse_header(hdr, r[v].hdr_len, &p);
		if (why) {
			tc_fail(t, "%s %s: header %s", path, vn, why);
			continue;
		}
		EXPECT(t,
		       !strcmp(p.status, is200 ? "HTTP/1.1 200 OK"
					       : "HTTP/1.1 304 Not Modified"),
		       "%s %s: status line '%s'", path, vn, p.status);
		f = field(&p, "Server");
		EXPECT(t, f && !strcmp(f, "stcp"), "%s %s: Server %s", path, vn,
		       f ?: "missing");
		f = field(&p, "Connection");
		EXPECT(t, f && !strcmp(f, ka ? "keep-alive" : "close"),
		       "%s %s: Connection %s", path, vn, f ?: "missing");
		f = field(&p, "ETag");
		if (!f || !etag_ok(f, st, size))
			tc_fail(t, "%s %s: ETag %s is not \"ino-size-mtime\"",
				path, vn, f ?: "missing");
		else if (!etag[0])
			snprintf(etag, sizeof(etag), "%.127s", f);
		else
			EXPECT(t, !strcmp(f, etag), "%s %s: ETag %s, not %s",
			       path, vn, f, etag);
		f = field(&p, "Last-Modified");
		if (!f || !last_modified_ok(f, st))
			tc_fail(t,
				"%s %s: Last-Modified '%s' is not the "
				"mtime as IMF-fixdate",
				path, vn, f ?: "missing");
		else if (!lm[0])
			snprintf(lm, sizeof(lm), "%.63s", f);
		else
			EXPECT(t, !strcmp(f, lm), "%s %s: Last-Modified %s/%s",
			       path, vn, f, lm);
		if (!is200) {
			EXPECT(t, p.n == 4, "%s %s: %d header fields, want 4",
			       path, vn, p.n);
			EXPECT(t, !(r[v].flags & STCP_RESP_HAS_BODY),
			       "%s %s: has a body", path, vn);
			EXPECT(t, !r[v].body_len && !r[v].body_npages,
			       "%s %s: body_len %llu, %u pages", path, vn,
			       (unsigned long long)r[v].body_len,
			       r[v].body_npages);
			continue;
		}
		EXPECT(t, p.n == 6, "%s %s: %d header fields, want 6", path, vn,
		       p.n);
		f = field(&p, "Content-Length");
		snprintf(want_len, sizeof(want_len), "%zu", size);
		EXPECT(t, f && !strcmp(f, want_len),
		       "%s %s: Content-Length %s, file %zu", path, vn,
		       f ?: "missing", size);
		f = field(&p, "Content-Type");
		EXPECT(t, f && !strcmp(f, type),
		       "%s %s: Content-Type %s, want %s", path, vn,
		       f ?: "missing", type);
		/* Ranges are not served yet: no promise of them. */
		f = field(&p, "Accept-Ranges");
		EXPECT(t, !f, "%s %s: Accept-Ranges %s before ranges are served",
		       path, vn, f);
		EXPECT(t, r[v].flags & STCP_RESP_HAS_BODY,
		       "%s %s: no body flag", path, vn);
		EXPECT(t, r[v].body_len == size && r[v].body_npages == npages,
		       "%s %s: body_len %llu in %u pages, want %zu in %llu",
		       path, vn, (unsigned long long)r[v].body_len,
		       r[v].body_npages, size, (unsigned long long)npages);
		if (v == STCP_V_200_CLOSE) {
			uint8_t *b = read_body(&unit_main, &r[v]);

			if (!b)
				tc_fail(t, "%s: body pages unreadable", path);
			else if (size && memcmp(b, data, size))
				tc_fail(t, "%s: body differs from the file",
					path);
			free(b);
		}
	}
	if (t->failures)
		return;
	EXPECT(t,
	       r[STCP_V_200_CLOSE].body_page ==
			       r[STCP_V_200_KEEPALIVE].body_page &&
		       r[STCP_V_200_CLOSE].body_npages ==
			       r[STCP_V_200_KEEPALIVE].body_npages,
	       "%s: the 200 variants do not share their body pages", path);
	for (int v = 0; v < STCP_VARIANTS; v++) {
		for (int w = 0; w < v; w++)
			EXPECT(t, r[v].hdr_page != r[w].hdr_page,
			       "%s: variants %d and %d share header page %u",
			       path, w, v, r[v].hdr_page);
		EXPECT(t,
		       !npages ||
			       r[v].hdr_page < r[STCP_V_200_CLOSE].body_page ||
			       r[v].hdr_page >=
				       r[STCP_V_200_CLOSE].body_page + npages,
		       "%s: header page %u inside the body", path,
		       r[v].hdr_page);
	}
}

/* "/" + rel */
static void url_of(const char *rel, char *out, size_t len)
{
	snprintf(out, len, "/%s", rel);
}

static void check_tree(struct tcase *t, struct stcp_obj *objs)
{
	char path[256];

	for (size_t i = 0; i < NTREE; i++) {
		url_of(tree[i].rel, path, sizeof(path));
		check_object(t, path, tree[i].data, tree[i].size, tree[i].type,
			     &tree[i].st, &objs[i]);
	}
}

/* ---- cases ---- */

static int make_tree(struct tcase *t)
{
	char p[512], longname[TOO_LONG_NAME_LEN + 8];
	int err;

	snprintf(root, sizeof(root), "/tmp/stcp-unit-cache.XXXXXX");
	if (!mkdtemp(root)) {
		tc_fail(t, "mkdtemp: %s", strerror(errno));
		root[0] = '\0';
		return -1;
	}
	snprintf(p, sizeof(p), "%s/sub", root);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/sub/deeper", root);
	mkdir(p, 0755);
	for (size_t i = 0; i < NTREE; i++) {
		tree[i].data = random_bytes(tree[i].size);
		err = tree[i].data ? write_at(root, tree[i].rel, tree[i].data,
					      tree[i].size, &tree[i].st)
				   : -ENOMEM;
		if (err) {
			tc_fail(t, "writing %s: %s", tree[i].rel,
				strerror(-err));
			return -1;
		}
	}
	/* What must be skipped. */
	snprintf(p, sizeof(p), "%s/escape.txt", root);
	err = symlink("/etc/hostname", p);
	snprintf(p, sizeof(p), "%s/sub/outdir", root);
	err = err ?: symlink("/etc", p);
	snprintf(p, sizeof(p), "%s/sub/inside.css", root);
	err = err ?: symlink("style.css", p);
	snprintf(p, sizeof(p), "%s/pipe", root);
	err = err ?: mkfifo(p, 0644);
	memset(longname, 'a', TOO_LONG_NAME_LEN);
	memcpy(longname + TOO_LONG_NAME_LEN, ".txt", 5);
	snprintf(p, sizeof(p), "sub/%s", longname);
	err = err ?: write_at(root, p, (const uint8_t *)"x", 1, NULL);
	err = err
		      ?: write_at(root, "has space.txt", (const uint8_t *)"x",
				  1, NULL);
	err = err
		      ?: write_at(root, "pct%41.txt", (const uint8_t *)"x", 1,
				  NULL);
	if (err) {
		tc_fail(t, "making the entries to skip: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static bool key_present(struct unit_env *e, const char *path)
{
	struct stcp_obj_key k;
	struct stcp_obj o;

	memset(&k, 0, sizeof(k));
	memcpy(k.path, path, strnlen(path, sizeof(k.path) - 1));
	return !bpf_map_lookup_elem(e->m.objects, &k, &o);
}

static void case_load(struct tcase *t)
{
	struct stcp_cache_stats st;
	int n, err;

	if (make_tree(t))
		return;
	err = stcp_cache_init(&cache, unit_main.m.pages, unit_main.m.resps,
			      unit_main.m.objects);
	if (err) {
		tc_fail(t, "stcp_cache_init: %s", strerror(-err));
		return;
	}
	cache.clock = fake_clock;
	cache.key_gen = fake_key_gen;
	err = stcp_cache_load(&cache, root);
	if (err) {
		tc_fail(t, "stcp_cache_load: %s", strerror(-err));
		return;
	}
	n = stcp_map_count_entries(unit_main.m.objects);
	EXPECT(t, n == (int)NKEYS, "stcp_objects has %d entries, want %zu", n,
	       NKEYS);
	for (size_t i = 0; i < NTREE; i++) {
		char path[256];

		url_of(tree[i].rel, path, sizeof(path));
		EXPECT(t, key_present(&unit_main, path), "%s missing", path);
	}
	EXPECT(t, key_present(&unit_main, "/"), "/ missing");
	EXPECT(t, key_present(&unit_main, "/sub/"), "/sub/ missing");
	EXPECT(t, !key_present(&unit_main, "/escape.txt"),
	       "the symlink out of the root was stored");
	EXPECT(t, !key_present(&unit_main, "/sub/inside.css"),
	       "a symlink was followed");
	EXPECT(t, !key_present(&unit_main, "/sub/outdir/hostname"),
	       "a directory symlink was followed");
	EXPECT(t, !key_present(&unit_main, "/pipe"), "the FIFO was stored");
	EXPECT(t, !key_present(&unit_main, "/has space.txt"),
	       "a name with a space was stored");
	EXPECT(t, !key_present(&unit_main, "/pct%41.txt"),
	       "a name with '%%' was stored");
	cache_ok = true;
	stcp_cache_get_stats(&cache, &st);
	EXPECT(t, st.files == NTREE && st.keys == NKEYS,
	       "stats: %u files, %u keys", st.files, st.keys);
	/* symlinks 3, FIFO, long name, space, '%' */
	EXPECT(t, st.skipped == 7, "stats: %u skipped, want 7", st.skipped);
	EXPECT(t, st.added == NTREE, "stats: %u added", st.added);
}

static void case_objects(struct tcase *t)
{
	struct stcp_obj objs[NTREE], o;
	uint64_t bytes = 0;
	uint32_t pages = 0;
	struct stcp_cache_stats st;

	check_tree(t, objs);
	if (t->failures)
		return;
	/* Directory paths are the same object as their index.html. */
	EXPECT(t,
	       !lookup_obj("/", &o) && !memcmp(&o, &objs[T_INDEX], sizeof(o)),
	       "\"/\" is not /index.html");
	EXPECT(t,
	       !lookup_obj("/sub/", &o) &&
		       !memcmp(&o, &objs[T_SUBINDEX], sizeof(o)),
	       "\"/sub/\" is not /sub/index.html");
	/* No slot is shared between objects. */
	for (size_t i = 0; i < NTREE; i++) {
		for (size_t j = 0; j < i; j++) {
			for (int v = 0; v < STCP_VARIANTS; v++) {
				for (int w = 0; w < STCP_VARIANTS; w++)
					EXPECT(t,
					       objs[i].resp[v] !=
						       objs[j].resp[w],
					       "%s and %s share slot %u",
					       tree[i].rel, tree[j].rel,
					       objs[i].resp[v]);
			}
		}
		bytes += tree[i].size;
		pages += STCP_VARIANTS +
			 (uint32_t)((tree[i].size + STCP_PAGE_SIZE - 1) /
				    STCP_PAGE_SIZE);
	}
	stcp_cache_get_stats(&cache, &st);
	EXPECT(t, st.bytes == bytes && st.file_pages == pages,
	       "stats: %llu bytes in %u pages, want %llu in %u",
	       (unsigned long long)st.bytes, st.file_pages,
	       (unsigned long long)bytes, pages);
	EXPECT(t, st.pages_used == pages + 2 * STCP_RESP_NUM_FIXED,
	       "stats: %u pages used, want %u", st.pages_used,
	       pages + 2 * STCP_RESP_NUM_FIXED);
}

static void case_content_types(struct tcase *t)
{
	static const struct {
		const char *path, *type;
	} want[] = {
		{ "/a.html", "text/html; charset=utf-8" },
		{ "/a.HTM", "text/html; charset=utf-8" },
		{ "/a.css", "text/css" },
		{ "/a.Js", "text/javascript" },
		{ "/a.json", "application/json" },
		{ "/a.txt", "text/plain; charset=utf-8" },
		{ "/a.xml", "application/xml" },
		{ "/a.svg", "image/svg+xml" },
		{ "/a.png", "image/png" },
		{ "/a.jpg", "image/jpeg" },
		{ "/a.JPEG", "image/jpeg" },
		{ "/a.gif", "image/gif" },
		{ "/a.webp", "image/webp" },
		{ "/a.ico", "image/x-icon" },
		{ "/a.wasm", "application/wasm" },
		{ "/a.pdf", "application/pdf" },
		{ "/a.woff2", "font/woff2" },
		{ "/a.mp4", "video/mp4" },
		{ "/a.tar.gz", "application/octet-stream" },
		{ "/noext", "application/octet-stream" },
		{ "/dir.html/file", "application/octet-stream" },
		{ "/trailing.", "application/octet-stream" },
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const char *got = stcp_content_type(want[i].path);

		EXPECT(t, !strcmp(got, want[i].type), "%s: %s, want %s",
		       want[i].path, got, want[i].type);
	}
}

static void case_fixed(struct tcase *t)
{
	static const struct {
		uint32_t slot;
		const char *status;
		const char *body;
	} want[] = {
		{ STCP_RESP_400, "HTTP/1.1 400 Bad Request",
		  "400 Bad Request\n" },
		{ STCP_RESP_404, "HTTP/1.1 404 Not Found", "404 Not Found\n" },
		{ STCP_RESP_405, "HTTP/1.1 405 Method Not Allowed",
		  "405 Method Not Allowed\n" },
		{ STCP_RESP_414, "HTTP/1.1 414 URI Too Long",
		  "414 URI Too Long\n" },
		{ STCP_RESP_431, "HTTP/1.1 431 Request Header Fields Too Large",
		  "431 Request Header Fields Too Large\n" },
		{ STCP_RESP_500, "HTTP/1.1 500 Internal Server Error",
		  "500 Internal Server Error\n" },
		{ STCP_RESP_503, "HTTP/1.1 503 Service Unavailable",
		  "503 Service Unavailable\n" },
	};
	char hdr[STCP_PAGE_SIZE + 1];

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct stcp_resp r;
		struct parsed p;
		const char *why, *f;
		uint8_t *b;

		if (read_header(&unit_main, want[i].slot, &r, hdr)) {
			tc_fail(t, "slot %u unreadable", want[i].slot);
			continue;
		}
		EXPECT(t, r.flags == (STCP_RESP_VALID | STCP_RESP_HAS_BODY),
		       "slot %u: flags %#x", want[i].slot, r.flags);
		why = parse_header(hdr, r.hdr_len, &p);
		if (why) {
			tc_fail(t, "slot %u: header %s", want[i].slot, why);
			continue;
		}
		EXPECT(t, !strcmp(p.status, want[i].status),
		       "slot %u: status '%s'", want[i].slot, p.status);
		f = field(&p, "Content-Length");
		EXPECT(t, f && strtoull(f, NULL, 10) == strlen(want[i].body),
		       "slot %u: Content-Length %s", want[i].slot,
		       f ?: "missing");
		f = field(&p, "Content-Type");
		EXPECT(t, f && !strncmp(f, "text/plain", 10),
		       "slot %u: Content-Type %s", want[i].slot,
		       f ?: "missing");
		f = field(&p, "Connection");
		EXPECT(t, f && !strcmp(f, "close"), "slot %u: Connection %s",
		       want[i].slot, f ?: "missing");
		f = field(&p, "Allow");
		EXPECT(t,
		       want[i].slot == STCP_RESP_405
			       ? f && !strcmp(f, "GET, HEAD")
			       : !f,
		       "slot %u: Allow %s", want[i].slot, f ?: "missing");
		EXPECT(t, r.body_len == strlen(want[i].body),
		       "slot %u: body_len %llu", want[i].slot,
		       (unsigned long long)r.body_len);
		b = read_body(&unit_main, &r);
		EXPECT(t, b && !memcmp(b, want[i].body, strlen(want[i].body)),
		       "slot %u: body differs", want[i].slot);
		free(b);
	}
	for (uint32_t s = STCP_RESP_NUM_FIXED; s < STCP_RESP_FIXED_END; s++) {
		struct stcp_resp r;

		EXPECT(t, !read_resp(&unit_main, s, &r) && !r.flags,
		       "reserved slot %u is in use", s);
	}
}

/* State before the reload, to check that it is left alone. */
static struct stcp_obj before[NTREE];
static uint8_t *old_data[NTREE];
static size_t old_size[NTREE];
static struct stat old_st[NTREE];
static uint32_t gen_before[STCP_MAX_RESPS];
static uint8_t *new_data;
static struct stat new_st;
#define NEW_SIZE     777
#define PNG_NEW_SIZE 3000

static int snapshot(struct tcase *t)
{
	char path[256];

	for (size_t i = 0; i < NTREE; i++) {
		url_of(tree[i].rel, path, sizeof(path));
		if (lookup_obj(path, &before[i])) {
			tc_fail(t, "%s missing before the reload", path);
			return -1;
		}
		old_data[i] = tree[i].data;
		old_size[i] = tree[i].size;
		old_st[i] = tree[i].st;
	}
	for (uint32_t s = 0; s < STCP_MAX_RESPS; s++) {
		struct stcp_resp r;

		if (read_resp(&unit_main, s, &r)) {
			tc_fail(t, "slot %u unreadable", s);
			return -1;
		}
		gen_before[s] = r.gen;
	}
	return 0;
}

static bool was_used(uint32_t slot)
{
	for (size_t i = 0; i < NTREE; i++) {
		for (int v = 0; v < STCP_VARIANTS; v++) {
			if (before[i].resp[v] == slot)
				return true;
		}
	}
	return false;
}

/* The old version of tree[i] is still whole in its old slots and pages. */
static void check_old_intact(struct tcase *t, size_t i)
{
	char hdr[STCP_PAGE_SIZE + 1], want[64];
	struct stcp_resp r;
	uint8_t *b;

	for (int v = 0; v < STCP_VARIANTS; v++) {
		uint32_t s = before[i].resp[v];

		if (read_header(&unit_main, s, &r, hdr)) {
			tc_fail(t, "%s: old slot %u unreadable", tree[i].rel,
				s);
			return;
		}
		EXPECT(t, (r.flags & STCP_RESP_VALID) && r.gen == gen_before[s],
		       "%s: old slot %u rewritten (gen %u -> %u, flags %#x)",
		       tree[i].rel, s, gen_before[s], r.gen, r.flags);
		if (v != STCP_V_200_CLOSE)
			continue;
		snprintf(want, sizeof(want), "Content-Length: %zu\r\n",
			 old_size[i]);
		EXPECT(t, strstr(hdr, want), "%s: old header lost its %s",
		       tree[i].rel, want);
		b = read_body(&unit_main, &r);
		EXPECT(t,
		       b && r.body_len == old_size[i] &&
			       !memcmp(b, old_data[i], old_size[i]),
		       "%s: old body pages overwritten", tree[i].rel);
		free(b);
	}
}

static int modify_tree(struct tcase *t)
{
	char p[512], q[512];
	struct timespec ts[2];
	uint8_t *d;
	int err;

	/* s1448.PNG: rewritten in place, new size. */
	d = random_bytes(PNG_NEW_SIZE);
	err = write_at(root, tree[T_PNG].rel, d, PNG_NEW_SIZE, &tree[T_PNG].st);
	tree[T_PNG].data = d;
	tree[T_PNG].size = PNG_NEW_SIZE;
	/* sub/index.html: replaced by a new inode, same size and mtime. */
	d = random_bytes(tree[T_SUBINDEX].size);
	err = err
		      ?: write_at(root, "sub/.tmp-index", d,
				  tree[T_SUBINDEX].size, NULL);
	snprintf(p, sizeof(p), "%s/sub/.tmp-index", root);
	snprintf(q, sizeof(q), "%s/%s", root, tree[T_SUBINDEX].rel);
	ts[0] = ts[1] = old_st[T_SUBINDEX].st_mtim;
	if (!err && (utimensat(AT_FDCWD, p, ts, 0) || rename(p, q) ||
		     stat(q, &tree[T_SUBINDEX].st)))
		err = -errno;
	tree[T_SUBINDEX].data = d;
	/* k14.svg: same inode and size, new bytes, mtime + 1 s. */
	d = random_bytes(tree[T_SVG].size);
	err = err ?: write_at(root, tree[T_SVG].rel, d, tree[T_SVG].size, NULL);
	snprintf(p, sizeof(p), "%s/%s", root, tree[T_SVG].rel);
	ts[0] = ts[1] = old_st[T_SVG].st_mtim;
	ts[0].tv_sec++;
	ts[1].tv_sec++;
	if (!err && (utimensat(AT_FDCWD, p, ts, 0) || stat(p, &tree[T_SVG].st)))
		err = -errno;
	tree[T_SVG].data = d;
	/* one.json: deleted. new.txt: added. */
	snprintf(p, sizeof(p), "%s/%s", root, tree[T_ONE].rel);
	if (!err && unlink(p))
		err = -errno;
	new_data = random_bytes(NEW_SIZE);
	err = err ?: write_at(root, "new.txt", new_data, NEW_SIZE, &new_st);
	if (err)
		tc_fail(t, "changing the tree: %s", strerror(-err));
	if (!err &&
	    (tree[T_SUBINDEX].st.st_ino == old_st[T_SUBINDEX].st_ino ||
	     mtime_ns(&tree[T_SUBINDEX].st) != mtime_ns(&old_st[T_SUBINDEX]) ||
	     tree[T_SVG].st.st_ino != old_st[T_SVG].st_ino)) {
		tc_fail(t, "the test tree did not change as intended");
		err = -1;
	}
	return err;
}

static void case_reload(struct tcase *t)
{
	static const size_t changed[] = { T_PNG, T_SUBINDEX, T_SVG };
	struct stcp_cache_stats st;
	struct stcp_obj o, sub;
	char path[256];
	int err;

	if (snapshot(t) || modify_tree(t))
		return;
	err = stcp_cache_load(&cache, root);
	if (err) {
		tc_fail(t, "reload: %s", strerror(-err));
		return;
	}
	stcp_cache_get_stats(&cache, &st);
	EXPECT(t,
	       st.added == 1 && st.changed == 3 && st.removed == 1 &&
		       st.unchanged == NTREE - 4 && st.pending == 4,
	       "stats: %u added, %u changed, %u removed, %u unchanged, %u "
	       "pending; want 1, 3, 1, %zu, 4",
	       st.added, st.changed, st.removed, st.unchanged, st.pending,
	       NTREE - 4);
	EXPECT(t, !key_present(&unit_main, "/one.json"),
	       "deleted /one.json still in stcp_objects");
	EXPECT(t, stcp_map_count_entries(unit_main.m.objects) == (int)NKEYS,
	       "stcp_objects has %d entries, want %zu",
	       stcp_map_count_entries(unit_main.m.objects), NKEYS);
	check_object(t, "/new.txt", new_data, NEW_SIZE,
		     "text/plain; charset=utf-8", &new_st, &o);
	for (size_t k = 0; k < sizeof(changed) / sizeof(changed[0]); k++) {
		size_t i = changed[k];

		url_of(tree[i].rel, path, sizeof(path));
		check_object(t, path, tree[i].data, tree[i].size, tree[i].type,
			     &tree[i].st, &o);
		for (int v = 0; v < STCP_VARIANTS; v++)
			EXPECT(t, !was_used(o.resp[v]),
			       "%s: new version in slot %u, which was in use",
			       path, o.resp[v]);
		check_old_intact(t, i);
		if (i == T_SUBINDEX)
			EXPECT(t,
			       !lookup_obj("/sub/", &sub) &&
				       !memcmp(&sub, &o, sizeof(o)),
			       "\"/sub/\" does not follow /sub/index.html");
	}
	check_old_intact(t, T_ONE);
	/* Unchanged: same slots, not rewritten. */
	for (size_t i = 0; i < NTREE; i++) {
		if (i == T_PNG || i == T_SUBINDEX || i == T_SVG || i == T_ONE)
			continue;
		url_of(tree[i].rel, path, sizeof(path));
		if (lookup_obj(path, &o)) {
			tc_fail(t, "%s lost", path);
			continue;
		}
		EXPECT(t, !memcmp(&o, &before[i], sizeof(o)),
		       "%s: unchanged, but its entry changed", path);
		for (int v = 0; v < STCP_VARIANTS; v++) {
			struct stcp_resp r;

			EXPECT(t,
			       !read_resp(&unit_main, o.resp[v], &r) &&
				       r.gen == gen_before[o.resp[v]],
			       "%s: unchanged, but slot %u was rewritten", path,
			       o.resp[v]);
		}
	}
	/* A reap before the grace period is over frees nothing. */
	fake_now += STCP_CACHE_GRACE_S - 1;
	stcp_cache_reap(&cache);
	stcp_cache_get_stats(&cache, &st);
	EXPECT(t, st.pending == 4, "%u pending after %d s, want 4", st.pending,
	       STCP_CACHE_GRACE_S - 1);
	for (size_t k = 0; k < sizeof(changed) / sizeof(changed[0]); k++)
		check_old_intact(t, changed[k]);
	check_old_intact(t, T_ONE);
}

static void case_grace(struct tcase *t)
{
	static const size_t retired[] = { T_PNG, T_SUBINDEX, T_SVG, T_ONE };
	uint32_t gen_mid[STCP_MAX_RESPS], freed_pages = 0;
	struct stcp_cache_stats st0, st;
	struct stcp_obj o;
	bool reused = false;
	uint8_t *d;
	int err;

	stcp_cache_get_stats(&cache, &st0);
	/* The grace period is over, but downloads bound to the key of the
	 * retirement, or to the one before it, may still read the pages. */
	fake_now += 2;
	stcp_cache_reap(&cache);
	stcp_cache_get_stats(&cache, &st);
	EXPECT(t, st.pending == 4 && st.pages_used == st0.pages_used,
	       "%u pending, %u pages used with no key rotation, want 4, %u",
	       st.pending, st.pages_used, st0.pages_used);
	fake_gen++;
	stcp_cache_reap(&cache);
	stcp_cache_get_stats(&cache, &st);
	EXPECT(t, st.pending == 4 && st.pages_used == st0.pages_used,
	       "%u pending, %u pages used after one key rotation, want 4, %u",
	       st.pending, st.pages_used, st0.pages_used);
	for (size_t k = 0; k < 4; k++)
		check_old_intact(t, retired[k]);
	fake_gen++;
	stcp_cache_reap(&cache);
	stcp_cache_get_stats(&cache, &st);
	for (size_t k = 0; k < 4; k++)
		freed_pages +=
			STCP_VARIANTS +
			(uint32_t)((old_size[retired[k]] + STCP_PAGE_SIZE - 1) /
				   STCP_PAGE_SIZE);
	EXPECT(t, st.pending == 0, "%u pending after the grace period",
	       st.pending);
	EXPECT(t, st.pages_used == st0.pages_used - freed_pages,
	       "%u pages used after the reap, want %u", st.pages_used,
	       st0.pages_used - freed_pages);
	EXPECT(t, st.resps_used == st0.resps_used - 16,
	       "%u slots used after the reap, want %u", st.resps_used,
	       st0.resps_used - 16);
	for (size_t k = 0; k < 4; k++) {
		for (int v = 0; v < STCP_VARIANTS; v++) {
			uint32_t s = before[retired[k]].resp[v];
			struct stcp_resp r;

			EXPECT(t,
			       !read_resp(&unit_main, s, &r) && !r.flags &&
				       r.gen == gen_before[s] + 1,
			       "freed slot %u: flags %#x gen %u (was %u)", s,
			       r.flags, r.gen, gen_before[s]);
		}
	}
	for (uint32_t s = 0; s < STCP_MAX_RESPS; s++) {
		struct stcp_resp r;

		gen_mid[s] = read_resp(&unit_main, s, &r) ? 0 : r.gen;
	}
	/* A change now reuses freed slots, with a higher gen. */
	d = random_bytes(NEW_SIZE + 1);
	err = write_at(root, "new.txt", d, NEW_SIZE + 1, &new_st);
	if (!err)
		err = stcp_cache_load(&cache, root);
	if (err) {
		tc_fail(t, "reload: %s", strerror(-err));
		free(d);
		return;
	}
	check_object(t, "/new.txt", d, NEW_SIZE + 1,
		     "text/plain; charset=utf-8", &new_st, &o);
	for (int v = 0; v < STCP_VARIANTS && !t->failures; v++) {
		struct stcp_resp r;
		uint32_t s = o.resp[v];

		EXPECT(t, !read_resp(&unit_main, s, &r) && r.gen > gen_mid[s],
		       "slot %u reused without a new gen (%u, was %u)", s,
		       r.gen, gen_mid[s]);
		for (size_t k = 0; k < 4; k++) {
			for (int w = 0; w < STCP_VARIANTS; w++)
				reused |= before[retired[k]].resp[w] == s;
		}
	}
	EXPECT(t, reused, "no freed slot was reused");
	free(new_data);
	new_data = d;
}

static void case_too_big(struct tcase *t)
{
	struct stcp_cache small;
	struct stcp_cache_stats st;
	uint8_t *d = random_bytes(300 * 1024);
	int err;

	snprintf(root2, sizeof(root2), "/tmp/stcp-unit-cache2.XXXXXX");
	if (!d || !mkdtemp(root2)) {
		tc_fail(t, "mkdtemp: %s", strerror(errno));
		root2[0] = '\0';
		free(d);
		return;
	}
	err = write_at(root2, "big.bin", d, 300 * 1024, NULL);
	err = err ?: write_at(root2, "small.txt", d, 10, NULL);
	free(d);
	if (err) {
		tc_fail(t, "writing the files: %s", strerror(-err));
		return;
	}
	err = stcp_cache_init(&small, unit_nokey.m.pages, unit_nokey.m.resps,
			      unit_nokey.m.objects);
	if (err) {
		tc_fail(t, "stcp_cache_init: %s", strerror(-err));
		return;
	}
	err = stcp_cache_load(&small, root2);
	stcp_cache_get_stats(&small, &st);
	EXPECT(t, !err, "load: %s", strerror(-err));
	EXPECT(t, st.npages == UNIT_NOKEY_PAGES, "%u pages, want %d", st.npages,
	       UNIT_NOKEY_PAGES);
	EXPECT(t, st.files == 1 && st.skipped == 1,
	       "%u files, %u skipped; want 1 and 1", st.files, st.skipped);
	EXPECT(t, key_present(&unit_nokey, "/small.txt"), "/small.txt missing");
	EXPECT(t, !key_present(&unit_nokey, "/big.bin"),
	       "/big.bin stored in a cache too small for it");
	stcp_cache_clear(&small);
	EXPECT(t, stcp_map_count_entries(unit_nokey.m.objects) == 0,
	       "stcp_cache_clear left entries");
	stcp_cache_destroy(&small);
}

static void case_restart(struct tcase *t)
{
	uint32_t gen_old[STCP_MAX_RESPS];
	uint32_t flags_old[STCP_MAX_RESPS];
	int err;

	for (uint32_t s = 0; s < STCP_MAX_RESPS; s++) {
		struct stcp_resp r = { 0 };

		read_resp(&unit_main, s, &r);
		gen_old[s] = r.gen;
		flags_old[s] = r.flags;
	}
	/* A new daemon over the same maps, without a reload of the tree. */
	stcp_cache_destroy(&cache);
	err = stcp_cache_init(&cache, unit_main.m.pages, unit_main.m.resps,
			      unit_main.m.objects);
	if (err) {
		tc_fail(t, "stcp_cache_init: %s", strerror(-err));
		return;
	}
	EXPECT(t, stcp_map_count_entries(unit_main.m.objects) == 0,
	       "stcp_objects not emptied");
	for (uint32_t s = 0; s < STCP_MAX_RESPS; s++) {
		struct stcp_resp r = { 0 };
		bool valid_before = flags_old[s] & STCP_RESP_VALID;

		read_resp(&unit_main, s, &r);
		if (s < STCP_RESP_NUM_FIXED)
			EXPECT(t,
			       (r.flags & STCP_RESP_VALID) &&
				       r.gen == gen_old[s] + 1,
			       "fixed slot %u: gen %u, was %u", s, r.gen,
			       gen_old[s]);
		else if (valid_before)
			EXPECT(t, !r.flags && r.gen == gen_old[s] + 1,
			       "slot %u left valid (gen %u, was %u)", s, r.gen,
			       gen_old[s]);
		else
			EXPECT(t, r.gen == gen_old[s] && !r.flags,
			       "idle slot %u rewritten", s);
	}
	stcp_cache_destroy(&cache);
}

/* ---- blobs: objects from another source (Redis) ---- */

static void case_blob_checks(struct tcase *t)
{
	static const char *const good[] = {
		"/a",
		"/a.txt",
		"/a/b/c.css",
		"/x/index.html",
		"/.well-known/x",
		"/a..b",
		"/...",
		"/caf\xc3\xa9",
	};
	static const char *const bad[] = {
		"",	 "a",	 "/",	    "/a/",    "//a",  "/a//b",
		"/./a",	 "/a/.", "/a/../b", "/..",    "/a b", "/a\tb",
		"/a%41", "/a?b", "/a#b",    "/a\x7f",
	};
	char longp[STCP_PATH_LEN + 1];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		EXPECT(t, !stcp_content_path_check(good[i], strlen(good[i])),
		       "'%s' refused: %s", good[i],
		       stcp_content_path_check(good[i], strlen(good[i])));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		EXPECT(t, stcp_content_path_check(bad[i], strlen(bad[i])),
		       "'%s' accepted", bad[i]);
	EXPECT(t, stcp_content_path_check("/a\0b", 4), "a NUL accepted");
	memset(longp, 'a', sizeof(longp));
	longp[0] = '/';
	EXPECT(t, !stcp_content_path_check(longp, STCP_PATH_LEN - 1),
	       "191 bytes refused");
	EXPECT(t, stcp_content_path_check(longp, STCP_PATH_LEN),
	       "192 bytes accepted");
	EXPECT(t, !stcp_content_type_check("text/html; charset=utf-8", 24),
	       "a good type refused");
	EXPECT(t, stcp_content_type_check("text/html\r\nX: y", 15),
	       "CR LF in a type accepted");
	EXPECT(t, stcp_content_type_check(" text/html", 10),
	       "a leading space accepted");
	EXPECT(t, stcp_content_type_check("", 0), "an empty type accepted");
}

/* The fake source of blob bytes for misses: one path, one version. */
static struct {
	const char *path;
	uint64_t version;
	const uint8_t *data;
	size_t len;
	int calls;
} fake_src;

static int fake_fetch(void *ctx, const char *path, uint64_t version,
		      uint8_t **buf, uint64_t *len)
{
	(void)ctx;
	fake_src.calls++;
	if (!fake_src.path || strcmp(path, fake_src.path))
		return -ENOENT;
	if (version != fake_src.version)
		return -ESTALE;
	*buf = malloc(fake_src.len ? fake_src.len : 1);
	if (!*buf)
		return -ENOMEM;
	memcpy(*buf, fake_src.data, fake_src.len);
	*len = fake_src.len;
	return 0;
}

/* The 200 of path, from the maps alone: body and header. */
static int blob_read(const char *path, struct stcp_obj *o, uint8_t **body,
		     char *hdr)
{
	struct stcp_resp r;
	int err = lookup_obj_in(&unit_nokey, path, o);

	if (err)
		return err;
	err = read_header(&unit_nokey, o->resp[STCP_V_200_CLOSE], &r, hdr);
	if (err)
		return err;
	if (!(r.flags & STCP_RESP_VALID))
		return -ENOENT;
	*body = read_body(&unit_nokey, &r);
	return *body ? 0 : -EIO;
}

static bool slot_valid(uint32_t slot)
{
	struct stcp_resp r = { 0 };

	return !read_resp(&unit_nokey, slot, &r) && (r.flags & STCP_RESP_VALID);
}

/* Blobs beside a root: the blob wins, replaced versions keep their slots
 * through the grace period, prune brings the file back, an index.html
 * blob serves its directory. */
static void case_blob_root(struct tcase *t)
{
	struct stcp_cache bc;
	struct stcp_cache_blob b = { 0 };
	struct stcp_obj o, o5, froot;
	char hdr[STCP_PAGE_SIZE + 1], field_v[128];
	uint8_t *body = NULL;
	const char *keep[1];
	int err;

	snprintf(root3, sizeof(root3), "/tmp/stcp-unit-cache3.XXXXXX");
	if (!mkdtemp(root3)) {
		tc_fail(t, "mkdtemp: %s", strerror(errno));
		root3[0] = '\0';
		return;
	}
	err = write_at(root3, "a.txt", (const uint8_t *)"root a\n", 7, NULL);
	err = err
		      ?: write_at(root3, "only.txt", (const uint8_t *)"o\n", 2,
				  NULL);
	if (err) {
		tc_fail(t, "writing the files: %s", strerror(-err));
		return;
	}
	err = stcp_cache_init(&bc, unit_nokey.m.pages, unit_nokey.m.resps,
			      unit_nokey.m.objects);
	if (err) {
		tc_fail(t, "stcp_cache_init: %s", strerror(-err));
		return;
	}
	bc.clock = fake_clock;
	bc.key_gen = fake_key_gen;
	err = stcp_cache_load(&bc, root3);
	EXPECT(t, !err, "load: %s", strerror(-err));
	if (lookup_obj_in(&unit_nokey, "/a.txt", &froot)) {
		tc_fail(t, "/a.txt from the root missing");
		goto out;
	}
	EXPECT(t, froot.source == STCP_SRC_ROOT, "root file: source %u",
	       froot.source);

	b.path = "/a.txt";
	b.body = (const uint8_t *)"blob a 5";
	b.size = 8;
	b.version = 5;
	b.mtime_ns = 1700000000123456789ull;
	err = stcp_cache_blob_put(&bc, &b);
	EXPECT(t, !err, "put v5: %d", err);
	if (blob_read("/a.txt", &o5, &body, hdr)) {
		tc_fail(t, "/a.txt v5 unreadable");
		goto out;
	}
	EXPECT(t,
	       o5.source == STCP_SRC_REDIS && o5.size == 8 &&
		       !memcmp(body, "blob a 5", 8),
	       "v5: source %u size %llu", o5.source,
	       (unsigned long long)o5.size);
	free(body);
	body = NULL;
	EXPECT(t,
	       stcp_hdr_field(hdr, "ETag", field_v, sizeof(field_v)) &&
		       !strncmp(field_v, "\"r5-8-", 6),
	       "v5 ETag %s", field_v);
	EXPECT(t,
	       stcp_hdr_field(hdr, "Content-Type", field_v, sizeof(field_v)) &&
		       !strcmp(field_v, "text/plain; charset=utf-8"),
	       "v5 type by extension: %s", field_v);
	EXPECT(t,
	       stcp_hdr_field(hdr, "Last-Modified", field_v, sizeof(field_v)) &&
		       !strcmp(field_v, "Tue, 14 Nov 2023 22:13:20 GMT"),
	       "v5 Last-Modified %s", field_v);
	for (int v = 0; v < STCP_VARIANTS; v++)
		EXPECT(t, slot_valid(froot.resp[v]),
		       "the replaced file's slot %u rewritten in its grace "
		       "period",
		       froot.resp[v]);
	EXPECT(t,
	       stcp_cache_blob_version(&bc, "/a.txt") == 5 &&
		       stcp_cache_blob_version(&bc, "/only.txt") == 0,
	       "blob versions");
	/* The same version again: nothing moves. */
	EXPECT(t, !stcp_cache_blob_put(&bc, &b), "put v5 again");
	EXPECT(t,
	       !lookup_obj_in(&unit_nokey, "/a.txt", &o) &&
		       o.resp[0] == o5.resp[0],
	       "put of the same version moved the slots");

	b.body = (const uint8_t *)"blob a version 6";
	b.size = 16;
	b.version = 6;
	b.type = "application/x-six";
	EXPECT(t, !stcp_cache_blob_put(&bc, &b), "put v6");
	if (blob_read("/a.txt", &o, &body, hdr)) {
		tc_fail(t, "/a.txt v6 unreadable");
		goto out;
	}
	EXPECT(t,
	       o.size == 16 && !memcmp(body, "blob a version 6", 16) &&
		       o.resp[0] != o5.resp[0],
	       "v6 not in new slots");
	free(body);
	body = NULL;
	EXPECT(t,
	       stcp_hdr_field(hdr, "Content-Type", field_v, sizeof(field_v)) &&
		       !strcmp(field_v, "application/x-six"),
	       "v6 type %s", field_v);
	for (int v = 0; v < STCP_VARIANTS; v++)
		EXPECT(t, slot_valid(o5.resp[v]),
		       "v5's slot %u rewritten in its grace period",
		       o5.resp[v]);
	/* A bad blob is refused and the version before stays. */
	b.type = "bad\ntype";
	b.version = 7;
	EXPECT(t, stcp_cache_blob_put(&bc, &b) == 1, "a bad type stored");
	EXPECT(t, stcp_cache_blob_version(&bc, "/a.txt") == 6,
	       "the refused v7 replaced v6");
	b.type = NULL;
	b.path = "/a/../b";
	EXPECT(t, stcp_cache_blob_put(&bc, &b) == 1, "a '..' path stored");

	/* A root reload leaves the blob alone. */
	err = stcp_cache_load(&bc, root3);
	EXPECT(t, !err && stcp_cache_blob_version(&bc, "/a.txt") == 6,
	       "a reload dropped the blob");
	EXPECT(t,
	       !lookup_obj_in(&unit_nokey, "/a.txt", &o) &&
		       o.source == STCP_SRC_REDIS && o.size == 16,
	       "a reload put the file back over the blob");

	/* An index.html blob serves its directory too. */
	b.path = "/d/index.html";
	b.body = (const uint8_t *)"<p>d</p>";
	b.size = 8;
	b.version = 8;
	EXPECT(t, !stcp_cache_blob_put(&bc, &b), "put /d/index.html");
	EXPECT(t,
	       key_present(&unit_nokey, "/d/") &&
		       key_present(&unit_nokey, "/d/index.html"),
	       "/d/ missing");

	/* Prune keeping only /d/index.html: /a.txt is the file again. */
	keep[0] = "/d/index.html";
	EXPECT(t, stcp_cache_blob_prune(&bc, keep, 1) == 1, "prune count");
	if (blob_read("/a.txt", &o, &body, hdr)) {
		tc_fail(t, "/a.txt unreadable after the prune");
		goto out;
	}
	EXPECT(t,
	       o.source == STCP_SRC_ROOT && o.size == 7 &&
		       !memcmp(body, "root a\n", 7),
	       "the file did not come back: source %u size %llu", o.source,
	       (unsigned long long)o.size);
	free(body);
	body = NULL;
	EXPECT(t, stcp_cache_blob_prune(&bc, NULL, 0) == 1, "prune all");
	EXPECT(t,
	       !key_present(&unit_nokey, "/d/") &&
		       !key_present(&unit_nokey, "/d/index.html"),
	       "/d/ left after the prune");
	EXPECT(t, key_present(&unit_nokey, "/only.txt"), "/only.txt gone");
out:
	free(body);
	stcp_cache_clear(&bc);
	stcp_cache_destroy(&bc);
}

/* Blobs in a cache too small for both: the second is stored evicted, a
 * miss loads it through blob_fetch (evicting the first); a miss on a blob
 * whose source moved to another version is -ESTALE. */
static void case_blob_miss(struct tcase *t)
{
	struct stcp_cache bc;
	struct stcp_cache_blob b = { 0 };
	struct stcp_obj o1, o2;
	char hdr[STCP_PAGE_SIZE + 1];
	uint8_t *d1 = random_bytes(30 * STCP_PAGE_SIZE);
	uint8_t *d2 = random_bytes(30 * STCP_PAGE_SIZE);
	uint8_t *body = NULL;
	struct stcp_resp r;
	int err;

	if (!d1 || !d2) {
		tc_fail(t, "out of memory");
		goto free_data;
	}
	err = stcp_cache_init(&bc, unit_nokey.m.pages, unit_nokey.m.resps,
			      unit_nokey.m.objects);
	if (err) {
		tc_fail(t, "stcp_cache_init: %s", strerror(-err));
		goto free_data;
	}
	bc.blob_fetch = fake_fetch;
	b.path = "/one.bin";
	b.body = d1;
	b.size = 30 * STCP_PAGE_SIZE;
	b.version = 1;
	EXPECT(t, !stcp_cache_blob_put(&bc, &b), "put /one.bin");
	b.path = "/two.bin";
	b.body = d2;
	b.version = 2;
	EXPECT(t, !stcp_cache_blob_put(&bc, &b), "put /two.bin");
	if (lookup_obj_in(&unit_nokey, "/one.bin", &o1) ||
	    lookup_obj_in(&unit_nokey, "/two.bin", &o2)) {
		tc_fail(t, "objects missing");
		goto out;
	}
	EXPECT(t,
	       !read_resp(&unit_nokey, o2.resp[0], &r) &&
		       (r.flags & STCP_RESP_EVICTED) && r.body_len == b.size,
	       "/two.bin not stored evicted (flags %#x)", r.flags);
	fake_src.path = "/two.bin";
	fake_src.version = 2;
	fake_src.data = d2;
	fake_src.len = b.size;
	fake_src.calls = 0;
	err = stcp_cache_fill(&bc, o2.resp[STCP_V_200_CLOSE]);
	EXPECT(t, !err && fake_src.calls == 1, "fill /two.bin: %s, %d calls",
	       strerror(-err), fake_src.calls);
	if (blob_read("/two.bin", &o2, &body, hdr)) {
		tc_fail(t, "/two.bin unreadable after the fill");
		goto out;
	}
	EXPECT(t, !memcmp(body, d2, b.size), "/two.bin's bytes differ");
	EXPECT(t,
	       !read_resp(&unit_nokey, o1.resp[0], &r) &&
		       (r.flags & STCP_RESP_EVICTED),
	       "/one.bin not evicted for /two.bin");
	/* /one.bin moved on in its source: its slots' version is gone. */
	fake_src.path = "/one.bin";
	fake_src.version = 9;
	fake_src.data = d1;
	err = stcp_cache_fill(&bc, o1.resp[STCP_V_200_CLOSE]);
	EXPECT(t, err == -ESTALE, "fill of a changed blob: %s, want ESTALE",
	       strerror(-err));
	EXPECT(t,
	       !read_resp(&unit_nokey, o1.resp[0], &r) &&
		       !(r.flags & STCP_RESP_VALID),
	       "a changed blob's slot became valid");
	bc.blob_fetch = NULL;
	err = stcp_cache_fill(&bc, o1.resp[STCP_V_200_CLOSE]);
	EXPECT(t, err == -ENOENT, "fill without a source: %s, want ENOENT",
	       strerror(-err));
out:
	free(body);
	stcp_cache_clear(&bc);
	stcp_cache_destroy(&bc);
free_data:
	free(d1);
	free(d2);
}

/* needs_load: the case reads what case_load stored. */
#define CACHE_CASE(name_, fn, needs_load)                                      \
	do {                                                                   \
		struct tcase t_;                                               \
		memset(&t_, 0, sizeof(t_));                                    \
		t_.name = (name_);                                             \
		if ((needs_load) && !cache_ok)                                 \
			tc_fail(&t_, "not run: the first load failed");        \
		else                                                           \
			fn(&t_);                                               \
		tc_report(&t_);                                                \
	} while (0)

void cache_run_all(void)
{
	enum stcp_log_level saved = stcp_log_threshold;

	/* The loader warns about every file it skips, as it should. */
	stcp_log_threshold = unit_verbose ? STCP_LOG_DEBUG : STCP_LOG_ERROR;
	CACHE_CASE("cache: Content-Type table by extension, case-insensitive",
		   case_content_types, false);
	CACHE_CASE("cache: load a tree; symlinks, FIFO, long and odd names "
		   "skipped",
		   case_load, false);
	CACHE_CASE("cache: every object reassembles from the maps (4 variants, "
		   "headers, body)",
		   case_objects, true);
	CACHE_CASE("cache: fixed error responses 400 404 405 414 431 500",
		   case_fixed, true);
	CACHE_CASE("cache: reload puts changed files in new slots and pages, "
		   "keeps the old ones",
		   case_reload, true);
	CACHE_CASE("cache: after the grace period old slots are freed, reuse "
		   "bumps gen",
		   case_grace, true);
	CACHE_CASE("cache: a file larger than the free pages is skipped",
		   case_too_big, false);
	CACHE_CASE("cache: a restart over used maps empties stcp_objects, gens "
		   "go on",
		   case_restart, true);
	CACHE_CASE("cache: blob PATH and Content-Type checks", case_blob_checks,
		   false);
	CACHE_CASE("cache: a blob wins over the root's file, replaced versions "
		   "wait, prune brings the file back",
		   case_blob_root, false);
	CACHE_CASE("cache: an evicted blob reloads through blob_fetch, a "
		   "changed one is ESTALE",
		   case_blob_miss, false);
	stcp_log_threshold = saved;
	stcp_cache_destroy(&cache);
	rm_tree(root);
	rm_tree(root2);
	rm_tree(root3);
	for (size_t i = 0; i < NTREE; i++) {
		if (old_data[i] != tree[i].data)
			free(old_data[i]);
		free(tree[i].data);
	}
	free(new_data);
}
