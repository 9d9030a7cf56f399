// Human-readable `kbx stats`. Names are the stable counter names of the JSON.

export function formatStats(data: Record<string, unknown>): string {
  const counts = (data.counts ?? {}) as Record<string, number>;
  const lines: string[] = [];
  const hit = counts.hit ?? 0;
  const miss = counts.miss ?? 0;
  const lookups = hit + miss;
  lines.push(`cache hits            ${hit}${lookups ? `  (${((100 * hit) / lookups).toFixed(1)} %)` : ''}`);
  lines.push(`cache misses          ${miss}`);
  lines.push(`stored                ${counts.stored ?? 0}`);
  const rest = Object.entries(counts)
    .filter(([k]) => !['hit', 'miss', 'stored'].includes(k))
    .sort(([a], [b]) => a.localeCompare(b));
  for (const [k, v] of rest) lines.push(`${k.padEnd(21)} ${v}`);
  if (typeof data.savedUs === 'number') lines.push(`recipe time saved     ${(data.savedUs / 1e6).toFixed(1)} s`);
  if (typeof data.storeBytes === 'number')
    lines.push(
      `store size            ${(data.storeBytes / 2 ** 20).toFixed(1)} MiB of ${((data.maxSize as number) / 2 ** 30).toFixed(1)} GiB`,
    );
  return lines.join('\n') + '\n';
}
