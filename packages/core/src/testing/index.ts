// @escp/core/testing: the compliance suites every implementation of a contract runs (mocha).
export { cipherCompliance } from './cipher-suite'
export { compressorCompliance } from './compressor-suite'
export type { CompressorSuiteOptions } from './compressor-suite'
export { checksumCompliance } from './checksum-suite'
export type { ChecksumVector } from './checksum-suite'
export { engineCompliance } from './engine-suite'
export type { EngineSuiteOptions } from './engine-suite'
export { directFlags, expectCode, logLikeText, openFdCount, skipIfUnavailable } from './helpers'
