import { renameSync, writeFileSync } from 'node:fs';

/** Writes a file aside and renames it into place: readers never see half of it. */
export function writeAtomic(path: string, data: Uint8Array | string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}
