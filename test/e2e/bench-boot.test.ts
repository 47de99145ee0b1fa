/**
 * bench/boot runs as documented (one run each way, so it stays short): both contenders boot the QEMU
 * host to ssh, each by its own path (the serial console shows iPXE fetching boot.ipxe for ours and
 * PXELINUX for dnsmasq, which the bench checks), the result line is printed, and nothing is left
 * behind: no namespace, no root-side link, no QEMU, dnsmasq, radvd or services process, no work dir.
 *
 * Takes about 1.5–3 minutes under TCG (two network boots). The kernel comes from the same cache as the
 * virtual-lab e2e test (/var/tmp/osstest-e2e-images, or OSSTEST_TEST_IMAGES).
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { prerequisites } from '../helpers/env.js';
import { repoRoot } from '../helpers/workspace.js';

const ok = prerequisites('bench/boot', {
  root: true,
  commands: [
    'qemu-system-x86_64',
    'ip',
    '/usr/sbin/dnsmasq',
    '/usr/sbin/radvd',
    '/bin/busybox',
    '/usr/sbin/dropbear',
    'dropbearkey',
    'apt-get',
    'dpkg-deb',
  ],
});

/** Processes whose command line names the bench's namespace or directory. */
function leftovers(): string[] {
  const out: string[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (/\) Z /.test(readFileSync(`/proc/${p}/stat`, 'utf8'))) continue;
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes('/tmp/ot-bbench') || cmd.includes('ot-bbench ')) out.push(`${p}: ${cmd}`);
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

describe.skipIf(!ok)('bench/boot', () => {
  it('boots the host both ways, prints the ratio, and leaves nothing behind', async () => {
    const out = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        [join(repoRoot, 'dist', 'bench', 'boot.js')],
        {
          cwd: repoRoot,
          env: {
            ...process.env,
            RUNS: '1',
            IMAGES: process.env.OSSTEST_TEST_IMAGES || '/var/tmp/osstest-e2e-images',
          },
          timeout: 420_000,
          maxBuffer: 16 * 1024 * 1024,
        },
        (err, stdout, stderr) =>
          err
            ? reject(new Error(`bench/boot failed: ${err.message}\n${stdout}\n${stderr}`))
            : resolve(stdout),
      );
    });
    process.stderr.write(
      out
        .split('\n')
        .filter((l) => /^(run|median|result)/.test(l))
        .join('\n'),
    );
    expect(out).toMatch(/^run 1: ours [\d.]+ s \(firmware [\d.]+, dhcp [\d.]+, fetch [\d.]+, kernel/m);
    expect(out).toMatch(/; dnsmasq [\d.]+ s \(firmware [\d.]+, dhcp [\d.]+, fetch [\d.]+, kernel/m);
    const lines = out.trimEnd().split('\n');
    const result = lines.find((l) => l.startsWith('result: '));
    expect(result).toMatch(/^result: ratio=\d+\.\d{3}$/);
    expect(Number(result!.split('=')[1])).toBeGreaterThan(0);
    // Clean: namespace, link, processes, work directory.
    expect(execFileSync('ip', ['netns', 'list']).toString()).not.toMatch(/^ot-bbench\b/m);
    const rootIf = `osl${createHash('sha256').update('ot-bbench').digest('hex').slice(0, 8)}`;
    expect(execFileSync('ip', ['-o', 'link']).toString()).not.toContain(`${rootIf}@`);
    let left = leftovers();
    for (let i = 0; i < 50 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = leftovers();
    }
    expect(left).toEqual([]);
    expect(existsSync('/tmp/ot-bbench')).toBe(false);
  }, 480_000);

  it('--help says what it does without needing anything', () => {
    const help = execFileSync(process.execPath, [
      join(repoRoot, 'dist', 'bench', 'boot.js'),
      '--help',
    ]).toString();
    expect(help).toMatch(/^usage: bench\/boot/);
    expect(help).toContain('result: ratio=');
  });
});
