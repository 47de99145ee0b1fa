/**
 * The dnsmasq backend's files (what a real dnsmasq does with them is in
 * test/integration/dnsmasq-netns.test.ts) and the BootServices setting.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Config } from '../../src/config/config.js';
import { bootServicesKind } from '../../src/provision/boot-services/common.js';
import {
  DnsmasqService,
  dnsmasqConf,
  dnsmasqHostFiles,
  hostTag,
} from '../../src/provision/boot-services/dnsmasq.js';

const opts = {
  binary: '/usr/sbin/dnsmasq',
  stateDir: '/var/lib/osstest/lab/dnsmasq',
  interface: 'br0',
  serverIp: '10.219.3.1',
  netmask: '255.255.255.0',
  router: '10.219.3.1',
  tftpRoot: '/srv/tftp',
  leaseFile: '/var/lib/osstest/lab/dnsmasq.leases',
  leaseTimeSecs: 3600,
  log: () => {},
};

describe('dnsmasq config', () => {
  it('static range on the network, no DNS, TFTP root, boot policy per client kind', () => {
    const c = dnsmasqConf(opts).split('\n');
    expect(c).toEqual(
      expect.arrayContaining([
        'interface=br0',
        'port=0',
        'dhcp-range=10.219.3.0,static,255.255.255.0,3600',
        'dhcp-option=option:router,10.219.3.1',
        'dhcp-hostsfile=/var/lib/osstest/lab/dnsmasq/hosts',
        'dhcp-optsfile=/var/lib/osstest/lab/dnsmasq/opts',
        'dhcp-leasefile=/var/lib/osstest/lab/dnsmasq.leases',
        'dhcp-userclass=set:ipxe,iPXE',
        'dhcp-boot=tag:!ipxe,tag:!efi,pxelinux.0,,10.219.3.1',
        'dhcp-boot=tag:!ipxe,tag:efi,ipxe.efi,,10.219.3.1',
        'dhcp-boot=tag:ipxe,tag:pxelinux-host,pxelinux.0,,10.219.3.1',
        'enable-tftp',
        'tftp-root=/srv/tftp',
      ]),
    );
  });

  it('hosts and opts: per-host tag, pxelinux hosts marked, iPXE script per iPXE host; order-independent', () => {
    const a = {
      name: 'lab-q0',
      mac: '52:54:00:D7:00:0A',
      ip: '10.219.3.10',
      loader: 'ipxe' as const,
      ipxeScript: 'http://10.219.3.1/host/lab-q0/boot.ipxe',
    };
    const b = {
      name: 'lab-q1.example',
      mac: '52:54:00:d7:00:0b',
      ip: '10.219.3.11',
      loader: 'pxelinux' as const,
      ipxeScript: 'http://x/',
    };
    const f = dnsmasqHostFiles([b, a]);
    expect(f).toEqual(dnsmasqHostFiles([a, b]));
    expect(f.hosts.split('\n').slice(1, 3)).toEqual([
      `52:54:00:d7:00:0a,set:${hostTag('lab-q0')},10.219.3.10,lab-q0`,
      `52:54:00:d7:00:0b,set:${hostTag('lab-q1.example')},set:pxelinux-host,10.219.3.11,lab-q1`,
    ]);
    expect(f.opts.split('\n').slice(1, -1)).toEqual([
      `tag:ipxe,tag:${hostTag('lab-q0')},option:bootfile-name,http://10.219.3.1/host/lab-q0/boot.ipxe`,
    ]);
    expect(hostTag('lab-q0')).toMatch(/^h[0-9a-f]{12}$/);
  });

  it('refuses values that would break the files (commas, spaces, line breaks)', () => {
    const h = {
      name: 'x',
      mac: '52:54:00:00:00:01',
      ip: '10.219.3.12',
      loader: 'ipxe' as const,
      ipxeScript: 'http://a/b',
    };
    expect(() => dnsmasqHostFiles([{ ...h, ipxeScript: 'http://a/b,c' }])).toThrow(
      /iPXE script URL "http:\/\/a\/b,c" cannot be written/,
    );
    expect(() => dnsmasqHostFiles([{ ...h, ip: '10.219.3.12\ndhcp-range=1' }])).toThrow(/address/);
    expect(() => dnsmasqConf({ ...opts, interface: 'br0 x' })).toThrow(/interface/);
    expect(() => dnsmasqConf({ ...opts, tftpRoot: '/srv/tftp\ndhcp-range=0.0.0.0' })).toThrow(
      /TFTP root .* cannot be written/,
    );
  });
});

describe('dnsmasq that exits at once', () => {
  // The exit event can come before the last of stderr is read (CI saw an empty reason once); the error
  // must still carry dnsmasq's words. The stand-in makes that order certain: its words come from a
  // process that outlives it on the same stderr. A real dnsmasq refusing an interface is in the netns test.
  it('is an error with the reason it printed, even when the words come after the exit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'osstest-dnsmasq-quick-exit-'));
    try {
      const fake = join(dir, 'dnsmasq');
      writeFileSync(
        fake,
        '#!/bin/sh\n(sleep 0.2; echo "dnsmasq: unknown interface nosuchif0" >&2) &\nexit 2\n',
      );
      chmodSync(fake, 0o755);
      for (let i = 0; i < 3; i++) {
        const svc = new DnsmasqService({
          ...opts,
          binary: fake,
          stateDir: join(dir, 'state'),
          tftpRoot: join(dir, 'tftp'),
          leaseFile: join(dir, 'leases'),
        });
        await expect(svc.start([])).rejects.toThrow(/did not start: dnsmasq: unknown interface nosuchif0/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('BootServices setting', () => {
  const cfg = (v?: string) =>
    Config.fromFiles([], { cwd: '/' }).withOverrides(v === undefined ? {} : { BootServices: v });
  it('defaults to builtin; takes dnsmasq and external; refuses anything else', () => {
    expect(bootServicesKind(cfg())).toBe('builtin');
    expect(bootServicesKind(cfg('dnsmasq'))).toBe('dnsmasq');
    expect(bootServicesKind(cfg('external'))).toBe('external');
    expect(() => bootServicesKind(cfg('isc'))).toThrow(
      'BootServices must be one of builtin, dnsmasq, external, not "isc"',
    );
  });
});
