/**
 * The `dnsmasq` boot-services backend: dnsmasq (Debian's dnsmasq-base: the binary, no system service)
 * answers DHCP and TFTP on the hosts' network; we write its configuration, keep its host reservations
 * in step with the host database, and read its lease file.
 *
 * Files, all in the backend's state directory:
 * - `dnsmasq.conf`: written once at start. DHCP only for reserved MACs (a `static` range), no DNS
 *   (`port=0`), TFTP from the same root the builtin server serves, and the boot policy of the builtin
 *   (src/provision/dhcp/boot.ts): BIOS PXE firmware (option 93 absent or 0) → `pxelinux.0`, UEFI (6, 7, 9)
 *   → `ipxe.efi`, next-server = our address; iPXE (user class `iPXE` or option 175) on a host whose
 *   BootLoader is `pxelinux` → `pxelinux.0`.
 * - `hosts` (dhcp-hostsfile): `MAC,set:<host tag>,set:<loader tag>,IP,NAME` per host with a MAC and IP.
 * - `opts` (dhcp-optsfile): per host booting with iPXE, option 67 for iPXE clients with that host's tag:
 *   the URL of its `boot.ipxe` in the webspace, as the builtin server hands out.
 * A host change is a rewrite of those two files and a restart of dnsmasq (about 0.1 s; leases survive
 * in its lease file), not the SIGHUP dnsmasq documents for re-reading them: dnsmasq 2.86 to 2.90
 * (Debian 12 has 2.90) crashes on SIGHUP once a host whose hosts-file entry sets a tag has had a lease
 * (SIGSEGV or abort, reproduced here; the per-host tags are what carry the boot policy).
 *
 * dnsmasq logs to our stderr pipe (`log-facility=-`, `log-dhcp`); its DHCPACK and TFTP `sent` lines
 * become host events, as the builtin server's own events do.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Host } from '../../db/types.js';
import { writeAtomic } from '../../remote/keys.js';
import { type BootBackend, type BootBackendOptions, reservedHosts } from './common.js';
import { currentLeases, type LeaseRecord, readLeaseFile } from './leases.js';

export interface DnsmasqHost {
  name: string;
  mac: string;
  ip: string;
  loader: 'ipxe' | 'pxelinux';
  /** URL of the host's iPXE script (used when loader is ipxe). */
  ipxeScript: string;
}

export interface DnsmasqOptions {
  /** The dnsmasq program, e.g. /usr/sbin/dnsmasq. */
  binary: string;
  /** Where its config, hosts, opts and pid files go. */
  stateDir: string;
  /** The interface of the hosts' network (DHCP and TFTP are answered there only). */
  interface: string;
  serverIp: string;
  netmask: string;
  router?: string;
  tftpRoot: string;
  leaseFile: string;
  leaseTimeSecs: number;
  /** Boot files for firmware; default pxelinux.0 and ipxe.efi, as the builtin. */
  bios?: string;
  uefi?: string;
  log: (line: string) => void;
  /** A DHCP acknowledgement or a TFTP transfer dnsmasq logged. */
  onEvent?: (ev: DnsmasqEvent) => void;
}

export type DnsmasqEvent =
  | {
      type: 'ack';
      ip: string;
      mac: string;
      hostname?: string;
      /** What kind of client, from the tags dnsmasq matched for this exchange (log-dhcp). */
      clientKind: 'ipxe' | 'uefi' | 'bios';
      /** The tags said iPXE / UEFI (an iPXE client may be either). */
      ipxe: boolean;
      efi: boolean;
    }
  | { type: 'tftp'; ip: string; file: string; outcome: 'sent' | 'failed'; detail: string };

export interface DnsmasqStats {
  pid: number | undefined;
  reloads: number;
  /** Times dnsmasq died without being asked to (it is restarted). */
  crashes: number;
  acks: number;
  tftpSent: number;
  tftpFailed: number;
  hosts: number;
}

const TAG_IPXE = 'ipxe';
const TAG_EFI = 'efi';
const TAG_PXELINUX_HOST = 'pxelinux-host';

/** A dnsmasq tag for one host: stable, and only characters a tag may hold. */
export function hostTag(name: string): string {
  return `h${createHash('sha256').update(name).digest('hex').slice(0, 12)}`;
}

function checkField(what: string, v: string): string {
  // Commas separate fields and line breaks separate entries in dnsmasq's files.
  if (/[,\s"#]/.test(v) || v === '')
    throw new Error(`dnsmasq: ${what} ${JSON.stringify(v)} cannot be written`);
  return v;
}

function checkPath(what: string, v: string): string {
  // A line break would end the directive and start another.
  if (/[\n\r]/.test(v) || v.trim() !== v || v === '')
    throw new Error(`dnsmasq: ${what} ${JSON.stringify(v)} cannot be written`);
  return v;
}

export function dnsmasqConf(o: DnsmasqOptions): string {
  const network = o.serverIp
    .split('.')
    .map((b, i) => Number(b) & Number(o.netmask.split('.')[i]))
    .join('.');
  const bios = checkField('boot file', o.bios ?? 'pxelinux.0');
  const uefi = checkField('boot file', o.uefi ?? 'ipxe.efi');
  const s = o.serverIp;
  return [
    '# Written by osstest (BootServices dnsmasq) at each start; edits are lost.',
    `interface=${checkField('interface', o.interface)}`,
    'bind-interfaces',
    'except-interface=lo',
    // No DNS: only DHCP and TFTP.
    'port=0',
    'no-resolv',
    'no-hosts',
    // As root, like the services that start it: the state directory and TFTP root need not be readable
    // to dnsmasq's usual unprivileged user.
    'user=root',
    `pid-file=${checkPath('state directory', join(o.stateDir, 'dnsmasq.pid'))}`,
    'log-facility=-',
    'log-dhcp',
    `dhcp-leasefile=${checkPath('lease file', o.leaseFile)}`,
    // Reserved MACs only: an unknown client gets no answer (the builtin server does the same).
    `dhcp-range=${network},static,${o.netmask},${o.leaseTimeSecs}`,
    'dhcp-authoritative',
    ...(o.router ? [`dhcp-option=option:router,${o.router}`] : []),
    `dhcp-hostsfile=${join(o.stateDir, 'hosts')}`,
    `dhcp-optsfile=${join(o.stateDir, 'opts')}`,
    // What kind of client is asking.
    `dhcp-userclass=set:${TAG_IPXE},iPXE`,
    `dhcp-match=set:${TAG_IPXE},175`,
    `dhcp-match=set:${TAG_EFI},option:client-arch,6`,
    `dhcp-match=set:${TAG_EFI},option:client-arch,7`,
    `dhcp-match=set:${TAG_EFI},option:client-arch,9`,
    // Firmware gets a loader over TFTP; iPXE on a pxelinux host gets pxelinux; iPXE on an iPXE host gets
    // its script's URL from the opts file. The three are exclusive, so their order does not matter.
    `dhcp-boot=tag:!${TAG_IPXE},tag:!${TAG_EFI},${bios},,${s}`,
    `dhcp-boot=tag:!${TAG_IPXE},tag:${TAG_EFI},${uefi},,${s}`,
    `dhcp-boot=tag:${TAG_IPXE},tag:${TAG_PXELINUX_HOST},${bios},,${s}`,
    'enable-tftp',
    `tftp-root=${checkPath('TFTP root', o.tftpRoot)}`,
    '',
  ].join('\n');
}

/** The hosts and opts files for a set of hosts (sorted by name, so equal sets give equal files). */
export function dnsmasqHostFiles(hosts: readonly DnsmasqHost[]): { hosts: string; opts: string } {
  const sorted = [...hosts].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const h = ['# Written by osstest from the host database: MAC,tags,address,name'];
  const o = ['# Written by osstest: the iPXE script of each host that boots with iPXE'];
  for (const x of sorted) {
    const tag = hostTag(x.name);
    const tags = [`set:${tag}`, ...(x.loader === 'pxelinux' ? [`set:${TAG_PXELINUX_HOST}`] : [])];
    const shortName = x.name.split('.')[0] ?? x.name;
    h.push(
      [
        checkField('MAC', x.mac.toLowerCase()),
        ...tags,
        checkField('address', x.ip),
        checkField('host name', shortName),
      ].join(','),
    );
    if (x.loader === 'ipxe')
      o.push(
        `tag:${TAG_IPXE},tag:${tag},option:bootfile-name,${checkField('iPXE script URL', x.ipxeScript)}`,
      );
  }
  return { hosts: `${h.join('\n')}\n`, opts: `${o.join('\n')}\n` };
}

const ACK_RE = /dnsmasq-dhcp\[\d+\]: (?:(\d+) )?DHCPACK\([^)]*\) (\S+) (\S+)(?: (\S+))?/;
const TAGS_RE = /dnsmasq-dhcp\[\d+\]: (\d+) tags: (.*)$/;
const SENT_RE = /dnsmasq-tftp\[\d+\]: sent (\S+) to (\S+)/;
const TFTP_FAIL_RE = /dnsmasq-tftp\[\d+\]: (?:error \d+ (.*) received from|failed sending (\S+) to) (\S+)/;
const TFTP_NOTFOUND_RE = /dnsmasq-tftp\[\d+\]: file (\S+) not found for (\S+)/;

export class DnsmasqService {
  private child: ChildProcess | undefined;
  private lastFiles = '';
  private exitWaiters: Array<() => void> = [];
  private counters = { reloads: 0, crashes: 0, acks: 0, tftpSent: 0, tftpFailed: 0, hosts: 0 };
  /** Started successfully once: from then on an exit we did not ask for is a crash. */
  private serving = false;
  private stopping = false;
  private crashTimes: number[] = [];
  private respawnTimer: NodeJS.Timeout | undefined;
  private output: string[] = [];
  private tagsByXid = new Map<string, string[]>();
  private exited = false;

  constructor(readonly o: DnsmasqOptions) {}

  get hostsFile(): string {
    return join(this.o.stateDir, 'hosts');
  }

  /** Writes the config and the (given) hosts, starts dnsmasq and waits until it serves. */
  async start(hosts: readonly DnsmasqHost[]): Promise<void> {
    const o = this.o;
    mkdirSync(o.stateDir, { recursive: true });
    mkdirSync(o.tftpRoot, { recursive: true });
    writeFileSync(this.confFile, dnsmasqConf(o));
    this.writeHosts(hosts);
    this.stopping = false;
    await this.spawn();
    this.serving = true;
  }

  private get confFile(): string {
    return join(this.o.stateDir, 'dnsmasq.conf');
  }

  private async spawn(): Promise<void> {
    const o = this.o;
    this.exited = false;
    const child = spawn(o.binary, [`--conf-file=${this.confFile}`, '--keep-in-foreground'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    // 'close' comes after its stdout and stderr have ended, so its last words are in `output` by then
    // ('exit' can come first, and the error would lose the reason dnsmasq gave).
    const closed = new Promise<'exited'>((resolve) => child.once('close', () => resolve('exited')));
    child.once('exit', (code, sig) => {
      this.exited = true;
      o.log(`dnsmasq exited (${code ?? sig})`);
      for (const w of this.exitWaiters.splice(0)) w();
      if (this.serving && !this.stopping) this.crashed();
    });
    for (const stream of [child.stdout, child.stderr]) {
      if (stream) createInterface({ input: stream }).on('line', (line) => this.onLine(line));
    }
    // Once dnsmasq says it read the hosts file it has bound its sockets and serves; exiting first is failing.
    const ready = await Promise.race([
      this.waitForLine((l) => l.includes(`read ${this.hostsFile}`), 15_000).then(() => 'ready' as const),
      closed,
      spawnError.then((e) => e),
    ]).catch((e: unknown) => e as Error);
    if (ready !== 'ready') {
      const why = ready instanceof Error ? ready.message : this.output.slice(-10).join('\n');
      await this.close();
      throw new Error(`dnsmasq (${o.binary}) did not start: ${why}`);
    }
  }

  private lineWaiters: Array<{ pred: (l: string) => boolean; done: () => void }> = [];

  private waitForLine(pred: (l: string) => boolean, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.lineWaiters = this.lineWaiters.filter((w) => w !== waiter);
        reject(new Error(`dnsmasq: no expected log line in ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = {
        pred,
        done: () => {
          clearTimeout(t);
          resolve();
        },
      };
      this.lineWaiters.push(waiter);
    });
  }

  private onLine(line: string): void {
    this.output.push(line);
    if (this.output.length > 50) this.output.shift();
    this.o.log(`dnsmasq: ${line}`);
    for (const w of [...this.lineWaiters]) {
      if (w.pred(line)) {
        this.lineWaiters = this.lineWaiters.filter((x) => x !== w);
        w.done();
      }
    }
    let m = TAGS_RE.exec(line);
    if (m) {
      // The tags of an exchange are logged before its ACK; remember a few exchanges' worth.
      this.tagsByXid.set(m[1] as string, (m[2] as string).split(/,\s*/));
      if (this.tagsByXid.size > 64) this.tagsByXid.delete(this.tagsByXid.keys().next().value as string);
      return;
    }
    m = ACK_RE.exec(line);
    if (m) {
      this.counters.acks++;
      const tags = (m[1] && this.tagsByXid.get(m[1])) || [];
      const ipxe = tags.includes(TAG_IPXE);
      const efi = tags.includes(TAG_EFI);
      const clientKind = ipxe ? 'ipxe' : efi ? 'uefi' : 'bios';
      const ev: DnsmasqEvent = {
        ipxe,
        efi,
        type: 'ack',
        ip: m[2] as string,
        mac: (m[3] as string).toLowerCase(),
        clientKind,
      };
      if (m[4]) ev.hostname = m[4];
      this.o.onEvent?.(ev);
      return;
    }
    m = SENT_RE.exec(line);
    if (m) {
      this.counters.tftpSent++;
      this.o.onEvent?.({
        type: 'tftp',
        ip: m[2] as string,
        file: m[1] as string,
        outcome: 'sent',
        detail: line,
      });
      return;
    }
    m = TFTP_FAIL_RE.exec(line) ?? TFTP_NOTFOUND_RE.exec(line);
    if (m) {
      this.counters.tftpFailed++;
      const ip = (m[3] ?? m[2]) as string;
      const file = (m[2] && m[3] ? m[2] : m[1]) ?? '';
      this.o.onEvent?.({ type: 'tftp', ip, file, outcome: 'failed', detail: line });
    }
  }

  private writeHosts(hosts: readonly DnsmasqHost[]): boolean {
    const f = dnsmasqHostFiles(hosts);
    const joined = f.hosts + f.opts;
    if (joined === this.lastFiles) return false;
    writeAtomic(join(this.o.stateDir, 'opts'), f.opts, 0o644);
    writeAtomic(this.hostsFile, f.hosts, 0o644);
    this.lastFiles = joined;
    this.counters.hosts = hosts.length;
    return true;
  }

  /**
   * Rewrites the hosts and opts files and, when they changed, restarts dnsmasq on them (see the top of
   * this file for why not SIGHUP). Returns whether anything changed.
   */
  async setHosts(hosts: readonly DnsmasqHost[]): Promise<boolean> {
    if (!this.writeHosts(hosts)) return false;
    // Not running (not started yet, or between a crash and its restart): it reads the files when it starts.
    if (!this.child || this.exited) return true;
    await this.close();
    this.stopping = false;
    await this.spawn();
    this.counters.reloads++;
    return true;
  }

  /** The leases in force, from dnsmasq's lease file (entries it cannot read are logged and skipped). */
  async leases(): Promise<LeaseRecord[]> {
    const p = await readLeaseFile(this.o.leaseFile, 'dnsmasq');
    for (const s of p.skipped) this.o.log(`${this.o.leaseFile}:${s.line}: skipped: ${s.reason}`);
    return currentLeases(p.leases);
  }

  stats(): DnsmasqStats {
    return { pid: this.exited ? undefined : this.child?.pid, ...this.counters };
  }

  /**
   * dnsmasq died under us: start it again after a second (hosts keep booting), unless it keeps dying
   * (5 times within a minute), which a restart will not cure; that is logged and left for a person.
   */
  private crashed(): void {
    const now = Date.now();
    this.crashTimes = this.crashTimes.filter((t) => t > now - 60_000);
    this.crashTimes.push(now);
    this.counters.crashes++;
    if (this.crashTimes.length > 5) {
      this.o.log('dnsmasq: died 5 times within a minute; not restarting it (see its output above)');
      return;
    }
    this.o.log('dnsmasq: died unexpectedly; restarting it in 1 s');
    this.respawnTimer = setTimeout(() => {
      this.respawnTimer = undefined;
      if (this.stopping) return;
      this.spawn().catch((e: unknown) => this.o.log(`dnsmasq: restart failed: ${(e as Error).message}`));
    }, 1000);
  }

  async close(): Promise<void> {
    this.stopping = true;
    if (this.respawnTimer) clearTimeout(this.respawnTimer);
    this.respawnTimer = undefined;
    const child = this.child;
    if (!child || this.exited || child.exitCode !== null) return;
    const gone = new Promise<void>((r) => this.exitWaiters.push(r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    await gone;
    clearTimeout(t);
  }
}

export const dnsmasqLeaseFile = (stateDir: string) => join(stateDir, 'dnsmasq.leases');

/** The backend over DnsmasqService: reservations from the host database, host events from its log. */
export async function startDnsmasqBackend(o: BootBackendOptions & { binary: string }): Promise<BootBackend> {
  const hostsBy = async (pred: (h: Host) => boolean) => (await o.store.listHosts()).find(pred);
  const rootPrefix = o.tftpRoot.endsWith('/') ? o.tftpRoot : `${o.tftpRoot}/`;
  const svc = new DnsmasqService({
    binary: o.binary,
    stateDir: join(o.stateDir, 'dnsmasq'),
    interface: o.interface,
    serverIp: o.serverIp,
    netmask: o.netmask,
    router: o.router,
    tftpRoot: o.tftpRoot,
    leaseFile: dnsmasqLeaseFile(o.stateDir),
    leaseTimeSecs: 3600,
    log: o.log,
    // Host events in the builtin servers' words (`ack IP to KIND boot FILE`, `tftp FILE completed`), so
    // whatever reads them does not care which backend ran.
    onEvent: (ev) => {
      if (ev.type === 'ack') {
        void reservedHosts(o).then((hosts) => {
          const h = hosts.find((x) => x.mac === ev.mac);
          if (!h) return;
          // As the builtin words it: iPXE sent on to pxelinux (a pxelinux host) counts as firmware.
          const kind =
            ev.clientKind === 'ipxe' && h.loader !== 'ipxe' ? (ev.efi ? 'uefi' : 'bios') : ev.clientKind;
          const file =
            kind === 'ipxe' ? h.ipxeScript : kind === 'uefi' && !ev.ipxe ? 'ipxe.efi' : 'pxelinux.0';
          void o.record(h.name, 'dhcp', `ack ${ev.ip} to ${kind} boot ${file} (dnsmasq)`);
        });
      } else {
        const file = ev.file.startsWith(rootPrefix) ? ev.file.slice(rootPrefix.length) : ev.file;
        // dnsmasq logs no byte count; the file it has just sent whole is the best we have.
        let size = '';
        if (ev.outcome === 'sent') {
          try {
            size = ` ${statSync(ev.file).size} bytes`;
          } catch {
            // Gone since.
          }
        }
        const outcome = ev.outcome === 'sent' ? 'completed' : 'failed';
        void hostsBy((h) => h.ip === ev.ip).then((h) => {
          if (h) void o.record(h.name, 'fetch', `tftp ${file} ${outcome}${size} (dnsmasq)`);
        });
      }
    },
  });
  await svc.start(await reservedHosts(o));
  return {
    kind: 'dnsmasq',
    describe: () => ({
      dhcp: 'dnsmasq',
      tftp: 'dnsmasq',
      dnsmasqPid: svc.stats().pid,
      interface: o.interface,
      address: o.serverIp,
      leaseFile: dnsmasqLeaseFile(o.stateDir),
    }),
    stats: () => ({ dnsmasq: svc.stats() }),
    syncHosts: async () => svc.setHosts(await reservedHosts(o)),
    leases: () => svc.leases(),
    close: () => svc.close(),
  };
}
