// SPDX-License-Identifier: GPL-2.0
/*
 * The config file of stcpd (config.h). inih does the INI syntax; this file
 * checks the keys against stcpd's option table, keeps the line of every
 * entry, and leaves the values to stcpd's option parser.
 *
 * inih hands its handler no line numbers (Debian builds it without
 * INI_HANDLER_LINENO), so the file is fed through ini_parse_stream with a
 * reader that counts lines: the handler always runs for the line the reader
 * returned last. The same reader catches lines too long for inih's buffer,
 * which inih would otherwise split silently into two lines.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "common.h"
#include "config.h"

#define SECTION "stcpd"

struct parse {
	struct stcp_conf *conf;
	const struct stcp_conf_rules *rules;
	FILE *f;
	char *buf; /* getline's */
	size_t cap;
	int line;     /* the line the reader returned last */
	int *seen;    /* per option: the line that set it, 0 if none */
	int err;      /* a negative errno that is not about a line */
	int err_line; /* the first line we refused, 0 if none */
	char msg[320];
};

static bool in_list(const char *const *list, const char *name)
{
	for (; list && *list; list++) {
		if (!strcmp(*list, name))
			return true;
	}
	return false;
}

const char *const stcp_conf_stcpd_only[] = {
	"iface",   "listen",	   "root",	"cache-mb",  "mode",
	"keep-maps", "metrics", "key-rotate-s", "log-level", NULL,
};

static int find_key(const struct stcp_conf_rules *r, const char *name)
{
	for (int i = 0; r->longopts[i].name; i++) {
		if (!strcmp(r->longopts[i].name, name) &&
		    !in_list(r->deny, name))
			return i;
	}
	return -1;
}

static void refuse(struct parse *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void refuse(struct parse *p, const char *fmt, ...)
{
	va_list ap;

	if (p->err_line)
		return;
	p->err_line = p->line;
	va_start(ap, fmt);
	vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
	va_end(ap);
}

/* "iface, listen, ..." : what the keys may be, for the unknown-key line. */
static void key_names(const struct stcp_conf_rules *r, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; r->longopts[i].name && used < len; i++) {
		const char *name = r->longopts[i].name;
		int n;

		if (in_list(r->deny, name))
			continue;
		n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
			     name);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

static int add_word(struct parse *p, const char *name, const char *value,
		    size_t value_len)
{
	struct stcp_conf *c = p->conf;
	char **words;
	int *lines;
	char *w;
	int n;

	words = realloc(c->words, (size_t)(c->nwords + 1) * sizeof(*words));
	if (!words)
		return -ENOMEM;
	c->words = words;
	lines = realloc(c->lines, (size_t)(c->nwords + 1) * sizeof(*lines));
	if (!lines)
		return -ENOMEM;
	c->lines = lines;
	if (value)
		n = asprintf(&w, "--%s=%.*s", name, (int)value_len, value);
	else
		n = asprintf(&w, "--%s", name);
	if (n < 0)
		return -ENOMEM;
	c->words[c->nwords] = w;
	c->lines[c->nwords] = p->line;
	c->nwords++;
	return 0;
}

/* 1 true, 0 false, -1 neither. */
static int parse_bool(const char *s)
{
	static const char *const yes[] = { "true", "yes", "on", "1", NULL };
	static const char *const no[] = { "false", "no", "off", "0", NULL };

	for (int i = 0; yes[i]; i++) {
		if (!strcasecmp(s, yes[i]))
			return 1;
		if (!strcasecmp(s, no[i]))
			return 0;
	}
	return -1;
}

/* "a, b,c": one word per element, spaces around the commas dropped. */
static int add_list(struct parse *p, const char *name, const char *value)
{
	const char *s = value;
	int err = 0;

	while (!err) {
		const char *comma = strchr(s, ',');
		const char *end = comma ? comma : s + strlen(s);

		while (*s == ' ' || *s == '\t')
			s++;
		while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (end == s) {
			refuse(p, "%s = %s: empty element in the list", name,
			       value);
			break;
		}
		err = add_word(p, name, s, (size_t)(end - s));
		if (!comma)
			break;
		s = comma + 1;
	}
	return err;
}

/* inih's handler: nonzero means the entry is fine (or already refused). */
static int on_entry(void *user, const char *section, const char *name,
		    const char *value)
{
	struct parse *p = user;
	const struct stcp_conf_rules *r = p->rules;
	const struct option *o;
	char names[512];
	int i, b;

	if (p->err || p->err_line)
		return 1;
	if (*section && strcmp(section, SECTION)) {
		refuse(p,
		       "unknown section [%s]: keys go at the top of the "
		       "file or under [" SECTION "]",
		       section);
		return 0;
	}
	if (in_list(r->ignore, name))
		return 1;
	i = find_key(r, name);
	if (i < 0) {
		key_names(r, names, sizeof(names));
		refuse(p, "unknown key '%s' (keys: %s)", name, names);
		return 0;
	}
	o = &r->longopts[i];
	if (!*value) {
		refuse(p, "%s has no value", name);
		return 0;
	}
	if (p->seen[i] && !in_list(r->multi, name)) {
		refuse(p, "%s is set twice (also on line %d)", name,
		       p->seen[i]);
		return 0;
	}
	p->seen[i] = p->line;
	if (o->has_arg == no_argument) {
		b = parse_bool(value);
		if (b < 0) {
			refuse(p, "%s = %s: expected true or false", name,
			       value);
			return 0;
		}
		if (b)
			p->err = add_word(p, name, NULL, 0);
	} else if (in_list(r->multi, name)) {
		p->err = add_list(p, name, value);
	} else {
		p->err = add_word(p, name, value, strlen(value));
	}
	return p->err || p->err_line ? 0 : 1;
}

/* fgets for inih, counting lines and refusing those it cannot hold. */
static char *read_line(char *str, int num, void *stream)
{
	struct parse *p = stream;
	ssize_t n = getline(&p->buf, &p->cap, p->f);

	if (n < 0)
		return NULL;
	p->line++;
	while (n > 0 && (p->buf[n - 1] == '\n' || p->buf[n - 1] == '\r'))
		p->buf[--n] = '\0';
	if (n >= num) {
		refuse(p, "line longer than %d bytes", num - 1);
		n = num - 1;
	}
	memcpy(str, p->buf, (size_t)n);
	str[n] = '\0';
	return str;
}

void stcp_conf_free(struct stcp_conf *conf)
{
	for (int i = 0; i < conf->nwords; i++)
		free(conf->words[i]);
	free(conf->words);
	free(conf->lines);
	free(conf->path);
	memset(conf, 0, sizeof(*conf));
}

int stcp_conf_load(struct stcp_conf *conf, const char *path,
		   const struct stcp_conf_rules *rules)
{
	struct parse p = { .conf = conf, .rules = rules };
	int nopts = 0, rc, err = 0;

	memset(conf, 0, sizeof(*conf));
	while (rules->longopts[nopts].name)
		nopts++;
	conf->path = strdup(path);
	p.seen = calloc((size_t)nopts + 1, sizeof(*p.seen));
	if (!conf->path || !p.seen) {
		err = -ENOMEM;
		log_err("--config %s: out of memory", path);
		goto out;
	}
	p.f = fopen(path, "re");
	if (!p.f) {
		err = -errno;
		log_err("--config %s: %s", path, strerror(-err));
		goto out;
	}
	rc = ini_parse_stream(read_line, &p, on_entry, &p);
	if (ferror(p.f)) {
		err = -errno;
		log_err("--config %s: %s", path, strerror(errno));
	} else if (p.err || rc < 0) {
		err = p.err ? p.err : -ENOMEM;
		log_err("--config %s: %s", path, strerror(-err));
	} else if (rc > 0 && (!p.err_line || rc < p.err_line)) {
		err = -EINVAL;
		log_err("%s:%d: expected 'key = value', '[" SECTION "]' or a "
			"comment ('#' or ';' first on the line)",
			path, rc);
	} else if (p.err_line) {
		err = -EINVAL;
		log_err("%s:%d: %s", path, p.err_line, p.msg);
	}
out:
	if (p.f)
		fclose(p.f);
	free(p.buf);
	free(p.seen);
	if (err)
		stcp_conf_free(conf);
	return err;
}

void stcp_conf_where(const struct stcp_conf *conf, int i, char *buf, size_t len)
{
	if (i < 0 || i >= conf->nwords)
		snprintf(buf, len, "%s: ", conf->path);
	else
		snprintf(buf, len, "%s:%d: ", conf->path, conf->lines[i]);
}

int stcp_conf_argv(struct stcp_conf *conf, int config_val,
		   const struct stcp_conf_rules *rules, const char *optstring,
		   int *argc, char ***argv, int *conf_end)
{
	const char *path = NULL;
	char **words;
	int opt, n;

	*conf_end = 1;
	opterr = 0;
	while ((opt = getopt_long(*argc, *argv, optstring, rules->longopts,
				  NULL)) != -1) {
		if (opt == config_val)
			path = optarg;
	}
	optind = 0; /* the next getopt_long starts over */
	if (!path)
		return 0;
	if (stcp_conf_load(conf, path, rules))
		return -EINVAL;
	n = conf->nwords;
	words = calloc((size_t)*argc + (size_t)n + 1, sizeof(*words));
	if (!words)
		return -ENOMEM;
	words[0] = (*argv)[0];
	memcpy(words + 1, conf->words, (size_t)n * sizeof(*words));
	memcpy(words + 1 + n, *argv + 1, (size_t)(*argc - 1) * sizeof(*words));
	*conf_end = 1 + n;
	*argc += n;
	*argv = words;
	return 0;
}
