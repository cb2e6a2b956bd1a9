// The Unix sockets of a working copy's local services (the file monitor's, the sharing daemon's
// control socket): files of mode 0600 in the copy's own metadata folder, so only its owner asks.
import { chmodSync } from 'node:fs'
import type { Server } from 'node:net'

/** A Unix socket's path is at most 107 bytes on Linux. */
export const MAX_SOCKET_PATH = 107

/** Listens on `socket` and makes it the owner's only. */
export async function listenOwnerOnly(server: Server, socket: string): Promise<void> {
  await new Promise<void>((ok, fail) => {
    server.once('error', fail)
    server.listen(socket, () => {
      server.off('error', fail)
      ok()
    })
  })
  chmodSync(socket, 0o600)
}
