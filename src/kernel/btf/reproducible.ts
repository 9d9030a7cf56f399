// vmlinux's BTF, the same bytes whenever its types are the same. Linux 6.1's
// scripts/pahole-flags.sh gives pahole ≥ 1.22 `-j`, which encodes the
// compile units in parallel and numbers the types in the order the threads
// finish: three encodings of one vmlinux with pahole 1.24 -j gave three
// different .BTF, without -j the same one (measured on the link test's
// tree). A module's split BTF names vmlinux's types by id, so with -j every
// relink changes every module's BTF (and its key: module-btf.ts). kbx's
// single link runs pahole itself, so it leaves -j out (6.12's Makefile.btf
// does the same when KBUILD_BUILD_TIMESTAMP asks for a reproducible build).
// The cost is pahole's single-threaded time on the link's critical path,
// which pahole shares with kallsyms there; see README for the numbers.

/** PAHOLE_FLAGS without pahole's parallel encoding (`-j`, `-jN`, `--jobs`, `--jobs=N`). */
export function reproduciblePaholeFlags(flags: readonly string[]): string[] {
  return flags.filter((w) => !/^-j\d*$/.test(w) && !/^--jobs(=\d*)?$/.test(w));
}
