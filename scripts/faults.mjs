// `npm run faults [-- --short] [-- FILE ...] [-- vitest flags]`: the fault suite of issue 11 (test/faults/),
// full size by default (UPSWARM_FAULTS=full), then test/faults/results/summary.md gathering the
// figures each scenario wrote. `npm test` runs the same files at the short size. See docs/faults.md.
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
const short = args.includes('--short')
const mode = short ? 'short' : 'full'
const results = process.env.UPSWARM_FAULTS_RESULTS ?? join(root, 'test', 'faults', 'results')
const started = Date.now()
// Files named on the command line run alone (their figures replace theirs in the results); flags go to vitest.
const files = args.filter((a) => !a.startsWith('-'))
const flags = args.filter((a) => a.startsWith('-') && a !== '--short')
const vitest = spawnSync(join(root, 'node_modules', '.bin', 'vitest'), ['run', ...(files.length ? files : ['test/faults']), ...flags], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, UPSWARM_FAULTS: mode, UPSWARM_FAULTS_RESULTS: results },
})
const seconds = Math.round((Date.now() - started) / 1000)

if (existsSync(results)) {
  const lines = [`# Fault suite figures (${mode}; the last npm run faults, ${new Date().toISOString()}, took ${seconds} s)`, '',
    'Written by `npm run faults` from the JSON files beside it; see docs/faults.md.', '']
  for (const name of readdirSync(results).filter((n) => n.endsWith('.json')).sort()) {
    const r = JSON.parse(readFileSync(join(results, name), 'utf8'))
    lines.push(`## ${r.title}`, '', `${r.parameters.runs} runs, ${r.parameters.failures} failures, ${Math.round(r.seconds)} s (seed ${r.parameters.seed}).`, '')
    lines.push(`| ${r.columns.join(' | ')} |`, `|${r.columns.map(() => '---').join('|')}|`)
    for (const row of r.rows) lines.push(`| ${r.columns.map((c) => row[c] ?? '—').join(' | ')} |`)
    lines.push('', ...r.goals.map((g) => `- goal ${g.met ? 'MET' : 'MISSED'}: ${g.goal} (${g.detail})`), '')
  }
  writeFileSync(join(results, 'summary.md'), lines.join('\n'))
  process.stdout.write(`\nfault suite (${mode}): ${seconds} s; figures in ${results}\n`)
}
process.exit(vitest.status ?? 1)
