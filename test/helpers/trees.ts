// Small real trees on disk for tests.
import { mkdir, writeFile, symlink, chmod } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { randomBytes } from 'node:crypto'

export type TreeSpec = Record<string, string | Buffer | { symlink: string } | { mode: number; content: string | Buffer }>

export async function writeTree(root: string, spec: TreeSpec): Promise<void> {
  await mkdir(root, { recursive: true })
  for (const [path, value] of Object.entries(spec)) {
    const abs = join(root, path)
    await mkdir(dirname(abs), { recursive: true })
    if (typeof value === 'string' || Buffer.isBuffer(value)) await writeFile(abs, value)
    else if ('symlink' in value) await symlink(value.symlink, abs)
    else {
      await writeFile(abs, value.content)
      await chmod(abs, value.mode)
    }
  }
}

export function randomContent(size: number): Buffer {
  return randomBytes(size)
}
