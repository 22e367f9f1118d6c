/* A consumer in C: takes the blocks of one stream in order, straight from the region's slots,
 * and prints their SHA-256 in the producer's format.
 *
 *   make                       (builds build/c/consumer beside the library)
 *   build/c/consumer [--create] [--wait MS] REGION STREAM
 *
 * --create makes the region (1 MiB blocks, 16 slots) for escp or a producer to deliver into,
 * and removes it at the end. --wait: how long to wait for the stream to begin (default 60 s).
 * A stream that is aborted (its producer died, or gave up) ends the program with status 1 and
 * the reason on stderr. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escp_shm.h"
#include "sha256.h"

static escp_shm *region_handle;

/* SIGINT/SIGTERM: the waiting call returns ESCP_SHM_ECANCELED and main() cleans up. */
static void on_signal(int sig) {
  (void)sig;
  if (region_handle) escp_shm_cancel(region_handle);
}

int main(int argc, char **argv) {
  int create = 0, wait_ms = 60000;
  int argi = 1;
  for (; argi < argc && strncmp(argv[argi], "--", 2) == 0; argi++) {
    if (strcmp(argv[argi], "--create") == 0) create = 1;
    else if (strcmp(argv[argi], "--wait") == 0 && argi + 1 < argc) wait_ms = atoi(argv[++argi]);
    else {
      fprintf(stderr, "consumer: unknown option %s\n", argv[argi]);
      return 2;
    }
  }
  if (argc - argi != 2) {
    fprintf(stderr, "usage: consumer [--create] [--wait MS] REGION STREAM\n");
    return 2;
  }
  const char *region = argv[argi], *stream_name = argv[argi + 1];
  escp_shm *r;
  int rc = create ? escp_shm_create(region, 1 << 20, 16, 64, &r) : escp_shm_open(region, &r);
  if (rc) {
    fprintf(stderr, "consumer: %s: %s\n", create ? "escp_shm_create" : "escp_shm_open", escp_shm_strerror(rc));
    return 1;
  }
  region_handle = r;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  int s, status = 0;
  if ((rc = escp_shm_stream_attach(r, stream_name, wait_ms, &s))) {
    fprintf(stderr, "consumer: escp_shm_stream_attach: %s\n", escp_shm_strerror(rc));
    escp_shm_close(r);
    return 1;
  }
  sha256_ctx sha;
  sha256_init(&sha);
  uint64_t offset = 0;
  escp_shm_block b;
  while ((rc = escp_shm_take(r, s, offset, ESCP_SHM_FOREVER, &b)) == 0) {
    sha256_update(&sha, b.data, b.length);
    offset += b.length;
    escp_shm_release(r, &b);
  }
  if (rc == ESCP_SHM_EOF) {
    sha256_print(&sha, offset);
  } else {
    escp_shm_stream_info info;
    escp_shm_stream_state(r, s, &info);
    fprintf(stderr, "consumer: %s%s%s\n", escp_shm_strerror(rc), rc == ESCP_SHM_EABORTED ? ": " : "", rc == ESCP_SHM_EABORTED ? info.error : "");
    status = 1;
  }
  escp_shm_close(r);
  return status;
}
