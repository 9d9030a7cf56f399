// A real icecream farm (Debian's icecc) on loopback for the tests: a
// scheduler, the local iceccd that icecc talks to (it compiles nothing
// itself: --no-remote) and one iceccd that takes the remote jobs, each with
// its own socket, log and environment directory, on a network name of its
// own so that no other farm on the machine's network joins. As root, as the
// remote daemon compiles in a chroot of the toolchain tarball icecc-create-env
// makes. Stopped by the test (and by process exit, should a test crash).
//
// iceccd 1.4 cannot be bound to loopback alone (`-i lo` binds it twice and
// gives up), so the three daemons run in a network namespace of their own
// whose only interface is its loopback: nothing they listen on is reachable
// from outside it. The builds that run icecc run in it too (launcher()).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './kbx.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './redis.js';
import { program, type Need } from './tools.js';

export const icecreamNeeds: Need[] = [program('ip', 'iproute2'), program('icecc', 'icecc'), program('iceccd', 'icecc'), program('icecc-scheduler', 'icecc'), program('icecc-create-env', 'icecc')];

const running = new Set<ChildProcess>();
const namespaces = new Set<string>();
process.on('exit', () => {
  for (const p of running) killGroup(p, 'SIGKILL');
  for (const ns of namespaces) deleteNamespace(ns);
});

function deleteNamespace(ns: string): void {
  try {
    execFileSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' });
  } catch {
    /* gone already */
  }
  namespaces.delete(ns);
}

function killGroup(p: ChildProcess, sig: NodeJS.Signals): void {
  try {
    process.kill(-p.pid!, sig);
  } catch {
    /* gone already */
  }
}

export class IcecreamFarm {
  private procs: ChildProcess[] = [];
  readonly remoteName: string;
  /** The toolchain tarball remote jobs run in (ICECC_VERSION). */
  tarball = '';
  /** The network namespace the daemons run in. */
  private netns = '';

  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {
    this.remoteName = `kbx-remote-${port}`;
  }

  log(name: 'scheduler' | 'local' | 'remote'): string {
    const f = join(this.dir, `${name}.log`);
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  }

  /** Jobs the scheduler sent to the remote daemon (its log's `BEGIN: n client=… server=<remote>`). */
  remoteJobs(): number {
    return this.log('scheduler').split('\n').filter((l) => /BEGIN: \d+ client=/.test(l) && l.includes(`server=${this.remoteName}`)).length;
  }

  /** The source files the remote daemon compiled (its log's `remote compile for file <path>`), /dev/null probes included. */
  remoteFiles(): string[] {
    return [...this.log('remote').matchAll(/remote compile for file (\S+)/g)].map((m) => m[1]!);
  }

  /**
   * What icecc runs under: the farm's namespace. icecc talks to the local
   * daemon through its socket, but sends a compile to the remote daemon itself,
   * over TCP, to the address the scheduler gives (127.0.0.1 in the namespace).
   */
  launcher(): string[] {
    return ['ip', 'netns', 'exec', this.netns];
  }

  /** What icecc needs to reach the local daemon and send each compile to the remote one. */
  clientEnv(): Record<string, string> {
    return {
      ICECC_TEST_SOCKET: join(this.dir, 'local.sock'),
      ICECC_TEST_REMOTEBUILD: '1',
      ICECC_PREFERRED_HOST: this.remoteName,
      ICECC_VERSION: this.tarball,
    };
  }

  static async start(): Promise<IcecreamFarm> {
    const dir = tempDir('icecream');
    chmodSync(dir, 0o777); // the daemons write their logs as user icecc
    const farm = new IcecreamFarm(dir, await freePort());
    const net = `kbxtest${farm.port}`;
    farm.netns = `kbx-icecream-${process.pid}-${farm.port}`;
    execFileSync('ip', ['netns', 'add', farm.netns]);
    namespaces.add(farm.netns);
    execFileSync('ip', ['netns', 'exec', farm.netns, 'ip', 'link', 'set', 'lo', 'up']);
    const common = { ...process.env, ICECC_TESTS: '1', ICECC_TEST_SCHEDULER_PORTS: `${farm.port}:${farm.port + 2}` };
    farm.spawn('icecc-scheduler', ['-p', String(farm.port), '-l', join(dir, 'scheduler.log'), '-n', net, '-vvv'], common);
    const icecc = Number(execFileSync('id', ['-u', 'icecc'], { encoding: 'utf8' }).trim());
    const daemon = (name: 'local' | 'remote', more: string[]) => {
      const envs = join(dir, `envs-${name}`);
      mkdirSync(envs);
      chownSync(envs, icecc, -1); // iceccd, as user icecc, chowns it again
      const env = { ...common, ICECC_TEST_SOCKET: join(dir, `${name}.sock`), ICECC_SCHEDULER: `127.0.0.1:${farm.port}` };
      // No `-i lo`: iceccd 1.4 then binds loopback twice and gives up. The
      // remote daemon listens on every interface, on a port picked free; the
      // network name keeps other farms out, ICECC_TESTS keeps broadcasts on lo.
      const args = ['-b', envs, '-l', join(dir, `${name}.log`), '-n', net, '-s', `127.0.0.1:${farm.port}`, '-vvv', '-m', '2', ...more];
      farm.spawn('iceccd', args, env);
    };
    daemon('local', ['-N', `kbx-local-${farm.port}`, '--no-remote']);
    daemon('remote', ['-N', farm.remoteName, '-p', String(await freePort())]);
    const envDir = join(dir, 'toolchain');
    mkdirSync(envDir);
    execFileSync('icecc-create-env', ['--gcc', '/usr/bin/gcc', '/usr/bin/g++'], { cwd: envDir, stdio: 'ignore' });
    farm.tarball = join(envDir, readdirSync(envDir).find((f) => /\.tar\.(gz|xz|zst)$/.test(f))!);
    // Both daemons log in to the scheduler within seconds (it broadcasts every few); 60 s at most.
    for (let i = 0; i < 600; i++) {
      if (/Connected to scheduler/.test(farm.log('local')) && /Connected to scheduler/.test(farm.log('remote'))) return farm;
      if (farm.procs.some((p) => p.exitCode !== null)) break;
      await sleep(100);
    }
    await farm.stop();
    throw new Error(`icecream did not start: see the logs in ${dir}`);
  }

  /** In the farm's namespace: `ip netns exec` enters it and execs cmd, same pid. */
  private spawn(cmd: string, args: string[], env: NodeJS.ProcessEnv): void {
    const p = spawn('ip', ['netns', 'exec', this.netns, cmd, ...args], { env, stdio: 'ignore', detached: true });
    running.add(p);
    p.once('exit', () => running.delete(p));
    this.procs.push(p);
  }

  async stop(): Promise<void> {
    for (const p of this.procs) {
      if (p.exitCode !== null || p.signalCode !== null) continue;
      const gone = new Promise((res) => p.once('exit', res));
      killGroup(p, 'SIGKILL');
      await gone;
    }
    this.procs = [];
    if (this.netns) deleteNamespace(this.netns);
  }
}
