#!/usr/bin/env node
// Entry of the `upswarm` CLI: the build in dist/ (plain JavaScript; `npm ci` makes it, and
// `npm start`, `npm test` and `npm run bench` make it again first). `npm run build` after an edit.
const entry = new URL('../dist/upswarm.js', import.meta.url)
const args = process.argv.slice(2)
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  // Issue 13 item 1: `upswarm --version` alone is answered here, from package.json, as commander
  // would (`-V, --version` in actors/cli.ts): nothing of the build is loaded for it.
  const { readFileSync } = await import('node:fs')
  process.stdout.write(`${JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version}\n`)
} else {
  // The build is minified: with UPSWARM_DEBUG, stack traces point into the TypeScript sources.
  if (process.env.UPSWARM_DEBUG) process.setSourceMapsEnabled(true)
  try {
    await import(entry.href)
  } catch (err) {
    if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes(entry.pathname)) throw err
    process.stderr.write(`upswarm: no build at ${entry.pathname}: run \`npm run build\` (npm ci runs it) [UPSWARM_E_CONFIG]\n`)
    process.exitCode = 2
  }
}
