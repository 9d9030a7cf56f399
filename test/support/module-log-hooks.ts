// Module hooks (node:module register) that append every module URL a process
// resolves to the file KBX_TEST_MODULE_LOG: which code `kbx make` loads.
import { appendFileSync } from 'node:fs';

type Next = (specifier: string, context: unknown) => Promise<{ url: string }>;

export async function resolve(specifier: string, context: unknown, next: Next): Promise<{ url: string }> {
  const r = await next(specifier, context);
  if (process.env.KBX_TEST_MODULE_LOG) appendFileSync(process.env.KBX_TEST_MODULE_LOG, `${r.url}\n`);
  return r;
}
