/**
 * Serial consoles: file-backed following and resuming (across followers, as across testcases), a TCP
 * console server that drops the connection, the job's serial capture, and SerialMethod parsing.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  consoleFor,
  FileConsole,
  IpmiSolConsole,
  NoConsole,
  startSerialCapture,
  TcpConsole,
} from '../../src/console/index.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'osstest-console-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const until = async (cond: () => boolean, ms = 3_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('file console', () => {
  it('follows what is appended from now on, and resumes where a follower stopped', async () => {
    const f = join(dir, 'serial.log');
    writeFileSync(f, 'old boot\n');
    const c = new FileConsole(f);
    let got = '';
    const a = await c.follow((b) => {
      got += b.toString();
    });
    appendFileSync(f, 'BIOS\n');
    await until(() => got === 'BIOS\n');
    const pos = await a.stop();
    expect(pos).toMatchObject({ file: f, offset: 'old boot\nBIOS\n'.length });
    appendFileSync(f, 'printed while nobody followed\n');
    let next = '';
    const b = await c.follow((x) => {
      next += x.toString();
    }, pos);
    await until(() => next === 'printed while nobody followed\n');
    await b.stop();
  });

  it('reads a replaced or truncated file from its start', async () => {
    const f = join(dir, 'rot.log');
    writeFileSync(f, 'a long first line\n');
    let got = '';
    const fl = await new FileConsole(f).follow((b) => {
      got += b.toString();
    });
    writeFileSync(f, 'new\n');
    await until(() => got === 'new\n');
    await fl.stop();
  });
});

describe('serial capture into the job log', () => {
  it('keeps one log across captures, with nothing lost in between', async () => {
    const src = join(dir, 'vm-serial.log');
    writeFileSync(src, 'before the job\n');
    const log = join(dir, 'job', 'serial-h1.log');
    const c1 = await startSerialCapture(new FileConsole(src), log);
    appendFileSync(src, 'install\n');
    await until(() => c1.bytes === 'install\n'.length);
    await c1.stop();
    appendFileSync(src, 'between steps\n');
    const c2 = await startSerialCapture(new FileConsole(src), log);
    appendFileSync(src, 'reboot\n');
    await until(() => c2.bytes === 'between steps\nreboot\n'.length);
    await c2.stop();
    expect(readFileSync(log, 'utf8')).toBe('install\nbetween steps\nreboot\n');
  });

  it('captures nothing for none', async () => {
    const log = join(dir, 'job', 'serial-h2.log');
    const c = await startSerialCapture(new NoConsole(), log);
    await c.stop();
    expect(c.bytes).toBe(0);
  });
});

describe('tcp console (a local console server)', () => {
  let server: Server;
  let port: number;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    let n = 0;
    server = createServer((s) => {
      sockets.push(s);
      n++;
      if (n === 1) s.end('first connection\n');
      else s.write('after reconnecting\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  it('reads the console and reconnects when the server drops it', async () => {
    let got = '';
    const c = new TcpConsole('h1', `127.0.0.1:${port}`, 100);
    expect(c.describe).toBe(`tcp 127.0.0.1:${port}`);
    const f = await c.follow((b) => {
      got += b.toString();
    });
    await until(() => got === 'first connection\nafter reconnecting\n');
    expect(await f.stop()).toBeUndefined();
  });

  it('refuses a bad HOST:PORT', () => {
    expect(() => new TcpConsole('h1', 'console-server')).toThrow(
      /serial tcp of h1: SerialMethod tcp wants HOST:PORT/,
    );
    expect(() => new TcpConsole('h1', 'cs:99999')).toThrow(/HOST:PORT/);
    expect(new TcpConsole('h1', '[::1]:7001').address).toBe('::1');
  });
});

describe('SerialMethod', () => {
  const host = (v?: string) => ({
    name: 'h1',
    prop: (p: string) => (p === 'SerialMethod' ? v : p === 'IpmiPassword' ? 'pw' : undefined),
  });
  it('picks the console by name', () => {
    expect(consoleFor(host())).toBeInstanceOf(NoConsole);
    expect(consoleFor(host('none'))).toBeInstanceOf(NoConsole);
    expect(consoleFor(host('file /var/log/conserver/h1'))).toBeInstanceOf(FileConsole);
    expect(consoleFor(host('tcp cs1:7001'))).toBeInstanceOf(TcpConsole);
    expect(consoleFor(host('ipmi-sol bmc-1 admin'))).toBeInstanceOf(IpmiSolConsole);
    expect(() => consoleFor(host('qemu'))).toThrow(/SerialMethod wants: qemu VMDIR/);
    expect(() => consoleFor(host('qemu /nonexistent'))).toThrow(/is the virtual lab up/);
    expect(() => consoleFor(host('telnet x'))).toThrow(
      /unknown serial method \(known: qemu, file, tcp, ipmi-sol, none\)/,
    );
  });

  it('ipmi-sol: ipmitool arguments, password only in the environment (not run: no BMC here)', () => {
    const c = new IpmiSolConsole(host('ipmi-sol bmc-1 admin'), ['bmc-1', 'admin']);
    expect(c.command('activate')).toEqual({
      argv: ['-I', 'lanplus', '-H', 'bmc-1', '-U', 'admin', '-E', 'sol', 'activate'],
      env: { IPMI_PASSWORD: 'pw' },
    });
    expect(() => new IpmiSolConsole(host(), [])).toThrow(/ipmi-sol BMC/);
  });
});
