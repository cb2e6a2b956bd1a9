// Items cut into consecutive groups of at most `maxBytes` (a single larger item is a group of its
// own) and `maxCount` items: packs of units (issue 13 item 4), batches of small files asked at once.
export function groupsOf<T>(items: Iterable<T>, bytesOf: (item: T) => number, maxBytes: number, maxCount: number): T[][] {
  const groups: T[][] = []
  let group: T[] = []
  let bytes = 0
  for (const item of items) {
    const n = bytesOf(item)
    if (group.length > 0 && (bytes + n > maxBytes || group.length >= maxCount)) {
      groups.push(group)
      group = []
      bytes = 0
    }
    group.push(item)
    bytes += n
  }
  if (group.length) groups.push(group)
  return groups
}
