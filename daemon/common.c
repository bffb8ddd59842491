// SPDX-License-Identifier: GPL-2.0
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "common.h"

enum stcp_log_level stcp_log_threshold = STCP_LOG_WARN;
const char *stcp_progname = "stcp";

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void stcp_log(enum stcp_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > stcp_log_threshold)
		return;
	fprintf(stderr, "%s: ", stcp_progname);
	if (level != STCP_LOG_ERROR)
		fprintf(stderr, "%s: ", level_names[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int stcp_parse_log_level(const char *s, enum stcp_log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]);
	     i++) {
		if (!strcmp(s, level_names[i])) {
			*out = (enum stcp_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *stcp_default_pin_dir(void)
{
	const char *env = getenv("STCP_PIN_DIR");

	return env && *env ? env : STCP_PIN_DIR;
}

static int open_pinned(const char *dir, const char *name)
{
	char path[PATH_MAX];
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = bpf_obj_get(path);
	return fd < 0 ? -errno : fd;
}

void stcp_maps_close(struct stcp_maps *m)
{
	int *fds[] = { &m->cfg,	  &m->keys,  &m->listen,  &m->counters,
		       &m->pages, &m->resps, &m->objects };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

int stcp_maps_open_pinned(const char *pin_dir, struct stcp_maps *m)
{
	struct {
		int *fd;
		const char *name;
		bool optional;
	} want[] = {
		{ &m->cfg, STCP_MAP_CFG, false },
		{ &m->keys, STCP_MAP_KEYS, false },
		{ &m->listen, STCP_MAP_LISTEN, false },
		{ &m->counters, STCP_MAP_COUNTERS, false },
		{ &m->pages, STCP_MAP_PAGES, true },
		{ &m->resps, STCP_MAP_RESPS, true },
		{ &m->objects, STCP_MAP_OBJECTS, true },
	};
	int err = 0;

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		*want[i].fd = -1;
	}
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		int fd = open_pinned(pin_dir, want[i].name);

		if (fd == -ENOENT && want[i].optional)
			continue;
		if (fd < 0) {
			err = fd;
			goto fail;
		}
		*want[i].fd = fd;
	}
	return 0;
fail:
	stcp_maps_close(m);
	return err;
}

int stcp_listen_parse(const char *s, struct stcp_listen_key *k)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon, *port_s;
	char *end;
	unsigned long port;
	size_t hlen;

	memset(k, 0, sizeof(*k));
	if (!s || !*s)
		return -EINVAL;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		hlen = (size_t)(rb - s - 1);
		if (hlen == 0 || hlen >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		port_s = rb + 2;
		if (inet_pton(AF_INET6, host, k->addr) != 1)
			return -EINVAL;
		k->family = STCP_AF_INET6;
	} else {
		colon = strrchr(s, ':');
		if (!colon || strchr(s, ':') != colon)
			return -EINVAL;
		hlen = (size_t)(colon - s);
		if (hlen == 0 || hlen >= sizeof(host))
			return -EINVAL;
		memcpy(host, s, hlen);
		host[hlen] = '\0';
		port_s = colon + 1;
		if (inet_pton(AF_INET, host, k->addr) != 1)
			return -EINVAL;
		k->family = STCP_AF_INET;
	}
	if (!*port_s)
		return -EINVAL;
	errno = 0;
	port = strtoul(port_s, &end, 10);
	if (errno || *end || port == 0 || port > 65535)
		return -EINVAL;
	k->port = htons((uint16_t)port);
	return 0;
}

void stcp_listen_format(const struct stcp_listen_key *k, char *buf,
			size_t len)
{
	char host[INET6_ADDRSTRLEN];
	int af = k->family == STCP_AF_INET6 ? AF_INET6 : AF_INET;

	if (!inet_ntop(af, k->addr, host, sizeof(host)))
		snprintf(host, sizeof(host), "?");
	if (af == AF_INET6)
		snprintf(buf, len, "[%s]:%u", host, ntohs(k->port));
	else
		snprintf(buf, len, "%s:%u", host, ntohs(k->port));
}

int stcp_listen_add(int listen_fd, const struct stcp_listen_key *k)
{
	struct stcp_listen_val v = { 0 };

	return bpf_map_update_elem(listen_fd, k, &v, BPF_ANY) ? -errno : 0;
}

int stcp_listen_del(int listen_fd, const struct stcp_listen_key *k)
{
	return bpf_map_delete_elem(listen_fd, k) ? -errno : 0;
}

int stcp_listen_list(int listen_fd, struct stcp_listen_key *out, int max)
{
	struct stcp_listen_key cur, next;
	void *prev = NULL;
	int n = 0;

	while (n < max && !bpf_map_get_next_key(listen_fd, prev, &next)) {
		out[n++] = next;
		cur = next;
		prev = &cur;
	}
	return n;
}

int stcp_cfg_read(int cfg_fd, struct stcp_cfg *cfg)
{
	uint32_t zero = 0;

	return bpf_map_lookup_elem(cfg_fd, &zero, cfg) ? -errno : 0;
}

int stcp_cfg_write(int cfg_fd, const struct stcp_cfg *cfg)
{
	uint32_t zero = 0;

	return bpf_map_update_elem(cfg_fd, &zero, cfg, BPF_ANY) ? -errno : 0;
}

static int install_in_other_slot(int keys_fd, int cfg_fd, uint64_t k0,
				 uint64_t k1)
{
	struct stcp_key old = { 0 }, nk = { 0 };
	struct stcp_cfg cfg;
	uint32_t cur, next;
	int err;

	err = stcp_cfg_read(cfg_fd, &cfg);
	if (err)
		return err;
	cur = cfg.key_cur & 1;
	next = cur ^ 1;
	if (bpf_map_lookup_elem(keys_fd, &cur, &old))
		return -errno;
	nk.k0 = k0;
	nk.k1 = k1;
	nk.valid = 1;
	nk.gen = old.gen + 1;
	/* The slot being overwritten holds the key that is retiring now; a
	 * reader seeing it half-written only rejects what it should reject. */
	if (bpf_map_update_elem(keys_fd, &next, &nk, BPF_ANY))
		return -errno;
	/* Re-read: only key_cur changes, other fields may have moved on. */
	err = stcp_cfg_read(cfg_fd, &cfg);
	if (err)
		return err;
	cfg.key_cur = next;
	cfg.keys_rotated_at = (uint64_t)time(NULL);
	return stcp_cfg_write(cfg_fd, &cfg);
}

int stcp_keys_install(int keys_fd, int cfg_fd, uint64_t k0, uint64_t k1)
{
	return install_in_other_slot(keys_fd, cfg_fd, k0, k1);
}

int stcp_keys_rotate(int keys_fd, int cfg_fd)
{
	uint64_t k[2];
	ssize_t got = getrandom(k, sizeof(k), 0);
	int err;

	if (got != (ssize_t)sizeof(k))
		return got < 0 ? -errno : -EIO;
	err = install_in_other_slot(keys_fd, cfg_fd, k[0], k[1]);
	explicit_bzero(k, sizeof(k));
	return err;
}

int stcp_keys_ensure(int keys_fd, int cfg_fd)
{
	struct stcp_cfg cfg;
	struct stcp_key key;
	uint32_t cur;
	int err;

	err = stcp_cfg_read(cfg_fd, &cfg);
	if (err)
		return err;
	cur = cfg.key_cur & 1;
	if (bpf_map_lookup_elem(keys_fd, &cur, &key))
		return -errno;
	if (key.valid)
		return 0;
	return stcp_keys_rotate(keys_fd, cfg_fd);
}

int stcp_counters_read(int counters_fd, uint64_t *out)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *vals;
	int err = 0;

	if (ncpu <= 0)
		return ncpu < 0 ? ncpu : -EINVAL;
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	for (uint32_t slot = 0; slot < STCP_C_MAX; slot++) {
		out[slot] = 0;
		if (bpf_map_lookup_elem(counters_fd, &slot, vals)) {
			err = -errno;
			goto out;
		}
		for (int c = 0; c < ncpu; c++)
			out[slot] += vals[c];
	}
out:
	free(vals);
	return err;
}

const char *stcp_mode_name(uint32_t mode)
{
	switch (mode) {
	case STCP_MODE_NATIVE:
		return "native";
	case STCP_MODE_GENERIC:
		return "generic";
	case STCP_MODE_IPLINK:
		return "ip-link";
	default:
		return "unknown";
	}
}

int stcp_map_count_entries(int map_fd)
{
	struct bpf_map_info info = { 0 };
	uint32_t info_len = sizeof(info);
	char key[256], prev[256];
	void *p = NULL;
	int n = 0;

	if (bpf_obj_get_info_by_fd(map_fd, &info, &info_len))
		return -errno;
	if (info.key_size > sizeof(key))
		return -E2BIG;
	while (!bpf_map_get_next_key(map_fd, p, key)) {
		memcpy(prev, key, info.key_size);
		p = prev;
		if (++n > (int)info.max_entries)
			break;
	}
	return n;
}

/*
 * True if pid is a live stcpd: not gone, not a zombie waiting to be reaped,
 * and not a recycled pid now used by another program.
 */
bool stcp_daemon_alive(uint32_t pid)
{
	char path[64], buf[256];
	const char *lp, *rp;
	size_t n;
	FILE *f;

	if (!pid)
		return false;
	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* "pid (comm) state ...": comm may hold spaces and parentheses. */
	lp = strchr(buf, '(');
	rp = strrchr(buf, ')');
	if (!lp || !rp || rp[1] != ' ' || rp[2] == 'Z' || rp[2] == 'X')
		return false;
	return rp - lp == 6 && !strncmp(lp + 1, "stcpd", 5);
}

static bool key_holds(const struct stcp_key *k, const uint64_t *kv)
{
	return k->valid && k->k0 == kv[0] && k->k1 == kv[1];
}

/* kv NULL writes an invalid, zeroed slot. */
static void key_fill(struct stcp_key *k, const uint64_t *kv, uint32_t gen)
{
	memset(k, 0, sizeof(*k));
	if (!kv)
		return;
	k->k0 = kv[0];
	k->k1 = kv[1];
	k->valid = 1;
	k->gen = gen;
}

static int key_write_slot(int keys_fd, uint32_t slot, const uint64_t *kv,
			  uint32_t gen)
{
	struct stcp_key k;
	int err = 0;

	key_fill(&k, kv, gen);
	if (bpf_map_update_elem(keys_fd, &slot, &k, BPF_ANY))
		err = -errno;
	explicit_bzero(&k, sizeof(k));
	return err;
}

static int key_make_current(int cfg_fd, uint32_t slot, uint64_t rotated_at)
{
	struct stcp_cfg cfg;
	int err;

	err = stcp_cfg_read(cfg_fd, &cfg);
	if (err)
		return err;
	cfg.key_cur = slot;
	cfg.keys_rotated_at = rotated_at;
	return stcp_cfg_write(cfg_fd, &cfg);
}

int stcp_keys_install_pair(int keys_fd, int cfg_fd, const uint64_t *prev,
			   const uint64_t *cur, uint32_t gen,
			   uint64_t rotated_at)
{
	uint32_t prev_gen = gen ? gen - 1 : 0;
	struct stcp_key k[STCP_NUM_KEYS], want;
	struct stcp_cfg cfg;
	uint32_t s, o;
	int err;

	err = stcp_cfg_read(cfg_fd, &cfg);
	if (err)
		return err;
	s = cfg.key_cur & 1;
	o = s ^ 1;
	if (bpf_map_lookup_elem(keys_fd, &s, &k[s]) ||
	    bpf_map_lookup_elem(keys_fd, &o, &k[o])) {
		err = -errno;
		goto out;
	}
	if (!key_holds(&k[s], cur)) {
		/* Neither key of the pair is current (a replica joining):
		 * make prev current first, so that the key it replaces is
		 * the unrelated one, then cur, as a rotation would. */
		if (prev && !key_holds(&k[s], prev)) {
			err = key_write_slot(keys_fd, o, prev, prev_gen);
			if (!err)
				err = key_make_current(cfg_fd, o, rotated_at);
			if (err)
				goto out;
			s = o;
			o = s ^ 1;
		}
		err = key_write_slot(keys_fd, o, cur, gen);
		if (!err)
			err = key_make_current(cfg_fd, o, rotated_at);
		if (err)
			goto out;
		s = o;
		o = s ^ 1;
		if (bpf_map_lookup_elem(keys_fd, &s, &k[s]) ||
		    bpf_map_lookup_elem(keys_fd, &o, &k[o])) {
			err = -errno;
			goto out;
		}
	}
	/* cur is current in slot s. A rewrite of s only changes its gen: the
	 * key bytes a reader may see half-written are the same. */
	key_fill(&want, cur, gen);
	if (memcmp(&k[s], &want, sizeof(want)))
		err = key_write_slot(keys_fd, s, cur, gen);
	key_fill(&want, prev, prev_gen);
	if (!err && memcmp(&k[o], &want, sizeof(want)))
		err = key_write_slot(keys_fd, o, prev, prev_gen);
	if (!err)
		err = stcp_cfg_read(cfg_fd, &cfg);
	if (!err && cfg.keys_rotated_at != rotated_at) {
		cfg.keys_rotated_at = rotated_at;
		err = stcp_cfg_write(cfg_fd, &cfg);
	}
	explicit_bzero(&want, sizeof(want));
out:
	explicit_bzero(k, sizeof(k));
	return err;
}

void stcp_print_wrapped(FILE *f, const char *text, int indent)
{
	const int width = 79 - indent;
	const char *p = text;

	for (bool first = true; *p; first = false) {
		int n = (int)strlen(p);

		if (n > width) {
			n = width;
			while (n > 0 && p[n] != ' ')
				n--;
			if (!n)
				n = width;
		}
		fprintf(f, "%*s%.*s\n", first ? 1 : indent, "", n, p);
		p += n;
		while (*p == ' ')
			p++;
	}
}
