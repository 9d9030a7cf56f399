// vmlinux as `pahole --btf_base` and `resolve_btfids -b` read it. Both call
// libbpf's btf__parse(path, NULL) (pahole 1.24's pahole.c; 6.1's and 6.12's
// tools/bpf/resolve_btfids/main.c), which reads the file as raw BTF if it
// starts with the BTF magic, else through libelf: the ELF header (class, for
// the pointer size), the section headers and their names, and the data of
// the section named `.BTF` (the last one, as the loop keeps overwriting). So
// the value is a digest of the ELF class and byte order, and that section's
// type, flags and bytes; test/module-btf.test.ts proves it on a relinked
// vmlinux. Anything else (no ELF magic, no `.BTF`, a header out of bounds) is
// not projected: the file is valued whole.

import { createHash } from 'node:crypto';
import { SHT_NOBITS } from '../../elf/elf-file.js';
import type { Projection } from '../../fingerprint/projection.js';
import { openElf } from '../link/elf-io.js';

/**
 * The digest of the part of an ELF file the tools read; undefined when it has
 * no `.BTF` with bytes. Throws on a file it cannot parse (FileState values
 * that whole).
 */
export function btfSectionDigest(path: string): string | undefined {
  const f = openElf(path, { symbols: false });
  try {
    const { elf } = f;
    const btf = elf.sections.filter((s) => s.name === '.BTF').at(-1);
    if (!btf || btf.type === SHT_NOBITS || btf.size === 0) return undefined;
    f.load([btf]);
    const h = createHash('sha256');
    h.update(`${elf.header.cls} ${elf.header.endian} ${btf.type} ${btf.flags} ${btf.size}\n`);
    h.update(elf.sectionData(btf));
    return h.digest('hex');
  } finally {
    f.close();
  }
}

/** vmlinux valued by its .BTF section (bump the name if what is kept changes). */
export const BTF_SECTION: Projection = { name: 'elf-btf-1', digest: btfSectionDigest };
