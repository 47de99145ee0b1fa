/**
 * The virtual lab's layout, worked out from the config alone (so `lab up`, `lab down`, `lab status` and
 * the testcases agree without talking to each other):
 *
 *   LabSubnet (default 10.215.0.0/24) exists only inside the lab's namespace, on its bridge `br0`:
 *     .1        the controller's boot services (DHCP, TFTP, HTTP webspace)
 *     .10 + i   QEMU test host i (MAC 52:54:00:d7:<third octet>:<i + 10>)
 *     .100 + i  netns build host i's second interface, on the bridge
 *   LabLinkNet (default 10.215.255.0/30) joins the root namespace to the lab's: .1 in the root namespace,
 *     .2 in the lab's, and the root namespace routes LabSubnet through it. The lab's namespace forwards
 *     between the two and has no default route, so nothing from the lab can go anywhere else.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Config } from '../config/config.js';
import { ConfigError } from '../config/errors.js';
import { intToIp } from '../provision/dhcp/codec.js';
import { labWebspaceUrl, maskOf, parseCidr } from '../provision/webspace/url.js';

export { labServerIp, labWebspaceUrl, parseCidr } from '../provision/webspace/url.js';

export interface LabQemuHostPlan {
  name: string;
  index: number;
  mac: string;
  ip: string;
  tap: string;
  vmDir: string;
}

export interface LabBuildHostPlan {
  name: string;
  index: number;
  /** Its address on the lab bridge (it is reached from the controller at its own netns link address). */
  labIp: string;
  /** The interface in the lab namespace that joins it to the bridge. */
  bridgePort: string;
  stateDir: string;
}

export interface LabPlan {
  dir: string;
  namespace: string;
  bridge: string;
  subnet: string;
  prefix: number;
  netmask: string;
  serverIp: string;
  link: { rootIf: string; labIf: string; rootIp: string; labIp: string; prefix: number };
  httpPort: number;
  webspaceUrl: string;
  /** disk: size of each VM's disk for qemu-img (`4G`), or '0' for none. */
  qemu: { binary: string; accel: string; memoryMb: number; disk: string; nic: 'e1000' | 'virtio' };
  qemuHosts: LabQemuHostPlan[];
  buildHosts: LabBuildHostPlan[];
  stateFile: string;
  servicesFile: string;
  servicesLog: string;
}

export function labPlan(config: Config): LabPlan {
  const dir = config.path('LabDir');
  const namespace = config.string('LabNamespace');
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$/.test(namespace)) {
    throw new ConfigError(
      `LabNamespace ${JSON.stringify(namespace)}: letters, digits, '.', '_' and '-' only`,
    );
  }
  const sub = parseCidr(config.string('LabSubnet'), 'LabSubnet');
  if (sub.prefix > 24)
    throw new ConfigError(`LabSubnet ${config.string('LabSubnet')}: must be a /24 or larger`);
  const link = parseCidr(config.string('LabLinkNet'), 'LabLinkNet');
  if (link.prefix !== 30) throw new ConfigError(`LabLinkNet ${config.string('LabLinkNet')}: must be a /30`);
  const subMask = (0xffffffff << (32 - sub.prefix)) >>> 0;
  if ((link.network & subMask) >>> 0 === sub.network) {
    throw new ConfigError(
      `LabLinkNet ${config.string('LabLinkNet')} is inside LabSubnet ${config.string('LabSubnet')}`,
    );
  }
  const nQemu = config.int('LabQemuHosts');
  const nBuild = config.int('LabBuildHosts');
  if (nQemu < 0 || nQemu > 80) throw new ConfigError('LabQemuHosts must be from 0 to 80');
  if (nBuild < 0 || nBuild > 50) throw new ConfigError('LabBuildHosts must be from 0 to 50');
  const prefix = config.string('LabHostPrefix');
  if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(prefix)) {
    throw new ConfigError(`LabHostPrefix ${JSON.stringify(prefix)}: lower-case letters, digits and '-' only`);
  }
  const accel = config.string('LabQemuAccel');
  if (accel !== 'tcg' && accel !== 'kvm')
    throw new ConfigError(`LabQemuAccel must be tcg or kvm, not ${accel}`);
  const memoryMb = config.int('LabQemuMemory');
  if (memoryMb < 128) throw new ConfigError('LabQemuMemory must be at least 128 (MB)');
  const nic = config.string('LabQemuNic');
  if (nic !== 'e1000' && nic !== 'virtio')
    throw new ConfigError(`LabQemuNic must be e1000 or virtio, not ${nic}`);
  const disk = config.string('LabQemuDisk');
  if (!/^(0|[1-9]\d*[KMGT]?)$/.test(disk))
    throw new ConfigError(`LabQemuDisk ${disk}: a size such as 4G, or 0`);
  const third = (sub.network >>> 8) & 255;
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  const serverIp = intToIp(sub.network + 1);
  const httpPort = config.int('LabHttpPort');
  // Interface names are at most 15 characters and the root end shares the root namespace with others.
  const tag = createHash('sha256').update(namespace).digest('hex').slice(0, 8);
  return {
    dir,
    namespace,
    bridge: 'br0',
    subnet: `${intToIp(sub.network)}/${sub.prefix}`,
    prefix: sub.prefix,
    netmask: maskOf(sub.prefix),
    serverIp,
    link: {
      rootIf: `osl${tag}`,
      labIf: 'uplink',
      rootIp: intToIp(link.network + 1),
      labIp: intToIp(link.network + 2),
      prefix: 30,
    },
    httpPort,
    webspaceUrl: labWebspaceUrl(config),
    qemu: { binary: config.string('QemuBinary'), accel, memoryMb, disk, nic },
    qemuHosts: Array.from({ length: nQemu }, (_, i) => {
      const name = `${prefix}-q${i}`;
      return {
        name,
        index: i,
        mac: `52:54:00:d7:${hex(third)}:${hex(i + 10)}`,
        ip: intToIp(sub.network + 10 + i),
        tap: `tap${i}`,
        vmDir: join(dir, 'vms', name),
      };
    }),
    buildHosts: Array.from({ length: nBuild }, (_, i) => {
      const name = `${prefix}-b${i}`;
      return {
        name,
        index: i,
        labIp: intToIp(sub.network + 100 + i),
        bridgePort: `bh${i}`,
        stateDir: join(dir, 'build', name),
      };
    }),
    stateFile: join(dir, 'state.json'),
    servicesFile: join(dir, 'services.json'),
    servicesLog: join(dir, 'services.log'),
  };
}
