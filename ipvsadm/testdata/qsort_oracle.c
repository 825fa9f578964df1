/*
 * qsort_oracle prints test vectors for ipvsadm's sort order: random
 * lists of IPv4 address:port pairs, each followed by the order glibc's
 * qsort leaves them in under libipvs's ipvs_cmp_dests comparison (which
 * subtracts addresses as unsigned ints and reads the difference as int).
 * The struct is padded past 32 bytes so that glibc sorts indirectly, as
 * it does for ipvs_dest_entry_t. Output lines: "in a:p a:p ... | out ...".
 *
 * Regenerate: cc -O2 -o /tmp/qsort_oracle qsort_oracle.c &&
 *             /tmp/qsort_oracle > qsort_oracle.txt
 */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

struct entry {
	uint32_t addr; /* host order */
	uint16_t port;
	char pad[58];
};

static int cmp(const void *a, const void *b)
{
	const struct entry *d1 = a, *d2 = b;
	int r = d1->addr - d2->addr;
	if (r != 0)
		return r;
	return d1->port - d2->port;
}

static void print(const struct entry *e, int n)
{
	for (int i = 0; i < n; i++)
		printf(" %u.%u.%u.%u:%u", e[i].addr >> 24, (e[i].addr >> 16) & 255,
		       (e[i].addr >> 8) & 255, e[i].addr & 255, e[i].port);
}

int main(void)
{
	/* First octets spread over the whole space so that many pairs are
	 * 2^31 or more apart. */
	static const uint32_t firsts[] = { 1, 10, 100, 127, 128, 172, 192, 200, 223, 255 };
	srandom(31);
	for (int t = 0; t < 300; t++) {
		int n = random() % 24;
		struct entry e[24] = { 0 };
		for (int i = 0; i < n; i++) {
			e[i].addr = firsts[random() % 10] << 24 | (random() % 4) << 8 | random() % 3;
			e[i].port = random() % 3 ? 80 : 8080;
		}
		printf("in");
		print(e, n);
		qsort(e, n, sizeof(e[0]), cmp);
		printf(" | out");
		print(e, n);
		printf("\n");
	}
	return 0;
}
