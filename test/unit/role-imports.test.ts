// Issue 12 item 1: no role module imports another role's module; what two roles share (wire
// types, formats, files) lives in infra/. actors/cli and actors/demo compose processes of several
// roles by design, so they alone may import any role.
import { readdir, readFile } from 'node:fs/promises'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { describe, expect, it } from 'vitest'

const ACTORS = resolve(import.meta.dirname, '../../actors')
const COMPOSERS = new Set(['cli', 'demo'])

/** Every module specifier of a source: static imports and re-exports, side-effect and dynamic imports. */
function specifiers(source: string): string[] {
  const found: string[] = []
  for (const re of [/\bfrom\s*['"]([^'"]+)['"]/g, /\bimport\s*['"]([^'"]+)['"]/g, /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g]) {
    for (const m of source.matchAll(re)) found.push(m[1]!)
  }
  return found
}

/** The role folder a relative specifier of `file` lands in, if it lands in actors/<role>/. */
function roleOf(file: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined
  const rel = relative(ACTORS, resolve(dirname(file), spec))
  const parts = rel.split(sep)
  return parts.length > 1 && parts[0] !== '..' ? parts[0] : undefined
}

async function roleFiles(): Promise<Array<{ role: string; file: string }>> {
  const out: Array<{ role: string; file: string }> = []
  for (const entry of await readdir(ACTORS, { withFileTypes: true })) {
    if (!entry.isDirectory() || COMPOSERS.has(entry.name)) continue
    for (const f of await readdir(join(ACTORS, entry.name), { recursive: true })) {
      if (f.endsWith('.ts')) out.push({ role: entry.name, file: join(ACTORS, entry.name, f) })
    }
  }
  return out
}

/** "actors/a/x.ts imports actors/b/y.ts" for every import that crosses from one role into another. */
async function crossings(files: Array<{ role: string; file: string }>): Promise<string[]> {
  const found: string[] = []
  for (const { role, file } of files) {
    for (const spec of specifiers(await readFile(file, 'utf8'))) {
      const other = roleOf(file, spec)
      if (other && other !== role) found.push(`${relative(join(ACTORS, '..'), file)} imports ${spec}`)
    }
  }
  return found
}

describe('layout — role modules', () => {
  it('layout — no file in actors/<role>/ imports from actors/<other-role>/ (actors/cli and actors/demo excepted)', async () => {
    const files = await roleFiles()
    // The scan sees the roles and their imports (an empty scan would pass anything).
    expect([...new Set(files.map((f) => f.role))]).toEqual(expect.arrayContaining(['launcher', 'repo-server', 'root-holder', 'share-daemon', 'updater']))
    expect(await crossings(files)).toEqual([])
  })

  it('layout — the check catches a role importing another role, statically, dynamically or by re-export', () => {
    const launcher = join(ACTORS, 'launcher', 'index.ts')
    const source = [
      "import { a } from '../root-holder/index.ts'",
      "export { b } from '../updater/run.ts'",
      "const c = await import('../proxy/pool.ts')",
      "import '../tracker/index.ts'",
      "import { d } from './roles.ts'",
      "import { e } from '../../infra/formats/deployment-root.ts'",
    ].join('\n')
    const others = specifiers(source).map((s) => roleOf(launcher, s)).filter((r) => r && r !== 'launcher')
    expect(others).toEqual(['root-holder', 'updater', 'tracker', 'proxy'])
  })
})
