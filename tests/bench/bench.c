// SPDX-License-Identifier: GPL-2.0
/*
 * stcp_bench: the cost of stcp_xdp per packet, through BPF_PROG_TEST_RUN,
 * next to bench_reflect (swap addresses, XDP_TX) measured in the same run.
 *
 * Two ways to time a run, both reported:
 *  - repeat: one BPF_PROG_TEST_RUN with repeat = N; the kernel reports the
 *    average ns per run. The kernel does NOT restore the frame between
 *    repetitions, so this is only valid when the program's output takes the
 *    same path as its input. It does for the pass path, the handshake ACK
 *    (dropped, frame untouched) and bench_reflect (swaps back and forth);
 *    it does not for a SYN: run 2..N see the SYN-ACK of run 1, which is not
 *    for a service address (pass_other_dest). Every repeat measurement of
 *    stcp_xdp is checked against the counters and reported only if all N
 *    runs took the intended path.
 *  - 1 run per call: N calls with repeat = 1, each a fresh copy of the
 *    input; the kernel's duration of each call still includes a fixed
 *    overhead (its timer around one run), estimated on bench_reflect as
 *    (1-run-per-call) - (repeat) and printed.
 *
 * Each figure is the median of --runs trials. Prints a Markdown table on
 * stdout, progress on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "stcp.skel.h"
#include "bench_reflect.skel.h"
#include "../../daemon/common.h"
#include "stcp_cookie.h"
#include "pkt.h"

#define MAX_RUNS   31
#define DEF_REPEAT 1000000
#define DEF_RUNS   5
#define DEF_CALLS  100000

struct bcase {
	const char *name;
	bool stcp; /* stcp_xdp, else bench_reflect */
	uint8_t pkt[PKT_MAX_FRAME];
	size_t len;
	uint32_t verdict;
	int disp; /* expected disposition (stcp_xdp) */
	double rep[MAX_RUNS], one[MAX_RUNS];
	double rep_med, one_med;
	bool rep_valid;
	char rep_why[256];
};

enum {
	B_SYN4,
	B_SYN6,
	B_ACK4,
	B_PASS4,
	B_REFLECT,
	B_N,
};

static struct bcase cases[B_N] = {
	[B_SYN4] = { .name = "IPv4 SYN, Linux options -> SYN-ACK",
		     .stcp = true,
		     .verdict = XDP_TX,
		     .disp = STCP_C_SYN_ANSWERED },
	[B_SYN6] = { .name = "IPv6 SYN, Linux options -> SYN-ACK",
		     .stcp = true,
		     .verdict = XDP_TX,
		     .disp = STCP_C_SYN_ANSWERED },
	[B_ACK4] = { .name = "IPv4 handshake ACK (cookie + TS check) -> drop",
		     .stcp = true,
		     .verdict = XDP_DROP,
		     .disp = STCP_C_HANDSHAKE_DONE },
	[B_PASS4] = { .name = "IPv4 SYN to another port -> pass",
		      .stcp = true,
		      .verdict = XDP_PASS,
		      .disp = STCP_C_PASS_OTHER_DEST },
	[B_REFLECT] = { .name = "bench_reflect on the IPv4 SYN (baseline)",
			.stcp = false,
			.verdict = XDP_TX,
			.disp = -1 },
};

static struct stcp_bpf *skel;
static struct bench_reflect_bpf *rskel;
static int stcp_fd, reflect_fd, counters_fd;
static long opt_repeat = DEF_REPEAT, opt_runs = DEF_RUNS, opt_calls = DEF_CALLS;
static int opt_cpu = -1;
static uint32_t *call_ns;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "stcp_bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static int prog_of(const struct bcase *c)
{
	return c->stcp ? stcp_fd : reflect_fd;
}

static int run(const struct bcase *c, int repeat, uint32_t *verdict,
	       uint32_t *duration, uint8_t *out, uint32_t *out_len)
{
	static uint8_t scratch[PKT_MAX_FRAME];
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = c->pkt,
		    .data_size_in = (uint32_t)c->len,
		    .data_out = out ? out : scratch,
		    .data_size_out = PKT_MAX_FRAME, .repeat = repeat);
	int err = bpf_prog_test_run_opts(prog_of(c), &o);

	if (err)
		return err;
	if (verdict)
		*verdict = o.retval;
	if (duration)
		*duration = o.duration;
	if (out_len)
		*out_len = o.data_size_out;
	return 0;
}

static void counters(uint64_t *out)
{
	int err = stcp_counters_read(counters_fd, out);

	if (err)
		die("reading counters: %s", strerror(-err));
}

/* Which dispositions moved, for a report: "1 syn_answered, 9 pass_...". */
static void describe_delta(const uint64_t *b, const uint64_t *a, char *buf,
			   size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	for (int i = 0; i < STCP_C_MAX && o < len; i++) {
		if (!stcp_counter_is_disposition(i))
			continue;
		if (a[i] == b[i])
			continue;
		o += (size_t)snprintf(buf + o, len - o, "%s%llu %s",
				      o ? ", " : "",
				      (unsigned long long)(a[i] - b[i]),
				      stcp_counter_names[i]);
	}
}

/* One run of the case's input, verdict and disposition as expected. */
static void sanity(struct bcase *c)
{
	uint8_t out[PKT_MAX_FRAME];
	uint64_t b[STCP_C_MAX], a[STCP_C_MAX];
	uint32_t verdict, out_len;
	struct pkt_view v;
	char why[160];

	if (c->stcp)
		counters(b);
	if (run(c, 1, &verdict, NULL, out, &out_len))
		die("%s: test run failed: %s", c->name, strerror(errno));
	if (verdict != c->verdict)
		die("%s: verdict %u, expected %u", c->name, verdict,
		    c->verdict);
	if (c->stcp) {
		counters(a);
		if (a[c->disp] - b[c->disp] != 1) {
			describe_delta(b, a, why, sizeof(why));
			die("%s: expected one %s, got %s", c->name,
			    stcp_counter_names[c->disp], why);
		}
	}
	if (verdict == XDP_TX && pkt_parse(out, out_len, &v, why, sizeof(why)))
		die("%s: reply does not parse: %s", c->name, why);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Mean without the fastest and slowest 10%: interrupts and the like. */
static double trimmed_mean(uint32_t *v, long n)
{
	long lo = n / 10, hi = n - n / 10;
	double s = 0;

	qsort(v, (size_t)n, sizeof(*v), cmp_u32);
	for (long i = lo; i < hi; i++)
		s += v[i];
	return s / (double)(hi - lo);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, long n)
{
	double s[MAX_RUNS];

	memcpy(s, v, (size_t)n * sizeof(*v));
	qsort(s, (size_t)n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* One repeat trial: returns false (and why) if not every run took the
 * case's path. */
static bool trial_repeat(struct bcase *c, double *ns)
{
	uint64_t b[STCP_C_MAX], a[STCP_C_MAX];
	uint32_t verdict, dur;

	if (c->stcp)
		counters(b);
	if (run(c, (int)opt_repeat, &verdict, &dur, NULL, NULL))
		die("%s: test run failed: %s", c->name, strerror(errno));
	*ns = dur;
	if (!c->stcp)
		return verdict == c->verdict;
	counters(a);
	if (a[c->disp] - b[c->disp] != (uint64_t)opt_repeat) {
		char d[128];

		describe_delta(b, a, d, sizeof(d));
		snprintf(c->rep_why, sizeof(c->rep_why),
			 "repeat=%ld gave %s: from the 2nd run on, the program "
			 "sees its own reply",
			 opt_repeat, d);
		return false;
	}
	return verdict == c->verdict;
}

static double trial_calls(struct bcase *c)
{
	uint64_t b[STCP_C_MAX], a[STCP_C_MAX];

	if (c->stcp)
		counters(b);
	for (long i = 0; i < opt_calls; i++) {
		uint32_t verdict;

		if (run(c, 1, &verdict, &call_ns[i], NULL, NULL))
			die("%s: test run failed: %s", c->name,
			    strerror(errno));
		if (verdict != c->verdict)
			die("%s: verdict %u on call %ld", c->name, verdict, i);
	}
	if (c->stcp) {
		counters(a);
		if (a[c->disp] - b[c->disp] != (uint64_t)opt_calls)
			die("%s: %llu %s for %ld calls", c->name,
			    (unsigned long long)(a[c->disp] - b[c->disp]),
			    stcp_counter_names[c->disp], opt_calls);
	}
	return trimmed_mean(call_ns, opt_calls);
}

static void warm_up(struct bcase *c)
{
	uint32_t verdict;

	/* Caches and branch predictors of this CPU. */
	for (int i = 0; i < 1000; i++)
		run(c, 1, &verdict, NULL, NULL, NULL);
	c->rep_valid = true;
}

/* Trial r of every case before trial r + 1 of any: drifts of the machine
 * (frequency, neighbours) then hit all cases alike. */
static void measure_all(void)
{
	for (int i = 0; i < B_N; i++)
		warm_up(&cases[i]);
	for (long r = 0; r < opt_runs; r++) {
		fprintf(stderr, "stcp_bench: trial %ld of %ld\n", r + 1,
			opt_runs);
		for (int i = 0; i < B_N; i++) {
			struct bcase *c = &cases[i];

			if (c->rep_valid && !trial_repeat(c, &c->rep[r]))
				c->rep_valid = false;
			c->one[r] = trial_calls(c);
		}
	}
	for (int i = 0; i < B_N; i++) {
		struct bcase *c = &cases[i];

		c->rep_med = c->rep_valid ? median(c->rep, opt_runs) : 0;
		c->one_med = median(c->one, opt_runs);
	}
}

static void load(void)
{
	struct bpf_map *map;
	struct stcp_listen_key k;
	const char *listen[] = { "198.18.0.1:80", "[2001:db8::1]:80" };
	int err;

	skel = stcp_bpf__open();
	if (!skel)
		die("stcp_bpf__open: %s", strerror(errno));
	/* Private maps: never reuse or pin the maps of a running stcpd. */
	bpf_object__for_each_map(map, skel->obj)
	{
		if (bpf_map__set_pin_path(map, NULL))
			die("cannot unpin %s", bpf_map__name(map));
	}
	/* The content cache is not used here: the smallest page array. */
	if (bpf_map__set_max_entries(skel->maps.stcp_pages, 1))
		die("cannot size stcp_pages");
	err = stcp_bpf__load(skel);
	if (err)
		die("stcp_bpf__load: %s", strerror(-err));
	stcp_fd = bpf_program__fd(skel->progs.stcp_xdp);
	counters_fd = bpf_map__fd(skel->maps.stcp_counters);
	for (int i = 0; i < 2; i++) {
		err = stcp_listen_parse(listen[i], &k);
		if (!err)
			err = stcp_listen_add(
				bpf_map__fd(skel->maps.stcp_listen), &k);
		if (err)
			die("listen %s: %s", listen[i], strerror(-err));
	}
	err = stcp_keys_ensure(bpf_map__fd(skel->maps.stcp_keys),
			       bpf_map__fd(skel->maps.stcp_cfg));
	if (err)
		die("installing a key: %s", strerror(-err));

	rskel = bench_reflect_bpf__open_and_load();
	if (!rskel)
		die("bench_reflect_bpf__open_and_load: %s", strerror(errno));
	reflect_fd = bpf_program__fd(rskel->progs.bench_reflect);
}

static void syn_spec(struct pkt_spec *s, int family)
{
	pkt_spec_init(s, family);
	if (family == 6) {
		pkt_set_addr(s->saddr, 6, "2001:db8:ffff::7");
		pkt_set_addr(s->daddr, 6, "2001:db8::1");
	} else {
		pkt_set_addr(s->saddr, 4, "198.51.100.7");
		pkt_set_addr(s->daddr, 4, "198.18.0.1");
	}
	s->sport = 43210;
	s->dport = 80;
	s->seq = 0x1a2b3c4d;
	s->flags = PKT_TH_SYN;
	pkt_opt_linux_syn(s, 1460, 0x00c0ffee, 7);
}

static void build_inputs(void)
{
	uint8_t out[PKT_MAX_FRAME];
	struct pkt_spec s, a;
	struct pkt_tcpopts o;
	struct pkt_view v;
	uint32_t verdict, out_len;
	char why[160];

	syn_spec(&s, 4);
	cases[B_SYN4].len = pkt_build(&s, cases[B_SYN4].pkt, PKT_MAX_FRAME);
	cases[B_REFLECT].len = cases[B_SYN4].len;
	memcpy(cases[B_REFLECT].pkt, cases[B_SYN4].pkt, cases[B_SYN4].len);

	/* The handshake ACK answers the SYN-ACK the program gives. */
	if (run(&cases[B_SYN4], 1, &verdict, NULL, out, &out_len) ||
	    verdict != XDP_TX || pkt_parse(out, out_len, &v, why, sizeof(why)))
		die("no SYN-ACK for the IPv4 SYN");
	pkt_parse_tcpopts(v.opt, v.opt_len, &o);
	if (!o.has_ts)
		die("the SYN-ACK has no timestamp option");
	syn_spec(&a, 4);
	a.tcpopt_len = 0;
	a.flags = PKT_TH_ACK;
	a.seq = s.seq + 1;
	a.ack = v.seq + 1;
	a.window = 502;
	pkt_opt_linux_ts(&a, 0x00c0ffee + 10, o.tsval);
	cases[B_ACK4].len = pkt_build(&a, cases[B_ACK4].pkt, PKT_MAX_FRAME);

	syn_spec(&s, 6);
	cases[B_SYN6].len = pkt_build(&s, cases[B_SYN6].pkt, PKT_MAX_FRAME);

	syn_spec(&s, 4);
	s.dport = 81;
	cases[B_PASS4].len = pkt_build(&s, cases[B_PASS4].pkt, PKT_MAX_FRAME);
}

static const char *verdict_str(uint32_t v)
{
	return v == XDP_TX     ? "XDP_TX"
	       : v == XDP_DROP ? "XDP_DROP"
	       : v == XDP_PASS ? "XDP_PASS"
			       : "?";
}

static void print_table(void)
{
	const struct bcase *ref = &cases[B_REFLECT];
	double overhead = ref->one_med - ref->rep_med;
	bool any_invalid = false;

	printf("| Case | Program | Verdict, path | ns/run, repeat=%ld | "
	       "ns/run, 1 run per call | stcp / reflect |\n",
	       opt_repeat);
	printf("|---|---|---|---:|---:|---:|\n");
	for (int i = 0; i < B_N; i++) {
		const struct bcase *c = &cases[i];
		char rep[32], ratio[48];

		if (c->rep_valid)
			snprintf(rep, sizeof(rep), "%.0f", c->rep_med);
		else
			snprintf(rep, sizeof(rep), "not valid (1)");
		any_invalid |= !c->rep_valid;
		if (!c->stcp)
			snprintf(ratio, sizeof(ratio), "1.00 (baseline)");
		else if (c->rep_valid)
			snprintf(ratio, sizeof(ratio), "%.2f",
				 c->rep_med / ref->rep_med);
		else
			snprintf(ratio, sizeof(ratio),
				 "%.2f (1 run per call); ~%.1f (2)",
				 c->one_med / ref->one_med,
				 (c->one_med - overhead) / ref->rep_med);
		printf("| %s | %s | %s, %s | %s | %.0f | %s |\n", c->name,
		       c->stcp ? "stcp_xdp" : "bench_reflect",
		       verdict_str(c->verdict),
		       c->stcp ? stcp_counter_names[c->disp] : "swap, XDP_TX",
		       rep, c->one_med, ratio);
	}
	printf("\n");
	if (any_invalid) {
		for (int i = 0; i < B_N; i++)
			if (!cases[i].rep_valid)
				printf("(1) %s: %s. Measured 1 run per call "
				       "instead.\n\n",
				       cases[i].name, cases[i].rep_why);
		printf("(2) A 1-run-per-call figure includes a fixed "
		       "per-call overhead of the kernel's timer, about %.0f "
		       "ns here (bench_reflect: %.0f ns per call, %.0f ns "
		       "with repeat). Without it:",
		       overhead, ref->one_med, ref->rep_med);
		for (int i = 0; i < B_N; i++)
			if (!cases[i].rep_valid)
				printf(" %s ~%.0f ns;", cases[i].name,
				       cases[i].one_med - overhead);
		printf(" the ratio after \"~\" divides that by "
		       "bench_reflect's repeat figure.\n\n");
	}
	printf("Each figure is the median of %ld trials. A repeat trial is "
	       "one BPF_PROG_TEST_RUN with repeat=%ld (the kernel's average "
	       "ns per run), accepted only if the counters show all %ld "
	       "runs took the path named. A 1-run-per-call trial is %ld "
	       "calls with repeat=1, the mean of the kernel-reported "
	       "durations without the fastest and slowest 10%%. Pinned to "
	       "CPU %d.\n",
	       opt_runs, opt_repeat, opt_repeat, opt_calls, opt_cpu);
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [--repeat N] [--runs N] [--calls N] [--cpu N]\n"
		"  --repeat N  repetitions in one test run (default %d)\n"
		"  --runs N    trials per figure, median reported (default "
		"%d)\n"
		"  --calls N   calls per 1-run-per-call trial (default %d)\n"
		"  --cpu N     CPU to pin to (default: the last one)\n",
		argv0, DEF_REPEAT, DEF_RUNS, DEF_CALLS);
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "repeat", required_argument, NULL, 'r' },
		{ "runs", required_argument, NULL, 'n' },
		{ "calls", required_argument, NULL, 'c' },
		{ "cpu", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	cpu_set_t set;
	int c;

	while ((c = getopt_long(argc, argv, "r:n:c:p:h", lopts, NULL)) != -1) {
		char *end;
		long v;

		if (c == 'h' || c == '?') {
			usage(argv[0]);
			return c == 'h' ? 0 : 2;
		}
		errno = 0;
		v = strtol(optarg, &end, 0);
		if (errno || *end || v < 1) {
			usage(argv[0]);
			return 2;
		}
		if (c == 'r')
			opt_repeat = v;
		else if (c == 'n')
			opt_runs = v > MAX_RUNS ? MAX_RUNS : v;
		else if (c == 'c')
			opt_calls = v;
		else
			opt_cpu = (int)v;
	}
	if (opt_repeat > 0x7fffffff)
		die("--repeat too large");
	if (opt_cpu < 0)
		opt_cpu = (int)sysconf(_SC_NPROCESSORS_ONLN) - 1;
	CPU_ZERO(&set);
	CPU_SET(opt_cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("pinning to CPU %d: %s", opt_cpu, strerror(errno));
	call_ns = calloc((size_t)opt_calls, sizeof(*call_ns));
	if (!call_ns)
		die("out of memory");
	stcp_progname = "stcp_bench";

	load();
	build_inputs();
	for (int i = 0; i < B_N; i++)
		sanity(&cases[i]);
	measure_all();
	print_table();

	bench_reflect_bpf__destroy(rskel);
	stcp_bpf__destroy(skel);
	free(call_ns);
	return 0;
}
