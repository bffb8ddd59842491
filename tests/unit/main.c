// SPDX-License-Identifier: GPL-2.0
/*
 * stcp_unit: runs stcp_xdp through BPF_PROG_TEST_RUN on tables of fixtures
 * and on a deterministic fuzz, and prints one line per case:
 *   ok - NAME
 *   not ok - NAME: REASON
 * and last "N passed, N failed". Exit status 0 iff nothing failed.
 *
 * The program is loaded from the skeleton (build/stcp.bpf.o, embedded) with
 * pinning switched off, so nothing here touches maps of a running stcpd.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "stcp.skel.h"
#include "unit.h"

#define DEFAULT_SEED	   0x57c9f00dULL
#define DEFAULT_FUZZ_COUNT 100000
#define UNIT_MAX_MAPS	   32

struct unit_env unit_main = { .name = "main", .prog_fd = -1 };
struct unit_env unit_nokey = { .name = "nokey", .prog_fd = -1 };
bool unit_verbose;

static int n_passed, n_failed;

const char *verdict_name(uint32_t v)
{
	switch (v) {
	case XDP_ABORTED:
		return "XDP_ABORTED";
	case XDP_DROP:
		return "XDP_DROP";
	case XDP_PASS:
		return "XDP_PASS";
	case XDP_TX:
		return "XDP_TX";
	case XDP_REDIRECT:
		return "XDP_REDIRECT";
	default:
		return "XDP_?";
	}
}

void tc_fail(struct tcase *t, const char *fmt, ...)
{
	va_list ap;

	if (t->failures++ == 0) {
		va_start(ap, fmt);
		vsnprintf(t->why, sizeof(t->why), fmt, ap);
		va_end(ap);
	} else if (unit_verbose) {
		fprintf(stderr, "# %s: also: ", t->name);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
}

void tc_report(struct tcase *t)
{
	if (t->failures) {
		printf("not ok - %s: %s", t->name, t->why);
		if (t->failures > 1)
			printf(" (+%d more)", t->failures - 1);
		putchar('\n');
		n_failed++;
	} else {
		printf("ok - %s\n", t->name);
		n_passed++;
	}
	fflush(stdout);
}

uint32_t unit_tick(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_TAI, &ts);
	return (uint32_t)((((uint64_t)ts.tv_sec * 1000000000ull) +
			   (uint64_t)ts.tv_nsec) >>
			  STCP_CLOCK_SHIFT);
}

int unit_counters(struct unit_env *e, uint64_t *out)
{
	return stcp_counters_read(e->m.counters, out);
}

int unit_run_fast(struct unit_env *e, const uint8_t *in, size_t len,
		  uint32_t *verdict, uint8_t *out, uint32_t *out_len)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in,
		    .data_size_in = (uint32_t)len, .data_out = out,
		    .data_size_out = PKT_MAX_FRAME, .repeat = 1);
	int err;

	err = bpf_prog_test_run_opts(e->prog_fd, &o);
	if (err)
		return err < 0 ? err : -err;
	*verdict = o.retval;
	*out_len = o.data_size_out;
	return 0;
}

int unit_run_frame(struct unit_env *e, const uint8_t *in, size_t len,
		   struct unit_run *r)
{
	uint64_t before[STCP_C_MAX], after[STCP_C_MAX];
	int err;

	memset(r->delta, 0, sizeof(r->delta));
	r->verdict = (uint32_t)-1;
	r->out_len = 0;
	err = unit_counters(e, before);
	if (err)
		return r->err = err;
	r->tick_before = unit_tick();
	r->err = unit_run_fast(e, in, len, &r->verdict, r->out, &r->out_len);
	r->tick_after = unit_tick();
	if (r->err)
		return r->err;
	err = unit_counters(e, after);
	if (err)
		return r->err = err;
	for (int i = 0; i < STCP_C_MAX; i++)
		r->delta[i] = after[i] - before[i];
	return 0;
}

void expect_counters(struct tcase *t, const struct unit_run *r, int disp,
		     int tx)
{
	for (int i = 0; i < STCP_C_MAX; i++) {
		uint64_t want = 0;

		if (i == STCP_C_RX_PACKETS || i == disp || i == tx)
			want = 1;
		if (r->delta[i] != want)
			tc_fail(t, "counter %s moved by %llu, expected %llu",
				stcp_counter_names[i],
				(unsigned long long)r->delta[i],
				(unsigned long long)want);
	}
}

void unit_flow_of(const struct pkt_spec *s, struct stcp_flow *f)
{
	memset(f, 0, sizeof(*f));
	memcpy(f->caddr, s->saddr, 16);
	memcpy(f->saddr, s->daddr, 16);
	if (s->family != 6) {
		f->caddr[1] = f->caddr[2] = f->caddr[3] = 0;
		f->saddr[1] = f->saddr[2] = f->saddr[3] = 0;
	}
	f->cport = htons(s->sport);
	f->sport = htons(s->dport);
	f->family = s->family == 6 ? STCP_AF_INET6 : STCP_AF_INET;
}

uint32_t unit_isn(const struct stcp_flow *f, uint32_t cisn, uint32_t tick,
		  uint32_t opts, bool has_ts, uint32_t *synack_tsval)
{
	uint64_t h0 = stcp_flow_hash(UNIT_K0, UNIT_K1, f);
	uint64_t h1 = stcp_handshake_mac(UNIT_K0, UNIT_K1, f, cisn, tick, opts);

	if (synack_tsval)
		*synack_tsval =
			has_ts ? stcp_tsval_make(
					 stcp_ts_pos_synack(stcp_isn_ts(h0, h1)),
					 h1, tick, opts) :
				 0;
	return has_ts ? stcp_isn_ts(h0, h1) : stcp_isn_nots(h0, h1, tick, opts);
}

int unit_reset_key(struct unit_env *e)
{
	return stcp_keys_install(e->m.keys, e->m.cfg, UNIT_K0, UNIT_K1);
}

/* Where libbpf pins LIBBPF_PIN_BY_NAME maps when no pin_root_path is set. */
#define LIBBPF_PIN_ROOT "/sys/fs/bpf"

static bool pin_exists(const char *map_name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", LIBBPF_PIN_ROOT, map_name);
	return access(path, F_OK) == 0;
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	if (level == LIBBPF_DEBUG && !unit_verbose)
		return 0;
	fprintf(stderr, "# libbpf: ");
	return vfprintf(stderr, fmt, ap);
}

/*
 * Opens and loads one instance. Pinning is switched off map by map: libbpf
 * sets a pin path at open time for LIBBPF_PIN_BY_NAME maps (under
 * /sys/fs/bpf by default), and bpf_map__set_pin_path(map, NULL) frees it;
 * bpf_object__create_maps() only reuses or pins a map whose pin_path is set
 * (libbpf 1.1.2, src/libbpf.c). Checked after the load: no map reports a pin
 * path or is pinned, and no pin file appeared under the default root.
 */
static int env_open(struct unit_env *e, bool with_key, uint32_t pages,
		    struct tcase *t)
{
	struct bpf_map *maps[UNIT_MAX_MAPS], *map;
	struct stcp_listen_key k;
	const char *listen[] = { UNIT_LISTEN_V4, UNIT_LISTEN_V6 };
	bool had_pin[UNIT_MAX_MAPS];
	int err, nmaps = 0;

	e->skel = stcp_bpf__open();
	if (!e->skel) {
		tc_fail(t, "stcp_bpf__open: %s", strerror(errno));
		return -1;
	}
	/* Every map of the object, the content cache's included. */
	bpf_object__for_each_map(map, e->skel->obj)
	{
		if (nmaps == UNIT_MAX_MAPS) {
			tc_fail(t, "more than %d maps", UNIT_MAX_MAPS);
			return -1;
		}
		maps[nmaps++] = map;
	}
	for (int i = 0; i < nmaps; i++) {
		err = bpf_map__set_pin_path(maps[i], NULL);
		if (err) {
			tc_fail(t, "set_pin_path(%s, NULL): %d",
				bpf_map__name(maps[i]), err);
			return -1;
		}
	}
	/* A small page array: the default would take 128 MiB per instance. */
	err = bpf_map__set_max_entries(e->skel->maps.stcp_pages, pages);
	if (err) {
		tc_fail(t, "set_max_entries(stcp_pages, %u): %d", pages, err);
		return -1;
	}
	/* BPF_PROG_RUN refuses devmap programs; loaded as a plain XDP
	 * program, stcp_devmap_tx runs on a descriptor like a clone would
	 * (tests/unit/data.c). */
	err = bpf_program__set_expected_attach_type(
		e->skel->progs.stcp_devmap_tx, BPF_XDP);
	if (err) {
		tc_fail(t, "set_expected_attach_type(stcp_devmap_tx): %d", err);
		return -1;
	}
	for (int i = 0; i < nmaps; i++)
		had_pin[i] = pin_exists(bpf_map__name(maps[i]));
	err = stcp_bpf__load(e->skel);
	if (err) {
		tc_fail(t, "stcp_bpf__load: %d (%s)", err, strerror(-err));
		return -1;
	}
	for (int i = 0; i < nmaps; i++) {
		if (bpf_map__pin_path(maps[i]) || bpf_map__is_pinned(maps[i]))
			tc_fail(t, "map %s is pinned at %s",
				bpf_map__name(maps[i]),
				bpf_map__pin_path(maps[i]) ?: "?");
		if (!had_pin[i] && pin_exists(bpf_map__name(maps[i])))
			tc_fail(t, "loading pinned %s under %s",
				bpf_map__name(maps[i]), LIBBPF_PIN_ROOT);
	}
	e->m.cfg = bpf_map__fd(e->skel->maps.stcp_cfg);
	e->m.keys = bpf_map__fd(e->skel->maps.stcp_keys);
	e->m.listen = bpf_map__fd(e->skel->maps.stcp_listen);
	e->m.counters = bpf_map__fd(e->skel->maps.stcp_counters);
	e->m.pages = bpf_map__fd(e->skel->maps.stcp_pages);
	e->m.resps = bpf_map__fd(e->skel->maps.stcp_resps);
	e->m.objects = bpf_map__fd(e->skel->maps.stcp_objects);
	e->prog_fd = bpf_program__fd(e->skel->progs.stcp_xdp);

	for (size_t i = 0; i < sizeof(listen) / sizeof(listen[0]); i++) {
		err = stcp_listen_parse(listen[i], &k);
		if (!err)
			err = stcp_listen_add(e->m.listen, &k);
		if (err) {
			tc_fail(t, "listen %s: %s", listen[i], strerror(-err));
			return -1;
		}
	}
	if (stcp_map_count_entries(e->m.listen) != 2)
		tc_fail(t, "stcp_listen has %d entries, expected 2",
			stcp_map_count_entries(e->m.listen));
	if (with_key) {
		struct stcp_cfg cfg;
		struct stcp_key key;
		uint32_t cur;

		err = unit_reset_key(e);
		if (err) {
			tc_fail(t, "stcp_keys_install: %s", strerror(-err));
			return -1;
		}
		err = stcp_cfg_read(e->m.cfg, &cfg);
		cur = cfg.key_cur & 1;
		if (err || bpf_map_lookup_elem(e->m.keys, &cur, &key) ||
		    !key.valid || key.k0 != UNIT_K0 || key.k1 != UNIT_K1)
			tc_fail(t, "installed key not current in stcp_keys");
		e->has_key = true;
	}
	return t->failures ? -1 : 0;
}

static void env_close(struct unit_env *e)
{
	stcp_bpf__destroy(e->skel);
	e->skel = NULL;
	e->prog_fd = -1;
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [--seed N] [--fuzz-count N] [--verbose]\n"
		"  --seed N        fuzz PRNG seed (default 0x%llx)\n"
		"  --fuzz-count N  fuzz packets (default %d, 0 skips)\n",
		argv0, (unsigned long long)DEFAULT_SEED, DEFAULT_FUZZ_COUNT);
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "seed", required_argument, NULL, 's' },
		{ "fuzz-count", required_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t seed = DEFAULT_SEED;
	long fuzz_count = DEFAULT_FUZZ_COUNT;
	struct tcase t;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "s:n:vh", lopts, NULL)) != -1) {
		switch (c) {
		case 's':
			errno = 0;
			seed = strtoull(optarg, &end, 0);
			if (errno || *end) {
				usage(argv[0]);
				return 2;
			}
			break;
		case 'n':
			errno = 0;
			fuzz_count = strtol(optarg, &end, 0);
			if (errno || *end || fuzz_count < 0) {
				usage(argv[0]);
				return 2;
			}
			break;
		case 'v':
			unit_verbose = true;
			break;
		default:
			usage(argv[0]);
			return c == 'h' ? 0 : 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	libbpf_set_print(libbpf_print);
	stcp_progname = "stcp_unit";

	memset(&t, 0, sizeof(t));
	t.name = "load stcp_xdp with private maps, listen on " UNIT_LISTEN_V4
		 " and " UNIT_LISTEN_V6 ", known key installed";
	env_open(&unit_main, true, UNIT_MAIN_PAGES, &t);
	tc_report(&t);
	memset(&t, 0, sizeof(t));
	t.name = "load a second instance with no key";
	env_open(&unit_nokey, false, UNIT_NOKEY_PAGES, &t);
	tc_report(&t);
	if (unit_main.prog_fd < 0 || unit_nokey.prog_fd < 0) {
		printf("# cannot load the program, stopping\n");
		printf("%d passed, %d failed\n", n_passed, n_failed);
		return 1;
	}

	cases_run_all();
	cache_run_all();
	http_run_all(seed);
	data_run_all();

	if (fuzz_count > 0) {
		char name[128];

		snprintf(name, sizeof(name), "fuzz: %ld packets, seed 0x%llx",
			 fuzz_count, (unsigned long long)seed);
		memset(&t, 0, sizeof(t));
		t.name = name;
		printf("# fuzz seed 0x%llx (rerun: %s --seed 0x%llx "
		       "--fuzz-count %ld)\n",
		       (unsigned long long)seed, argv[0],
		       (unsigned long long)seed, fuzz_count);
		fuzz_run(seed, fuzz_count, &t);
		tc_report(&t);
	}

	env_close(&unit_nokey);
	env_close(&unit_main);
	printf("%d passed, %d failed\n", n_passed, n_failed);
	return n_failed ? 1 : 0;
}
