// The fleet console's page (issue 16 item 4): polls GET /api/state with the token of its own URL,
// draws the fleet by revision over time (inline SVG), each product's releases with their rollout
// and controls, its clients, the swarm offload, the server pool and the alerts. Controls POST
// /api/rollout (JSON, token in a header). Every value from the fleet is put in with textContent,
// never as markup. Nothing is loaded from anywhere but this console.
'use strict'

const POLL_MS = 2000
const SVG = 'http://www.w3.org/2000/svg'
const COLORS = ['#3b6cf6', '#1a7f37', '#cf222e', '#9a6700', '#8250df', '#0a7ea4', '#bf3989', '#57606a']
const token = new URLSearchParams(location.search).get('token') || ''
/** Rows of the releases tables, kept between polls so that a percent being typed stays. */
const releaseRows = new Map()
let controls = { enabled: false, reason: 'not loaded yet' }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue
    if (k === 'class') node.className = v
    else if (k.startsWith('data-')) node.setAttribute(k, String(v))
    else if (k === 'text') node.textContent = String(v)
    else node.setAttribute(k, String(v))
  }
  for (const c of children) if (c !== undefined && c !== null) node.append(c instanceof Node ? c : String(c))
  return node
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v))
  if (text !== undefined) node.textContent = String(text)
  return node
}

function bytes(n) {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let u = -1
  do { v /= 1024; u++ } while (v >= 1024 && u < units.length - 1)
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`
}

const colorOf = (rev) => COLORS[(Number(rev) - 1) % COLORS.length]
const percentText = (bp) => `${bp / 100}%`
/** Times as the fleet's reports and the stream stamp them: UTC, HH:MM:SS. */
const clock = (t) => new Date(t).toISOString().slice(11, 19)

function say(text, isError) {
  const m = document.getElementById('message')
  m.hidden = false
  m.className = isError ? 'error' : ''
  m.textContent = text
}

async function api(path, init) {
  const res = await fetch(path, { ...init, headers: { ...(init && init.headers), authorization: `Bearer ${token}` }, cache: 'no-store' })
  const body = await res.json().catch(() => ({ error: { message: `${res.status} ${res.statusText}` } }))
  if (!res.ok) throw new Error(body.error ? body.error.message : `${res.status} ${res.statusText}`)
  return body
}

async function control(product, rev, action, percent) {
  const body = { product, rev, action }
  if (percent !== undefined) body.percent = percent
  try {
    const r = await api('/api/rollout', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    const x = r.result || {}
    say(`r${rev}: ${x.state} at ${percentText(x.percent)} (statement ${x.seq}${x.previous ? `, was ${x.previous.state} at ${percentText(x.previous.percent)}` : ''})`, false)
  } catch (err) {
    say(`r${rev}: not changed: ${err.message}`, true)
  }
  await poll()
}

/** The percent field's value as a number, or the raw text (the console says what is wrong with it). */
function percentOf(input) {
  const t = input.value.trim()
  if (t === '') return undefined
  const n = Number(t)
  return Number.isFinite(n) ? n : t
}

function releaseRow(product, rev) {
  const key = `${product}/${rev}`
  let row = releaseRows.get(key)
  if (row) return row
  const percent = el('input', { type: 'number', class: 'percent', min: 0, max: 100, step: 'any', placeholder: '%', 'aria-label': `percent of the fleet for r${rev}` })
  const button = (action, label) => {
    const b = el('button', { type: 'button', 'data-action': action }, label)
    b.addEventListener('click', () => control(product, rev, action, action === 'pause' || action === 'halt' ? undefined : percentOf(percent)))
    return b
  }
  // Revision 0 is "nothing installed yet": no release to roll out.
  row = el('tr', { 'data-product': product, 'data-rev': rev },
    el('td', { class: 'mono' }, rev === 0 ? 'none yet' : `r${rev}`),
    el('td', { class: 'num clients' }),
    el('td', { class: 'rollout' }),
    el('td', {}, rev === 0 ? null : el('span', { class: 'controls' }, percent, button('percent', 'Set %'), button('pause', 'Pause'), button('resume', 'Resume'), button('halt', 'Halt'))))
  releaseRows.set(key, row)
  return row
}

function drawChart(product, series) {
  const W = 560
  const H = 150
  const L = 28
  const B = 18
  const points = series.map((p) => ({ t: Date.parse(p.at), counts: p.counts[product] || {} }))
  const revs = [...new Set(points.flatMap((p) => Object.keys(p.counts)))].sort((a, b) => Number(a) - Number(b))
  const chart = svg('svg', { class: 'chart', width: W, height: H, viewBox: `0 0 ${W} ${H}`, 'data-product': product, role: 'img', 'aria-label': 'clients per revision over time' })
  const max = Math.max(1, ...points.flatMap((p) => Object.values(p.counts)))
  const t0 = points.length ? points[0].t : 0
  const t1 = points.length ? Math.max(points[points.length - 1].t, t0 + 1) : 1
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - 8)
  const y = (n) => H - B - (n / max) * (H - B - 10)
  for (const n of [0, max]) {
    chart.append(svg('line', { x1: L, x2: W - 8, y1: y(n), y2: y(n), stroke: '#eceff3' }))
    chart.append(svg('text', { x: L - 4, y: y(n) + 3, 'text-anchor': 'end' }, n))
  }
  if (points.length) {
    chart.append(svg('text', { x: L, y: H - 4 }, clock(t0)))
    chart.append(svg('text', { x: W - 8, y: H - 4, 'text-anchor': 'end' }, clock(t1)))
  }
  for (const rev of revs) {
    // A step line: the count holds until the next reading.
    let d = ''
    points.forEach((p, i) => {
      const n = p.counts[rev] || 0
      d += i === 0 ? `M${x(p.t)},${y(n)}` : `H${x(p.t)}V${y(n)}`
    })
    if (points.length === 1) d += `H${W - 8}`
    chart.append(svg('path', { d, fill: 'none', stroke: colorOf(rev), 'stroke-width': 2, 'data-rev': rev }))
  }
  const legend = el('div', { class: 'legend' }, ...revs.map((rev) => {
    const now = points.length ? points[points.length - 1].counts[rev] || 0 : 0
    const swatch = el('span', { class: 'swatch' })
    swatch.style.background = colorOf(rev)
    return el('span', { 'data-rev': rev }, swatch, `r${rev}: ${now}`)
  }))
  return el('div', {}, chart, legend)
}

function productSection(p, series, old) {
  const section = old || el('div', { class: 'product', id: `product-${p.product}`, 'data-product': p.product })
  const releasesBody = el('tbody')
  for (const r of p.releases) {
    const row = releaseRow(p.product, r.rev)
    row.querySelector('.clients').textContent = String(r.clients.length)
    const cell = row.querySelector('.rollout')
    cell.className = `rollout ${r.rollout ? r.rollout.state : ''}`
    cell.textContent = r.rollout
      ? `${r.rollout.state} at ${percentText(r.rollout.percent)}${r.rollout.rings.length ? ` + rings ${r.rollout.rings.join(', ')}` : ''} (#${r.rollout.seq})`
      : 'not staged'
    for (const b of row.querySelectorAll('button, input')) {
      b.disabled = !controls.enabled
      b.title = controls.enabled ? '' : controls.reason
    }
    releasesBody.append(row)
  }
  const clientsBody = el('tbody', {}, ...p.clients.map((c) => el('tr', { 'data-client': c.from, 'data-rev': c.rev },
    el('td', { class: 'mono' }, c.from),
    el('td', { class: 'mono rev' }, `r${c.rev}`),
    el('td', { class: 'num' }, `${(c.stage / 100).toFixed(2)}%`),
    el('td', {}, c.ring || ''),
    el('td', { class: `health-${c.health.state}` }, c.health.state + (c.health.reason ? `: ${c.health.reason}` : '')),
    el('td', {}, c.last ? `r${c.last.from}→r${c.last.to}: ${bytes(c.last.bytesFromPeers)} peers, ${bytes(c.last.bytesFromServers)} servers` : ''),
    el('td', { class: 'mono' }, clock(c.storedAt)))))
  const s = p.peerShare
  const total = s.bytesFromPeers + s.bytesFromServers
  const bar = el('div', { class: 'bar' }, el('span', { class: 'peers' }), el('span', { class: 'servers' }))
  bar.children[0].style.width = `${total ? (100 * s.bytesFromPeers) / total : 0}%`
  bar.children[1].style.width = `${total ? (100 * s.bytesFromServers) / total : 0}%`
  section.replaceChildren(
    el('h2', {}, `Product `, el('code', {}, p.product), ` — ${p.clients.length} client(s)`),
    el('div', { class: 'cols' },
      el('div', {},
        el('h3', {}, 'Fleet by revision over time'),
        drawChart(p.product, series),
        el('h3', {}, 'Swarm offload (last updates)'),
        el('div', { class: 'offload', 'data-product': p.product }, bar,
          `${bytes(s.bytesFromPeers)} from peers, ${bytes(s.bytesFromServers)} from servers; peer share ${s.share === null ? '–' : `${(s.share * 100).toFixed(1)}%`}`)),
      el('div', {},
        el('h3', {}, 'Releases and rollout'),
        el('table', { class: 'releases' }, el('thead', {}, el('tr', {}, el('th', {}, 'revision'), el('th', {}, 'clients'), el('th', {}, 'rollout'), el('th', {}, 'controls'))), releasesBody),
        p.failures.length ? el('p', { class: 'health-failed' }, `${p.failures.length} client(s) failed or went back: ${p.failures.map((f) => f.client).join(', ')}`) : null)),
    el('h3', {}, 'Clients'),
    el('table', { class: 'clients' }, el('thead', {}, el('tr', {}, ...['client', 'revision', 'stage', 'ring', 'health', 'last update', 'reported'].map((h) => el('th', {}, h)))), clientsBody))
  return section
}

function renderPool(state) {
  const body = document.getElementById('pool-body')
  if (!state.pool) {
    body.replaceChildren(el('p', { class: 'empty' }, state.poolError ? `no answer from the proxy: ${state.poolError}` : 'not read yet'))
    return
  }
  const servers = state.pool.servers || []
  body.replaceChildren(
    el('p', { class: 'empty' }, `proxy ${state.pool.proxy}: ${servers.filter((s) => s.healthy).length} of ${servers.length} server(s) healthy`),
    el('table', {}, el('thead', {}, el('tr', {}, ...['server', 'state', 'weight', 'synced', 'requests', 'served', 'last seen'].map((h) => el('th', {}, h)))),
      el('tbody', {}, ...servers.map((s) => el('tr', { 'data-server': s.id },
        el('td', { class: 'mono' }, s.id),
        el('td', { class: s.healthy ? '' : 'health-failed' }, s.state + (s.suspectReason ? `: ${s.suspectReason}` : '')),
        el('td', { class: 'num' }, s.weight),
        el('td', { class: 'mono synced' }, Object.entries(s.synced || {}).map(([p, r]) => `${p.slice(0, 8)}…=r${r}`).join(' ') || '–'),
        el('td', { class: 'num' }, s.requests),
        el('td', { class: 'num' }, bytes(s.bytesServed || 0)),
        el('td', { class: 'mono' }, s.lastSeen ? clock(s.lastSeen) : ''))))))
}

function describeAlert(a) {
  const b = a.body && typeof a.body === 'object' ? a.body : {}
  if (b.type === 'release.parked') return `server ${b.server} parked r${b.rev}: ${b.reason}`
  if (b.type === 'sync.no-space') return `server ${b.server} waits for disk space to sync r${b.rev}: ${b.reason}`
  if (b.type === 'health') return `r${b.rev} failed its ${b.phase === 'postInstall' ? 'post-install hook' : 'health check'}, rolled back to r${b.to} (${b.reason})`
  if (typeof b.path === 'string') return `${b.path}: changed by hand and out of date (at r${b.rev})`
  return JSON.stringify(a.body).slice(0, 300)
}

function renderAlerts(state) {
  const list = document.getElementById('alert-list')
  const alerts = [...state.alerts].reverse()
  list.replaceChildren(...(alerts.length ? alerts.map((a) => el('li', { 'data-seq': a.seq },
    el('span', { class: 'mono' }, `${a.time.slice(0, 19).replace('T', ' ')} `), el('code', {}, `${a.product.slice(0, 8)}… `), `${a.from}: ${describeAlert(a)}`))
    : [el('li', { class: 'empty' }, state.alertsError ? `alerts not read: ${state.alertsError}` : 'no alert in the last 24 h')]))
}

function render(state) {
  controls = state.controls
  const off = document.getElementById('controls-off')
  off.hidden = controls.enabled
  off.textContent = controls.enabled ? '' : `Controls are off: ${controls.reason}`
  const link = document.getElementById('inspect-link')
  link.hidden = !state.inspectUrl
  if (state.inspectUrl) link.href = state.inspectUrl
  document.getElementById('inspect-note').hidden = !!state.inspectUrl
  const failed = state.console.error ? ` — the last reading failed: ${state.console.error.message}` : ''
  const updated = document.getElementById('updated')
  updated.textContent = `${state.at ? `read ${clock(state.at)} UTC` : 'first reading…'}${failed}`
  updated.className = failed ? 'status down' : 'status'
  const products = document.getElementById('products')
  const fleet = state.fleet
  // Rows of releases no longer listed are let go (a typed percent goes with them).
  const listed = new Set((fleet ? fleet.products : []).flatMap((p) => p.releases.map((r) => `${p.product}/${r.rev}`)))
  for (const key of releaseRows.keys()) if (!listed.has(key)) releaseRows.delete(key)
  if (fleet && fleet.products.length) {
    const old = new Map([...products.querySelectorAll('.product')].map((n) => [n.dataset.product, n]))
    products.replaceChildren(...fleet.products.map((p) => productSection(p, state.series, old.get(p.product))))
  } else {
    products.replaceChildren(el('p', { class: 'empty' }, fleet ? 'no product in the root and no client has reported yet' : 'first reading…'))
  }
  renderPool(state)
  renderAlerts(state)
}

let polling = null
async function poll() {
  if (polling) return polling
  polling = (async () => {
    const status = document.getElementById('status')
    try {
      render(await api('/api/state'))
      status.textContent = 'live'
      status.className = 'status'
    } catch (err) {
      status.textContent = `not live: ${err.message}`
      status.className = 'status down'
    } finally {
      polling = null
    }
  })()
  return polling
}

poll()
setInterval(poll, POLL_MS)
