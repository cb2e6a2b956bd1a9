// The page of `upswarm inspect` (issue 12 item 4): the live actors from /events (server-sent
// events), each one's statechart drawn from its machine definition (the config of its
// @xstate.actor message), the current state highlighted, the states it went through and its
// recent events. Plain JS and SVG, served by the command itself: no network beyond it.
// `#follow=<machine id>` selects each new actor of that machine as it appears.
'use strict'

const MAX_TRAIL = 40
const MAX_EVENTS = 20
const MAX_LISTED = 300

/** key `<process>/<sessionId>` → actor view (as infra/inspect/board.ts keeps it). */
const actors = new Map()
let selected = null
let userChose = false
const follow = new URLSearchParams(location.hash.slice(1)).get('follow')

// ---- the model -------------------------------------------------------------------------------

function apply(process, m) {
  const key = `${process}/${m.sessionId}`
  let a = actors.get(key)
  const fresh = !a
  if (!a) {
    a = { key, process, sessionId: m.sessionId, name: m.sessionId, status: 'active', trail: [], events: [] }
    actors.set(key, a)
  }
  a.updatedAt = Number(m.createdAt) || Date.now()
  if (m.type === '@xstate.actor') {
    a.name = m.name
    a.definition = m.definition
    a.parentId = m.parentId
    takeSnapshot(a, m.snapshot)
  } else if (m.type === '@xstate.snapshot') {
    takeSnapshot(a, m.snapshot)
    if (m.event && m.event.type) takeEvent(a, m.event.type)
  } else if (m.type === '@xstate.event') {
    takeEvent(a, m.event.type)
  }
  return { a, fresh }
}

function takeSnapshot(a, s) {
  if (!s) return
  if (s.status) a.status = s.status
  if (s.context !== undefined) a.context = s.context
  if (s.value === undefined) return
  a.value = s.value
  if (JSON.stringify(a.trail[a.trail.length - 1]) !== JSON.stringify(s.value)) {
    a.trail.push(s.value)
    if (a.trail.length > MAX_TRAIL) a.trail.shift()
  }
}

function takeEvent(a, type) {
  a.events.push({ type, at: a.updatedAt })
  if (a.events.length > MAX_EVENTS) a.events.shift()
}

const isMachine = (a) => typeof a.definition === 'string' && a.definition.includes('"states"')
const showValue = (v) => (v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v))

// ---- the statechart: parse, lay out, draw -----------------------------------------------------

const charts = new Map()

function parseMachine(text) {
  const cfg = JSON.parse(text)
  const root = stateNode(cfg, cfg.id || 'machine', null)
  const all = []
  ;(function walk(n) { all.push(n); n.children.forEach(walk) })(root)
  const edges = []
  for (const n of all) for (const t of transitionsOf(n.cfg)) {
    for (const target of t.targets) {
      const to = resolve(root, n, target)
      if (to) edges.push({ from: n, to, label: t.label })
    }
  }
  return { root, all, edges }
}

function stateNode(cfg, key, parent) {
  const n = { key, parent, cfg: cfg || {}, path: parent ? [...parent.path, key] : [], children: [] }
  n.id = n.path.join('.')
  n.type = n.cfg.type || (n.cfg.states ? 'compound' : 'atomic')
  n.initial = typeof n.cfg.initial === 'string' ? n.cfg.initial : n.cfg.initial && n.cfg.initial.target
  for (const [k, c] of Object.entries(n.cfg.states || {})) n.children.push(stateNode(c, k, n))
  return n
}

function eventLabel(type) {
  if (type.startsWith('xstate.after.')) return `after ${type.split('.')[2]}`
  if (type.startsWith('xstate.done.')) return 'done'
  if (type.startsWith('xstate.error.')) return 'error'
  return type
}

function guardLabel(g) {
  if (!g) return ''
  const name = typeof g === 'string' ? g : g.type
  return name ? ` [${name}]` : ''
}

/** Every transition a state's config declares: on, always, after, invoke's onDone/onError, onDone. */
function transitionsOf(cfg) {
  const out = []
  const add = (label, value) => {
    for (const t of Array.isArray(value) ? value : [value]) {
      if (t === undefined || t === null) continue
      const target = typeof t === 'string' ? t : t.target
      const targets = target === undefined ? [] : Array.isArray(target) ? target : [target]
      out.push({ label: label + guardLabel(typeof t === 'object' ? t.guard : undefined), targets: targets.filter((x) => typeof x === 'string') })
    }
  }
  for (const [type, t] of Object.entries(cfg.on || {})) add(eventLabel(type), t)
  if (cfg.always) add('always', cfg.always)
  for (const [delay, t] of Object.entries(cfg.after || {})) add(`after ${delay}`, t)
  for (const inv of Array.isArray(cfg.invoke) ? cfg.invoke : cfg.invoke ? [cfg.invoke] : []) {
    if (inv.onDone) add('done', inv.onDone)
    if (inv.onError) add('error', inv.onError)
  }
  if (cfg.onDone) add('done', cfg.onDone)
  return out
}

function resolve(root, from, target) {
  const walk = (n, parts) => {
    for (const p of parts) {
      n = n && n.children.find((c) => c.key === p)
    }
    return n || null
  }
  if (target.startsWith('#')) {
    const [id, ...rest] = target.slice(1).split('.')
    if (id === root.key) return walk(root, rest)
    const byId = []
    ;(function find(n) { if (n.cfg.id === id) byId.push(n); n.children.forEach(find) })(root)
    return byId[0] ? walk(byId[0], rest) : null
  }
  if (target.startsWith('.')) return walk(from, target.slice(1).split('.'))
  return walk(from.parent || from, target.split('.'))
}

const PAD = 12
const HEADER = 22
const GAP_X = 64
const GAP_Y = 62
const textWidth = (s) => s.length * 7

function layout(n, edges) {
  if (n.children.length === 0) {
    n.w = Math.max(76, textWidth(n.key) + 26)
    n.h = 30
    return
  }
  for (const c of n.children) layout(c, edges)
  // Rows by distance from the initial state over the transitions between these children.
  const childOf = (s) => {
    while (s && s.parent !== n) s = s.parent
    return s
  }
  const next = new Map(n.children.map((c) => [c, new Set()]))
  for (const e of edges) {
    const a = childOf(e.from)
    const b = childOf(e.to)
    if (a && b && a !== b) next.get(a).add(b)
  }
  const start = n.children.find((c) => c.key === n.initial) || n.children[0]
  const rank = new Map([[start, 0]])
  const queue = [start]
  while (queue.length) {
    const c = queue.shift()
    for (const d of next.get(c)) if (!rank.has(d)) { rank.set(d, rank.get(c) + 1); queue.push(d) }
  }
  // Final states close the chart: one row at the bottom, as do states no transition reaches.
  for (const c of n.children) if (c.type === 'final') rank.delete(c)
  const deepest = Math.max(0, ...rank.values())
  for (const c of n.children) if (!rank.has(c)) rank.set(c, deepest + 1)
  const rows = []
  for (const c of n.children) (rows[rank.get(c)] ||= []).push(c)
  const packed = rows.filter(Boolean)
  const widths = packed.map((r) => r.reduce((s, c) => s + c.w, 0) + GAP_X * (r.length - 1))
  n.w = Math.max(textWidth(n.key) + 2 * PAD, ...widths) + 2 * PAD + (n.parent ? 0 : 120)
  let y = HEADER + PAD
  packed.forEach((r, i) => {
    const h = Math.max(...r.map((c) => c.h))
    let x = PAD + (n.w - 2 * PAD - widths[i]) / 2
    for (const c of r) {
      c.x = x
      c.y = y + (h - c.h) / 2
      x += c.w + GAP_X
    }
    y += h + GAP_Y
  })
  n.h = y - GAP_Y + PAD
}

function place(n, ox, oy) {
  n.ax = ox + (n.x || 0)
  n.ay = oy + (n.y || 0)
  for (const c of n.children) place(c, n.ax, n.ay)
}

/** Where the segment from the centre of `n` towards (tx, ty) leaves its box. */
function border(n, tx, ty) {
  const cx = n.ax + n.w / 2
  const cy = n.ay + n.h / 2
  const dx = tx - cx
  const dy = ty - cy
  if (dx === 0 && dy === 0) return [cx, cy]
  const s = Math.min(dx ? (n.w / 2) / Math.abs(dx) : Infinity, dy ? (n.h / 2) / Math.abs(dy) : Infinity)
  return [cx + dx * s, cy + dy * s]
}

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c])

function chartOf(definition) {
  let chart = charts.get(definition)
  if (chart) return chart
  const m = parseMachine(definition)
  layout(m.root, m.edges)
  place(m.root, 10, 10)
  const parts = []
  for (const n of m.all) {
    const cls = ['state', n.children.length ? 'compound' : '', n.type === 'final' ? 'final' : ''].filter(Boolean).join(' ')
    parts.push(`<rect class="${cls}" data-state="${esc(n.id)}" x="${n.ax}" y="${n.ay}" width="${n.w}" height="${n.h}" rx="6"/>`)
    const label = (n.parent && n.parent.initial === n.key ? '▸ ' : '') + n.key
    parts.push(n.children.length
      ? `<text x="${n.ax + 8}" y="${n.ay + 15}" font-weight="600">${esc(label)}</text>`
      : `<text x="${n.ax + n.w / 2}" y="${n.ay + n.h / 2 + 4}" text-anchor="middle">${esc(label)}</text>`)
  }
  const pairs = new Map()
  const leaves = m.all.filter((n) => n.children.length === 0)
  const placed = []
  for (const e of m.edges) {
    const key = [e.from.id, e.to.id].sort().join('|')
    const k = pairs.get(key) || 0
    pairs.set(key, k + 1)
    if (e.from === e.to) {
      const x = e.from.ax + e.from.w
      const y = e.from.ay + e.from.h / 2
      parts.push(`<path class="edge" marker-end="url(#arrow)" d="M${x} ${y - 6} C ${x + 26 + 8 * k} ${y - 22}, ${x + 26 + 8 * k} ${y + 22}, ${x} ${y + 6}"/>`)
      parts.push(`<text class="label" x="${x + 30 + 8 * k}" y="${y + 3}">${esc(e.label)}</text>`)
      continue
    }
    const [x1, y1] = border(e.from, e.to.ax + e.to.w / 2, e.to.ay + e.to.h / 2)
    const [x2, y2] = border(e.to, e.from.ax + e.from.w / 2, e.from.ay + e.from.h / 2)
    // Parallel transitions between the same two states bend apart; a transition that would cross
    // another state's box bends further out until it does not.
    const base = (k % 2 ? -1 : 1) * Math.ceil(k / 2) * 22 + (y2 < y1 ? 28 : 0)
    const len = Math.hypot(x2 - x1, y2 - y1) || 1
    const control = (bend) => [(x1 + x2) / 2 - ((y2 - y1) / len) * bend, (y1 + y2) / 2 + ((x2 - x1) / len) * bend]
    const others = leaves.filter((b) => b !== e.from && b !== e.to)
    const crosses = (mx, my) => {
      for (let t = 0.08; t < 0.93; t += 0.06) {
        const px = (1 - t) * (1 - t) * x1 + 2 * (1 - t) * t * mx + t * t * x2
        const py = (1 - t) * (1 - t) * y1 + 2 * (1 - t) * t * my + t * t * y2
        if (others.some((b) => px > b.ax - 4 && px < b.ax + b.w + 4 && py > b.ay - 4 && py < b.ay + b.h + 4)) return true
      }
      return false
    }
    let [mx, my] = control(base)
    for (const extra of [50, -50, 100, -100, 150, -150, 200, -200, 260, -260]) {
      if (!crosses(mx, my)) break
      ;[mx, my] = control(base + extra)
    }
    parts.push(`<path class="edge" marker-end="url(#arrow)" d="M${x1} ${y1} Q ${mx} ${my} ${x2} ${y2}"/>`)
    // The label goes where it covers no state and no other label, along the curve.
    const lw = e.label.length * 6 + 4
    const box = (t) => {
      const px = (1 - t) * (1 - t) * x1 + 2 * (1 - t) * t * mx + t * t * x2
      const py = (1 - t) * (1 - t) * y1 + 2 * (1 - t) * t * my + t * t * y2
      return { x: px - lw / 2, y: py - 8, w: lw, h: 13, px, py }
    }
    const overlaps = (b) => [...leaves.map((n) => ({ x: n.ax, y: n.ay, w: n.w, h: n.h })), ...placed]
      .some((o) => b.x < o.x + o.w && o.x < b.x + b.w && b.y < o.y + o.h && o.y < b.y + b.h)
    const spot = [0.5, 0.38, 0.62, 0.28, 0.72, 0.2, 0.8].map(box).find((b) => !overlaps(b)) || box(0.5)
    placed.push(spot)
    parts.push(`<text class="label" text-anchor="middle" x="${spot.px}" y="${spot.py + 3}">${esc(e.label)}</text>`)
  }
  const width = m.root.w + 90
  const height = m.root.h + 20
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" fill="#9aa3b2"/></marker></defs>' +
    `${parts.join('')}</svg>`
  chart = { svg }
  charts.set(definition, chart)
  return chart
}

/** The state ids a snapshot value makes active: 'a' → ['a']; { a: 'b' } → ['a', 'a.b']. */
function activeIds(value, prefix) {
  if (typeof value === 'string') return [[...prefix, value].join('.')]
  if (value && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) => [[...prefix, k].join('.'), ...activeIds(v, [...prefix, k])])
  }
  return []
}

// ---- the page --------------------------------------------------------------------------------

const $ = (id) => document.getElementById(id)

function renderList() {
  const all = [...actors.values()]
  const machines = all.filter(isMachine).sort((a, b) => (a.status === 'active') - (b.status === 'active') || a.updatedAt - b.updatedAt).reverse().slice(0, MAX_LISTED)
  const byProcess = new Map()
  for (const a of machines) (byProcess.get(a.process) || byProcess.set(a.process, []).get(a.process)).push(a)
  const html = []
  for (const [process, list] of [...byProcess.entries()].sort()) {
    html.push(`<h2>${esc(process)}</h2><ul>`)
    for (const a of list) {
      const cls = [a.key === selected ? 'selected' : '', a.status !== 'active' ? 'ended' : ''].filter(Boolean).join(' ')
      html.push(`<li class="${cls}" data-key="${esc(a.key)}" data-machine="${esc(a.name)}" data-status="${esc(a.status)}"><span>${esc(a.name)}</span><span class="state">${esc(showValue(a.value))}</span></li>`)
    }
    html.push('</ul>')
  }
  const others = all.length - all.filter(isMachine).length
  if (others > 0) html.push(`<div class="hidden">${others} promise/callback actor(s) not listed</div>`)
  $('list').innerHTML = html.join('')
  $('count').textContent = `${machines.length} machine actor(s), ${byProcess.size} process(es)`
}

function renderDetail() {
  const a = selected && actors.get(selected)
  if (!a) return
  const main = $('detail')
  if (main.dataset.key !== a.key) {
    main.dataset.key = a.key
    main.innerHTML = `<h2 id="title"></h2><div class="sub" id="sub"></div><div id="chart"></div>` +
      '<div class="panes"><div><h3>States, in order</h3><div id="trail"></div><h3 style="margin-top:12px">Recent events</h3><ul id="events"></ul></div>' +
      '<div><h3>Context (bounded)</h3><pre id="context"></pre></div></div>'
    $('chart').innerHTML = isMachine(a) ? chartOf(a.definition).svg : '<p class="empty">No machine definition (a promise or callback actor).</p>'
  }
  $('title').textContent = a.name
  $('sub').textContent = `${a.process} · session ${a.sessionId}${a.parentId ? ` · child of ${a.parentId}` : ''} · ${a.status}`
  const active = new Set(activeIds(a.value, []))
  const chart = $('chart')
  chart.dataset.value = showValue(a.value)
  chart.dataset.status = a.status
  for (const r of chart.querySelectorAll('rect[data-state]')) r.classList.toggle('active', r.dataset.state === '' || active.has(r.dataset.state))
  $('trail').textContent = a.trail.map(showValue).join(' → ')
  $('events').innerHTML = a.events.slice().reverse().map((e) => `<li>${esc(new Date(e.at).toISOString().slice(11, 23))} ${esc(e.type)}</li>`).join('')
  $('context').textContent = JSON.stringify(a.context, null, 2) || ''
}

let listPending = false
function scheduleList() {
  if (listPending) return
  listPending = true
  requestAnimationFrame(() => {
    listPending = false
    renderList()
  })
}

function select(key, byUser) {
  selected = key
  if (byUser) userChose = true
  renderDetail()
  scheduleList()
}

$('list').addEventListener('click', (ev) => {
  const li = ev.target.closest('li[data-key]')
  if (li) select(li.dataset.key, true)
})

function onMessage(process, m) {
  const { a, fresh } = apply(process, m)
  // Following a machine: each new actor of it is shown as it appears; else the first one seen.
  if (fresh || m.type === '@xstate.actor') {
    if (!userChose && isMachine(a) && (follow ? a.name === follow : !selected)) selected = a.key
  }
  if (a.key === selected) renderDetail()
  scheduleList()
}

const source = new EventSource('events')
source.addEventListener('open', () => {
  $('status').textContent = 'live'
  $('status').classList.remove('down')
})
source.addEventListener('error', () => {
  $('status').textContent = 'disconnected: retrying…'
  $('status').classList.add('down')
})
source.addEventListener('board', (ev) => {
  actors.clear()
  for (const a of JSON.parse(ev.data).actors) actors.set(`${a.process}/${a.sessionId}`, { ...a, key: `${a.process}/${a.sessionId}` })
  if (!selected || !actors.has(selected)) {
    const first = [...actors.values()].filter(isMachine).filter((a) => !follow || a.name === follow).pop()
    selected = first ? first.key : null
  }
  renderDetail()
  renderList()
})
source.addEventListener('inspect', (ev) => {
  const { process, message } = JSON.parse(ev.data)
  onMessage(process, message)
})
