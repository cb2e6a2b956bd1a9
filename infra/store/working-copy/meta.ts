// The working copy's configuration (what it is) and state (where it is), both small JSON
// files written atomically.
import { UpswarmError } from '../../errors.ts'
import { UUID_RE } from '../../release/manifest-core.ts'
import { readJsonFile, writeFileAtomic, type LazySchema } from './atomic.ts'
import type { WorkingCopyLayout } from './layout.ts'
import type { WorkingCopyConfig, WorkingCopyState } from './schemas.ts'

export type { WorkingCopyConfig, WorkingCopyState } from './schemas.ts'

const HEX64 = /^[0-9a-f]{64}$/

/** How many revisions the history store keeps when `init` is not told otherwise. */
export const DEFAULT_HISTORY_DEPTH = 3

// Issue 13 item 1: every command reads these two files, so they are checked by hand first; the
// checks accept only what the zod schemas (schemas.ts) accept unchanged (no unknown key, which zod
// would drop), so anything else goes to zod, which says what is wrong in its own words.
type Json = Record<string, unknown>
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)
const onlyKeys = (o: Json, keys: ReadonlySet<string>): boolean => Object.keys(o).every((k) => keys.has(k))
const isInt = (v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): v is number => Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max
const isStr = (v: unknown, re?: RegExp): v is string => typeof v === 'string' && (!re || re.test(v))

const CONFIG_KEYS = new Set(['format', 'product', 'publicKey', 'clientId', 'historyDepth', 'private'])
function isConfig(v: unknown): v is WorkingCopyConfig {
  return isObject(v) && onlyKeys(v, CONFIG_KEYS) && v.format === 1 && isStr(v.product, UUID_RE) && isStr(v.publicKey, HEX64) &&
    isStr(v.clientId) && v.clientId.length >= 1 && v.clientId.length <= 200 && isInt(v.historyDepth, 1, 1000) &&
    (v.private === undefined || typeof v.private === 'boolean')
}

const STATE_KEYS = new Set(['format', 'current', 'newestVerified', 'topInstalled', 'hold', 'reverted', 'lastJournal', 'retained', 'record'])
const REVERT_KEYS = new Set(['rev', 'to', 'at', 'phase', 'reason'])
const REV_KEY = /^[1-9][0-9]*$/
const isRevert = (r: unknown): boolean => isObject(r) && onlyKeys(r, REVERT_KEYS) && isInt(r.rev, 1) && isInt(r.to, 0) && isStr(r.at) &&
  (r.phase === 'postInstall' || r.phase === 'health') && isStr(r.reason)
function isState(v: unknown): v is WorkingCopyState {
  return isObject(v) && onlyKeys(v, STATE_KEYS) && v.format === 1 && isInt(v.current, 0) && isInt(v.newestVerified, 0) && isInt(v.topInstalled, 0) &&
    (v.hold === undefined || isInt(v.hold, 1)) && (v.reverted === undefined || (Array.isArray(v.reverted) && v.reverted.every(isRevert))) &&
    (v.lastJournal === undefined || isStr(v.lastJournal)) &&
    (v.retained === undefined || (Array.isArray(v.retained) && v.retained.length <= 1000 && v.retained.every((r) => isInt(r, 1)))) &&
    isObject(v.record) && Object.entries(v.record).every(([k, h]) => REV_KEY.test(k) && isStr(h, HEX64))
}

const configSchema: LazySchema<WorkingCopyConfig> = { quick: isConfig, load: async () => (await import('./schemas.ts')).WorkingCopyConfigSchema }
const stateSchema: LazySchema<WorkingCopyState> = { quick: isState, load: async () => (await import('./schemas.ts')).WorkingCopyStateSchema }

export type RevertRecord = NonNullable<WorkingCopyState['reverted']>[number]
/** How many reverts the state keeps. */
export const REVERTS_KEPT = 20

export function initialState(): WorkingCopyState {
  return { format: 1, current: 0, newestVerified: 0, topInstalled: 0, record: {} }
}

export async function readConfig(layout: WorkingCopyLayout): Promise<WorkingCopyConfig> {
  const config = await readJsonFile(layout.config, configSchema, 'working copy config')
  if (!config) {
    throw new UpswarmError('UPSWARM_E_WORKING_COPY',
      `${layout.root} is not an upswarm working copy (no ${layout.config}); create one with \`upswarm init\``)
  }
  return config
}

export async function writeConfig(layout: WorkingCopyLayout, config: WorkingCopyConfig): Promise<void> {
  await writeFileAtomic(layout.config, JSON.stringify((await configSchema.load()).parse(config), null, 2) + '\n', layout.tmp)
}

export async function readState(layout: WorkingCopyLayout): Promise<WorkingCopyState> {
  return (await readJsonFile(layout.state, stateSchema, 'working copy state')) ?? initialState()
}

export async function writeState(layout: WorkingCopyLayout, state: WorkingCopyState): Promise<void> {
  await writeFileAtomic(layout.state, JSON.stringify(state) + '\n', layout.tmp)
}
