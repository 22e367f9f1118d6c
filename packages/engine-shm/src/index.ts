// @escp/engine-shm: a shared-memory block API (ShmRegion, ShmWriter, ShmReader) over the C
// library in include/escp_shm.h.
export { ShmRegion, ShmWriter, ShmReader, FOREVER, DEFAULT_BLOCK_BYTES, DEFAULT_SLOT_COUNT, DEFAULT_STREAM_COUNT } from './region'
export type { CreateRegionOptions, ShmBlock, ShmSlot, StreamState } from './region'
