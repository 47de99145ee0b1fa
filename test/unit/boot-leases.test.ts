/**
 * Lease files of dnsmasq and ISC dhcpd, as those servers write them (the dnsmasq sample's layout is
 * also checked against a real dnsmasq in test/integration/dnsmasq-netns.test.ts), plus damaged ones:
 * bad entries are skipped and reported with their line, never a crash, and the good ones are kept.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  currentLeases,
  detectLeaseFormat,
  parseDnsmasqLeases,
  parseIscLeases,
  parseLeases,
  readLeaseFile,
} from '../../src/provision/boot-services/leases.js';

const DNSMASQ = `1796245200 52:54:00:d7:00:0a 10.219.0.10 lab-q0 01:52:54:00:d7:00:0a
0 52:54:00:d7:00:0b 10.219.0.11 * *
1796245300 52:54:00:D7:00:0C 10.219.0.12 lab-q2 *
duid 00:01:00:01:2c:3d:4e:5f:52:54:00:d7:00:01
1796245400 1234567 fd00::10 v6host 00:01:00:01:aa:bb:cc:dd:ee:ff
`;

const ISC = `# The format of this file is documented in the dhcpd.leases(5) manual page.
# This lease file was written by isc-dhcp-4.4.3-P1

# authoring-byte-order entry is generated, DO NOT DELETE
authoring-byte-order little-endian;

server-duid "\\000\\001\\000\\001,=N_RT\\000\\327\\000\\001";

lease 10.219.1.20 {
  starts 3 2026/12/02 20:00:00;
  ends 3 2026/12/02 21:00:00;
  cltt 3 2026/12/02 20:00:00;
  binding state active;
  next binding state free;
  rewind binding state free;
  hardware ethernet 52:54:00:aa:00:01;
  uid "\\001RT\\000\\252\\000\\001";
  client-hostname "old;name{";
}
lease 10.219.1.21 {
  starts 3 2026/12/02 21:30:00;
  ends 3 2026/12/02 22:30:00;
  tstp 3 2026/12/02 22:30:00;
  cltt 3 2026/12/02 21:30:00;
  binding state active;
  next binding state free;
  hardware ethernet 52:54:00:aa:00:01;
  client-hostname "guest1";
}
lease 10.219.1.22 {
  starts epoch 1796245200; # Wed Dec 02 21:00:00 2026
  ends never;
  binding state active;
  hardware ethernet 52:54:00:aa:00:02;
}
lease 10.219.1.23 {
  starts 3 2026/12/02 21:00:00;
  ends 3 2026/12/02 23:00:00;
  binding state active;
  hardware ethernet 52:54:00:aa:00:03;
}
lease 10.219.1.23 {
  starts 3 2026/12/02 21:10:00;
  ends 3 2026/12/02 21:10:00;
  binding state free;
  hardware ethernet 52:54:00:aa:00:03;
}
host fixed-1 {
  dynamic;
  hardware ethernet 52:54:00:aa:00:09;
  fixed-address 10.219.1.99;
}
`;

// 2026-12-02 22:00 UTC
const NOW = Date.UTC(2026, 11, 2, 22, 0, 0);

describe('dnsmasq lease files', () => {
  it('reads IPv4 leases, never-ending ones, and ignores DHCPv6', () => {
    const p = parseDnsmasqLeases(DNSMASQ);
    expect(p.skipped).toEqual([]);
    expect(p.ignored).toBe(2);
    expect(p.leases).toEqual([
      {
        mac: '52:54:00:d7:00:0a',
        ip: '10.219.0.10',
        expires: 1796245200_000,
        state: 'active',
        hostname: 'lab-q0',
        line: 1,
      },
      { mac: '52:54:00:d7:00:0b', ip: '10.219.0.11', expires: null, state: 'active', line: 2 },
      {
        mac: '52:54:00:d7:00:0c',
        ip: '10.219.0.12',
        expires: 1796245300_000,
        state: 'active',
        hostname: 'lab-q2',
        line: 3,
      },
    ]);
    expect(detectLeaseFormat(DNSMASQ)).toBe('dnsmasq');
  });

  it('skips malformed lines with their line number and keeps the rest', () => {
    const text = [
      '1796245200 52:54:00:d7:00:0a 10.219.0.10 lab-q0 *',
      'garbage',
      'soon 52:54:00:d7:00:0b 10.219.0.11 * *',
      '1796245200 1-52:54:00 10.219.0.12 * *',
      '1796245200 52:54:00:d7:00:0d 10.219.0.300 * *',
      '1796245200 52:54:00:d7:00:0e 10.219.0.14 a b c d',
      '1796245200 52:54:00:d7:00', // a line cut short while the file was written
    ].join('\n');
    const p = parseDnsmasqLeases(text);
    expect(p.leases.map((l) => l.ip)).toEqual(['10.219.0.10']);
    expect(p.skipped).toEqual([
      { line: 2, reason: 'expected 4 or 5 fields, found 1' },
      { line: 3, reason: 'expiry "soon" is not a number of seconds' },
      { line: 4, reason: 'hardware address "1-52:54:00" is not an Ethernet MAC' },
      { line: 5, reason: 'address "10.219.0.300" is not IPv4' },
      { line: 6, reason: 'expected 4 or 5 fields, found 7' },
      { line: 7, reason: 'expected 4 or 5 fields, found 2' },
    ]);
  });

  it('current leases drop expired ones', () => {
    const p = parseDnsmasqLeases(DNSMASQ);
    expect(currentLeases(p.leases, 1796245250_000).map((l) => l.ip)).toEqual(['10.219.0.11', '10.219.0.12']);
  });
});

describe('ISC dhcpd lease files', () => {
  it('reads lease blocks: times, state, MAC, hostname with quoted specials', () => {
    const p = parseIscLeases(ISC);
    expect(p.skipped).toEqual([]);
    expect(detectLeaseFormat(ISC)).toBe('isc');
    expect(p.leases).toHaveLength(5);
    expect(p.leases[0]).toEqual({
      mac: '52:54:00:aa:00:01',
      ip: '10.219.1.20',
      expires: Date.UTC(2026, 11, 2, 21, 0, 0),
      starts: Date.UTC(2026, 11, 2, 20, 0, 0),
      state: 'active',
      hostname: 'old;name{',
      line: 9,
    });
    expect(p.leases[2]).toMatchObject({ ip: '10.219.1.22', expires: null, starts: 1796245200_000 });
    // authoring-byte-order, server-duid, host block
    expect(p.ignored).toBe(3);
  });

  it('the last block for an address wins; one current lease per MAC, the latest', () => {
    const cur = currentLeases(parseIscLeases(ISC).leases, NOW);
    expect(cur.map((l) => [l.mac, l.ip])).toEqual([
      ['52:54:00:aa:00:01', '10.219.1.21'],
      ['52:54:00:aa:00:02', '10.219.1.22'],
    ]);
  });

  it('skips damaged blocks and a block cut off at the end of the file, keeping the good ones', () => {
    const text = `lease 10.219.1.30 {
  starts 3 2026/12/02 21:00:00;
  ends 3 2026/12/02 23:00:00;
  hardware ethernet 52:54:00:aa:00:30;
}
lease not-an-address {
  hardware ethernet 52:54:00:aa:00:31;
}
lease 10.219.1.32 {
  ends 3 2026/13/45 99:00:00;
  hardware ethernet 52:54:00:aa:00:32;
}
lease 10.219.1.33 {
  binding state active;
}
lease 10.219.1.34 {
  hardware token-ring 00:11:22:33:44:55;
}
} stray
lease 10.219.1.35
lease 10.219.1.36 {
  starts 3 2026/12/02 21:00:00;
  hardware ethernet 52:54:00:aa:00:36;
}
lease 10.219.1.37 {
  starts 3 2026/12/02 21:00:00;
  hardware ether`;
    const p = parseIscLeases(text);
    expect(p.leases.map((l) => l.ip)).toEqual(['10.219.1.30', '10.219.1.36']);
    expect(p.skipped).toEqual([
      { line: 6, reason: 'lease "not-an-address": not an IPv4 address' },
      { line: 9, reason: 'lease 10.219.1.32: cannot read the time "3 2026/13/45 99:00:00"' },
      { line: 13, reason: 'lease 10.219.1.33: no hardware ethernet address' },
      { line: 16, reason: 'lease 10.219.1.34: hardware type token-ring is not ethernet' },
      { line: 19, reason: 'unexpected "}"' },
      { line: 19, reason: 'statement "stray" without a ;' },
      { line: 20, reason: 'lease without a { block' },
      { line: 25, reason: 'lease block is not closed before the end of the file' },
    ]);
  });

  it('an unterminated string is reported, not thrown', () => {
    const p = parseIscLeases(
      'lease 10.219.1.40 {\n  client-hostname "abc;\n  hardware ethernet 52:54:00:aa:00:40;\n',
    );
    expect(p.leases).toEqual([]);
    expect(p.skipped.map((s) => s.reason)).toContain('unterminated string');
  });
});

describe('reading lease files', () => {
  it('detects the format, and a missing file is no leases', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'osstest-leases-'));
    try {
      writeFileSync(join(dir, 'dhcpd.leases'), ISC);
      writeFileSync(join(dir, 'dnsmasq.leases'), DNSMASQ);
      expect((await readLeaseFile(join(dir, 'dhcpd.leases'))).format).toBe('isc');
      expect((await readLeaseFile(join(dir, 'dnsmasq.leases'))).leases).toHaveLength(3);
      expect(await readLeaseFile(join(dir, 'none'))).toMatchObject({ leases: [], skipped: [] });
      await expect(readLeaseFile(dir)).rejects.toThrow(`lease file ${dir}:`);
      expect(parseLeases('', 'auto').leases).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
