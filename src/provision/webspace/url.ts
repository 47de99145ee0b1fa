/**
 * Where hosts reach the webspace: `WebspaceUrl`, or by default the virtual lab's web server (the first
 * address of LabSubnet, port LabHttpPort). Lives here, below the lab, so testcases and install methods
 * can work it out from the config alone.
 */
import type { Config } from '../../config/config.js';
import { ConfigError } from '../../config/errors.js';
import { intToIp, ipToInt, isIpv4 } from '../dhcp/codec.js';

export interface Cidr {
  network: number;
  prefix: number;
}

export function parseCidr(value: string, what: string): Cidr {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(value.trim());
  const prefix = Number(m?.[2]);
  if (!m || !isIpv4(m[1]!) || prefix < 8 || prefix > 30) {
    throw new ConfigError(`${what} ${JSON.stringify(value)} is not an IPv4 network like 10.215.0.0/24`);
  }
  const mask = (0xffffffff << (32 - prefix)) >>> 0;
  const ip = ipToInt(m[1]!);
  if ((ip & mask) >>> 0 !== ip)
    throw new ConfigError(
      `${what} ${value}: host bits are set (network is ${intToIp((ip & mask) >>> 0)}/${prefix})`,
    );
  return { network: ip, prefix };
}

export function maskOf(prefix: number): string {
  return intToIp((0xffffffff << (32 - prefix)) >>> 0);
}

/** The controller's address on the lab bridge, as the hosts see it. */
export function labServerIp(config: Config): string {
  return intToIp(parseCidr(config.string('LabSubnet'), 'LabSubnet').network + 1);
}

/** WebspaceUrl if set, else the lab's web server. Always ends in `/`. */
export function labWebspaceUrl(config: Config): string {
  const set = config.optString('WebspaceUrl');
  const url = set && set !== '' ? set : `http://${labServerIp(config)}:${config.int('LabHttpPort')}/`;
  return url.endsWith('/') ? url : `${url}/`;
}
