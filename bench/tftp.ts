/**
 * bench/tftp: our TFTP server against tftpd-hpa on the same 64 MiB file, fetched by curl with
 * `--tftp-blksize 1468` (lock-step: curl has no windowsize), over loopback. Both servers run as
 * child processes (ours is this script with `--serve ROOT`), so neither shares a process with the
 * timing. Rounds alternate which server goes first; every fetch is checked byte for byte. Prints
 * per-round times and throughput, the medians, and `result: throughput_ratio=<ours / tftpd-hpa>`.
 *
 * Lock-step TFTP over loopback is a ping-pong: per block, one wake-up of each side and a few µs of
 * work. Where the scheduler puts curl decides which of those dominates, so PIN can fix it:
 *   PIN unset  the scheduler decides (the default; what the result line reports)
 *   PIN=same   servers and curl on CPU 0: pure per-packet CPU cost
 *   PIN=cross  servers on CPU 0, curl on CPU 1: wake-up latency dominates, as with a remote client
 * Needs curl (with TFTP), tftpd-hpa (/usr/sbin/in.tftpd), and taskset (util-linux) for PIN.
 * Env: ROUNDS (default 5), SIZE_MIB (default 64), PIN, TFTP_PUMP (our server's dataPump: auto, the
 * default, native or js; the header line says which one ours ended up with).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createSocket } from 'node:dgram';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type DataPump, startTftpServer } from '../src/provision/tftp/index.js';

const TFTPD = '/usr/sbin/in.tftpd';

if (process.argv[2] === '--serve') {
  // Child mode: serve ROOT on a free loopback port, say which and with what pump on stdout, run until SIGTERM.
  const dataPump = (process.env.TFTP_PUMP ?? 'auto') as DataPump; // the server rejects anything else
  const server = await startTftpServer({ root: process.argv[3]!, host: '127.0.0.1', port: 0, dataPump });
  process.stdout.write(`port ${server.address().port} pump ${server.dataPump}\n`);
  process.on('SIGTERM', () => {
    const s = server.stats();
    process.stderr.write(
      `our server: ${s.transfersCompleted} transfers, ${s.retransmissions} retransmissions, ${s.timeouts} timeouts\n`,
    );
    void server.close().then(() => process.exit(0));
  });
} else {
  await bench();
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function pinned(cpu: number | undefined, cmd: string, args: string[]): [string, string[]] {
  return cpu === undefined ? [cmd, args] : ['taskset', ['-c', String(cpu), cmd, ...args]];
}

/** Runs curl to fetch one file; resolves with the wall time in seconds, rejects with curl's stderr. */
function curlFetch(port: number, file: string, out: string, cpu?: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const curlArgs = ['-sS', '--tftp-blksize', '1468', '--max-time', '120'];
    const [cmd, args] = pinned(cpu, 'curl', [...curlArgs, `tftp://127.0.0.1:${port}/${file}`, '-o', out]);
    const c = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    c.on('error', reject);
    c.on('close', (code) => {
      const secs = (performance.now() - t0) / 1000;
      if (code === 0) resolve(secs);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.trim()}`));
    });
  });
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** A child process whose unexpected exit rejects `exited` with its stderr. */
function child(
  cmd: string,
  args: string[],
): { proc: ChildProcess; exited: Promise<never>; stderr: () => string } {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<never>((_, reject) => {
    proc.once('error', reject);
    proc.once('exit', (code, sig) => reject(new Error(`${cmd} exited ${code ?? sig}: ${err.trim()}`)));
  });
  exited.catch(() => {});
  return { proc, exited, stderr: () => err };
}

async function stop(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await gone;
}

async function bench(): Promise<void> {
  const rounds = Number(process.env.ROUNDS ?? 5);
  const sizeMiB = Number(process.env.SIZE_MIB ?? 64);
  const pin = process.env.PIN;
  if (pin !== undefined && pin !== 'same' && pin !== 'cross')
    throw new Error(`PIN=${pin}: use same or cross`);
  const serverCpu = pin ? 0 : undefined;
  const curlCpu = pin === 'same' ? 0 : pin === 'cross' ? 1 : undefined;
  for (const [what, path] of [
    ['tftpd-hpa', TFTPD],
    ['curl', '/usr/bin/curl'],
  ] as const) {
    if (!existsSync(path))
      throw new Error(`bench/tftp needs ${what} (${path}); Debian: apt-get install ${what}`);
  }

  const dir = mkdtempSync(join(tmpdir(), 'osstest-bench-tftp-'));
  const root = join(dir, 'root');
  let ours: ReturnType<typeof child> | undefined;
  let hpa: ReturnType<typeof child> | undefined;
  try {
    // in.tftpd drops to user nobody inside its chroot: the tree must be world-readable.
    chmodSync(dir, 0o755);
    mkdirSync(root, { mode: 0o755 });
    chmodSync(root, 0o755);
    const file = join(root, 'big.bin');
    const fd = openSync(file, 'w', 0o644);
    const chunk = Buffer.allocUnsafe(1 << 20);
    for (let i = 0; i < sizeMiB; i++) writeSync(fd, randomFillSync(chunk));
    closeSync(fd);
    chmodSync(file, 0o644);
    writeFileSync(join(root, 'probe'), 'ready\n', { mode: 0o644 });
    const want = sha256(file);

    const self = fileURLToPath(import.meta.url);
    ours = child(...pinned(serverCpu, process.execPath, [self, '--serve', root]));
    const [ourPort, ourPump] = await Promise.race([
      new Promise<[number, string]>((resolve) => {
        let out = '';
        ours!.proc.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /port (\d+) pump (\w+)/.exec(out);
          if (m) resolve([Number(m[1]), m[2]!]);
        });
      }),
      ours.exited,
    ]);
    const hpaPort = await freeUdpPort();
    hpa = child(...pinned(serverCpu, TFTPD, ['-L', '-s', '-a', `127.0.0.1:${hpaPort}`, root]));
    // Both answer before timing starts (in.tftpd takes a moment to bind).
    for (const [port, exited] of [
      [ourPort, ours.exited],
      [hpaPort, hpa.exited],
    ] as const) {
      for (let i = 0; ; i++) {
        try {
          await Promise.race([curlFetch(port, 'probe', join(dir, 'probe.out')), exited]);
          break;
        } catch (e) {
          if (i >= 20) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }

    const contenders = [
      { name: 'ours', port: ourPort, times: [] as number[] },
      { name: 'tftpd-hpa', port: hpaPort, times: [] as number[] },
    ];
    const out = join(dir, 'fetched.bin');
    const pinNote = pin ? `, PIN=${pin}` : '';
    console.log(
      `bench/tftp: ${sizeMiB} MiB, curl --tftp-blksize 1468, ${rounds} rounds, loopback${pinNote}, our data pump: ${ourPump}`,
    );
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? contenders : [...contenders].reverse();
      const parts: string[] = [];
      for (const c of order) {
        rmSync(out, { force: true });
        const secs = await curlFetch(c.port, 'big.bin', out, curlCpu);
        const got = sha256(out);
        if (got !== want)
          throw new Error(`round ${round}: ${c.name} served a different file (sha256 ${got})`);
        c.times.push(secs);
        parts.push(`${c.name} ${secs.toFixed(3)} s (${(sizeMiB / secs).toFixed(1)} MiB/s)`);
      }
      console.log(`round ${round}: ${parts.join(', ')}`);
    }
    const [mOurs, mHpa] = contenders.map((c) => sizeMiB / median(c.times)) as [number, number];
    console.log(`median throughput: ours ${mOurs.toFixed(1)} MiB/s, tftpd-hpa ${mHpa.toFixed(1)} MiB/s`);
    await stop(ours.proc);
    process.stdout.write(ours.stderr());
    console.log(`result: throughput_ratio=${(mOurs / mHpa).toFixed(3)}`);
  } finally {
    await stop(ours?.proc);
    await stop(hpa?.proc);
    rmSync(dir, { recursive: true, force: true });
  }
}
