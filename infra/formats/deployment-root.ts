// The root of trust of a deployment made by `upswarm up` (issue 10 item 7): one root key and one
// fresh key in D/auth (mode 0600, made once, reused on every restart), root version 1 in
// D/root.json, pushed to UPSWARM_META when the stream holds no root yet. `root edit --dir D`
// edits D/root.json with D's root key and pushes the next version. Shared by the launcher and the
// root holder's commands, so neither role imports the other (issue 12 item 1).
import { existsSync } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { NatsConnection } from '@nats-io/transport-node'
import { initRoot, parseRoot, rootText, type SignedRoot } from './root.ts'
import { appendRoot, newestRoot } from './meta-stream.ts'
import { generatePublisherKey, readKeyFile, writeKeyFile, type PublisherKey } from '../release/keys.ts'
import { writeFileAtomic } from '../store/working-copy/atomic.ts'
import { UpswarmError, errorMessage } from '../errors.ts'

export interface DeploymentRoot {
  rootFile: string
  rootKeyFile: string
  freshKeyFile: string
  /** Issue 16 item 2: the notary's halt key; `root edit --dir D --add-product` names it as the product's halt key. */
  haltKeyFile: string
  /**
   * Issue 16 item 4: the console's rollout key; `root edit --dir D --add-product` names it with
   * the publish key as the product's rollout role, so the console's controls and the publisher's
   * `upswarm rollout --key` both sign.
   */
  rolloutKeyFile: string
}

export const deploymentRootPaths = (dir: string): DeploymentRoot => ({
  rootFile: join(dir, 'root.json'),
  rootKeyFile: join(dir, 'auth', 'root-key.json'),
  freshKeyFile: join(dir, 'auth', 'fresh-key.json'),
  haltKeyFile: join(dir, 'auth', 'halt-key.json'),
  rolloutKeyFile: join(dir, 'auth', 'rollout-key.json'),
})

async function keyOnce(file: string): Promise<PublisherKey> {
  if (existsSync(file)) return readKeyFile(file)
  const key = generatePublisherKey()
  await writeKeyFile(file, key)
  return key
}

export async function readRootFile(file: string): Promise<{ text: string; signed: SignedRoot }> {
  let text: string
  try {
    text = (await readFile(file, 'utf8')).trim()
  } catch (err) {
    throw new UpswarmError('UPSWARM_E_CONFIG', `cannot read the root document ${file}: ${errorMessage(err)}`, { cause: err })
  }
  return { text, signed: parseRoot(text, file) }
}

export async function writeRootFile(file: string, signed: SignedRoot): Promise<void> {
  await writeFileAtomic(file, `${rootText(signed)}\n`, join(file, '..'))
}

/** Keys and root 1 made once; the stream gets D/root.json when it holds no root (a new cluster). */
export async function ensureDeploymentRoot(dir: string, nc: NatsConnection): Promise<DeploymentRoot & { version: number; pushed: boolean }> {
  const paths = deploymentRootPaths(dir)
  await mkdir(join(dir, 'auth'), { recursive: true, mode: 0o700 })
  const rootKey = await keyOnce(paths.rootKeyFile)
  const freshKey = await keyOnce(paths.freshKeyFile)
  await keyOnce(paths.haltKeyFile)
  await keyOnce(paths.rolloutKeyFile)
  if (!existsSync(paths.rootFile)) await writeRootFile(paths.rootFile, initRoot({ rootKeys: [rootKey], freshKeys: [freshKey.publicKey] }))
  const { text, signed } = await readRootFile(paths.rootFile)
  const pushed = (await newestRoot(nc)) === undefined
  if (pushed) await appendRoot(nc, text, paths.rootFile)
  return { ...paths, version: signed.root.version, pushed }
}
