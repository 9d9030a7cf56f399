// Everything the link does that someone may want to see, as values: the CLI
// prints them in kbuild's format, tests and the benchmark read the report.

export interface LinkReport {
  /** 'single' linked once and patched; 'stock' ran the tree's script. */
  mode: 'single' | 'stock';
  /** Why the tree's script ran instead (absent in single mode). */
  reason?: string;
  /** Full links of vmlinux kbx ran itself (the BTF link counts; the stock script's do not). */
  links: number;
  kallsyms?: {
    symbols: number;
    /** Bytes of the reserved table in vmlinux (all slots). */
    reservedBytes: number;
    /** Bytes the final tables use. */
    tableBytes: number;
    paddingBytes: number;
    /** The reservation was the previous link's, for the same predicted symbols. */
    reservationReused?: boolean;
    /**
     * The name tables: the previous link's (the same final symbol list), the
     * previous link's compressed names in a new order (the same symbols), or
     * computed.
     */
    names?: 'kept' | 'reordered' | 'computed';
    /** Per table: [reserved, used]. */
    slots: Record<string, [number, number]>;
  };
  /** With BTF: written into room reserved in the single link, or made by the BTF link before it. */
  btf?: 'room' | 'linked';
  seconds: number;
  /** Seconds from the process's start to the link's: node and kbx's modules loading. */
  startup?: number;
  /** What the single link spent its time on, in order of start (steps may overlap). */
  steps?: LinkStep[];
}

export interface LinkStep {
  step: string;
  /** Start, in seconds from the process's start. */
  at: number;
  seconds: number;
}

export type LinkEvent =
  /** One of the script's `  LD      vmlinux` progress lines. */
  | { kind: 'info'; tag: string; target: string }
  /** A command about to run (printed under V=1 like the script's set -x). */
  | { kind: 'trace'; argv: readonly string[] }
  | { kind: 'fallback'; reason: string }
  /** Something the user should know that is not a failure of its own (printed once, on stderr). */
  | { kind: 'warning'; message: string }
  | { kind: 'done'; report: LinkReport };

export type LinkListener = (e: LinkEvent) => void;

/** The single link cannot be used for this tree or this build; the stock script runs. */
export class LinkMisfit extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'LinkMisfit';
  }
}

/** A step of the link failed the way a command fails under the script's `set -e`. */
export class LinkStepError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'LinkStepError';
  }
}
