// Small real file systems for the disk-full tests: a tmpfs needs root (`mount -t tmpfs`), so the
// tests that use one are skipped elsewhere, and say so.
import { execFileSync } from 'node:child_process'

/** True when this process may mount a tmpfs (root, and mount works here). */
export function canMountTmpfs(): boolean {
  if (process.getuid?.() !== 0) return false
  const dir = execFileSync('mktemp', ['-d']).toString().trim()
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'ignore' })
    execFileSync('umount', [dir], { stdio: 'ignore' })
    return true
  } catch {
    return false
  } finally {
    execFileSync('rm', ['-rf', dir])
  }
}
