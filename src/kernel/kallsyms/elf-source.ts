// Reading kallsyms tables out of an ELF file (an assembled table object or a
// linked vmlinux) by their symbol names.

import type { ElfFile } from '../../elf/elf-file.js';
import { bytesAt, symbolLocation } from '../../elf/patch.js';
import type { TableSource } from './decode.js';
import type { Target } from './tables.js';

export function elfTableSource(elf: ElfFile): TableSource {
  return (name) => {
    const sym = elf.symbol(name);
    return sym ? bytesAt(elf, symbolLocation(elf, sym)) : undefined;
  };
}

export function elfTarget(elf: ElfFile): Target {
  return { wordSize: elf.header.cls === 64 ? 8 : 4, endian: elf.header.endian };
}
