// Hand-written SVG bar charts (no dependency): grouped bars with value labels, an optional
// reference mark per group (a bound, a goal), several panels stacked in one picture.
import { formatNumber } from './report.ts'

export interface BarSeries {
  name: string
  values: (number | null)[]
}

export interface BarPanel {
  title: string
  yLabel: string
  /** One label per group of bars (x axis). */
  groups: string[]
  series: BarSeries[]
  /** A dashed mark across each group (e.g. the theoretical bound). */
  mark?: { name: string; values: (number | null)[] }
}

const PALETTE = ['#2b6cb0', '#dd6b20', '#38a169', '#805ad5', '#c53030', '#718096']
const WIDTH = 760
const PANEL_HEIGHT = 300
const MARGIN = { left: 70, right: 20, top: 56, bottom: 50 }

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** A "nice" axis maximum and tick step for values up to `max`. */
function niceScale(max: number): { top: number; step: number } {
  if (!(max > 0)) return { top: 1, step: 0.25 }
  const raw = max / 5
  const mag = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag
  return { top: Math.ceil(max / step) * step, step }
}

const LEGEND_LINE = 15

/** Legend entries laid out left to right, wrapping at the panel's right edge. */
function legend(p: BarPanel, y0: number): { svg: string[]; lines: number } {
  const items = [
    ...p.series.map((s, i) => ({ name: s.name, swatch: (x: number, y: number) => `<rect x="${x}" y="${y - 10}" width="11" height="11" fill="${PALETTE[i % PALETTE.length]}"/>`, pad: 15 })),
    ...(p.mark ? [{ name: p.mark.name, swatch: (x: number, y: number) => `<line x1="${x}" x2="${x + 18}" y1="${y - 4}" y2="${y - 4}" stroke="#000" stroke-dasharray="4 3" stroke-width="1.5"/>`, pad: 22 }] : []),
  ]
  const svg: string[] = []
  let x = MARGIN.left
  let line = 0
  for (const it of items) {
    const w = it.pad + it.name.length * 6.6 + 15
    if (x > MARGIN.left && x + w > WIDTH - MARGIN.right) {
      x = MARGIN.left
      line++
    }
    const y = y0 + 42 + line * LEGEND_LINE
    svg.push(it.swatch(x, y), `<text x="${x + it.pad}" y="${y}" font-size="11">${esc(it.name)}</text>`)
    x += w
  }
  return { svg, lines: line + 1 }
}

function panel(p: BarPanel, y0: number): string {
  const { svg: legendSvg, lines } = legend(p, y0)
  const plotTop = MARGIN.top + (lines - 1) * LEGEND_LINE
  const plotW = WIDTH - MARGIN.left - MARGIN.right
  const plotH = PANEL_HEIGHT - plotTop - MARGIN.bottom
  const all = [...p.series.flatMap((s) => s.values), ...(p.mark?.values ?? [])].filter((v): v is number => v !== null && Number.isFinite(v))
  const { top, step } = niceScale(Math.max(0, ...all))
  const y = (v: number): number => y0 + plotTop + plotH - (v / top) * plotH
  const groupW = plotW / Math.max(1, p.groups.length)
  const barW = Math.min(60, (groupW * 0.8) / Math.max(1, p.series.length))
  const out: string[] = []
  out.push(`<text x="${MARGIN.left}" y="${y0 + 22}" font-size="15" font-weight="bold">${esc(p.title)}</text>`)
  out.push(...legendSvg)
  // Axes and grid.
  for (let v = 0; v <= top + step / 2; v += step) {
    out.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e2e8f0"/>`)
    out.push(`<text x="${MARGIN.left - 6}" y="${(y(v) + 4).toFixed(1)}" font-size="10" text-anchor="end">${Number(v.toPrecision(6))}</text>`)
  }
  out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${y0 + plotTop}" y2="${y(0)}" stroke="#4a5568"/>`)
  out.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y(0)}" y2="${y(0)}" stroke="#4a5568"/>`)
  const midY = y0 + plotTop + plotH / 2
  out.push(`<text x="16" y="${midY}" font-size="11" text-anchor="middle" transform="rotate(-90 16 ${midY})">${esc(p.yLabel)}</text>`)
  // Bars.
  for (const [g, label] of p.groups.entries()) {
    const gx = MARGIN.left + g * groupW + (groupW - barW * p.series.length) / 2
    for (const [i, s] of p.series.entries()) {
      const v = s.values[g]
      const x = gx + i * barW
      if (v === null || v === undefined || !Number.isFinite(v)) {
        out.push(`<text x="${(x + barW / 2).toFixed(1)}" y="${(y(0) - 4).toFixed(1)}" font-size="9" text-anchor="middle" fill="#718096">n/a</text>`)
        continue
      }
      out.push(`<rect x="${x.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(y(0) - y(v)).toFixed(1)}" fill="${PALETTE[i % PALETTE.length]}"><title>${esc(`${s.name}, ${label}: ${formatNumber(v)}`)}</title></rect>`)
      out.push(`<text x="${(x + barW / 2 - 1).toFixed(1)}" y="${(y(v) - 3).toFixed(1)}" font-size="9" text-anchor="middle">${formatNumber(v)}</text>`)
    }
    const m = p.mark?.values[g]
    if (m !== null && m !== undefined && Number.isFinite(m)) {
      const x1 = gx - 4
      const x2 = gx + barW * p.series.length + 2
      out.push(`<line x1="${x1.toFixed(1)}" x2="${x2.toFixed(1)}" y1="${y(m).toFixed(1)}" y2="${y(m).toFixed(1)}" stroke="#000" stroke-dasharray="4 3" stroke-width="1.5"><title>${esc(`${p.mark!.name}, ${label}: ${formatNumber(m)}`)}</title></line>`)
    }
    out.push(`<text x="${(MARGIN.left + g * groupW + groupW / 2).toFixed(1)}" y="${(y(0) + 18).toFixed(1)}" font-size="12" text-anchor="middle">${esc(label)}</text>`)
  }
  return out.join('\n')
}

/** One SVG document with the panels stacked vertically, and a caption line at the bottom. */
export function barChart(panels: BarPanel[], caption: string): string {
  const height = panels.length * PANEL_HEIGHT + 30
  const body = panels.map((p, i) => panel(p, i * PANEL_HEIGHT)).join('\n')
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    body,
    `<text x="${MARGIN.left}" y="${height - 10}" font-size="10" fill="#4a5568">${esc(caption)}</text>`,
    '</svg>',
    '',
  ].join('\n')
}
