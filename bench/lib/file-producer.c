/* The shm suite's baseline producer: the bytes packages/engine-shm/examples/producer.c puts
 * into a region (word i is splitmix64(seed + i), little-endian), written to a regular file
 * instead, 1 MiB per write(2), hashed as they are made, as an application that writes its
 * data to disk before sending it would. It prints the example producer's final line,
 * "sha256 HEX bytes N", so the suite checks that both made the same bytes.
 *
 *   file-producer [--seed N] FILE BYTES
 *
 * The file is not synced: the application's write ends when write(2) returns, and what the
 * kernel still has to write back is paid by whoever reads the file next. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "content.h"
#include "sha256.h"

#define BLOCK_BYTES (1u << 20)

int main(int argc, char **argv) {
  uint64_t seed = 1;
  int argi = 1;
  if (argc - argi >= 2 && strcmp(argv[argi], "--seed") == 0) {
    seed = strtoull(argv[argi + 1], NULL, 0);
    argi += 2;
  }
  if (argc - argi != 2) {
    fprintf(stderr, "usage: file-producer [--seed N] FILE BYTES\n");
    return 2;
  }
  const char *file = argv[argi];
  char *end;
  errno = 0;
  uint64_t total = strtoull(argv[argi + 1], &end, 10);
  if (errno || *end || end == argv[argi + 1]) {
    fprintf(stderr, "file-producer: BYTES must be a whole number, got '%s'\n", argv[argi + 1]);
    return 2;
  }
  int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    fprintf(stderr, "file-producer: open %s: %s\n", file, strerror(errno));
    return 1;
  }
  unsigned char *buf = malloc(BLOCK_BYTES);
  if (!buf) {
    fprintf(stderr, "file-producer: out of memory\n");
    return 1;
  }
  sha256_ctx sha;
  sha256_init(&sha);
  for (uint64_t off = 0; off < total; off += BLOCK_BYTES) {
    size_t n = total - off < BLOCK_BYTES ? (size_t)(total - off) : BLOCK_BYTES;
    generate(buf, off, n, seed);
    sha256_update(&sha, buf, n);
    for (size_t done = 0; done < n;) {
      ssize_t w = write(fd, buf + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        fprintf(stderr, "file-producer: write %s: %s\n", file, w < 0 ? strerror(errno) : "wrote nothing");
        return 1;
      }
      done += (size_t)w;
    }
  }
  if (close(fd) != 0) {
    fprintf(stderr, "file-producer: close %s: %s\n", file, strerror(errno));
    return 1;
  }
  sha256_print(&sha, total);
  free(buf);
  return 0;
}
