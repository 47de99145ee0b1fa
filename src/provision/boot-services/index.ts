/**
 * The hosts' boot services behind one interface, the backend chosen by the `BootServices` setting:
 * - `builtin` (default): our own DHCP and TFTP servers in the controller (builtin.ts);
 * - `dnsmasq`: dnsmasq run by us, configured from the host database (dnsmasq.ts);
 * - `external`: the site's servers; we only write boot files and read its lease file (external.ts).
 */
import { ConfigError } from '../../config/errors.js';
import { startBuiltinBackend } from './builtin.js';
import { type BootBackend, type BootBackendOptions, bootServicesKind } from './common.js';
import { startDnsmasqBackend } from './dnsmasq.js';
import { startExternalBackend } from './external.js';

export type { BootBackend, BootBackendOptions, BootServicesKind, HostBoot } from './common.js';
export { BOOT_SERVICES_KINDS, bootServicesKind, reservedHosts } from './common.js';
export type { LeaseFileFormat, LeaseRecord, ParsedLeaseFile } from './leases.js';
export { currentLeases, parseDnsmasqLeases, parseIscLeases, parseLeases, readLeaseFile } from './leases.js';

export async function startBootBackend(o: BootBackendOptions): Promise<BootBackend> {
  const kind = bootServicesKind(o.config);
  if (kind === 'dnsmasq') return startDnsmasqBackend({ ...o, binary: o.config.string('DnsmasqBinary') });
  if (kind === 'external') {
    if (!o.config.optString('DhcpLeasesFile'))
      throw new ConfigError(
        "BootServices external needs DhcpLeasesFile: the lease file of the site's DHCP server",
      );
    return startExternalBackend({ ...o, leasesFile: o.config.path('DhcpLeasesFile') });
  }
  return startBuiltinBackend(o);
}
