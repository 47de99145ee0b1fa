/**
 * The webspace over real HTTP on loopback with the real sqlite store: files only for the host's own
 * address, confinement to the host's directory, progress and fetches recorded as host events, refusals
 * counted. "Another address" is 127.0.0.2 (the request's local address is bound to it).
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/db/open.js';
import type { Store } from '../../src/db/store.js';
import {
  progressFromEvents,
  type WebspaceStats,
  webspaceRouter,
} from '../../src/provision/webspace/index.js';
import { startWebspaceServer, type WebspaceServer } from '../../src/provision/webspace/server.js';

let dir: string;
let store: Store;
let server: WebspaceServer;
let stats: WebspaceStats;

function get(path: string, from = '127.0.0.1'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, localAddress: from }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'osstest-webspace-'));
  store = await openStore({ kind: 'sqlite', path: join(dir, 'db.sqlite') });
  await store.upsertHost({ name: 'h1', ip: '127.0.0.1', mac: '52:54:00:00:00:01' });
  await store.upsertHost({ name: 'h2', ip: '10.215.0.11' });
  await store.upsertHost({ name: 'h3' });
  const root = join(dir, 'web');
  mkdirSync(join(root, 'h1'), { recursive: true });
  writeFileSync(join(root, 'h1', 'boot.ipxe'), '#!ipxe\nboot\n');
  writeFileSync(join(dir, 'secret'), 'not for hosts');
  symlinkSync(join(dir, 'secret'), join(root, 'h1', 'escape'));
  const ws = webspaceRouter({
    root,
    lookupHost: async (name) => {
      const h = await store.getHost(name);
      return h && { name: h.name, ip: h.ip };
    },
    record: async (host, ev) => {
      await store.recordHostEvent(host, ev);
    },
  });
  stats = ws.stats;
  server = await startWebspaceServer({ host: '127.0.0.1', port: 0, router: ws.router });
});

afterAll(async () => {
  await server?.close();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

const events = async (host: string) => (await store.listHostEvents(host)).map((e) => `${e.kind} ${e.detail}`);

describe('webspace', () => {
  it("serves a host's file to the host's address and records the fetch", async () => {
    expect(await get('/host/h1/boot.ipxe')).toEqual({ status: 200, body: '#!ipxe\nboot\n' });
    await new Promise((r) => setTimeout(r, 50));
    expect((await events('h1')).at(-1)).toMatch(/^fetch http boot\.ipxe 12 bytes \d+ ms$/);
  });

  it('records progress the host reports', async () => {
    expect(await get('/host/h1/progress/ssh-ready')).toEqual({ status: 200, body: 'ok\n' });
    expect((await events('h1')).at(-1)).toBe('progress ssh-ready');
  });

  it('refuses, counts and records a request from another address', async () => {
    const before = stats.refused;
    expect((await get('/host/h1/boot.ipxe', '127.0.0.2')).status).toBe(403);
    expect((await get('/host/h1/progress/booted', '127.0.0.2')).status).toBe(403);
    expect((await get('/host/h3/progress/booted')).status).toBe(403);
    expect(stats.refused).toBe(before + 3);
    expect((await events('h1')).slice(-2)).toEqual([
      'refused fetch boot.ipxe from 127.0.0.2',
      'refused progress booted from 127.0.0.2',
    ]);
    expect(await events('h3')).toEqual(['refused progress booted from 127.0.0.1']);
  });

  it('serves nothing outside the host directory', async () => {
    for (const p of [
      '/host/h1/escape',
      '/host/h1/..%2Fsecret',
      '/host/h1/%2E%2E',
      '/host/h1/.hidden',
      '/host/h1/nope',
    ]) {
      const r = await get(p);
      expect(r.status, p).toBe(404);
      expect(r.body).not.toContain('not for hosts');
    }
    expect((await get('/host/h1/../secret')).status).toBe(404);
    expect((await get('/host/ghost/boot.ipxe')).status).toBe(404);
    expect((await get('/host/h1/progress/BAD_EVENT')).status).toBe(404);
    expect(stats.notFound).toBeGreaterThanOrEqual(7);
  });

  it("tells a host's progress from its events", async () => {
    const p = progressFromEvents(store);
    expect(await p.progress('h1')).toBe('ssh-ready');
    await store.recordHostEvent('h2', { kind: 'fetch', detail: 'http vmlinuz 8247232 bytes 12 ms' });
    expect(await p.progress('h2')).toBe('fetched vmlinuz');
    expect(await p.progress('ghost')).toBeUndefined();
  });
});
