// Locality labels (issue 14 item 4): what a site label may be, and the one `--site auto` derives.
// Apart from the site channel (site-channel.ts) so that the CLI checks a label without loading Protomux.
import { networkInterfaces } from 'node:os'
import { UpswarmError } from '../errors.ts'

/** A locality label: 1 to 64 characters of letters, digits and `.` `_` `:` `/` `-` (e.g. `eu-west`, `10.1.2.0/24`). */
export const SITE_LABEL = /^[A-Za-z0-9._:/-]{1,64}$/

/**
 * The label `--site auto` derives: the /24 of the machine's first non-internal IPv4 address
 * (`10.1.2.0/24`), or undefined on a machine with none.
 */
export function derivedSite(interfaces: NodeJS.Dict<{ family: string | number; internal: boolean; address: string }[]>): string | undefined {
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? []) {
      if (a.internal || (a.family !== 'IPv4' && a.family !== 4)) continue
      const [x, y, z] = a.address.split('.')
      return `${x}.${y}.${z}.0/24`
    }
  }
  return undefined
}

/** The label `--site` (or UPSWARM_SITE) gives: `auto` derived, anything else checked; a clear error naming it otherwise. */
export function siteLabel(given: string | undefined, name = '--site'): string | undefined {
  if (given === undefined || given === '') return undefined
  if (given === 'auto') return derivedSite(networkInterfaces())
  if (!SITE_LABEL.test(given)) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `${name} ${JSON.stringify(given.slice(0, 80))}: a site label is 1 to 64 letters, digits and . _ : / - (e.g. eu-west, 10.1.2.0/24), or auto`)
  }
  return given
}
