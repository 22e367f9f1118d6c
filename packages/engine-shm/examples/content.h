/* The examples' content: word i of a stream is splitmix64(seed + i), little-endian, so any
 * program can make (or check) the same bytes at any offset. */
#ifndef ESCP_EXAMPLES_CONTENT_H
#define ESCP_EXAMPLES_CONTENT_H

#include <stdint.h>
#include <string.h>

static uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/* Offsets are block aligned (multiples of 4096), so words never straddle blocks. */
static void generate(unsigned char *dst, uint64_t offset, uint64_t length, uint64_t seed) {
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

#endif
