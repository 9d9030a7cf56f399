// A tiny C project with every build stage the report names, kbuild-style:
// objects with DWARF (gcc -g), BTF added by pahole, a library built by a
// sub-make and archived with ar, a link, a symbol table made by a
// scripts/kallsyms, and gzip and xz images. Three independent last steps let
// -j2 run two lines at once.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeTree } from './kbx.js';

export function writeReportProject(dir: string): void {
  writeTree(dir, {
    Makefile: [
      'MAKEFLAGS += -r',
      'CFLAGS := -g -O1',
      'all: prog.gz prog.xz syms.txt',
      'lib/libutil.a: FORCE',
      '\t$(MAKE) -C lib',
      'main.o: main.c lib/util.h',
      '\tgcc $(CFLAGS) -Ilib -c -o $@ $<',
      '\tpahole -J $@',
      'prog: main.o lib/libutil.a',
      '\tgcc -o $@ main.o lib/libutil.a',
      'syms.txt: prog scripts/kallsyms',
      '\tnm -n prog | sh scripts/kallsyms > $@',
      'prog.gz: prog',
      '\tgzip -n -9 < prog > $@',
      'prog.xz: prog',
      '\txz -9 -c prog > $@',
      'clean:',
      '\trm -f *.o prog prog.gz prog.xz syms.txt lib/*.o lib/*.a',
      '.PHONY: all clean FORCE',
      '',
    ].join('\n'),
    'lib/Makefile': ['MAKEFLAGS += -r', 'libutil.a: add.o mul.o', '\trm -f $@; ar rcs $@ add.o mul.o', '%.o: %.c util.h', '\tgcc -g -O1 -c -o $@ $<', ''].join('\n'),
    'lib/util.h': 'int add(int a, int b);\nint mul(int a, int b);\n',
    'lib/add.c': '#include "util.h"\nint add(int a, int b) { return a + b; }\n',
    'lib/mul.c': '#include "util.h"\nint mul(int a, int b) { return a * b; }\n',
    'main.c': '#include "util.h"\nstruct pair { int a; long b; };\nint main(void) { struct pair p = { 2, 3 }; return add(p.a, mul(p.a, (int)p.b)) - 8; }\n',
    'scripts/kallsyms':
      "#!/bin/sh\n# A symbol table from `nm -n` output, as the kernel's scripts/kallsyms makes one.\nawk '$2 ~ /^[TtDdBbRr]$/ { print $1, $2, $3 }'\n",
  });
}

/** Changes the program but not the library: a rebuild restores the library and runs the rest. */
export function editProgram(dir: string): void {
  appendFileSync(join(dir, 'main.c'), 'int edited;\n');
}
