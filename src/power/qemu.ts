/**
 * Power method `qemu DIR`: a QEMU virtual machine of the virtual lab, defined by `DIR/vm.json` (written
 * by `osstest lab up`). On = start QEMU with that definition, daemonized, inside the lab's network
 * namespace (its tap is there); off = stop the process (SIGTERM, then SIGKILL), as pulling the plug.
 * State = whether the QEMU process named in the pid file is alive and is this VM.
 *
 * Tested with QEMU 7.2 (Debian bookworm), TCG and KVM, in test/integration/power-console.test.ts and
 * the virtual lab e2e test.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeAtomic } from '../remote/keys.js';
import { type PowerDriver, PowerError, type PowerState, waitForState } from './types.js';

export interface QemuVmSpec {
  name: string;
  /** Network namespace QEMU runs in (where its tap is); none: the current one. */
  namespace?: string;
  /** The QEMU binary, e.g. qemu-system-x86_64. */
  qemu: string;
  /** Machine arguments: everything but the pid file, daemonizing and the serial port, which start() adds. */
  args: string[];
  /** The VM's serial port is appended to this file. */
  serialLog: string;
  pidFile: string;
}

export const VM_SPEC_FILE = 'vm.json';

export function writeVmSpec(dir: string, spec: QemuVmSpec): void {
  mkdirSync(dir, { recursive: true });
  writeAtomic(join(dir, VM_SPEC_FILE), `${JSON.stringify(spec, null, 2)}\n`, 0o644);
}

export function readVmSpec(dir: string): QemuVmSpec {
  const p = join(dir, VM_SPEC_FILE);
  let spec: QemuVmSpec;
  try {
    spec = JSON.parse(readFileSync(p, 'utf8')) as QemuVmSpec;
  } catch (err) {
    throw new Error(`${p}: no usable VM definition (${(err as Error).message}); is the virtual lab up?`);
  }
  if (typeof spec.name !== 'string' || !Array.isArray(spec.args) || typeof spec.pidFile !== 'string') {
    throw new Error(`${p}: not a VM definition`);
  }
  return spec;
}

function readPid(pidFile: string): number | undefined {
  try {
    const n = Number(readFileSync(pidFile, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** The pid of this VM's QEMU if it is running (checked by its command line, so a reused pid is not taken). */
export function runningQemuPid(spec: QemuVmSpec): number | undefined {
  const pid = readPid(spec.pidFile);
  if (pid === undefined) return undefined;
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return undefined;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (/\) [ZX] /.test(stat)) return undefined;
  } catch {
    return undefined;
  }
  return argv.includes(spec.pidFile) ? pid : undefined;
}

export function qemuArgv(spec: QemuVmSpec): string[] {
  const argv = [
    spec.qemu,
    ...spec.args,
    '-chardev',
    `file,id=osstest-serial,path=${spec.serialLog},append=on`,
    '-serial',
    'chardev:osstest-serial',
    '-pidfile',
    spec.pidFile,
    '-daemonize',
  ];
  return spec.namespace ? ['ip', 'netns', 'exec', spec.namespace, ...argv] : argv;
}

function run(argv: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.on('error', (e) => resolve({ code: 127, output: e.message }));
    child.on('close', (code) => resolve({ code, output }));
  });
}

export class QemuPower implements PowerDriver {
  readonly method = 'qemu';
  constructor(
    readonly host: string,
    readonly vmDir: string,
    private readonly log: (line: string) => void = () => {},
  ) {}

  private spec(): QemuVmSpec {
    return readVmSpec(this.vmDir);
  }

  async get(): Promise<PowerState> {
    return runningQemuPid(this.spec()) === undefined ? 'off' : 'on';
  }

  async set(state: 'on' | 'off'): Promise<void> {
    const spec = this.spec();
    const fail = (msg: string) => new PowerError(this.host, this.method, msg);
    if (state === 'on') {
      if (runningQemuPid(spec) !== undefined) return;
      rmSync(spec.pidFile, { force: true });
      const argv = qemuArgv(spec);
      this.log(`qemu: starting ${spec.name}: ${argv.join(' ')}`);
      // With -daemonize the parent returns once the VM is set up, with QEMU's errors on stderr.
      const r = await run(argv);
      if (r.code !== 0) throw fail(`QEMU exited ${r.code}: ${r.output.trim() || '(no output)'}`);
      const s = await waitForState(() => this.get(), 'on', 5_000, 50);
      if (s !== 'on') throw fail(`QEMU started but no process is running for ${spec.pidFile}`);
      return;
    }
    const pid = runningQemuPid(spec);
    if (pid === undefined) return;
    this.log(`qemu: stopping ${spec.name} (pid ${pid})`);
    signal(pid, 'SIGTERM');
    if ((await waitForState(() => this.get(), 'off', 5_000, 50)) !== 'off') {
      signal(pid, 'SIGKILL');
      if ((await waitForState(() => this.get(), 'off', 5_000, 50)) !== 'off') {
        throw fail(`QEMU pid ${pid} survived SIGKILL`);
      }
    }
    if (existsSync(spec.pidFile)) rmSync(spec.pidFile, { force: true });
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}
