// The project's root (the directory of its package.json), wherever this module runs from: the
// TypeScript source (infra/) or the build (dist/upswarm.cjs).
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { UpswarmError } from './errors.ts'

function rootFrom(dir: string): string {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(join(d, 'package.json'))) return d
    if (dirname(d) === d) throw new UpswarmError('UPSWARM_E_IO', `no package.json above ${dir}: upswarm runs from its project directory (or an npm install of it)`)
  }
}

export const PROJECT_ROOT = rootFrom(dirname(fileURLToPath(import.meta.url)))
