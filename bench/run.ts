// The kbx benchmark: real Linux 6.1 builds with plain make, ccache and kbx side
// by side in one run (bench/kernel.ts), micro costs of one recipe line
// (bench/micro.ts), checked against the budgets of ../shared/DESIGN.md §3 and
// printed as a markdown table (bench/table.ts). See bench/README.md.
//
//   npm run bench -- [--config tinyconfig|modversions] [--jobs 2]
//                    [--only plain,ccache,kbx,kbx-replay] [--scenarios cold,warm,noop,touch,header,switch,micro,remote]
//                    [--out FILE.md] [--work /var/tmp/kbx-bench] [--tree DIR]
//                    [--trivial-runs 2000] [--hit-runs 200]
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { kernelTree, treeVersion } from '../test/support/kernel-tree.js';
import { kbx, repoRoot, snapshotKbx } from './common.js';
import { KERNEL_SCENARIOS, MODES, runKernel, type KernelConfig, type KernelResult, type KernelScenario, type Mode } from './kernel.js';
import { runMicro, type MicroResult } from './micro.js';
import { renderRemote, runRemote, type RemoteResult } from './remote.js';
import { renderReport } from './table.js';

const { values: opt } = parseArgs({
  options: {
    config: { type: 'string', default: 'tinyconfig' },
    jobs: { type: 'string', default: '2' },
    only: { type: 'string', default: MODES.join(',') },
    scenarios: { type: 'string', default: [...KERNEL_SCENARIOS, 'micro'].join(',') },
    out: { type: 'string' },
    work: { type: 'string', default: '/var/tmp/kbx-bench' },
    // The touch scenarios change mtimes in it: a private copy keeps others' trees as they are.
    tree: { type: 'string' },
    'trivial-runs': { type: 'string', default: '2000' },
    'hit-runs': { type: 'string', default: '200' },
    help: { type: 'boolean', short: 'h' },
  },
});

function fail(msg: string): never {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(2);
}

if (opt.help) {
  process.stdout.write(
    'usage: node dist/bench/run.js [--config tinyconfig|modversions] [--jobs N] [--only plain,ccache,kbx,kbx-replay]\n' +
      '       [--scenarios cold,warm,noop,touch,header,switch,micro,remote] [--out FILE.md] [--work DIR] [--tree LINUX-6.1-SRC] [--trivial-runs N] [--hit-runs N]\n',
  );
  process.exit(0);
}
const config = opt.config as KernelConfig;
if (config !== 'tinyconfig' && config !== 'modversions') fail(`--config must be tinyconfig or modversions, not '${opt.config}'`);
const jobs = Number(opt.jobs);
if (!Number.isInteger(jobs) || jobs < 1) fail(`--jobs must be a positive integer, not '${opt.jobs}'`);
const modes = opt.only.split(',').filter(Boolean) as Mode[];
for (const m of modes) if (!MODES.includes(m)) fail(`--only takes ${MODES.join(',')}; '${m}' is not one`);
const scenarios = opt.scenarios.split(',').filter(Boolean);
for (const s of scenarios) if (![...KERNEL_SCENARIOS, 'micro', 'remote'].includes(s as KernelScenario)) fail(`unknown scenario '${s}'`);
// The no-op and touch rebuilds need a built tree: cold or warm first.
const kernelScenarios = KERNEL_SCENARIOS.filter((s) => scenarios.includes(s));
if (kernelScenarios.length && !kernelScenarios.includes('cold')) fail('kernel scenarios need cold (they run on its build)');

const say = (msg: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const tool = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0]!.trim();
  } catch {
    return '?';
  }
};
// The daemon's code id (src/daemon/paths.ts) of the measured snapshot.
const kbxCodeId = () => tool(process.execPath, ['--input-type=module', '-e', `import { codeId } from '${kbx.main.replace(/cli\/main\.js$/, 'daemon/paths.js')}'; console.log(codeId())`]);
const la = () => loadavg().map((x) => x.toFixed(2)).join(' ');

snapshotKbx(join(opt.work, 'kbx-code'));
// The commit the snapshot was taken from, read now: HEAD may move during an hour's run.
const measuredFrom = `${tool('git', ['-C', repoRoot, 'rev-parse', '--short', 'HEAD'])}${tool('git', ['-C', repoRoot, 'status', '--porcelain', '--untracked-files=no']) ? ' (modified)' : ''}`;
const started = Date.now();
const loadStart = la();
let kernel: KernelResult | undefined;
let micro: MicroResult | undefined;
const withRemote = scenarios.includes('remote');
const tree = kernelScenarios.length || withRemote ? opt.tree ?? kernelTree() : undefined;
if ((kernelScenarios.length || withRemote) && !tree) fail('no Linux 6.1 tree: install linux-source-6.1 (see test/support/kernel-tree.ts)');
if (tree && modes.includes('ccache') && tool('ccache', ['--version']) === '?') fail('ccache is not installed (apt-get install ccache)');

if (tree && kernelScenarios.length) {
  say(`kernel ${treeVersion(tree)} ${config}, -j${jobs}, modes ${modes.join(',')}, scenarios ${kernelScenarios.join(',')}; load average ${loadStart}`);
  kernel = runKernel({ tree, config, jobs, modes, scenarios: kernelScenarios, work: join(opt.work, config), say });
}
let remote: RemoteResult | undefined;
if (tree && withRemote) {
  say(`remote: kernel ${treeVersion(tree)} ${config}, -j${jobs}; load average ${la()}`);
  remote = await runRemote({ tree, config, jobs, withCcache: modes.includes('ccache'), withPlain: modes.includes('plain'), work: join(opt.work, `remote-${config}`), say });
}
if (scenarios.includes('micro')) {
  micro = runMicro({ work: join(opt.work, 'micro'), trivialRuns: Number(opt['trivial-runs']), hitRuns: Number(opt['hit-runs']), say });
}

const minutes = ((Date.now() - started) / 60000).toFixed(1);
const report = renderReport({
  header: [
    `## kbx benchmark: Linux ${tree ? treeVersion(tree) : '6.1'} ${config}, -j${jobs}`,
    '',
    `${new Date(started).toISOString().slice(0, 16).replace('T', ' ')} UTC · ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}) · ` +
      `${tool('gcc', ['--version'])} · ${tool('make', ['--version'])} · ${tool('ccache', ['--version'])} · node ${process.version} · ` +
      `kbx ${kbxCodeId()} from ${measuredFrom}`,
    '',
    `Load average (1, 5, 15 min) at start: ${loadStart}; at end: ${la()}. Other work on the machine shows up as load above ${jobs}.`,
  ],
  kernel,
  micro,
  footer: [...(remote ? renderRemote(remote) : []), '', `Took ${minutes} min.${kernel ? ` Logs: ${join(opt.work, config, 'logs')}.` : ''} Command: \`node dist/bench/run.js ${process.argv.slice(2).join(' ')}\``],
});
process.stdout.write(report);
if (opt.out) writeFileSync(opt.out, report);
