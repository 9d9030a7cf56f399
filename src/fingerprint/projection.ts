// Inputs valued by the part of a file a line's tools read (DESIGN.md §8).
// `pahole --btf_base vmlinux` reads vmlinux's .BTF, not its code: valued by
// its whole bytes, vmlinux changes on every relink and every module's BTF
// line misses. A rule (kept with the knowledge of the tools, src/kernel)
// names, for a command, the inputs a projection may value; the value is
// `part:<projection>:<digest>`. A rule holds only for a run whose programs it
// knows (a $(PAHOLE) that is a wrapper script reads what it likes), and a
// file the projection cannot read (not an ELF, malformed) is valued whole.
//
// The stored value names its projection, but the store is untrusted: a
// lookup values a path by a projection only when the rule for the line's own
// command names that path with that projection; otherwise the stored value
// cannot equal the file's digest and the set does not hold. A reader without
// this code finds `part:` values equal to nothing (a miss), so keys of lines
// no rule names are unchanged.

/** A way to value a file by part of its bytes. */
export interface Projection {
  /** Stable, part of every value it makes; change it when the bytes kept change. */
  readonly name: string;
  /** Digest of the kept part of the file at `path`, or undefined if the file is not what the projection expects (then valued whole). */
  digest(path: string): string | undefined;
}

/** Inputs of one line valued by a projection, by absolute path. */
export type LineProjections = ReadonlyMap<string, Projection>;

export interface ProjectionRule {
  /** The inputs a line with this command text, run in cwd, may value by a projection; undefined: none. Fast for the commands it does not name (every lookup asks). */
  inputs(command: string, cwd: string): LineProjections | undefined;
  /** Whether a run that executed these programs (absolute paths) ran only tools whose reads the projections describe. */
  confirms(execed: readonly string[]): boolean;
}

export const PART_PREFIX = 'part:';

export function partValue(p: Projection, digest: string): string {
  return `${PART_PREFIX}${p.name}:${digest}`;
}

/** The rules of a daemon. Asked at every lookup of a stored command and every miss: a rule answers a command it does not name at once (a substring test). */
export class Projections {
  constructor(private readonly rules: readonly ProjectionRule[]) {}

  /** The projections the line's command allows, with the rule that allowed them. */
  private find(command: string, cwd: string): { rule: ProjectionRule; inputs: LineProjections } | undefined {
    for (const rule of this.rules) {
      const inputs = rule.inputs(command, cwd);
      if (inputs && inputs.size > 0) return { rule, inputs };
    }
    return undefined;
  }

  /** For a lookup: the projections a stored `part:` value may use for this command. */
  forLookup(command: string, cwd: string): LineProjections | undefined {
    return this.find(command, cwd)?.inputs;
  }

  /** For storing a run: the projections to value its inputs with, if its programs are ones the rule knows. */
  forRun(command: string, cwd: string, execed: readonly string[]): LineProjections | undefined {
    const f = this.find(command, cwd);
    return f && f.rule.confirms(execed) ? f.inputs : undefined;
  }
}
