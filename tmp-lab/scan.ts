import { scanTree } from '../infra/release/scan.ts'
import { DEFAULT_CHUNKER } from '../infra/formats/release.ts'
import { buildTree } from '../infra/formats/tree-builder.ts'
const t = performance.now()
const s = await scanTree(process.argv[2]!, { chunker: DEFAULT_CHUNKER })
const t1 = performance.now()
buildTree(s.entries.map((e) => (e.kind === 'file' && s.chunks.has(e.path) ? { ...e, chunks: s.chunks.get(e.path)! } : e)), DEFAULT_CHUNKER)
console.log(s.entries.length, 'scan', (t1 - t).toFixed(0), 'ms; build', (performance.now() - t1).toFixed(0), 'ms')
