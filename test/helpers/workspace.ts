/**
 * A throw-away osstest installation for a test: a temp directory with a config file (sqlite store,
 * logs, key pair path inside it), helpers to run the real CLI against it, and to open its store.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Config } from '../../src/config/config.js';
import { openStore } from '../../src/db/open.js';
import type { Store } from '../../src/db/store.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const cliPath = join(repoRoot, 'bin', 'osstest.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Workspace {
  dir: string;
  configFile: string;
  testcaseDir: string;
  config(): Config;
  openStore(): Promise<Store>;
  /** Runs `osstest ARGS` with this workspace's config; never throws on a non-zero exit. */
  cli(args: string[], env?: Record<string, string>, timeoutMs?: number): Promise<CliResult>;
  /** Runs `osstest ARGS` and returns its stdout; a non-zero exit throws, with both outputs. */
  cliOk(args: string[], timeoutMs?: number): Promise<string>;
  /** Adds a testcase script (any language, via its #! line) to this workspace's TestcasePath. */
  addTestcase(name: string, body: string): string;
  /** Appends lines to the config file. */
  configure(lines: string[]): void;
  cleanup(): void;
}

export function createWorkspace(extraConfig: string[] = []): Workspace {
  const dir = mkdtempSync(join(tmpdir(), 'osstest-ws-'));
  const testcaseDir = join(dir, 'testcases');
  mkdirSync(testcaseDir);
  const configFile = join(dir, 'config');
  writeFileSync(
    configFile,
    [
      '# test workspace',
      `StandaloneDb ${join(dir, 'standalone.db')}`,
      `Logs ${join(dir, 'logs')}`,
      `Stash ${join(dir, 'logs')}`,
      `TestHostKeypairPath ${join(dir, 'keys', 'id_ed25519')}`,
      `TestcasePath ${testcaseDir}`,
      ...extraConfig,
      '',
    ].join('\n'),
  );
  const ws: Workspace = {
    dir,
    configFile,
    testcaseDir,
    config: () => Config.fromFiles([configFile], { cwd: dir }),
    openStore: () => openStore({ kind: 'sqlite', path: join(dir, 'standalone.db') }),
    cli: (args, env = {}, timeoutMs = 300_000) =>
      new Promise((res) => {
        execFile(
          process.execPath,
          [cliPath, ...args],
          {
            cwd: dir,
            env: { ...process.env, OSSTEST_CONFIG: configFile, OSSTEST_FLIGHT: '', ...env },
            timeout: timeoutMs,
            maxBuffer: 64 * 1024 * 1024,
          },
          (err, stdout, stderr) => {
            const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
            res({ code, stdout: String(stdout), stderr: String(stderr) });
          },
        );
      }),
    cliOk: async (args, timeoutMs) => {
      const r = await ws.cli(args, {}, timeoutMs);
      if (r.code !== 0)
        throw new Error(`osstest ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
      return r.stdout;
    },
    addTestcase: (name, body) => {
      const p = join(testcaseDir, name);
      writeFileSync(p, body);
      chmodSync(p, 0o755);
      return p;
    },
    configure: (lines) => {
      writeFileSync(configFile, `${lines.join('\n')}\n`, { flag: 'a' });
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
  return ws;
}

/** A node testcase using the real testcase library (from the compiled tree). */
export function nodeTestcase(body: string): string {
  const lib = join(repoRoot, 'dist', 'src', 'testcase', 'index.js');
  return `#!${process.execPath}\nimport { testcaseMain } from ${JSON.stringify(lib)};\nawait testcaseMain(async (tc) => {\n${body}\n});\n`;
}
