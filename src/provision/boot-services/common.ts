/**
 * What every boot-services backend offers and is given. A backend answers (or leaves to the site) the
 * hosts' DHCP and TFTP; the HTTP webspace is always ours and is not part of it.
 */
import type { Config } from '../../config/config.js';
import { ConfigError } from '../../config/errors.js';
import type { Store } from '../../db/store.js';
import { bootLoaderOf } from '../pxe/index.js';
import type { LeaseRecord } from './leases.js';

export type BootServicesKind = 'builtin' | 'dnsmasq' | 'external';
export const BOOT_SERVICES_KINDS: readonly BootServicesKind[] = ['builtin', 'dnsmasq', 'external'];

/** The `BootServices` setting, checked. */
export function bootServicesKind(config: Config): BootServicesKind {
  const v = config.string('BootServices').trim();
  if ((BOOT_SERVICES_KINDS as readonly string[]).includes(v)) return v as BootServicesKind;
  throw new ConfigError(
    `BootServices must be one of ${BOOT_SERVICES_KINDS.join(', ')}, not ${JSON.stringify(v)}`,
  );
}

export interface BootBackendOptions {
  config: Config;
  store: Store;
  /** Our address on the hosts' network: DHCP server id, next-server, TFTP binds here. */
  serverIp: string;
  netmask: string;
  /** Given to hosts as their router. */
  router?: string;
  /** The interface on the hosts' network (dnsmasq answers there only). */
  interface: string;
  tftpRoot: string;
  /** Base URL of the webspace as hosts reach it (ends in /): iPXE is sent to `<it>host/<name>/boot.ipxe`. */
  webspaceUrl: string;
  /** Where the backend keeps its own files (the builtin's lease file, dnsmasq's config and leases). */
  stateDir: string;
  /** Where 255.255.255.255 replies go when the route for it is missing (builtin only). */
  broadcastAddress?: string;
  log: (line: string) => void;
  /** Records a host event (kind `dhcp` or `fetch`, as the builtin servers do). */
  record: (host: string, kind: string, detail: string) => Promise<void>;
}

export interface BootBackend {
  readonly kind: BootServicesKind;
  /** What answers DHCP and TFTP, and where (for services.json and status output). */
  describe(): Record<string, unknown>;
  /** Counters, for the log. */
  stats(): Record<string, unknown>;
  /**
   * Brings the reservations in line with the host database (hosts added or removed, MAC, address or
   * BootLoader changed). Returns whether anything changed. The builtin reads the database per packet,
   * so for it this is a no-op.
   */
  syncHosts(): Promise<boolean>;
  /** The leases in force: which address each MAC got. */
  leases(): Promise<LeaseRecord[]>;
  close(): Promise<void>;
}

export interface HostBoot {
  name: string;
  mac: string;
  ip: string;
  loader: 'ipxe' | 'pxelinux';
  ipxeScript: string;
}

/** Every host with a MAC and an address, with how it boots (a bad BootLoader is logged and taken as ipxe). */
export async function reservedHosts(o: BootBackendOptions): Promise<HostBoot[]> {
  const out: HostBoot[] = [];
  for (const h of await o.store.listHosts()) {
    if (!h.mac || !h.ip) continue;
    let loader: 'ipxe' | 'pxelinux';
    try {
      loader = bootLoaderOf((p) => o.config.hostProp(h.name, p, h.props), h.name);
    } catch (err) {
      o.log((err as Error).message);
      loader = 'ipxe';
    }
    out.push({
      name: h.name,
      mac: h.mac.toLowerCase(),
      ip: h.ip,
      loader,
      ipxeScript: `${o.webspaceUrl}host/${h.name}/boot.ipxe`,
    });
  }
  return out;
}
