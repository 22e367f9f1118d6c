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
#include "content.h"
#include "sha256.h"

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
  sha256_print(&sha, total);
  fflush(stdout);
  /* The consumer may still be taking blocks: the region must outlive them. */
  if ((rc = escp_shm_stream_wait_done(r, s, ESCP_SHM_FOREVER))) die("escp_shm_stream_wait_done", rc);
  escp_shm_close(r);
  return 0;
}
