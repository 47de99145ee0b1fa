/**
 * The controller's DHCP server (RFC 2131, options RFC 2132, PXE RFC 4578) for one subnet:
 * reservations come from the host database (asked on every packet), a dynamic pool is optional, and the
 * boot file follows the client's architecture and whether it is already iPXE.
 *
 * Packets are handled one at a time in arrival order (the reservation lookup may be asynchronous, and
 * two DISCOVERs must not be given the same free address). Nothing a client sends can throw out of the
 * handler: a bad packet is counted and reported as a `dropped` event.
 *
 * Tested against the packets of iPXE 1.0.0 (BIOS, EFI), pxelinux 6.04, OVMF 2022.11, busybox udhcpc 1.35
 * and ISC dhclient 4.4.3, with dnsmasq 2.90's answers as the reference (test/integration/dhcp*.test.ts).
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { ConfigError } from '../../config/errors.js';
import { type BootChoice, type BootFiles, chooseBoot, isPxeClient, mergeBoot } from './boot.js';
import {
  BOOTREPLY,
  BOOTREQUEST,
  BROADCAST_FLAG,
  type DhcpPacket,
  intToIp,
  ipList,
  ipToBytes,
  ipToInt,
  isIpv4,
  MessageType,
  macOf,
  messageTypeName,
  Opt,
  optIp,
  optU8,
  parseDhcp,
  serializeDhcp,
  u32,
} from './codec.js';
import { type Lease, type LeaseStore, MemoryLeaseStore } from './leases.js';

/** What the host database says about one MAC. */
export interface Reservation {
  ip: string;
  hostname?: string;
  /** Per-host boot override, merged field by field over the server's `boot` policy. */
  boot?: BootFiles;
}

export interface DhcpServerOptions {
  /** Our address: option 54 (server identifier), and next-server unless `boot.nextServer` says otherwise. */
  serverIp: string;
  /** Default 0.0.0.0: broadcasts from unconfigured clients only reach a socket bound to the wildcard. */
  bindAddress?: string;
  /** Default 67. 0 picks a free port (tests). */
  port?: number;
  /** Default 68. */
  clientPort?: number;
  subnetMask: string;
  router?: string;
  dnsServers?: readonly string[];
  domain?: string;
  /** Seconds; default 3600. */
  leaseTime?: number;
  /** Dynamic range, inclusive. Omit for reservations only. */
  pool?: { start: string; end: string };
  /** Looked up on every packet, so host database changes apply at once. MACs are `52:54:00:12:34:56`. */
  reservations?: (mac: string) => Reservation | undefined | Promise<Reservation | undefined>;
  /** Whether some host holds a reservation for `ip` (kept out of the pool, NAKed to other clients). */
  isReserved?: (ip: string) => boolean | Promise<boolean>;
  boot?: BootFiles;
  /** Default: in memory only. Use JsonFileLeaseStore so pool leases survive a restart. */
  leaseStore?: LeaseStore;
  /**
   * Send every reply here instead of where RFC 2131 4.1 says (events still name the RFC destination).
   * For tests on loopback, where a broadcast would not reach the test's socket.
   */
  replyTo?: { address: string; port: number };
  /**
   * Default 255.255.255.255. Sending there needs a route (e.g. `ip route add 255.255.255.255/32 dev IF`);
   * without one the reply goes to the subnet's directed broadcast instead.
   */
  broadcastAddress?: string;
  /** How long an offered address is held for the client that was offered it. Seconds, default 60. */
  offerHoldTime?: number;
  /** How long a declined address stays out of use. Seconds, default 600. */
  declineHoldTime?: number;
  /** Packets waiting to be handled beyond this are dropped (a flood must not eat memory). Default 4096. */
  maxQueue?: number;
  /** Milliseconds clock; tests move it to expire leases. */
  now?: () => number;
  log?: (line: string) => void;
}

export type DropReason = 'malformed' | 'not-for-us' | 'no-address' | 'ignored' | 'overload';

export interface Destination {
  address: string;
  port: number;
  /** Why this destination, after RFC 2131 4.1. */
  via: 'relay' | 'unicast' | 'broadcast';
}

export type DhcpEvent =
  | {
      type: 'offer' | 'ack';
      mac: string;
      xid: number;
      ip: string;
      hostname?: string;
      reserved: boolean;
      clientKind: BootChoice['kind'];
      arch?: number;
      bootFile?: string;
      to: Destination;
    }
  | { type: 'inform'; mac: string; xid: number; ip: string; to: Destination }
  | { type: 'nak'; mac: string; xid: number; ip?: string; reason: string; to: Destination }
  | { type: 'release' | 'decline'; mac: string; xid: number; ip: string; applied: boolean; detail?: string }
  | { type: 'dropped'; reason: DropReason; detail: string; from: string; mac?: string; xid?: number }
  | { type: 'error'; detail: string };

export interface DhcpStats {
  received: number;
  offers: number;
  acks: number;
  naks: number;
  informs: number;
  releases: number;
  declines: number;
  dropped: { malformed: number; notForUs: number; noAddress: number; ignored: number; overload: number };
  /** Replies sent to the subnet's directed broadcast because 255.255.255.255 had no route. */
  directedBroadcasts: number;
  /** Send or lease-store failures, and handler bugs (which are caught and reported, never thrown). */
  errors: number;
}

interface DhcpServerEvents {
  event: [DhcpEvent];
}

const DEFAULTS = { leaseTime: 3600, offerHoldTime: 60, declineHoldTime: 600, maxQueue: 4096 };

class Dropped extends Error {
  constructor(
    readonly reason: DropReason,
    detail: string,
  ) {
    super(detail);
  }
}

interface Subnet {
  network: number;
  mask: number;
  broadcast: number;
}

function checkIp(what: string, v: unknown): string {
  if (typeof v !== 'string' || !isIpv4(v))
    throw new ConfigError(`dhcp server: ${what} ${JSON.stringify(v)} is not an IPv4 address`);
  return v;
}

function validate(o: DhcpServerOptions): Subnet {
  const server = ipToInt(checkIp('serverIp', o.serverIp));
  const mask = ipToInt(checkIp('subnetMask', o.subnetMask));
  // A netmask is ones then zeros: inverting and adding one must give a power of two.
  if (((~mask >>> 0) + 1) & (~mask >>> 0))
    throw new ConfigError(`dhcp server: subnetMask ${o.subnetMask} is not contiguous`);
  const network = (server & mask) >>> 0;
  const subnet: Subnet = { network, mask, broadcast: (network | ~mask) >>> 0 };
  const inSubnet = (ip: number) => (ip & mask) >>> 0 === network;
  if (o.bindAddress !== undefined) checkIp('bindAddress', o.bindAddress);
  if (o.router !== undefined) checkIp('router', o.router);
  for (const [i, d] of (o.dnsServers ?? []).entries()) checkIp(`dnsServers[${i}]`, d);
  if (o.broadcastAddress !== undefined) checkIp('broadcastAddress', o.broadcastAddress);
  if (o.boot?.nextServer !== undefined) checkIp('boot.nextServer', o.boot.nextServer);
  for (const [name, v, max] of [
    ['port', o.port, 65535],
    ['clientPort', o.clientPort, 65535],
    ['leaseTime', o.leaseTime, 0xfffffffe],
    ['offerHoldTime', o.offerHoldTime, 86400],
    ['declineHoldTime', o.declineHoldTime, 0xfffffffe],
    ['maxQueue', o.maxQueue, 1e7],
  ] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > max)) {
      throw new ConfigError(`dhcp server: ${name} ${JSON.stringify(v)} is not an integer from 0 to ${max}`);
    }
  }
  if (o.leaseTime === 0) throw new ConfigError('dhcp server: leaseTime must be positive');
  if (o.pool) {
    const s = ipToInt(checkIp('pool.start', o.pool.start));
    const e = ipToInt(checkIp('pool.end', o.pool.end));
    if (s > e)
      throw new ConfigError(`dhcp server: pool start ${o.pool.start} is after its end ${o.pool.end}`);
    // A full pool is searched in one pass per DISCOVER; keep that pass short.
    if (e - s >= 65536)
      throw new ConfigError(`dhcp server: pool ${o.pool.start}-${o.pool.end} has more than 65536 addresses`);
    if (!inSubnet(s) || !inSubnet(e)) {
      throw new ConfigError(
        `dhcp server: pool ${o.pool.start}-${o.pool.end} is not inside ${intToIp(network)}/${o.subnetMask} (serverIp ${o.serverIp})`,
      );
    }
  }
  return subnet;
}

export class DhcpServer extends EventEmitter<DhcpServerEvents> {
  private readonly socket: Socket;
  private readonly leases = new Map<string, Lease>();
  private readonly macIndex = new Map<string, string>();
  private readonly counters: DhcpStats = {
    received: 0,
    offers: 0,
    acks: 0,
    naks: 0,
    informs: 0,
    releases: 0,
    declines: 0,
    dropped: { malformed: 0, notForUs: 0, noAddress: 0, ignored: 0, overload: 0 },
    directedBroadcasts: 0,
    errors: 0,
  };
  private queue: Promise<void> = Promise.resolve();
  private queued = 0;
  private saving: Promise<void> | undefined;
  private saveAgain = false;
  private closed = false;
  private warnedBroadcast = false;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private readonly store: LeaseStore;
  private readonly pool: { start: number; end: number } | undefined;

  /** Use startDhcpServer(). */
  constructor(
    private readonly opts: DhcpServerOptions,
    private readonly subnet: Subnet,
  ) {
    super();
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? (() => {});
    this.store = opts.leaseStore ?? new MemoryLeaseStore();
    this.pool = opts.pool ? { start: ipToInt(opts.pool.start), end: ipToInt(opts.pool.end) } : undefined;
    // No reuseAddr: a second DHCP server on the same port must be an error, not a silent split of the traffic.
    this.socket = createSocket({ type: 'udp4' });
  }

  /** @internal */
  async start(): Promise<void> {
    for (const l of await this.store.load()) this.putLease(l);
    const port = this.opts.port ?? 67;
    const bindAddress = this.opts.bindAddress ?? '0.0.0.0';
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error) => {
        this.closed = true;
        this.socket.close();
        reject(new Error(`dhcp server: cannot bind ${bindAddress}:${port}: ${e.message}`));
      };
      this.socket.once('error', onError);
      this.socket.bind(port, bindAddress, () => {
        this.socket.off('error', onError);
        resolve();
      });
    });
    this.socket.setBroadcast(true);
    this.socket.on('error', (e) => this.fail(`socket: ${e.message}`));
    this.socket.on('message', (msg, rinfo) => this.enqueue(msg, rinfo));
  }

  address(): { address: string; port: number } {
    const a = this.socket.address();
    return { address: a.address, port: a.port };
  }

  stats(): DhcpStats {
    return { ...this.counters, dropped: { ...this.counters.dropped } };
  }

  /** The lease table as it is now (offers included). */
  leaseList(): Lease[] {
    return [...this.leases.values()].map((l) => ({ ...l }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
    await this.queue;
    while (this.saving) await this.saving;
  }

  // --- plumbing -------------------------------------------------------------------------------------

  private emitEvent(e: DhcpEvent): void {
    // A listener's bug must not stop the server from answering the next client.
    try {
      this.emit('event', e);
    } catch (err) {
      this.counters.errors++;
      this.log(`dhcp: event listener threw: ${(err as Error).message}`);
    }
  }

  private fail(detail: string): void {
    this.counters.errors++;
    this.log(`dhcp: ${detail}`);
    this.emitEvent({ type: 'error', detail });
  }

  private enqueue(msg: Buffer, rinfo: RemoteInfo): void {
    this.counters.received++;
    const from = `${rinfo.address}:${rinfo.port}`;
    if (this.queued >= (this.opts.maxQueue ?? DEFAULTS.maxQueue)) {
      this.drop('overload', `queue full (${this.queued} packets waiting)`, from);
      return;
    }
    this.queued++;
    this.queue = this.queue
      .then(() => this.handle(msg, from))
      .catch((e) => this.fail(`handler bug on packet from ${from}: ${(e as Error).stack ?? e}`))
      .finally(() => {
        this.queued--;
      });
  }

  private drop(reason: DropReason, detail: string, from: string, mac?: string, xid?: number): void {
    const key = (
      {
        malformed: 'malformed',
        'not-for-us': 'notForUs',
        'no-address': 'noAddress',
        ignored: 'ignored',
        overload: 'overload',
      } as const
    )[reason];
    this.counters.dropped[key]++;
    if (reason === 'no-address') this.log(`dhcp: no address for ${mac ?? '?'} from ${from}: ${detail}`);
    const e: DhcpEvent = { type: 'dropped', reason, detail, from };
    if (mac !== undefined) e.mac = mac;
    if (xid !== undefined) e.xid = xid;
    this.emitEvent(e);
  }

  // --- leases ---------------------------------------------------------------------------------------

  private putLease(l: Lease): void {
    const old = this.leases.get(l.ip);
    if (old && this.macIndex.get(old.mac) === old.ip) this.macIndex.delete(old.mac);
    this.leases.set(l.ip, l);
    if (l.state !== 'declined') {
      // One address per client: binding a new one forgets the old (e.g. a pool address once it has a reservation).
      const prevIp = this.macIndex.get(l.mac);
      if (prevIp !== undefined && prevIp !== l.ip) {
        const prev = this.leases.get(prevIp);
        if (prev && prev.mac === l.mac && prev.state !== 'declined') this.leases.delete(prevIp);
      }
      this.macIndex.set(l.mac, l.ip);
    }
  }

  private leaseOfMac(mac: string): Lease | undefined {
    const ip = this.macIndex.get(mac);
    const l = ip === undefined ? undefined : this.leases.get(ip);
    return l && l.mac === mac && l.state !== 'declined' ? l : undefined;
  }

  private active(l: Lease): boolean {
    return l.expires > this.now();
  }

  private scheduleSave(): void {
    if (this.saving) {
      this.saveAgain = true;
      return;
    }
    // Offers are not worth a disk write: a restarted server grants a free pool address on REQUEST anyway.
    const now = this.now();
    const snapshot = [...this.leases.values()].filter(
      (l) => l.state === 'bound' || (l.state === 'declined' && l.expires > now),
    );
    this.saving = this.store
      .save(snapshot.map((l) => ({ ...l })))
      .catch((e) => this.fail(`saving leases: ${(e as Error).message}`))
      .finally(() => {
        this.saving = undefined;
        if (this.saveAgain) {
          this.saveAgain = false;
          this.scheduleSave();
        }
      });
  }

  private inSubnet(ip: string): boolean {
    return (ipToInt(ip) & this.subnet.mask) >>> 0 === this.subnet.network;
  }

  private inPool(ip: string): boolean {
    if (!this.pool) return false;
    const n = ipToInt(ip);
    return n >= this.pool.start && n <= this.pool.end && this.assignable(n);
  }

  /** Never hand out the network, broadcast, our own or the router's address, whatever the pool says. */
  private assignable(n: number): boolean {
    return (
      n !== this.subnet.network &&
      n !== this.subnet.broadcast &&
      n !== ipToInt(this.opts.serverIp) &&
      (this.opts.router === undefined || n !== ipToInt(this.opts.router))
    );
  }

  /** Free for this client: no live lease of someone else and not declined. */
  private freeFor(ip: string, mac: string): boolean {
    const l = this.leases.get(ip);
    if (!l || !this.active(l)) return true;
    return l.mac === mac && l.state !== 'declined';
  }

  private async reservedForOther(ip: string): Promise<boolean> {
    return this.opts.isReserved ? await this.opts.isReserved(ip) : false;
  }

  /** The address to offer, or a reason why there is none. Bounded by one pass over the pool. */
  private async pickAddress(
    mac: string,
    res: Reservation | undefined,
    requested: string | undefined,
  ): Promise<{ ip: string } | { none: string }> {
    if (res) {
      const holder = this.leases.get(res.ip);
      if (holder && holder.mac !== mac && holder.state === 'bound' && this.active(holder)) {
        return { none: `reserved address ${res.ip} is leased to ${holder.mac}` };
      }
      return { ip: res.ip };
    }
    const mine = this.leaseOfMac(mac);
    if (
      mine &&
      this.inPool(mine.ip) &&
      this.freeFor(mine.ip, mac) &&
      !(await this.reservedForOther(mine.ip))
    ) {
      return { ip: mine.ip };
    }
    if (
      requested &&
      this.inPool(requested) &&
      this.freeFor(requested, mac) &&
      !(await this.reservedForOther(requested))
    ) {
      return { ip: requested };
    }
    if (!this.pool) return { none: 'no reservation for this MAC and no dynamic pool' };
    // Prefer addresses nobody has held, so a client that comes back soon gets its old one.
    let expired: string | undefined;
    for (let n = this.pool.start; n <= this.pool.end; n++) {
      if (!this.assignable(n)) continue;
      const ip = intToIp(n);
      const l = this.leases.get(ip);
      if (l && (this.active(l) || expired !== undefined)) continue;
      if (await this.reservedForOther(ip)) continue;
      if (!l) return { ip };
      expired = ip;
    }
    if (expired !== undefined) return { ip: expired };
    return { none: `pool ${this.opts.pool?.start}-${this.opts.pool?.end} is full` };
  }

  /** Whether `ip` may be bound to this client now (SELECTING and INIT-REBOOT), with the reason if not. */
  private async grantable(
    mac: string,
    ip: string,
    res: Reservation | undefined,
  ): Promise<string | undefined> {
    if (!this.inSubnet(ip)) return `${ip} is not on this subnet`;
    if (res) return ip === res.ip ? undefined : `this host's reserved address is ${res.ip}, not ${ip}`;
    if (await this.reservedForOther(ip)) return `${ip} is reserved for another host`;
    const l = this.leases.get(ip);
    if (l && this.active(l)) {
      if (l.state === 'declined') return `${ip} was declined and is out of use`;
      if (l.mac !== mac) return `${ip} is leased to another client`;
      return undefined;
    }
    if (!this.inPool(ip)) return `${ip} is not in the dynamic pool`;
    return undefined;
  }

  // --- packets --------------------------------------------------------------------------------------

  private async handle(msg: Buffer, from: string): Promise<void> {
    if (this.closed) return;
    const parsed = parseDhcp(msg);
    if (!parsed.ok) return this.drop('malformed', parsed.error, from);
    const p = parsed.packet;
    if (p.op !== BOOTREQUEST)
      return this.drop('ignored', `op ${p.op} is not BOOTREQUEST`, from, undefined, p.xid);
    if (p.hlen === 0) return this.drop('malformed', 'no hardware address (hlen 0)', from, undefined, p.xid);
    const mac = macOf(p);
    const type = optU8(p, Opt.MESSAGE_TYPE);
    if (type === undefined) {
      const detail = p.options.has(Opt.MESSAGE_TYPE)
        ? 'option 53 is not 1 byte long'
        : 'BOOTP request without DHCP message type';
      return this.drop(p.options.has(Opt.MESSAGE_TYPE) ? 'malformed' : 'ignored', detail, from, mac, p.xid);
    }
    try {
      switch (type) {
        case MessageType.DISCOVER:
          return await this.onDiscover(p, mac);
        case MessageType.REQUEST:
          return await this.onRequest(p, mac);
        case MessageType.DECLINE:
          return this.onDecline(p, mac);
        case MessageType.RELEASE:
          return this.onRelease(p, mac);
        case MessageType.INFORM:
          return await this.onInform(p, mac);
        default:
          return this.drop(
            'ignored',
            `message type ${messageTypeName(type)} is not for a server`,
            from,
            mac,
            p.xid,
          );
      }
    } catch (e) {
      if (e instanceof Dropped) return this.drop(e.reason, e.message, from, mac, p.xid);
      throw e;
    }
  }

  private async reservation(mac: string): Promise<Reservation | undefined> {
    if (!this.opts.reservations) return undefined;
    let res: Reservation | undefined;
    try {
      res = await this.opts.reservations(mac);
    } catch (e) {
      // No reply is better than a wrong one: the client retries, the database may be back by then.
      throw new Dropped('no-address', `reservation lookup failed: ${(e as Error).message}`);
    }
    if (res && (!isIpv4(res.ip) || !this.inSubnet(res.ip))) {
      throw new Dropped(
        'no-address',
        `reservation for ${mac} has address ${JSON.stringify(res.ip)}, not on this subnet`,
      );
    }
    return res;
  }

  /** Server identifier check shared by REQUEST (SELECTING), DECLINE and RELEASE. */
  private forOtherServer(p: DhcpPacket): string | undefined {
    const sid = optIp(p, Opt.SERVER_ID);
    if (p.options.has(Opt.SERVER_ID) && sid === undefined)
      throw new Dropped('malformed', 'option 54 is not 4 bytes long');
    return sid !== undefined && sid !== this.opts.serverIp ? sid : undefined;
  }

  private async onDiscover(p: DhcpPacket, mac: string): Promise<void> {
    const res = await this.reservation(mac);
    const pick = await this.pickAddress(mac, res, optIp(p, Opt.REQUESTED_IP));
    if ('none' in pick) throw new Dropped('no-address', pick.none);
    const existing = this.leases.get(pick.ip);
    const now = this.now();
    if (!(existing && existing.mac === mac && existing.state === 'bound' && this.active(existing))) {
      const hold: Lease = {
        mac,
        ip: pick.ip,
        state: 'offered',
        expires: now + 1000 * (this.opts.offerHoldTime ?? DEFAULTS.offerHoldTime),
      };
      if (res?.hostname) hold.hostname = res.hostname;
      this.putLease(hold);
    }
    this.counters.offers++;
    this.answer(p, mac, MessageType.OFFER, pick.ip, res);
  }

  private async onRequest(p: DhcpPacket, mac: string): Promise<void> {
    const other = this.forOtherServer(p);
    const requested = optIp(p, Opt.REQUESTED_IP);
    if (other !== undefined) {
      // The client chose another server's offer: forget ours (RFC 2131 4.3.2, SELECTING).
      const mine = this.leaseOfMac(mac);
      if (mine && mine.state === 'offered') this.leases.delete(mine.ip);
      throw new Dropped('not-for-us', `REQUEST names server ${other}`);
    }
    const res = await this.reservation(mac);
    const selecting = p.options.has(Opt.SERVER_ID);
    if (selecting || (requested !== undefined && p.ciaddr === '0.0.0.0')) {
      // SELECTING (server id ours) or INIT-REBOOT: the address is in option 50. We are authoritative
      // for the subnet, so an INIT-REBOOT for a free pool address we have no record of is granted
      // (the lease file may have been lost) rather than ignored as RFC 2131 allows.
      if (requested === undefined)
        throw new Dropped('malformed', 'REQUEST in SELECTING state without option 50');
      const why = await this.grantable(mac, requested, res);
      if (why) return this.nak(p, mac, why, requested);
      return this.bind(p, mac, requested, res);
    }
    if (p.ciaddr === '0.0.0.0') throw new Dropped('malformed', 'REQUEST with neither option 50 nor ciaddr');
    // RENEWING (unicast) or REBINDING (broadcast): only an address the client holds is extended.
    const ip = p.ciaddr;
    if (res) {
      if (res.ip !== ip) return this.nak(p, mac, `this host's reserved address is ${res.ip}, not ${ip}`, ip);
      return this.bind(p, mac, ip, res);
    }
    const l = this.leases.get(ip);
    if (!l || l.mac !== mac || l.state !== 'bound')
      return this.nak(p, mac, `${ip} is not leased to this client`, ip);
    if (!this.active(l)) return this.nak(p, mac, `the lease of ${ip} has expired`, ip);
    if (await this.reservedForOther(ip))
      return this.nak(p, mac, `${ip} is now reserved for another host`, ip);
    return this.bind(p, mac, ip, res);
  }

  private bind(p: DhcpPacket, mac: string, ip: string, res: Reservation | undefined): void {
    const lease: Lease = { mac, ip, state: 'bound', expires: this.now() + 1000 * this.leaseTime() };
    if (res?.hostname) lease.hostname = res.hostname;
    this.putLease(lease);
    this.scheduleSave();
    this.counters.acks++;
    this.answer(p, mac, MessageType.ACK, ip, res);
  }

  /**
   * The client found the address in use (ARP). A pool address is kept out of use for declineHoldTime;
   * a reserved one is still offered to its host, since the host database says it is that host's.
   */
  private onDecline(p: DhcpPacket, mac: string): void {
    const other = this.forOtherServer(p);
    if (other !== undefined) throw new Dropped('not-for-us', `DECLINE names server ${other}`);
    const ip = optIp(p, Opt.REQUESTED_IP);
    if (ip === undefined) throw new Dropped('malformed', 'DECLINE without option 50');
    this.counters.declines++;
    const l = this.leases.get(ip);
    const applied = l !== undefined && l.mac === mac && l.state !== 'declined';
    let detail: string | undefined;
    if (applied) {
      const hold = this.opts.declineHoldTime ?? DEFAULTS.declineHoldTime;
      this.putLease({ mac, ip, state: 'declined', expires: this.now() + 1000 * hold });
      this.macIndex.delete(mac);
      this.log(`dhcp: ${mac} declined ${ip} (in use by someone else?); out of use for ${hold} s`);
      this.scheduleSave();
    } else {
      detail = `${ip} was not offered to ${mac}; ignored`;
    }
    const e: DhcpEvent = { type: 'decline', mac, xid: p.xid, ip, applied };
    if (detail) e.detail = detail;
    this.emitEvent(e);
  }

  private onRelease(p: DhcpPacket, mac: string): void {
    const other = this.forOtherServer(p);
    if (other !== undefined) throw new Dropped('not-for-us', `RELEASE names server ${other}`);
    const ip = p.ciaddr;
    this.counters.releases++;
    const l = this.leases.get(ip);
    const applied = l !== undefined && l.mac === mac && l.state === 'bound';
    if (l && applied) {
      // Expired rather than deleted: the address is free for anyone, yet this client is still
      // offered it first if nobody has taken it meanwhile.
      this.putLease({ ...l, expires: this.now() });
      this.scheduleSave();
    }
    const e: DhcpEvent = { type: 'release', mac, xid: p.xid, ip, applied };
    if (!applied) e.detail = `${ip} is not leased to ${mac}; ignored`;
    this.emitEvent(e);
  }

  private async onInform(p: DhcpPacket, mac: string): Promise<void> {
    if (p.ciaddr === '0.0.0.0') throw new Dropped('malformed', 'INFORM without ciaddr');
    const res = await this.reservation(mac);
    this.counters.informs++;
    this.answer(p, mac, MessageType.INFORM, p.ciaddr, res);
  }

  // --- replies --------------------------------------------------------------------------------------

  private leaseTime(): number {
    return this.opts.leaseTime ?? DEFAULTS.leaseTime;
  }

  private reply(p: DhcpPacket, type: number): DhcpPacket {
    return {
      op: BOOTREPLY,
      htype: p.htype,
      hlen: p.hlen,
      hops: 0,
      xid: p.xid,
      secs: 0,
      flags: p.flags,
      ciaddr: '0.0.0.0',
      yiaddr: '0.0.0.0',
      siaddr: '0.0.0.0',
      giaddr: p.giaddr,
      chaddr: p.chaddr,
      sname: '',
      file: '',
      hasCookie: true,
      options: new Map([
        [Opt.MESSAGE_TYPE, Buffer.from([type])],
        [Opt.SERVER_ID, ipToBytes(this.opts.serverIp)],
      ]),
    };
  }

  /** OFFER, ACK, or the ACK that answers an INFORM (no address, no lease time). */
  private answer(p: DhcpPacket, mac: string, kind: number, ip: string, res: Reservation | undefined): void {
    const inform = kind === MessageType.INFORM;
    const r = this.reply(p, inform ? MessageType.ACK : kind);
    const o = r.options;
    if (inform) {
      r.ciaddr = p.ciaddr;
    } else {
      r.yiaddr = ip;
      // RFC 2131 table 3: an ACK echoes ciaddr (RENEWING/REBINDING), an OFFER does not.
      if (kind === MessageType.ACK) r.ciaddr = p.ciaddr;
      const t = this.leaseTime();
      o.set(Opt.LEASE_TIME, u32(t));
      o.set(Opt.RENEWAL_T1, u32(Math.floor(t / 2)));
      o.set(Opt.REBINDING_T2, u32(Math.floor((t * 7) / 8)));
    }
    o.set(Opt.SUBNET_MASK, ipToBytes(this.opts.subnetMask));
    o.set(Opt.BROADCAST, u32(this.subnet.broadcast));
    if (this.opts.router) o.set(Opt.ROUTER, ipToBytes(this.opts.router));
    if (this.opts.dnsServers?.length) o.set(Opt.DNS, ipList(this.opts.dnsServers));
    if (this.opts.domain) o.set(Opt.DOMAIN, Buffer.from(this.opts.domain, 'latin1'));
    if (res?.hostname) o.set(Opt.HOSTNAME, Buffer.from(res.hostname, 'latin1'));
    const boot = chooseBoot(p, mergeBoot(this.opts.boot ?? {}, res?.boot), this.opts.serverIp);
    const pxe = isPxeClient(p);
    if (pxe) o.set(Opt.VENDOR_CLASS, Buffer.from('PXEClient', 'latin1'));
    r.siaddr = boot.nextServer;
    if (boot.file !== undefined) {
      o.set(Opt.TFTP_SERVER, Buffer.from(boot.tftpServerName, 'latin1'));
      // PXE ROMs are known to want the name NUL-terminated in option 67 (dnsmasq does the same).
      o.set(Opt.BOOTFILE, Buffer.from(pxe ? `${boot.file}\0` : boot.file, 'latin1'));
      if (Buffer.byteLength(boot.file, 'latin1') < 128) r.file = boot.file;
    } else if (boot.kind === 'other') {
      this.log(`dhcp: no boot file configured for ${mac} (client arch ${boot.arch})`);
    }
    const to = this.destination(p, r);
    this.send(r, to);
    if (inform) {
      this.emitEvent({ type: 'inform', mac, xid: p.xid, ip, to });
      return;
    }
    const e: DhcpEvent = {
      type: kind === MessageType.OFFER ? 'offer' : 'ack',
      mac,
      xid: p.xid,
      ip,
      reserved: res !== undefined,
      clientKind: boot.kind,
      to,
    };
    if (res?.hostname) e.hostname = res.hostname;
    if (boot.arch !== undefined) e.arch = boot.arch;
    if (boot.file !== undefined) e.bootFile = boot.file;
    this.emitEvent(e);
  }

  private nak(p: DhcpPacket, mac: string, reason: string, ip?: string): void {
    const r = this.reply(p, MessageType.NAK);
    r.options.set(Opt.MESSAGE, Buffer.from(reason, 'latin1'));
    // Through a relay the NAK must be broadcast on the client's segment (RFC 2131 4.1).
    if (p.giaddr !== '0.0.0.0') r.flags |= BROADCAST_FLAG;
    const to = this.destination(p, r);
    this.counters.naks++;
    this.send(r, to);
    const e: DhcpEvent = { type: 'nak', mac, xid: p.xid, reason, to };
    if (ip !== undefined) e.ip = ip;
    this.emitEvent(e);
  }

  /** RFC 2131 4.1: relay, else unicast to a configured client, else broadcast. */
  private destination(p: DhcpPacket, r: DhcpPacket): Destination {
    const clientPort = this.opts.clientPort ?? 68;
    if (p.giaddr !== '0.0.0.0') return { address: p.giaddr, port: this.opts.port || 67, via: 'relay' };
    const nak = r.options.get(Opt.MESSAGE_TYPE)?.[0] === MessageType.NAK;
    if (!nak && p.ciaddr !== '0.0.0.0') return { address: p.ciaddr, port: clientPort, via: 'unicast' };
    // Unicasting to yiaddr before the client has its address would need an ARP entry we cannot set
    // from a UDP socket; RFC 2131 allows broadcasting instead.
    return { address: this.opts.broadcastAddress ?? '255.255.255.255', port: clientPort, via: 'broadcast' };
  }

  private send(r: DhcpPacket, to: Destination): void {
    if (this.closed) return;
    const buf = serializeDhcp(r);
    const target = this.opts.replyTo ?? to;
    this.socket.send(buf, target.port, target.address, (err) => {
      if (!err) return;
      const code = (err as NodeJS.ErrnoException).code;
      if (
        !this.opts.replyTo &&
        to.address === '255.255.255.255' &&
        (code === 'ENETUNREACH' || code === 'EHOSTUNREACH')
      ) {
        const directed = intToIp(this.subnet.broadcast);
        if (!this.warnedBroadcast) {
          this.warnedBroadcast = true;
          this.log(`dhcp: no route for 255.255.255.255 (${code}); broadcasting to ${directed} instead`);
        }
        if (this.closed) return;
        this.counters.directedBroadcasts++;
        this.socket.send(buf, to.port, directed, (err2) => {
          if (err2) this.fail(`sending reply to ${directed}:${to.port}: ${err2.message}`);
        });
        return;
      }
      this.fail(`sending reply to ${target.address}:${target.port}: ${err.message}`);
    });
  }
}

/** Starts the server: loads the leases, binds the socket, and answers until close(). */
export async function startDhcpServer(opts: DhcpServerOptions): Promise<DhcpServer> {
  const subnet = validate(opts);
  const server = new DhcpServer(opts, subnet);
  await server.start();
  return server;
}
