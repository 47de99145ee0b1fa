/**
 * The DHCP server on loopback, answering the real client packets recorded in the boot-client captures
 * (iPXE BIOS and EFI, OVMF, udhcpc, dhclient), with dnsmasq's recorded replies as the reference shape.
 * Replies come back to the test's socket through the server's `replyTo` override; where RFC 2131 would
 * have sent them is checked through the server's events.
 */
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  BROADCAST_FLAG,
  type DhcpPacket,
  ipToBytes,
  MessageType,
  Opt,
  optIp,
  optString,
  optU8,
  parseDhcp,
  serializeDhcp,
} from '../../src/provision/dhcp/codec.js';
import { JsonFileLeaseStore, type Lease, MemoryLeaseStore } from '../../src/provision/dhcp/leases.js';
import {
  type DhcpEvent,
  type DhcpServer,
  type DhcpServerOptions,
  type DhcpStats,
  type Reservation,
  startDhcpServer,
} from '../../src/provision/dhcp/server.js';
import { bootClientsDir, readPcapUdp } from '../helpers/pcap.js';

// --- a loopback DHCP peer ------------------------------------------------------------------------------

class TestClient {
  readonly replies: DhcpPacket[] = [];
  readonly garbage: string[] = [];
  private waiters: Array<{ xid: number; resolve: (p: DhcpPacket) => void }> = [];

  private constructor(
    private readonly sock: Socket,
    readonly port: number,
  ) {
    sock.on('message', (msg) => {
      const r = parseDhcp(msg);
      if (!r.ok) {
        this.garbage.push(r.error);
        return;
      }
      this.replies.push(r.packet);
      const i = this.waiters.findIndex((w) => w.xid === r.packet.xid);
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(r.packet);
    });
  }

  static async open(): Promise<TestClient> {
    const sock = createSocket('udp4');
    await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
    return new TestClient(sock, sock.address().port);
  }

  send(buf: Buffer, port: number): Promise<void> {
    return new Promise((resolve, reject) =>
      this.sock.send(buf, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())),
    );
  }

  /** Sends a packet and waits for the reply with the same xid. */
  async exchange(buf: Buffer, port: number, timeoutMs = 3000): Promise<DhcpPacket> {
    const xid = buf.readUInt32BE(4);
    const got = new Promise<DhcpPacket>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`no reply to xid 0x${xid.toString(16)} in ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.push({
        xid,
        resolve: (p) => {
          clearTimeout(t);
          resolve(p);
        },
      });
    });
    await this.send(buf, port);
    return got;
  }

  repliesTo(xid: number): DhcpPacket[] {
    return this.replies.filter((p) => p.xid === xid);
  }

  close(): void {
    this.sock.close();
  }
}

function nextEvent(
  server: DhcpServer,
  pred: (e: DhcpEvent) => boolean,
  timeoutMs = 3000,
): Promise<DhcpEvent> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      server.off('event', on);
      reject(new Error(`no matching DHCP event in ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (e: DhcpEvent) => {
      if (!pred(e)) return;
      clearTimeout(t);
      server.off('event', on);
      resolve(e);
    };
    server.on('event', on);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Rec {
  raw: Buffer;
  p: DhcpPacket;
}

function capture(file: string): Rec[] {
  return readPcapUdp(join(bootClientsDir(), file))
    .filter((r) => r.dstPort === 67 || r.dstPort === 68)
    .map((r) => {
      const res = parseDhcp(r.payload);
      if (!res.ok) throw new Error(`${file} record ${r.index}: ${res.error}`);
      return { raw: r.payload, p: res.packet };
    });
}

const typeOf = (p: DhcpPacket) => optU8(p, Opt.MESSAGE_TYPE);

/** dnsmasq's recorded answer to a client packet: the next server packet with the same xid. */
function dnsmasqReply(recs: Rec[], client: Rec): DhcpPacket {
  const i = recs.indexOf(client);
  const r = recs.slice(i + 1).find((x) => x.p.op === 2 && x.p.xid === client.p.xid);
  if (!r) throw new Error('capture has no reply to this packet');
  return r.p;
}

interface Edit {
  mac?: string;
  xid?: number;
  type?: number;
  ciaddr?: string;
  giaddr?: string;
  flags?: number;
  /** Options to set (a Buffer, or a string for an IPv4 address) or delete (null). */
  options?: Record<number, Buffer | string | null>;
}

/** A copy of a recorded client packet with some fields changed, serialized. */
function edited(p: DhcpPacket, e: Edit): Buffer {
  const q: DhcpPacket = { ...p, chaddr: Buffer.from(p.chaddr), options: new Map(p.options) };
  if (e.mac) {
    q.chaddr = Buffer.alloc(16);
    Buffer.from(e.mac.replaceAll(':', ''), 'hex').copy(q.chaddr);
    q.hlen = 6;
    if (q.options.has(Opt.CLIENT_ID)) {
      q.options.set(Opt.CLIENT_ID, Buffer.concat([Buffer.from([1]), q.chaddr.subarray(0, 6)]));
    }
  }
  if (e.xid !== undefined) q.xid = e.xid;
  if (e.type !== undefined) q.options.set(Opt.MESSAGE_TYPE, Buffer.from([e.type]));
  if (e.ciaddr) q.ciaddr = e.ciaddr;
  if (e.giaddr) q.giaddr = e.giaddr;
  if (e.flags !== undefined) q.flags = e.flags;
  for (const [k, v] of Object.entries(e.options ?? {})) {
    if (v === null) q.options.delete(Number(k));
    else q.options.set(Number(k), typeof v === 'string' ? ipToBytes(v) : v);
  }
  return serializeDhcp(q);
}

/** Offset of the end option (255), walking the option area. */
function optionsEnd(b: Buffer): number {
  let i = 240;
  while (i < b.length && b[i] !== 255) i += b[i] === 0 ? 1 : 2 + b[i + 1]!;
  return i;
}

function accounted(s: DhcpStats): number {
  const d = s.dropped;
  return (
    s.offers +
    s.acks +
    s.naks +
    s.informs +
    s.releases +
    s.declines +
    d.malformed +
    d.notForUs +
    d.noAddress +
    d.ignored +
    d.overload
  );
}

// --- the lab as dnsmasq saw it: 10.77.0.0/24, server 10.77.0.1, three reserved hosts ------------------

const SERVER = '10.77.0.1';
const SCRIPT = 'http://10.77.0.1/ipxe/boot.ipxe';
const hosts: Record<string, Reservation> = {
  '52:54:00:12:34:56': { ip: '10.77.0.111', hostname: 'bios-host' },
  '52:54:00:12:34:57': { ip: '10.77.0.112', hostname: 'uefi-host' },
  '52:54:00:12:34:58': { ip: '10.77.0.113' },
};

const bios = capture('bios-ipxe-pxelinux-udhcpc.pcap');
const uefi = capture('uefi-ovmf-pxe.pcap');
const dhclient = capture('dhclient.pcap');
const clientPackets = (recs: Rec[], type: number) => recs.filter((r) => r.p.op === 1 && typeOf(r.p) === type);
const ipxeBiosDiscover = clientPackets(bios, MessageType.DISCOVER)[0]!;
const ipxeBiosRequest = clientPackets(bios, MessageType.REQUEST)[0]!;
const udhcpcDiscover = clientPackets(bios, MessageType.DISCOVER)[2]!;
const udhcpcRequest = clientPackets(bios, MessageType.REQUEST)[1]!;
const ipxeEfiDiscover = clientPackets(uefi, MessageType.DISCOVER)[0]!;
const ovmfDiscover = uefi.find((r) => r.p.xid === 0x7039c6c5 && typeOf(r.p) === MessageType.DISCOVER)!;
const ovmfRequest = uefi.find((r) => r.p.xid === 0x7039c6c5 && typeOf(r.p) === MessageType.REQUEST)!;
const dhclientDiscover = clientPackets(dhclient, MessageType.DISCOVER)[0]!;
const dhclientRequest = clientPackets(dhclient, MessageType.REQUEST)[0]!;
const dhclientRelease = clientPackets(dhclient, MessageType.RELEASE)[0]!;

let client: TestClient;
const servers: DhcpServer[] = [];

beforeAll(async () => {
  client = await TestClient.open();
});
afterAll(() => client.close());
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(over: Partial<DhcpServerOptions> = {}): Promise<{ s: DhcpServer; port: number }> {
  const s = await startDhcpServer({
    serverIp: SERVER,
    bindAddress: '127.0.0.1',
    port: 0,
    subnetMask: '255.255.255.0',
    router: '10.77.0.1',
    dnsServers: ['10.77.0.53', '10.77.0.54'],
    domain: 'lab.test',
    leaseTime: 43200,
    pool: { start: '10.77.0.150', end: '10.77.0.159' },
    reservations: (mac) => hosts[mac],
    boot: { ipxeScript: SCRIPT },
    replyTo: { address: '127.0.0.1', port: client.port },
    ...over,
  });
  servers.push(s);
  return { s, port: s.address().port };
}

/** The fields dnsmasq and we must agree on. */
function shape(p: DhcpPacket) {
  return {
    type: typeOf(p),
    xid: p.xid,
    yiaddr: p.yiaddr,
    siaddr: p.siaddr,
    chaddr: p.chaddr.subarray(0, 6).toString('hex'),
    serverId: optIp(p, Opt.SERVER_ID),
    lease: p.options.get(Opt.LEASE_TIME)?.readUInt32BE(0),
    t1: p.options.get(Opt.RENEWAL_T1)?.readUInt32BE(0),
    t2: p.options.get(Opt.REBINDING_T2)?.readUInt32BE(0),
    mask: optIp(p, Opt.SUBNET_MASK),
    broadcast: optIp(p, Opt.BROADCAST),
    router: optIp(p, Opt.ROUTER),
  };
}

function expectConfiguredOptions(p: DhcpPacket) {
  expect(p.options.get(Opt.DNS)).toEqual(Buffer.from([10, 77, 0, 53, 10, 77, 0, 54]));
  expect(optString(p, Opt.DOMAIN)).toBe('lab.test');
  expect(optString(p, Opt.TFTP_SERVER)).toBe(SERVER);
}

// --- replaying the recorded clients ---------------------------------------------------------------------

describe('DHCP server answers the recorded boot clients', () => {
  it('iPXE on BIOS (arch 0, user class iPXE, option 175): the iPXE script URL, shaped like dnsmasq', async () => {
    const { s, port } = await start();
    const offered = nextEvent(s, (e) => e.type === 'offer');
    const offer = await client.exchange(ipxeBiosDiscover.raw, port);
    expect(shape(offer)).toEqual(shape(dnsmasqReply(bios, ipxeBiosDiscover)));
    expectConfiguredOptions(offer);
    expect(optString(offer, Opt.BOOTFILE)).toBe(SCRIPT);
    expect(offer.file).toBe(SCRIPT);
    expect(optString(offer, Opt.VENDOR_CLASS)).toBe('PXEClient');
    expect(optString(offer, Opt.HOSTNAME)).toBe('bios-host');
    expect(await offered).toMatchObject({
      mac: '52:54:00:12:34:56',
      ip: '10.77.0.111',
      reserved: true,
      clientKind: 'ipxe',
      arch: 0,
      bootFile: SCRIPT,
      to: { address: '255.255.255.255', port: 68, via: 'broadcast' },
    });
    const acked = nextEvent(s, (e) => e.type === 'ack');
    const ack = await client.exchange(ipxeBiosRequest.raw, port);
    expect(shape(ack)).toEqual(shape(dnsmasqReply(bios, ipxeBiosRequest)));
    expect(optString(ack, Opt.BOOTFILE)).toBe(SCRIPT);
    expect(await acked).toMatchObject({ ip: '10.77.0.111', hostname: 'bios-host' });
    expect(s.stats()).toMatchObject({ received: 2, offers: 1, acks: 1 });
  });

  it('the same BIOS PXE client without iPXE (what pxelinux is loaded by): pxelinux.0, as dnsmasq answered', async () => {
    const { port } = await start();
    const plain = edited(ipxeBiosDiscover.p, { options: { [Opt.USER_CLASS]: null, [Opt.IPXE_ENCAP]: null } });
    const offer = await client.exchange(plain, port);
    const ref = dnsmasqReply(bios, ipxeBiosDiscover);
    expect(shape(offer)).toEqual(shape(ref));
    // Byte for byte what dnsmasq sent, NUL included, and the classic file field too.
    expect(offer.options.get(Opt.BOOTFILE)).toEqual(ref.options.get(Opt.BOOTFILE));
    expect(offer.file).toBe('pxelinux.0');
  });

  it('iPXE on UEFI (arch 7, option 175): the script URL, not ipxe.efi again (no chain-loading loop)', async () => {
    const { s, port } = await start();
    const offered = nextEvent(s, (e) => e.type === 'offer');
    const offer = await client.exchange(ipxeEfiDiscover.raw, port);
    expect(shape(offer)).toEqual(shape(dnsmasqReply(uefi, ipxeEfiDiscover)));
    expect(optString(offer, Opt.BOOTFILE)).toBe(SCRIPT);
    expect(await offered).toMatchObject({ clientKind: 'ipxe', arch: 7, ip: '10.77.0.112' });
  });

  it('OVMF firmware PXE (arch 7, GUID option 97, parameters >= 128, broadcast flag): ipxe.efi', async () => {
    expect(ovmfDiscover.p.options.get(Opt.CLIENT_UUID)?.length).toBe(17);
    expect(Math.max(...ovmfDiscover.p.options.get(Opt.PARAM_LIST)!)).toBeGreaterThanOrEqual(128);
    const { s, port } = await start();
    const offered = nextEvent(s, (e) => e.type === 'offer');
    const offer = await client.exchange(ovmfDiscover.raw, port);
    const ref = dnsmasqReply(uefi, ovmfDiscover);
    expect(shape(offer)).toEqual(shape(ref));
    expect(offer.options.get(Opt.BOOTFILE)).toEqual(ref.options.get(Opt.BOOTFILE)); // "ipxe.efi\0"
    expect(offer.flags & BROADCAST_FLAG).toBe(BROADCAST_FLAG);
    expect(await offered).toMatchObject({
      clientKind: 'uefi',
      arch: 7,
      bootFile: 'ipxe.efi',
      to: { via: 'broadcast' },
    });
    const ack = await client.exchange(ovmfRequest.raw, port);
    expect(shape(ack)).toEqual(shape(dnsmasqReply(uefi, ovmfRequest)));
    expect(optString(ack, Opt.BOOTFILE)).toBe('ipxe.efi');
  });

  it('busybox udhcpc (no option 93): its address, options as configured, boot file as BIOS', async () => {
    const { port } = await start();
    const offer = await client.exchange(udhcpcDiscover.raw, port);
    const ref = dnsmasqReply(bios, udhcpcDiscover);
    expect(shape(offer)).toEqual(shape(ref));
    expect(offer.file).toBe(ref.file);
    expectConfiguredOptions(offer);
    // Not a PXE client: no option 60, and option 67 without the PXE ROMs' NUL.
    expect(offer.options.has(Opt.VENDOR_CLASS)).toBe(false);
    expect(offer.options.get(Opt.BOOTFILE)).toEqual(Buffer.from('pxelinux.0'));
    const ack = await client.exchange(udhcpcRequest.raw, port);
    expect(shape(ack)).toEqual(shape(dnsmasqReply(bios, udhcpcRequest)));
  });

  it('ISC dhclient: DISCOVER, REQUEST, then RELEASE frees the address', async () => {
    const { s, port } = await start();
    const offer = await client.exchange(dhclientDiscover.raw, port);
    expect(shape(offer)).toEqual(shape(dnsmasqReply(dhclient, dhclientDiscover)));
    const ack = await client.exchange(dhclientRequest.raw, port);
    expect(shape(ack)).toEqual(shape(dnsmasqReply(dhclient, dhclientRequest)));
    expect(s.leaseList()).toContainEqual(expect.objectContaining({ ip: '10.77.0.113', state: 'bound' }));
    const released = nextEvent(s, (e) => e.type === 'release');
    await client.send(dhclientRelease.raw, port);
    expect(await released).toMatchObject({ mac: '52:54:00:12:34:58', ip: '10.77.0.113', applied: true });
    expect(s.stats()).toMatchObject({ received: 3, offers: 1, acks: 1, releases: 1 });
    expect(client.repliesTo(dhclientRelease.p.xid)).toEqual([]);
  });

  it('reply destinations follow RFC 2131 4.1: relay, unicast to ciaddr, else broadcast', async () => {
    const { s, port } = await start();
    await client.exchange(dhclientDiscover.raw, port);
    await client.exchange(dhclientRequest.raw, port);
    let ev = nextEvent(s, (e) => e.type === 'ack');
    const renew = edited(dhclientRequest.p, {
      xid: 0x1001,
      ciaddr: '10.77.0.113',
      options: { [Opt.SERVER_ID]: null, [Opt.REQUESTED_IP]: null },
    });
    const ack = await client.exchange(renew, port);
    expect(ack.ciaddr).toBe('10.77.0.113');
    expect(await ev).toMatchObject({ to: { address: '10.77.0.113', port: 68, via: 'unicast' } });
    ev = nextEvent(s, (e) => e.type === 'offer');
    await client.exchange(edited(dhclientDiscover.p, { xid: 0x1002, giaddr: '10.99.0.1' }), port);
    expect(await ev).toMatchObject({ to: { address: '10.99.0.1', port: 67, via: 'relay' } });
    ev = nextEvent(s, (e) => e.type === 'inform');
    const inform = await client.exchange(
      edited(dhclientDiscover.p, { xid: 0x1003, type: MessageType.INFORM, ciaddr: '10.77.0.113' }),
      port,
    );
    expect(await ev).toMatchObject({ to: { address: '10.77.0.113', via: 'unicast' } });
    // INFORM: configuration only, no address and no lease time (RFC 2131 3.4).
    expect(typeOf(inform)).toBe(MessageType.ACK);
    expect(inform.yiaddr).toBe('0.0.0.0');
    expect(inform.options.has(Opt.LEASE_TIME)).toBe(false);
    expect(optIp(inform, Opt.SUBNET_MASK)).toBe('255.255.255.0');
    expect(s.stats().informs).toBe(1);
  });
});

// --- the server's own rules ----------------------------------------------------------------------------

const POOL_MAC_A = '02:00:00:00:00:0a';
const POOL_MAC_B = '02:00:00:00:00:0b';
const POOL_MAC_C = '02:00:00:00:00:0c';
let xid = 0x5000;

async function discover(port: number, mac: string, extra: Edit = {}): Promise<DhcpPacket> {
  return client.exchange(edited(udhcpcDiscover.p, { mac, xid: ++xid, ...extra }), port);
}

async function obtain(port: number, mac: string): Promise<string> {
  const offer = await discover(port, mac);
  const ack = await client.exchange(
    edited(udhcpcRequest.p, { mac, xid: ++xid, options: { [Opt.REQUESTED_IP]: offer.yiaddr } }),
    port,
  );
  expect(typeOf(ack)).toBe(MessageType.ACK);
  return ack.yiaddr;
}

async function expectDropped(s: DhcpServer, port: number, buf: Buffer, reason: string): Promise<DhcpEvent> {
  const ev = nextEvent(s, (e) => e.type === 'dropped');
  await client.send(buf, port);
  const e = await ev;
  expect(e).toMatchObject({ reason });
  // The server handles packets in order and would have sent before reporting; allow the datagram to land.
  await sleep(30);
  expect(client.repliesTo(buf.readUInt32BE(4))).toEqual([]);
  return e;
}

describe('DHCP server rules', () => {
  it('full pool: no reply, counted, and found out promptly (one pass over 4096 addresses)', async () => {
    const now = Date.now();
    const leases: Lease[] = [];
    for (let i = 0; i < 4096; i++) {
      leases.push({
        mac: `06:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
        ip: `10.78.${16 + (i >> 8)}.${i & 255}`,
        state: 'bound',
        expires: now + 3_600_000,
      });
    }
    const store = new MemoryLeaseStore();
    await store.save(leases);
    const { s, port } = await start({
      serverIp: '10.78.0.1',
      subnetMask: '255.255.0.0',
      router: undefined,
      pool: { start: '10.78.16.0', end: '10.78.31.255' },
      leaseStore: store,
      reservations: (mac) => (mac === POOL_MAC_B ? { ip: '10.78.0.10' } : undefined),
    });
    const t0 = performance.now();
    const e = await expectDropped(
      s,
      port,
      edited(udhcpcDiscover.p, { mac: POOL_MAC_A, xid: ++xid }),
      'no-address',
    );
    const ms = performance.now() - t0 - 30;
    expect(e).toMatchObject({ detail: expect.stringMatching(/pool 10.78.16.0-10.78.31.255 is full/) });
    process.stdout.write(`dhcp: full pool of 4096 found out in ${ms.toFixed(1)} ms\n`);
    expect(ms).toBeLessThan(500);
    expect(s.stats().dropped.noAddress).toBe(1);
    // Still serving: a reserved host gets its address.
    expect((await discover(port, POOL_MAC_B)).yiaddr).toBe('10.78.0.10');
  });

  it('REQUEST naming another server: not ACKed, counted, and our offer is withdrawn', async () => {
    const { s, port } = await start();
    const offer = await discover(port, POOL_MAC_A);
    const req = edited(udhcpcRequest.p, {
      mac: POOL_MAC_A,
      xid: ++xid,
      options: { [Opt.SERVER_ID]: '10.77.0.99', [Opt.REQUESTED_IP]: offer.yiaddr },
    });
    await expectDropped(s, port, req, 'not-for-us');
    expect(s.stats().dropped.notForUs).toBe(1);
    expect(s.leaseList().find((l) => l.ip === offer.yiaddr)).toBeUndefined();
  });

  it("NAKs a REQUEST for an address that is not the client's", async () => {
    const now = { t: Date.now() };
    const { s, port } = await start({
      isReserved: (ip) => ip === '10.77.0.155',
      now: () => now.t,
      leaseTime: 600,
    });
    const a = await obtain(port, POOL_MAC_A);
    const nak = async (buf: Buffer, why: RegExp) => {
      const ev = nextEvent(s, (e) => e.type === 'nak');
      const r = await client.exchange(buf, port);
      expect(typeOf(r)).toBe(MessageType.NAK);
      expect(r.yiaddr).toBe('0.0.0.0');
      expect(optIp(r, Opt.SERVER_ID)).toBe(SERVER);
      expect(optString(r, Opt.MESSAGE)).toMatch(why);
      expect(await ev).toMatchObject({ to: { address: '255.255.255.255', via: 'broadcast' } });
    };
    // SELECTING, our server id, but the address is leased to A.
    await nak(
      edited(udhcpcRequest.p, { mac: POOL_MAC_B, xid: ++xid, options: { [Opt.REQUESTED_IP]: a } }),
      /leased to another client/,
    );
    // INIT-REBOOT of a reserved host asking for an address other than its own.
    await nak(
      edited(udhcpcRequest.p, {
        xid: ++xid,
        options: { [Opt.SERVER_ID]: null, [Opt.REQUESTED_IP]: '10.77.0.120' },
      }),
      /reserved address is 10.77.0.111/,
    );
    // An address reserved for some other host.
    await nak(
      edited(udhcpcRequest.p, {
        mac: POOL_MAC_C,
        xid: ++xid,
        options: { [Opt.REQUESTED_IP]: '10.77.0.155' },
      }),
      /reserved for another host/,
    );
    // Another subnet (a client moved from elsewhere).
    await nak(
      edited(udhcpcRequest.p, {
        mac: POOL_MAC_C,
        xid: ++xid,
        options: { [Opt.SERVER_ID]: null, [Opt.REQUESTED_IP]: '192.168.1.5' },
      }),
      /not on this subnet/,
    );
    // RENEWING: fine while the lease runs (unicast ACK), NAK once it has expired.
    const renew = () =>
      edited(udhcpcRequest.p, {
        mac: POOL_MAC_A,
        xid: ++xid,
        ciaddr: a,
        options: { [Opt.SERVER_ID]: null, [Opt.REQUESTED_IP]: null },
      });
    expect(typeOf(await client.exchange(renew(), port))).toBe(MessageType.ACK);
    now.t += 601_000;
    const ev = nextEvent(s, (e) => e.type === 'nak');
    const r = await client.exchange(renew(), port);
    expect(optString(r, Opt.MESSAGE)).toMatch(/expired/);
    // A NAK is broadcast even when ciaddr is set: the client's address is what is in question.
    expect(await ev).toMatchObject({ to: { via: 'broadcast' } });
    expect(s.stats().naks).toBe(5);
  });

  it('DECLINE takes the address out of use for a while', async () => {
    const now = { t: Date.now() };
    const { s, port } = await start({
      now: () => now.t,
      declineHoldTime: 300,
      pool: { start: '10.77.0.150', end: '10.77.0.151' },
    });
    const a = await obtain(port, POOL_MAC_A);
    expect(a).toBe('10.77.0.150');
    const declined = nextEvent(s, (e) => e.type === 'decline');
    await client.send(
      edited(udhcpcRequest.p, {
        mac: POOL_MAC_A,
        xid: ++xid,
        type: MessageType.DECLINE,
        options: { [Opt.REQUESTED_IP]: a },
      }),
      port,
    );
    expect(await declined).toMatchObject({ ip: a, applied: true });
    expect(s.stats().declines).toBe(1);
    expect((await discover(port, POOL_MAC_A)).yiaddr).toBe('10.77.0.151');
    // .151 is now offered to A; B finds nothing, since .150 is declined.
    await expectDropped(s, port, edited(udhcpcDiscover.p, { mac: POOL_MAC_B, xid: ++xid }), 'no-address');
    now.t += 301_000;
    expect((await discover(port, POOL_MAC_B)).yiaddr).toBe('10.77.0.150');
    // A reserved address declined by its own host is still that host's.
    await client.exchange(ipxeBiosDiscover.raw, port);
    const declined2 = nextEvent(s, (e) => e.type === 'decline');
    await client.send(edited(ipxeBiosRequest.p, { xid: ++xid, type: MessageType.DECLINE }), port);
    expect(await declined2).toMatchObject({ ip: '10.77.0.111', applied: true });
    expect((await client.exchange(edited(ipxeBiosDiscover.p, { xid: ++xid }), port)).yiaddr).toBe(
      '10.77.0.111',
    );
  });

  it('RELEASE frees the address for another client; the releasing client is counted', async () => {
    const { s, port } = await start({ pool: { start: '10.77.0.150', end: '10.77.0.150' } });
    expect(await obtain(port, POOL_MAC_A)).toBe('10.77.0.150');
    await expectDropped(s, port, edited(udhcpcDiscover.p, { mac: POOL_MAC_B, xid: ++xid }), 'no-address');
    const released = nextEvent(s, (e) => e.type === 'release');
    await client.send(
      edited(dhclientRelease.p, { mac: POOL_MAC_A, xid: ++xid, ciaddr: '10.77.0.150' }),
      port,
    );
    expect(await released).toMatchObject({ applied: true });
    expect(await obtain(port, POOL_MAC_B)).toBe('10.77.0.150');
    expect(s.stats().releases).toBe(1);
  });

  it('leases survive a restart: the same MAC gets the same pool address', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'osstest-dhcp-'));
    try {
      const leaseStore = new JsonFileLeaseStore(join(dir, 'leases.json'));
      const first = await start({ leaseStore });
      expect(await obtain(first.port, POOL_MAC_A)).toBe('10.77.0.150');
      expect(await obtain(first.port, POOL_MAC_B)).toBe('10.77.0.151');
      await first.s.close();
      expect((await leaseStore.load()).map((l) => l.ip).sort()).toEqual(['10.77.0.150', '10.77.0.151']);
      const second = await start({ leaseStore });
      // A newcomer first, so that a forgetful server would hand it A's address.
      expect((await discover(second.port, POOL_MAC_C)).yiaddr).toBe('10.77.0.152');
      expect((await discover(second.port, POOL_MAC_B)).yiaddr).toBe('10.77.0.151');
      expect((await discover(second.port, POOL_MAC_A)).yiaddr).toBe('10.77.0.150');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects bad options with a message naming the option', async () => {
    await expect(start({ serverIp: '10.77.0.300' })).rejects.toThrow(
      /serverIp "10.77.0.300" is not an IPv4 address/,
    );
    await expect(start({ subnetMask: '255.0.255.0' })).rejects.toThrow(
      /subnetMask 255.0.255.0 is not contiguous/,
    );
    await expect(start({ pool: { start: '10.77.1.1', end: '10.77.1.9' } })).rejects.toThrow(
      /is not inside 10.77.0.0/,
    );
    const { port } = await start();
    await expect(start({ port })).rejects.toThrow(`cannot bind 127.0.0.1:${port}: bind EADDRINUSE`);
  });

  it('asks for the reservation on every packet (async lookups; changes apply at once; failures drop)', async () => {
    const db = new Map<string, Reservation>([[POOL_MAC_A, { ip: '10.77.0.20' }]]);
    const asked: string[] = [];
    const { s, port } = await start({
      reservations: async (mac) => {
        asked.push(mac);
        await sleep(1);
        if (mac === POOL_MAC_C) throw new Error('database is locked');
        return db.get(mac);
      },
    });
    expect((await discover(port, POOL_MAC_A)).yiaddr).toBe('10.77.0.20');
    db.set(POOL_MAC_A, { ip: '10.77.0.21', boot: { bios: 'custom.0' } });
    const offer = await discover(port, POOL_MAC_A);
    expect(offer.yiaddr).toBe('10.77.0.21');
    expect(offer.file).toBe('custom.0');
    const e = await expectDropped(
      s,
      port,
      edited(udhcpcDiscover.p, { mac: POOL_MAC_C, xid: ++xid }),
      'no-address',
    );
    expect(e).toMatchObject({ detail: 'reservation lookup failed: database is locked' });
    expect(asked).toEqual([POOL_MAC_A, POOL_MAC_A, POOL_MAC_C]);
  });
});

// --- hostile input ---------------------------------------------------------------------------------------

describe('DHCP server under garbage', () => {
  it('survives 10,000 truncated and 10,000 random packets, counts them all, then still answers', async () => {
    const { s, port } = await start();
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return (seed >> 8) % n;
    };
    const sources = [ipxeBiosDiscover, ovmfDiscover, udhcpcRequest, dhclientRelease].map((r) => r.raw);
    const packets: Buffer[] = [];
    for (let i = 0; i < 10_000; i++) {
      const src = sources[i % sources.length]!;
      // Cut inside the header, or inside the options so the last option overruns.
      const cut = i % 2 === 0 ? rnd(236) : 241 + rnd(optionsEnd(src) - 241);
      packets.push(src.subarray(0, cut));
    }
    for (let i = 0; i < 10_000; i++) {
      const len = rnd(600);
      const b = Buffer.alloc(len);
      for (let k = 0; k < len; k++) b[k] = rnd(256);
      // Half of them get a valid header and cookie, so the option parser sees the random bytes.
      if (i % 2 === 1 && len > 240) {
        b[0] = 1;
        b[2] = 6;
        b.writeUInt32BE(0x63825363, 236);
      }
      packets.push(b);
    }
    const t0 = performance.now();
    const before = s.stats().received;
    // In bursts small enough for the socket's receive buffer, so the count is exact.
    for (let i = 0; i < packets.length; i += 100) {
      await Promise.all(packets.slice(i, i + 100).map((b) => client.send(b, port)));
      while (s.stats().received - before < Math.min(i + 100, packets.length)) await sleep(1);
    }
    const st = s.stats();
    expect(st.received - before).toBe(20_000);
    expect(st.errors).toBe(0);
    expect(st.dropped.malformed).toBeGreaterThan(12_000);
    // Every packet ended somewhere: answered, or dropped with a reason.
    while (accounted(s.stats()) < s.stats().received) await sleep(5);
    expect(accounted(s.stats())).toBe(s.stats().received);
    const offer = await client.exchange(edited(ipxeBiosDiscover.p, { xid: 0xfeed }), port);
    expect(shape(offer)).toEqual({ ...shape(dnsmasqReply(bios, ipxeBiosDiscover)), xid: 0xfeed });
    expect(optString(offer, Opt.BOOTFILE)).toBe(SCRIPT);
    expect(client.garbage).toEqual([]);
    const ms = performance.now() - t0;
    process.stdout.write(
      `dhcp: 20,000 bad packets handled in ${ms.toFixed(0)} ms: ${JSON.stringify(s.stats())}\n`,
    );
    expect(ms).toBeLessThan(15_000);
  });
});
