// Ignore patterns of a working copy (R-STATUS-2), gitignore syntax, stored in the metadata
// folder: an ignored path takes no part in updates, so personalised files are protected.
import { readFile } from 'node:fs/promises'
import ignore, { type Ignore } from 'ignore'
import { UpswarmError } from '../../errors.ts'
import { writeFileAtomic } from './atomic.ts'
import type { WorkingCopyLayout } from './layout.ts'

export class IgnoreRules {
  readonly patterns: readonly string[]
  private readonly matcher: Ignore

  constructor(patterns: readonly string[]) {
    this.patterns = patterns
    this.matcher = ignore().add([...patterns])
  }

  static async load(layout: WorkingCopyLayout): Promise<IgnoreRules> {
    let raw = ''
    try {
      raw = await readFile(layout.ignore, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new UpswarmError('UPSWARM_E_IO', `cannot read ignore patterns ${layout.ignore}: ${(err as Error).message}`, { cause: err })
      }
    }
    return IgnoreRules.parse(raw)
  }

  /** The rules of an ignore file's text: one pattern a line, blank lines and `#` comments skipped. */
  static parse(text: string): IgnoreRules {
    return new IgnoreRules(text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#')))
  }

  /** Whether `path` (or a directory above it) is ignored; directories match `name/` patterns. */
  ignores(path: string, isDir: boolean): boolean {
    return this.matcher.ignores(isDir ? `${path}/` : path)
  }
}

/** Appends a pattern (idempotent) and returns all patterns. */
export async function addIgnorePattern(layout: WorkingCopyLayout, pattern: string): Promise<readonly string[]> {
  if (pattern.trim() === '' || /[\n\r\0]/.test(pattern) || pattern.startsWith('#')) {
    throw new UpswarmError('UPSWARM_E_BAD_REQUEST', `ignore pattern ${JSON.stringify(pattern)} is empty, a comment, or spans lines; give one gitignore pattern`)
  }
  const rules = await IgnoreRules.load(layout)
  if (rules.patterns.includes(pattern)) return rules.patterns
  const patterns = [...rules.patterns, pattern]
  await writeFileAtomic(layout.ignore, patterns.join('\n') + '\n', layout.tmp)
  return patterns
}
