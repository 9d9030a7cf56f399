// The data a report page carries (in a <script type="application/json">),
// written by html.ts and read by page-client.ts. Lines use short keys: a
// kernel build has ten thousand of them.
import type { BuildMeta, LineKind } from '../builds/record.js';
import type { DirectoryRow, StageRow } from './analysis.js';
import type { Stage } from './command.js';
import type { SizeReport } from './sizes.js';

export interface PageLine {
  /** Kind. */
  k: LineKind;
  /** Start, microseconds after the build's start, and duration. */
  s: number;
  d: number;
  /** Lane, 0-based within its group; m: the line runs a sub-make (drawn in the make lanes). */
  l: number;
  m?: 1;
  /** Exit status. */
  x: number;
  /** Label (the target), stage. */
  t: string;
  g: Stage | 'sub-make';
  /** Command: indexes into PageData.words, concatenated. Kernel lines repeat the same hundred flags. */
  c: number[];
  /** Working directory: an index into PageData.words. */
  w: number;
  /** Outputs, as the developer names them. */
  o: string[];
  /** Why it ran, passed through or was restored. */
  n?: string;
}

export interface PageData {
  /** wallUs: from start to end; savedUs: the recipe time the hits' runs took when they ran. */
  build: Omit<BuildMeta, 'curve' | 'format'> & { wallUs: number; savedUs: number };
  lanes: { work: number; make: number };
  words: string[];
  lines: PageLine[];
  critical: { lines: number[]; us: number };
  slowest: number[];
  directories: DirectoryRow[];
  stages: StageRow[];
  /** Undefined when the files were not measured. */
  sizes?: SizeReport;
}
