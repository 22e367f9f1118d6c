/* A producer that generates a stream of known content into a region and prints its SHA-256,
 * so whatever receives the stream (escp, examples/consumer.ts) can be checked against it.
 *
 *   make                       (builds build/c/producer beside the library)
 *   build/c/producer [--create] [--block-size BYTES] [--slots N] [--unknown-size] [--seed N]
 *                    REGION STREAM BYTES        (BYTES may end in K, M or G)
 *
 * --create makes the region (and removes it on exit); otherwise it must exist. The content is
 * a splitmix64 sequence from the seed, so the same arguments always give the same digest. Once
 * the stream has begun it prints "begun", at the end "sha256 HEX bytes N", both on stdout; it
 * exits after the consumer has released every block. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escp_shm.h"

/* ---- SHA-256 (FIPS 180-4), small and self-contained ---- */
typedef struct {
  uint32_t h[8];
  uint64_t bytes;
  unsigned char buf[64];
  size_t used;
} sha256_ctx;

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be,
    0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa,
    0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85,
    0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
    0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f,
    0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(sha256_ctx *c, const unsigned char *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++) w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4], f = c->h[5], g = c->h[6], h = c->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
    h = g, g = f, f = e, e = d + t1, d = cc, cc = b, b = a, a = t1 + t2;
  }
  c->h[0] += a, c->h[1] += b, c->h[2] += cc, c->h[3] += d, c->h[4] += e, c->h[5] += f, c->h[6] += g, c->h[7] += h;
}

static void sha256_init(sha256_ctx *c) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(c->h, iv, sizeof iv);
  c->bytes = 0;
  c->used = 0;
}

static void sha256_update(sha256_ctx *c, const unsigned char *p, size_t n) {
  c->bytes += n;
  if (c->used) {
    size_t take = 64 - c->used < n ? 64 - c->used : n;
    memcpy(c->buf + c->used, p, take);
    c->used += take, p += take, n -= take;
    if (c->used < 64) return;
    sha256_block(c, c->buf);
    c->used = 0;
  }
  for (; n >= 64; p += 64, n -= 64) sha256_block(c, p);
  memcpy(c->buf, p, n);
  c->used = n;
}

static void sha256_final(sha256_ctx *c, unsigned char out[32]) {
  uint64_t bits = c->bytes * 8;
  unsigned char pad[72] = {0x80};
  size_t padlen = (c->used < 56 ? 56 : 120) - c->used;
  for (int i = 0; i < 8; i++) pad[padlen + i] = (unsigned char)(bits >> (56 - 8 * i));
  sha256_update(c, pad, padlen + 8);
  for (int i = 0; i < 8; i++) out[4 * i] = c->h[i] >> 24, out[4 * i + 1] = c->h[i] >> 16, out[4 * i + 2] = c->h[i] >> 8, out[4 * i + 3] = c->h[i];
}

/* ---- the content: word i of the stream is splitmix64(seed + i), little-endian ---- */
static uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

static void generate(unsigned char *dst, uint64_t offset, uint64_t length, uint64_t seed) {
  /* Offsets are block aligned (multiples of 4096), so words never straddle blocks. */
  uint64_t word = offset / 8;
  uint64_t i = 0;
  for (; i + 8 <= length; i += 8, word++) {
    uint64_t v = splitmix64(seed + word);
    memcpy(dst + i, &v, 8);
  }
  if (i < length) {
    uint64_t v = splitmix64(seed + word);
    memcpy(dst + i, &v, length - i);
  }
}

static escp_shm *region_handle;
static int stream_index = -1;

/* SIGINT/SIGTERM: the waiting call returns ESCP_SHM_ECANCELED and die() cleans up. */
static void on_signal(int sig) {
  (void)sig;
  if (region_handle) escp_shm_cancel(region_handle);
}

/* Aborts the stream with the reason, so its consumer fails at once, and closes the region (the
 * creator's close removes it). */
static void die(const char *what, int code) {
  char message[200];
  snprintf(message, sizeof message, "producer failed: %s: %s", what, code == ESCP_SHM_ECANCELED ? "interrupted" : escp_shm_strerror(code));
  fprintf(stderr, "producer: %s\n", message + strlen("producer failed: "));
  if (region_handle) {
    if (stream_index >= 0) escp_shm_stream_abort(region_handle, stream_index, message);
    escp_shm_close(region_handle);
  }
  exit(1);
}

int main(int argc, char **argv) {
  int create = 0, unknown = 0;
  uint64_t block = 1 << 20, seed = 1;
  uint32_t slots = 16;
  int argi = 1;
  for (; argi < argc && strncmp(argv[argi], "--", 2) == 0; argi++) {
    if (strcmp(argv[argi], "--create") == 0) create = 1;
    else if (strcmp(argv[argi], "--unknown-size") == 0) unknown = 1;
    else if (strcmp(argv[argi], "--block-size") == 0 && argi + 1 < argc) block = strtoull(argv[++argi], NULL, 0);
    else if (strcmp(argv[argi], "--slots") == 0 && argi + 1 < argc) slots = (uint32_t)strtoul(argv[++argi], NULL, 0);
    else if (strcmp(argv[argi], "--seed") == 0 && argi + 1 < argc) seed = strtoull(argv[++argi], NULL, 0);
    else {
      fprintf(stderr, "producer: unknown option %s\n", argv[argi]);
      return 2;
    }
  }
  if (argc - argi != 3) {
    fprintf(stderr, "usage: producer [--create] [--block-size BYTES] [--slots N] [--unknown-size] [--seed N] REGION STREAM BYTES\n");
    return 2;
  }
  const char *region = argv[argi], *stream_name = argv[argi + 1];
  char *end;
  errno = 0;
  uint64_t total = strtoull(argv[argi + 2], &end, 0);
  /* 512K, 100M, 4G: binary units, as escp's --blocksize takes them. */
  int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
  if (shift) end++;
  if (errno || *end || total > (UINT64_MAX >> shift)) {
    fprintf(stderr, "producer: BYTES must be a number (with K, M or G), got '%s'\n", argv[argi + 2]);
    return 2;
  }
  total <<= shift;

  escp_shm *r;
  int rc = create ? escp_shm_create(region, block, slots, 64, &r) : escp_shm_open(region, &r);
  if (rc) die(create ? "escp_shm_create" : "escp_shm_open", rc);
  region_handle = r;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  block = escp_shm_block_size(r);
  int s;
  if ((rc = escp_shm_stream_begin(r, stream_name, unknown ? ESCP_SHM_SIZE_UNKNOWN : total, &s))) die("escp_shm_stream_begin", rc);
  stream_index = s;
  printf("begun\n");
  fflush(stdout);

  sha256_ctx sha;
  sha256_init(&sha);
  for (uint64_t off = 0; off < total; off += block) {
    uint64_t n = total - off < block ? total - off : block;
    uint32_t slot;
    if ((rc = escp_shm_claim(r, s, ESCP_SHM_FOREVER, &slot))) die("escp_shm_claim", rc);
    unsigned char *p = escp_shm_slot_data(r, slot);
    generate(p, off, n, seed);
    sha256_update(&sha, p, n);
    if ((rc = escp_shm_commit(r, s, slot, off, n))) die("escp_shm_commit", rc);
  }
  if ((rc = escp_shm_stream_end(r, s))) die("escp_shm_stream_end", rc);
  unsigned char digest[32];
  sha256_final(&sha, digest);
  printf("sha256 ");
  for (int i = 0; i < 32; i++) printf("%02x", digest[i]);
  printf(" bytes %" PRIu64 "\n", total);
  fflush(stdout);
  /* The consumer may still be taking blocks: the region must outlive them. */
  if ((rc = escp_shm_stream_wait_done(r, s, ESCP_SHM_FOREVER))) die("escp_shm_stream_wait_done", rc);
  escp_shm_close(r);
  return 0;
}
