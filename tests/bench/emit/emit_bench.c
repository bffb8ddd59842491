// SPDX-License-Identifier: GPL-2.0
/*
 * emit_bench: measures how one arriving TCP ACK ("trigger") can release N
 * full-sized segments on this kernel (docs/ARCHITECTURE.md, "Multi-segment
 * emission"). Run by tests/bench/emit/run.sh, which makes the two network
 * namespaces and the veth pair and passes their names.
 *
 *   client ns: DEV_C  <-- veth -->  DEV_S :server ns
 *   emit_count (XDP: counts, drops,      emit_xdp (XDP) + emit_tc (TC ingress)
 *     clocks out the next trigger)       + emit_devmap (devmap programs)
 *   emit_inject (BPF_PROG_RUN, live frames: really transmits the trigger)
 *
 * Triggers: the first window of triggers (--window segments' worth) goes
 * out through BPF_PROG_RUN live frames on the client veth; after that the
 * client's emit_count turns the last segment of each trigger into the next
 * trigger (an ACK clock in XDP), so at most --window segments are in flight
 * and no veth ring (256 frames) can overflow: a missing segment is a loss
 * of the mechanism. (A live-frames call costs ~24 ms of fixed overhead on
 * this kernel, too much to pace triggers from userspace.)
 *
 * CPU: the server veth's NAPI runs threaded, pinned to CPU 1; its
 * thread's CPU time covers everything the server does per trigger (XDP,
 * devmap programs, skb, TC, transmit) plus the client veth's receive,
 * which runs as softirq on the same CPU; /proc/stat splits the two (system
 * = the server's own work, softirq = the client's receive). The client
 * veth's NAPI is not threaded: with both threaded the pipeline stalled now
 * and then for tens of ms.
 *
 * Prints Markdown on stdout: the probes of the limits, then the table.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <dirent.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "emit.h"

#define MAX_REPS 9

static struct {
	const char *srv_ns, *cli_ns, *srv_dev, *cli_dev, *objdir;
	long budget;   /* segments per measured run */
	long max_trig; /* triggers per measured run, at most */
	double max_secs;
	int window;
	int reps;
	int srv_cpu, cli_cpu;
	bool quick;
	bool no_probes;
	int only_mech, only_n; /* --only M:N, for experiments */
} o = {
	.only_mech = -1,
	.objdir = "build",
	.budget = 1000000,
	.max_trig = 200000,
	.max_secs = 10,
	.window = 192,
	.reps = 3,
	.srv_cpu = 1,
	.cli_cpu = 0,
};

static int ns_srv, ns_cli;
static int ifs, ifc; /* ifindexes */
static unsigned char mac_s[6], mac_c[6];
static struct bpf_object *osrv, *ocli;
static int p_xdp, p_dm, p_dm2, p_tc, p_inj, p_cnt;
static int m_cfg, m_stats, m_content, m_probe, m_dmstate, m_rx, m_tid, m_clock;
static int ncpu;
static uint8_t trig[EMIT_HDR];
static bool srv_xdp_generic;

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "emit_bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static void note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "emit_bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void enter(int nsfd)
{
	if (setns(nsfd, CLONE_NEWNET))
		die("setns: %s", strerror(errno));
}

static int open_ns(const char *name)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("%s: %s", path, strerror(errno));
	return fd;
}

static void get_mac(const char *dev, unsigned char *mac)
{
	struct ifreq ifr = { 0 };
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
	if (s < 0 || ioctl(s, SIOCGIFHWADDR, &ifr))
		die("SIOCGIFHWADDR %s: %s", dev, strerror(errno));
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	close(s);
}

/* ---- maps ------------------------------------------------------------ */

static void set_cfg(uint32_t mode, uint32_t n, bool probe_gso, bool dm_probe)
{
	struct emit_cfg c = { .mode = mode,
			      .nseg = n,
			      .ifindex = (uint32_t)ifs,
			      .probe_gso = probe_gso,
			      .dm_probe = dm_probe };
	uint32_t z = 0;

	if (bpf_map_update_elem(m_cfg, &z, &c, 0))
		die("cfg: %s", strerror(errno));
}

static void stats_read(uint64_t *out)
{
	uint64_t v[256];
	uint32_t i;
	int c;

	for (i = 0; i < ES_MAX; i++) {
		out[i] = 0;
		if (bpf_map_lookup_elem(m_stats, &i, v))
			die("stats: %s", strerror(errno));
		for (c = 0; c < ncpu; c++)
			out[i] += v[c];
	}
}

static void stats_reset(void)
{
	uint64_t v[256] = { 0 };
	struct emit_probe pr[256];
	uint32_t i;

	for (i = 0; i < ES_MAX; i++)
		bpf_map_update_elem(m_stats, &i, v, 0);
	memset(pr, 0, sizeof(pr));
	for (i = 0; i < EO_MAX; i++)
		bpf_map_update_elem(m_probe, &i, pr, 0);
}

static void rx_reset(bool verify)
{
	struct emit_rx rx = { .verify = verify };
	uint64_t zero = 0;
	uint32_t z = 0;

	bpf_map_update_elem(m_rx, &z, &rx, 0);
	bpf_map_update_elem(m_tid, &z, &zero, 0);
}

static void rx_read(struct emit_rx *rx)
{
	uint32_t z = 0;

	if (bpf_map_lookup_elem(m_rx, &z, rx))
		die("rx: %s", strerror(errno));
}

static struct emit_probe probe_read(enum emit_origin o_)
{
	struct emit_probe p;
	uint32_t k = o_;

	if (bpf_map_lookup_elem(m_probe, &k, &p))
		die("probe: %s", strerror(errno));
	return p;
}

/* 16-bit ones' complement sum, native order, as bpf_csum_diff would. */
static uint32_t csum16(const uint8_t *p, size_t n)
{
	uint64_t s = 0;
	uint16_t w;
	size_t i;

	for (i = 0; i + 1 < n; i += 2) {
		memcpy(&w, p + i, 2);
		s += w;
	}
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint32_t)s;
}

static void fill_content(void)
{
	static struct emit_seg seg;
	uint32_t k;
	int i;

	for (k = 0; k < EMIT_MAX_SEGS; k++) {
		for (i = 0; i < EMIT_MSS; i++)
			seg.data[i] = (uint8_t)(k * 31 + i * 7 + (i >> 8));
		seg.csum = csum16(seg.data, EMIT_MSS);
		if (bpf_map_update_elem(m_content, &k, &seg, 0))
			die("content: %s", strerror(errno));
	}
}

/* Every slot of every emit_dmN names the server veth with emit_devmap.
 * Returns how many slots were accepted. */
static int fill_devmaps(int *failed_errno)
{
	static const char *names[] = { "emit_dm1", "emit_dm2", "emit_dm4",
				       "emit_dm8", "emit_dm16", "emit_dm32" };
	struct bpf_devmap_val v = { .ifindex = (uint32_t)ifs };
	struct bpf_map *m;
	uint32_t i, n;
	size_t j;
	int ok = 0;

	*failed_errno = 0;
	for (j = 0; j < sizeof(names) / sizeof(names[0]); j++) {
		m = bpf_object__find_map_by_name(osrv, names[j]);
		n = bpf_map__max_entries(m);
		for (i = 0; i < n; i++) {
			v.bpf_prog.fd = p_dm;
			if (bpf_map_update_elem(bpf_map__fd(m), &i, &v, 0))
				*failed_errno = errno;
			else
				ok++;
		}
	}
	m = bpf_object__find_map_by_name(osrv, "emit_dm_slot");
	i = 0;
	v.bpf_prog.fd = p_dm;
	if (bpf_map_update_elem(bpf_map__fd(m), &i, &v, 0))
		die("emit_dm_slot[0]: %s", strerror(errno));
	i = 1;
	v.bpf_prog.fd = p_dm2;
	if (bpf_map_update_elem(bpf_map__fd(m), &i, &v, 0))
		die("emit_dm_slot[1]: %s", strerror(errno));
	return ok;
}

/* ---- threads and CPU time -------------------------------------------- */

/* PIDs of the NAPI threads of dev ("napi/DEV-ID", comm cut at 15). */
static int napi_pids(const char *dev, int *pids, int max)
{
	char want[32], path[300], comm[32];
	struct dirent *d;
	DIR *dir = opendir("/proc");
	int n = 0;
	FILE *f;

	snprintf(want, sizeof(want), "napi/%s-", dev);
	if (!dir)
		return 0;
	while ((d = readdir(dir)) && n < max) {
		if (d->d_name[0] < '0' || d->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) &&
		    !strncmp(comm, want, strlen(want)))
			pids[n++] = atoi(d->d_name);
		fclose(f);
	}
	closedir(dir);
	return n;
}

static void pin(int pid, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(pid, sizeof(set), &set))
		note("pin %d to CPU %d: %s", pid, cpu, strerror(errno));
}

/* Threaded NAPI for dev in namespace ns, its threads pinned to cpu. */
static void napi_threaded(const char *ns, const char *dev, int cpu)
{
	char cmd[512];
	int pids[8], n, i;

	snprintf(cmd, sizeof(cmd),
		 "ip netns exec %s sh -c 'echo 1 > /sys/class/net/%s/threaded'",
		 ns, dev);
	if (system(cmd))
		die("%s failed", cmd);
	n = napi_pids(dev, pids, 8);
	if (!n)
		die("no NAPI thread for %s", dev);
	for (i = 0; i < n; i++)
		pin(pids[i], cpu);
}

/* ns of CPU time of dev's NAPI threads. */
static uint64_t napi_cpu_ns(const char *dev)
{
	int pids[8], n, i;
	uint64_t t = 0, v;
	char path[64];
	FILE *f;

	n = napi_pids(dev, pids, 8);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/proc/%d/schedstat", pids[i]);
		f = fopen(path, "r");
		if (f && fscanf(f, "%lu", &v) == 1)
			t += v;
		if (f)
			fclose(f);
	}
	return t;
}

/* /proc/stat of one CPU: [0] user+nice+system+irq, [1] softirq, in ns. */
static void cpu_stat(int cpu, uint64_t *out)
{
	unsigned long long v[8];
	char want[16], line[512];
	double tick = 1e9 / (double)sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "r");

	out[0] = out[1] = 0;
	snprintf(want, sizeof(want), "cpu%d ", cpu);
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, want, strlen(want)))
			continue;
		if (sscanf(line + strlen(want),
			   "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
			   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
			out[0] = (uint64_t)((v[0] + v[1] + v[2] + v[5]) * tick);
			out[1] = (uint64_t)(v[6] * tick);
		}
		break;
	}
	if (f)
		fclose(f);
}

struct progstat {
	uint64_t ns, cnt;
};

static struct progstat prog_stat(int fd)
{
	struct bpf_prog_info info = { 0 };
	__u32 len = sizeof(info);
	struct progstat s = { 0, 0 };

	if (!bpf_obj_get_info_by_fd(fd, &info, &len)) {
		s.ns = info.run_time_ns;
		s.cnt = info.run_cnt;
	}
	return s;
}

/* ---- attach ---------------------------------------------------------- */

static void attach_srv_xdp(bool generic)
{
	char cmd[256];

	enter(ns_srv);
	bpf_xdp_detach(ifs, XDP_FLAGS_DRV_MODE, NULL);
	bpf_xdp_detach(ifs, XDP_FLAGS_SKB_MODE, NULL);
	/* Without native XDP the server veth needs GRO for a NAPI, which is
	 * what receives the client's XDP_TX frames; with it, GRO stays off
	 * (the veth default). */
	snprintf(cmd, sizeof(cmd),
		 "ip netns exec %s ethtool -K %s gro %s >/dev/null", o.srv_ns,
		 o.srv_dev, generic ? "on" : "off");
	if (system(cmd))
		die("%s failed", cmd);
	if (bpf_xdp_attach(ifs, p_xdp,
			   generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE,
			   NULL))
		die("attach emit_xdp (%s): %s", generic ? "generic" : "native",
		    strerror(errno));
	srv_xdp_generic = generic;
	napi_threaded(o.srv_ns, o.srv_dev, o.srv_cpu);
}

static void attach_all(void)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, tco, .handle = 1, .priority = 1,
		    .flags = BPF_TC_F_REPLACE);
	int err;

	enter(ns_cli);
	ifc = (int)if_nametoindex(o.cli_dev);
	if (!ifc)
		die("%s: no such device in %s", o.cli_dev, o.cli_ns);
	get_mac(o.cli_dev, mac_c);
	bpf_xdp_detach(ifc, XDP_FLAGS_DRV_MODE, NULL);
	if (bpf_xdp_attach(ifc, p_cnt, XDP_FLAGS_DRV_MODE, NULL))
		die("attach emit_count: %s", strerror(errno));
	/* The client veth's NAPI stays in softirq: with both NAPIs threaded
	 * the pipeline stalled for tens of ms now and then (see the notes in
	 * docs/ARCHITECTURE.md). */

	enter(ns_srv);
	ifs = (int)if_nametoindex(o.srv_dev);
	if (!ifs)
		die("%s: no such device in %s", o.srv_dev, o.srv_ns);
	get_mac(o.srv_dev, mac_s);
	hook.ifindex = ifs;
	err = bpf_tc_hook_create(&hook);
	if (err && err != -EEXIST)
		die("tc hook: %s", strerror(-err));
	tco.prog_fd = p_tc;
	if (bpf_tc_attach(&hook, &tco))
		die("tc attach: %s", strerror(errno));
	attach_srv_xdp(false);
}

/* ---- triggers -------------------------------------------------------- */

static void build_trigger(void)
{
	uint8_t *p = trig;
	uint32_t saddr = htonl(0xc6120002), daddr = htonl(0xc6120001);
	uint16_t w;

	memset(trig, 0, sizeof(trig));
	memcpy(p, mac_s, 6);
	memcpy(p + 6, mac_c, 6);
	p[12] = 0x08;
	p[13] = 0x00;
	p += 14;
	p[0] = 0x45;
	w = htons(EMIT_HDR - 14);
	memcpy(p + 2, &w, 2);
	p[6] = 0x40;
	p[8] = 64;
	p[9] = 6;
	memcpy(p + 12, &saddr, 4);
	memcpy(p + 16, &daddr, 4);
	w = (uint16_t)~csum16(p, 20);
	memcpy(p + 10, &w, 2);
	p += 20;
	w = htons(EMIT_CLI_PORT);
	memcpy(p, &w, 2);
	w = htons(EMIT_SRV_PORT);
	memcpy(p + 2, &w, 2);
	p[4] = 0x12; /* seq */
	p[12] = 8 << 4;
	p[13] = 0x10; /* ACK */
	p[14] = 0xff;
	p[15] = 0xff;
	p[20] = 1;
	p[21] = 1;
	p[22] = 8;
	p[23] = 10;
}

/* n triggers through BPF_PROG_RUN live frames on the client veth. */
static int inject(int n)
{
	struct xdp_md ctx = { .data_end = EMIT_HDR,
			      .ingress_ifindex = (uint32_t)ifc };
	LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = trig,
		    .data_size_in = EMIT_HDR, .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx), .repeat = (uint32_t)n,
		    .flags = BPF_F_TEST_XDP_LIVE_FRAMES);

	if (bpf_prog_test_run_opts(p_inj, &t))
		die("live frames: %s", strerror(errno));
	return n;
}

/* n triggers through an AF_PACKET socket on the client veth (skbs). */
static void inject_packet(int n)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET,
				   .sll_ifindex = ifc,
				   .sll_halen = 6 };
	uint8_t f[EMIT_HDR];
	uint32_t v;
	int s, i;

	memcpy(sll.sll_addr, mac_s, 6);
	s = socket(AF_PACKET, SOCK_RAW, 0);
	if (s < 0)
		die("AF_PACKET: %s", strerror(errno));
	memcpy(f, trig, sizeof(f));
	for (i = 0; i < n; i++) {
		v = htonl((uint32_t)i);
		memcpy(f + EMIT_OFF_TSVAL, &v, 4);
		if (sendto(s, f, sizeof(f), 0, (struct sockaddr *)&sll,
			   sizeof(sll)) < 0)
			die("AF_PACKET send: %s", strerror(errno));
	}
	close(s);
}

/* One real kernel TCP handshake client -> server:80: its third packet is a
 * 66-byte ACK with timestamps, i.e. a trigger as a Linux client sends it. */
static bool kernel_ack(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(EMIT_SRV_PORT),
				 .sin_addr.s_addr = htonl(0xc6120001) };
	int one = 1, ls, cs;
	bool ok;

	enter(ns_srv);
	ls = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(ls, 4)) {
		note("listener: %s", strerror(errno));
		return false;
	}
	enter(ns_cli);
	cs = socket(AF_INET, SOCK_STREAM, 0);
	ok = cs >= 0 && !connect(cs, (struct sockaddr *)&a, sizeof(a));
	if (!ok)
		note("connect: %s", strerror(errno));
	usleep(100000);
	if (cs >= 0)
		close(cs);
	close(ls);
	return ok;
}

/* Waits until the client counter has stopped moving. */
static void settle(void)
{
	struct emit_rx a, b;
	int still = 0;

	rx_read(&a);
	while (still < 5) {
		usleep(10000);
		rx_read(&b);
		if (b.frames == a.frames && b.bad == a.bad)
			still++;
		else
			still = 0;
		a = b;
	}
}

/* ---- probes ---------------------------------------------------------- */

static void print_grow(const char *what, struct emit_probe p)
{
	if (!p.count)
		printf("| %s | not reached | |\n", what);
	else if (p.max_grow < 0)
		printf("| %s | %u | none (even +64 fails) |\n", what, p.len);
	else
		printf("| %s | %u | +%lld%s |\n", what, p.len,
		       (long long)p.max_grow,
		       p.max_grow >= 4000 ? " (largest tried)" : "");
}

static void probes(int devmap_slots_ok, int devmap_errno)
{
	uint64_t st[ES_MAX];
	struct emit_probe p;

	enter(ns_cli);
	printf("### Limits probed\n\n");
	printf("Devmap slots naming the same device: %d accepted%s%s.\n\n",
	       devmap_slots_ok, devmap_errno ? ", some refused: " : "",
	       devmap_errno ? strerror(devmap_errno) : "");

	printf("Tail growth (`bpf_xdp_adjust_tail`) available on a 66-byte "
	       "trigger, by where the frame came from (tried +64 ... +4000):"
	       "\n\n| frame | length | largest growth that worked |\n"
	       "|---|---:|---|\n");
	set_cfg(EMIT_M_PROBE, 1, false, false);
	stats_reset();
	inject(100);
	settle();
	print_grow("native XDP, trigger sent by BPF_PROG_RUN live frames "
		   "(XDP_TX on the client veth)",
		   probe_read(EO_XDP));
	stats_reset();
	inject_packet(100);
	settle();
	print_grow("native XDP, trigger sent through an AF_PACKET socket",
		   probe_read(EO_XDP));
	stats_reset();
	if (kernel_ack())
		print_grow("native XDP, the handshake ACK of a real kernel "
			   "TCP connect()",
			   probe_read(EO_XDP));
	enter(ns_cli);

	set_cfg(EMIT_M_DEVMAP, 1, false, true);
	stats_reset();
	rx_reset(false);
	inject(100);
	settle();
	print_grow("devmap program, broadcast copy (live-frames trigger)",
		   probe_read(EO_DM_CLONE));
	print_grow("devmap program, last copy = the original frame "
		   "(live-frames trigger)",
		   probe_read(EO_DM_ORIG));
	stats_reset();
	inject_packet(100);
	settle();
	print_grow("devmap program, broadcast copy (AF_PACKET trigger)",
		   probe_read(EO_DM_CLONE));
	print_grow("devmap program, last copy = the original frame "
		   "(AF_PACKET trigger)",
		   probe_read(EO_DM_ORIG));

	attach_srv_xdp(true);
	enter(ns_cli);
	set_cfg(EMIT_M_PROBE, 1, false, false);
	stats_reset();
	inject(100);
	settle();
	print_grow("generic XDP, live-frames trigger", probe_read(EO_XDP));
	stats_reset();
	inject_packet(100);
	settle();
	print_grow("generic XDP, AF_PACKET trigger", probe_read(EO_XDP));
	set_cfg(EMIT_M_DEVMAP, 1, false, true);
	stats_reset();
	inject(100);
	settle();
	print_grow("generic XDP, devmap program on a broadcast copy",
		   probe_read(EO_DM_CLONE));
	print_grow("generic XDP, devmap program on the last copy",
		   probe_read(EO_DM_ORIG));
	attach_srv_xdp(false);
	enter(ns_cli);

	/* (C) on skb-born triggers */
	set_cfg(EMIT_M_TX, 1, false, false);
	stats_reset();
	rx_reset(false);
	inject_packet(1000);
	settle();
	stats_read(st);
	printf("\n(C) XDP_TX grown in place, 1000 AF_PACKET triggers: %lu "
	       "seen, %lu grown and sent, %lu could not grow.\n",
	       st[ES_TRIG], st[ES_EMIT], st[ES_GROW_FAIL]);

	/* Two devmap programs in two slots of one device. */
	set_cfg(EMIT_M_SLOTPROG, 1, false, false);
	stats_reset();
	rx_reset(false);
	inject(1000);
	settle();
	stats_read(st);
	printf("\nDifferent devmap programs per slot (slot 0: emit_devmap, "
	       "slot 1: emit_devmap2, same device), %lu triggers reached the "
	       "server: emit_devmap ran %lu times, emit_devmap2 %lu times.\n",
	       st[ES_TRIG], st[ES_DM_RUNS], st[ES_DM2_RUNS]);

	/* TC: how far can a skb grow? */
	set_cfg(EMIT_M_TC, 1, true, false);
	stats_reset();
	rx_reset(false);
	inject(10);
	settle();
	p = probe_read(EO_TC_16000);
	printf("\nTC: `bpf_skb_change_tail(skb, 16000)` on the trigger "
	       "returned %lld",
	       (long long)p.max_grow);
	p = probe_read(EO_TC_65535);
	printf(", `bpf_skb_change_tail(skb, 65535)` returned %lld "
	       "(device MTU 1500).\n\n",
	       (long long)p.max_grow);
}

/* ---- measured runs --------------------------------------------------- */

enum mech { MECH_C, MECH_A, MECH_B, MECH_AG, MECH_N };

static const char *mech_name[] = {
	[MECH_C] = "C: XDP_TX, grown in place",
	[MECH_A] = "A: devmap broadcast, native XDP",
	[MECH_B] = "B: TC bpf_clone_redirect",
	[MECH_AG] = "A: devmap broadcast, generic XDP",
};

struct result {
	uint64_t injected, trig, emitted, frames, missing, reorder, bad,
		csum_bad, grow_fail, restarts;
	double segs_per_s;  /* at the client, first to last arrival */
	double all_ns_seg;  /* server NAPI thread CPU time per segment */
	double cpu_ns_seg;  /* of which not softirq: the server's own work */
	double cli_ns_seg;  /* of which softirq: the client veth's receive */
	double cpu_util;    /* server NAPI thread busy share of the run */
	double bpf_ns_seg;  /* server BPF programs' run time per segment */
};

static uint32_t mode_of(enum mech m)
{
	switch (m) {
	case MECH_C:
		return EMIT_M_TX;
	case MECH_B:
		return EMIT_M_TC;
	default:
		return EMIT_M_DEVMAP;
	}
}

static uint64_t tid_read(void)
{
	uint64_t v = 0;
	uint32_t z = 0;

	bpf_map_lookup_elem(m_tid, &z, &v);
	return v;
}

/* The client's ACK clock: n segments per trigger, limit triggers in all;
 * n = 0 stops it. */
static void clock_set(uint32_t n, uint64_t limit)
{
	struct emit_clock ck = { .n = n, .limit = limit };
	uint32_t z = 0;

	memcpy(ck.tmpl, trig, EMIT_HDR);
	if (bpf_map_update_elem(m_clock, &z, &ck, 0))
		die("clock: %s", strerror(errno));
}

/* One run: trig_count triggers of n segments. The first window of
 * triggers (--window segments' worth) goes out through live frames; after
 * that the client's ACK clock sends one trigger per completed trigger. If
 * nothing arrives for 50 ms (the clock lost its frames), a fresh window is
 * sent. */
static struct result run(enum mech m, int n, long trig_count, bool verify)
{
	long prime = o.window / n, tid;
	struct progstat a[3], b[3];
	int fds[3] = { p_xdp, p_dm, p_tc };
	uint64_t cs0, cs1, st[ES_MAX], c0[2], c1[2];
	struct result r = { 0 };
	struct emit_rx rx;
	double t0, t, last_progress;
	uint64_t last_frames = 0;
	int i;

	if (prime < 1)
		prime = 1;
	if (prime > trig_count)
		prime = trig_count;
	enter(ns_cli);
	settle(); /* nothing left from the previous run */
	set_cfg(mode_of(m), (uint32_t)n, false, false);
	stats_reset();
	rx_reset(verify);
	clock_set((uint32_t)n, (uint64_t)trig_count);
	for (i = 0; i < 3; i++)
		a[i] = prog_stat(fds[i]);
	cs0 = napi_cpu_ns(o.srv_dev);
	cpu_stat(o.srv_cpu, c0);
	t0 = now_s();
	last_progress = t0;
	inject((int)prime);
	for (;;) {
		usleep(5000);
		rx_read(&rx);
		t = now_s();
		if (rx.frames >= (uint64_t)trig_count * n ||
		    t - t0 > o.max_secs)
			break;
		if (rx.frames != last_frames) {
			last_frames = rx.frames;
			last_progress = t;
			continue;
		}
		if (t - last_progress > 0.05) {
			tid = (long)tid_read();
			if (tid >= trig_count)
				break;
			r.restarts++;
			if (getenv("EMIT_DEBUG"))
				note("restart at %.3f s: %lu segments, %ld "
				     "triggers sent",
				     t - t0, rx.frames, tid);
			inject((int)(prime < trig_count - tid ? prime :
								trig_count - tid));
			last_progress = now_s();
		}
	}
	clock_set(0, 0);
	settle();
	cs1 = napi_cpu_ns(o.srv_dev);
	cpu_stat(o.srv_cpu, c1);
	for (i = 0; i < 3; i++)
		b[i] = prog_stat(fds[i]);
	rx_read(&rx);
	stats_read(st);
	r.injected = tid_read();
	r.trig = st[ES_TRIG];
	r.emitted = st[ES_EMIT];
	r.grow_fail = st[ES_GROW_FAIL];
	r.frames = rx.frames;
	r.missing = r.injected * n > rx.frames ? r.injected * n - rx.frames :
						  0;
	r.reorder = rx.reorder;
	r.bad = rx.bad;
	r.csum_bad = rx.csum_bad;
	if (rx.frames > 1 && rx.last_ns > rx.first_ns)
		r.segs_per_s = (rx.frames - 1) * 1e9 /
			       (double)(rx.last_ns - rx.first_ns);
	if (rx.frames) {
		double bpf = 0;

		for (i = 0; i < 3; i++)
			bpf += (double)(b[i].ns - a[i].ns);
		r.all_ns_seg = (double)(cs1 - cs0) / rx.frames;
		r.cpu_ns_seg = (double)(c1[0] - c0[0]) / rx.frames;
		r.cli_ns_seg = (double)(c1[1] - c0[1]) / rx.frames;
		r.bpf_ns_seg = bpf / rx.frames;
		r.cpu_util = (double)(cs1 - cs0) /
			     ((double)(rx.last_ns - rx.first_ns) + 1);
	}
	return r;
}

static int cmp_d(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void measure(enum mech m, int n)
{
	double sps[MAX_REPS], all[MAX_REPS], cpu[MAX_REPS], cli[MAX_REPS],
		bpf[MAX_REPS], util[MAX_REPS];
	uint64_t missing = 0, reorder = 0, segs = 0, restarts = 0;
	long trig = o.budget / n;
	struct result v, r;
	int i;

	if (trig > o.max_trig)
		trig = o.max_trig;
	/* a short pass with every checksum checked at the client */
	v = run(m, n, 2000 / n + 1, true);
	for (i = 0; i < o.reps; i++) {
		r = run(m, n, trig, false);
		sps[i] = r.segs_per_s;
		all[i] = r.all_ns_seg;
		cpu[i] = r.cpu_ns_seg;
		cli[i] = r.cli_ns_seg;
		bpf[i] = r.bpf_ns_seg;
		util[i] = r.cpu_util * 100;
		missing += r.missing;
		reorder += r.reorder;
		restarts += r.restarts;
		segs += r.frames;
		note("%s N=%d rep %d: %lu triggers (%lu at the server), %lu "
		     "segments, %.0f seg/s, CPU 1 %.0f ns/seg (%.0f own, %.0f "
		     "softirq; %.0f%% busy), BPF %.0f ns/seg, %lu missing, %lu "
		     "reordered, %lu grow failures, %lu restarts",
		     mech_name[m], n, i, r.injected, r.trig, r.frames,
		     r.segs_per_s, r.all_ns_seg, r.cpu_ns_seg, r.cli_ns_seg,
		     r.cpu_util * 100, r.bpf_ns_seg, r.missing, r.reorder,
		     r.grow_fail, r.restarts);
	}
	printf("| %s | %d | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %lu | "
	       "%lu/%lu | %lu | %lu/%lu/%lu |\n",
	       mech_name[m], n, median(sps, o.reps) / 1e3,
	       median(all, o.reps), median(cpu, o.reps), median(cli, o.reps),
	       median(bpf, o.reps), median(util, o.reps), segs, missing,
	       reorder, restarts, v.frames - v.csum_bad - v.bad, v.frames,
	       (uint64_t)v.injected * n);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: emit_bench --srv-ns NS --cli-ns NS --srv-dev DEV "
		"--cli-dev DEV\n"
		"                  [--objdir build] [--budget SEGS] [--max-trig N]"
		" [--max-secs S]\n"
		"                  [--window SEGS] [--reps R] [--quick] [--no-probes]\n"
		"                  [--only MECH:N (0 C, 1 A, 2 B, 3 A generic)]\n");
	exit(2);
}

static int prog_fd(struct bpf_object *obj, const char *name)
{
	struct bpf_program *p = bpf_object__find_program_by_name(obj, name);

	if (!p)
		die("program %s missing", name);
	return bpf_program__fd(p);
}

static int map_fd(struct bpf_object *obj, const char *name)
{
	struct bpf_map *m = bpf_object__find_map_by_name(obj, name);

	if (!m)
		die("map %s missing", name);
	return bpf_map__fd(m);
}

static struct bpf_object *load(const char *file)
{
	char path[512];
	struct bpf_object *obj;

	snprintf(path, sizeof(path), "%s/%s", o.objdir, file);
	obj = bpf_object__open_file(path, NULL);
	if (!obj)
		die("open %s: %s", path, strerror(errno));
	if (bpf_object__load(obj))
		die("load %s: %s", path, strerror(errno));
	return obj;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "srv-ns", required_argument, 0, 's' },
		{ "cli-ns", required_argument, 0, 'c' },
		{ "srv-dev", required_argument, 0, 'S' },
		{ "cli-dev", required_argument, 0, 'C' },
		{ "objdir", required_argument, 0, 'o' },
		{ "budget", required_argument, 0, 'b' },
		{ "max-trig", required_argument, 0, 't' },
		{ "max-secs", required_argument, 0, 'T' },
		{ "window", required_argument, 0, 'w' },
		{ "reps", required_argument, 0, 'r' },
		{ "quick", no_argument, 0, 'q' },
		{ "no-probes", no_argument, 0, 'P' },
		{ "only", required_argument, 0, 'O' },
		{ 0, 0, 0, 0 },
	};
	static const int ns_[] = { 1, 4, 8, 16, 32 };
	int c, i, stats_fd, dm_ok, dm_err;
	double t0 = now_s();

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's': o.srv_ns = optarg; break;
		case 'c': o.cli_ns = optarg; break;
		case 'S': o.srv_dev = optarg; break;
		case 'C': o.cli_dev = optarg; break;
		case 'o': o.objdir = optarg; break;
		case 'b': o.budget = atol(optarg); break;
		case 't': o.max_trig = atol(optarg); break;
		case 'T': o.max_secs = atof(optarg); break;
		case 'w': o.window = atoi(optarg); break;
		case 'r': o.reps = atoi(optarg); break;
		case 'q': o.quick = true; break;
		case 'P': o.no_probes = true; break;
		case 'O':
			if (sscanf(optarg, "%d:%d", &o.only_mech, &o.only_n) != 2 ||
			    o.only_mech < 0 || o.only_mech >= MECH_N)
				usage();
			break;
		default: usage();
		}
	}
	if (!o.srv_ns || !o.cli_ns || !o.srv_dev || !o.cli_dev)
		usage();
	if (o.reps < 1 || o.reps > MAX_REPS)
		die("--reps: 1..%d", MAX_REPS);
	if (o.window < 2 * EMIT_MAX_SEGS || o.window > 240)
		die("--window: %d..240 (the veth ring has 256 slots)",
		    2 * EMIT_MAX_SEGS);
	ncpu = libbpf_num_possible_cpus();
	if (ncpu < 2 || ncpu > 256)
		die("need 2..256 CPUs, have %d", ncpu);
	ns_srv = open_ns(o.srv_ns);
	ns_cli = open_ns(o.cli_ns);
	pin(0, o.cli_cpu);
	setpriority(PRIO_PROCESS, 0, 10);

	osrv = load("emit_srv.bpf.o");
	ocli = load("emit_cli.bpf.o");
	p_xdp = prog_fd(osrv, "emit_xdp");
	p_dm = prog_fd(osrv, "emit_devmap");
	p_dm2 = prog_fd(osrv, "emit_devmap2");
	p_tc = prog_fd(osrv, "emit_tc");
	p_inj = prog_fd(ocli, "emit_inject");
	p_cnt = prog_fd(ocli, "emit_count");
	m_cfg = map_fd(osrv, "emit_cfg");
	m_stats = map_fd(osrv, "emit_stats");
	m_content = map_fd(osrv, "emit_content");
	m_probe = map_fd(osrv, "emit_probe");
	m_dmstate = map_fd(osrv, "emit_dm_state");
	m_rx = map_fd(ocli, "emit_rx");
	m_tid = map_fd(ocli, "emit_next_tid");
	m_clock = map_fd(ocli, "emit_clock");
	(void)m_dmstate;

	attach_all();
	build_trigger();
	fill_content();
	dm_ok = fill_devmaps(&dm_err);
	stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (stats_fd < 0)
		note("bpf_enable_stats: %s (BPF ns/segment will read 0)",
		     strerror(errno));

	if (!o.no_probes)
		probes(dm_ok, dm_err);
	if (o.only_mech >= 0) {
		if (o.only_mech == MECH_AG)
			attach_srv_xdp(true);
		measure((enum mech)o.only_mech, o.only_n);
		return 0;
	}

	printf("### Segments per trigger\n\n");
	printf("| mechanism | N | kseg/s | CPU 1 ns/seg | server own ns/seg |"
	       " client rx ns/seg | server BPF ns/seg | CPU 1 busy %% | "
	       "segments | missing/reordered | stalls | check pass: good/received/sent |\n");
	printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"
	       "\n");
	measure(MECH_C, 1);
	for (i = 0; i < (o.quick ? 3 : 5); i++)
		measure(MECH_A, ns_[o.quick ? i * 2 : i]);
	for (i = 0; i < (o.quick ? 3 : 5); i++)
		measure(MECH_B, ns_[o.quick ? i * 2 : i]);
	attach_srv_xdp(true);
	for (i = 0; i < (o.quick ? 3 : 5); i++)
		measure(MECH_AG, ns_[o.quick ? i * 2 : i]);
	attach_srv_xdp(false);
	printf("\n");
	note("done in %.0f s", now_s() - t0);
	if (stats_fd >= 0)
		close(stats_fd);
	return 0;
}
