/** Boot configs from the shipped templates: file naming, rendering rules, atomic writes, local boot. */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Config } from '../../src/config/config.js';
import {
  type NetbootSpec,
  type PxeSettings,
  pxeFileName,
  pxeSettings,
  pxeVars,
  renderTemplate,
  writeLocalBoot,
  writeNetboot,
} from '../../src/provision/pxe/index.js';

const host = { name: 'lab-q0', mac: '52:54:00:D7:00:0A', ip: '10.215.0.10' };
const spec: NetbootSpec = {
  purpose: 'osstest ramdisk (6.1.0-56-amd64)',
  kernel: { tftpPath: 'hosts/lab-q0/vmlinuz', url: 'http://10.215.0.1:80/host/lab-q0/vmlinuz' },
  initrds: [
    { tftpPath: 'hosts/lab-q0/ramdisk.cpio.gz', url: 'http://10.215.0.1:80/host/lab-q0/ramdisk.cpio.gz' },
    { tftpPath: 'hosts/lab-q0/host.cpio.gz', url: 'http://10.215.0.1:80/host/lab-q0/host.cpio.gz' },
  ],
  cmdline: 'console=ttyS0,115200n8 panic=30',
};

describe('pxelinux file names (TftpPxeTemplates)', () => {
  it('knows the MAC and address forms pxelinux looks for', () => {
    expect(pxeVars(host)).toEqual({
      name: 'lab-q0',
      ether: '52:54:00:d7:00:0a',
      etherhyph: '52-54-00-d7-00-0a',
      ipaddrhex: '0AD7000A',
    });
  });

  it('takes the first template whose variables are all known', () => {
    expect(pxeFileName(['01-%etherhyph%', '%ipaddrhex%'], host)).toBe('01-52-54-00-d7-00-0a');
    expect(pxeFileName(['%ipaddrhex%', '01-%etherhyph%'], host)).toBe('0AD7000A');
    expect(pxeFileName(['%ipaddrhex%', '01-%etherhyph%'], { ...host, ip: null })).toBe(
      '01-52-54-00-d7-00-0a',
    );
  });

  it('says so when no template can be named, and refuses a bad MAC or address', () => {
    expect(() => pxeFileName(['%ipaddrhex%'], { ...host, ip: null })).toThrow(/none of TftpPxeTemplates/);
    expect(() => pxeVars({ ...host, mac: '52:54:00' })).toThrow(/bad MAC/);
    expect(() => pxeVars({ ...host, ip: '10.215.0.300' })).toThrow(/bad IPv4/);
  });

  it('uses the settings defaults: 01-%etherhyph% first', () => {
    const s = pxeSettings(Config.fromText('TftpPath /srv/tftp\nWebspaceDir /srv/web\n'));
    expect(s.fileTemplates).toEqual(['01-%etherhyph%', '%ipaddrhex%']);
    expect(s.pxeDir).toBe('pxelinux.cfg');
    expect(() => pxeSettings(Config.fromText('TftpPxeDir ../etc\n'))).toThrow(/inside TftpPath/);
  });
});

describe('template rendering', () => {
  it('fills {{names}}', () => {
    expect(renderTemplate('a {{x}} b {{ y }}', { x: '1', y: '2' }, 't')).toBe('a 1 b 2');
  });
  it('names the template and line of an unknown variable', () => {
    expect(() => renderTemplate('ok\nKERNEL {{kernal}}', { kernel: 'k' }, 'pxelinux.tmpl')).toThrow(
      'pxelinux.tmpl:2: unknown template variable {{kernal}}',
    );
  });
  it('refuses a value with a line break (it could add directives), except *_lines', () => {
    expect(() => renderTemplate('APPEND {{cmdline}}', { cmdline: 'quiet\nKERNEL evil' }, 't')).toThrow(
      /line break/,
    );
    expect(renderTemplate('{{initrd_lines}}', { initrd_lines: 'initrd a\ninitrd b' }, 't')).toBe(
      'initrd a\ninitrd b',
    );
  });
});

describe('writing boot configs', () => {
  let dir: string;
  let s: PxeSettings;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'osstest-pxe-'));
    s = pxeSettings(Config.fromText(`TftpPath ${dir}/tftp\nWebspaceDir ${dir}/web\n`));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the pxelinux config (TFTP paths) and the iPXE script (URLs) from the shipped templates', () => {
    const out = writeNetboot(s, host, spec);
    expect(out.pxelinux).toBe(join(dir, 'tftp', 'pxelinux.cfg', '01-52-54-00-d7-00-0a'));
    expect(out.ipxe).toBe(join(dir, 'web', 'lab-q0', 'boot.ipxe'));
    const px = readFileSync(out.pxelinux, 'utf8');
    expect(px).toContain('KERNEL hosts/lab-q0/vmlinuz');
    expect(px).toContain('INITRD hosts/lab-q0/ramdisk.cpio.gz,hosts/lab-q0/host.cpio.gz');
    expect(px).toContain('APPEND console=ttyS0,115200n8 panic=30');
    const ipxe = readFileSync(out.ipxe, 'utf8');
    expect(ipxe.startsWith('#!ipxe\n')).toBe(true);
    expect(ipxe).toContain(
      'kernel http://10.215.0.1:80/host/lab-q0/vmlinuz console=ttyS0,115200n8 panic=30\n',
    );
    expect(ipxe).toContain(
      'initrd http://10.215.0.1:80/host/lab-q0/ramdisk.cpio.gz\ninitrd http://10.215.0.1:80/host/lab-q0/host.cpio.gz\nboot\n',
    );
    // Atomic writes leave no temporary files behind.
    expect(readdirSync(join(dir, 'tftp', 'pxelinux.cfg'))).toEqual(['01-52-54-00-d7-00-0a']);
    expect(readdirSync(join(dir, 'web', 'lab-q0'))).toEqual(['boot.ipxe']);
  });

  it('switches both to local boot', () => {
    const out = writeNetboot(s, host, spec);
    expect(writeLocalBoot(s, host)).toEqual(out);
    expect(readFileSync(out.pxelinux, 'utf8')).toMatch(/DEFAULT local[\s\S]*LOCALBOOT 0/);
    expect(readFileSync(out.pxelinux, 'utf8')).not.toContain('KERNEL');
    expect(readFileSync(out.ipxe, 'utf8')).toMatch(/^#!ipxe\n[\s\S]*sanboot --no-describe --drive 0x80/);
  });

  it('leaves the old files in place when a template is broken', () => {
    const tdir = join(dir, 'templates');
    mkdirSync(tdir);
    writeFileSync(join(tdir, 'pxelinux.tmpl'), 'KERNEL {{kernel}}\n');
    writeFileSync(join(tdir, 'ipxe.tmpl'), '#!ipxe\nkernel {{nope}}\n');
    const out = writeNetboot(s, host, spec);
    const before = readFileSync(out.pxelinux, 'utf8');
    expect(() => writeNetboot({ ...s, templatesDir: tdir }, host, spec)).toThrow(
      /ipxe.tmpl:2: unknown template variable/,
    );
    expect(readFileSync(out.pxelinux, 'utf8')).toBe(before);
  });

  it('refuses boot file paths that would break the pxelinux syntax', () => {
    const bad = { ...spec, initrds: [{ tftpPath: 'a,b', url: 'http://x/' }] };
    expect(() => writeNetboot(s, host, bad)).toThrow(/without blanks or commas/);
  });
});
