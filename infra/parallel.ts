// Work over a list with at most `limit` items in flight: each of `limit` workers takes the next
// item when it is done with its own. A failure rejects at once; the other workers finish the
// items they hold and go on with the list, as they did where this loop was written out by hand.
export async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!)
  }))
}
