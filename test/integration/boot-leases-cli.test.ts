/**
 * `osstest lab leases` for each BootServices backend's lease file, read without the backend running:
 * the site's ISC dhcpd or dnsmasq file (external), dnsmasq's and the builtin's in LabDir; damaged entries
 * are reported and skipped; a bad BootServices or a missing DhcpLeasesFile is a clear usage error.
 * (Leases written by a real dnsmasq and by our server are read in boot-services-netns.test.ts.)
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/db/open.js';
import { cliPath } from '../helpers/workspace.js';

let dir: string;
const FUTURE = Math.floor(Date.now() / 1000) + 3600;

function cli(config: string, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cliPath, ...argv],
      { cwd: dir, env: { ...process.env, OSSTEST_CONFIG: join(dir, config) } },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

function config(name: string, lines: string[]): void {
  writeFileSync(
    join(dir, name),
    [`StandaloneDb ${join(dir, 'db')}`, `LabDir ${join(dir, 'lab')}`, ...lines, ''].join('\n'),
  );
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'osstest-leases-cli-'));
  mkdirSync(join(dir, 'lab'));
  const store = await openStore({ kind: 'sqlite', path: join(dir, 'db') });
  await store.upsertHost({ name: 'site-a', mac: '52:54:00:ab:00:01', ip: '10.219.2.10' });
  await store.close();
  const t = new Date((FUTURE - 7200) * 1000);
  const e = new Date(FUTURE * 1000);
  const isc = (d: Date) =>
    `${d.getUTCDay()} ${d.getUTCFullYear()}/${d.getUTCMonth() + 1}/${d.getUTCDate()} ${d.toISOString().slice(11, 19)}`;
  writeFileSync(
    join(dir, 'dhcpd.leases'),
    `# written by isc-dhcp
authoring-byte-order little-endian;
lease 10.219.2.10 {
  starts ${isc(t)};
  ends ${isc(e)};
  binding state active;
  hardware ethernet 52:54:00:ab:00:01;
  client-hostname "site-a";
}
lease 10.219.2.11 {
  starts ${isc(t)};
  ends ${isc(e)};
  binding state active;
  hardware ethernet 52:54:00:ab:00:02;
}
lease 10.219.2.12 {
  hardware ethernet zz;
}
`,
  );
  writeFileSync(
    join(dir, 'lab', 'dnsmasq.leases'),
    `${FUTURE} 52:54:00:ab:00:01 10.219.2.10 site-a *\nbroken\n`,
  );
  writeFileSync(
    join(dir, 'lab', 'dhcp-leases.json'),
    JSON.stringify({
      version: 1,
      leases: [{ mac: '52:54:00:ab:00:01', ip: '10.219.2.10', state: 'bound', expires: FUTURE * 1000 }],
    }),
  );
  config('external', ['BootServices external', `DhcpLeasesFile ${join(dir, 'dhcpd.leases')}`]);
  config('dnsmasq', ['BootServices dnsmasq']);
  config('builtin', []);
  config('nofile', ['BootServices external']);
  config('bad', ['BootServices kea']);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('osstest lab leases', () => {
  it('external: the site ISC dhcpd file, MACs matched to hosts, a bad block reported', async () => {
    const r = await cli('external', ['lab', 'leases', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ bootServices: 'external', file: join(dir, 'dhcpd.leases') });
    expect(j.leases).toEqual([
      {
        mac: '52:54:00:ab:00:01',
        ip: '10.219.2.10',
        host: 'site-a',
        hostname: 'site-a',
        expires: new Date(FUTURE * 1000).toISOString(),
      },
      {
        mac: '52:54:00:ab:00:02',
        ip: '10.219.2.11',
        host: null,
        hostname: null,
        expires: expect.any(String),
      },
    ]);
    expect(j.skipped).toEqual([
      { line: 16, reason: 'lease 10.219.2.12: bad hardware statement "hardware ethernet zz"' },
    ]);
    const text = await cli('external', ['lab', 'leases']);
    expect(text.stdout).toContain('skipped line 16');
    expect(text.stdout).toMatch(/52:54:00:ab:00:01 +10\.219\.2\.10 +site-a/);
  });

  it("dnsmasq's and the builtin's lease files in LabDir", async () => {
    const d = JSON.parse((await cli('dnsmasq', ['lab', 'leases', '--json'])).stdout);
    expect(d).toMatchObject({ bootServices: 'dnsmasq', leases: [{ ip: '10.219.2.10', host: 'site-a' }] });
    expect(d.skipped).toEqual([{ line: 2, reason: 'expected 4 or 5 fields, found 1' }]);
    const b = JSON.parse((await cli('builtin', ['lab', 'leases', '--json'])).stdout);
    expect(b).toMatchObject({
      bootServices: 'builtin',
      leases: [{ ip: '10.219.2.10', host: 'site-a' }],
      skipped: [],
    });
  });

  it('refuses clearly: no DhcpLeasesFile for external, an unknown backend', async () => {
    const r = await cli('nofile', ['lab', 'leases']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('BootServices external needs DhcpLeasesFile');
    const b = await cli('bad', ['lab', 'leases']);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain('BootServices must be one of builtin, dnsmasq, external, not "kea"');
  });
});
