/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Multi-segment emission (docs/PROTOCOL.md 7): what the fast path decides
 * on an ACK and how the copies that carry it are described.
 *
 * stcp_xdp turns the arriving frame into one struct stcp_tx_desc (nothing
 * else: the frame is exactly the descriptor) and broadcasts it through the
 * smallest of stcp_tx_dm1..64 with at least nseg slots besides the last.
 * Each copy runs stcp_devmap_tx, which numbers the copies of one broadcast
 * on its CPU (the copies of a broadcast are run in order, on the CPU that
 * broadcast it, before the next NAPI poll) and builds the k-th segment of
 * the ranges listed; copies past nseg drop themselves.
 *
 * The original frame comes last and has no room for a segment. It becomes
 * a small frame that no host accepts (our own MAC as destination, a local
 * experimental EtherType): the devmap code signals the device to transmit
 * only if the last program run of a flush passed a frame, so without it the
 * segments could sit in the device's queue until the next packet.
 *
 * Everything a segment's bytes depend on is in the descriptor or the
 * content cache, so a segment for a given offset is the same whichever ACK
 * released it: a retransmission never changes a byte.
 */
#ifndef STCP_TX_H
#define STCP_TX_H

#include "stcp_types.h"

#define STCP_TX_MAGIC 0x73747832u /* "stx2" */
/* Most segments one ACK releases (a power of two: one devmap per size). */
#define STCP_TX_MAX_SEGS 64
/* Segment ranges one descriptor lists: SACK holes, then new data. */
#define STCP_TX_RANGES 4

/* The newest SACK block is young up to this many segments (section 7.4):
 * at most this many copies of a hole for a client that ACKs every arrival. */
#define STCP_SACK_YOUNG 16

/* Congestion schedule, in segments of the response (section 7.3). */
#define STCP_IW 10	    /* initial window, RFC 6928 */
#define STCP_CWND_CAP 64 /* under 512 KB in flight (PAWS) and under the
			    * 256 frames of a veth ring */
/*
 * Nothing is sent further than this above the client's ACK point. The
 * client's ts_recent can be the TSval of the segment that filled a hole at
 * its old ACK point, while what it holds out of order makes the new ACK
 * point jump: with at most this span out of order, and this span again
 * sent above the new point, our TSvals stay within the 512 KB over which
 * the position field compares in serial order (PAWS, fact 3). Without it,
 * a long SACK recovery in a large window sent segments the client dropped
 * as PAWS-old, answering each with the duplicate ACK that released them
 * again.
 */
#define STCP_PAWS_SPAN (192 * 1024)
/* Request bytes every segment of a multi-segment response leaves
 * unacknowledged (stcp_ack_lag()): the CRLF that ends every request we
 * answer. When the client's timer resends them together with its next
 * request (Linux collapses the two into one segment), the next request
 * arrives after an empty line, which HTTP/1.1 servers skip (RFC 9112 2.2),
 * so nothing of the request before it is mistaken for it. */
#define STCP_ACK_LAG 2

#define STCP_TX_F_CLOSE 0x1u /* the last segment carries our FIN */
/* The burst that answers a request acknowledges none of it (req_end is
 * then the request's first byte): if its first segment is lost, the client
 * can only resend the whole request, which the handshake cookie still
 * validates; later segments would leave it resending a tail that names no
 * response. */
#define STCP_TX_F_ACK_NONE 0x2u
/* The client sent no timestamps: segments carry no TCP option, and a
 * segment holds the whole MSS (docs/PROTOCOL.md 7.11). */
#define STCP_TX_F_NO_TS 0x4u

/* The flush frame (see above): EtherType 0x88B5, IEEE 802 local
 * experimental, and the minimum Ethernet length. */
#define STCP_TX_KICK_ETHERTYPE 0x88b5
#define STCP_TX_KICK_LEN 60

struct stcp_tx_desc {
	__u32 magic;
	__u32 tag; /* numbers broadcasts per CPU, so copies can count */
	__u8 eth_dst[6];
	__u8 eth_src[6];
	__u8 family; /* STCP_AF_INET or STCP_AF_INET6 */
	__u8 nseg;   /* segments in the ranges, 1..STCP_TX_MAX_SEGS */
	__u8 flags;  /* STCP_TX_F_* */
	__u8 ncopies; /* clones the broadcast makes; the original follows */
	__be16 sport; /* ours */
	__be16 dport; /* the client's */
	__be32 saddr[4];
	__be32 daddr[4];
	__u32 isn1;	/* sequence number of response byte 0 */
	__u32 req_end;	/* client sequence number after its request (+FIN) */
	__u32 tsecr;	/* the client's TSval, echoed */
	__u32 ts_low;	/* data TSval without position and offset bits */
	__u32 seg_size; /* payload bytes per segment */
	__u32 nsegs;	/* segments in the whole response */
	__u32 total;	/* response bytes */
	__u32 hdr_page;
	__u32 hdr_len;
	__u32 body_page;
	/* Body page i is page body_page + (i & body_mask): ~0 but for a
	 * windowed body (include/stcp_cache.h), whose ring pages are
	 * checked against stcp_page_tags around the copy. */
	__u32 body_mask;
	__u16 window; /* ours, unscaled */
	__u8 nranges; /* entries of first[] and count[] in use */
	__u8 pad;
	/* Segments [first[i], first[i] + count[i]) of the response. */
	__u32 first[STCP_TX_RANGES];
	__u32 count[STCP_TX_RANGES];
};

/* Per CPU: the broadcast tag stcp_xdp issued last, and how far
 * stcp_devmap_tx has numbered the copies of the tag it saw last. */
struct stcp_tx_state {
	__u32 tag;
	__u32 seen;
	__u32 k;
	__u32 pad;
};

/* Congestion window after k segments have been acknowledged: slow start
 * from STCP_IW (one more segment per segment acked), capped. */
STCP_INLINE __u32 stcp_cwnd(__u32 k)
{
	__u32 w = STCP_IW + k;

	return w < STCP_CWND_CAP ? w : STCP_CWND_CAP;
}

/* Everything released once segment k is acknowledged: f(k) of section 7.3. */
STCP_INLINE __u32 stcp_release_end(__u32 k, __u32 nsegs)
{
	__u32 f = k + stcp_cwnd(k);

	return f < nsegs ? f : nsegs;
}

/*
 * Request bytes every segment of an nsegs-segment response leaves
 * unacknowledged, so that the client's retransmission timer keeps running
 * until it has the whole response (when it acknowledges that, or sends its
 * FIN, a pure ACK of the rest answers). A one-segment response
 * acknowledges all. The same for every segment: acknowledging a part of
 * the bytes the timer resends does not reset its backoff (Linux resets it
 * on an RTT sample, which needs a whole skb acknowledged), so there is
 * nothing to gain by spending them.
 */
STCP_INLINE __u32 stcp_ack_lag(__u32 nsegs)
{
	return nsegs < 2 ? 0 : STCP_ACK_LAG;
}

/* The ACK number every segment of the descriptor carries. */
STCP_INLINE __u32 stcp_seg_ack(const struct stcp_tx_desc *d)
{
	if (d->flags & STCP_TX_F_ACK_NONE)
		return d->req_end;
	return d->req_end - stcp_ack_lag(d->nsegs);
}

#endif /* STCP_TX_H */
