// SPDX-License-Identifier: GPL-2.0
/*
 * stcpd: loads the stcp fast path, pins its maps, installs a fresh key and
 * the service addresses, fills the content cache from --root, attaches the
 * program to one interface through libxdp (so other XDP programs can share
 * it), and waits in the foreground: SIGHUP reloads the content, SIGINT and
 * SIGTERM undo all of that.
 *
 * The maps are created and filled before the program is attached, so the
 * first packet the program sees already finds a key and the addresses. That
 * takes two opens of the same object: libxdp must load the program itself
 * (as an extension of its dispatcher), so the first open creates and pins
 * only the maps, and the second one, which libxdp loads, reuses the pins.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <linux/magic.h>
#include <net/if.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include "cache.h"
#include "common.h"
#include "config.h"
#include "content_redis.h"
#include "metrics.h"
#include "reasm.h"
#include "redis_keys.h"
#include "redis_conns.h"
#include "stcp.skel.h"

#ifndef STCP_VERSION
#define STCP_VERSION "0.1.0"
#endif

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

#define NUM_MAPS 7
#define PAGES_MAP 4 /* index of stcp_pages in map_names */
#define LISTEN_EXAMPLE "e.g. 198.18.0.1:80 or [2001:db8::1]:80"
#define DEFAULT_CACHE_MB 512
/* Pages reserved without --root: the fixed error responses. */
#define NO_ROOT_PAGES 64
#define PAGES_PER_MB (1024 * 1024 / STCP_PAGE_SIZE)
/* Most MiB whose page count fits in the u32 max_entries of stcp_pages. */
#define MAX_CACHE_MB (UINT32_MAX / PAGES_PER_MB)
/* How often the daemon loop frees what has waited out its grace period. */
#define REAP_INTERVAL_S 10

enum {
	OPT_KEEP_MAPS = 0x100,
	OPT_LOG_LEVEL,
	OPT_CACHE_MB,
	OPT_REDIS,
	OPT_REDIS_PREFIX,
	OPT_KEY_ROTATE_S,
	OPT_METRICS,
};

/* One row per option: getopt_long's table and --help both come from here. */
struct opt_desc {
	const char *name;
	int has_arg;
	int val;
	const char *arg; /* value placeholder, NULL for flags */
	const char *example; /* for "needs a value" errors */
	const char *help;
};

static const struct opt_desc opt_table[] = {
	{ "config", required_argument, 'c', "FILE",
	  "--config /etc/stcp/stcpd.conf",
	  "read the settings from FILE first: INI, one 'option = value' per "
	  "line, keys named like the long options below (not config, verbose, "
	  "help, version); options given here override the file" },
	{ "iface", required_argument, 'i', "DEV", "--iface eth0",
	  "network interface to attach to (required)" },
	{ "listen", required_argument, 'l', "ADDR:PORT",
	  "--listen 198.18.0.1:80",
	  "service address to answer for, " LISTEN_EXAMPLE
	  "; repeat for up to 64 (at least one required)" },
	{ "root", required_argument, 'r', "DIR", "--root /srv/www",
	  "serve the regular files under DIR from the content cache, loaded "
	  "at start-up and again on SIGHUP ('stcpctl reload'); default: no "
	  "content" },
	{ "cache-mb", required_argument, OPT_CACHE_MB, "N", "--cache-mb 128",
	  "size of the content cache in MiB, allocated when the maps are "
	  "created (default 512 with --root or --redis, 256 KiB for the fixed "
	  "error responses without; or the size of a cache already pinned). "
	  "Content "
	  "that does not fit is loaded on a request, evicting the least "
	  "recently used" },
	{ "mode", required_argument, 'm', "MODE", "--mode generic",
	  "native (in the driver, the default) or generic (any interface, "
	  "slower)" },
	{ "pin-dir", required_argument, 'p', "DIR",
	  "--pin-dir /sys/fs/bpf/stcp",
	  "bpffs directory to pin the maps in (default $STCP_PIN_DIR, else "
	  STCP_PIN_DIR ", where 'ip link' pins); created if missing. Maps "
	  "already pinned there are reused, and left pinned on exit" },
	{ "keep-maps", no_argument, OPT_KEEP_MAPS, NULL, NULL,
	  "on a clean stop, leave pinned the maps this run pinned (keys and "
	  "counters survive a restart)" },
	{ "metrics", required_argument, OPT_METRICS, "ADDR:PORT",
	  "--metrics 127.0.0.1:9100",
	  "serve Prometheus metrics at http://ADDR:PORT/metrics, "
	  "e.g. 127.0.0.1:9100 or [::1]:9100; not one of the --listen "
	  "addresses; default: none" },
	{ "redis", required_argument, OPT_REDIS, "HOST:PORT|unix:PATH",
	  "--redis unix:/run/redis/redis.sock",
	  "share the MAC keys with every stcpd given the same Redis (and "
	  "prefix): taken from it at start-up, created in it if missing, "
	  "rotated through it; and serve the objects stored there with "
	  "'stcpctl content add' (polled every second; they win over files "
	  "under --root at the same path). stcpd serves on with the keys and "
	  "content it has while Redis is away. Default: a local key, no "
	  "Redis content" },
	{ "redis-prefix", required_argument, OPT_REDIS_PREFIX, "PREFIX",
	  "--redis-prefix stcp:site1:",
	  "prefix of the Redis keys (PREFIX\"keys\", PREFIX\"rotate-lock\", "
	  "PREFIX\"content:...\"); "
	  "default " STCP_REDIS_DEFAULT_PREFIX },
	{ "key-rotate-s", required_argument, OPT_KEY_ROTATE_S, "N",
	  "--key-rotate-s 600",
	  "rotate the MAC key every N seconds (the previous key stays "
	  "valid), through Redis with --redis; 0: only on request (SIGUSR1, "
	  "'stcpctl keys rotate'). Default 3600" },
	{ "log-level", required_argument, OPT_LOG_LEVEL, "LEVEL",
	  "--log-level info", "error, warn (default), info or debug" },
	{ "verbose", no_argument, 'v', NULL, NULL,
	  "raise the log level one step; repeat for more" },
	{ "help", no_argument, 'h', NULL, NULL, "show this help and exit" },
	{ "version", no_argument, 'V', NULL, NULL,
	  "show the version and exit" },
};

#define NUM_OPTS (sizeof(opt_table) / sizeof(opt_table[0]))

struct config {
	const char *iface;
	unsigned int ifindex;
	struct stcp_listen_key listen[STCP_MAX_LISTEN];
	int nlisten;
	bool generic;
	const char *pin_dir;
	bool keep_maps;
	const char *root; /* NULL: no content */
	__u32 cache_pages;
	bool cache_mb_set;
	struct stcp_keyd_opts keys; /* --redis, --key-rotate-s, ... */
	struct stcp_listen_key metrics; /* --metrics, if metrics_set */
	bool metrics_set;
};

/* Everything set up so far, so that one teardown can undo any prefix. */
struct daemon {
	const struct config *cfg;
	struct stcp_bpf *maps_obj; /* creates and pins the maps; no program */
	struct stcp_bpf *prog_obj; /* loaded by libxdp, reuses the pins */
	struct xdp_program *prog;
	bool attached;
	char pin_path[NUM_MAPS][PATH_MAX];
	bool pin_existed[NUM_MAPS];
	char made_dir[PATH_MAX]; /* the topmost directory we created, or "" */
	bool listen_added[STCP_MAX_LISTEN];
	bool cfg_written;
	__u32 prog_id;
	__u32 npages; /* stcp_pages max_entries: --cache-mb or the pin's */
	struct stcp_cache cache;
	bool cache_init;
	struct stcp_keyd *keyd; /* rotation schedule, --redis */
	struct stcp_connd *connd; /* stcp_conns entries in Redis, --redis */
	/* requests completed from segments in Redis; segments not stored */
	uint64_t reasm_merged, reasm_redis_failed;
	uint64_t conn_fetched, conn_gone; /* on_conn_miss() */
	struct stcp_content_redis *content; /* --redis: objects from Redis */
	struct stcp_metrics *metrics; /* NULL without --metrics */
	struct ring_buffer *misses; /* stcp_misses of the attached program */
	uint64_t miss_injected, miss_failed;
	struct stcp_reasm reasm; /* requests that span segments */
	bool reasm_init;
};

static const char *const map_names[NUM_MAPS] = {
	STCP_MAP_CFG,
	STCP_MAP_KEYS,
	STCP_MAP_LISTEN,
	STCP_MAP_COUNTERS,
	STCP_MAP_PAGES,
	STCP_MAP_RESPS,
	STCP_MAP_OBJECTS,
};

static struct bpf_map *skel_map(struct stcp_bpf *skel, int i)
{
	struct bpf_map *maps[NUM_MAPS] = {
		skel->maps.stcp_cfg,
		skel->maps.stcp_keys,
		skel->maps.stcp_listen,
		skel->maps.stcp_counters,
		skel->maps.stcp_pages,
		skel->maps.stcp_resps,
		skel->maps.stcp_objects,
	};

	return maps[i];
}


static void usage(FILE *f)
{
	fprintf(f,
		"Usage: stcpd --iface DEV --listen ADDR:PORT [--listen ...] "
		"[OPTION]...\n"
		"       stcpd --config FILE [OPTION]...\n"
		"\n"
		"Answers TCP for the given service addresses from an XDP "
		"program on DEV,\n"
		"with no state per connection. Runs in the foreground; SIGHUP "
		"reloads the\n"
		"content (--root), SIGINT or SIGTERM detaches, removes its "
		"service addresses\n"
		"and unpins the maps it pinned. Inspect it with 'stcpctl "
		"status'.\n"
		"\n"
		"Options:\n");
	for (size_t i = 0; i < NUM_OPTS; i++) {
		const struct opt_desc *o = &opt_table[i];
		char head[64];
		int n;

		if (o->val < 0x100)
			n = snprintf(head, sizeof(head), "-%c, --%s", o->val,
				     o->name);
		else
			n = snprintf(head, sizeof(head), "    --%s", o->name);
		if (o->arg && n > 0 && (size_t)n < sizeof(head))
			snprintf(head + n, sizeof(head) - (size_t)n, " %s",
				 o->arg);
		fprintf(f, "  %-26s", head);
		stcp_print_wrapped(f, o->help, 29);
	}
	fprintf(f,
		"\n"
		"Exit status: 0 clean stop, 1 runtime error (interface, "
		"permissions, BPF),\n"
		"2 usage error (an option or the --config file).\n"
		"\n"
		"Example: stcpd --iface eth0 --listen 198.18.0.1:80 "
		"--listen [2001:db8::1]:80\n"
		"               --root /srv/www\n");
}

static const struct opt_desc *opt_by_val(int val)
{
	for (size_t i = 0; i < NUM_OPTS; i++) {
		if (opt_table[i].val == val)
			return &opt_table[i];
	}
	return NULL;
}

/* "FILE:LINE: " while parsing a word of the --config file, else "". */
static char usage_where[PATH_MAX + 32];

static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "stcpd: %s", usage_where);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

static int add_listen(struct config *c, const char *s)
{
	struct stcp_listen_key k;

	if (stcp_listen_parse(s, &k))
		return usage_error("--listen %s: expected ADDR:PORT, %s", s,
				   LISTEN_EXAMPLE);
	for (int i = 0; i < c->nlisten; i++) {
		if (!memcmp(&c->listen[i], &k, sizeof(k)))
			return 0;
	}
	if (c->nlisten >= STCP_MAX_LISTEN)
		return usage_error("too many --listen values (at most %d)",
				   STCP_MAX_LISTEN);
	c->listen[c->nlisten++] = k;
	return 0;
}

/* The --config file: struct config points into its words until exit. */
static struct stcp_conf conf_file;
static int conf_end = 1; /* argv[1] up to argv[conf_end - 1] are its words */

/* --config FILE: its words before the command line's (stcp_conf_argv).
 * Returns 0 or the exit code. */
static int read_config(int *argc, char ***argv, const char *optstring,
		       const struct option *longopts)
{
	static const char *const deny[] = { "config", "verbose", "help",
					    "version", NULL };
	static const char *const multi[] = { "listen", NULL };
	const struct stcp_conf_rules rules = { longopts, deny, multi, NULL };
	int err = stcp_conf_argv(&conf_file, 'c', &rules, optstring, argc,
				 argv, &conf_end);

	if (err == -ENOMEM)
		log_err("out of memory");
	return err == -ENOMEM ? EXIT_RUNTIME : err ? EXIT_USAGE : 0;
}

/* Points usage errors at the file's line while argv[i] is one of its. */
static void note_where(int i)
{
	usage_where[0] = '\0';
	if (i >= 1 && i < conf_end)
		stcp_conf_where(&conf_file, i - 1, usage_where,
				sizeof(usage_where));
}

/*
 * Returns -1 to go on, or the exit code: 0 after --help or --version, 2 on a
 * usage error (already reported).
 */
static int parse_args(int argc, char **argv, struct config *c)
{
	struct option longopts[NUM_OPTS + 1];
	char optstring[3 * NUM_OPTS + 2];
	size_t n = 0;
	bool listen_flag = false;
	int opt, rc;

	memset(longopts, 0, sizeof(longopts));
	optstring[n++] = ':';
	for (size_t i = 0; i < NUM_OPTS; i++) {
		const struct opt_desc *o = &opt_table[i];

		longopts[i].name = o->name;
		longopts[i].has_arg = o->has_arg;
		longopts[i].val = o->val;
		if (o->val < 0x100) {
			optstring[n++] = (char)o->val;
			if (o->has_arg == required_argument)
				optstring[n++] = ':';
		}
	}
	optstring[n] = '\0';

	c->pin_dir = stcp_default_pin_dir();
	c->cache_pages = DEFAULT_CACHE_MB * PAGES_PER_MB;
	c->keys.rotate_s = STCP_KEY_ROTATE_DEFAULT_S;
	opterr = 0;
	rc = read_config(&argc, &argv, optstring, longopts);
	if (rc)
		return rc;
	while ((opt = getopt_long(argc, argv, optstring, longopts, NULL)) !=
	       -1) {
		note_where(optind - 1);
		switch (opt) {
		case 'c':
			break; /* read by read_config */
		case 'i':
			c->iface = optarg;
			break;
		case 'l':
			/* --listen flags replace the file's listen list. */
			if (optind - 1 >= conf_end && !listen_flag) {
				c->nlisten = 0;
				listen_flag = true;
			}
			rc = add_listen(c, optarg);
			if (rc)
				return rc;
			break;
		case 'm':
			if (!strcmp(optarg, "native"))
				c->generic = false;
			else if (!strcmp(optarg, "generic"))
				c->generic = true;
			else
				return usage_error(
					"--mode %s: expected native or generic",
					optarg);
			break;
		case 'p':
			if (!*optarg)
				return usage_error(
					"--pin-dir: expected a directory, "
					"e.g. --pin-dir /sys/fs/bpf/stcp");
			c->pin_dir = optarg;
			break;
		case 'r':
			if (!*optarg)
				return usage_error("--root: expected a "
						   "directory, e.g. --root "
						   "/srv/www");
			c->root = optarg;
			break;
		case OPT_CACHE_MB: {
			char *end;
			unsigned long long mb;

			errno = 0;
			mb = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || optarg[0] == '-' ||
			    mb < 1 || mb > MAX_CACHE_MB)
				return usage_error("--cache-mb %s: expected a "
						   "size in MiB from 1 to %u, "
						   "e.g. --cache-mb 128",
						   optarg, MAX_CACHE_MB);
			c->cache_pages = (__u32)mb * PAGES_PER_MB;
			c->cache_mb_set = true;
			break;
		}
		case OPT_METRICS:
			if (stcp_listen_parse(optarg, &c->metrics))
				return usage_error("--metrics %s: expected "
						   "ADDR:PORT, e.g. --metrics "
						   "127.0.0.1:9100 or [::1]:9100",
						   optarg);
			c->metrics_set = true;
			break;
		case OPT_REDIS: {
			struct stcp_redis_addr ra;

			if (stcp_redis_addr_parse(optarg, &ra))
				return usage_error(
					"--redis %s: expected HOST:PORT or "
					"unix:PATH, e.g. --redis 127.0.0.1:6379 "
					"or --redis unix:/run/redis/redis.sock",
					optarg);
			c->keys.redis = optarg;
			break;
		}
		case OPT_REDIS_PREFIX:
			if (!*optarg)
				return usage_error("--redis-prefix: expected a "
						   "non-empty prefix, e.g. "
						   "--redis-prefix stcp:site1:");
			c->keys.prefix = optarg;
			break;
		case OPT_KEY_ROTATE_S: {
			char *end;
			unsigned long s;

			errno = 0;
			s = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end ||
			    optarg[0] < '0' || optarg[0] > '9' ||
			    s > STCP_KEY_ROTATE_MAX_S)
				return usage_error(
					"--key-rotate-s %s: expected seconds "
					"from 0 (never) to %u, e.g. "
					"--key-rotate-s 3600",
					optarg, STCP_KEY_ROTATE_MAX_S);
			c->keys.rotate_s = (unsigned int)s;
			break;
		}
		case OPT_KEEP_MAPS:
			c->keep_maps = true;
			break;
		case OPT_LOG_LEVEL:
			if (stcp_parse_log_level(optarg, &stcp_log_threshold))
				return usage_error(
					"--log-level %s: expected error, warn, "
					"info or debug",
					optarg);
			break;
		case 'v':
			if (stcp_log_threshold < STCP_LOG_DEBUG)
				stcp_log_threshold++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("stcpd %s\n", STCP_VERSION);
			return 0;
		case ':': {
			const struct opt_desc *o = opt_by_val(optopt);

			return usage_error("--%s needs a value, e.g. %s",
					   o ? o->name : "option",
					   o && o->example ? o->example : "?");
		}
		default:
			if (opt_by_val(optopt) && optopt != '?')
				return usage_error("--%s takes no value (see "
						   "'stcpd --help')",
						   opt_by_val(optopt)->name);
			if (optopt > 0 && optopt < 0x100)
				return usage_error("unknown option '-%c' (see "
						   "'stcpd --help')",
						   optopt);
			return usage_error("unknown option '%s' (see 'stcpd "
					   "--help')",
					   argv[optind - 1]);
		}
	}
	usage_where[0] = '\0';
	if (optind < argc)
		return usage_error("unexpected argument '%s' (see 'stcpd "
				   "--help')",
				   argv[optind]);
	if (!c->iface)
		return usage_error("no --iface given: name the interface to "
				   "attach to, e.g. --iface eth0");
	if (!c->nlisten)
		return usage_error("no --listen given: name at least one "
				   "service ADDR:PORT, " LISTEN_EXAMPLE);
	if (c->metrics_set &&
	    stcp_metrics_shadowed(&c->metrics, c->listen, c->nlisten)) {
		char addr[64];

		stcp_listen_format(&c->metrics, addr, sizeof(addr));
		return usage_error("--metrics %s is also a --listen address, "
				   "whose packets the XDP program answers "
				   "itself; use another port",
				   addr);
	}
	if (c->keys.prefix && !c->keys.redis)
		return usage_error("--redis-prefix needs --redis HOST:PORT or "
				   "unix:PATH");
	/* Without content only the fixed error responses need pages: do not
	 * reserve the default cache's kernel memory for nothing. */
	if (!c->root && !c->keys.redis && !c->cache_mb_set)
		c->cache_pages = NO_ROOT_PAGES;
	return -1;
}

/* libbpf and libxdp speak through our log at debug level: their warnings
 * are details of a failure that we report in one line (or of a fallback,
 * such as libxdp attaching without its dispatcher, that is no failure). */
static void forward_log(enum stcp_log_level level, const char *fmt,
			va_list ap) __attribute__((format(printf, 2, 0)));

static void forward_log(enum stcp_log_level level, const char *fmt,
			va_list ap)
{
	char buf[1024];
	size_t n;

	if (level > stcp_log_threshold)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	stcp_log(level, "%s", buf);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	(void)level;
	forward_log(STCP_LOG_DEBUG, fmt, ap);
	return 0;
}

static int libxdp_print(enum libxdp_print_level level, const char *fmt,
			va_list ap)
{
	(void)level;
	forward_log(STCP_LOG_DEBUG, fmt, ap);
	return 0;
}

static void say_no_permission(void)
{
	log_err("cannot load BPF programs: permission denied (run as root "
		"or with CAP_BPF and CAP_NET_ADMIN)");
}

static bool is_perm(int err)
{
	return err == -EPERM || err == -EACCES;
}

/* mkdir -p; remembers in made the topmost directory it had to create. */
static int mkdir_p(const char *dir, char *made, size_t made_len)
{
	char path[PATH_MAX];
	struct stat st;
	size_t len = strlen(dir);

	if (len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, len + 1);
	for (char *p = path + 1;; p++) {
		char c = *p;

		if (c != '/' && c != '\0')
			continue;
		if (p[-1] != '/') {
			*p = '\0';
			if (!mkdir(path, 0700)) {
				if (!made[0])
					snprintf(made, made_len, "%s", path);
			} else if (errno != EEXIST) {
				return -errno;
			}
			*p = c;
		}
		if (!c)
			break;
	}
	if (stat(dir, &st))
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Removes dir and its parents up to made, as long as they are empty. */
static void rmdir_made(const char *dir, const char *made)
{
	char path[PATH_MAX];
	size_t stop = strlen(made);
	char *slash;

	if (!stop || snprintf(path, sizeof(path), "%s", dir) >=
			     (int)sizeof(path))
		return;
	for (;;) {
		size_t n = strlen(path);

		while (n > 1 && path[n - 1] == '/')
			path[--n] = '\0';
		if (n < stop || rmdir(path))
			return;
		slash = strrchr(path, '/');
		if (!slash || slash == path)
			return;
		*slash = '\0';
	}
}


/*
 * stcp_pages is pinned with another size than --cache-mb asks for: without
 * --cache-mb, that size is used; with it, the difference is an error.
 */
static int pinned_cache_size(struct daemon *d, struct bpf_map *map,
			     __u32 pinned)
{
	const char *path = d->pin_path[PAGES_MAP];
	int err;

	if (d->cfg->cache_mb_set) {
		log_err("%s holds a %u MiB content cache but --cache-mb asks "
			"for %u; pass --cache-mb %u, or remove the old pins (rm "
			"%s/stcp_*) or use another --pin-dir",
			path, pinned / PAGES_PER_MB, d->npages / PAGES_PER_MB,
			pinned / PAGES_PER_MB, d->cfg->pin_dir);
		return -EEXIST;
	}
	err = bpf_map__set_max_entries(map, pinned);
	if (err) {
		log_err("cannot size %s: %s", STCP_MAP_PAGES, strerror(-err));
		return err;
	}
	d->npages = pinned;
	log_info("using the %u MiB content cache pinned at %s",
		 pinned / PAGES_PER_MB, path);
	return 0;
}

/*
 * Looks at what is pinned already: a map libbpf could not reuse (another
 * build) and a live stcpd using the same maps are both refused here, with a
 * line that says what to do, instead of as a bare EINVAL from the load.
 */
static int check_pinned(struct daemon *d)
{
	const char *dir = d->cfg->pin_dir;
	int err = 0;

	for (int i = 0; i < NUM_MAPS && !err; i++) {
		struct bpf_map *map = skel_map(d->maps_obj, i);
		struct bpf_map_info info = { 0 };
		__u32 len = sizeof(info);
		struct stcp_cfg cfg;
		int fd;

		fd = bpf_obj_get(d->pin_path[i]);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			err = -errno;
			if (is_perm(err))
				say_no_permission();
			else
				log_err("cannot open %s: %s", d->pin_path[i],
					strerror(-err));
			break;
		}
		d->pin_existed[i] = true;
		if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
			err = -errno;
			log_err("cannot inspect %s: %s", d->pin_path[i],
				strerror(-err));
		} else if (info.type != bpf_map__type(map) ||
			   info.key_size != bpf_map__key_size(map) ||
			   info.value_size != bpf_map__value_size(map) ||
			   (info.max_entries != bpf_map__max_entries(map) &&
			    i != PAGES_MAP)) {
			err = -EEXIST;
			log_err("%s is not this build's %s map; remove the old "
				"pins (rm %s/stcp_*) or use another --pin-dir",
				d->pin_path[i], map_names[i], dir);
		} else if (info.max_entries != bpf_map__max_entries(map)) {
			err = pinned_cache_size(d, map, info.max_entries);
		} else if (i == 0 && !stcp_cfg_read(fd, &cfg) &&
			   cfg.daemon_pid != (__u32)getpid() &&
			   stcp_daemon_alive(cfg.daemon_pid)) {
			err = -EBUSY;
			log_err("stcpd (pid %u) already uses the maps in %s; "
				"stop it or use another --pin-dir",
				cfg.daemon_pid, dir);
		}
		close(fd);
	}
	return err;
}

static int setup_pin_dir(struct daemon *d)
{
	const char *dir = d->cfg->pin_dir;
	struct statfs sfs;
	int err;

	err = mkdir_p(dir, d->made_dir, sizeof(d->made_dir));
	if (err) {
		if (is_perm(err))
			say_no_permission();
		else
			log_err("cannot create pin directory %s: %s", dir,
				strerror(-err));
		return err;
	}
	if (statfs(dir, &sfs)) {
		err = -errno;
		log_err("cannot stat pin directory %s: %s", dir,
			strerror(-err));
		return err;
	}
	if (sfs.f_type != BPF_FS_MAGIC) {
		log_err("--pin-dir %s is not on a BPF filesystem (mount one: "
			"mount -t bpf bpf /sys/fs/bpf)",
			dir);
		return -EINVAL;
	}
	for (int i = 0; i < NUM_MAPS; i++) {
		char *path = d->pin_path[i];
		int n;

		n = snprintf(path, PATH_MAX, "%s/%s", dir, map_names[i]);
		if (n < 0 || n >= PATH_MAX) {
			log_err("--pin-dir %s: path too long", dir);
			return -ENAMETOOLONG;
		}
	}
	return 0;
}

static int open_skel(struct daemon *d, struct stcp_bpf **out)
{
	struct stcp_bpf *skel;
	int err;

	skel = stcp_bpf__open();
	if (!skel) {
		err = -errno;
		log_err("cannot open the BPF object: %s", strerror(-err));
		return err;
	}
	for (int i = 0; i < NUM_MAPS; i++) {
		err = bpf_map__set_pin_path(skel_map(skel, i), d->pin_path[i]);
		if (err) {
			log_err("cannot set pin path %s: %s", d->pin_path[i],
				strerror(-err));
			stcp_bpf__destroy(skel);
			return err;
		}
	}
	err = bpf_map__set_max_entries(skel->maps.stcp_pages, d->npages);
	if (!err)
		err = bpf_map__set_max_entries(skel->maps.stcp_page_tags,
					       d->npages);
	if (err) {
		log_err("cannot size %s: %s", STCP_MAP_PAGES, strerror(-err));
		stcp_bpf__destroy(skel);
		return err;
	}
	*out = skel;
	return 0;
}

/* Creates (or reuses) and pins the maps, without loading the program. */
static int create_maps(struct daemon *d)
{
	int err;

	err = open_skel(d, &d->maps_obj);
	if (err)
		return err;
	err = check_pinned(d);
	if (err)
		return err;
	bpf_program__set_autoload(d->maps_obj->progs.stcp_xdp, false);
	bpf_program__set_autoload(d->maps_obj->progs.stcp_devmap_tx, false);
	err = stcp_bpf__load(d->maps_obj);
	if (err) {
		if (is_perm(err))
			say_no_permission();
		else if (err == -ENOMEM)
			log_err("cannot create the maps in %s: out of memory "
				"for a %u MiB content cache (try a smaller "
				"--cache-mb)",
				d->cfg->pin_dir, d->npages / PAGES_PER_MB);
		else
			log_err("cannot create the maps in %s: %s (run with "
				"--log-level debug for libbpf's reasons)",
				d->cfg->pin_dir, strerror(-err));
	}
	return err;
}

static int fill_maps(struct daemon *d)
{
	const struct config *c = d->cfg;
	int cfg_fd = bpf_map__fd(d->maps_obj->maps.stcp_cfg);
	int keys_fd = bpf_map__fd(d->maps_obj->maps.stcp_keys);
	int listen_fd = bpf_map__fd(d->maps_obj->maps.stcp_listen);
	struct stcp_listen_val v;
	struct stcp_cfg cfg;
	char addr[64];
	int err;

	err = stcp_keys_rotate(keys_fd, cfg_fd);
	if (err) {
		log_err("cannot install a key: %s", strerror(-err));
		return err;
	}
	for (int i = 0; i < c->nlisten; i++) {
		stcp_listen_format(&c->listen[i], addr, sizeof(addr));
		if (!bpf_map_lookup_elem(listen_fd, &c->listen[i], &v)) {
			log_debug("%s was in the listen map already", addr);
			continue;
		}
		err = stcp_listen_add(listen_fd, &c->listen[i]);
		if (err == -E2BIG) {
			log_err("cannot add %s: the listen map in %s is full "
				"(%d entries); remove some with 'stcpctl "
				"listen del'",
				addr, c->pin_dir, STCP_MAX_LISTEN);
			return err;
		}
		if (err) {
			log_err("cannot add %s to the listen map: %s", addr,
				strerror(-err));
			return err;
		}
		d->listen_added[i] = true;
	}
	err = stcp_cfg_read(cfg_fd, &cfg);
	if (!err) {
		cfg.ifindex = c->ifindex;
		cfg.attach_mode = c->generic ? STCP_MODE_GENERIC :
					       STCP_MODE_NATIVE;
		cfg.daemon_pid = (__u32)getpid();
		err = stcp_cfg_write(cfg_fd, &cfg);
	}
	if (err) {
		log_err("cannot write the config map: %s", strerror(-err));
		return err;
	}
	d->cfg_written = true;
	return 0;
}

/* Hands the cache figures to the metrics thread, which must not read
 * d->cache while this thread changes it. */
static void publish_cache(struct daemon *d)
{
	struct stcp_cache_stats st;

	if (!d->metrics || !d->cache_init)
		return;
	stcp_cache_get_stats(&d->cache, &st);
	stcp_metrics_set_cache(d->metrics, &st);
}

/* Counts a finished cache load in stcp_cfg, for `stcpctl reload`. */
static void note_load(struct daemon *d, bool failed)
{
	int fd = bpf_map__fd(d->maps_obj->maps.stcp_cfg);
	struct stcp_cfg cfg;
	int err;

	err = stcp_cfg_read(fd, &cfg);
	if (!err) {
		cfg.cache_loads = ((cfg.cache_loads + 1) & STCP_CFG_LOAD_COUNT) |
				  (failed ? STCP_CFG_LOAD_FAILED : 0);
		err = stcp_cfg_write(fd, &cfg);
	}
	if (err)
		log_warn("cannot record the cache load in %s: %s",
			 STCP_MAP_CFG, strerror(-err));
	publish_cache(d);
}

static void log_cache(const struct daemon *d, bool reload)
{
	struct stcp_cache_stats st;

	stcp_cache_get_stats(&d->cache, &st);
	if (reload)
		log_info("cache: reloaded %s: %u added, %u changed, %u "
			 "removed, %u unchanged, %u skipped; %u replaced "
			 "(%u pages) freed after %u s and two key rotations",
			 d->cfg->root, st.added, st.changed, st.removed,
			 st.unchanged, st.skipped, st.pending, st.pending_pages,
			 d->cache.grace_s);
	if (d->content)
		log_info("cache: %u objects, %llu bytes in %u pages (of %u); "
			 "%u objects from Redis",
			 st.files, (unsigned long long)st.bytes, st.pages_used,
			 st.npages, st.redis);
	else
		log_info("cache: %u objects, %llu bytes in %u pages (of %u)",
			 st.files, (unsigned long long)st.bytes, st.pages_used,
			 st.npages);
	if (st.unslotted)
		log_info("cache: %u objects get response slots when requested "
			 "(%u slots, %d per object)",
			 st.unslotted, st.nresps, STCP_VARIANTS);
	if (st.windowed)
		log_info("cache: %u objects larger than half the cache are "
			 "served through a ring of pages each",
			 st.windowed);
}

/* --redis: the objects stored there, at start-up (after the root, which
 * they win over) and whenever their generation moves. */
static int start_content(struct daemon *d)
{
	const struct config *c = d->cfg;
	int err;

	if (!c->keys.redis)
		return 0;
	err = stcp_content_redis_new(&d->content, d->keyd,
				     c->keys.prefix ? c->keys.prefix
						    : STCP_REDIS_DEFAULT_PREFIX,
				     &d->cache);
	if (err) {
		log_err("out of memory");
		return err;
	}
	if (!stcp_keyd_connected(d->keyd))
		log_info("content: the objects in Redis are loaded once %s is "
			 "reachable",
			 c->keys.redis);
	stcp_content_redis_run(d->content, true);
	return 0;
}

/* Writes the fixed responses and, with --root, loads the content. */
static int fill_cache(struct daemon *d)
{
	const struct config *c = d->cfg;
	struct stcp_bpf *o = d->maps_obj;
	int err;

	err = stcp_cache_init(&d->cache, bpf_map__fd(o->maps.stcp_pages),
			      bpf_map__fd(o->maps.stcp_resps),
			      bpf_map__fd(o->maps.stcp_objects));
	if (err)
		return err;
	d->cache_init = true;
	d->cache.keys_fd = bpf_map__fd(o->maps.stcp_keys);
	d->cache.cfg_fd = bpf_map__fd(o->maps.stcp_cfg);
	if (c->root) {
		err = stcp_cache_load(&d->cache, c->root);
		if (err) {
			note_load(d, true);
			return err;
		}
	} else if (!c->keys.redis) {
		log_debug("cache: no --root, no content");
	}
	err = start_content(d);
	note_load(d, err != 0);
	if (!err && (c->root || c->keys.redis))
		log_cache(d, false);
	return err;
}

/* SIGHUP. On failure the cache keeps what it had. */
static void reload(struct daemon *d)
{
	const char *root = d->cfg->root;
	int err = 0;

	if (!root && !d->content) {
		log_warn("SIGHUP: stcpd runs without --root or --redis, there "
			 "is no content to reload");
		note_load(d, true);
		return;
	}
	if (root) {
		log_info("SIGHUP: reloading %s", root);
		err = stcp_cache_load(&d->cache, root);
		if (!err)
			log_cache(d, true);
		else
			log_warn("reloading %s failed; the cache keeps what it "
				 "had",
				 root);
	}
	/* The objects in Redis are read again too, changed or not. */
	if (d->content) {
		log_info("SIGHUP: reading the objects in Redis again");
		if (!stcp_keyd_connected(d->keyd))
			log_warn("SIGHUP: Redis is not reachable; the cache "
				 "keeps the objects it has from there");
		stcp_content_redis_run(d->content, true);
		if (!root)
			log_cache(d, false);
	}
	note_load(d, err != 0);
}

static void explain_attach_error(const struct daemon *d, int err)
{
	const struct config *c = d->cfg;
	const char *mode = c->generic ? "generic" : "native";
	char msg[128];

	if (is_perm(err)) {
		say_no_permission();
		return;
	}
	if (err == -EOPNOTSUPP && !c->generic) {
		log_err("interface %s does not support native XDP; try --mode "
			"generic",
			c->iface);
		return;
	}
	if (err == -EBUSY || err == -EEXIST) {
		log_err("interface %s already has an XDP program that cannot "
			"share it (remove it: ip link set dev %s xdp off)",
			c->iface, c->iface);
		return;
	}
	if (bpf_program__fd(d->prog_obj->progs.stcp_xdp) < 0) {
		libxdp_strerror(err, msg, sizeof(msg));
		log_err("cannot load the XDP program: %s (run with --log-level "
			"debug for the verifier's reasons)",
			msg);
		return;
	}
	libxdp_strerror(err, msg, sizeof(msg));
	log_err("cannot attach to %s (%s): %s", c->iface, mode, msg);
}

/*
 * Every slot of stcp_tx_dm1..64 names the interface and stcp_devmap_tx, so
 * a broadcast through one of them makes the page-sized copies that become
 * data segments (include/stcp_tx.h). Native mode only: in generic mode the
 * copies share one buffer. Without them only responses that fit the
 * request's frame are served (the rest are reset), which is also the
 * outcome if this fails, so a failure is a warning.
 */
static void fill_tx_devmaps(struct daemon *d)
{
	struct bpf_map *maps[] = {
		d->prog_obj->maps.stcp_tx_dm1, d->prog_obj->maps.stcp_tx_dm2,
		d->prog_obj->maps.stcp_tx_dm4, d->prog_obj->maps.stcp_tx_dm8,
		d->prog_obj->maps.stcp_tx_dm16, d->prog_obj->maps.stcp_tx_dm32,
		/* last: the fast path takes this one being filled to mean
		 * all are */
		d->prog_obj->maps.stcp_tx_dm64,
	};
	struct bpf_devmap_val v = { 0 };
	int err = 0;

	if (d->cfg->generic) {
		log_info("generic mode: only responses that fit the request's "
			 "frame are served (no devmap copies)");
		return;
	}
	v.ifindex = d->cfg->ifindex;
	v.bpf_prog.fd = bpf_program__fd(d->prog_obj->progs.stcp_devmap_tx);
	for (size_t m = 0; m < sizeof(maps) / sizeof(maps[0]) && !err; m++) {
		int fd = bpf_map__fd(maps[m]);

		for (__u32 k = 0; k < bpf_map__max_entries(maps[m]) && !err;
		     k++)
			if (bpf_map_update_elem(fd, &k, &v, BPF_ANY))
				err = -errno;
	}
	if (err)
		log_warn("cannot set up page-sized segment copies (%s): only "
			 "responses that fit the request's frame will be "
			 "served",
			 strerror(-err));
}

static int attach(struct daemon *d)
{
	const struct config *c = d->cfg;
	struct bpf_prog_info info = { 0 };
	__u32 len = sizeof(info);
	int err;

	err = open_skel(d, &d->prog_obj);
	if (err)
		return err;
	/* Misses and ranges have a reader: this daemon. */
	d->prog_obj->rodata->stcp_have_daemon = 1;
	/* Connection entries go to Redis, and come back from it. */
	d->prog_obj->rodata->stcp_conn_sync = d->connd != NULL;
	d->prog = xdp_program__from_bpf_obj(d->prog_obj->obj, "xdp");
	err = (int)libxdp_get_error(d->prog);
	if (err || !d->prog) {
		d->prog = NULL;
		err = err ? err : -ENOENT;
		log_err("cannot find the XDP program in the BPF object: %s",
			strerror(-err));
		return err;
	}
	err = xdp_program__attach(d->prog, (int)c->ifindex,
				  c->generic ? XDP_MODE_SKB : XDP_MODE_NATIVE,
				  0);
	if (err) {
		explain_attach_error(d, err);
		return err;
	}
	d->attached = true;
	fill_tx_devmaps(d);
	if (bpf_obj_get_info_by_fd(bpf_program__fd(d->prog_obj->progs.stcp_xdp),
				   &info, &len))
		log_warn("cannot read the program id: %s", strerror(errno));
	d->prog_id = info.id;
	return 0;
}

static void detach(struct daemon *d)
{
	const struct config *c = d->cfg;
	char name[IF_NAMESIZE];
	char msg[128];
	int err;

	err = xdp_program__detach(d->prog, (int)c->ifindex,
				  c->generic ? XDP_MODE_SKB : XDP_MODE_NATIVE,
				  0);
	if (!err) {
		log_debug("detached from %s", c->iface);
		return;
	}
	if (!if_indextoname(c->ifindex, name)) {
		/* The interface went away and took the program with it. */
		log_debug("%s is gone; cleaning libxdp's pins for it",
			  c->iface);
		libxdp_clean_references((int)c->ifindex);
		return;
	}
	libxdp_strerror(err, msg, sizeof(msg));
	log_warn("cannot detach from %s: %s (remove it: xdp-loader unload %s "
		 "--all)",
		 c->iface, msg, c->iface);
}

/* Takes out what this run put in the maps, and the pins it made. */
static void teardown_maps(struct daemon *d, bool keep)
{
	const struct config *c = d->cfg;
	struct stcp_cfg cfg;
	int fd, err;

	if (d->cache_init) {
		if (!keep)
			stcp_cache_clear(&d->cache);
		stcp_cache_destroy(&d->cache);
		d->cache_init = false;
	}
	fd = bpf_map__fd(d->maps_obj->maps.stcp_listen);
	for (int i = 0; i < c->nlisten; i++) {
		if (d->listen_added[i])
			stcp_listen_del(fd, &c->listen[i]);
	}
	fd = bpf_map__fd(d->maps_obj->maps.stcp_cfg);
	if (d->cfg_written && !stcp_cfg_read(fd, &cfg) &&
	    cfg.daemon_pid == (__u32)getpid()) {
		cfg.ifindex = 0;
		cfg.attach_mode = STCP_MODE_UNKNOWN;
		cfg.daemon_pid = 0;
		err = stcp_cfg_write(fd, &cfg);
		if (err)
			log_warn("cannot clear the config map: %s",
				 strerror(-err));
	}
	for (int i = 0; i < NUM_MAPS && !keep; i++) {
		struct bpf_map *map = skel_map(d->maps_obj, i);

		if (d->pin_existed[i] || !bpf_map__is_pinned(map))
			continue;
		if (bpf_map__unpin(map, NULL))
			log_warn("cannot unpin %s: %s", d->pin_path[i],
				 strerror(errno));
	}
	stcp_bpf__destroy(d->maps_obj);
}

/* Undoes whatever setup got to; clean says whether this is a normal stop. */
static void teardown(struct daemon *d, bool clean)
{
	const struct config *c = d->cfg;
	bool keep = clean && c->keep_maps;

	stcp_content_redis_free(d->content);
	d->content = NULL;
	stcp_keyd_free(d->keyd);
	d->keyd = NULL;
	if (d->connd) {
		struct stcp_connd_stats st;

		stcp_connd_get_stats(d->connd, &st);
		log_info("connection state in Redis: %llu written, %llu not "
			 "written; %llu looked up and found, %llu packets "
			 "with none reset",
			 (unsigned long long)st.puts,
			 (unsigned long long)st.put_lost,
			 (unsigned long long)d->conn_fetched,
			 (unsigned long long)d->conn_gone);
		if (d->reasm_merged || d->reasm_redis_failed)
			log_info("requests in several segments: %llu "
				 "completed with segments from Redis, %llu "
				 "segments not stored there",
				 (unsigned long long)d->reasm_merged,
				 (unsigned long long)d->reasm_redis_failed);
	}
	stcp_connd_free(d->connd);
	d->connd = NULL;
	/* First: the HTTP thread reads the maps until it has stopped. */
	stcp_metrics_close(d->metrics);
	d->metrics = NULL;
	if (d->attached)
		detach(d);
	ring_buffer__free(d->misses);
	d->misses = NULL;
	if (d->reasm_init) {
		if (d->reasm.joined || d->reasm.too_big)
			log_info("requests in several segments: %llu joined, "
				 "%llu answered 431",
				 (unsigned long long)d->reasm.joined,
				 (unsigned long long)d->reasm.too_big);
		stcp_reasm_free(&d->reasm);
		d->reasm_init = false;
	}
	if (d->miss_injected || d->miss_failed)
		log_info("cache misses: %llu answered after a load, %llu "
			 "dropped",
			 (unsigned long long)d->miss_injected,
			 (unsigned long long)d->miss_failed);
	if (d->cache.window_fills)
		log_info("windowed objects: %llu ring loads, %llu pages",
			 (unsigned long long)d->cache.window_fills,
			 (unsigned long long)d->cache.window_pages);
	xdp_program__close(d->prog);
	stcp_bpf__destroy(d->prog_obj);
	if (d->maps_obj)
		teardown_maps(d, keep);
	if (!keep)
		rmdir_made(c->pin_dir, d->made_dir);
}

static void format_listen(const struct config *c, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; i < c->nlisten && used < len; i++) {
		char addr[64];
		int n;

		stcp_listen_format(&c->listen[i], addr, sizeof(addr));
		n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
			     addr);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

/* How long the loop may sleep: REAP_INTERVAL_S, or less when the key
 * keeper has work due (a Redis poll every second, a reconnect, a
 * scheduled rotation) or the content source polls Redis. */
static struct timespec loop_tick(const struct daemon *d)
{
	long ms = stcp_keyd_timeout_ms(d->keyd);
	long cms = stcp_content_redis_timeout_ms(d->content);
	struct timespec t = { .tv_sec = REAP_INTERVAL_S };

	if (cms >= 0 && (ms < 0 || cms < ms))
		ms = cms;

	if (ms >= 0 && ms < REAP_INTERVAL_S * 1000L) {
		t.tv_sec = ms / 1000;
		t.tv_nsec = ms % 1000 * 1000000L;
	}
	return t;
}

/*
 * Until SIGINT or SIGTERM: SIGHUP reloads the content, SIGUSR1 rotates the
 * key (through Redis with --redis), the key keeper does its periodic work,
 * and every REAP_INTERVAL_S (or sooner) the pages and slots of replaced
 * objects whose grace period is over are freed.
 */
/*
 * A cache miss (include/stcp_cache.h): loads the object that owns the slot
 * and runs the frame through the attached program again, for real
 * (BPF_F_TEST_XDP_LIVE_FRAMES: its XDP_TX and redirects leave the device
 * the frame came in on). A frame that cannot be answered is dropped; the
 * client's retransmission comes back to the fast path.
 */
/* Runs frame through the attached program, for real
 * (BPF_F_TEST_XDP_LIVE_FRAMES: its XDP_TX and redirects leave ifindex). */
static int run_frame(struct daemon *d, const void *frame, uint32_t len,
		     uint32_t ifindex)
{
	struct xdp_md xctx = { 0 };
	LIBBPF_OPTS(bpf_test_run_opts, o, .repeat = 1,
		    .flags = BPF_F_TEST_XDP_LIVE_FRAMES);

	xctx.data_end = len;
	xctx.ingress_ifindex = ifindex;
	o.data_in = frame;
	o.data_size_in = len;
	o.ctx_in = &xctx;
	o.ctx_size_in = sizeof(xctx);
	return bpf_prog_test_run_opts(
		       bpf_program__fd(d->prog_obj->progs.stcp_xdp), &o) ?
		       -errno :
		       0;
}

/* A segment of a request that spans several (docs/PROTOCOL.md 7.8). */
/* What the segments another replica stored in Redis make of a request. */
struct part_merge {
	struct daemon *d;
	const uint8_t *own; /* the segment being handled, already added */
	uint32_t own_len;
	uint8_t *out;
	uint32_t out_len;
	int ready;
};

static void merge_part(void *ctx, bool first, const uint8_t *frame,
		       uint32_t len)
{
	struct part_merge *m = ctx;

	if (m->ready || (len == m->own_len && !memcmp(frame, m->own, len)))
		return;
	if (stcp_reasm_add(&m->d->reasm,
			   (first ? STCP_EV_REQ_FIRST : STCP_EV_REQ_CONT) |
				   STCP_REASM_FROM_REDIS,
			   frame, len, m->out, &m->out_len) == 1) {
		m->ready = 1;
		m->d->reasm_merged++;
	}
}

/*
 * A segment of a request in several (docs/PROTOCOL.md 7.8). With --redis
 * it also goes to Redis, and while the request is not complete here, the
 * segments other replicas stored there are joined in: whichever replica
 * holds the last one missing answers (two may, with the same bytes).
 */
static void on_request_part(struct daemon *d, const struct stcp_miss_event *e,
			    uint32_t kind)
{
	static uint8_t out[STCP_REASM_FRAME_MAX];
	struct part_merge m = { d, e->frame, e->len, out, 0, 0 };
	uint32_t out_len = 0, seq = 0;
	int err;

	err = stcp_reasm_add(&d->reasm, kind, e->frame, e->len, out,
			     &out_len);
	if (err < 0)
		log_debug("request segment: %s; dropped", strerror(-err));
	if (d->connd && err >= 0) {
		stcp_reasm_seq(e->frame, e->len, &seq);
		int n = stcp_connd_reasm_add(d->connd, &e->flow,
					     kind == STCP_EV_REQ_FIRST, seq,
					     e->frame, e->len, err == 0,
					     merge_part, &m);

		if (n < 0)
			d->reasm_redis_failed++;
		log_debug("request segment %u (%s): %d frames of it in "
			  "Redis%s",
			  seq, kind == STCP_EV_REQ_FIRST ? "first" : "later", n,
			  m.ready ? ", complete with them" : "");
		if (!err && m.ready) {
			err = 1;
			out_len = m.out_len;
		}
	}
	if (err <= 0)
		return;
	err = run_frame(d, out, out_len, e->ifindex);
	if (err)
		log_warn("a joined request: cannot run it through the fast "
			 "path: %s",
			 strerror(-err));
}

/*
 * A packet that needs an stcp_conns entry this replica does not have, or
 * a newer one (include/stcp_conn.h). If another packet of the flow has
 * brought a newer entry meanwhile, the packet just runs again. Otherwise
 * Redis's entry, if it is not the one that did not do, is written into
 * stcp_conns and the packet runs through the fast path again. Entries are
 * in Redis before any ACK of their response can exist (on_conn_req()), so
 * when Redis has nothing newer (or is away) the packet is not of a
 * connection any replica can continue: an entry that says so is written,
 * and the packet, run again, is reset.
 */
static void on_conn_miss(struct daemon *d, const struct stcp_miss_event *e)
{
	int fd = bpf_map__fd(d->prog_obj->maps.stcp_conns);
	struct stcp_conn c = { 0 };
	struct timespec now;
	int err = -EIO;

	if (!bpf_map_lookup_elem(fd, &e->flow, &c) &&
	    memcmp(&c, &e->conn, sizeof(c)) &&
	    !(c.flags & STCP_CONN_F_GONE))
		goto run;
	if (d->connd) {
		err = stcp_connd_get(d->connd, &e->flow, &c);
		if (!err && !memcmp(&e->conn, &c, sizeof(c)))
			err = -ENOENT; /* nothing newer than what did not do */
	}
	if (err) {
		clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
		memset(&c, 0, sizeof(c));
		c.flags = STCP_CONN_F_GONE;
		c.high = (uint32_t)(((uint64_t)now.tv_sec * 1000000000ULL +
				     (uint64_t)now.tv_nsec) >> 20);
		d->conn_gone++;
		log_debug("connection state: %s; the packet is reset",
			  err == -ENOENT ? "not in Redis" : "Redis away");
	} else {
		d->conn_fetched++;
	}
	if (bpf_map_update_elem(fd, &e->flow, &c, BPF_ANY)) {
		log_warn("cannot write stcp_conns: %s", strerror(errno));
		return;
	}
run:
	err = run_frame(d, e->frame, e->len, e->ifindex);
	if (err)
		log_warn("connection state: cannot run the packet again: %s",
			 strerror(-err));
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/*
 * The probe of a stall timer (include/stcp_conn.h): the segment the
 * client's retransmission timer would send after its last ACK, with one
 * byte (the last of its request, which our segments leave
 * unacknowledged) instead of two, so that the fast path does not take it
 * for an ACK that re-arms the timer. Returns the frame's length.
 */
static uint32_t stall_probe_frame(const struct stcp_stall_event *e,
				  uint8_t *f, size_t cap)
{
	const struct stcp_stall_ack *a = &e->a;
	uint32_t l3 = 14, l4, optlen = 0, nsack = a->nsack > 4 ? 4 : a->nsack;
	uint8_t opt[40];
	bool v4 = e->flow.family == STCP_AF_INET;

	memset(opt, 0, sizeof(opt));
	if (a->has_ts) {
		opt[0] = 1;
		opt[1] = 1;
		opt[2] = 8;
		opt[3] = 10;
		put32(opt + 4, a->tsval);
		put32(opt + 8, a->tsecr);
		optlen = 12;
	}
	if (nsack && optlen + 4 + 8 * nsack > sizeof(opt))
		nsack = (uint32_t)(sizeof(opt) - optlen - 4) / 8;
	if (nsack) {
		opt[optlen] = 1;
		opt[optlen + 1] = 1;
		opt[optlen + 2] = 5;
		opt[optlen + 3] = (uint8_t)(2 + 8 * nsack);
		for (uint32_t i = 0; i < nsack; i++) {
			put32(opt + optlen + 4 + 8 * i, a->sack[2 * i]);
			put32(opt + optlen + 8 + 8 * i, a->sack[2 * i + 1]);
		}
		optlen += 4 + 8 * nsack;
	}
	l4 = l3 + (v4 ? 20 : 40);
	if (l4 + 20 + optlen + 1 > cap)
		return 0;
	memset(f, 0, l4 + 20 + optlen + 1);
	memcpy(f, a->eth_dst, 6);
	memcpy(f + 6, a->eth_src, 6);
	if (v4) {
		put16(f + 12, 0x0800);
		f[l3] = 0x45;
		put16(f + l3 + 2, (uint16_t)(20 + 20 + optlen + 1));
		f[l3 + 8] = 64;
		f[l3 + 9] = 6;
		memcpy(f + l3 + 12, &e->flow.caddr[0], 4);
		memcpy(f + l3 + 16, &e->flow.saddr[0], 4);
	} else {
		put16(f + 12, 0x86dd);
		f[l3] = 0x60;
		put16(f + l3 + 4, (uint16_t)(20 + optlen + 1));
		f[l3 + 6] = 6;
		f[l3 + 7] = 64;
		memcpy(f + l3 + 8, e->flow.caddr, 16);
		memcpy(f + l3 + 24, e->flow.saddr, 16);
	}
	memcpy(f + l4, &e->flow.cport, 2);
	memcpy(f + l4 + 2, &e->flow.sport, 2);
	put32(f + l4 + 4, a->seq - 1);
	put32(f + l4 + 8, a->ack);
	f[l4 + 12] = (uint8_t)(((20 + optlen) / 4) << 4);
	f[l4 + 13] = 0x18; /* PSH, ACK */
	put16(f + l4 + 14, a->window);
	memcpy(f + l4 + 20, opt, optlen);
	f[l4 + 20 + optlen] = '\n';
	return l4 + 20 + optlen + 1;
}

static void on_stall(struct daemon *d, const struct stcp_stall_event *e)
{
	uint8_t f[160];
	uint32_t len = stall_probe_frame(e, f, sizeof(f));
	int err;

	if (!len)
		return;
	err = run_frame(d, f, len, e->a.ifindex);
	if (err)
		log_warn("stall probe: cannot run it through the fast path: %s",
			 strerror(-err));
}

/*
 * A request whose connection entry must be in Redis before its answer
 * leaves (include/stcp_conn.h): written there, then into stcp_conns, then
 * the request runs through the fast path again, which finds the entry and
 * answers. With Redis away the request is answered all the same: the
 * connection then stays on this replica.
 */
static void on_conn_req(struct daemon *d, const struct stcp_miss_event *e)
{
	int fd = bpf_map__fd(d->prog_obj->maps.stcp_conns), err;

	if (d->connd)
		stcp_connd_set(d->connd, &e->flow, &e->conn);
	if (bpf_map_update_elem(fd, &e->flow, &e->conn, BPF_ANY)) {
		log_warn("cannot write stcp_conns: %s", strerror(errno));
		return;
	}
	err = run_frame(d, e->frame, e->len, e->ifindex);
	if (err)
		log_warn("connection state: cannot run a request again: %s",
			 strerror(-err));
}

/*
 * The ring's records: a cache miss (include/stcp_cache.h) loads the object
 * that owns the slot and runs the frame through the attached program again;
 * a frame that cannot be answered is dropped, and the client's
 * retransmission comes back to the fast path. Or a request's segment.
 */
static int on_miss(void *ctx, void *data, size_t len)
{
	struct daemon *d = ctx;
	const struct stcp_miss_event *e = data;
	int err;

	if (len >= sizeof(struct stcp_stall_event) &&
	    *(const uint32_t *)data == STCP_EV_STALL) {
		on_stall(d, data);
		return 0;
	}
	if (len >= sizeof(struct stcp_conn_event) &&
	    *(const uint32_t *)data == STCP_EV_CONN_PUT) {
		const struct stcp_conn_event *ce = data;

		if (d->connd)
			stcp_connd_put(d->connd, &ce->flow, &ce->conn);
		return 0;
	}
	if (len < sizeof(*e) || e->len > STCP_MISS_FRAME_MAX)
		return 0;
	if (!e->len) {
		/* A load ahead of a windowed body's downloads: no packet
		 * waits for it. */
		if (e->kind == STCP_EV_WINDOW)
			stcp_cache_window(&d->cache, e->slot, e->first, e->last,
					  false);
		return 0;
	}
	if (e->kind == STCP_EV_CONN_MISS) {
		on_conn_miss(d, e);
		return 0;
	}
	if (e->kind == STCP_EV_CONN_REQ) {
		on_conn_req(d, e);
		return 0;
	}
	if (e->kind == STCP_EV_REQ_FIRST || e->kind == STCP_EV_REQ_CONT) {
		on_request_part(d, e, e->kind);
		return 0;
	}
	if (e->kind == STCP_EV_RANGE)
		err = stcp_cache_range(&d->cache, e->slot, e->first, e->last);
	else if (e->kind == STCP_EV_WINDOW)
		err = stcp_cache_window(&d->cache, e->slot, e->first, e->last,
					true);
	else if (e->kind == STCP_EV_SLOTS) {
		err = stcp_cache_slots(&d->cache, (uint32_t)e->first);
		/* No slot to be had: the object names the 503 now, which
		 * the request gets at once. */
		if (err == -ENOSPC)
			err = 0;
	}
	else
		err = stcp_cache_fill(&d->cache, e->slot);
	if (err) {
		d->miss_failed++;
		log_debug("cache miss on slot %u: %s; the packet is dropped",
			  e->slot, strerror(-err));
		return 0;
	}
	err = run_frame(d, e->frame, e->len, e->ifindex);
	if (err) {
		d->miss_failed++;
		log_warn("cache miss on slot %u: cannot run the packet again: "
			 "%s",
			 e->slot, strerror(-err));
		return 0;
	}
	d->miss_injected++;
	return 0;
}

static int start_misses(struct daemon *d)
{
	int err = stcp_reasm_init(&d->reasm);

	if (err) {
		log_err("out of memory");
		return err;
	}
	d->reasm_init = true;
	d->misses = ring_buffer__new(
		bpf_map__fd(d->prog_obj->maps.stcp_misses), on_miss, d, NULL);
	if (!d->misses) {
		int err = -errno;

		log_err("cannot read the cache-miss ring: %s", strerror(-err));
		return err;
	}
	d->cache.slot_use_fd = bpf_map__fd(d->prog_obj->maps.stcp_slot_use);
	d->cache.ranges_fd = bpf_map__fd(d->prog_obj->maps.stcp_ranges);
	d->cache.tags_fd = bpf_map__fd(d->prog_obj->maps.stcp_page_tags);
	d->cache.slot_gen_fd = bpf_map__fd(d->prog_obj->maps.stcp_slot_gen);
	return 0;
}

/* What a signal asks for; false for SIGINT and SIGTERM. */
static bool on_signal(struct daemon *d, int sig)
{
	if (sig == SIGUSR1) {
		stcp_keyd_request_rotate(d->keyd);
		return true;
	}
	if (sig != SIGHUP)
		return false;
	reload(d);
	return true;
}

/*
 * Until SIGINT or SIGTERM: cache misses are served as they come, SIGHUP
 * reloads the content, SIGUSR1 rotates the key (through Redis with
 * --redis), the key keeper does its periodic work, and every
 * REAP_INTERVAL_S (or sooner) the pages and slots of replaced objects whose
 * grace period is over are freed.
 */
static int serve(struct daemon *d, const sigset_t *sigs)
{
	struct epoll_event ev = { .events = EPOLLIN }, got[2];
	int ep = -1, sfd = -1, sig = 0, err = 0;

	sfd = signalfd(-1, sigs, SFD_CLOEXEC);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || ep < 0) {
		err = -errno;
		log_err("cannot wait for signals: %s", strerror(-err));
		goto out;
	}
	ev.data.fd = sfd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev)) {
		err = -errno;
		goto fail_ctl;
	}
	ev.data.fd = ring_buffer__epoll_fd(d->misses);
	if (epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev)) {
		err = -errno;
		goto fail_ctl;
	}
	for (;;) {
		struct timespec tick;
		int n;

		stcp_keyd_run(d->keyd);
		if (d->content && stcp_content_redis_run(d->content, false)) {
			log_cache(d, false);
			publish_cache(d);
		}
		tick = loop_tick(d);
		n = epoll_wait(ep, got, 2,
			       (int)(tick.tv_sec * 1000 + tick.tv_nsec / 1000000));
		if (n < 0 && errno != EINTR) {
			err = -errno;
			log_err("epoll_wait: %s", strerror(-err));
			goto out;
		}
		if (n <= 0) {
			if (d->cache_init) {
				stcp_cache_reap(&d->cache);
				publish_cache(d);
			}
			continue;
		}
		for (int i = 0; i < n; i++) {
			struct signalfd_siginfo si;

			if (got[i].data.fd != sfd) {
				ring_buffer__consume(d->misses);
				if (d->connd)
					stcp_connd_flush(d->connd);
				continue;
			}
			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			sig = (int)si.ssi_signo;
			if (!on_signal(d, sig))
				goto done;
		}
	}
done:
	log_info("SIG%s: detaching from %s", sigabbrev_np(sig),
		 d->cfg->iface);
	goto out;
fail_ctl:
	log_err("epoll_ctl: %s", strerror(-err));
out:
	if (ep >= 0)
		close(ep);
	if (sfd >= 0)
		close(sfd);
	return err;
}

static int start_metrics(struct daemon *d)
{
	const struct stcp_metrics_maps maps = {
		.cfg = bpf_map__fd(d->maps_obj->maps.stcp_cfg),
		.keys = bpf_map__fd(d->maps_obj->maps.stcp_keys),
		.listen = bpf_map__fd(d->maps_obj->maps.stcp_listen),
		.counters = bpf_map__fd(d->maps_obj->maps.stcp_counters),
	};

	return stcp_metrics_start(d->metrics, &maps);
}

static int run(const struct config *c, const sigset_t *sigs)
{
	char addrs[STCP_MAX_LISTEN * 52];
	struct daemon d = { .cfg = c, .npages = c->cache_pages };
	int err;

	/* Bound first: a taken address costs nothing to undo. */
	if (c->metrics_set) {
		err = stcp_metrics_open(&d.metrics, &c->metrics, STCP_VERSION);
		if (err)
			goto out;
	}
	err = setup_pin_dir(&d);
	if (err)
		goto out;
	err = create_maps(&d);
	if (err)
		goto out;
	err = fill_maps(&d);
	if (err)
		goto out;
	err = stcp_keyd_new(&d.keyd, &c->keys,
			    bpf_map__fd(d.maps_obj->maps.stcp_keys),
			    bpf_map__fd(d.maps_obj->maps.stcp_cfg));
	if (err) {
		log_err("cannot start the key keeper: %s", strerror(-err));
		goto out;
	}
	if (c->keys.redis) {
		err = stcp_connd_new(&d.connd, c->keys.redis,
				     c->keys.prefix ? c->keys.prefix :
						      STCP_REDIS_DEFAULT_PREFIX,
				     STCP_CONN_TTL_S);
		if (err) {
			log_err("cannot keep connection state in Redis: %s",
				strerror(-err));
			goto out;
		}
	}
	err = fill_cache(&d);
	if (err)
		goto out;
	err = attach(&d);
	if (err)
		goto out;
	err = start_metrics(&d);
	if (!err)
		err = start_misses(&d);
	if (err)
		goto out;

	format_listen(c, addrs, sizeof(addrs));
	log_info("attached to %s (%s), program id %u, listening on %s",
		 c->iface, c->generic ? "generic" : "native", d.prog_id, addrs);
	log_debug("maps pinned in %s", c->pin_dir);

	err = serve(&d, sigs);
out:
	teardown(&d, !err);
	return err;
}

/* --root must name a directory; one line and exit 1 otherwise. */
static int check_root(const char *root)
{
	struct stat st;

	if (stat(root, &st)) {
		int err = -errno;

		log_err("--root %s: %s", root, strerror(-err));
		return err;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_err("--root %s: not a directory", root);
		return -ENOTDIR;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct config c = { 0 };
	sigset_t sigs;
	int rc;

	stcp_progname = "stcpd";
	rc = parse_args(argc, argv, &c);
	if (rc >= 0)
		return rc;

	libbpf_set_print(libbpf_print);
	libxdp_set_print(libxdp_print);

	/* Blocked from here on: a signal during setup is taken by the loop
	 * once setup is done, or it waits for teardown after a failure. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGUSR1); /* rotate the key: stcpctl keys rotate */
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	/* A closed stderr must not kill us before the teardown. */
	signal(SIGPIPE, SIG_IGN);

	if (c.root && check_root(c.root))
		return EXIT_RUNTIME;
	c.ifindex = if_nametoindex(c.iface);
	if (!c.ifindex) {
		log_err("interface '%s' not found (see 'ip link')", c.iface);
		return EXIT_RUNTIME;
	}
	return run(&c, &sigs) ? EXIT_RUNTIME : 0;
}
