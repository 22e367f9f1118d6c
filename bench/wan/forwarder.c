/*
 * escp-wan-forwarder: a delay-and-loss link between two network namespaces, for WAN benchmarks
 * on kernels without netem (`tc qdisc add ... netem` is tried first by bench/wan/wan.ts).
 *
 * Why a TUN pair and not NFQUEUE: with a TUN device in each namespace, this process *is* the
 * link. It reads every IP packet the kernel of one namespace sends into its TUN device and
 * writes it into the other namespace's TUN device, where it arrives as received. There is no
 * routing, no middle namespace, no netfilter rule, no library, and nothing to leave behind: the
 * devices are not persistent, so they vanish when this process exits, however it exits.
 * NFQUEUE would need libnetfilter_queue, iptables/nft rules in a forwarding namespace, holding
 * each packet's verdict for the whole delay (the kernel queue must then hold a full
 * bandwidth-delay product, and fail-open must be off or packets pass undelayed when it fills),
 * and a packet's release order would depend on the order verdicts are issued. Here a packet
 * is simply bytes in a FIFO.
 *
 * The model, per direction (A→B and B→A, each independent):
 *   - loss: each packet is dropped at random with probability --loss, before anything else;
 *   - rate (optional, --rate): a bottleneck of that many bits per second; a packet is
 *     serialised after the ones before it, and dropped (tail drop) if more than --buffer bytes
 *     are already waiting to be serialised;
 *   - delay: a packet is delivered --delay after it was serialised (or after it arrived, with
 *     no rate limit).
 * Departure times never decrease, so each direction is one FIFO ring and order is kept. The
 * ring holds --queue bytes per direction (default 24 MiB: about ten times the 2.5 MB a
 * 1 Gbit/s × 20 ms bandwidth-delay product needs); a packet arriving at a full ring is dropped
 * and counted as "full" (a benchmark's loss would then not be the configured loss: the test and
 * the suite check that this count stays 0).
 *
 * One thread, ppoll() on the two TUN descriptors with a nanosecond timeout to the next due
 * packet (timer slack set to 1 µs), CLOCK_MONOTONIC.
 *
 * Usage:
 *   forwarder --ns-a NS --ns-b NS [--dev NAME] [--mtu N] --delay MS [--loss P] [--rate BPS]
 *             [--buffer BYTES] [--queue BYTES] [--seed N]
 *   --delay MS     one-way delay in milliseconds (may be fractional); RTT = 2 × delay
 *   --loss P       drop probability per packet and direction: a fraction (0.0001) or a percentage (0.01%)
 *   --rate BPS     bottleneck rate in bit/s, with an optional k/M/G suffix (1G = 10^9); 0 = none
 *   --buffer BYTES bottleneck buffer (default: one rate × 2·delay product, at least 64 KiB)
 *   --queue BYTES  ring size per direction (default 24M)
 *   --dev NAME     TUN device name in both namespaces (default wan0); --mtu its MTU (default 1500)
 * It creates the TUN device in each namespace (/run/netns/NS), sets its MTU and brings it up,
 * prints "ready" on stdout, and forwards until SIGTERM or SIGINT. SIGUSR1 prints the counters
 * as one JSON line on stdout; they are printed once more on exit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TUN_QLEN 20000 /* see open_tun_in() */
#define BATCH 64 /* packets read from one device before due packets are delivered again */

struct slot {
	uint64_t due_ns;
	uint32_t len;
};

struct direction {
	const char *name;
	int in_fd, out_fd;
	struct slot *meta;
	uint8_t *data; /* capacity × slot_bytes */
	uint32_t capacity, head, count;
	uint64_t link_free_ns; /* when the bottleneck finishes serialising what it holds */
	uint64_t in, out, out_bytes, lost, dropped_buffer, dropped_full, write_errors, max_count;
};

static volatile sig_atomic_t stop_flag, stats_flag;
static uint64_t rng_state;
static uint32_t slot_bytes;
static double loss_p, rate_bps;
static uint64_t delay_ns, buffer_bytes;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		stats_flag = 1;
	else
		stop_flag = 1;
}

static void die(const char *what)
{
	fprintf(stderr, "forwarder: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void fail(const char *what)
{
	fprintf(stderr, "forwarder: %s\n", what);
	exit(2);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* splitmix64: fast, and good enough for Bernoulli trials. */
static uint64_t next_random(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double parse_number(const char *flag, const char *text, int allow_suffix)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (errno || end == text || v < 0 || !isfinite(v)) {
		fprintf(stderr, "forwarder: %s takes a non-negative number, got '%s'\n", flag, text);
		exit(2);
	}
	if (allow_suffix == 1 && *end == '%') {
		v /= 100, end++;
	} else if (allow_suffix == 2 && *end) {
		if (*end == 'k' || *end == 'K') v *= 1e3, end++;
		else if (*end == 'M') v *= 1e6, end++;
		else if (*end == 'G') v *= 1e9, end++;
	} else if (allow_suffix == 3 && *end) {
		if (*end == 'k' || *end == 'K') v *= 1024, end++;
		else if (*end == 'M') v *= 1024 * 1024, end++;
		else if (*end == 'G') v *= 1024.0 * 1024 * 1024, end++;
	}
	if (*end) {
		fprintf(stderr, "forwarder: %s: cannot read '%s'\n", flag, text);
		exit(2);
	}
	return v;
}

/* Creates TUN device `dev` inside network namespace `ns`, with `mtu`, up. Returns its descriptor. */
static int open_tun_in(const char *ns, const char *dev, int mtu)
{
	char path[256];
	snprintf(path, sizeof path, "/run/netns/%s", ns);
	int nsfd = open(path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0) die(path);
	if (setns(nsfd, CLONE_NEWNET) < 0) die("setns");
	close(nsfd);
	/* Opened after setns(): a TUN device is created in the namespace of the opener. */
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) die("/dev/net/tun");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", dev);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) die("TUNSETIFF");
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) die("socket");
	ifr.ifr_mtu = mtu;
	if (ioctl(s, SIOCSIFMTU, &ifr) < 0) die("SIOCSIFMTU");
	/*
	 * The TUN device's own ring (tx_queue_len packets) drops, rather than pushes back, when this
	 * process falls behind for a moment; 500 by default, that cost a 1 Gbit/s flow thousands of
	 * drops a second that were neither the configured loss nor the bottleneck's.
	 */
	ifr.ifr_qlen = TUN_QLEN;
	if (ioctl(s, SIOCSIFTXQLEN, &ifr) < 0) die("SIOCSIFTXQLEN");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) die("SIOCGIFFLAGS");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) die("SIOCSIFFLAGS");
	close(s);
	return fd;
}

static void setup_direction(struct direction *d, const char *name, int in_fd, int out_fd, uint64_t queue_bytes)
{
	memset(d, 0, sizeof *d);
	d->name = name;
	d->in_fd = in_fd;
	d->out_fd = out_fd;
	d->capacity = (uint32_t)(queue_bytes / slot_bytes);
	if (d->capacity < 64) d->capacity = 64;
	d->meta = calloc(d->capacity, sizeof *d->meta);
	d->data = malloc((size_t)d->capacity * slot_bytes);
	if (!d->meta || !d->data) die("malloc");
}

/* Reads up to BATCH packets from the direction's input; returns how many reads succeeded. */
static int take_in(struct direction *d)
{
	int n = 0;
	static uint8_t scratch[65536];
	while (n < BATCH) {
		uint32_t tail = (d->head + d->count) % d->capacity;
		int full = d->count == d->capacity;
		uint8_t *buf = full ? scratch : d->data + (size_t)tail * slot_bytes;
		ssize_t len = read(d->in_fd, buf, full ? sizeof scratch : slot_bytes);
		if (len < 0) {
			if (errno == EAGAIN || errno == EINTR) break;
			die("read");
		}
		n++;
		if (len == 0) continue;
		uint64_t t = now_ns();
		d->in++;
		if (loss_p > 0 && (double)(next_random() >> 11) * 0x1.0p-53 < loss_p) {
			d->lost++;
			continue;
		}
		if (full) {
			d->dropped_full++;
			continue;
		}
		uint64_t leave = t;
		if (rate_bps > 0) {
			uint64_t start = d->link_free_ns > t ? d->link_free_ns : t;
			double backlog = (double)(start - t) * rate_bps / 8e9;
			if (backlog + (double)len > (double)buffer_bytes) {
				d->dropped_buffer++;
				continue;
			}
			d->link_free_ns = start + (uint64_t)((double)len * 8e9 / rate_bps);
			leave = d->link_free_ns;
		}
		d->meta[tail].due_ns = leave + delay_ns;
		d->meta[tail].len = (uint32_t)len;
		d->count++;
		if (d->count > d->max_count) d->max_count = d->count;
	}
	return n;
}

/* Delivers every packet due by `now`; returns the due time of the next one, or UINT64_MAX. */
static uint64_t deliver(struct direction *d, uint64_t now)
{
	while (d->count) {
		struct slot *s = &d->meta[d->head];
		if (s->due_ns > now) return s->due_ns;
		if (write(d->out_fd, d->data + (size_t)d->head * slot_bytes, s->len) < 0)
			d->write_errors++;
		else
			d->out++, d->out_bytes += s->len;
		d->head = (d->head + 1) % d->capacity;
		d->count--;
	}
	return UINT64_MAX;
}

static void print_stats(const struct direction *dirs)
{
	printf("{");
	for (int i = 0; i < 2; i++) {
		const struct direction *d = &dirs[i];
		printf("%s\"%s\":{\"in\":%llu,\"out\":%llu,\"outBytes\":%llu,\"lost\":%llu,\"droppedBuffer\":%llu,\"droppedFull\":%llu,"
		       "\"writeErrors\":%llu,\"maxQueued\":%llu,\"capacity\":%u}",
		       i ? "," : "", d->name, (unsigned long long)d->in, (unsigned long long)d->out, (unsigned long long)d->out_bytes,
		       (unsigned long long)d->lost, (unsigned long long)d->dropped_buffer, (unsigned long long)d->dropped_full,
		       (unsigned long long)d->write_errors, (unsigned long long)d->max_count, d->capacity);
	}
	printf("}\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	const char *ns_a = NULL, *ns_b = NULL, *dev = "wan0";
	double delay_ms = -1, buffer = -1, queue = 24.0 * 1024 * 1024;
	int mtu = 1500, have_seed = 0;
	uint64_t seed = 0;
	for (int i = 1; i < argc; i++) {
		const char *f = argv[i];
		if (i + 1 >= argc) {
			fprintf(stderr, "forwarder: %s needs a value\n", f);
			return 2;
		}
		const char *v = argv[++i];
		if (!strcmp(f, "--ns-a")) ns_a = v;
		else if (!strcmp(f, "--ns-b")) ns_b = v;
		else if (!strcmp(f, "--dev")) dev = v;
		else if (!strcmp(f, "--mtu")) mtu = (int)parse_number(f, v, 0);
		else if (!strcmp(f, "--delay")) delay_ms = parse_number(f, v, 0);
		else if (!strcmp(f, "--loss")) loss_p = parse_number(f, v, 1);
		else if (!strcmp(f, "--rate")) rate_bps = parse_number(f, v, 2);
		else if (!strcmp(f, "--buffer")) buffer = parse_number(f, v, 3);
		else if (!strcmp(f, "--queue")) queue = parse_number(f, v, 3);
		else if (!strcmp(f, "--seed")) seed = (uint64_t)parse_number(f, v, 0), have_seed = 1;
		else {
			fprintf(stderr, "forwarder: unknown flag %s\n", f);
			return 2;
		}
	}
	if (!ns_a || !ns_b || delay_ms < 0) fail("usage: forwarder --ns-a NS --ns-b NS --delay MS [--loss P] [--rate BPS] [--buffer BYTES] [--queue BYTES] [--dev NAME] [--mtu N] [--seed N]");
	if (loss_p > 1) fail("--loss must be at most 1 (100%)");
	if (mtu < 576 || mtu > 65535) fail("--mtu must be 576 to 65535");
	if (strlen(dev) >= IFNAMSIZ) fail("--dev: name too long");
	delay_ns = (uint64_t)llround(delay_ms * 1e6);
	slot_bytes = (uint32_t)mtu;
	if (buffer < 0) {
		buffer = rate_bps * 2 * delay_ms / 1e3 / 8;
		if (buffer < 65536) buffer = 65536;
	}
	buffer_bytes = (uint64_t)buffer;
	if (!have_seed && getrandom(&seed, sizeof seed, 0) != sizeof seed) die("getrandom");
	rng_state = seed;

	/* Never outlive the benchmark or test that started it, even one killed with SIGKILL. */
	prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
	if (getppid() == 1) return 1;
	int fd_a = open_tun_in(ns_a, dev, mtu);
	int fd_b = open_tun_in(ns_b, dev, mtu);
	struct direction dirs[2];
	setup_direction(&dirs[0], "aToB", fd_a, fd_b, (uint64_t)queue);
	setup_direction(&dirs[1], "bToA", fd_b, fd_a, (uint64_t)queue);

	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
	sigset_t block, empty;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGUSR1);
	sigemptyset(&empty);
	sigprocmask(SIG_BLOCK, &block, NULL);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	printf("ready\n");
	fflush(stdout);

	struct pollfd pfd[2] = { { .fd = fd_a, .events = POLLIN }, { .fd = fd_b, .events = POLLIN } };
	while (!stop_flag) {
		uint64_t now = now_ns();
		uint64_t next = deliver(&dirs[0], now);
		uint64_t next_b = deliver(&dirs[1], now);
		if (next_b < next) next = next_b;
		struct timespec ts, *timeout = NULL;
		if (next != UINT64_MAX) {
			uint64_t wait = next > now ? next - now : 0;
			ts.tv_sec = (time_t)(wait / 1000000000ull);
			ts.tv_nsec = (long)(wait % 1000000000ull);
			timeout = &ts;
		}
		int r = ppoll(pfd, 2, timeout, &empty);
		if (r < 0 && errno != EINTR) die("ppoll");
		if (stats_flag) {
			stats_flag = 0;
			print_stats(dirs);
		}
		if (r > 0) {
			if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL) || pfd[1].revents & (POLLERR | POLLHUP | POLLNVAL)) fail("a TUN device went away");
			if (pfd[0].revents & POLLIN) take_in(&dirs[0]);
			if (pfd[1].revents & POLLIN) take_in(&dirs[1]);
		}
	}
	print_stats(dirs);
	return 0;
}
