/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stcpd --config FILE: an INI file whose keys are stcpd's long options,
 * parsed with inih and turned into "--name=value" words. stcpd reads those
 * words with the same option parser as its command line, before the command
 * line, so that every value is checked by one piece of code and flags
 * override the file. Functions return 0 or a negative errno.
 */
#ifndef STCP_DAEMON_CONFIG_H
#define STCP_DAEMON_CONFIG_H

#include <getopt.h>
#include <stddef.h>

struct stcp_conf {
	char *path;
	int nwords;
	char **words; /* "--name=value", or "--name" for a flag set true */
	int *lines;   /* the line of the file each word comes from */
};

/* Where an entry may come from, besides its name in the option table. */
struct stcp_conf_rules {
	const struct option *longopts; /* terminated by a NULL name */
	const char *const *deny;  /* options that are not keys; NULL-ended */
	const char *const *multi; /* keys that may repeat, or hold a
				   * comma list; NULL-ended */
	const char *const *ignore; /* keys of the file that are another
				    * program's: accepted, left out of the
				    * words; NULL-ended, or NULL */
};

/*
 * stcpd's keys that stcpctl has no option for: stcpctl --config reads
 * stcpd's file and takes pin-dir, redis and redis-prefix from it
 * (tests/integ/test_ops.sh checks that every stcpd option is one or the
 * other).
 */
extern const char *const stcp_conf_stcpd_only[];

/*
 * Reads path. Keys are long option names, at the top of the file or under
 * [stcpd]; a flag takes true/false (yes/no, on/off, 1/0). On an unknown
 * key, a key set twice, a flag with another value, an empty value, a line
 * longer than the parser's 199 bytes or a syntax error, prints one line
 * "PROG: FILE:LINE: what is wrong" and returns -EINVAL; a file that cannot
 * be read is reported the same way, without a line.
 */
int stcp_conf_load(struct stcp_conf *conf, const char *path,
		   const struct stcp_conf_rules *rules);
void stcp_conf_free(struct stcp_conf *conf);
/*
 * --config FILE on a command line: finds it (the option whose getopt value
 * is config_val), reads FILE under rules, and makes *argv argv[0], FILE's
 * words, then the command line's, so that one parser checks both and the
 * flags, coming later, win; *conf_end is one past FILE's last word in the
 * new argv (1 without --config). Returns 0, -EINVAL (reported), or
 * -ENOMEM.
 */
int stcp_conf_argv(struct stcp_conf *conf, int config_val,
		   const struct stcp_conf_rules *rules, const char *optstring,
		   int *argc, char ***argv, int *conf_end);
/* "FILE:LINE: " for word i, for error messages about its value. */
void stcp_conf_where(const struct stcp_conf *conf, int i, char *buf,
		     size_t len);

#endif /* STCP_DAEMON_CONFIG_H */
