/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Test packets: a builder for Ethernet + IPv4 (with options and fragment
 * fields) or IPv6 (with extension headers) + TCP, and the parsing and
 * checking helpers the unit runner and the benchmark use on the output of
 * the XDP program. Addresses are kept in network order, as in
 * struct stcp_flow; ports, sequence numbers and the like in host order.
 */
#ifndef STCP_TEST_PKT_H
#define STCP_TEST_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PKT_ETH_P_IP   0x0800
#define PKT_ETH_P_IPV6 0x86dd
#define PKT_ETH_P_ARP  0x0806

#define PKT_IPPROTO_HOPOPTS  0
#define PKT_IPPROTO_ICMP     1
#define PKT_IPPROTO_TCP	     6
#define PKT_IPPROTO_UDP	     17
#define PKT_IPPROTO_ROUTING  43
#define PKT_IPPROTO_FRAGMENT 44
#define PKT_IPPROTO_ICMPV6   58
#define PKT_IPPROTO_DSTOPTS  60

#define PKT_IP_DF      0x4000
#define PKT_IP_MF      0x2000
#define PKT_IP_OFFMASK 0x1fff

#define PKT_TH_FIN 0x01
#define PKT_TH_SYN 0x02
#define PKT_TH_RST 0x04
#define PKT_TH_PSH 0x08
#define PKT_TH_ACK 0x10
#define PKT_TH_URG 0x20
#define PKT_TH_ECE 0x40
#define PKT_TH_CWR 0x80

#define PKT_TCPOPT_EOL	     0
#define PKT_TCPOPT_NOP	     1
#define PKT_TCPOPT_MSS	     2
#define PKT_TCPOPT_WS	     3
#define PKT_TCPOPT_SACK_PERM 4
#define PKT_TCPOPT_TS	     8

#define PKT_ETH_HLEN  14
#define PKT_IPV4_HLEN 20
#define PKT_IPV6_HLEN 40
#define PKT_TCP_HLEN  20

#define PKT_MAX_IPOPT	   40
#define PKT_MAX_TCPOPT	   40
#define PKT_MAX_EXTHDR	   6
#define PKT_MAX_EXTHDR_LEN 64
#define PKT_MAX_FRAME	   4096

/* One IPv6 extension header. For PKT_IPPROTO_FRAGMENT the builder writes
 * the 8 bytes from frag_off / frag_more / frag_id and ignores data. For the
 * others, data[] is the header without its first two bytes (next header and
 * length), padded by the builder with zeros to a multiple of 8 bytes. */
struct pkt_exthdr {
	uint8_t type;
	uint8_t len; /* bytes of data[] used */
	uint8_t data[PKT_MAX_EXTHDR_LEN - 2];
	uint16_t frag_off; /* in 8-byte units, 13 bits */
	bool frag_more;
	uint32_t frag_id;
};

struct pkt_spec {
	int family; /* 4 or 6 */
	uint8_t smac[6];
	uint8_t dmac[6];
	uint32_t saddr[4]; /* network order; IPv4 in [0] */
	uint32_t daddr[4];

	/* IPv4 */
	uint8_t tos;
	uint8_t ttl; /* 0 means 64 */
	uint16_t ip_id;
	uint16_t frag; /* flags and offset, host order: PKT_IP_MF | off/8 */
	uint8_t ipopt[PKT_MAX_IPOPT]; /* padded with EOL to 4 bytes */
	size_t ipopt_len;
	uint8_t ip_proto; /* 0 means TCP; otherwise the L4 is l4_raw */

	/* IPv6 */
	uint32_t flow_label;
	struct pkt_exthdr ext[PKT_MAX_EXTHDR];
	int n_ext;

	/* TCP */
	uint16_t sport;
	uint16_t dport;
	uint32_t seq;
	uint32_t ack;
	uint8_t flags;
	uint16_t window; /* used as given, 0 included */
	uint16_t urg_ptr;
	uint8_t tcpopt[PKT_MAX_TCPOPT]; /* padded with EOL to 4 bytes */
	size_t tcpopt_len;
	const uint8_t *payload;
	size_t payload_len;

	/* Non-TCP L4 (ip_proto != TCP): raw bytes after the IP header(s). */
	const uint8_t *l4_raw;
	size_t l4_raw_len;

	/* Deliberate damage. */
	bool bad_ip_csum;
	bool bad_tcp_csum;
	int doff_words; /* 0: computed; else written as is (4 bits) */
	int ip_len;	/* -1 or 0: computed; else IPv4 tot_len / IPv6 plen */
	int ihl_words;	/* 0: computed; else written as is (4 bits) */
	size_t trailer; /* zero bytes after the IP datagram (Ethernet pad) */
};

/* A spec with the test's default MACs, TTL and window, for family 4 or 6. */
void pkt_spec_init(struct pkt_spec *s, int family);
void pkt_set_addr(uint32_t addr[4], int family, const char *text);

/* Appends TCP options to s->tcpopt. Return 0, or -1 if they do not fit. */
int pkt_opt_bytes(struct pkt_spec *s, const uint8_t *b, size_t n);
int pkt_opt_nop(struct pkt_spec *s);
int pkt_opt_mss(struct pkt_spec *s, uint16_t mss);
int pkt_opt_ws(struct pkt_spec *s, uint8_t shift);
int pkt_opt_sack_perm(struct pkt_spec *s);
int pkt_opt_ts(struct pkt_spec *s, uint32_t tsval, uint32_t tsecr);
/* What Linux sends in a SYN: MSS, SACK_PERM, TS, NOP, WS (20 bytes). */
int pkt_opt_linux_syn(struct pkt_spec *s, uint16_t mss, uint32_t tsval,
		      uint8_t wscale);
/* What Linux sends after the handshake: NOP, NOP, TS (12 bytes). */
int pkt_opt_linux_ts(struct pkt_spec *s, uint32_t tsval, uint32_t tsecr);
/* NOP NOP SACK with nblocks blocks (left, right edge pairs), appended. */
int pkt_opt_sack(struct pkt_spec *s, const uint32_t *edges, int nblocks);

/* Adds an IPv6 extension header: hop-by-hop / destination options with
 * padn_len bytes of PadN option, or a fragment header. */
int pkt_ext_opts(struct pkt_spec *s, uint8_t type, size_t padn_len);
int pkt_ext_frag(struct pkt_spec *s, uint16_t off_units, bool more,
		 uint32_t id);

/* Writes the frame; returns its length, or 0 if cap is too small. */
size_t pkt_build(const struct pkt_spec *s, uint8_t *buf, size_t cap);

/* Internet checksum helpers. pkt_csum_add() sums 16-bit big-endian words
 * (only the last chunk may be odd); pkt_csum_fold() folds and complements.
 * The pkt_tcp_csum_*() return the folded complement over pseudo-header and
 * segment as they are: 0 for a segment carrying a valid checksum, or the
 * value to store when its checksum field is zero. */
uint32_t pkt_csum_add(uint32_t sum, const void *data, size_t len);
uint16_t pkt_csum_fold(uint32_t sum);
/* True if the IPv4 header at ip (ihl from the header) sums to 0xffff. */
bool pkt_ipv4_csum_ok(const uint8_t *ip, size_t avail);
uint16_t pkt_tcp_csum_v4(const uint32_t saddr, const uint32_t daddr,
			 const uint8_t *tcp, size_t len);
uint16_t pkt_tcp_csum_v6(const uint32_t saddr[4], const uint32_t daddr[4],
			 const uint8_t *tcp, size_t len);

/* TCP options, parsed the way Linux tcp_parse_options() does for a SYN. */
struct pkt_tcpopts {
	bool has_mss, has_ws, sack_perm, has_ts;
	uint16_t mss;
	uint8_t ws;
	uint32_t tsval, tsecr;
	bool stopped_early; /* a malformed length ended the walk */
};

void pkt_parse_tcpopts(const uint8_t *opt, size_t len, struct pkt_tcpopts *o);

/*
 * A frame parsed strictly, as a reply must be: Ethernet, then IPv4 (any ihl)
 * or IPv6 (no extension headers), then TCP; the IP length must cover exactly
 * the rest of the frame, doff must fit. Fields in host order except
 * addresses.
 */
struct pkt_view {
	int family;
	size_t frame_len;
	uint8_t dmac[6], smac[6];
	uint16_t ethertype;
	size_t l3_off, l4_off, l4_len;
	/* IPv4 */
	uint8_t ihl, tos, ttl, proto;
	uint16_t tot_len, ip_id, frag;
	bool ip_csum_ok;
	/* IPv6 */
	uint32_t vtcfl; /* version, class, label */
	uint16_t plen;
	uint8_t nexthdr, hop_limit;
	uint32_t saddr[4], daddr[4];
	/* TCP */
	uint16_t sport, dport, window, urg_ptr, check;
	uint32_t seq, ack;
	uint8_t doff, flags, res; /* res: the 4 reserved bits */
	const uint8_t *opt;
	size_t opt_len;
	size_t payload_len;
	bool tcp_csum_ok;
};

/* Returns 0, or -1 with a reason in why. */
int pkt_parse(const uint8_t *buf, size_t len, struct pkt_view *v, char *why,
	      size_t why_len);

void pkt_hexdump(const char *title, const uint8_t *buf, size_t len);
void pkt_hex_line(const uint8_t *buf, size_t len, char *out, size_t out_len);

#endif /* STCP_TEST_PKT_H */
