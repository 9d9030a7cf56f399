// The module BTF tree of test/kernel-module-btf.test.ts and bench/module-btf.ts:
// Linux 6.1 tinyconfig with BTF and a handful of module options (with what
// they pull in as modules, about 20 .ko, some of several compile units), and
// the body-only edit both make of a vmlinux function (code, not types).
import type { LineRecord } from '../../src/builds/record.js';

export const MODULE_OPTIONS = [
  'TEST_HEXDUMP', 'TEST_STRING_HELPERS', 'TEST_BITMAP', 'TEST_UUID',
  'CRYPTO_NULL', 'CRYPTO_CBC', 'CRYPTO_ECB', 'CRYPTO_MD5', 'CRYPTO_SHA1', 'CRYPTO_SHA512',
];

/** The vmlinux source file the edits change. */
export const BODY_FILE = 'lib/hexdump.c';
const BODY_AT = 'int hex_to_bin(unsigned char ch)\n{\n';

/** BODY_FILE's text with hex_to_bin's body grown by n nops; throws if the function is not where it was. */
export function bodyEdited(original: string, n: number): string {
  if (!original.includes(BODY_AT)) throw new Error(`${BODY_FILE} has no hex_to_bin`);
  return original.replace(BODY_AT, `${BODY_AT}\tasm volatile(".rept ${n}\\n\\tnop\\n\\t.endr");\n`);
}

/** kbuild's module BTF line (Makefile.modfinal's cmd_btf_ko). */
export const isBtfLine = (l: LineRecord): boolean => / --btf_base vmlinux \S+\.ko; /.test(l.command);
