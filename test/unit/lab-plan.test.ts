/** The virtual lab's layout from the config: addresses, names, MACs, and the errors for bad settings. */
import { describe, expect, it } from 'vitest';
import { Config } from '../../src/config/config.js';
import { labPlan, labServerIp, labWebspaceUrl } from '../../src/lab/plan.js';

const cfg = (extra = '') => Config.fromText(`LabDir /var/lib/osstest/lab\n${extra}`);

describe('lab plan', () => {
  it('lays out the default lab', () => {
    const p = labPlan(cfg());
    expect(p).toMatchObject({
      namespace: 'osstest-lab',
      subnet: '10.215.0.0/24',
      netmask: '255.255.255.0',
      serverIp: '10.215.0.1',
      webspaceUrl: 'http://10.215.0.1:80/',
      qemu: { binary: 'qemu-system-x86_64', accel: 'tcg', memoryMb: 256, disk: '4G', nic: 'e1000' },
      stateFile: '/var/lib/osstest/lab/state.json',
    });
    expect(p.link).toMatchObject({ rootIp: '10.215.255.1', labIp: '10.215.255.2', labIf: 'uplink' });
    expect(p.link.rootIf).toMatch(/^osl[0-9a-f]{8}$/);
    expect(p.qemuHosts.map((h) => [h.name, h.mac, h.ip, h.tap, h.vmDir])).toEqual([
      ['lab-q0', '52:54:00:d7:00:0a', '10.215.0.10', 'tap0', '/var/lib/osstest/lab/vms/lab-q0'],
      ['lab-q1', '52:54:00:d7:00:0b', '10.215.0.11', 'tap1', '/var/lib/osstest/lab/vms/lab-q1'],
    ]);
    expect(p.buildHosts.map((b) => [b.name, b.labIp, b.bridgePort])).toEqual([
      ['lab-b0', '10.215.0.100', 'bh0'],
    ]);
  });

  it('follows the settings', () => {
    const c = cfg(
      'LabSubnet 10.215.9.0/24\nLabQemuHosts 3\nLabBuildHosts 0\nLabHostPrefix t\nLabQemuAccel kvm\nLabHttpPort 8080\n',
    );
    const p = labPlan(c);
    expect(p.qemuHosts.map((h) => `${h.name} ${h.mac} ${h.ip}`)).toEqual([
      't-q0 52:54:00:d7:09:0a 10.215.9.10',
      't-q1 52:54:00:d7:09:0b 10.215.9.11',
      't-q2 52:54:00:d7:09:0c 10.215.9.12',
    ]);
    expect(p.buildHosts).toEqual([]);
    expect(labServerIp(c)).toBe('10.215.9.1');
    expect(labWebspaceUrl(c)).toBe('http://10.215.9.1:8080/');
    expect(labWebspaceUrl(cfg('WebspaceUrl http://192.0.2.1/osstest'))).toBe('http://192.0.2.1/osstest/');
    // Different namespaces get different root-side link names.
    expect(labPlan(cfg('LabNamespace other')).link.rootIf).not.toBe(labPlan(cfg()).link.rootIf);
  });

  it('says what is wrong with a bad setting', () => {
    expect(() => labPlan(cfg('LabSubnet 10.215.0.0'))).toThrow(
      /LabSubnet "10.215.0.0" is not an IPv4 network/,
    );
    expect(() => labPlan(cfg('LabSubnet 10.215.0.1/24'))).toThrow(
      /host bits are set \(network is 10.215.0.0\/24\)/,
    );
    expect(() => labPlan(cfg('LabSubnet 10.215.0.0/25'))).toThrow(/must be a \/24 or larger/);
    expect(() => labPlan(cfg('LabLinkNet 10.215.0.4/30'))).toThrow(/is inside LabSubnet/);
    expect(() => labPlan(cfg('LabLinkNet 10.215.255.0/29'))).toThrow(/must be a \/30/);
    expect(() => labPlan(cfg('LabQemuAccel hvf'))).toThrow(/tcg or kvm/);
    expect(() => labPlan(cfg('LabNamespace a/b'))).toThrow(/LabNamespace/);
    expect(() => labPlan(cfg('LabQemuHosts many'))).toThrow(/whole number/);
  });
});
