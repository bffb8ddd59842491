/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What stcpd, stcpctl and the tests share: opening the pinned maps, listen
 * address syntax, key rotation, counters, logging. Functions return 0 or a
 * negative errno.
 */
#ifndef STCP_COMMON_H
#define STCP_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "stcp_maps.h"
#include "stcp_cache.h"

enum stcp_log_level {
	STCP_LOG_ERROR = 0,
	STCP_LOG_WARN = 1,
	STCP_LOG_INFO = 2,
	STCP_LOG_DEBUG = 3,
};

extern enum stcp_log_level stcp_log_threshold;
extern const char *stcp_progname;

void stcp_log(enum stcp_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define log_err(...) stcp_log(STCP_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) stcp_log(STCP_LOG_WARN, __VA_ARGS__)
#define log_info(...) stcp_log(STCP_LOG_INFO, __VA_ARGS__)
#define log_debug(...) stcp_log(STCP_LOG_DEBUG, __VA_ARGS__)
int stcp_parse_log_level(const char *s, enum stcp_log_level *out);

/*
 * File descriptors of the maps; -1 when not open. The three content cache
 * maps (include/stcp_cache.h) are optional: stcp_maps_open_pinned leaves
 * them at -1 when they are not pinned (maps of a build before the cache).
 */
struct stcp_maps {
	int cfg;
	int keys;
	int listen;
	int counters;
	int pages;
	int resps;
	int objects;
};

#define STCP_MAPS_INIT { -1, -1, -1, -1, -1, -1, -1 }

/* The pin directory: $STCP_PIN_DIR if set, else STCP_PIN_DIR. */
const char *stcp_default_pin_dir(void);
int stcp_maps_open_pinned(const char *pin_dir, struct stcp_maps *m);
void stcp_maps_close(struct stcp_maps *m);

/* "ADDR:PORT", IPv6 in brackets: "198.18.0.1:80", "[2001:db8::1]:80". */
int stcp_listen_parse(const char *s, struct stcp_listen_key *k);
void stcp_listen_format(const struct stcp_listen_key *k, char *buf,
			size_t len);
int stcp_listen_add(int listen_fd, const struct stcp_listen_key *k);
int stcp_listen_del(int listen_fd, const struct stcp_listen_key *k);
/* Fills up to max keys; returns how many, or a negative errno. */
int stcp_listen_list(int listen_fd, struct stcp_listen_key *out, int max);

/*
 * Writes a fresh key from the kernel's CSPRNG into the previous-key slot,
 * then makes it current. The old current key stays valid as the previous.
 */
int stcp_keys_rotate(int keys_fd, int cfg_fd);
/* Installs a key only if no valid key exists yet. */
int stcp_keys_ensure(int keys_fd, int cfg_fd);
/* Sets a given key as current (tests, and replicas sharing a key). */
int stcp_keys_install(int keys_fd, int cfg_fd, uint64_t k0, uint64_t k1);

/* Sums the per-CPU counters into out[STCP_C_MAX]. */
int stcp_counters_read(int counters_fd, uint64_t *out);

int stcp_cfg_read(int cfg_fd, struct stcp_cfg *cfg);
int stcp_cfg_write(int cfg_fd, const struct stcp_cfg *cfg);

const char *stcp_mode_name(uint32_t mode);

/* Prints text from column indent on (the first line from column 1),
 * broken at spaces before column 80: the --help option descriptions. */
void stcp_print_wrapped(FILE *f, const char *text, int indent);

/* True if pid is a running stcpd (not gone, not a zombie, not reused). */
bool stcp_daemon_alive(uint32_t pid);

/* Number of entries of any map, by iterating its keys. */
int stcp_map_count_entries(int map_fd);

/*
 * Makes cur ({k0, k1}) the current key with generation gen, and prev (NULL:
 * none) the previous one with generation gen - 1, and sets keys_rotated_at:
 * how a replica takes the keys it shares with others. The current key is
 * never invalid or half-written on the way; slots that hold the right key
 * already are only corrected, so installing the same pair twice changes
 * nothing.
 */
int stcp_keys_install_pair(int keys_fd, int cfg_fd, const uint64_t *prev,
			   const uint64_t *cur, uint32_t gen,
			   uint64_t rotated_at);

#endif /* STCP_COMMON_H */
