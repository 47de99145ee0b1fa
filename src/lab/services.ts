/**
 * The controller's boot services for one network: DHCP (reservations from the host database), TFTP
 * (pxelinux and its files) and HTTP (the webspace), each recording what hosts do as host events in the
 * store. The virtual lab runs them inside its namespace (services-main.ts); a site's own network can
 * run the same thing.
 *
 * Boot policy: a host whose `BootLoader` property is `ipxe` (the default) is told, once its firmware is
 * iPXE, to fetch `<WebspaceUrl>host/<name>/boot.ipxe` over HTTP; any other client (BIOS PXE firmware, or
 * iPXE for a `pxelinux` host) gets pxelinux.0 over TFTP, which reads `pxelinux.cfg/…` and fetches the
 * kernel over TFTP too.
 */
import type { Config } from '../config/config.js';
import type { Store } from '../db/store.js';
import { type DhcpServer, JsonFileLeaseStore, startDhcpServer } from '../provision/dhcp/index.js';
import { bootLoaderOf } from '../provision/pxe/index.js';
import { startTftpServer, type TftpServer } from '../provision/tftp/index.js';
import { type WebspaceStats, webspaceRouter } from '../provision/webspace/index.js';
import { startWebspaceServer, type WebspaceServer } from '../provision/webspace/server.js';

export interface BootServicesOptions {
  config: Config;
  store: Store;
  /** Our address on the hosts' network: DHCP server id, TFTP and HTTP bind here. */
  serverIp: string;
  netmask: string;
  /** Given to hosts as their router (the lab namespace, which routes to the controller). */
  router?: string;
  tftpRoot: string;
  webspaceDir: string;
  httpPort: number;
  /** Base URL of the webspace as hosts reach it (ends in /). */
  webspaceUrl: string;
  leaseFile: string;
  /** Where 255.255.255.255 replies go when the route for it is missing (see the DHCP server). */
  broadcastAddress?: string;
  log: (line: string) => void;
}

export interface BootServices {
  dhcp: DhcpServer;
  tftp: TftpServer;
  web: WebspaceServer;
  webspaceStats: WebspaceStats;
  close(): Promise<void>;
}

export async function startBootServices(o: BootServicesOptions): Promise<BootServices> {
  const { store, log } = o;
  const byMac = async (mac: string) => (await store.listHosts()).find((h) => h.mac === mac.toLowerCase());
  const byIp = async (ip: string) => (await store.listHosts()).find((h) => h.ip === ip);
  const record = async (host: string, kind: string, detail: string) => {
    try {
      await store.recordHostEvent(host, { kind, detail });
    } catch (err) {
      log(`recording ${kind} event for ${host} failed: ${(err as Error).message}`);
    }
  };

  const dhcp = await startDhcpServer({
    serverIp: o.serverIp,
    subnetMask: o.netmask,
    router: o.router,
    leaseTime: 3600,
    leaseStore: new JsonFileLeaseStore(o.leaseFile),
    broadcastAddress: o.broadcastAddress,
    boot: { bios: 'pxelinux.0' },
    reservations: async (mac) => {
      const h = await byMac(mac);
      if (!h?.ip) return undefined;
      let loader: 'ipxe' | 'pxelinux';
      try {
        loader = bootLoaderOf((p) => o.config.hostProp(h.name, p, h.props), h.name);
      } catch (err) {
        log((err as Error).message);
        loader = 'ipxe';
      }
      return {
        ip: h.ip,
        hostname: h.name.split('.')[0],
        boot: loader === 'ipxe' ? { ipxeScript: `${o.webspaceUrl}host/${h.name}/boot.ipxe` } : undefined,
      };
    },
    isReserved: async (ip) => (await byIp(ip)) !== undefined,
    log: (line) => log(`dhcp: ${line}`),
  });
  dhcp.on('event', (ev) => {
    if (ev.type === 'ack' || ev.type === 'nak' || ev.type === 'release' || ev.type === 'decline') {
      void byMac(ev.mac).then((h) => {
        if (!h) return;
        const detail =
          ev.type === 'ack'
            ? `ack ${ev.ip} to ${ev.clientKind}${ev.bootFile ? ` boot ${ev.bootFile}` : ''}`
            : `${ev.type} ${ev.ip ?? ''}`.trim();
        void record(h.name, 'dhcp', detail);
      });
    }
    if (ev.type !== 'dropped') log(`dhcp: ${JSON.stringify(ev)}`);
  });

  let tftp: TftpServer | undefined;
  let web: WebspaceServer | undefined;
  try {
    tftp = await startTftpServer({
      root: o.tftpRoot,
      host: o.serverIp,
      port: 69,
      log: (ev) => {
        if (ev.type !== 'request') {
          if (ev.type !== 'dropped') log(`tftp: ${JSON.stringify(ev)}`);
          return;
        }
        const ms = Math.round(ev.durationMs);
        log(`tftp: ${ev.client.address} ${ev.file} ${ev.outcome} ${ev.bytes} bytes ${ms} ms`);
        void byIp(ev.client.address).then((h) => {
          if (h) void record(h.name, 'fetch', `tftp ${ev.file} ${ev.outcome} ${ev.bytes} bytes ${ms} ms`);
        });
      },
    });
    const ws = webspaceRouter({
      root: o.webspaceDir,
      lookupHost: async (name) => {
        const h = await store.getHost(name);
        return h ? { name: h.name, ip: h.ip } : undefined;
      },
      record: async (host, ev) => record(host, ev.kind, ev.detail),
      log,
    });
    web = await startWebspaceServer({ host: o.serverIp, port: o.httpPort, router: ws.router, log });
    const services: BootServices = {
      dhcp,
      tftp,
      web,
      webspaceStats: ws.stats,
      close: async () => {
        await Promise.allSettled([dhcp.close(), tftp?.close(), web?.close()]);
      },
    };
    return services;
  } catch (err) {
    await Promise.allSettled([dhcp.close(), tftp?.close(), web?.close()]);
    throw err;
  }
}
