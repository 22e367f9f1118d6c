// A free TCP port on the loopback interface for a server a suite starts.
import net from 'node:net'

/**
 * A port the kernel just found free on 127.0.0.1. Another process may take it before the
 * caller binds it; the servers started with it fail loudly if that happens.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}
