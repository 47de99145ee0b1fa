/**
 * The Debian installer's answers for a host (preseed) and its late_command script: every question d-i
 * asks at priority critical is answered, values cannot add lines, and the late script writes the keys
 * and the boot service exactly.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BOOT_SERVICE } from '../../src/provision/images/rootfs.js';
import { renderLateScript, renderPreseed } from '../../src/provision/install/preseed.js';

const base = {
  host: 'rig-7',
  domain: 'lab.example',
  mirror: 'http://mirror.example/debian/',
  suite: 'bookworm',
  disk: '/dev/sda',
  partitioning: 'lvm' as const,
  hostUrl: 'http://10.0.0.1/host/rig-7/',
};

/** `owner name type value` lines as a map name → [type, value]. */
function answers(text: string): Map<string, [string, string]> {
  const m = new Map<string, [string, string]>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const r = /^(\S+) (\S+) (\S+) ?(.*)$/.exec(line);
    if (!r) throw new Error(`not a preseed line: ${line}`);
    m.set(r[2]!, [r[3]!, r[4]!]);
  }
  return m;
}

describe('renderPreseed', () => {
  it('answers network, mirror, partitioning, root login, packages, boot loader and the late command', () => {
    const a = answers(renderPreseed({ ...base, packages: ['git'] }));
    expect(a.get('netcfg/get_hostname')).toEqual(['string', 'rig-7']);
    expect(a.get('netcfg/get_domain')).toEqual(['string', 'lab.example']);
    expect(a.get('mirror/http/hostname')).toEqual(['string', 'mirror.example']);
    expect(a.get('mirror/http/directory')).toEqual(['string', '/debian']);
    expect(a.get('mirror/suite')).toEqual(['string', 'bookworm']);
    expect(a.get('partman-auto/disk')).toEqual(['string', '/dev/sda']);
    expect(a.get('partman-auto/method')).toEqual(['string', 'lvm']);
    expect(a.get('partman-auto-lvm/new_vg_name')).toEqual(['string', 'rig-7-vg']);
    expect(a.get('partman/confirm_nooverwrite')).toEqual(['boolean', 'true']);
    expect(a.get('passwd/make-user')).toEqual(['boolean', 'false']);
    expect(a.get('passwd/root-password-crypted')).toEqual(['password', '!']);
    expect(a.get('pkgsel/include')).toEqual(['string', 'openssh-server git']);
    expect(a.get('grub-installer/bootdev')).toEqual(['string', '/dev/sda']);
    expect(a.get('debian-installer/add-kernel-opts')).toEqual(['string', 'console=ttyS0,115200n8']);
    expect(a.get('preseed/late_command')).toEqual([
      'string',
      'wget -q -O /tmp/osstest-late.sh http://10.0.0.1/host/rig-7/late.sh && sh /tmp/osstest-late.sh',
    ]);
    expect(a.get('preseed/early_command')?.[1]).toContain(
      'http://10.0.0.1/host/rig-7/progress/preseed-loaded',
    );
    expect(answers(renderPreseed({ ...base, partitioning: 'regular' })).get('partman-auto/method')).toEqual([
      'string',
      'regular',
    ]);
  });

  it('refuses values that would add lines or are not what they claim', () => {
    expect(() => renderPreseed({ ...base, domain: 'x\nd-i passwd/root-password string x' })).toThrow(
      /one line/,
    );
    expect(() => renderPreseed({ ...base, host: 'Bad_Name' })).toThrow(/not a DNS label/);
    expect(() => renderPreseed({ ...base, disk: 'sda' })).toThrow(/not a device path/);
    expect(() => renderPreseed({ ...base, mirror: 'https://mirror.example/debian' })).toThrow(/must be http/);
    expect(() => renderPreseed({ ...base, mirror: 'not a url' })).toThrow(/not a URL/);
    expect(() => renderPreseed({ ...base, packages: ['a b'] })).toThrow(/not a package name/);
    expect(() => renderPreseed({ ...base, hostUrl: 'http://10.0.0.1/host/rig-7' })).toThrow(/must be http/);
  });
});

describe('renderLateScript', () => {
  it("writes the keys, host.conf and the boot service into /target, then reports 'installed'", () => {
    const dir = mkdtempSync(join(tmpdir(), 'osstest-late-'));
    try {
      const key = { privateKey: "-----BEGIN-----\nab'c\n-----END-----\n", publicKey: 'ssh-ed25519 AAAAk' };
      const script = renderLateScript({
        hostUrl: base.hostUrl,
        hostConf: "OSSTEST_HOST='rig-7'\n",
        authorizedKeys: 'ssh-ed25519 AAAAlab osstest\n',
        hostKey: key,
      });
      mkdirSync(join(dir, 'target', 'etc', 'ssh'), { recursive: true });
      mkdirSync(join(dir, 'target', 'etc', 'systemd', 'system'), { recursive: true });
      mkdirSync(join(dir, 'bin'));
      // Stand-ins for d-i's in-target and wget, recording what they were asked.
      const calls = join(dir, 'calls');
      for (const tool of ['in-target', 'wget']) {
        execFileSync('sh', [
          '-c',
          `printf '#!/bin/sh\\necho ${tool} "$@" >> ${calls}\\n' > ${dir}/bin/${tool}; chmod +x ${dir}/bin/${tool}`,
        ]);
      }
      execFileSync('sh', ['-c', script.replaceAll('/target/', `${dir}/target/`)], {
        env: { PATH: `${dir}/bin:/usr/bin:/bin` },
      });
      const read = (p: string) => readFileSync(join(dir, 'target', p), 'utf8');
      expect(read('etc/ssh/ssh_host_ed25519_key')).toBe(key.privateKey);
      expect(read('etc/ssh/ssh_host_ed25519_key.pub')).toBe('ssh-ed25519 AAAAk\n');
      expect(read('root/.ssh/authorized_keys')).toBe('ssh-ed25519 AAAAlab osstest\n');
      expect(read('etc/osstest/host.conf')).toBe("OSSTEST_HOST='rig-7'\n");
      expect(read('etc/systemd/system/osstest-boot.service')).toBe(BOOT_SERVICE);
      expect(read('usr/local/sbin/osstest-boot')).toMatch(/^#!\/bin\/bash\n/);
      expect(readFileSync(calls, 'utf8')).toBe(
        'in-target systemctl enable osstest-boot.service\nwget -q -O /dev/null http://10.0.0.1/host/rig-7/progress/installed\n',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
