/** `osstest lab` and `osstest images` refusals that need no lab: not root, nothing fetched yet. */

import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasCommand, isRoot } from '../helpers/env.js';
import { cliPath } from '../helpers/workspace.js';

let dir: string;
let config: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'osstest-labcli-'));
  chmodSync(dir, 0o755);
  config = join(dir, 'config');
  writeFileSync(
    config,
    `Images ${join(dir, 'images')}\nLabDir ${join(dir, 'lab')}\nLabNamespace osstest-labcli-${process.pid}\n`,
  );
  chmodSync(config, 0o644);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(argv: string[], asNobody = false): Promise<{ code: number; stdout: string; stderr: string }> {
  const [cmd, args] = asNobody
    ? ['setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, cliPath, ...argv]]
    : [process.execPath, [cliPath, ...argv]];
  return new Promise((resolve) => {
    execFile(
      cmd as string,
      args as string[],
      { cwd: dir, env: { ...process.env, OSSTEST_CONFIG: config } },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

describe('osstest lab / images without a lab', () => {
  it.skipIf(!isRoot() || !hasCommand('setpriv'))(
    'lab up and lab down refuse clearly when not root',
    async () => {
      for (const sub of ['up', 'down']) {
        const r = await run(['lab', sub], true);
        expect(r.code, r.stderr).toBe(2);
        expect(r.stderr).toContain(`osstest: lab ${sub} must run as root`);
      }
    },
  );

  it('lab status says the lab is down', async () => {
    const r = await run(['lab', 'status', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      up: false,
      namespaceExists: false,
      services: null,
      qemuHosts: [],
    });
  });

  it('images show says how to get a kernel when there is none', async () => {
    const r = await run(['images', 'show']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/no kernel for amd64 in .*images \(run `osstest images update` to fetch one\)/);
  });
});
