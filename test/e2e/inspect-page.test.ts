// Issue 12 item 4 in a real browser: `upswarm inspect` serves its page; headless Chromium (Debian's,
// driven by playwright-core) opens it following the update-run machine; while a client updates
// with --inspect, the page draws the update run's statechart and highlights its states in order,
// ending at `done`. The page as it ends is the screenshot in the README (docs/images/inspect.png).
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { chromium, type BrowserContext } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PROJECT_ROOT } from '../../infra/project-root.ts'
import { CLI, updateFixture, type UpdateFixture } from '../helpers/inspect-fixture.ts'
import { updateRunMachine } from '../../machines/update-run.machine.ts'

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync']
const SCREENSHOT = join(PROJECT_ROOT, 'docs', 'images', 'inspect.png')

/** In the page (no DOM types here: the page's own JS): records each set of highlighted states, in order, as `window.seen`. */
const RECORD_HIGHLIGHTS = `(() => {
  const seen = window.seen = []
  new MutationObserver(() => {
    const now = [...document.querySelectorAll('#chart rect.state.active[data-state]')].map((r) => r.dataset.state).filter((s) => s !== '').join(',')
    if (now && seen[seen.length - 1] !== now) seen.push(now)
  }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['class'] })
})()`

/** Starts `upswarm inspect --port 0` and resolves with its page's URL (its READY line). */
async function startInspect(env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [CLI, 'inspect', '--port', '0'], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (d) => { stderr += String(d) })
  const lines = createInterface({ input: child.stdout! })
  const url = await new Promise<string>((resolve, reject) => {
    lines.on('line', (line) => {
      if (line.startsWith('READY ')) resolve((JSON.parse(line.slice(6)) as { url: string }).url)
    })
    child.once('exit', (code) => reject(new Error(`upswarm inspect exited (${code}) before it was ready: ${stderr}`)))
  })
  return { child, url }
}

describe('inspect page in Chromium', { timeout: 120_000 }, () => {
  let fx: UpdateFixture
  let inspect: { child: ChildProcess; url: string } | undefined
  let browser: BrowserContext | undefined
  let profile: string | undefined

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`${CHROMIUM} is missing: this test drives Debian's chromium. scripts/ensure-tools.mjs installs it before \`npm test\` ` +
        '(apt-get install chromium); it could not here, so run as root: apt-get update && apt-get install -y chromium')
    }
    fx = await updateFixture('upswarm-inspect-page-')
    inspect = await startInspect(fx.adminEnv)
    profile = await mkdtemp(join(tmpdir(), 'upswarm-chromium-'))
    browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: { width: 1280, height: 860 } })
  }, 120_000)

  afterAll(async () => {
    await browser?.close()
    if (inspect && inspect.child.exitCode === null) {
      inspect.child.kill('SIGTERM')
      await new Promise((resolve) => inspect!.child.once('exit', resolve))
    }
    await fx?.close()
    if (profile) await rm(profile, { recursive: true, force: true })
  })

  it('inspect — while a client updates, the page shows its update-run actor moving through its states to done', async () => {
    const page = await browser!.newPage()
    // Anything the page asks for beyond the command itself would be a CDN: there must be none.
    const elsewhere: string[] = []
    page.on('request', (req) => { if (!req.url().startsWith(inspect!.url)) elsewhere.push(req.url()) })
    await page.goto(`${inspect!.url}#follow=updateRun`)
    await page.locator('#status', { hasText: 'live' }).waitFor({ timeout: 10_000 })
    // Every state the chart highlights, as it highlights it.
    await page.evaluate(RECORD_HIGHLIGHTS)

    const r = await fx.update()
    expect(r.code, r.stderr).toBe(0)
    await page.locator('#chart[data-value="done"]').waitFor({ timeout: 20_000 })

    const seen = await page.evaluate('window.seen') as string[]
    expect(seen).toEqual(['idle', 'checking', 'planning', 'downloading', 'applying', 'retaining', 'done'].filter((s) => seen.includes(s)))
    expect(seen.slice(-5)).toEqual(['planning', 'downloading', 'applying', 'retaining', 'done'])
    await expect(page.locator('#chart rect.state.active[data-state="done"]').count()).resolves.toBe(1)
    // Drawn from the definition: the machine's own box and one per state, transitions as arrows.
    await expect(page.locator('#chart rect[data-state]').count()).resolves.toBe(Object.keys(updateRunMachine.root.states).length + 1)
    expect(await page.locator('#chart path.edge').count()).toBeGreaterThanOrEqual(12)
    await expect(page.locator('#trail').textContent()).resolves.toContain('checking → planning → downloading → applying → retaining → done')
    await expect(page.locator('#events li').count()).resolves.toBeGreaterThan(0)
    // The actor list names the process and the per-file actors of the same update.
    await expect(page.locator('nav h2', { hasText: `updater.${fx.clientName}` }).count()).resolves.toBe(1)
    await expect(page.locator('nav li[data-machine="fileStatus"]').count()).resolves.toBeGreaterThan(0)
    expect(elsewhere).toEqual([])
    // The README's picture: written when missing or asked for (UPSWARM_SCREENSHOT=1), so that a
    // test run does not leave a changed binary in the tree; a temporary file otherwise.
    const path = !existsSync(SCREENSHOT) || process.env.UPSWARM_SCREENSHOT === '1' ? SCREENSHOT : join(profile!, 'inspect.png')
    await mkdir(join(PROJECT_ROOT, 'docs', 'images'), { recursive: true })
    const png = await page.screenshot({ path, fullPage: false })
    expect(png.subarray(1, 4).toString()).toBe('PNG')
  })
})
