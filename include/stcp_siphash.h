/* SPDX-License-Identifier: GPL-2.0 */
/*
 * SipHash-2-4 over a fixed number of 64-bit words, written once for both the
 * XDP program and userspace (tests forge and check cookies with the very same
 * code). The message is a whole number of little-endian words, so the final
 * block is just the length byte, as in the reference for 8*n-byte inputs.
 */
#ifndef STCP_SIPHASH_H
#define STCP_SIPHASH_H

#include "stcp_types.h"

#define STCP_ROTL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

struct stcp_sip {
	__u64 v0, v1, v2, v3;
};

STCP_INLINE void stcp_sipround(struct stcp_sip *s)
{
	s->v0 += s->v1;
	s->v1 = STCP_ROTL64(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = STCP_ROTL64(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = STCP_ROTL64(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = STCP_ROTL64(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = STCP_ROTL64(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = STCP_ROTL64(s->v2, 32);
}

STCP_INLINE void stcp_sip_init(struct stcp_sip *s, __u64 k0, __u64 k1)
{
	s->v0 = k0 ^ 0x736f6d6570736575ULL;
	s->v1 = k1 ^ 0x646f72616e646f6dULL;
	s->v2 = k0 ^ 0x6c7967656e657261ULL;
	s->v3 = k1 ^ 0x7465646279746573ULL;
}

STCP_INLINE void stcp_sip_word(struct stcp_sip *s, __u64 m)
{
	s->v3 ^= m;
	stcp_sipround(s);
	stcp_sipround(s);
	s->v0 ^= m;
}

/* nwords is the message length in 64-bit words (at most 31). */
STCP_INLINE __u64 stcp_sip_final(struct stcp_sip *s, __u32 nwords)
{
	__u64 b = ((__u64)(nwords * 8) & 0xff) << 56;

	stcp_sip_word(s, b);
	s->v2 ^= 0xff;
	stcp_sipround(s);
	stcp_sipround(s);
	stcp_sipround(s);
	stcp_sipround(s);
	return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

#endif /* STCP_SIPHASH_H */
