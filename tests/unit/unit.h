/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The unit runner's harness: one loaded instance of stcp_xdp with its own
 * (unpinned) maps, a way to run one frame through it and see the verdict,
 * the output frame and the counter deltas, and TAP-like reporting.
 */
#ifndef STCP_TEST_UNIT_H
#define STCP_TEST_UNIT_H

#include <stdbool.h>
#include <stdint.h>

#include "../../daemon/common.h"
#include "stcp_cookie.h"
#include "pkt.h"

/* The service addresses every instance listens on. */
#define UNIT_LISTEN_V4 "198.18.0.1:80"
#define UNIT_LISTEN_V6 "[2001:db8::1]:80"
#define UNIT_SVC_V4    "198.18.0.1"
#define UNIT_SVC_V6    "2001:db8::1"
#define UNIT_CLI_V4    "198.51.100.7"
#define UNIT_CLI_V6    "2001:db8:ffff::7"
#define UNIT_SVC_PORT  80

/* stcp_pages sizes of the two instances (the content cache cases use
 * them: the main one for a tree, the other for a cache that is too small). */
#define UNIT_MAIN_PAGES  2048
#define UNIT_NOKEY_PAGES 64

/* The known key the main instance runs with. */
#define UNIT_K0 0x0706050403020100ULL
#define UNIT_K1 0x0f0e0d0c0b0a0908ULL

struct unit_env {
	const char *name;
	struct stcp_bpf *skel;
	int prog_fd;
	struct stcp_maps m;
	bool has_key;
};

extern struct unit_env unit_main;  /* keyed with UNIT_K0/UNIT_K1 */
extern struct unit_env unit_nokey; /* listens, but no key installed */
extern bool unit_verbose;

/* One run of the program on one frame. */
struct unit_run {
	int err; /* from bpf_prog_test_run_opts, 0 or -errno */
	uint32_t verdict;
	uint8_t out[PKT_MAX_FRAME];
	uint32_t out_len;
	uint64_t delta[STCP_C_MAX]; /* counters after minus before */
	uint32_t tick_before, tick_after;
};

/* The coarse clock the program uses: TAI ns >> STCP_CLOCK_SHIFT. */
uint32_t unit_tick(void);

/* Runs with counters read around the run. Returns 0 or -errno. */
int unit_run_frame(struct unit_env *e, const uint8_t *in, size_t len,
		   struct unit_run *r);
/* Just the run, for the fuzz: no counter reads. */
int unit_run_fast(struct unit_env *e, const uint8_t *in, size_t len,
		  uint32_t *verdict, uint8_t *out, uint32_t *out_len);
int unit_counters(struct unit_env *e, uint64_t *out);

/* Puts the known key back as current (after rotations). */
int unit_reset_key(struct unit_env *e);

/* The flow the program derives from a frame built from s. */
void unit_flow_of(const struct pkt_spec *s, struct stcp_flow *f);
/* Our cookie for that flow: the ISN and, with timestamps, the SYN-ACK's
 * TSval (include/stcp_cookie.h has the layouts). */
uint32_t unit_isn(const struct stcp_flow *f, uint32_t cisn, uint32_t tick,
		  uint32_t opts, bool has_ts, uint32_t *synack_tsval);

/* Failure reasons are collected per case; the first one is reported. */
struct tcase {
	const char *name;
	int failures;
	char why[1024];
};

void tc_fail(struct tcase *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define EXPECT(t, cond, ...)                                                   \
	do {                                                                   \
		if (!(cond))                                                   \
			tc_fail((t), __VA_ARGS__);                             \
	} while (0)

/* Prints "ok - name" or "not ok - name: reason" and counts the case. */
void tc_report(struct tcase *t);

/*
 * Checks the delta vector: RX +1, exactly one disposition slot +1 and it is
 * disp, the emitted-frame slot tx +1 (tx < 0: nothing emitted), all other
 * slots unchanged.
 */
void expect_counters(struct tcase *t, const struct unit_run *r, int disp,
		     int tx);
const char *verdict_name(uint32_t v);

/* The case groups. */
void cases_run_all(void);
/* The content cache loader against the instances' maps (cache.c). */
void cache_run_all(void);
/* The HTTP request parser (bpf/http.h) through its own test program, with
 * a 20,000-request fuzz from seed (http.c). */
void http_run_all(uint64_t seed);
void data_run_all(void);
/* Returns the number of violations; prints the breakdown. */
int fuzz_run(uint64_t seed, long count, struct tcase *t);

#endif /* STCP_TEST_UNIT_H */
