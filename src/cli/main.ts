// kbx's command line. Every user-facing error is a KbxError with a code and a
// hint; anything else is a bug and is printed with its stack.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { describeConfig, loadConfig, PROGRESS_MODES, type Config, type ProgressMode } from '../config/config.js';
import { control, daemonStatus } from '../daemon/client.js';
import { socketPath } from '../daemon/paths.js';
import { KbxError } from '../util/errors.js';
import { kbxMake } from './make.js';

// A reader that went away (`kbx builds | head -1`) ends the output, as in any
// Unix tool: exit quietly instead of dying on EPIPE with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

const program = new Command();
program
  .name('kbx')
  .description('Build accelerator for the Linux kernel and GNU make projects: caches whole recipe lines.')
  .version('0.1.0')
  .exitOverride()
  .showHelpAfterError()
  .enablePositionalOptions();

program
  .command('make')
  .description('run GNU make with kbx caching every recipe line (all arguments go to make)')
  .helpOption(false)
  .allowUnknownOption()
  .allowExcessArguments()
  .passThroughOptions()
  .option('--progress <mode>', `progress display: ${PROGRESS_MODES.join(', ')} (config key progress)`)
  .option('--no-link-vmlinux', "run the tree's scripts/link-vmlinux.sh instead of kbx link-vmlinux (config key link_vmlinux)")
  .option('--no-replay', 'leave every line to make: do not restore the last build before make runs (config key replay)')
  .argument('[make-args...]')
  .action(async (args: string[], opts: { progress?: string; linkVmlinux: boolean; replay: boolean }) => {
    const cfg = loadConfig();
    if (opts.progress !== undefined) {
      if (!(PROGRESS_MODES as string[]).includes(opts.progress))
        throw new KbxError('KBX_BAD_FLAG', `--progress ${opts.progress}: unknown mode`, `use one of ${PROGRESS_MODES.join(', ')}`);
      cfg.progress = opts.progress as ProgressMode;
    }
    if (!opts.linkVmlinux) cfg.linkVmlinux = false;
    if (!opts.replay) cfg.replay = false;
    process.exitCode = await kbxMake(args, cfg);
  });

program
  .command('link-vmlinux')
  .description('link vmlinux once in place of scripts/link-vmlinux.sh (same arguments and environment)')
  .helpOption(false)
  .allowUnknownOption()
  .allowExcessArguments()
  .passThroughOptions()
  .argument('[script-args...]')
  .action(async (args: string[]) => {
    const { kbxLinkVmlinux } = await import('./link-vmlinux.js');
    process.exitCode = await kbxLinkVmlinux(args);
  });

// `kbx make` starts on every build: the modules of the commands that read
// records (reports, explain) load only when another command runs.
if (process.argv[2] !== 'make') {
  const [report, inspect] = await Promise.all([import('./report-commands.js'), import('./inspect.js')]);
  report.registerReportCommands(program);
  inspect.registerInspectCommands(program);
}

program
  .command('stats')
  .description('show the cache counters and the store size')
  .option('--json', 'print machine-readable JSON')
  .action(async (opts: { json?: boolean }) => {
    const cfg = loadConfig();
    const st = await control<Record<string, unknown>>(socketPath(cfg.dir), { cmd: 'stats' }).catch(() => undefined);
    const data = st ?? (await offlineStats(cfg));
    const { formatStats } = await import('./stats.js');
    process.stdout.write(opts.json ? JSON.stringify(data, null, 2) + '\n' : formatStats(data));
  });

program
  .command('clear')
  .description('remove every stored entry and reset the counters')
  .action(async () => {
    const cfg = loadConfig();
    const ok = await control(socketPath(cfg.dir), { cmd: 'clear' }).then(
      () => true,
      () => false,
    );
    if (!ok) {
      const { LocalStore } = await import('../store/local/local-store.js');
      new LocalStore(cfg.dir, cfg.maxSize, cfg.compressionLevel).clear();
    }
    process.stdout.write(`kbx: cleared ${cfg.dir}\n`);
  });

program
  .command('config')
  .description('show every setting, its value and where the value came from')
  .action(() => {
    process.stdout.write(describeConfig(loadConfig()) + '\n');
  });

program
  .command('remote')
  .description('shared stores (remote_storage)')
  .command('check')
  .description('reach each shared store: latency, and whether kbx can read and write there')
  .action(async () => {
    // Loaded here: the HTTP and Redis clients cost `kbx make` 0.2 s to load.
    const { remoteCheck } = await import('./remote-check.js');
    process.exitCode = await remoteCheck(loadConfig(), (line) => process.stdout.write(line + '\n'));
  });

const daemon = program.command('daemon').description('inspect or stop the background daemon');
daemon
  .command('status')
  .description("show the daemon's pid, memory and store")
  .option('--json', 'print machine-readable JSON, with how many of each thing the daemon keeps in memory')
  .action(async (opts: { json?: boolean }) => {
    const cfg = loadConfig();
    const st = await daemonStatus(cfg);
    if (st && opts.json) {
      process.stdout.write(JSON.stringify(st, null, 2) + '\n');
      return;
    }
    if (!st) {
      process.stdout.write(`kbx daemon: not running (socket ${socketPath(cfg.dir)})\n`);
      process.exitCode = 1;
      return;
    }
    process.stdout.write(
      `kbx daemon: running, pid ${st.pid}, up ${st.uptimeSec} s, ${(st.rssBytes / 2 ** 20).toFixed(0)} MiB resident, ` +
        `${st.knownFiles} files known, store ${(st.storeBytes / 2 ** 20).toFixed(1)} MiB in ${st.dir}\n`,
    );
  });
daemon
  .command('stop')
  .description('stop the daemon (it is started again by the next kbx make)')
  .action(async () => {
    const cfg = loadConfig();
    const ok = await control(socketPath(cfg.dir), { cmd: 'stop' }).then(
      () => true,
      () => false,
    );
    process.stdout.write(ok ? 'kbx daemon: stopped\n' : 'kbx daemon: not running\n');
  });

/** Counters and store size read from disk when no daemon is running. */
async function offlineStats(cfg: Config): Promise<Record<string, unknown>> {
  const { LocalStore } = await import('../store/local/local-store.js');
  const store = new LocalStore(cfg.dir, cfg.maxSize, cfg.compressionLevel);
  let counts = {};
  try {
    counts = (JSON.parse(readFileSync(join(cfg.dir, 'stats.json'), 'utf8')) as { counts: object }).counts;
  } catch {
    /* never used */
  }
  return { counts, storeBytes: store.sizes.current(), maxSize: cfg.maxSize };
}

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? 0 : 2;
    return;
  }
  if (err instanceof KbxError) {
    process.stderr.write(err.format() + '\n');
    process.exitCode = 2;
    return;
  }
  process.stderr.write(`kbx: internal error: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 70;
});
