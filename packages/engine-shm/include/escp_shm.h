/* escp_shm: a shared-memory block region that an application fills (a producer) or drains (a
 * consumer) while escp moves its blocks. Plain C, no dependency beyond libc; the layout and the
 * slot state machine are described in packages/engine-shm/README.md.
 *
 * Every call returns 0 (or ESCP_SHM_EOF) on success and a negative code on failure: -errno for
 * system errors (-ETIMEDOUT, -EINVAL, -ENOENT, ...) or one of the ESCP_SHM_E* codes below.
 * escp_shm_strerror() names them. A region handle may be shared by the threads of a process;
 * each thread that calls into it may block only in the calls documented as waiting. */
#ifndef ESCP_SHM_H
#define ESCP_SHM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ESCP_SHM_LAYOUT_VERSION 1
/* A stream whose size is known only when the producer ends it. */
#define ESCP_SHM_SIZE_UNKNOWN UINT64_MAX
/* Wait without a deadline (waits still notice a dead peer and a cancelled handle). */
#define ESCP_SHM_FOREVER (-1)
#define ESCP_SHM_NAME_MAX 127
#define ESCP_SHM_ERROR_MAX 255

enum {
  ESCP_SHM_OK = 0,
  /* The consumer asked past the end of an ended stream. */
  ESCP_SHM_EOF = 1,
  /* The stream was aborted; escp_shm_stream_state() gives the message. */
  ESCP_SHM_EABORTED = -4097,
  /* The region file is not an escp_shm region of this layout version. */
  ESCP_SHM_EBADREGION = -4098,
  /* escp_shm_cancel() was called on this handle. */
  ESCP_SHM_ECANCELED = -4099,
};

/* Stream states (escp_shm_stream_info.state). */
enum {
  ESCP_SHM_STREAM_FREE = 0,
  ESCP_SHM_STREAM_OPEN = 1,    /* the producer is committing blocks */
  ESCP_SHM_STREAM_ENDED = 2,   /* the producer ended it; blocks may remain to be taken */
  ESCP_SHM_STREAM_ABORTED = 3, /* by either side, or because the producer died */
  ESCP_SHM_STREAM_DONE = 4,    /* ended, and the consumer has released every block */
};

typedef struct escp_shm escp_shm;

typedef struct {
  int state;
  uint32_t producer_pid;
  uint32_t consumer_pid;
  /* Declared size, ESCP_SHM_SIZE_UNKNOWN until the end of a stream of unknown size. */
  uint64_t size;
  uint64_t committed_bytes;
  uint64_t released_bytes;
  char name[ESCP_SHM_NAME_MAX + 1];
  /* Why it was aborted ("producer died", or the producer's message). */
  char error[ESCP_SHM_ERROR_MAX + 1];
} escp_shm_stream_info;

/* A block taken by a consumer: `data` is valid until escp_shm_release(). */
typedef struct {
  uint32_t slot;
  int stream;
  uint64_t offset;
  uint64_t length;
  void *data;
} escp_shm_block;

/* --- regions ------------------------------------------------------------------------------
 * A region is /dev/shm/escp-NAME (NAME: 1-100 of [A-Za-z0-9._-]). Its memory is fixed at
 * creation: slot_count x block_size bytes of slots plus a small header. block_size is a
 * multiple of 4096 between 4 KiB and 64 MiB; slot_count 1-4096; stream_count 1-1024. */
int escp_shm_create(const char *name, uint64_t block_size, uint32_t slot_count, uint32_t stream_count, escp_shm **out);
/* Attaches to an existing region. */
int escp_shm_open(const char *name, escp_shm **out);
/* Unmaps; the handle that created the region also removes its name (mappings elsewhere stay
 * valid until they are closed). */
void escp_shm_close(escp_shm *r);
int escp_shm_unlink(const char *name);
/* Removes the region's name now (the creator's close does it otherwise); mappings stay valid. */
int escp_shm_remove(escp_shm *r);
/* Makes this handle's waiting calls return ESCP_SHM_ECANCELED (from any thread). */
void escp_shm_cancel(escp_shm *r);

uint64_t escp_shm_block_size(const escp_shm *r);
uint32_t escp_shm_slot_count(const escp_shm *r);
uint32_t escp_shm_stream_count(const escp_shm *r);
/* The whole slot area (slot i starts at i x block_size), for mapping into another runtime. */
void *escp_shm_slots_base(const escp_shm *r);
void *escp_shm_slot_data(const escp_shm *r, uint32_t slot);
/* Slots currently not free (claimed, filled or taken): at most slot_count, by construction. */
uint32_t escp_shm_slots_in_use(const escp_shm *r);

const char *escp_shm_strerror(int code);

/* --- producer ------------------------------------------------------------------------------
 * Blocks are committed at offsets that are multiples of block_size, each block_size long except
 * the stream's last; they may be committed in any order. */
int escp_shm_stream_begin(escp_shm *r, const char *name, uint64_t size, int *stream);
/* Waits (up to timeout_ms; ESCP_SHM_FOREVER) for a free slot: this is the backpressure. */
int escp_shm_claim(escp_shm *r, int stream, int timeout_ms, uint32_t *slot);
/* For producers that commit out of order (several threads): claims a slot for the block at
 * `offset`, first waiting while it lies more than slot_count blocks (at most 512) past the
 * lowest block not yet committed. The block an in-order consumer needs next then always finds a
 * slot; with plain escp_shm_claim, later blocks could fill every slot and wait on it forever. */
int escp_shm_claim_at(escp_shm *r, int stream, uint64_t offset, int timeout_ms, uint32_t *slot);
int escp_shm_commit(escp_shm *r, int stream, uint32_t slot, uint64_t offset, uint64_t length);
/* Gives a claimed slot back unused. */
int escp_shm_unclaim(escp_shm *r, int stream, uint32_t slot);
/* EOF. For a stream of unknown size, its size becomes the bytes committed. */
int escp_shm_stream_end(escp_shm *r, int stream);
/* Either side may abort; the other sees ESCP_SHM_EABORTED and the message. */
int escp_shm_stream_abort(escp_shm *r, int stream, const char *message);
/* Waits until the consumer has released every block of the ended stream (state DONE). */
int escp_shm_stream_wait_done(escp_shm *r, int stream, int timeout_ms);

/* --- consumer ------------------------------------------------------------------------------ */
/* Finds the stream `name` (waiting for it to begin, up to timeout_ms) and becomes its consumer. */
int escp_shm_stream_attach(escp_shm *r, const char *name, int timeout_ms, int *stream);
int escp_shm_stream_state(escp_shm *r, int stream, escp_shm_stream_info *info);
/* The stream `name` that is open, ended or aborted (not yet done), without attaching to it;
 * -ENOENT when there is none. */
int escp_shm_stream_find(escp_shm *r, const char *name, int *stream);
/* Waits for the block at `offset` and takes it. ESCP_SHM_EOF at or past the end of an ended
 * stream; ESCP_SHM_EABORTED when the stream was aborted or its producer died. */
int escp_shm_take(escp_shm *r, int stream, uint64_t offset, int timeout_ms, escp_shm_block *block);
/* Gives the slot back to the producers (taken -> sent -> free). */
int escp_shm_release(escp_shm *r, const escp_shm_block *block);

#ifdef __cplusplus
}
#endif

#endif /* ESCP_SHM_H */
