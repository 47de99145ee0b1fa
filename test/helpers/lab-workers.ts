/**
 * Lab-mode test plumbing: a workspace whose store is a fresh PostgreSQL database, and `osstest worker`
 * processes started from the real CLI, with their output kept for failure messages.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { openStore } from '../../src/db/open.js';
import type { Store } from '../../src/db/store.js';
import type { TestPostgres } from './postgres.js';
import { cliPath, createWorkspace, type Workspace } from './workspace.js';

export interface LabWorkspace extends Workspace {
  connection: string;
  openLabStore(): Promise<Store>;
}

/** A workspace configured for JobDB Executive on a new database of `pg`. */
export async function createLabWorkspace(pg: TestPostgres, extra: string[] = []): Promise<LabWorkspace> {
  const connection = await pg.createDatabase();
  const ws = createWorkspace(['JobDB Executive', `ExecutiveDbConnection ${connection}`, ...extra]);
  return { ...ws, connection, openLabStore: () => openStore({ kind: 'postgres', connection }) };
}

export interface WorkerProcess {
  child: ChildProcess;
  pid: number;
  output(): string;
  /** Resolves with the exit code (or 128+signal) once it has exited. */
  exited: Promise<number>;
}

export function startWorker(
  ws: Workspace,
  args: string[] = [],
  env: Record<string, string> = {},
): WorkerProcess {
  const child = spawn(process.execPath, [cliPath, 'worker', ...args], {
    cwd: ws.dir,
    env: { ...process.env, OSSTEST_CONFIG: ws.configFile, OSSTEST_FLIGHT: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number>((res) =>
    child.on('close', (code, signal) => res(code ?? (signal ? 128 + (signal === 'SIGKILL' ? 9 : 15) : 1))),
  );
  return { child, pid: child.pid ?? 0, output: () => out, exited };
}

/** Polls `probe` until it gives a value; throws with `context()` after `ms`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  ms: number,
  context: () => string = () => '',
  everyMs = 100,
): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`gave up waiting for ${what} after ${ms} ms\n${context()}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A zombie (dead, not yet reaped by whoever inherited it) counts as gone. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
