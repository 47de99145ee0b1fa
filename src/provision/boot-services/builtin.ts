/**
 * The `builtin` boot-services backend (the default): our own DHCP server (reservations looked up in
 * the host database per packet) and TFTP server, inside the controller's process.
 *
 * Boot policy: a host whose `BootLoader` property is `ipxe` (the default) is told, once its firmware is
 * iPXE, to fetch `<WebspaceUrl>host/<name>/boot.ipxe` over HTTP; any other client (BIOS PXE firmware, or
 * iPXE for a `pxelinux` host) gets pxelinux.0 over TFTP, which reads `pxelinux.cfg/…` and fetches the
 * kernel over TFTP too.
 */
import { join } from 'node:path';
import { JsonFileLeaseStore, startDhcpServer } from '../dhcp/index.js';
import { bootLoaderOf } from '../pxe/index.js';
import { startTftpServer, type TftpServer } from '../tftp/index.js';
import type { BootBackend, BootBackendOptions } from './common.js';
import { currentLeases, type LeaseRecord } from './leases.js';

export const builtinLeaseFile = (stateDir: string) => join(stateDir, 'dhcp-leases.json');

/** The builtin server's leases in force, from its JSON lease file (a damaged file is an error naming it). */
export async function readBuiltinLeases(file: string): Promise<LeaseRecord[]> {
  const leases = await new JsonFileLeaseStore(file).load();
  return currentLeases(
    leases
      .filter((l) => l.state === 'bound')
      .map((l, i) => ({
        mac: l.mac,
        ip: l.ip,
        expires: l.expires,
        state: 'active',
        line: i + 1,
        ...(l.hostname ? { hostname: l.hostname } : {}),
      })),
  );
}

export async function startBuiltinBackend(o: BootBackendOptions): Promise<BootBackend> {
  const { store, log, record } = o;
  const byMac = async (mac: string) => (await store.listHosts()).find((h) => h.mac === mac.toLowerCase());
  const byIp = async (ip: string) => (await store.listHosts()).find((h) => h.ip === ip);
  const leaseStore = new JsonFileLeaseStore(builtinLeaseFile(o.stateDir));

  const dhcp = await startDhcpServer({
    serverIp: o.serverIp,
    subnetMask: o.netmask,
    router: o.router,
    leaseTime: 3600,
    leaseStore,
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

  let tftp: TftpServer;
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
  } catch (err) {
    await dhcp.close();
    throw err;
  }
  return {
    kind: 'builtin',
    describe: () => ({ dhcp: dhcp.address(), tftp: tftp.address() }),
    stats: () => ({ dhcp: dhcp.stats(), tftp: tftp.stats() }),
    syncHosts: async () => false,
    leases: () => readBuiltinLeases(leaseStore.file),
    close: async () => {
      await Promise.allSettled([dhcp.close(), tftp.close()]);
    },
  };
}
