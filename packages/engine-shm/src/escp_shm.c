/* escp_shm: the shared-memory block region (layout in ../README.md). Every field that two
 * processes touch is read and written with __atomic builtins; waiting is a bounded spin, then
 * FUTEX_WAIT on a sequence word in slices of at most PEER_CHECK_MS, so a waiter notices a dead
 * peer or a cancelled handle without a busy loop. */
#define _GNU_SOURCE
#include "escp_shm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x314d485350435345ULL /* "ESCPSHM1", little-endian */
#define HEADER_BYTES 4096u
#define STREAM_BYTES 512u
#define SLOT_DESC_BYTES 64u
#define PAGE 4096u
#define MIN_BLOCK 4096ull
#define MAX_BLOCK (64ull << 20)
#define MAX_SLOTS 4096u
#define MAX_STREAMS 1024u
/* How often a waiter looks at its peer's pid: a dead producer is noticed within this. */
#define PEER_CHECK_MS 100
/* Spins before sleeping: a block handed over within a few microseconds costs no syscall. */
#define SPIN_ROUNDS 256
/* Blocks past the lowest uncommitted one that escp_shm_claim_at lets producers run ahead. */
#define WINDOW_BLOCKS 512
/* How long escp_shm_open waits for a region being created to get its header. */
#define OPEN_WAIT_MS 1000

enum { SLOT_FREE = 0, SLOT_CLAIMED = 1, SLOT_FILLED = 2, SLOT_TAKEN = 3, SLOT_SENT = 4 };
/* Internal: the message of an abort is being written. */
#define STREAM_ABORTING 5

struct header {
  uint64_t magic;
  uint32_t layout_version;
  uint32_t header_bytes;
  uint64_t block_size;
  uint32_t slot_count;
  uint32_t stream_count;
  uint64_t streams_offset;
  uint64_t slot_table_offset;
  uint64_t slots_offset;
  uint64_t region_bytes;
  uint32_t creator_pid;
  uint32_t lock;           /* pid holding the stream-table lock, 0 when free */
  uint32_t free_seq;       /* futex word: bumped when a slot becomes free */
  uint32_t free_waiters;
  uint32_t event_seq;      /* futex word: bumped when a slot is filled or a stream changes state */
  uint32_t event_waiters;
  uint32_t slots_in_use;
  uint32_t reserved0;
  uint64_t blocks_committed;
  uint64_t blocks_released;
};

struct stream {
  uint32_t state;
  uint32_t producer_pid;
  uint32_t consumer_pid;
  uint32_t reserved0;
  uint64_t size;
  uint64_t committed_bytes;
  uint64_t released_bytes;
  uint64_t end_offset;  /* highest offset + length committed */
  uint64_t tail_offset; /* offset of the one short block, UINT64_MAX while none */
  char name[ESCP_SHM_NAME_MAX + 1];
  char error[ESCP_SHM_ERROR_MAX + 1];
  uint64_t frontier;                 /* lowest block offset not committed (under the table lock) */
  uint64_t ahead[WINDOW_BLOCKS / 64]; /* bit i: the block at frontier + i x block_size is committed */
};

struct slot {
  uint32_t state;
  int32_t stream;
  uint32_t owner_pid; /* the producer that claimed it, then the consumer that took it */
  uint32_t reserved0;
  uint64_t offset;
  uint64_t length;
};

_Static_assert(sizeof(struct header) <= HEADER_BYTES, "header fits its page");
_Static_assert(sizeof(struct stream) <= STREAM_BYTES, "stream entry fits");
_Static_assert(offsetof(struct stream, frontier) == 440 && offsetof(struct stream, error) == 184, "stream layout as README.md documents it");
_Static_assert(offsetof(struct header, blocks_released) == 104, "header layout as README.md documents it");
_Static_assert(sizeof(struct slot) <= SLOT_DESC_BYTES, "slot descriptor fits");

struct escp_shm {
  unsigned char *base;
  size_t bytes;
  struct header *h;
  int cancelled;
  char name[ESCP_SHM_NAME_MAX + 1];
  int created;
};

#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define CAS(p, expected, desired) \
  __extension__({ __typeof__(*(p)) e_ = (expected); __atomic_compare_exchange_n((p), &e_, (desired), 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE); })
#define ADD(p, v) __atomic_add_fetch((p), (v), __ATOMIC_ACQ_REL)
#define SUB(p, v) __atomic_sub_fetch((p), (v), __ATOMIC_ACQ_REL)

static struct stream *stream_at(const escp_shm *r, int i) {
  return (struct stream *)(r->base + r->h->streams_offset + (size_t)i * STREAM_BYTES);
}
static struct slot *slot_at(const escp_shm *r, uint32_t i) {
  return (struct slot *)(r->base + r->h->slot_table_offset + (size_t)i * SLOT_DESC_BYTES);
}

const char *escp_shm_strerror(int code) {
  switch (code) {
    case ESCP_SHM_OK: return "ok";
    case ESCP_SHM_EOF: return "end of stream";
    case ESCP_SHM_EABORTED: return "the stream was aborted";
    case ESCP_SHM_EBADREGION: return "not an escp shared-memory region of this layout version";
    case ESCP_SHM_ECANCELED: return "the region handle was cancelled";
    default: return code < 0 ? strerror(-code) : "unknown";
  }
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t self_pid(void) { return (uint32_t)getpid(); }

/* A pid that no longer runs: gone (ESRCH), or a zombie nobody has reaped yet. */
static int pid_dead(uint32_t pid) {
  if (pid == 0 || pid == self_pid()) return 0;
  if (kill((pid_t)pid, 0) != 0) return errno == ESRCH;
  char path[64];
  snprintf(path, sizeof path, "/proc/%u/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char buf[512];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  /* "pid (comm) S ...": the state follows the last ')' (comm may hold parentheses). */
  char *p = strrchr(buf, ')');
  return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static void futex_wake_all(uint32_t *word) { syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0); }

static void bump(uint32_t *seq, uint32_t *waiters) {
  ADD(seq, 1);
  if (__atomic_load_n(waiters, __ATOMIC_SEQ_CST) > 0) futex_wake_all(seq);
}

static void notify_free(escp_shm *r) { bump(&r->h->free_seq, &r->h->free_waiters); }
static void notify_event(escp_shm *r) { bump(&r->h->event_seq, &r->h->event_waiters); }

/* Sleeps until *seq moves past `seen` or `slice_ms` pass (after a short spin). */
static void wait_seq(uint32_t *seq, uint32_t *waiters, uint32_t seen, int slice_ms) {
  for (int i = 0; i < SPIN_ROUNDS; i++) {
    if (LOAD(seq) != seen) return;
    cpu_relax();
  }
  struct timespec ts = {slice_ms / 1000, (long)(slice_ms % 1000) * 1000000L};
  __atomic_add_fetch(waiters, 1, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(seq, __ATOMIC_SEQ_CST) == seen) syscall(SYS_futex, seq, FUTEX_WAIT, seen, &ts, NULL, 0);
  __atomic_sub_fetch(waiters, 1, __ATOMIC_SEQ_CST);
}

/* The slice of the next wait, or 0 once the deadline passed. */
static int slice_until(int64_t deadline) {
  if (deadline < 0) return PEER_CHECK_MS;
  int64_t left = deadline - now_ms();
  if (left <= 0) return 0;
  return left < PEER_CHECK_MS ? (int)left : PEER_CHECK_MS;
}

static int64_t deadline_of(int timeout_ms) { return timeout_ms < 0 ? -1 : now_ms() + timeout_ms; }

/* The stream-table lock holds the holder's pid, so a holder that died is replaced. */
static void table_lock(escp_shm *r) {
  uint32_t me = self_pid();
  for (unsigned i = 1;; i++) {
    if (CAS(&r->h->lock, 0u, me)) return;
    if (i % 1024 == 0) {
      uint32_t holder = LOAD(&r->h->lock);
      if (holder != 0 && pid_dead(holder) && CAS(&r->h->lock, holder, me)) return;
    }
    sched_yield();
  }
}
static void table_unlock(escp_shm *r) { STORE(&r->h->lock, 0u); }

static int valid_region_name(const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0 || n > 100) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) return 0;
  }
  return !(name[0] == '.');
}

static int valid_stream_name(const char *name) {
  size_t n = name ? strlen(name) : 0;
  return n > 0 && n <= ESCP_SHM_NAME_MAX;
}

static void shm_path(const char *name, char *out, size_t len) { snprintf(out, len, "/escp-%s", name); }

static size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

int escp_shm_create(const char *name, uint64_t block_size, uint32_t slot_count, uint32_t stream_count, escp_shm **out) {
  if (!out || !valid_region_name(name)) return -EINVAL;
  if (block_size < MIN_BLOCK || block_size > MAX_BLOCK || block_size % PAGE != 0) return -EINVAL;
  if (slot_count < 1 || slot_count > MAX_SLOTS || stream_count < 1 || stream_count > MAX_STREAMS) return -EINVAL;
  size_t streams_offset = HEADER_BYTES;
  size_t slot_table_offset = streams_offset + (size_t)stream_count * STREAM_BYTES;
  size_t slots_offset = round_up(slot_table_offset + (size_t)slot_count * SLOT_DESC_BYTES, PAGE);
  size_t bytes = slots_offset + (size_t)slot_count * block_size;
  char path[160];
  shm_path(name, path, sizeof path);
  int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return -errno;
  if (ftruncate(fd, (off_t)bytes) != 0) {
    int e = errno;
    close(fd);
    shm_unlink(path);
    return -e;
  }
  void *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int e = errno;
  close(fd);
  if (base == MAP_FAILED) {
    shm_unlink(path);
    return -e;
  }
  escp_shm *r = calloc(1, sizeof *r);
  if (!r) {
    munmap(base, bytes);
    shm_unlink(path);
    return -ENOMEM;
  }
  r->base = base;
  r->bytes = bytes;
  r->h = base;
  r->created = 1;
  snprintf(r->name, sizeof r->name, "%s", name);
  /* ftruncate gave zeros: every stream and slot starts free. */
  struct header *h = r->h;
  h->layout_version = ESCP_SHM_LAYOUT_VERSION;
  h->header_bytes = HEADER_BYTES;
  h->block_size = block_size;
  h->slot_count = slot_count;
  h->stream_count = stream_count;
  h->streams_offset = streams_offset;
  h->slot_table_offset = slot_table_offset;
  h->slots_offset = slots_offset;
  h->region_bytes = bytes;
  h->creator_pid = self_pid();
  /* The magic goes last: an opener that sees it sees the rest. */
  STORE(&h->magic, MAGIC);
  *out = r;
  return 0;
}

int escp_shm_open(const char *name, escp_shm **out) {
  if (!out || !valid_region_name(name)) return -EINVAL;
  char path[160];
  shm_path(name, path, sizeof path);
  int fd = shm_open(path, O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return -errno;
  struct stat st;
  int64_t give_up = now_ms() + OPEN_WAIT_MS;
  /* A region being created may not have its size or header yet. */
  for (;;) {
    if (fstat(fd, &st) != 0) {
      int e = errno;
      close(fd);
      return -e;
    }
    if ((size_t)st.st_size >= HEADER_BYTES) break;
    if (now_ms() > give_up) {
      close(fd);
      return ESCP_SHM_EBADREGION;
    }
    usleep(1000);
  }
  void *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int e = errno;
  close(fd);
  if (base == MAP_FAILED) return -e;
  struct header *h = base;
  while (LOAD(&h->magic) != MAGIC && now_ms() <= give_up) usleep(1000);
  if (LOAD(&h->magic) != MAGIC || h->layout_version != ESCP_SHM_LAYOUT_VERSION || h->region_bytes != (uint64_t)st.st_size ||
      h->slot_count < 1 || h->slot_count > MAX_SLOTS || h->stream_count < 1 || h->stream_count > MAX_STREAMS ||
      h->block_size < MIN_BLOCK || h->block_size > MAX_BLOCK ||
      h->slots_offset + (uint64_t)h->slot_count * h->block_size > h->region_bytes ||
      h->slot_table_offset + (uint64_t)h->slot_count * SLOT_DESC_BYTES > h->slots_offset ||
      h->streams_offset + (uint64_t)h->stream_count * STREAM_BYTES > h->slot_table_offset) {
    munmap(base, (size_t)st.st_size);
    return ESCP_SHM_EBADREGION;
  }
  escp_shm *r = calloc(1, sizeof *r);
  if (!r) {
    munmap(base, (size_t)st.st_size);
    return -ENOMEM;
  }
  r->base = base;
  r->bytes = (size_t)st.st_size;
  r->h = h;
  snprintf(r->name, sizeof r->name, "%s", name);
  *out = r;
  return 0;
}

void escp_shm_close(escp_shm *r) {
  if (!r) return;
  if (r->created) escp_shm_remove(r);
  munmap(r->base, r->bytes);
  free(r);
}

int escp_shm_remove(escp_shm *r) {
  if (!r) return -EINVAL;
  r->created = 0;
  char path[160];
  shm_path(r->name, path, sizeof path);
  return shm_unlink(path) == 0 ? 0 : -errno;
}

int escp_shm_unlink(const char *name) {
  if (!valid_region_name(name)) return -EINVAL;
  char path[160];
  shm_path(name, path, sizeof path);
  return shm_unlink(path) == 0 ? 0 : -errno;
}

void escp_shm_cancel(escp_shm *r) {
  STORE(&r->cancelled, 1);
  /* Wake this process's sleepers (and, harmlessly, everyone's) so they see the flag now. */
  ADD(&r->h->free_seq, 1);
  ADD(&r->h->event_seq, 1);
  futex_wake_all(&r->h->free_seq);
  futex_wake_all(&r->h->event_seq);
}

uint64_t escp_shm_block_size(const escp_shm *r) { return r->h->block_size; }
uint32_t escp_shm_slot_count(const escp_shm *r) { return r->h->slot_count; }
uint32_t escp_shm_stream_count(const escp_shm *r) { return r->h->stream_count; }
void *escp_shm_slots_base(const escp_shm *r) { return r->base + r->h->slots_offset; }
void *escp_shm_slot_data(const escp_shm *r, uint32_t slot) {
  return slot < r->h->slot_count ? r->base + r->h->slots_offset + (size_t)slot * r->h->block_size : NULL;
}
uint32_t escp_shm_slots_in_use(const escp_shm *r) { return LOAD(&r->h->slots_in_use); }

static int check_stream(const escp_shm *r, int stream) { return stream >= 0 && (uint32_t)stream < r->h->stream_count ? 0 : -EINVAL; }

static void free_slot(escp_shm *r, struct slot *s) {
  STORE(&s->state, (uint32_t)SLOT_FREE);
  SUB(&r->h->slots_in_use, 1);
  notify_free(r);
}

/* After an abort: filled slots of the stream, and slots held by a process that died, go free. */
static void sweep_stream(escp_shm *r, int stream) {
  for (uint32_t i = 0; i < r->h->slot_count; i++) {
    struct slot *s = slot_at(r, i);
    if (LOAD(&s->stream) != stream) continue;
    uint32_t st = LOAD(&s->state);
    if (st == SLOT_FILLED || ((st == SLOT_CLAIMED || st == SLOT_TAKEN) && pid_dead(LOAD(&s->owner_pid)))) {
      if (CAS(&s->state, st, (uint32_t)SLOT_FREE)) {
        SUB(&r->h->slots_in_use, 1);
        notify_free(r);
      }
    }
  }
}

static int abort_stream(escp_shm *r, int stream, const char *message) {
  struct stream *s = stream_at(r, stream);
  for (;;) {
    uint32_t st = LOAD(&s->state);
    if (st == ESCP_SHM_STREAM_ABORTED || st == STREAM_ABORTING) return 0;
    if (st != ESCP_SHM_STREAM_OPEN && st != ESCP_SHM_STREAM_ENDED) return st == ESCP_SHM_STREAM_DONE ? -EALREADY : -EINVAL;
    if (CAS(&s->state, st, (uint32_t)STREAM_ABORTING)) break;
  }
  snprintf(s->error, sizeof s->error, "%s", message && *message ? message : "aborted");
  STORE(&s->state, (uint32_t)ESCP_SHM_STREAM_ABORTED);
  sweep_stream(r, stream);
  notify_event(r);
  notify_free(r);
  return 0;
}

/* A stream's state, once a concurrent abort has written its message. */
static uint32_t stream_state(const struct stream *s) {
  uint32_t st;
  while ((st = LOAD(&s->state)) == STREAM_ABORTING) sched_yield();
  return st;
}

int escp_shm_stream_begin(escp_shm *r, const char *name, uint64_t size, int *stream) {
  if (!r || !stream || !valid_stream_name(name)) return -EINVAL;
  table_lock(r);
  int found = -1, reuse = -1;
  for (uint32_t i = 0; i < r->h->stream_count; i++) {
    struct stream *s = stream_at(r, (int)i);
    uint32_t st = LOAD(&s->state);
    if (st == ESCP_SHM_STREAM_FREE) {
      if (found < 0) found = (int)i;
    } else if (strncmp(s->name, name, sizeof s->name) == 0) {
      /* A name may be used again once its last stream is over. */
      if (st != ESCP_SHM_STREAM_DONE && st != ESCP_SHM_STREAM_ABORTED) {
        table_unlock(r);
        return -EEXIST;
      }
      reuse = (int)i;
    }
  }
  int i = reuse >= 0 ? reuse : found;
  if (i < 0) {
    table_unlock(r);
    return -ENOSPC;
  }
  struct stream *s = stream_at(r, i);
  if (reuse >= 0) sweep_stream(r, i);
  memset(s->name, 0, sizeof s->name);
  snprintf(s->name, sizeof s->name, "%s", name);
  s->error[0] = 0;
  s->size = size;
  s->committed_bytes = 0;
  s->released_bytes = 0;
  s->end_offset = 0;
  s->tail_offset = UINT64_MAX;
  s->frontier = 0;
  memset(s->ahead, 0, sizeof s->ahead);
  s->consumer_pid = 0;
  s->producer_pid = self_pid();
  STORE(&s->state, (uint32_t)ESCP_SHM_STREAM_OPEN);
  table_unlock(r);
  notify_event(r);
  *stream = i;
  return 0;
}

/* The consumer of an open stream died: its taken slots would never come back. */
static int consumer_gone(escp_shm *r, int stream) {
  struct stream *s = stream_at(r, stream);
  uint32_t c = LOAD(&s->consumer_pid);
  if (c == 0 || !pid_dead(c)) return 0;
  abort_stream(r, stream, "consumer died");
  return 1;
}

int escp_shm_claim(escp_shm *r, int stream, int timeout_ms, uint32_t *slot) {
  if (!r || !slot || check_stream(r, stream) != 0) return -EINVAL;
  struct stream *s = stream_at(r, stream);
  int64_t deadline = deadline_of(timeout_ms);
  for (;;) {
    uint32_t seen = LOAD(&r->h->free_seq);
    uint32_t st = stream_state(s);
    if (st == ESCP_SHM_STREAM_ABORTED) return ESCP_SHM_EABORTED;
    if (st != ESCP_SHM_STREAM_OPEN || LOAD(&s->producer_pid) != self_pid()) return -EINVAL;
    if (LOAD(&r->cancelled)) return ESCP_SHM_ECANCELED;
    for (uint32_t i = 0; i < r->h->slot_count; i++) {
      struct slot *d = slot_at(r, i);
      if (LOAD(&d->state) == SLOT_FREE && CAS(&d->state, (uint32_t)SLOT_FREE, (uint32_t)SLOT_CLAIMED)) {
        ADD(&r->h->slots_in_use, 1);
        STORE(&d->stream, stream);
        STORE(&d->owner_pid, self_pid());
        *slot = i;
        return 0;
      }
    }
    int slice = slice_until(deadline);
    if (slice == 0) return -ETIMEDOUT;
    wait_seq(&r->h->free_seq, &r->h->free_waiters, seen, slice);
    if (consumer_gone(r, stream)) return ESCP_SHM_EABORTED;
  }
}

/* The window of offsets claim_at lets through: slot_count blocks (at most WINDOW_BLOCKS) from the
 * lowest uncommitted block. Those blocks fit the slots once the consumer has taken everything
 * before the frontier, so the block an in-order consumer needs next always finds a slot. */
static uint64_t window_bytes(const escp_shm *r) {
  uint64_t blocks = r->h->slot_count < WINDOW_BLOCKS ? r->h->slot_count : WINDOW_BLOCKS;
  return blocks * r->h->block_size;
}

int escp_shm_claim_at(escp_shm *r, int stream, uint64_t offset, int timeout_ms, uint32_t *slot) {
  if (!r || !slot || check_stream(r, stream) != 0 || offset % r->h->block_size != 0) return -EINVAL;
  struct stream *s = stream_at(r, stream);
  int64_t deadline = deadline_of(timeout_ms);
  for (;;) {
    uint32_t seen = LOAD(&r->h->event_seq);
    uint32_t st = stream_state(s);
    if (st == ESCP_SHM_STREAM_ABORTED) return ESCP_SHM_EABORTED;
    if (st != ESCP_SHM_STREAM_OPEN || LOAD(&s->producer_pid) != self_pid()) return -EINVAL;
    if (LOAD(&r->cancelled)) return ESCP_SHM_ECANCELED;
    uint64_t frontier = LOAD(&s->frontier);
    if (offset < frontier) return -EINVAL; /* committed already */
    if (offset - frontier < window_bytes(r)) break;
    int slice = slice_until(deadline);
    if (slice == 0) return -ETIMEDOUT;
    wait_seq(&r->h->event_seq, &r->h->event_waiters, seen, slice);
    if (consumer_gone(r, stream)) return ESCP_SHM_EABORTED;
  }
  /* The frontier only moves up: the offset stays inside the window while this waits. */
  return escp_shm_claim(r, stream, deadline < 0 ? ESCP_SHM_FOREVER : (int)(deadline - now_ms() > 0 ? deadline - now_ms() : 0), slot);
}

/* Records a committed block and moves the frontier past every committed block after it. */
static void advance_frontier(escp_shm *r, struct stream *s, uint64_t offset) {
  uint64_t bs = r->h->block_size;
  table_lock(r);
  uint64_t i = (offset - s->frontier) / bs;
  if (offset >= s->frontier && i < WINDOW_BLOCKS) {
    s->ahead[i / 64] |= 1ull << (i % 64);
    while (s->ahead[0] & 1) {
      for (int w = 0; w < WINDOW_BLOCKS / 64; w++) s->ahead[w] = (s->ahead[w] >> 1) | (w + 1 < WINDOW_BLOCKS / 64 ? s->ahead[w + 1] << 63 : 0);
      STORE(&s->frontier, s->frontier + bs);
    }
  }
  table_unlock(r);
}

static struct slot *own_claimed(escp_shm *r, int stream, uint32_t slot) {
  if (check_stream(r, stream) != 0 || slot >= r->h->slot_count) return NULL;
  struct slot *d = slot_at(r, slot);
  if (LOAD(&d->state) != SLOT_CLAIMED || LOAD(&d->stream) != stream || LOAD(&d->owner_pid) != self_pid()) return NULL;
  return d;
}

int escp_shm_unclaim(escp_shm *r, int stream, uint32_t slot) {
  if (!r) return -EINVAL;
  struct slot *d = own_claimed(r, stream, slot);
  if (!d) return -EINVAL;
  free_slot(r, d);
  return 0;
}

int escp_shm_commit(escp_shm *r, int stream, uint32_t slot, uint64_t offset, uint64_t length) {
  if (!r) return -EINVAL;
  struct slot *d = own_claimed(r, stream, slot);
  if (!d) return -EINVAL;
  struct stream *s = stream_at(r, stream);
  uint64_t bs = r->h->block_size;
  uint32_t st = stream_state(s);
  if (st != ESCP_SHM_STREAM_OPEN) {
    free_slot(r, d);
    return st == ESCP_SHM_STREAM_ABORTED ? ESCP_SHM_EABORTED : -EINVAL;
  }
  /* Blocks sit on block boundaries; only the stream's last may be short. */
  if (length == 0 || length > bs || offset % bs != 0 || offset > UINT64_MAX - length) return -EINVAL;
  uint64_t size = LOAD(&s->size);
  if (size != ESCP_SHM_SIZE_UNKNOWN && (offset + length > size || (length < bs && offset + length != size))) return -EINVAL;
  uint64_t tail = LOAD(&s->tail_offset);
  if (tail != UINT64_MAX && offset >= tail) return -EINVAL;
  if (length < bs) {
    if (LOAD(&s->end_offset) > offset + length || !CAS(&s->tail_offset, UINT64_MAX, offset)) return -EINVAL;
  }
  d->offset = offset;
  d->length = length;
  uint64_t end = offset + length, prev = LOAD(&s->end_offset);
  while (end > prev && !__atomic_compare_exchange_n(&s->end_offset, &prev, end, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
  }
  advance_frontier(r, s, offset);
  ADD(&s->committed_bytes, length);
  ADD(&r->h->blocks_committed, 1);
  STORE(&d->state, (uint32_t)SLOT_FILLED);
  notify_event(r);
  return 0;
}

int escp_shm_stream_end(escp_shm *r, int stream) {
  if (!r || check_stream(r, stream) != 0) return -EINVAL;
  struct stream *s = stream_at(r, stream);
  uint32_t st = stream_state(s);
  if (st == ESCP_SHM_STREAM_ABORTED) return ESCP_SHM_EABORTED;
  if (st != ESCP_SHM_STREAM_OPEN || LOAD(&s->producer_pid) != self_pid()) return -EINVAL;
  uint64_t committed = LOAD(&s->committed_bytes);
  /* Bytes missing, or blocks given twice, leave the sum unequal to the end. */
  if (committed != LOAD(&s->end_offset)) return -EINVAL;
  uint64_t size = LOAD(&s->size);
  if (size == ESCP_SHM_SIZE_UNKNOWN) STORE(&s->size, committed);
  else if (committed != size) return -EINVAL;
  if (!CAS(&s->state, (uint32_t)ESCP_SHM_STREAM_OPEN, (uint32_t)ESCP_SHM_STREAM_ENDED)) return ESCP_SHM_EABORTED;
  /* Everything may have been taken already (or the stream is empty). */
  if (LOAD(&s->released_bytes) == committed && LOAD(&s->consumer_pid) != 0) CAS(&s->state, (uint32_t)ESCP_SHM_STREAM_ENDED, (uint32_t)ESCP_SHM_STREAM_DONE);
  notify_event(r);
  return 0;
}

int escp_shm_stream_abort(escp_shm *r, int stream, const char *message) {
  if (!r || check_stream(r, stream) != 0) return -EINVAL;
  return abort_stream(r, stream, message);
}

int escp_shm_stream_wait_done(escp_shm *r, int stream, int timeout_ms) {
  if (!r || check_stream(r, stream) != 0) return -EINVAL;
  struct stream *s = stream_at(r, stream);
  int64_t deadline = deadline_of(timeout_ms);
  for (;;) {
    uint32_t seen = LOAD(&r->h->event_seq);
    uint32_t st = stream_state(s);
    if (st == ESCP_SHM_STREAM_DONE) return 0;
    if (st == ESCP_SHM_STREAM_ABORTED) return ESCP_SHM_EABORTED;
    if (st != ESCP_SHM_STREAM_ENDED) return -EINVAL;
    if (LOAD(&r->cancelled)) return ESCP_SHM_ECANCELED;
    int slice = slice_until(deadline);
    if (slice == 0) return -ETIMEDOUT;
    wait_seq(&r->h->event_seq, &r->h->event_waiters, seen, slice);
    if (consumer_gone(r, stream)) return ESCP_SHM_EABORTED;
  }
}

int escp_shm_stream_attach(escp_shm *r, const char *name, int timeout_ms, int *stream) {
  if (!r || !stream || !valid_stream_name(name)) return -EINVAL;
  int64_t deadline = deadline_of(timeout_ms);
  uint32_t me = self_pid();
  for (;;) {
    uint32_t seen = LOAD(&r->h->event_seq);
    int busy = 0;
    table_lock(r);
    for (uint32_t i = 0; i < r->h->stream_count; i++) {
      struct stream *s = stream_at(r, (int)i);
      uint32_t st = LOAD(&s->state);
      if (st == ESCP_SHM_STREAM_FREE || st == ESCP_SHM_STREAM_DONE || strncmp(s->name, name, sizeof s->name) != 0) continue;
      /* One consumer process per stream (its threads may share it); a dead one is replaced. */
      uint32_t c = LOAD(&s->consumer_pid);
      if (c != 0 && c != me && !pid_dead(c)) {
        busy = 1;
        continue;
      }
      STORE(&s->consumer_pid, me);
      if (st == ESCP_SHM_STREAM_ENDED && LOAD(&s->released_bytes) == LOAD(&s->size)) CAS(&s->state, (uint32_t)ESCP_SHM_STREAM_ENDED, (uint32_t)ESCP_SHM_STREAM_DONE);
      table_unlock(r);
      *stream = (int)i;
      return 0;
    }
    table_unlock(r);
    if (busy) return -EBUSY;
    if (LOAD(&r->cancelled)) return ESCP_SHM_ECANCELED;
    int slice = slice_until(deadline);
    if (slice == 0) return -ENOENT;
    wait_seq(&r->h->event_seq, &r->h->event_waiters, seen, slice);
  }
}

int escp_shm_stream_find(escp_shm *r, const char *name, int *stream) {
  if (!r || !stream || !valid_stream_name(name)) return -EINVAL;
  int found = -ENOENT;
  table_lock(r);
  for (uint32_t i = 0; i < r->h->stream_count; i++) {
    struct stream *s = stream_at(r, (int)i);
    uint32_t st = LOAD(&s->state);
    if (st == ESCP_SHM_STREAM_FREE || st == ESCP_SHM_STREAM_DONE || strncmp(s->name, name, sizeof s->name) != 0) continue;
    *stream = (int)i;
    found = 0;
    break;
  }
  table_unlock(r);
  return found;
}

int escp_shm_stream_state(escp_shm *r, int stream, escp_shm_stream_info *info) {
  if (!r || !info || check_stream(r, stream) != 0) return -EINVAL;
  struct stream *s = stream_at(r, stream);
  info->state = (int)stream_state(s);
  info->producer_pid = LOAD(&s->producer_pid);
  info->consumer_pid = LOAD(&s->consumer_pid);
  info->size = LOAD(&s->size);
  info->committed_bytes = LOAD(&s->committed_bytes);
  info->released_bytes = LOAD(&s->released_bytes);
  memcpy(info->name, s->name, sizeof info->name);
  info->name[ESCP_SHM_NAME_MAX] = 0;
  memcpy(info->error, s->error, sizeof info->error);
  info->error[ESCP_SHM_ERROR_MAX] = 0;
  return 0;
}

int escp_shm_take(escp_shm *r, int stream, uint64_t offset, int timeout_ms, escp_shm_block *block) {
  if (!r || !block || check_stream(r, stream) != 0) return -EINVAL;
  struct stream *s = stream_at(r, stream);
  if (LOAD(&s->consumer_pid) != self_pid()) return -EINVAL;
  int64_t deadline = deadline_of(timeout_ms);
  int64_t next_check = now_ms() + PEER_CHECK_MS;
  for (;;) {
    uint32_t seen = LOAD(&r->h->event_seq);
    uint32_t st = stream_state(s);
    if (st == ESCP_SHM_STREAM_ABORTED) {
      sweep_stream(r, stream);
      return ESCP_SHM_EABORTED;
    }
    if ((st == ESCP_SHM_STREAM_ENDED || st == ESCP_SHM_STREAM_DONE) && offset >= LOAD(&s->size)) {
      if (LOAD(&s->released_bytes) == LOAD(&s->size)) CAS(&s->state, (uint32_t)ESCP_SHM_STREAM_ENDED, (uint32_t)ESCP_SHM_STREAM_DONE);
      notify_event(r);
      return ESCP_SHM_EOF;
    }
    for (uint32_t i = 0; i < r->h->slot_count; i++) {
      struct slot *d = slot_at(r, i);
      if (LOAD(&d->state) != SLOT_FILLED || LOAD(&d->stream) != stream || d->offset != offset) continue;
      if (!CAS(&d->state, (uint32_t)SLOT_FILLED, (uint32_t)SLOT_TAKEN)) continue;
      /* Between the look and the CAS the slot may have gone round and been filled again with
       * another block: put that one back. */
      if (LOAD(&d->stream) != stream || d->offset != offset) {
        STORE(&d->state, (uint32_t)SLOT_FILLED);
        notify_event(r);
        continue;
      }
      STORE(&d->owner_pid, self_pid());
      block->slot = i;
      block->stream = stream;
      block->offset = d->offset;
      block->length = d->length;
      block->data = escp_shm_slot_data(r, i);
      return 0;
    }
    if (LOAD(&r->cancelled)) return ESCP_SHM_ECANCELED;
    if (now_ms() >= next_check) {
      next_check = now_ms() + PEER_CHECK_MS;
      /* Every stream this process consumes, not only the one waited on: the slots a dead
       * producer filled, or that a block of its stream waiting its turn holds, are freed only
       * once its stream is aborted, and until then the other streams' producers may have no
       * slot to fill the block waited on here. */
      int aborted = 0;
      for (uint32_t i = 0; i < r->h->stream_count; i++) {
        struct stream *o = stream_at(r, (int)i);
        if (LOAD(&o->state) != ESCP_SHM_STREAM_OPEN || LOAD(&o->consumer_pid) != self_pid()) continue;
        if (pid_dead(LOAD(&o->producer_pid)) && abort_stream(r, (int)i, "producer died") == 0) aborted = 1;
      }
      if (aborted) continue;
    }
    int slice = slice_until(deadline);
    if (slice == 0) return -ETIMEDOUT;
    wait_seq(&r->h->event_seq, &r->h->event_waiters, seen, slice);
  }
}

int escp_shm_release(escp_shm *r, const escp_shm_block *block) {
  if (!r || !block || check_stream(r, block->stream) != 0 || block->slot >= r->h->slot_count) return -EINVAL;
  struct slot *d = slot_at(r, block->slot);
  if (LOAD(&d->stream) != block->stream || LOAD(&d->owner_pid) != self_pid()) return -EINVAL;
  /* taken -> sent: the consumer is done with the bytes; sent -> free: producers may claim it. */
  if (!CAS(&d->state, (uint32_t)SLOT_TAKEN, (uint32_t)SLOT_SENT)) return -EINVAL;
  struct stream *s = stream_at(r, block->stream);
  uint64_t released = ADD(&s->released_bytes, d->length);
  ADD(&r->h->blocks_released, 1);
  free_slot(r, d);
  if (LOAD(&s->state) == ESCP_SHM_STREAM_ENDED && released == LOAD(&s->size)) {
    CAS(&s->state, (uint32_t)ESCP_SHM_STREAM_ENDED, (uint32_t)ESCP_SHM_STREAM_DONE);
    notify_event(r);
  }
  return 0;
}
