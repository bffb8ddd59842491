/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stcpd --metrics ADDR:PORT: a Prometheus text-format endpoint (GET
 * /metrics) served by libmicrohttpd in a thread of its own, so that a slow
 * scraper never holds up the daemon's signal loop. Every value is read from
 * the pinned maps at request time, except the content cache figures, which
 * the daemon hands over after every change (the cache's own structures
 * belong to the daemon thread). Functions return 0 or a negative errno;
 * every function accepts a NULL struct stcp_metrics and then does nothing.
 */
#ifndef STCP_DAEMON_METRICS_H
#define STCP_DAEMON_METRICS_H

#include <stdbool.h>

#include "cache.h"
#include "stcp_maps.h"

struct stcp_metrics;

/* The maps the endpoint reads; they must stay open until
 * stcp_metrics_close. */
struct stcp_metrics_maps {
	int cfg;
	int keys;
	int listen;
	int counters;
};

/*
 * Binds and listens on addr (port != 0), before anything else is set up,
 * so that a taken or foreign address is one line and exit 1 with nothing to
 * undo. Connections wait in the backlog until stcp_metrics_start.
 */
int stcp_metrics_open(struct stcp_metrics **out,
		      const struct stcp_listen_key *addr, const char *version);
/* Starts answering, in libmicrohttpd's internal polling thread. */
int stcp_metrics_start(struct stcp_metrics *m,
		       const struct stcp_metrics_maps *maps);
/* The content cache figures to expose from now on. */
void stcp_metrics_set_cache(struct stcp_metrics *m,
			    const struct stcp_cache_stats *st);
/* Stops the thread (waiting for a request in progress), closes, frees. */
void stcp_metrics_close(struct stcp_metrics *m);

/*
 * True if addr is one of the service addresses: the fast path would answer
 * its packets itself and the endpoint would never see a connection.
 */
bool stcp_metrics_shadowed(const struct stcp_listen_key *addr,
			   const struct stcp_listen_key *listen, int nlisten);

#endif /* STCP_DAEMON_METRICS_H */
