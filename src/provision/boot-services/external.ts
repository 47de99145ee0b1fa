/**
 * The `external` boot-services backend, the original OSSTest's way: the site's own DHCP and TFTP
 * servers boot the hosts. osstest runs no daemon; it writes boot files into TftpPath (which the site's
 * TFTP server must serve: the PXE module does that for every backend) and learns which address a MAC
 * got from the site's lease file (`DhcpLeasesFile`, ISC dhcpd's or dnsmasq's, recognised by content).
 * Reservations are the site's business, so host changes need nothing here.
 */
import type { BootBackend, BootBackendOptions } from './common.js';
import { currentLeases, readLeaseFile } from './leases.js';

export function startExternalBackend(o: BootBackendOptions & { leasesFile: string }): BootBackend {
  let reads = 0;
  let skipped = 0;
  return {
    kind: 'external',
    describe: () => ({ dhcp: 'external', tftp: 'external', tftpRoot: o.tftpRoot, leasesFile: o.leasesFile }),
    stats: () => ({ leaseReads: reads, skippedEntries: skipped }),
    syncHosts: async () => false,
    leases: async () => {
      const p = await readLeaseFile(o.leasesFile);
      reads++;
      skipped += p.skipped.length;
      for (const s of p.skipped) o.log(`${o.leasesFile}:${s.line}: skipped: ${s.reason}`);
      return currentLeases(p.leases);
    },
    close: async () => {},
  };
}
