/**
 * Two network namespaces joined by one veth pair, for tests of a server in one namespace and a real
 * client (udhcpc, curl) in the other: nothing they send can leave the pair.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export async function ip(...args: string[]): Promise<void> {
  await run('ip', args);
}

export interface VethPair {
  serverNs: string;
  clientNs: string;
  serverIf: string;
  clientIf: string;
  /** The client interface's MAC, which the servers' reservations are keyed by. */
  clientMac: string;
  /** The server side's address, a /24. */
  serverIp: string;
}

/** Makes both namespaces and the pair, addresses the server side, and brings every link up. */
export async function createVethPair(p: VethPair): Promise<void> {
  await ip('netns', 'add', p.serverNs);
  await ip('netns', 'add', p.clientNs);
  await ip(
    'link',
    'add',
    p.serverIf,
    'netns',
    p.serverNs,
    'type',
    'veth',
    'peer',
    'name',
    p.clientIf,
    'netns',
    p.clientNs,
  );
  await ip('-n', p.clientNs, 'link', 'set', p.clientIf, 'address', p.clientMac);
  await ip('-n', p.serverNs, 'addr', 'add', `${p.serverIp}/24`, 'dev', p.serverIf);
  for (const [ns, dev] of [
    [p.serverNs, p.serverIf],
    [p.clientNs, p.clientIf],
    [p.serverNs, 'lo'],
    [p.clientNs, 'lo'],
  ] as const) {
    await ip('-n', ns, 'link', 'set', dev, 'up');
  }
}

/** Fetches `url` with curl run inside `ns` (a real TFTP/HTTP client) into `out`; rejects if curl fails. */
export async function curlInNs(ns: string, url: string, out: string, maxTimeS: number): Promise<void> {
  await run('ip', ['netns', 'exec', ns, 'curl', '-sS', '--max-time', String(maxTimeS), '-o', out, url]);
}
