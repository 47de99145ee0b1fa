/**
 * The hosts' boot services behind one interface, the backend chosen by the `BootServices` setting:
 * - `builtin` (default): our own DHCP and TFTP servers in the controller (builtin.ts);
 * - `dnsmasq`: dnsmasq run by us, configured from the host database (dnsmasq.ts);
 * - `external`: the site's servers; we only write boot files and read its lease file (external.ts).
 */

import type { Config } from '../../config/config.js';
import { ConfigError } from '../../config/errors.js';
import { builtinLeaseFile, readBuiltinLeases, startBuiltinBackend } from './builtin.js';
import {
  type BootBackend,
  type BootBackendOptions,
  type BootServicesKind,
  bootServicesKind,
} from './common.js';
import { dnsmasqLeaseFile, startDnsmasqBackend } from './dnsmasq.js';
import { startExternalBackend } from './external.js';
import { currentLeases, type LeaseRecord, readLeaseFile, type SkippedEntry } from './leases.js';

export type { BootBackend, BootBackendOptions, BootServicesKind, HostBoot } from './common.js';
export { BOOT_SERVICES_KINDS, bootServicesKind, reservedHosts } from './common.js';
export type { LeaseFileFormat, LeaseRecord, ParsedLeaseFile } from './leases.js';
export { currentLeases, parseDnsmasqLeases, parseIscLeases, parseLeases, readLeaseFile } from './leases.js';

function externalLeasesFile(config: Config): string {
  if (!config.optString('DhcpLeasesFile'))
    throw new ConfigError(
      "BootServices external needs DhcpLeasesFile: the lease file of the site's DHCP server",
    );
  return config.path('DhcpLeasesFile');
}

export async function startBootBackend(o: BootBackendOptions): Promise<BootBackend> {
  const kind = bootServicesKind(o.config);
  if (kind === 'dnsmasq') return startDnsmasqBackend({ ...o, binary: o.config.string('DnsmasqBinary') });
  if (kind === 'external') return startExternalBackend({ ...o, leasesFile: externalLeasesFile(o.config) });
  return startBuiltinBackend(o);
}

export interface BackendLeases {
  bootServices: BootServicesKind;
  file: string;
  /** The leases in force, one per MAC. */
  leases: LeaseRecord[];
  /** Entries of the file that could not be read (dnsmasq's and ISC's files; the builtin's is all or nothing). */
  skipped: SkippedEntry[];
}

/**
 * Which address each MAC got, from the lease file of the configured backend, without talking to it:
 * the builtin's `<stateDir>/dhcp-leases.json`, dnsmasq's `<stateDir>/dnsmasq.leases`, or the site's
 * DhcpLeasesFile. `stateDir` is what the services were started with (the lab's LabDir).
 */
export async function readBackendLeases(
  config: Config,
  stateDir: string,
  now = Date.now(),
): Promise<BackendLeases> {
  const kind = bootServicesKind(config);
  if (kind === 'builtin') {
    const file = builtinLeaseFile(stateDir);
    return { bootServices: kind, file, leases: await readBuiltinLeases(file), skipped: [] };
  }
  const file = kind === 'dnsmasq' ? dnsmasqLeaseFile(stateDir) : externalLeasesFile(config);
  const p = await readLeaseFile(file, kind === 'dnsmasq' ? 'dnsmasq' : 'auto');
  return { bootServices: kind, file, leases: currentLeases(p.leases, now), skipped: p.skipped };
}
