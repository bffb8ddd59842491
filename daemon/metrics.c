// SPDX-License-Identifier: GPL-2.0
/*
 * The Prometheus endpoint of stcpd (metrics.h). The socket is bound by us,
 * early, so that a bind failure has an errno to report; libmicrohttpd gets
 * it with MHD_OPTION_LISTEN_SOCKET and runs everything else (accept, HTTP
 * parsing, timeouts) in its internal polling thread. That thread inherits
 * the daemon's blocked signals, so signals keep going to sigtimedwait in
 * the main loop.
 *
 * Exposition format 0.0.4 (text): for each family "# HELP", "# TYPE", then
 * its samples, "name{label="value"} number".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <microhttpd.h>

#include "common.h"
#include "metrics.h"

#define METRICS_PATH   "/metrics"
#define CONTENT_TYPE   "text/plain; version=0.0.4; charset=utf-8"
#define LISTEN_BACKLOG 16
/* A scraper needs one connection; these bound what idle or slow clients
 * can hold. */
#define MAX_CONNECTIONS	     16
#define CONNECTION_TIMEOUT_S 10

struct stcp_metrics {
	int fd; /* our listening socket; libmicrohttpd serves a dup of it */
	char addr[64]; /* ADDR:PORT, for messages */
	const char *version;
	struct stcp_metrics_maps maps;
	struct MHD_Daemon *mhd;
	pthread_mutex_t lock; /* guards cache and have_cache */
	struct stcp_cache_stats cache;
	bool have_cache;
};

/* Set on the first call for a request, so that a body can be skipped. */
static int request_seen;

static void family(FILE *f, const char *name, const char *type,
		   const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(FILE *f, const char *name, uint64_t v)
{
	fprintf(f, "%s %llu\n", name, (unsigned long long)v);
}

static void counters(FILE *f, const uint64_t *c)
{
	family(f, "stcp_rx_packets_total", "counter",
	       "Packets the XDP program has seen.");
	sample(f, "stcp_rx_packets_total", c[STCP_C_RX_PACKETS]);
	family(f, "stcp_packets_total", "counter",
	       "Packets by what the XDP program did with them; each packet "
	       "counts under exactly one disposition.");
	for (int i = 0; i < STCP_C_MAX; i++)
		if (stcp_counter_is_disposition(i))
			fprintf(f,
				"stcp_packets_total{disposition=\"%s\"} %llu\n",
				stcp_counter_names[i], (unsigned long long)c[i]);
	family(f, "stcp_tx_frames_total", "counter",
	       "Frames the XDP program sent back, by kind.");
	for (int i = STCP_C_TX_SYNACK; i < STCP_C_MAX; i++) {
		const char *name = stcp_counter_names[i];

		if (stcp_counter_is_disposition(i) || strncmp(name, "tx_", 3))
			continue;
		/* "tx_synack" -> kind="synack" */
		fprintf(f, "stcp_tx_frames_total{kind=\"%s\"} %llu\n", name + 3,
			(unsigned long long)c[i]);
	}
	family(f, "stcp_events_total", "counter",
	       "Events the XDP program counts besides a packet's disposition.");
	for (int i = STCP_C_TX_SYNACK; i < STCP_C_MAX; i++) {
		const char *name = stcp_counter_names[i];

		if (stcp_counter_is_disposition(i) || !strncmp(name, "tx_", 3))
			continue;
		fprintf(f, "stcp_events_total{event=\"%s\"} %llu\n", name,
			(unsigned long long)c[i]);
	}
}

static void cache(FILE *f, const struct stcp_cache_stats *cs,
		  const struct stcp_cfg *cfg)
{
	family(f, "stcp_cache_objects", "gauge", "Files in the content cache.");
	sample(f, "stcp_cache_objects", cs->files);
	family(f, "stcp_cache_bytes", "gauge",
	       "Body bytes of the files in the content cache.");
	sample(f, "stcp_cache_bytes", cs->bytes);
	family(f, "stcp_cache_pages_used", "gauge",
	       "4 KiB pages of stcp_pages in use (files, replaced files in "
	       "their grace period, fixed responses).");
	sample(f, "stcp_cache_pages_used", cs->pages_used);
	family(f, "stcp_cache_pages_total", "gauge",
	       "4 KiB pages in stcp_pages (--cache-mb).");
	sample(f, "stcp_cache_pages_total", cs->npages);
	family(f, "stcp_cache_loads_total", "counter",
	       "Content loads finished: start-up and every reload (SIGHUP).");
	sample(f, "stcp_cache_loads_total",
	       cfg->cache_loads & STCP_CFG_LOAD_COUNT);
	family(f, "stcp_cache_last_load_failed", "gauge",
	       "1 if the last content load failed (the cache kept what it "
	       "had).");
	sample(f, "stcp_cache_last_load_failed",
	       !!(cfg->cache_loads & STCP_CFG_LOAD_FAILED));
}

/* The exposition, read from the maps now; *out is malloc'ed. */
static int render(struct stcp_metrics *m, char **out, size_t *len)
{
	uint64_t c[STCP_C_MAX];
	struct stcp_cache_stats cs;
	struct stcp_cfg cfg;
	struct stcp_key key;
	uint32_t gen = 0;
	bool have_cache;
	__u32 slot;
	int nlisten, err;
	FILE *f;

	*out = NULL;
	err = stcp_counters_read(m->maps.counters, c);
	if (!err)
		err = stcp_cfg_read(m->maps.cfg, &cfg);
	if (!err) {
		slot = cfg.key_cur & 1;
		if (bpf_map_lookup_elem(m->maps.keys, &slot, &key))
			err = -errno;
		else if (key.valid)
			gen = key.gen;
		/* Only the generation leaves this function. */
		explicit_bzero(&key, sizeof(key));
	}
	nlisten = err ? 0 : stcp_map_count_entries(m->maps.listen);
	if (nlisten < 0)
		err = nlisten;
	if (err)
		return err;
	pthread_mutex_lock(&m->lock);
	cs = m->cache;
	have_cache = m->have_cache;
	pthread_mutex_unlock(&m->lock);

	f = open_memstream(out, len);
	if (!f)
		return -errno;
	family(f, "stcp_up", "gauge", "1 while stcpd runs and answers here.");
	sample(f, "stcp_up", 1);
	family(f, "stcp_build_info", "gauge",
	       "The stcpd version, as a label; the value is always 1.");
	fprintf(f, "stcp_build_info{version=\"%s\"} 1\n", m->version);
	counters(f, c);
	family(f, "stcp_key_generation", "gauge",
	       "Generation of the current MAC key; grows by one on every "
	       "rotation (0: no key).");
	sample(f, "stcp_key_generation", gen);
	family(f, "stcp_keys_rotated_timestamp_seconds", "gauge",
	       "Unix time of the last key rotation (0: never).");
	sample(f, "stcp_keys_rotated_timestamp_seconds", cfg.keys_rotated_at);
	family(f, "stcp_listen_addresses", "gauge",
	       "Service addresses in stcp_listen.");
	sample(f, "stcp_listen_addresses", (uint64_t)nlisten);
	if (have_cache)
		cache(f, &cs, &cfg);
	if (fclose(f)) {
		err = -errno;
		free(*out);
		*out = NULL;
	}
	return err;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status,
			     char *body, size_t len, bool allow)
{
	struct MHD_Response *resp;
	enum MHD_Result ret = MHD_NO;

	resp = MHD_create_response_from_buffer(len, body,
					       MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				    status == MHD_HTTP_OK
					    ? CONTENT_TYPE
					    : "text/plain; charset=utf-8") &&
	    (!allow ||
	     MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD")))
		ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result text_reply(struct MHD_Connection *conn,
				  unsigned int status, bool allow,
				  const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static enum MHD_Result text_reply(struct MHD_Connection *conn,
				  unsigned int status, bool allow,
				  const char *fmt, ...)
{
	char *body;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&body, fmt, ap);
	va_end(ap);
	if (n < 0)
		return MHD_NO;
	return reply(conn, status, body, (size_t)n, allow);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **req_cls)
{
	struct stcp_metrics *m = cls;
	char *body;
	size_t len;
	int err;

	(void)version;
	(void)upload_data;
	/* The first call has only the headers; a body, if any, comes in
	 * later calls and is skipped; the answer goes with the last call. */
	if (!*req_cls) {
		*req_cls = &request_seen;
		return MHD_YES;
	}
	if (*upload_data_size) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (strcmp(url, METRICS_PATH))
		return text_reply(conn, MHD_HTTP_NOT_FOUND, false,
				  "not found: the metrics are at " METRICS_PATH
				  "\n");
	if (strcmp(method, MHD_HTTP_METHOD_GET) &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD))
		return text_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, true,
				  "method not allowed: use GET\n");
	err = render(m, &body, &len);
	if (err) {
		log_warn("metrics: cannot read the maps: %s", strerror(-err));
		return text_reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, false,
				  "cannot read the stcp maps: %s\n",
				  strerror(-err));
	}
	return reply(conn, MHD_HTTP_OK, body, len, false);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	(void)cls;
	if (stcp_log_threshold < STCP_LOG_DEBUG)
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	log_debug("metrics: libmicrohttpd: %s", buf);
}

int stcp_metrics_open(struct stcp_metrics **out,
		      const struct stcp_listen_key *addr, const char *version)
{
	struct sockaddr_storage ss = { 0 };
	struct stcp_metrics *m;
	socklen_t sslen;
	int one = 1, err = 0;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (!m) {
		log_err("cannot set up --metrics: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	m->fd = -1;
	m->version = version;
	pthread_mutex_init(&m->lock, NULL);
	stcp_listen_format(addr, m->addr, sizeof(m->addr));
	if (addr->family == STCP_AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = addr->port;
		memcpy(&s6->sin6_addr, addr->addr, sizeof(s6->sin6_addr));
		sslen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = addr->port;
		memcpy(&s4->sin_addr, addr->addr, sizeof(s4->sin_addr));
		sslen = sizeof(*s4);
	}
	m->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       0);
	if (m->fd < 0 ||
	    setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(m->fd, (struct sockaddr *)&ss, sslen) ||
	    listen(m->fd, LISTEN_BACKLOG)) {
		err = -errno;
		log_err("cannot listen on %s for --metrics: %s", m->addr,
			strerror(-err));
		stcp_metrics_close(m);
		return err;
	}
	*out = m;
	return 0;
}

int stcp_metrics_start(struct stcp_metrics *m,
		       const struct stcp_metrics_maps *maps)
{
	int fd;

	if (!m)
		return 0;
	m->maps = *maps;
	/* libmicrohttpd closes the socket it serves when it stops; ours
	 * stays ours, whatever it does on a failed start. */
	fd = fcntl(m->fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		int err = -errno;

		log_err("cannot start the metrics endpoint on %s: %s", m->addr,
			strerror(-err));
		return err;
	}
	m->mhd = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL,
		NULL, on_request, m, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
		(unsigned int)MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned int)CONNECTION_TIMEOUT_S, MHD_OPTION_END);
	if (!m->mhd) {
		log_err("cannot start the metrics endpoint on %s (run with "
			"--log-level debug for libmicrohttpd's reasons)",
			m->addr);
		return -EIO;
	}
	log_info("metrics: serving http://%s" METRICS_PATH, m->addr);
	return 0;
}

void stcp_metrics_set_cache(struct stcp_metrics *m,
			    const struct stcp_cache_stats *st)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->cache = *st;
	m->have_cache = true;
	pthread_mutex_unlock(&m->lock);
}

void stcp_metrics_close(struct stcp_metrics *m)
{
	if (!m)
		return;
	if (m->mhd)
		MHD_stop_daemon(m->mhd);
	if (m->fd >= 0)
		close(m->fd);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

bool stcp_metrics_shadowed(const struct stcp_listen_key *addr,
			   const struct stcp_listen_key *listen, int nlisten)
{
	for (int i = 0; i < nlisten; i++) {
		if (!memcmp(addr, &listen[i], sizeof(*addr)))
			return true;
	}
	return false;
}
