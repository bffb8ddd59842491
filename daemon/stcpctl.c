// SPDX-License-Identifier: GPL-2.0
/*
 * stcpctl: looks at and steers the stcp fast path through its pinned maps,
 * whether stcpd loaded it or `ip link ... xdp obj` did. It never prints key
 * material: only a key's generation, slot and age.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <hiredis/hiredis.h>
#include <json-c/json.h>
#include <xdp/libxdp.h>

#include "cache.h"
#include "common.h"
#include "config.h"
#include "content_redis.h"
#include "redis_keys.h"

#ifndef STCP_VERSION
#define STCP_VERSION "0.1.0"
#endif

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

#define LISTEN_EXAMPLE "e.g. 198.18.0.1:80 or [2001:db8::1]:80"
#define DISPATCHER_NAME "xdp_dispatcher"
#define MAX_ATTACH 16
#define RELOAD_TIMEOUT_S 120
#define RELOAD_POLL_US 20000
#define ROTATE_TIMEOUT_S 5

struct ctl {
	const char *pin_dir;
	bool json;
	struct stcp_maps m;
	const char *redis;	  /* --redis, for content add|rm */
	const char *redis_prefix; /* --redis-prefix */
	const char *type;	  /* --type, for content add */
};

enum {
	OPT_REDIS = 0x100,
	OPT_REDIS_PREFIX,
	OPT_TYPE,
	OPT_CONFIG,
};

/* Command handlers get the words after the command name and return the
 * process exit code: 0, EXIT_RUNTIME or EXIT_USAGE. */
typedef int (*cmd_fn)(struct ctl *c, int argc, char **argv);

struct cmd_desc {
	const char *name;
	const char *synopsis;
	const char *help;
};

/* One row per usage line; commands with subcommands have several rows. */
static const struct cmd_desc cmd_table[] = {
	{ "status", "status",
	  "pin directory, interface, attach mode, program id, daemon pid, "
	  "key generation and age, service addresses and counters" },
	{ "stats", "stats", "the counters only" },
	{ "listen", "listen add ADDR:PORT",
	  "answer for ADDR:PORT; also installs a key if there is none yet "
	  "(a program loaded by 'ip link' starts without one)" },
	{ "listen", "listen del ADDR:PORT", "stop answering for ADDR:PORT" },
	{ "listen", "listen ls", "list the service addresses" },
	{ "keys", "keys rotate",
	  "install a fresh key; the one it replaces stays valid as the "
	  "previous key, so handshakes in flight complete. With a running "
	  "stcpd, asks it to (SIGUSR1; through Redis with --redis) and waits "
	  "until it has" },
	{ "keys", "keys show",
	  "key generation, current slot, rotation time and whether the "
	  "previous key is valid (never the key itself)" },
	{ "reload", "reload",
	  "make stcpd read its --root again (SIGHUP to the daemon pid in "
	  "stcp_cfg) and wait until it has" },
	{ "content", "content ls",
	  "the cached objects: path, size, source (root or redis), ETag, "
	  "response slots with their gens, Content-Type (-j: a JSON array)" },
	{ "content", "content add PATH FILE",
	  "store FILE ('-': standard input) in Redis (--redis) as the object "
	  "at PATH, served by every stcpd on that Redis and prefix within a "
	  "second, over a file under its --root at PATH; --type TYPE sets its "
	  "Content-Type (default: from PATH's extension). PATH starts with "
	  "'/', has at most 191 bytes, no '%', '?', '#', space or control "
	  "byte, no '.', '..' or empty segment, and does not end with '/'" },
	{ "content", "content rm PATH",
	  "remove the object at PATH from Redis (--redis); stcpd then serves "
	  "the file under its --root at PATH again, if any, else 404" },
	{ "help", "help [COMMAND]", "this text, or one command's" },
};

#define NUM_CMD_ROWS (sizeof(cmd_table) / sizeof(cmd_table[0]))

struct opt_desc {
	const char *name;
	int has_arg;
	int val;
	const char *arg;
	const char *help;
};

#define REDIS_EXAMPLE                                                          \
	"e.g. --redis 127.0.0.1:6379 or --redis unix:/run/redis/redis.sock"

static const struct opt_desc opt_table[] = {
	{ "config", required_argument, OPT_CONFIG, "FILE",
	  "stcpd's config file: its pin-dir, redis and redis-prefix, unless "
	  "given as options (its other keys are stcpd's, and skipped); "
	  "errors in it name FILE:LINE" },
	{ "pin-dir", required_argument, 'p', "DIR",
	  "where the maps are pinned (default $STCP_PIN_DIR, else " STCP_PIN_DIR
	  ", where stcpd and 'ip link' pin)" },
	{ "json", no_argument, 'j', NULL,
	  "print JSON instead of text (one object; an array for content "
	  "ls)" },
	{ "redis", required_argument, OPT_REDIS, "ADDR",
	  "the Redis of 'content add|rm': HOST:PORT, [V6ADDR]:PORT or "
	  "unix:PATH, as given to stcpd (AUTH from STCP_REDIS_USER and "
	  "STCP_REDIS_PASSWORD)" },
	{ "redis-prefix", required_argument, OPT_REDIS_PREFIX, "P",
	  "prefix of the Redis keys, as given to stcpd "
	  "(default " STCP_REDIS_DEFAULT_PREFIX ")" },
	{ "type", required_argument, OPT_TYPE, "TYPE",
	  "'content add': the object's Content-Type, e.g. --type "
	  "'text/html; charset=utf-8'" },
	{ "verbose", no_argument, 'v', NULL,
	  "more log output on stderr; repeat for libbpf's and libxdp's" },
	{ "help", no_argument, 'h', NULL, "show this help and exit" },
	{ "version", no_argument, 'V', NULL, "show the version and exit" },
};

#define NUM_OPTS (sizeof(opt_table) / sizeof(opt_table[0]))


static void print_cmd_rows(FILE *f, const char *only)
{
	for (size_t i = 0; i < NUM_CMD_ROWS; i++) {
		const struct cmd_desc *d = &cmd_table[i];

		if (only && strcmp(only, d->name))
			continue;
		fprintf(f, "  %-22s", d->synopsis);
		stcp_print_wrapped(f, d->help, 25);
	}
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: stcpctl [OPTION]... COMMAND [ARG]...\n"
		   "\n"
		   "Shows and changes the state of the stcp fast path through "
		   "its pinned maps,\n"
		   "whether stcpd or 'ip link ... xdp obj stcp.bpf.o sec xdp' "
		   "loaded it.\n"
		   "\n"
		   "Commands:\n");
	print_cmd_rows(f, NULL);
	fprintf(f, "\nOptions (before or after the command):\n");
	for (size_t i = 0; i < NUM_OPTS; i++) {
		const struct opt_desc *o = &opt_table[i];
		char head[48];

		if (o->val < 0x100)
			snprintf(head, sizeof(head), "-%c, --%s%s%s", o->val,
				 o->name, o->arg ? " " : "",
				 o->arg ? o->arg : "");
		else
			snprintf(head, sizeof(head), "    --%s%s%s", o->name,
				 o->arg ? " " : "", o->arg ? o->arg : "");
		fprintf(f, "  %-22s", head);
		stcp_print_wrapped(f, o->help, 25);
	}
	fprintf(f, "\n"
		   "ADDR:PORT is an IPv4 address or a bracketed IPv6 address "
		   "and a port,\n" LISTEN_EXAMPLE ".\n"
		   "\n"
		   "Exit status: 0 success, 1 runtime error (no maps, "
		   "permissions, BPF,\nRedis unreachable, FILE unreadable, no "
		   "such object), 2 usage error.\n");
}

static void cmd_usage(FILE *f, const char *name)
{
	fprintf(f, "Usage: stcpctl [OPTION]...\n");
	print_cmd_rows(f, name);
	fprintf(f, "\nSee 'stcpctl --help' for the options.\n");
}

static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/* "FILE:LINE: " while a usage error is about a word of --config. */
static char usage_where[PATH_MAX + 32];

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "stcpctl: %s", usage_where);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

static int lib_print(const char *fmt, va_list ap)
	__attribute__((format(printf, 1, 0)));

static int lib_print(const char *fmt, va_list ap)
{
	char buf[1024];
	size_t n;

	if (stcp_log_threshold < STCP_LOG_DEBUG)
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	log_debug("%s", buf);
	return 0;
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	(void)level;
	return lib_print(fmt, ap);
}

static int libxdp_print(enum libxdp_print_level level, const char *fmt,
			va_list ap)
{
	(void)level;
	return lib_print(fmt, ap);
}

/* Opens the four pinned maps, explaining a failure in one line. */
static int open_maps(struct ctl *c)
{
	int err = stcp_maps_open_pinned(c->pin_dir, &c->m);

	if (!err)
		return 0;
	if (err == -ENOENT || err == -ENOTDIR)
		log_err("no stcp maps in %s (is stcpd running, or the program "
			"loaded with 'ip link ... xdp obj build/stcp.bpf.o sec "
			"xdp'?)",
			c->pin_dir);
	else if (err == -EPERM || err == -EACCES)
		log_err("permission denied opening %s (run as root)",
			c->pin_dir);
	else
		log_err("cannot open the stcp maps in %s: %s", c->pin_dir,
			strerror(-err));
	return err;
}

static void print_json(struct json_object *o)
{
	const int flags =
		JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;

	puts(json_object_to_json_string_ext(o, flags));
	json_object_put(o);
}

static struct json_object *json_u64_or_null(uint64_t v)
{
	return v ? json_object_new_uint64(v) : NULL;
}

/* "2025-01-02 03:04:05 UTC (42 s ago)", or "never" for 0. */
static void format_time(uint64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t, now = time(NULL);
	struct tm tm;
	size_t n;
	long ago;

	if (!t || !gmtime_r(&tt, &tm)) {
		snprintf(buf, len, "never");
		return;
	}
	n = strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
	if (!n || now < tt)
		return;
	ago = (long)(now - tt);
	if (ago < 120)
		snprintf(buf + n, len - n, " (%ld s ago)", ago);
	else if (ago < 7200)
		snprintf(buf + n, len - n, " (%ld min ago)", ago / 60);
	else if (ago < 172800)
		snprintf(buf + n, len - n, " (%ld h ago)", ago / 3600);
	else
		snprintf(buf + n, len - n, " (%ld days ago)", ago / 86400);
}

/* What is known of one key slot; the key bytes are wiped before return. */
struct key_meta {
	bool valid;
	__u32 gen;
};

static int key_meta_read(int keys_fd, __u32 slot, struct key_meta *km)
{
	struct stcp_key k;
	int err = 0;

	if (bpf_map_lookup_elem(keys_fd, &slot, &k))
		err = -errno;
	else {
		km->valid = k.valid;
		km->gen = k.gen;
	}
	explicit_bzero(&k, sizeof(k));
	return err;
}

struct key_state {
	struct stcp_cfg cfg;
	__u32 slot;
	struct key_meta cur;
	struct key_meta prev;
};

static int key_state_read(const struct ctl *c, struct key_state *ks)
{
	int err;

	err = stcp_cfg_read(c->m.cfg, &ks->cfg);
	if (err)
		return err;
	ks->slot = ks->cfg.key_cur & 1;
	err = key_meta_read(c->m.keys, ks->slot, &ks->cur);
	if (err)
		return err;
	return key_meta_read(c->m.keys, ks->slot ^ 1, &ks->prev);
}

static int listen_cmp(const void *a, const void *b)
{
	const struct stcp_listen_key *x = a, *y = b;
	int r;

	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	r = memcmp(x->addr, y->addr, sizeof(x->addr));
	if (r)
		return r;
	return (int)ntohs(x->port) - (int)ntohs(y->port);
}

/* The service addresses, sorted. Returns how many, or a negative errno. */
static int listen_read(const struct ctl *c, struct stcp_listen_key *out)
{
	int n = stcp_listen_list(c->m.listen, out, STCP_MAX_LISTEN);

	if (n > 0)
		qsort(out, (size_t)n, sizeof(*out), listen_cmp);
	return n;
}

static struct json_object *json_listen(const struct stcp_listen_key *k,
				       int n)
{
	struct json_object *a = json_object_new_array();
	char buf[64];

	for (int i = 0; i < n && a; i++) {
		stcp_listen_format(&k[i], buf, sizeof(buf));
		json_object_array_add(a, json_object_new_string(buf));
	}
	return a;
}

static struct json_object *json_counters(const uint64_t *v)
{
	struct json_object *o = json_object_new_object();

	for (int i = 0; i < STCP_C_MAX && o; i++)
		json_object_object_add(o, stcp_counter_names[i],
				       json_object_new_uint64(v[i]));
	return o;
}

static void print_counters(const uint64_t *v, const char *indent)
{
	for (int i = 0; i < STCP_C_MAX; i++)
		printf("%s%-16s %14" PRIu64 "\n", indent, stcp_counter_names[i],
		       v[i]);
}

/* A program found attached, by its id, on an interface. */
struct attachment {
	char ifname[IF_NAMESIZE];
	__u32 ifindex;
	__u32 prog_id;
	const char *xdp_mode;
	bool dispatcher; /* a component of a libxdp dispatcher */
};

/*
 * 1 if program id is stcp's and uses the maps open in c (so a stcp program
 * pinned elsewhere does not count), 0 if not; *dispatcher tells whether the
 * program is a libxdp dispatcher worth looking into.
 */
static int prog_is_ours(__u32 id, __u32 cfg_map_id, bool *dispatcher)
{
	struct bpf_prog_info info = { 0 };
	__u32 len = sizeof(info), nmaps;
	__u32 *ids = NULL;
	int fd, ret = 0;

	*dispatcher = false;
	fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0)
		return -errno;
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		ret = -errno;
		goto out;
	}
	if (!strcmp(info.name, DISPATCHER_NAME)) {
		*dispatcher = true;
		goto out;
	}
	if (strcmp(info.name, STCP_PROG_NAME) || !info.nr_map_ids)
		goto out;
	nmaps = info.nr_map_ids;
	ids = calloc(nmaps, sizeof(*ids));
	if (!ids) {
		ret = -ENOMEM;
		goto out;
	}
	memset(&info, 0, sizeof(info));
	info.nr_map_ids = nmaps;
	info.map_ids = (__u64)(unsigned long)ids;
	len = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
		ret = -errno;
		goto out;
	}
	for (__u32 i = 0; i < nmaps && i < info.nr_map_ids; i++) {
		if (ids[i] == cfg_map_id)
			ret = 1;
	}
out:
	free(ids);
	close(fd);
	return ret;
}

/* Looks through a libxdp dispatcher's component programs for ours. */
static __u32 find_in_dispatcher(int ifindex, __u32 cfg_map_id)
{
	struct xdp_multiprog *mp;
	struct xdp_program *p = NULL;
	__u32 found = 0;
	bool disp;

	mp = xdp_multiprog__get_from_ifindex(ifindex);
	if (libxdp_get_error(mp) || !mp)
		return 0;
	while (!found && (p = xdp_multiprog__next_prog(p, mp))) {
		if (prog_is_ours(xdp_program__id(p), cfg_map_id, &disp) == 1)
			found = xdp_program__id(p);
	}
	xdp_multiprog__close(mp);
	return found;
}

/* 1 and *a filled if our program is attached to ifindex, else 0. */
static int find_on_ifindex(__u32 ifindex, __u32 cfg_map_id,
			   struct attachment *a)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	struct {
		__u32 id;
		const char *mode;
	} cand[3];
	bool disp;

	if (bpf_xdp_query((int)ifindex, 0, &q))
		return -errno;
	cand[0].id = q.drv_prog_id;
	cand[0].mode = "native";
	cand[1].id = q.skb_prog_id;
	cand[1].mode = "generic";
	cand[2].id = q.hw_prog_id;
	cand[2].mode = "offload";
	if (!cand[0].id && !cand[1].id && !cand[2].id) {
		if (q.attach_mode == XDP_ATTACHED_DRV)
			cand[0].id = q.prog_id;
		else if (q.attach_mode == XDP_ATTACHED_SKB)
			cand[1].id = q.prog_id;
		else if (q.attach_mode == XDP_ATTACHED_HW)
			cand[2].id = q.prog_id;
	}
	for (int i = 0; i < 3; i++) {
		__u32 id = cand[i].id;

		if (!id)
			continue;
		if (prog_is_ours(id, cfg_map_id, &disp) != 1) {
			id = disp ? find_in_dispatcher((int)ifindex,
						       cfg_map_id) :
				    0;
			if (!id)
				continue;
		}
		memset(a, 0, sizeof(*a));
		a->ifindex = ifindex;
		a->prog_id = id;
		a->xdp_mode = cand[i].mode;
		a->dispatcher = disp;
		if (!if_indextoname(ifindex, a->ifname))
			a->ifname[0] = '\0';
		return 1;
	}
	return 0;
}

/* Every interface of this network namespace that runs our program. */
static int find_attachments(const struct ctl *c, __u32 only_ifindex,
			    struct attachment *out, int max)
{
	struct bpf_map_info minfo = { 0 };
	__u32 len = sizeof(minfo);
	struct if_nameindex *ifs, *i;
	int n = 0;

	if (bpf_obj_get_info_by_fd(c->m.cfg, &minfo, &len))
		return -errno;
	if (only_ifindex)
		return find_on_ifindex(only_ifindex, minfo.id, out) == 1;
	ifs = if_nameindex();
	if (!ifs)
		return -errno;
	for (i = ifs; i->if_index && n < max; i++) {
		if (find_on_ifindex(i->if_index, minfo.id, &out[n]) == 1)
			n++;
	}
	if_freenameindex(ifs);
	return n;
}


struct status {
	struct key_state ks;
	bool daemon_alive;
	struct attachment att[MAX_ATTACH];
	int natt;
	const char *mode;
	struct stcp_listen_key listen[STCP_MAX_LISTEN];
	int nlisten;
	int content_paths; /* stcp_objects entries; -1 without the map */
	uint64_t counters[STCP_C_MAX];
};

static int status_read(const struct ctl *c, struct status *s)
{
	const struct stcp_cfg *cfg = &s->ks.cfg;
	int err;

	err = key_state_read(c, &s->ks);
	if (err)
		return err;
	s->daemon_alive = stcp_daemon_alive(cfg->daemon_pid);
	s->natt = find_attachments(c, cfg->ifindex, s->att, MAX_ATTACH);
	if (s->natt < 0) {
		log_warn("cannot look for the attached program: %s",
			 strerror(-s->natt));
		s->natt = 0;
	}
	if (s->daemon_alive)
		s->mode = stcp_mode_name(cfg->attach_mode);
	else if (!s->natt)
		s->mode = "detached";
	else if (!cfg->ifindex)
		s->mode = stcp_mode_name(STCP_MODE_IPLINK);
	else
		s->mode = stcp_mode_name(cfg->attach_mode);
	s->nlisten = listen_read(c, s->listen);
	if (s->nlisten < 0)
		return s->nlisten;
	s->content_paths = c->m.objects >= 0 ?
				   stcp_map_count_entries(c->m.objects) :
				   -1;
	return stcp_counters_read(c->m.counters, s->counters);
}

static void status_json(const struct ctl *c, const struct status *s)
{
	const struct stcp_cfg *cfg = &s->ks.cfg;
	struct json_object *o = json_object_new_object();
	struct json_object *atts = json_object_new_array();
	const struct attachment *first = s->natt ? &s->att[0] : NULL;
	__u32 ifindex = first ? first->ifindex : cfg->ifindex;
	char buf[IF_NAMESIZE];
	const char *name = "";

	if (first)
		name = first->ifname;
	else if (ifindex && if_indextoname(ifindex, buf))
		name = buf;

	json_object_object_add(o, "pin_dir",
			       json_object_new_string(c->pin_dir));
	json_object_object_add(o, "interface",
			       name[0] ? json_object_new_string(name) : NULL);
	json_object_object_add(o, "ifindex", json_u64_or_null(ifindex));
	json_object_object_add(o, "mode", json_object_new_string(s->mode));
	json_object_object_add(o, "xdp_mode",
			       first ? json_object_new_string(first->xdp_mode) :
				       NULL);
	json_object_object_add(o, "prog_id",
			       json_u64_or_null(first ? first->prog_id : 0));
	json_object_object_add(o, "daemon_pid",
			       json_u64_or_null(s->daemon_alive ?
							cfg->daemon_pid :
							0));
	json_object_object_add(o, "key_generation",
			       json_object_new_uint64(s->ks.cur.gen));
	json_object_object_add(o, "key_valid",
			       json_object_new_boolean(s->ks.cur.valid));
	json_object_object_add(o, "keys_rotated_at",
			       json_u64_or_null(cfg->keys_rotated_at));
	for (int i = 0; i < s->natt && atts; i++) {
		const struct attachment *a = &s->att[i];
		struct json_object *ao = json_object_new_object();

		json_object_object_add(ao, "interface",
				       json_object_new_string(a->ifname));
		json_object_object_add(ao, "ifindex",
				       json_object_new_uint64(a->ifindex));
		json_object_object_add(ao, "xdp_mode",
				       json_object_new_string(a->xdp_mode));
		json_object_object_add(ao, "prog_id",
				       json_object_new_uint64(a->prog_id));
		json_object_object_add(ao, "dispatcher",
				       json_object_new_boolean(a->dispatcher));
		json_object_array_add(atts, ao);
	}
	json_object_object_add(o, "attachments", atts);
	json_object_object_add(o, "listen",
			       json_listen(s->listen, s->nlisten));
	json_object_object_add(o, "content_paths",
			       s->content_paths >= 0 ?
				       json_object_new_int(s->content_paths) :
				       NULL);
	json_object_object_add(o, "counters", json_counters(s->counters));
	print_json(o);
}

#define ROW "%-16s %s\n"

static void status_text(const struct ctl *c, const struct status *s)
{
	const struct stcp_cfg *cfg = &s->ks.cfg;
	char buf[128], name[IF_NAMESIZE];

	printf(ROW, "pin dir", c->pin_dir);
	for (int i = 0; i < s->natt; i++) {
		const struct attachment *a = &s->att[i];

		snprintf(buf, sizeof(buf), "%s (ifindex %u)",
			 a->ifname[0] ? a->ifname : "?", a->ifindex);
		printf(ROW, i ? "" : "interface", buf);
	}
	if (!s->natt && cfg->ifindex) {
		snprintf(buf, sizeof(buf), "%s (ifindex %u), program not found",
			 if_indextoname(cfg->ifindex, name) ? name : "?",
			 cfg->ifindex);
		printf(ROW, "interface", buf);
	} else if (!s->natt) {
		printf(ROW, "interface", "none: the program is not attached");
	}
	if (s->natt && !strcmp(s->mode, stcp_mode_name(STCP_MODE_IPLINK)))
		snprintf(buf, sizeof(buf), "%s (%s)", s->mode,
			 s->att[0].xdp_mode);
	else
		snprintf(buf, sizeof(buf), "%s", s->mode);
	if (s->natt && s->att[0].dispatcher)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
			 ", in a libxdp dispatcher");
	printf(ROW, "mode", buf);
	for (int i = 0; i < s->natt; i++) {
		snprintf(buf, sizeof(buf), "%u", s->att[i].prog_id);
		printf(ROW, i ? "" : "program id", buf);
	}
	if (!s->natt)
		printf(ROW, "program id", "-");
	if (s->daemon_alive)
		snprintf(buf, sizeof(buf), "%u", cfg->daemon_pid);
	else if (cfg->daemon_pid)
		snprintf(buf, sizeof(buf), "- (pid %u is gone)",
			 cfg->daemon_pid);
	else
		snprintf(buf, sizeof(buf), "-");
	printf(ROW, "daemon pid", buf);
	if (s->ks.cur.valid)
		snprintf(buf, sizeof(buf), "%u", s->ks.cur.gen);
	else
		snprintf(buf, sizeof(buf),
			 "none: SYNs are dropped ('stcpctl keys rotate')");
	printf(ROW, "key generation", buf);
	format_time(cfg->keys_rotated_at, buf, sizeof(buf));
	printf(ROW, "keys rotated", buf);
	for (int i = 0; i < s->nlisten; i++) {
		stcp_listen_format(&s->listen[i], buf, sizeof(buf));
		printf(ROW, i ? "" : "listen", buf);
	}
	if (!s->nlisten)
		printf(ROW, "listen", "none ('stcpctl listen add ADDR:PORT')");
	if (s->content_paths > 0)
		snprintf(buf, sizeof(buf), "%d paths ('stcpctl content ls')",
			 s->content_paths);
	else if (!s->content_paths)
		snprintf(buf, sizeof(buf), "none (stcpd --root DIR)");
	else
		snprintf(buf, sizeof(buf), "no content cache maps");
	printf(ROW, "content", buf);
	printf("counters\n");
	print_counters(s->counters, "  ");
}

static int cmd_status(struct ctl *c, int argc, char **argv)
{
	struct status *s;
	int err;

	(void)argv;
	if (argc)
		return usage_error("status takes no arguments");
	if (open_maps(c))
		return EXIT_RUNTIME;
	s = calloc(1, sizeof(*s));
	if (!s) {
		log_err("out of memory");
		return EXIT_RUNTIME;
	}
	err = status_read(c, s);
	if (err)
		log_err("cannot read the maps in %s: %s", c->pin_dir,
			strerror(-err));
	else if (c->json)
		status_json(c, s);
	else
		status_text(c, s);
	free(s);
	return err ? EXIT_RUNTIME : 0;
}

static int cmd_stats(struct ctl *c, int argc, char **argv)
{
	uint64_t v[STCP_C_MAX];
	int err;

	(void)argv;
	if (argc)
		return usage_error("stats takes no arguments");
	if (open_maps(c))
		return EXIT_RUNTIME;
	err = stcp_counters_read(c->m.counters, v);
	if (err) {
		log_err("cannot read the counters: %s", strerror(-err));
		return EXIT_RUNTIME;
	}
	if (c->json)
		print_json(json_counters(v));
	else
		print_counters(v, "");
	return 0;
}

static int listen_print(const struct ctl *c)
{
	struct stcp_listen_key k[STCP_MAX_LISTEN];
	struct json_object *o;
	char buf[64];
	int n;

	n = listen_read(c, k);
	if (n < 0) {
		log_err("cannot read the listen map: %s", strerror(-n));
		return EXIT_RUNTIME;
	}
	if (c->json) {
		o = json_object_new_object();
		json_object_object_add(o, "listen", json_listen(k, n));
		print_json(o);
		return 0;
	}
	for (int i = 0; i < n; i++) {
		stcp_listen_format(&k[i], buf, sizeof(buf));
		puts(buf);
	}
	return 0;
}

static int listen_change(struct ctl *c, bool add, const char *arg)
{
	struct stcp_listen_key k;
	char addr[64];
	int err;

	if (stcp_listen_parse(arg, &k))
		return usage_error("listen %s %s: expected ADDR:PORT, %s",
				   add ? "add" : "del", arg, LISTEN_EXAMPLE);
	if (open_maps(c))
		return EXIT_RUNTIME;
	stcp_listen_format(&k, addr, sizeof(addr));
	if (add) {
		err = stcp_listen_add(c->m.listen, &k);
		if (err == -E2BIG) {
			log_err("cannot add %s: the listen map is full (%d "
				"entries); remove one with 'stcpctl listen "
				"del'",
				addr, STCP_MAX_LISTEN);
			return EXIT_RUNTIME;
		}
		if (err) {
			log_err("cannot add %s: %s", addr, strerror(-err));
			return EXIT_RUNTIME;
		}
		err = stcp_keys_ensure(c->m.keys, c->m.cfg);
		if (err) {
			log_err("added %s, but cannot install a key: %s", addr,
				strerror(-err));
			return EXIT_RUNTIME;
		}
	} else {
		err = stcp_listen_del(c->m.listen, &k);
		if (err == -ENOENT) {
			log_err("%s is not a service address (see 'stcpctl "
				"listen ls')",
				addr);
			return EXIT_RUNTIME;
		}
		if (err) {
			log_err("cannot remove %s: %s", addr, strerror(-err));
			return EXIT_RUNTIME;
		}
	}
	return c->json ? listen_print(c) : 0;
}

static int cmd_listen(struct ctl *c, int argc, char **argv)
{
	const char *sub = argc ? argv[0] : NULL;
	bool add;

	if (!sub)
		return usage_error("listen needs a subcommand: add ADDR:PORT, "
				   "del ADDR:PORT or ls");
	if (!strcmp(sub, "ls") || !strcmp(sub, "list")) {
		if (argc > 1)
			return usage_error("listen ls takes no arguments");
		if (open_maps(c))
			return EXIT_RUNTIME;
		return listen_print(c);
	}
	add = !strcmp(sub, "add");
	if (!add && strcmp(sub, "del") && strcmp(sub, "delete"))
		return usage_error("unknown listen subcommand '%s' (expected "
				   "add, del or ls)",
				   sub);
	if (argc != 2)
		return usage_error("listen %s needs one ADDR:PORT, %s", sub,
				   LISTEN_EXAMPLE);
	return listen_change(c, add, argv[1]);
}

static int keys_show(const struct ctl *c, const struct key_state *ks)
{
	uint64_t rotated_at = ks->cfg.keys_rotated_at;
	struct json_object *o;
	char buf[96];

	if (c->json) {
		const struct key_meta *p = &ks->prev;

		o = json_object_new_object();
		json_object_object_add(o, "generation",
				       json_object_new_uint64(ks->cur.gen));
		json_object_object_add(o, "slot",
				       json_object_new_uint64(ks->slot));
		json_object_object_add(o, "valid",
				       json_object_new_boolean(ks->cur.valid));
		json_object_object_add(o, "rotated_at",
				       json_u64_or_null(rotated_at));
		json_object_object_add(o, "previous_valid",
				       json_object_new_boolean(p->valid));
		json_object_object_add(o, "previous_generation",
				       json_u64_or_null(p->valid ? p->gen : 0));
		print_json(o);
		return 0;
	}
	if (ks->cur.valid)
		snprintf(buf, sizeof(buf), "%u", ks->cur.gen);
	else
		snprintf(buf, sizeof(buf), "none ('stcpctl keys rotate')");
	printf(ROW, "generation", buf);
	snprintf(buf, sizeof(buf), "%u", ks->slot);
	printf(ROW, "current slot", buf);
	format_time(rotated_at, buf, sizeof(buf));
	printf(ROW, "rotated at", buf);
	if (ks->prev.valid)
		snprintf(buf, sizeof(buf), "valid (generation %u)",
			 ks->prev.gen);
	else
		snprintf(buf, sizeof(buf), "none");
	printf(ROW, "previous key", buf);
	return 0;
}

/*
 * A running stcpd rotates the key itself (SIGUSR1): it owns the schedule
 * and, with --redis, the key history its replicas share, which a local
 * rotation would fork. Without a daemon the key is rotated here.
 */
static int keys_rotate(struct ctl *c)
{
	const long max_polls = ROTATE_TIMEOUT_S * 1000000L / RELOAD_POLL_US;
	struct key_state ks;
	__u32 pid, gen;
	long polls;
	int err;

	err = key_state_read(c, &ks);
	if (err)
		goto fail;
	pid = ks.cfg.daemon_pid;
	if (!stcp_daemon_alive(pid)) {
		err = stcp_keys_rotate(c->m.keys, c->m.cfg);
		goto fail;
	}
	gen = ks.cur.valid ? ks.cur.gen : 0;
	if (kill((pid_t)pid, SIGUSR1)) {
		err = -errno;
		log_err("cannot signal stcpd (pid %u): %s", pid,
			strerror(-err));
		return err;
	}
	for (polls = 0; polls < max_polls; polls++) {
		usleep(RELOAD_POLL_US);
		err = key_state_read(c, &ks);
		if (err)
			goto fail;
		if (ks.cur.valid && ks.cur.gen != gen)
			return 0;
		if (!stcp_daemon_alive(pid)) {
			log_err("stcpd (pid %u) exited before rotating the key",
				pid);
			return -ESRCH;
		}
	}
	log_err("stcpd (pid %u) has not rotated the key within %d s; the "
		"rotation stays pending (with --redis it waits for Redis: see "
		"its log)",
		pid, ROTATE_TIMEOUT_S);
	return -ETIMEDOUT;
fail:
	if (err)
		log_err("cannot rotate the key: %s", strerror(-err));
	return err;
}

static int cmd_keys(struct ctl *c, int argc, char **argv)
{
	const char *sub = argc ? argv[0] : NULL;
	struct key_state ks;
	bool rotate;
	int err;

	if (!sub)
		return usage_error("keys needs a subcommand: rotate or show");
	rotate = !strcmp(sub, "rotate");
	if (!rotate && strcmp(sub, "show"))
		return usage_error("unknown keys subcommand '%s' (expected "
				   "rotate or show)",
				   sub);
	if (argc > 1)
		return usage_error("keys %s takes no arguments", sub);
	if (open_maps(c))
		return EXIT_RUNTIME;
	if (rotate && keys_rotate(c))
		return EXIT_RUNTIME;
	err = key_state_read(c, &ks);
	if (err) {
		log_err("cannot read the key state: %s", strerror(-err));
		return EXIT_RUNTIME;
	}
	if (!rotate)
		return keys_show(c, &ks);
	if (c->json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "generation",
				       json_object_new_uint64(ks.cur.gen));
		print_json(o);
	} else {
		printf("rotated; key generation %u\n", ks.cur.gen);
	}
	return 0;
}

/* ---- reload ---- */

static int cmd_reload(struct ctl *c, int argc, char **argv)
{
	const long max_polls = RELOAD_TIMEOUT_S * 1000000L / RELOAD_POLL_US;
	struct stcp_cfg cfg;
	__u32 pid, before;
	long polls;
	int n, err;

	(void)argv;
	if (argc)
		return usage_error("reload takes no arguments");
	if (open_maps(c))
		return EXIT_RUNTIME;
	err = stcp_cfg_read(c->m.cfg, &cfg);
	if (err) {
		log_err("cannot read %s: %s", STCP_MAP_CFG, strerror(-err));
		return EXIT_RUNTIME;
	}
	pid = cfg.daemon_pid;
	if (!stcp_daemon_alive(pid)) {
		log_err("no stcpd runs with the maps in %s: reload needs the "
			"daemon (stcpd --root DIR)",
			c->pin_dir);
		return EXIT_RUNTIME;
	}
	before = cfg.cache_loads;
	if (kill((pid_t)pid, SIGHUP)) {
		log_err("cannot signal stcpd (pid %u): %s", pid,
			strerror(errno));
		return EXIT_RUNTIME;
	}
	for (polls = 0; polls < max_polls; polls++) {
		usleep(RELOAD_POLL_US);
		err = stcp_cfg_read(c->m.cfg, &cfg);
		if (err) {
			log_err("cannot read %s: %s", STCP_MAP_CFG,
				strerror(-err));
			return EXIT_RUNTIME;
		}
		if (cfg.cache_loads != before)
			break;
		if (!stcp_daemon_alive(pid)) {
			log_err("stcpd (pid %u) exited during the reload", pid);
			return EXIT_RUNTIME;
		}
	}
	if (polls == max_polls) {
		log_err("stcpd (pid %u) has not finished reloading after %d s "
			"(see its log)",
			pid, RELOAD_TIMEOUT_S);
		return EXIT_RUNTIME;
	}
	if (cfg.cache_loads & STCP_CFG_LOAD_FAILED) {
		log_err("stcpd (pid %u) could not reload the content (see its "
			"log); it serves what it had",
			pid);
		return EXIT_RUNTIME;
	}
	n = c->m.objects >= 0 ? stcp_map_count_entries(c->m.objects) : 0;
	if (c->json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "daemon_pid",
				       json_object_new_uint64(pid));
		json_object_object_add(o, "paths",
				       json_object_new_int(n < 0 ? 0 : n));
		print_json(o);
	} else {
		printf("reloaded; %d paths in the cache\n", n < 0 ? 0 : n);
	}
	return 0;
}

/* ---- content ls ---- */

struct content_row {
	struct stcp_obj_key key;
	struct stcp_obj obj;
	struct stcp_resp resp[STCP_VARIANTS];
	bool resp_ok[STCP_VARIANTS];
	char type[128];
	char etag[128];
	char last_modified[64];
};

static int content_cmp(const void *a, const void *b)
{
	const struct content_row *x = a, *y = b;
	int r = strncmp(x->key.host, y->key.host, sizeof(x->key.host));

	return r ? r : strncmp(x->key.path, y->key.path, sizeof(x->key.path));
}

/* Reads every stcp_objects entry, its slots and the 200 header. Returns
 * the number of rows, or a negative errno. */
static int content_read(const struct ctl *c, struct content_row **out)
{
	struct content_row *rows = NULL;
	struct stcp_obj_key k, prev;
	char *hdr = NULL;
	size_t n = 0, cap = 0;
	void *pk = NULL;
	int err = 0;

	hdr = malloc(STCP_PAGE_SIZE + 1);
	if (!hdr)
		return -ENOMEM;
	while (!bpf_map_get_next_key(c->m.objects, pk, &k)) {
		struct content_row *r;

		prev = k;
		pk = &prev;
		if (n == cap) {
			void *p;

			cap = cap ? 2 * cap : 64;
			p = realloc(rows, cap * sizeof(*rows));
			if (!p) {
				err = -ENOMEM;
				goto fail;
			}
			rows = p;
		}
		r = &rows[n];
		memset(r, 0, sizeof(*r));
		r->key = k;
		if (bpf_map_lookup_elem(c->m.objects, &k, &r->obj))
			continue; /* deleted meanwhile */
		for (int v = 0; v < STCP_VARIANTS; v++) {
			r->resp_ok[v] = !stcp_resp_read(c->m.pages, c->m.resps,
							 r->obj.resp[v],
							 &r->resp[v], hdr);
			if (v != STCP_V_200_CLOSE || !r->resp_ok[v])
				continue;
			stcp_hdr_field(hdr, "Content-Type", r->type,
				       sizeof(r->type));
			stcp_hdr_field(hdr, "ETag", r->etag, sizeof(r->etag));
			stcp_hdr_field(hdr, "Last-Modified", r->last_modified,
				       sizeof(r->last_modified));
		}
		n++;
		if (n > STCP_MAX_OBJECTS * 4)
			break;
	}
	free(hdr);
	if (n)
		qsort(rows, n, sizeof(*rows), content_cmp);
	*out = rows;
	return (int)n;
fail:
	free(hdr);
	free(rows);
	return err;
}

static const char *source_name(const struct stcp_obj *o)
{
	return o->source == STCP_SRC_REDIS ? "redis" : "root";
}

/* "host/path" for a host-specific object, else the path. */
static void content_name(const struct content_row *r, char *buf, size_t len)
{
	snprintf(buf, len, "%.*s%.*s", (int)sizeof(r->key.host), r->key.host,
		 (int)sizeof(r->key.path), r->key.path);
}

static void content_json(const struct content_row *rows, int n)
{
	struct json_object *a = json_object_new_array();

	for (int i = 0; i < n && a; i++) {
		const struct content_row *r = &rows[i];
		struct json_object *o = json_object_new_object();
		struct json_object *rs = json_object_new_array();
		char host[STCP_HOST_LEN + 1], path[STCP_PATH_LEN + 1];

		snprintf(host, sizeof(host), "%.*s", (int)sizeof(r->key.host),
			 r->key.host);
		snprintf(path, sizeof(path), "%.*s", (int)sizeof(r->key.path),
			 r->key.path);
		json_object_object_add(o, "host", json_object_new_string(host));
		json_object_object_add(o, "path", json_object_new_string(path));
		json_object_object_add(o, "size",
				       json_object_new_uint64(r->obj.size));
		json_object_object_add(o, "mtime_ns",
				       json_object_new_uint64(r->obj.mtime));
		json_object_object_add(
			o, "source",
			json_object_new_string(source_name(&r->obj)));
		json_object_object_add(o, "content_type",
				       r->type[0] ?
					       json_object_new_string(r->type) :
					       NULL);
		json_object_object_add(o, "etag",
				       r->etag[0] ?
					       json_object_new_string(r->etag) :
					       NULL);
		json_object_object_add(
			o, "last_modified",
			r->last_modified[0] ?
				json_object_new_string(r->last_modified) :
				NULL);
		for (int v = 0; v < STCP_VARIANTS && rs; v++) {
			const struct stcp_resp *p = &r->resp[v];
			struct json_object *ro = json_object_new_object();

			json_object_object_add(
				ro, "variant",
				json_object_new_string(stcp_variant_names[v]));
			/* null: slots come with the first request
			 * (STCP_SLOT_NONE) */
			json_object_object_add(
				ro, "slot",
				r->obj.resp[v] == STCP_SLOT_NONE ?
					NULL :
					json_object_new_uint64(r->obj.resp[v]));
			json_object_object_add(ro, "gen",
					       json_object_new_uint64(p->gen));
			json_object_object_add(
				ro, "valid",
				json_object_new_boolean(r->resp_ok[v]));
			json_object_object_add(
				ro, "hdr_len",
				json_object_new_uint64(p->hdr_len));
			json_object_object_add(
				ro, "body_len",
				json_object_new_uint64(p->body_len));
			json_object_array_add(rs, ro);
		}
		json_object_object_add(o, "resps", rs);
		json_object_array_add(a, o);
	}
	print_json(a);
}

static void content_text(const struct content_row *rows, int n)
{
	char name[STCP_HOST_LEN + STCP_PATH_LEN + 1], slots[96];
	int w = 4;

	for (int i = 0; i < n; i++) {
		content_name(&rows[i], name, sizeof(name));
		if ((int)strlen(name) > w)
			w = (int)strlen(name);
	}
	if (n)
		printf("%-*s %10s %-6s %-34s %-27s %s\n", w, "PATH", "SIZE",
		       "SOURCE", "ETAG", "SLOT:GEN (200c 200k 304c 304k)",
		       "TYPE");
	for (int i = 0; i < n; i++) {
		const struct content_row *r = &rows[i];
		size_t used = 0;

		slots[0] = '\0';
		for (int v = 0; v < STCP_VARIANTS; v++) {
			int k = r->obj.resp[v] == STCP_SLOT_NONE ?
					snprintf(slots + used,
						 sizeof(slots) - used, "%s-",
						 v ? " " : "") :
					snprintf(slots + used,
						 sizeof(slots) - used,
						 "%s%u:%u%s", v ? " " : "",
						 r->obj.resp[v],
						 r->resp[v].gen,
						 r->resp_ok[v] ? "" : "!");

			if (k < 0 || (size_t)k >= sizeof(slots) - used)
				break;
			used += (size_t)k;
		}
		content_name(r, name, sizeof(name));
		printf("%-*s %10llu %-6s %-34s %-27s %s\n", w, name,
		       (unsigned long long)r->obj.size, source_name(&r->obj),
		       r->etag[0] ? r->etag : "-", slots,
		       r->type[0] ? r->type : "-");
	}
}

/* ---- content add|rm: Redis ---- */

/* FILE, or standard input for "-", whole; *buf malloc'd. */
static int read_input(const char *file, uint8_t **buf, size_t *len)
{
	size_t cap = 0, n = 0;
	uint8_t *b = NULL;
	struct stat st;
	int fd, err = 0;

	fd = strcmp(file, "-") ? open(file, O_RDONLY | O_CLOEXEC) : 0;
	if (fd < 0)
		return -errno;
	if (!fstat(fd, &st) && S_ISDIR(st.st_mode)) {
		err = -EISDIR;
		goto out;
	}
	for (;;) {
		ssize_t got;

		if (n == cap) {
			void *p;

			if (cap >= STCP_CONTENT_MAX_BODY) {
				err = -EFBIG;
				goto out;
			}
			cap = cap ? 2 * cap : 65536;
			p = realloc(b, cap);
			if (!p) {
				err = -ENOMEM;
				goto out;
			}
			b = p;
		}
		got = read(fd, b + n, cap - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			err = -errno;
			goto out;
		}
		if (!got)
			break;
		n += (size_t)got;
	}
	if (n > STCP_CONTENT_MAX_BODY)
		err = -EFBIG;
out:
	if (fd > 0)
		close(fd);
	if (err) {
		free(b);
		return err;
	}
	*buf = b;
	*len = n;
	return 0;
}

static redisContext *redis_open(const struct ctl *c)
{
	struct stcp_redis_addr a;
	redisContext *rc;
	char why[160];

	stcp_redis_addr_parse(c->redis, &a); /* checked by parse_args */
	rc = stcp_redis_connect(&a, why, sizeof(why));
	if (!rc)
		log_err("cannot reach Redis at %s: %s", c->redis, why);
	return rc;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* s for an error line: bytes other than visible ASCII as \xNN. */
static const char *printable(const char *s, char *buf, size_t len)
{
	size_t used = 0;

	for (; *s && used + 5 < len; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch > 0x20 && ch < 0x7f)
			buf[used++] = (char)ch;
		else
			used += (size_t)snprintf(buf + used, len - used,
						 "\\x%02x", ch);
	}
	buf[used] = '\0';
	return buf;
}

/* PATH and the Redis options, common to add and rm; 0 or the exit code. */
static int content_args(const struct ctl *c, const char *sub, const char *path)
{
	char buf[4 * STCP_PATH_LEN];
	const char *why;

	why = stcp_content_path_check(path, strlen(path));
	if (why)
		return usage_error("content %s: PATH '%s' %s", sub,
				   printable(path, buf, sizeof(buf)), why);
	if (!c->redis)
		return usage_error("content %s needs --redis HOST:PORT or "
				   "unix:PATH (the Redis stcpd was given)",
				   sub);
	return 0;
}

static int content_add(struct ctl *c, int argc, char **argv)
{
	const char *prefix =
		c->redis_prefix ? c->redis_prefix : STCP_REDIS_DEFAULT_PREFIX;
	uint8_t *body = NULL;
	redisContext *rc = NULL;
	uint64_t version = 0;
	char why[256];
	size_t len = 0;
	int err, ret = EXIT_RUNTIME;

	if (argc != 3)
		return usage_error("content add needs PATH and FILE ('-' for "
				   "standard input), e.g. 'stcpctl --redis "
				   "127.0.0.1:6379 content add /a.css a.css'");
	err = content_args(c, "add", argv[1]);
	if (err)
		return err;
	if (c->type && stcp_content_type_check(c->type, strlen(c->type))) {
		char buf[4 * STCP_CONTENT_TYPE_MAX];

		return usage_error(
			"--type '%s' %s", printable(c->type, buf, sizeof(buf)),
			stcp_content_type_check(c->type, strlen(c->type)));
	}
	err = read_input(argv[2], &body, &len);
	if (err) {
		if (err == -EFBIG)
			log_err("%s: larger than %llu MiB, the most a Redis "
				"string holds",
				argv[2], STCP_CONTENT_MAX_BODY >> 20);
		else
			log_err("%s: %s", argv[2], strerror(-err));
		return EXIT_RUNTIME;
	}
	rc = redis_open(c);
	if (!rc)
		goto out;
	err = stcp_content_redis_add(rc, prefix, argv[1], body, len, c->type,
				     now_ns(), &version, why, sizeof(why));
	if (err) {
		log_err("cannot store %s in Redis at %s: %s", argv[1], c->redis,
			why);
		goto out;
	}
	if (c->json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "path",
				       json_object_new_string(argv[1]));
		json_object_object_add(o, "size", json_object_new_uint64(len));
		json_object_object_add(o, "version",
				       json_object_new_uint64(version));
		print_json(o);
	} else {
		printf("added %s (%zu bytes), version %llu\n", argv[1], len,
		       (unsigned long long)version);
	}
	ret = 0;
out:
	if (rc)
		redisFree(rc);
	free(body);
	return ret;
}

static int content_rm(struct ctl *c, int argc, char **argv)
{
	const char *prefix =
		c->redis_prefix ? c->redis_prefix : STCP_REDIS_DEFAULT_PREFIX;
	redisContext *rc;
	uint64_t gen = 0;
	char why[256];
	int err;

	if (argc != 2)
		return usage_error("content rm needs one PATH, e.g. 'stcpctl "
				   "--redis 127.0.0.1:6379 content rm /a.css'");
	err = content_args(c, "rm", argv[1]);
	if (err)
		return err;
	rc = redis_open(c);
	if (!rc)
		return EXIT_RUNTIME;
	err = stcp_content_redis_rm(rc, prefix, argv[1], &gen, why,
				    sizeof(why));
	redisFree(rc);
	if (err == -ENOENT) {
		log_err("%s: no such object in Redis at %s (prefix %s)",
			argv[1], c->redis, prefix);
		return EXIT_RUNTIME;
	}
	if (err) {
		log_err("cannot remove %s from Redis at %s: %s", argv[1],
			c->redis, why);
		return EXIT_RUNTIME;
	}
	if (c->json) {
		struct json_object *o = json_object_new_object();

		json_object_object_add(o, "path",
				       json_object_new_string(argv[1]));
		json_object_object_add(o, "generation",
				       json_object_new_uint64(gen));
		print_json(o);
	} else {
		printf("removed %s; content generation %llu\n", argv[1],
		       (unsigned long long)gen);
	}
	return 0;
}

static int cmd_content(struct ctl *c, int argc, char **argv)
{
	struct content_row *rows = NULL;
	int n;

	if (!argc)
		return usage_error("content needs a subcommand: ls, add or rm");
	if (c->type && strcmp(argv[0], "add"))
		return usage_error("--type goes with 'content add' only");
	if (!strcmp(argv[0], "add"))
		return content_add(c, argc, argv);
	if (!strcmp(argv[0], "rm"))
		return content_rm(c, argc, argv);
	if (strcmp(argv[0], "ls") && strcmp(argv[0], "list"))
		return usage_error("unknown content subcommand '%s' (expected "
				   "ls, add or rm)",
				   argv[0]);
	if (argc > 1)
		return usage_error("content ls takes no arguments");
	if (open_maps(c))
		return EXIT_RUNTIME;
	if (c->m.objects < 0 || c->m.resps < 0 || c->m.pages < 0) {
		log_err("no content cache maps in %s (the program there was "
			"built before the content cache)",
			c->pin_dir);
		return EXIT_RUNTIME;
	}
	n = content_read(c, &rows);
	if (n < 0) {
		log_err("cannot read the content cache: %s", strerror(-n));
		return EXIT_RUNTIME;
	}
	if (c->json)
		content_json(rows, n);
	else
		content_text(rows, n);
	free(rows);
	return 0;
}

static bool is_command(const char *name)
{
	for (size_t i = 0; i < NUM_CMD_ROWS; i++) {
		if (!strcmp(cmd_table[i].name, name))
			return true;
	}
	return false;
}

static int cmd_help(struct ctl *c, int argc, char **argv)
{
	(void)c;
	if (!argc) {
		usage(stdout);
		return 0;
	}
	if (argc > 1 || !is_command(argv[0]))
		return usage_error("help %s: no such command (commands: "
				   "status, stats, listen, keys, reload, "
				   "content, help)",
				   argv[0]);
	cmd_usage(stdout, argv[0]);
	return 0;
}

static const struct {
	const char *name;
	cmd_fn fn;
} cmd_fns[] = {
	{ "status", cmd_status }, { "stats", cmd_stats },
	{ "listen", cmd_listen }, { "keys", cmd_keys },
	{ "reload", cmd_reload }, { "content", cmd_content },
	{ "help", cmd_help },
};

static struct stcp_conf conf_file;
static int conf_end = 1; /* argv[1] up to argv[conf_end - 1] are its words */

/*
 * --config FILE (stcpd's): its pin-dir, redis and redis-prefix become
 * words before the command line's, which win; stcpd's other keys are
 * skipped, unknown ones refused. Returns 0 or the exit code.
 */
static int read_config(int *argc, char ***argv, const char *optstring,
		       const struct option *longopts)
{
	static const char *const deny[] = { "config", "json", "type",
					    "verbose", "help", "version",
					    NULL };
	const struct stcp_conf_rules rules = { longopts, deny, NULL,
					       stcp_conf_stcpd_only };
	int err = stcp_conf_argv(&conf_file, OPT_CONFIG, &rules, optstring,
				 argc, argv, &conf_end);

	if (err == -ENOMEM)
		log_err("out of memory");
	return err == -ENOMEM ? EXIT_RUNTIME : err ? EXIT_USAGE : 0;
}

/*
 * Options may come before or after the command (getopt permutes); what is
 * left over is the command and its words. Returns -1 to go on, or the exit
 * code.
 */
static int parse_args(int *argcp, char ***argvp, struct ctl *c, bool *help)
{
	struct option longopts[NUM_OPTS + 1];
	char optstring[2 * NUM_OPTS + 2];
	size_t n = 0;
	int opt, rc, argc;
	char **argv;

	memset(longopts, 0, sizeof(longopts));
	optstring[n++] = ':';
	for (size_t i = 0; i < NUM_OPTS; i++) {
		longopts[i].name = opt_table[i].name;
		longopts[i].has_arg = opt_table[i].has_arg;
		longopts[i].val = opt_table[i].val;
		if (opt_table[i].val >= 0x100)
			continue;
		optstring[n++] = (char)opt_table[i].val;
		if (opt_table[i].has_arg == required_argument)
			optstring[n++] = ':';
	}
	optstring[n] = '\0';

	rc = read_config(argcp, argvp, optstring, longopts);
	if (rc)
		return rc;
	argc = *argcp;
	argv = *argvp;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, optstring, longopts, NULL)) !=
	       -1) {
		usage_where[0] = '\0';
		if (optind - 1 >= 1 && optind - 1 < conf_end)
			stcp_conf_where(&conf_file, optind - 2, usage_where,
					sizeof(usage_where));
		switch (opt) {
		case OPT_CONFIG:
			break; /* read by read_config */
		case 'p':
			if (!*optarg)
				return usage_error("--pin-dir: expected a "
						   "directory");
			c->pin_dir = optarg;
			break;
		case 'j':
			c->json = true;
			break;
		case OPT_REDIS: {
			struct stcp_redis_addr ra;

			if (stcp_redis_addr_parse(optarg, &ra))
				return usage_error("--redis %s: expected "
						   "HOST:PORT or "
						   "unix:PATH, " REDIS_EXAMPLE,
						   optarg);
			c->redis = optarg;
			break;
		}
		case OPT_REDIS_PREFIX:
			if (!*optarg)
				return usage_error(
					"--redis-prefix: expected a "
					"non-empty prefix, e.g. "
					"--redis-prefix stcp:site1:");
			c->redis_prefix = optarg;
			break;
		case OPT_TYPE:
			c->type = optarg;
			break;
		case 'v':
			if (stcp_log_threshold < STCP_LOG_DEBUG)
				stcp_log_threshold++;
			break;
		case 'h':
			*help = true;
			break;
		case 'V':
			printf("stcpctl %s\n", STCP_VERSION);
			return 0;
		case ':':
			if (optopt == OPT_REDIS)
				return usage_error("--redis needs a "
						   "value, " REDIS_EXAMPLE);
			if (optopt == OPT_REDIS_PREFIX)
				return usage_error("--redis-prefix needs a "
						   "value, e.g. --redis-prefix "
						   "stcp:site1:");
			if (optopt == OPT_TYPE)
				return usage_error("--type needs a value, e.g. "
						   "--type text/css");
			return usage_error("--pin-dir needs a value, e.g. "
					   "--pin-dir /sys/fs/bpf/stcp");
		default:
			if (optopt >= 0x100 ||
			    (optopt > 0 && optopt != 'p' && optopt != '?' &&
			     strchr(optstring, optopt) &&
			     !strncmp(argv[optind - 1], "--", 2)))
				return usage_error("%s: this option takes no "
						   "value",
						   argv[optind - 1]);
			if (optopt > 0 && optopt < 0x100)
				return usage_error("unknown option '-%c' (see "
						   "'stcpctl --help')",
						   optopt);
			return usage_error("unknown option '%s' (see 'stcpctl "
					   "--help')",
					   argv[optind - 1]);
		}
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct ctl c = { .m = STCP_MAPS_INIT };
	const char *cmd;
	bool help = false;
	int rc;

	stcp_progname = "stcpctl";
	c.pin_dir = stcp_default_pin_dir();
	rc = parse_args(&argc, &argv, &c, &help);
	if (rc >= 0)
		return rc;
	libbpf_set_print(libbpf_print);
	libxdp_set_print(libxdp_print);
	signal(SIGPIPE, SIG_IGN);

	cmd = optind < argc ? argv[optind] : NULL;
	if (help || (cmd && !strcmp(cmd, "help") && optind + 1 >= argc)) {
		if (cmd && strcmp(cmd, "help") && is_command(cmd))
			cmd_usage(stdout, cmd);
		else
			usage(stdout);
		return 0;
	}
	if (!cmd)
		return usage_error("no command given (try 'stcpctl status' or "
				   "'stcpctl --help')");
	if (c.type && strcmp(cmd, "content"))
		return usage_error("--type goes with 'content add' only");
	rc = -1;
	for (size_t i = 0; i < sizeof(cmd_fns) / sizeof(cmd_fns[0]); i++) {
		if (!strcmp(cmd, cmd_fns[i].name)) {
			rc = cmd_fns[i].fn(&c, argc - optind - 1,
					   argv + optind + 1);
			break;
		}
	}
	if (rc < 0)
		rc = usage_error("unknown command '%s' (commands: status, "
				 "stats, listen, keys, reload, content, help; "
				 "see 'stcpctl --help')",
				 cmd);
	stcp_maps_close(&c.m);
	if (fflush(stdout) && !rc) {
		log_err("cannot write the output: %s", strerror(errno));
		rc = EXIT_RUNTIME;
	}
	return rc;
}
