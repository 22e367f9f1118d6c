// The core's one native module (native/aead.cc): AEAD records sealed and opened in place with
// Node's own OpenSSL. It is optional: when it was not built, or does not load, the ciphers
// fall back to node:crypto and say why in `escp plugins` (see ciphers.ts).
import path from 'node:path'

export interface NativeAeadKey {
  /** Writes the ciphertext of `plain` into `out` (plain itself, or apart) and the tag into `tag`. */
  seal(nonce: Uint8Array, aad: Uint8Array, plain: Uint8Array, out: Uint8Array, tag: Uint8Array): void
  /** Whether the record is authentic; `out` (ciphertext itself, or apart) then holds the plain bytes. */
  open(nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array, tag: Uint8Array, out: Uint8Array): boolean
}

export interface AeadBinding {
  AeadKey: new (algorithm: string, key: Uint8Array) => NativeAeadKey
  /** The OpenSSL version string it runs with: Node's. */
  openssl: string
}

export type AeadLoad = { ok: true; binding: AeadBinding } | { ok: false; reason: string }

let loaded: AeadLoad | undefined

/** Loads the module once per thread; never throws. ESCP_NATIVE_AEAD=0 leaves it unloaded. */
export function loadAeadBinding(): AeadLoad {
  if (loaded) return loaded
  if (process.env.ESCP_NATIVE_AEAD === '0') {
    loaded = { ok: false, reason: 'ESCP_NATIVE_AEAD=0' }
    return loaded
  }
  try {
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown
    loaded = { ok: true, binding: nodeGypBuild(path.join(__dirname, '..', '..')) as AeadBinding }
  } catch (err) {
    const first = ((err as Error)?.message ?? String(err)).split('\n')[0]
    loaded = { ok: false, reason: `its native module did not load (${first}); run 'npm run build' to build it` }
  }
  return loaded
}
