// The test's environment without anything from an enclosing kbx, make or
// tracer, so that a test behaves the same inside `kbx make` or CI.
export function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k.startsWith('KBX_') || /^(MAKEFLAGS|MFLAGS|MAKELEVEL|MAKEFILES|LD_PRELOAD)$/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}
