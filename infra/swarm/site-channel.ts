// The `upswarm/site` channel (issue 14 item 4, docs/protocol.md §6): each side of a connection
// tells its locality label — a site, a subnet — in the channel's open handshake, and nothing more.
// The piece scheduler takes a piece from peers of its own site when one holds it, so a WAN link
// carries each piece about once per site. A label is a preference, never trust: a peer that lies
// about its site changes whom it is asked, not what is accepted (every piece is still checked).
// A peer of an earlier release opens no such channel: it has no site, and is asked as before.
import b4a from 'b4a'
import c from 'compact-encoding'
import Protomux from 'protomux'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import { SITE_LABEL } from './site-label.ts'
import { rawDecode } from './wire-kit.ts'

export const SITE_PROTOCOL = 'upswarm/site'

/** The label a peer's handshake bytes tell, or undefined: none (empty), or not a label (ignored, not an error). */
export function siteOf(handshake: Uint8Array): string | undefined {
  if (!(handshake instanceof Uint8Array) || handshake.byteLength === 0 || handshake.byteLength > 64) return undefined
  const label = b4a.toString(handshake, 'utf8')
  return SITE_LABEL.test(label) ? label : undefined
}

/**
 * Opens the site channel on `stream`, telling `site` (none: an empty handshake), and calls
 * `onSite` with the peer's label once the peer opened its side.
 */
export function exchangeSite(stream: NoiseSecretStream, site: string | undefined, onSite: (site: string | undefined) => void): void {
  const channel = Protomux.from(stream).createChannel<Uint8Array>({
    protocol: SITE_PROTOCOL,
    handshake: { preencode: c.raw.preencode, encode: c.raw.encode, decode: rawDecode },
    onopen: (hs) => onSite(siteOf(hs)),
  })
  // Null: the connection is closing, or already has the channel; nothing to tell then.
  channel?.open(b4a.from(site ?? '', 'utf8'))
}
