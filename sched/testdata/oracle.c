/*
 * oracle.c: an independent oracle for gvs's dh, sh, mh and twos schedulers
 * and the hash functions they share with lblc and lblcr.
 *
 * It transcribes the kernel's code (a 7.0-rc tree, intel-lab-lkp/linux at
 * 93f538aac92e; the same logic as Linux 6.2+) into user space, keeping the
 * kernel's list handling (struct list_head, list_add at the head,
 * list_entry walks) so that list order decides exactly as in the kernel:
 *
 *   include/linux/hash.h        hash_32, GOLDEN_RATIO_32
 *   include/linux/siphash.h     SIPHASH_PERMUTATION, SIPHASH_CONST_*
 *   lib/siphash.c               __hsiphash_unaligned, BITS_PER_LONG == 64
 *                               branch (SipHash-1-3), without
 *                               CONFIG_DCACHE_WORD_ACCESS (same result)
 *   net/netfilter/ipvs/ip_vs_dh.c    ip_vs_dh_hashkey, ip_vs_dh_reassign,
 *                                    ip_vs_dh_schedule
 *   net/netfilter/ipvs/ip_vs_sh.c    ip_vs_sh_hashkey, ip_vs_sh_reassign,
 *                                    ip_vs_sh_get, ip_vs_sh_get_fallback,
 *                                    ip_vs_sh_get_port, ip_vs_sh_schedule
 *   net/netfilter/ipvs/ip_vs_mh.c    generate_hash_secret, ip_vs_mh_hashkey,
 *                                    ip_vs_mh_permutate, ip_vs_mh_populate,
 *                                    ip_vs_mh_get(_fallback),
 *                                    ip_vs_mh_gcd_weight,
 *                                    ip_vs_mh_shift_weight
 *   net/netfilter/ipvs/ip_vs_twos.c  ip_vs_twos_schedule
 *   drivers/char/random.c            __get_random_u32_below
 *   net/netfilter/ipvs/ip_vs_ctl.c   __ip_vs_update_dest (last_weight,
 *                                    list_add_rcu at the head, add_dest /
 *                                    upd_dest hooks), __ip_vs_unlink_dest
 *
 * It shares no code with the Go package. Regenerate the vectors with
 *
 *   gcc -O2 -Wall -o /tmp/gvs-oracle sched/testdata/oracle.c &&
 *     /tmp/gvs-oracle > sched/testdata/kernel_vectors.txt
 *
 * (from the repository root). The tests only read kernel_vectors.txt.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef u32 __be32;
typedef u16 __be16;

/* ---- include/linux/list.h (the parts used) ---- */
struct list_head { struct list_head *next, *prev; };
#define LIST_HEAD_INIT(name) { &(name), &(name) }
static void INIT_LIST_HEAD(struct list_head *l) { l->next = l; l->prev = l; }
static void __list_add(struct list_head *n, struct list_head *prev, struct list_head *next)
{
	next->prev = n; n->next = next; n->prev = prev; prev->next = n;
}
static void list_add(struct list_head *n, struct list_head *head) { __list_add(n, head, head->next); }
static void list_del(struct list_head *e) { e->next->prev = e->prev; e->prev->next = e->next; }
static int list_empty(const struct list_head *h) { return h->next == h; }
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define list_entry(ptr, type, member) container_of(ptr, type, member)
#define list_for_each_entry(pos, head, member) \
	for (pos = list_entry((head)->next, __typeof__(*pos), member); \
	     &pos->member != (head); \
	     pos = list_entry(pos->member.next, __typeof__(*pos), member))

/* ---- include/linux/hash.h ---- */
#define GOLDEN_RATIO_32 0x61C88647
static u32 hash_32(u32 val, unsigned int bits) { return (u32)(val * GOLDEN_RATIO_32) >> (32 - bits); }

/* ---- include/linux/siphash.h, lib/siphash.c (BITS_PER_LONG == 64) ---- */
typedef struct { unsigned long key[2]; } hsiphash_key_t;
static u64 rol64(u64 w, unsigned s) { return (w << s) | (w >> (64 - s)); }
#define SIPHASH_PERMUTATION(a, b, c, d) ( \
	(a) += (b), (b) = rol64((b), 13), (b) ^= (a), (a) = rol64((a), 32), \
	(c) += (d), (d) = rol64((d), 16), (d) ^= (c), \
	(a) += (d), (d) = rol64((d), 21), (d) ^= (a), \
	(c) += (b), (b) = rol64((b), 17), (b) ^= (c), (c) = rol64((c), 32))
#define SIPHASH_CONST_0 0x736f6d6570736575ULL
#define SIPHASH_CONST_1 0x646f72616e646f6dULL
#define SIPHASH_CONST_2 0x6c7967656e657261ULL
#define SIPHASH_CONST_3 0x7465646279746573ULL
#define SIPROUND SIPHASH_PERMUTATION(v0, v1, v2, v3)
#define HSIPROUND SIPROUND
#define PREAMBLE(len) \
	u64 v0 = SIPHASH_CONST_0; \
	u64 v1 = SIPHASH_CONST_1; \
	u64 v2 = SIPHASH_CONST_2; \
	u64 v3 = SIPHASH_CONST_3; \
	u64 b = ((u64)(len)) << 56; \
	v3 ^= key->key[1]; \
	v2 ^= key->key[0]; \
	v1 ^= key->key[1]; \
	v0 ^= key->key[0];
#define HPREAMBLE(len) PREAMBLE(len)
#define HPOSTAMBLE \
	v3 ^= b; \
	HSIPROUND; \
	v0 ^= b; \
	v2 ^= 0xff; \
	HSIPROUND; \
	HSIPROUND; \
	HSIPROUND; \
	return (v0 ^ v1) ^ (v2 ^ v3);
static u64 get_unaligned_le64(const u8 *p) { u64 v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }
static u32 get_unaligned_le32(const u8 *p) { return p[0] | p[1] << 8 | p[2] << 16 | (u32)p[3] << 24; }
static u16 get_unaligned_le16(const u8 *p) { return p[0] | p[1] << 8; }
static u32 __hsiphash_unaligned(const void *vdata, size_t len, const hsiphash_key_t *key)
{
	const u8 *data = vdata;
	const u8 *end = data + len - (len % sizeof(u64));
	const u8 left = len & (sizeof(u64) - 1);
	u64 m;
	HPREAMBLE(len)
	for (; data != end; data += sizeof(u64)) {
		m = get_unaligned_le64(data);
		v3 ^= m;
		HSIPROUND;
		v0 ^= m;
	}
	switch (left) {
	case 7: b |= ((u64)end[6]) << 48; /* fallthrough */
	case 6: b |= ((u64)end[5]) << 40; /* fallthrough */
	case 5: b |= ((u64)end[4]) << 32; /* fallthrough */
	case 4: b |= get_unaligned_le32(end); break;
	case 3: b |= ((u64)end[2]) << 16; /* fallthrough */
	case 2: b |= get_unaligned_le16(end); break;
	case 1: b |= end[0];
	}
	HPOSTAMBLE
}
static u32 hsiphash(const void *data, size_t len, const hsiphash_key_t *key)
{
	return __hsiphash_unaligned(data, len, key);
}

/* ---- include/net/ip_vs.h (the parts used) ---- */
union nf_inet_addr { __be32 ip; __be32 ip6[4]; u8 all[16]; };
#define AF_INET_ 2
#define AF_INET6_ 10
struct ip_vs_dest {
	struct list_head n_list;
	char name;		/* the test's name for the server */
	int af;
	union nf_inet_addr addr;
	__be16 port;
	int weight, last_weight;
	int overloaded;		/* IP_VS_DEST_FL_OVERLOAD */
	int activeconns, inactconns;
};
struct ip_vs_service {
	struct list_head destinations;
	int num_dests;
	int af;
	unsigned flags;
	void *sched_data;
};
#define IP_VS_SVC_F_SCHED1 0x0008
#define IP_VS_SVC_F_SCHED2 0x0010
#define IP_VS_SVC_F_SCHED_SH_FALLBACK IP_VS_SVC_F_SCHED1
#define IP_VS_SVC_F_SCHED_SH_PORT IP_VS_SVC_F_SCHED2
#define IP_VS_SVC_F_SCHED_MH_FALLBACK IP_VS_SVC_F_SCHED1
#define IP_VS_SVC_F_SCHED_MH_PORT IP_VS_SVC_F_SCHED2
static int ip_vs_dest_conn_overhead(struct ip_vs_dest *dest)
{
	return (dest->activeconns << 8) + dest->inactconns;
}
/* The packet's addresses as ip_vs_schedule sees them. */
struct ip_vs_iphdr {
	union nf_inet_addr saddr, daddr;
	int protocol;
	__be16 sport, dport;
};

/* ---- ip_vs_dh.c ---- */
#define IP_VS_DH_TAB_BITS 8
#define IP_VS_DH_TAB_SIZE (1 << IP_VS_DH_TAB_BITS)
struct ip_vs_dh_state { struct ip_vs_dest *buckets[IP_VS_DH_TAB_SIZE]; };
static unsigned int ip_vs_dh_hashkey(int af, const union nf_inet_addr *addr)
{
	__be32 addr_fold = addr->ip;
	if (af == AF_INET6_)
		addr_fold = addr->ip6[0]^addr->ip6[1]^addr->ip6[2]^addr->ip6[3];
	return hash_32(ntohl(addr_fold), IP_VS_DH_TAB_BITS);
}
static void ip_vs_dh_reassign(struct ip_vs_dh_state *s, struct ip_vs_service *svc)
{
	int i;
	struct list_head *p = &svc->destinations;
	int empty = list_empty(p);
	for (i = 0; i < IP_VS_DH_TAB_SIZE; i++) {
		if (empty)
			s->buckets[i] = NULL;
		else {
			if (p == &svc->destinations)
				p = p->next;
			s->buckets[i] = list_entry(p, struct ip_vs_dest, n_list);
			p = p->next;
		}
	}
}
static struct ip_vs_dest *ip_vs_dh_schedule(struct ip_vs_service *svc, struct ip_vs_iphdr *iph)
{
	struct ip_vs_dh_state *s = svc->sched_data;
	struct ip_vs_dest *dest = s->buckets[ip_vs_dh_hashkey(svc->af, &iph->daddr)];
	if (!dest || dest->weight <= 0 || dest->overloaded)
		return NULL;
	return dest;
}

/* ---- ip_vs_sh.c ---- */
#define IP_VS_SH_TAB_BITS 8
#define IP_VS_SH_TAB_SIZE (1 << IP_VS_SH_TAB_BITS)
#define IP_VS_SH_TAB_MASK (IP_VS_SH_TAB_SIZE - 1)
struct ip_vs_sh_state { struct ip_vs_dest *buckets[IP_VS_SH_TAB_SIZE]; };
static int sh_is_unavailable(struct ip_vs_dest *dest) { return dest->weight <= 0 || dest->overloaded; }
static unsigned int ip_vs_sh_hashkey(int af, const union nf_inet_addr *addr, __be16 port, unsigned int offset)
{
	__be32 addr_fold = addr->ip;
	if (af == AF_INET6_)
		addr_fold = addr->ip6[0]^addr->ip6[1]^addr->ip6[2]^addr->ip6[3];
	return (offset + hash_32(ntohs(port) + ntohl(addr_fold), IP_VS_SH_TAB_BITS)) & IP_VS_SH_TAB_MASK;
}
static struct ip_vs_dest *ip_vs_sh_get(struct ip_vs_service *svc, struct ip_vs_sh_state *s,
				       const union nf_inet_addr *addr, __be16 port)
{
	unsigned int hash = ip_vs_sh_hashkey(svc->af, addr, port, 0);
	struct ip_vs_dest *dest = s->buckets[hash];
	return (!dest || sh_is_unavailable(dest)) ? NULL : dest;
}
static struct ip_vs_dest *ip_vs_sh_get_fallback(struct ip_vs_service *svc, struct ip_vs_sh_state *s,
						const union nf_inet_addr *addr, __be16 port)
{
	unsigned int offset, roffset, hash, ihash;
	struct ip_vs_dest *dest;
	ihash = ip_vs_sh_hashkey(svc->af, addr, port, 0);
	dest = s->buckets[ihash];
	if (!dest)
		return NULL;
	if (!sh_is_unavailable(dest))
		return dest;
	for (offset = 0; offset < IP_VS_SH_TAB_SIZE; offset++) {
		roffset = (offset + ihash) % IP_VS_SH_TAB_SIZE;
		hash = ip_vs_sh_hashkey(svc->af, addr, port, roffset);
		dest = s->buckets[hash];
		if (!dest)
			break;
		if (!sh_is_unavailable(dest))
			return dest;
	}
	return NULL;
}
static void ip_vs_sh_reassign(struct ip_vs_sh_state *s, struct ip_vs_service *svc)
{
	int i, d_count = 0;
	struct list_head *p = &svc->destinations;
	struct ip_vs_dest *dest;
	int empty = list_empty(p);
	for (i = 0; i < IP_VS_SH_TAB_SIZE; i++) {
		if (empty)
			s->buckets[i] = NULL;
		else {
			if (p == &svc->destinations)
				p = p->next;
			dest = list_entry(p, struct ip_vs_dest, n_list);
			s->buckets[i] = dest;
			if (++d_count >= dest->weight) {
				p = p->next;
				d_count = 0;
			}
		}
	}
}
static __be16 ip_vs_sh_get_port(struct ip_vs_iphdr *iph)
{
	switch (iph->protocol) {
	case 6: case 17: case 132:
		return iph->sport;
	default:
		return 0;
	}
}
static struct ip_vs_dest *ip_vs_sh_schedule(struct ip_vs_service *svc, struct ip_vs_iphdr *iph)
{
	__be16 port = 0;
	struct ip_vs_sh_state *s = svc->sched_data;
	if (svc->flags & IP_VS_SVC_F_SCHED_SH_PORT)
		port = ip_vs_sh_get_port(iph);
	if (svc->flags & IP_VS_SVC_F_SCHED_SH_FALLBACK)
		return ip_vs_sh_get_fallback(svc, s, &iph->saddr, port);
	return ip_vs_sh_get(svc, s, &iph->saddr, port);
}

/* ---- ip_vs_mh.c ---- */
static int primes[] = {251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071};
#define CONFIG_IP_VS_MH_TAB_INDEX 12
#define IP_VS_MH_TAB_BITS (CONFIG_IP_VS_MH_TAB_INDEX / 2)
#define IP_VS_MH_TAB_INDEX (CONFIG_IP_VS_MH_TAB_INDEX - 8)
#define IP_VS_MH_TAB_SIZE primes[IP_VS_MH_TAB_INDEX]
struct ip_vs_mh_dest_setup { unsigned int offset, skip, perm; int turns; };
struct ip_vs_mh_state {
	struct ip_vs_dest **lookup;
	struct ip_vs_mh_dest_setup *dest_setup;
	hsiphash_key_t hash1, hash2;
	int gcd, rshift;
};
static void generate_hash_secret(hsiphash_key_t *hash1, hsiphash_key_t *hash2)
{
	hash1->key[0] = 2654435761UL;
	hash1->key[1] = 2654435761UL;
	hash2->key[0] = 2654446892UL;
	hash2->key[1] = 2654446892UL;
}
static int mh_is_unavailable(struct ip_vs_dest *dest) { return dest->weight <= 0 || dest->overloaded; }
static unsigned int ip_vs_mh_hashkey(int af, const union nf_inet_addr *addr, __be16 port,
				     hsiphash_key_t *key, unsigned int offset)
{
	unsigned int v;
	__be32 addr_fold = addr->ip;
	if (af == AF_INET6_)
		addr_fold = addr->ip6[0] ^ addr->ip6[1] ^ addr->ip6[2] ^ addr->ip6[3];
	v = (offset + ntohs(port) + ntohl(addr_fold));
	return hsiphash(&v, sizeof(v), key);
}
static void ip_vs_mh_reset(struct ip_vs_mh_state *s)
{
	for (int i = 0; i < IP_VS_MH_TAB_SIZE; i++)
		s->lookup[i] = NULL;
}
static int ip_vs_mh_permutate(struct ip_vs_mh_state *s, struct ip_vs_service *svc)
{
	struct list_head *p;
	struct ip_vs_mh_dest_setup *ds;
	struct ip_vs_dest *dest;
	int lw;
	if (s->gcd < 1)
		return 0;
	p = &svc->destinations;
	ds = &s->dest_setup[0];
	while ((p = p->next) != &svc->destinations) {
		dest = list_entry(p, struct ip_vs_dest, n_list);
		ds->offset = ip_vs_mh_hashkey(svc->af, &dest->addr, dest->port, &s->hash1, 0) % IP_VS_MH_TAB_SIZE;
		ds->skip = ip_vs_mh_hashkey(svc->af, &dest->addr, dest->port, &s->hash2, 0) % (IP_VS_MH_TAB_SIZE - 1) + 1;
		ds->perm = ds->offset;
		lw = dest->last_weight;
		ds->turns = ((lw / s->gcd) >> s->rshift) ? : (lw != 0);
		ds++;
	}
	return 0;
}
static int test_bit(int nr, const unsigned long *addr) { return 1UL & (addr[nr / 64] >> (nr % 64)); }
static void __set_bit(int nr, unsigned long *addr) { addr[nr / 64] |= 1UL << (nr % 64); }
static int ip_vs_mh_populate(struct ip_vs_mh_state *s, struct ip_vs_service *svc)
{
	int n, c, dt_count;
	unsigned long *table;
	struct list_head *p;
	struct ip_vs_mh_dest_setup *ds;
	if (s->gcd < 1) {
		ip_vs_mh_reset(s);
		return 0;
	}
	table = calloc((IP_VS_MH_TAB_SIZE + 63) / 64, sizeof(unsigned long));
	p = &svc->destinations;
	n = 0;
	dt_count = 0;
	while (n < IP_VS_MH_TAB_SIZE) {
		if (p == &svc->destinations)
			p = p->next;
		ds = &s->dest_setup[0];
		while (p != &svc->destinations) {
			if (ds->turns < 1) {
				p = p->next;
				ds++;
				continue;
			}
			c = ds->perm;
			while (test_bit(c, table)) {
				ds->perm += ds->skip;
				if (ds->perm >= IP_VS_MH_TAB_SIZE)
					ds->perm -= IP_VS_MH_TAB_SIZE;
				c = ds->perm;
			}
			__set_bit(c, table);
			s->lookup[c] = list_entry(p, struct ip_vs_dest, n_list);
			if (++n == IP_VS_MH_TAB_SIZE)
				goto out;
			if (++dt_count >= ds->turns) {
				dt_count = 0;
				p = p->next;
				ds++;
			}
		}
	}
out:
	free(table);
	return 0;
}
static struct ip_vs_dest *ip_vs_mh_get(struct ip_vs_service *svc, struct ip_vs_mh_state *s,
				       const union nf_inet_addr *addr, __be16 port)
{
	unsigned int hash = ip_vs_mh_hashkey(svc->af, addr, port, &s->hash1, 0) % IP_VS_MH_TAB_SIZE;
	struct ip_vs_dest *dest = s->lookup[hash];
	return (!dest || mh_is_unavailable(dest)) ? NULL : dest;
}
static struct ip_vs_dest *ip_vs_mh_get_fallback(struct ip_vs_service *svc, struct ip_vs_mh_state *s,
						const union nf_inet_addr *addr, __be16 port)
{
	unsigned int offset, roffset, hash, ihash;
	struct ip_vs_dest *dest;
	ihash = ip_vs_mh_hashkey(svc->af, addr, port, &s->hash1, 0) % IP_VS_MH_TAB_SIZE;
	dest = s->lookup[ihash];
	if (!dest)
		return NULL;
	if (!mh_is_unavailable(dest))
		return dest;
	for (offset = 0; offset < IP_VS_MH_TAB_SIZE; offset++) {
		roffset = (offset + ihash) % IP_VS_MH_TAB_SIZE;
		hash = ip_vs_mh_hashkey(svc->af, addr, port, &s->hash1, roffset) % IP_VS_MH_TAB_SIZE;
		dest = s->lookup[hash];
		if (!dest)
			break;
		if (!mh_is_unavailable(dest))
			return dest;
	}
	return NULL;
}
static int ip_vs_mh_reassign(struct ip_vs_mh_state *s, struct ip_vs_service *svc)
{
	if (svc->num_dests > IP_VS_MH_TAB_SIZE)
		return -1;
	if (svc->num_dests >= 1)
		s->dest_setup = calloc(svc->num_dests, sizeof(struct ip_vs_mh_dest_setup));
	ip_vs_mh_permutate(s, svc);
	ip_vs_mh_populate(s, svc);
	if (svc->num_dests >= 1) {
		free(s->dest_setup);
		s->dest_setup = NULL;
	}
	return 0;
}
static int gcd(int a, int b) { while (b) { int t = a % b; a = b; b = t; } return a; }
static int ip_vs_mh_gcd_weight(struct ip_vs_service *svc)
{
	struct ip_vs_dest *dest;
	int weight, g = 0;
	list_for_each_entry(dest, &svc->destinations, n_list) {
		weight = dest->last_weight;
		if (weight > 0) {
			if (g > 0)
				g = gcd(weight, g);
			else
				g = weight;
		}
	}
	return g;
}
static int fls(unsigned x) { return x ? 32 - __builtin_clz(x) : 0; }
static int ip_vs_mh_shift_weight(struct ip_vs_service *svc, int gcd)
{
	struct ip_vs_dest *dest;
	int new_weight, weight = 0, mw, shift;
	if (gcd < 1)
		return 0;
	list_for_each_entry(dest, &svc->destinations, n_list) {
		new_weight = dest->last_weight;
		if (new_weight > weight)
			weight = new_weight;
	}
	mw = weight / gcd;
	shift = fls(mw) - IP_VS_MH_TAB_BITS;
	return (shift >= 0) ? shift : 0;
}
static void ip_vs_mh_init_svc(struct ip_vs_service *svc)
{
	struct ip_vs_mh_state *s = calloc(1, sizeof(*s));
	s->lookup = calloc(IP_VS_MH_TAB_SIZE, sizeof(*s->lookup));
	generate_hash_secret(&s->hash1, &s->hash2);
	s->gcd = ip_vs_mh_gcd_weight(svc);
	s->rshift = ip_vs_mh_shift_weight(svc, s->gcd);
	ip_vs_mh_reassign(s, svc);
	svc->sched_data = s;
}
static void ip_vs_mh_dest_changed(struct ip_vs_service *svc)
{
	struct ip_vs_mh_state *s = svc->sched_data;
	s->gcd = ip_vs_mh_gcd_weight(svc);
	s->rshift = ip_vs_mh_shift_weight(svc, s->gcd);
	ip_vs_mh_reassign(s, svc);
}
static __be16 ip_vs_mh_get_port(struct ip_vs_iphdr *iph) { return ip_vs_sh_get_port(iph); }
static struct ip_vs_dest *ip_vs_mh_schedule(struct ip_vs_service *svc, struct ip_vs_iphdr *iph)
{
	__be16 port = 0;
	struct ip_vs_mh_state *s = svc->sched_data;
	if (svc->flags & IP_VS_SVC_F_SCHED_MH_PORT)
		port = ip_vs_mh_get_port(iph);
	if (svc->flags & IP_VS_SVC_F_SCHED_MH_FALLBACK)
		return ip_vs_mh_get_fallback(svc, s, &iph->saddr, port);
	return ip_vs_mh_get(svc, s, &iph->saddr, port);
}

/* ---- drivers/char/random.c, fed from a scripted stream ---- */
static const u32 *rand_stream;
static int rand_pos, rand_len;
static u32 get_random_u32(void)
{
	if (rand_pos >= rand_len) {
		fprintf(stderr, "random stream exhausted\n");
		exit(1);
	}
	return rand_stream[rand_pos++];
}
static u32 __get_random_u32_below(u32 ceil)
{
	u32 rand = get_random_u32();
	u64 mult;
	if (!ceil)
		return rand;
	mult = (u64)ceil * rand;
	if ((u32)mult < ceil) {
		u32 bound = -ceil % ceil;
		while ((u32)mult < bound)
			mult = (u64)ceil * get_random_u32();
	}
	return mult >> 32;
}

/* ---- ip_vs_twos.c ---- */
static struct ip_vs_dest *ip_vs_twos_schedule(struct ip_vs_service *svc)
{
	struct ip_vs_dest *dest, *choice1 = NULL, *choice2 = NULL;
	int rweight1, rweight2, weight1 = -1, weight2 = -1, overhead1 = 0;
	int overhead2 = 0, total_weight = 0, weight;
	list_for_each_entry(dest, &svc->destinations, n_list) {
		if (!dest->overloaded) {
			weight = dest->weight;
			if (weight > 0) {
				total_weight += weight;
				choice1 = dest;
			}
		}
	}
	if (!choice1)
		return NULL;
	total_weight += 1;
	rweight1 = __get_random_u32_below(total_weight);
	rweight2 = __get_random_u32_below(total_weight);
	list_for_each_entry(dest, &svc->destinations, n_list) {
		if (dest->overloaded)
			continue;
		weight = dest->weight;
		if (weight <= 0)
			continue;
		rweight1 -= weight;
		rweight2 -= weight;
		if (rweight1 <= 0 && weight1 == -1) {
			choice1 = dest;
			weight1 = weight;
			overhead1 = ip_vs_dest_conn_overhead(dest);
		}
		if (rweight2 <= 0 && weight2 == -1) {
			choice2 = dest;
			weight2 = weight;
			overhead2 = ip_vs_dest_conn_overhead(dest);
		}
		if (weight1 != -1 && weight2 != -1)
			goto nextstage;
	}
nextstage:
	if (choice2 && (weight2 * overhead1) > (weight1 * overhead2))
		choice1 = choice2;
	return choice1;
}

/* ---- the scenario driver ---- */
enum { DH, SH, MH, TWOS };
static const char *sched_names[] = {"dh", "sh", "mh", "twos"};
static struct ip_vs_service svc;
static int kind;
static struct ip_vs_dest *dests[26];

static void parse_addr(const char *s, union nf_inet_addr *a, int *af)
{
	memset(a, 0, sizeof(*a));
	if (strchr(s, ':')) {
		inet_pton(10, s, a->all);
		*af = AF_INET6_;
	} else {
		inet_pton(2, s, &a->ip);
		*af = AF_INET_;
	}
}

static void hook_changed(void)
{
	switch (kind) {
	case DH: ip_vs_dh_reassign(svc.sched_data, &svc); break;
	case SH: ip_vs_sh_reassign(svc.sched_data, &svc); break;
	case MH: ip_vs_mh_dest_changed(&svc); break;
	}
}

static void begin(int k, const char *name, unsigned flags, int af)
{
	kind = k;
	memset(&svc, 0, sizeof(svc));
	INIT_LIST_HEAD(&svc.destinations);
	svc.af = af;
	svc.flags = flags;
	memset(dests, 0, sizeof(dests));
	switch (k) {
	case DH: svc.sched_data = calloc(1, sizeof(struct ip_vs_dh_state)); hook_changed(); break;
	case SH: svc.sched_data = calloc(1, sizeof(struct ip_vs_sh_state)); hook_changed(); break;
	case MH: ip_vs_mh_init_svc(&svc); break;
	}
	printf("scenario %s %s", sched_names[k], name);
	if (flags & IP_VS_SVC_F_SCHED1)
		printf(" %s-fallback", sched_names[k]);
	if (flags & IP_VS_SVC_F_SCHED2)
		printf(" %s-port", sched_names[k]);
	printf("\n");
}

/* ip_vs_add_dest -> __ip_vs_update_dest(add = 1) */
static void add(char name, const char *addr, int port, int weight)
{
	struct ip_vs_dest *d = calloc(1, sizeof(*d));
	d->name = name;
	parse_addr(addr, &d->addr, &d->af);
	d->port = htons(port);
	d->last_weight = weight; /* add: last_weight = weight, even 0 */
	d->weight = weight;
	list_add(&d->n_list, &svc.destinations);
	svc.num_dests++;
	dests[name - 'a'] = d;
	hook_changed();
	printf("add %c %s %d %d\n", name, addr, port, weight);
}

/* ip_vs_edit_dest -> __ip_vs_update_dest(add = 0) */
static void edit(char name, int weight)
{
	struct ip_vs_dest *d = dests[name - 'a'];
	if (weight != 0)
		d->last_weight = weight;
	d->weight = weight;
	hook_changed(); /* upd_dest: sh and mh; dh has none, but its table ignores weights */
	printf("edit %c %d\n", name, weight);
}

/* ip_vs_del_dest -> __ip_vs_unlink_dest */
static void del(char name)
{
	struct ip_vs_dest *d = dests[name - 'a'];
	list_del(&d->n_list);
	svc.num_dests--;
	hook_changed();
	printf("del %c\n", name);
}

static void overload(char name, int on)
{
	dests[name - 'a']->overloaded = on;
	printf("overload %c %d\n", name, on);
}

static void conns(char name, int active, int inactive)
{
	dests[name - 'a']->activeconns = active;
	dests[name - 'a']->inactconns = inactive;
	printf("conns %c %d %d\n", name, active, inactive);
}

static char name_of(struct ip_vs_dest *d) { return d ? d->name : '-'; }

static void table(void)
{
	int n = kind == MH ? IP_VS_MH_TAB_SIZE : 256;
	struct ip_vs_dest **t = kind == MH ? ((struct ip_vs_mh_state *)svc.sched_data)->lookup
		: kind == DH ? ((struct ip_vs_dh_state *)svc.sched_data)->buckets
		: ((struct ip_vs_sh_state *)svc.sched_data)->buckets;
	printf("table ");
	for (int i = 0; i < n; i++)
		putchar(name_of(t[i]));
	printf("\n");
}

static void pick(const char *client, int cport, const char *virt, int proto)
{
	struct ip_vs_iphdr iph;
	int af;
	struct ip_vs_dest *d = NULL;
	memset(&iph, 0, sizeof(iph));
	parse_addr(client, &iph.saddr, &af);
	parse_addr(virt, &iph.daddr, &af);
	iph.sport = htons(cport);
	iph.dport = htons(80);
	iph.protocol = proto;
	switch (kind) {
	case DH: d = ip_vs_dh_schedule(&svc, &iph); break;
	case SH: d = ip_vs_sh_schedule(&svc, &iph); break;
	case MH: d = ip_vs_mh_schedule(&svc, &iph); break;
	}
	printf("pick %s %d %s %d %c\n", client, cport, virt, proto, name_of(d));
}

static void twos_pick(const u32 *stream, int n)
{
	rand_stream = stream;
	rand_pos = 0;
	rand_len = n;
	struct ip_vs_dest *d = ip_vs_twos_schedule(&svc);
	printf("twos");
	for (int i = 0; i < n; i++)
		printf(" %u", stream[i]);
	printf(" -> %c\n", name_of(d));
	if (rand_pos != n) {
		fprintf(stderr, "stream not used up\n");
		exit(1);
	}
}

/* A seeded source for longer twos runs: Marsaglia's xorshift32, which the
 * Go test implements too (it is the input, not the code under test). */
static u32 xs_state;
static u32 xorshift32(void)
{
	u32 x = xs_state;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return xs_state = x;
}
static void twos_seq(u32 seed, int n)
{
	static u32 buf[1 << 16];
	xs_state = seed;
	for (int i = 0; i < (int)(sizeof(buf) / sizeof(buf[0])); i++)
		buf[i] = xorshift32();
	rand_stream = buf;
	rand_pos = 0;
	rand_len = sizeof(buf) / sizeof(buf[0]);
	printf("twosseq %u ", seed);
	for (int i = 0; i < n; i++)
		putchar(name_of(ip_vs_twos_schedule(&svc)));
	printf(" %d\n", rand_pos);
}

/* moved counts the slots whose server changed between two tables, among
 * slots that did not belong to the removed server. */
static void mh_removal(char gone)
{
	struct ip_vs_mh_state *s = svc.sched_data;
	struct ip_vs_dest **before = malloc(IP_VS_MH_TAB_SIZE * sizeof(*before));
	memcpy(before, s->lookup, IP_VS_MH_TAB_SIZE * sizeof(*before));
	del(gone);
	table();
	int moved = 0, kept = 0;
	for (int i = 0; i < IP_VS_MH_TAB_SIZE; i++) {
		if (before[i]->name == gone)
			continue;
		if (s->lookup[i] != before[i])
			moved++;
		else
			kept++;
	}
	printf("moved %d of %d\n", moved, moved + kept);
	free(before);
}

int main(void)
{
	printf("# Generated by sched/testdata/oracle.c from the kernel's source; do not edit.\n");
	printf("# gcc -O2 -Wall -o /tmp/gvs-oracle sched/testdata/oracle.c && /tmp/gvs-oracle > sched/testdata/kernel_vectors.txt\n");

	/* Hash function vectors. */
	static const u32 hv[] = {0, 1, 2, 0xff, 0x0a000001, 0xc0a80001, 0xc0a8960c, 0xdeadbeef, 0xffffffff, 0x80000000};
	for (unsigned i = 0; i < sizeof(hv) / sizeof(hv[0]); i++)
		for (unsigned bits = 8; bits <= 10; bits += 2)
			printf("hash32 %u %u %u\n", hv[i], bits, hash_32(hv[i], bits));
	hsiphash_key_t k1, k2;
	generate_hash_secret(&k1, &k2);
	for (unsigned i = 0; i < sizeof(hv) / sizeof(hv[0]); i++) {
		u32 v = hv[i];
		printf("hsiphash 1 %u %u\n", v, hsiphash(&v, sizeof(v), &k1));
		printf("hsiphash 2 %u %u\n", v, hsiphash(&v, sizeof(v), &k2));
	}

	static const char *clients[] = {
		"192.168.1.1", "192.168.1.2", "192.168.1.3", "10.1.2.3", "172.16.0.9",
		"198.18.0.1", "198.18.0.2", "203.0.113.7", "8.8.8.8", "1.2.3.4",
		"100.64.0.1", "192.168.150.12", "192.168.150.13", "9.9.9.9", "77.1.1.1", "0.0.0.0",
	};
	const int nclients = sizeof(clients) / sizeof(clients[0]);

	/* dh: the virtual (destination) address decides; weights do not
	 * shape the table. */
	begin(DH, "three", 0, AF_INET_);
	add('a', "10.0.0.1", 80, 1);
	add('b', "10.0.0.2", 80, 5);
	add('c', "10.0.0.3", 80, 1);
	table();
	for (int i = 0; i < nclients; i++)
		pick("192.168.1.1", 1000, clients[i], 6);
	edit('b', 0);
	overload('c', 1);
	for (int i = 0; i < nclients; i++)
		pick("192.168.1.1", 1000, clients[i], 6);
	del('a');
	overload('c', 0);
	table();
	for (int i = 0; i < nclients; i++)
		pick("192.168.1.1", 1000, clients[i], 6);

	begin(DH, "ipv6", 0, AF_INET6_);
	add('a', "2001:db8::1", 80, 1);
	add('b', "2001:db8::2", 80, 1);
	table();
	pick("2001:db8:1::1", 1000, "2001:db8:ffff::1", 6);
	pick("2001:db8:1::1", 1000, "2001:db8:ffff::2", 6);
	pick("2001:db8:1::1", 1000, "2001:db8:ffff::3", 6);
	pick("2001:db8:1::1", 1000, "fd00::1:2:3:4", 6);

	/* sh: weights shape the table; sh-port and sh-fallback. */
	static const unsigned shflags[] = {0, IP_VS_SVC_F_SCHED2, IP_VS_SVC_F_SCHED1, IP_VS_SVC_F_SCHED1 | IP_VS_SVC_F_SCHED2};
	for (int f = 0; f < 4; f++) {
		begin(SH, "weighted", shflags[f], AF_INET_);
		add('a', "10.0.0.1", 80, 1);
		add('b', "10.0.0.2", 80, 2);
		add('c', "10.0.0.3", 80, 3);
		add('d', "10.0.0.4", 80, 0);
		table();
		for (int i = 0; i < nclients; i++) {
			pick(clients[i], 1024 + i, "192.168.150.100", 6);
			pick(clients[i], 40000 + 7 * i, "192.168.150.100", 17);
			pick(clients[i], 40000 + 7 * i, "192.168.150.100", 1);
		}
		edit('c', 0);
		overload('a', 1);
		table();
		for (int i = 0; i < nclients; i++)
			pick(clients[i], 1024 + i, "192.168.150.100", 6);
		edit('a', 4);
		del('b');
		table();
		for (int i = 0; i < nclients; i++)
			pick(clients[i], 1024 + i, "192.168.150.100", 6);
	}
	begin(SH, "big-weights", 0, AF_INET_);
	add('a', "10.0.0.1", 80, 100);
	add('b', "10.0.0.2", 80, 300);
	table();
	begin(SH, "ipv6", IP_VS_SVC_F_SCHED2, AF_INET6_);
	add('a', "2001:db8::1", 80, 1);
	add('b', "2001:db8::2", 80, 1);
	add('c', "2001:db8::3", 80, 2);
	table();
	pick("2001:db8:1::1", 1000, "2001:db8:ffff::1", 6);
	pick("2001:db8:1::2", 1000, "2001:db8:ffff::1", 6);
	pick("2001:db8:1::3", 1001, "2001:db8:ffff::1", 17);
	pick("fd00::1:2:3:4", 65535, "2001:db8:ffff::1", 6);

	/* mh: five servers of weight 1, then one removed. */
	static const unsigned mhflags[] = {0, IP_VS_SVC_F_SCHED2, IP_VS_SVC_F_SCHED1, IP_VS_SVC_F_SCHED1 | IP_VS_SVC_F_SCHED2};
	for (int f = 0; f < 4; f++) {
		begin(MH, "five", mhflags[f], AF_INET_);
		add('a', "10.0.0.1", 80, 1);
		add('b', "10.0.0.2", 80, 1);
		add('c', "10.0.0.3", 80, 1);
		add('d', "10.0.0.4", 80, 1);
		add('e', "10.0.0.5", 80, 1);
		table();
		for (int i = 0; i < nclients; i++) {
			pick(clients[i], 1024 + i, "192.168.150.100", 6);
			pick(clients[i], 40000 + 7 * i, "192.168.150.100", 17);
		}
		/* Quiesce c (its slots stay, last_weight 1), overload d. */
		edit('c', 0);
		overload('d', 1);
		table();
		for (int i = 0; i < nclients; i++)
			pick(clients[i], 1024 + i, "192.168.150.100", 6);
		edit('c', 1);
		overload('d', 0);
		mh_removal('c');
		for (int i = 0; i < nclients; i++)
			pick(clients[i], 1024 + i, "192.168.150.100", 6);
	}
	/* mh weights: gcd, the shift for large weights, a server added with
	 * weight 0 (no turns) and different ports. */
	begin(MH, "weights", 0, AF_INET_);
	add('a', "10.0.0.1", 80, 2);
	add('b', "10.0.0.2", 8080, 4);
	add('c', "10.0.0.3", 80, 0);
	add('d', "10.0.0.1", 81, 6);
	table();
	for (int i = 0; i < nclients; i++)
		pick(clients[i], 1024 + i, "192.168.150.100", 6);
	edit('b', 65535);
	table();
	edit('c', 3);
	table();
	for (int i = 0; i < nclients; i++)
		pick(clients[i], 1024 + i, "192.168.150.100", 6);
	begin(MH, "ipv6", IP_VS_SVC_F_SCHED1, AF_INET6_);
	add('a', "2001:db8::1", 80, 1);
	add('b', "2001:db8::2", 80, 1);
	add('c', "2001:db8::3", 443, 1);
	table();
	pick("2001:db8:1::1", 1000, "2001:db8:ffff::1", 6);
	pick("2001:db8:1::2", 1000, "2001:db8:ffff::1", 6);
	pick("fd00::1:2:3:4", 1000, "2001:db8:ffff::1", 6);
	edit('a', 0);
	pick("2001:db8:1::1", 1000, "2001:db8:ffff::1", 6);
	pick("2001:db8:1::2", 1000, "2001:db8:ffff::1", 6);
	pick("fd00::1:2:3:4", 1000, "2001:db8:ffff::1", 6);
	begin(MH, "empty", IP_VS_SVC_F_SCHED1, AF_INET_);
	add('a', "10.0.0.1", 80, 0);
	table();
	pick("192.168.1.1", 1000, "192.168.150.100", 6);

	/* twos with scripted random streams. */
	begin(TWOS, "three", 0, AF_INET_);
	add('a', "10.0.0.1", 80, 1);
	add('b', "10.0.0.2", 80, 2);
	add('c', "10.0.0.3", 80, 3);
	conns('a', 0, 0);
	conns('b', 2, 0);
	conns('c', 1, 5);
	/* Each stream is exactly what one pick draws. With ceil 7,
	 * __get_random_u32_below rejects 0 (7 * 0 has low half 0, below
	 * 2^32 % 7 = 4) and 0x24924925 (7 * it = 2^32 + 3); 1 passes
	 * (low half 7 is not below ceil). */
	static const struct { int n; u32 v[4]; } streams[] = {
		{3, {0, 0x80000000, 0x40000000}},
		{2, {0xffffffff, 0xffffffff}},
		{2, {0x80000000, 0x10000000}},
		{2, {0x30000000, 0xe0000000}},
		{3, {0x24924925, 0x24924924, 0x24924924}},
		{2, {0xdb6db6db, 0x49249249}},
		{2, {0x00000001, 0x92492492}},
		{4, {0xb6db6db7, 0x6db6db6e, 0x30000000, 0x80000000}}, /* two rejections */
		{2, {0x00000010, 0xfffffff0}},
	};
	for (unsigned i = 0; i < sizeof(streams) / sizeof(streams[0]); i++)
		twos_pick(streams[i].v, streams[i].n);
	twos_seq(1, 200);
	twos_seq(0x9e3779b9, 200);
	/* Overload c and quiesce a: only b is left. */
	overload('c', 1);
	edit('a', 0);
	twos_pick(streams[1].v, streams[1].n);
	twos_seq(7, 20);

	/* Unequal weights and loads over a longer run. */
	begin(TWOS, "five", 0, AF_INET_);
	add('a', "10.0.0.1", 80, 1);
	add('b', "10.0.0.2", 80, 7);
	add('c', "10.0.0.3", 80, 30);
	add('d', "10.0.0.4", 80, 100);
	add('e', "10.0.0.5", 80, 5);
	conns('a', 0, 3);
	conns('b', 4, 100);
	conns('c', 10, 0);
	conns('d', 50, 2000);
	conns('e', 1, 1);
	twos_seq(12345, 400);
	return 0;
}
