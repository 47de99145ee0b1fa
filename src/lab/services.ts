/**
 * The controller's boot services for one network: DHCP and TFTP from the backend the `BootServices`
 * setting names (src/provision/boot-services/: our own servers, dnsmasq, or the site's), and HTTP (the
 * webspace, always ours), each recording what hosts do as host events in the store. The virtual lab
 * runs them inside its namespace (services-main.ts); a site's own network can run the same thing.
 */
import type { Config } from '../config/config.js';
import type { Store } from '../db/store.js';
import { type BootBackend, startBootBackend } from '../provision/boot-services/index.js';
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
  /** The interface on the hosts' network (the lab's bridge). */
  interface: string;
  tftpRoot: string;
  webspaceDir: string;
  httpPort: number;
  /** Base URL of the webspace as hosts reach it (ends in /). */
  webspaceUrl: string;
  /** Where the backend keeps its files (the builtin's dhcp-leases.json, dnsmasq's config and leases). */
  stateDir: string;
  /** Where 255.255.255.255 replies go when the route for it is missing (see the DHCP server). */
  broadcastAddress?: string;
  log: (line: string) => void;
}

export interface BootServices {
  backend: BootBackend;
  web: WebspaceServer;
  webspaceStats: WebspaceStats;
  close(): Promise<void>;
}

export async function startBootServices(o: BootServicesOptions): Promise<BootServices> {
  const { store, log } = o;
  const record = async (host: string, kind: string, detail: string) => {
    try {
      await store.recordHostEvent(host, { kind, detail });
    } catch (err) {
      log(`recording ${kind} event for ${host} failed: ${(err as Error).message}`);
    }
  };
  const backend = await startBootBackend({
    config: o.config,
    store,
    serverIp: o.serverIp,
    netmask: o.netmask,
    router: o.router,
    interface: o.interface,
    tftpRoot: o.tftpRoot,
    webspaceUrl: o.webspaceUrl,
    stateDir: o.stateDir,
    broadcastAddress: o.broadcastAddress,
    log,
    record,
  });
  try {
    const ws = webspaceRouter({
      root: o.webspaceDir,
      lookupHost: async (name) => {
        const h = await store.getHost(name);
        return h ? { name: h.name, ip: h.ip } : undefined;
      },
      record: async (host, ev) => record(host, ev.kind, ev.detail),
      log,
    });
    const web = await startWebspaceServer({ host: o.serverIp, port: o.httpPort, router: ws.router, log });
    return {
      backend,
      web,
      webspaceStats: ws.stats,
      close: async () => {
        await Promise.allSettled([backend.close(), web.close()]);
      },
    };
  } catch (err) {
    await backend.close();
    throw err;
  }
}
