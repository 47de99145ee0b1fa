/**
 * bench/boot: one QEMU host network-booted from power-on to ssh answering, with our boot services
 * (DHCP hands the VM's iPXE ROM a script URL; the script, kernel and initrds come over HTTP) against
 * dnsmasq + pxelinux (DHCP hands iPXE pxelinux.0; pxelinux fetches the same kernel and initrds over
 * TFTP), alternating, several runs each. Prints per-run times with a breakdown taken from the serial
 * console, the medians, and `result: ratio=<ours / dnsmasq>` (median power-on→ssh times).
 *
 * Set-up, with the product's own code: a virtual lab (`labUp`) with its own namespace `ot-bbench`,
 * subnet 10.216.0.0/24 and link 10.216.255.0/30 under /tmp/ot-bbench, one QEMU host and no build host;
 * the ramdisk install method's files for that host (`prepareRamdisk`: Debian's kernel from
 * `osstest images update`, the shared busybox+dropbear initramfs and the host's overlay with its ssh
 * host key). The baseline's TFTP root gets copies of the same three files and a pxelinux.cfg with the
 * kernel command line of the iPXE script, so both ways boot the very same bytes to the same point.
 *
 * Per run only one contender serves the bridge: ours is the lab's services process (`services-main`,
 * which also runs radvd), the baseline is `dnsmasq` (DHCP reservation for the VM's MAC, `enable-tftp`)
 * plus radvd with the same configuration, so iPXE's wait for an IPv6 router advertisement is the same
 * both ways. Each run: start the contender, power the VM on (QEMU start is t=0), probe port 22 until
 * dropbear's `SSH-2.0` banner arrives (the time measured), then check with a real ssh session pinned
 * to the host key that the host booted what it should, power off, stop the contender.
 *
 * Needs root, QEMU (qemu-system-x86, ipxe-qemu), dnsmasq (Debian dnsmasq-base), radvd, pxelinux +
 * syslinux-common, busybox-static, dropbear-bin, and the kernel from `osstest images update` (run here;
 * apt fetches it once into IMAGES). Everything it starts is stopped and removed at the end, also on
 * failure or SIGINT/SIGTERM; `--cleanup` removes the leftovers of a bench that was killed outright.
 * Env: RUNS (per contender, default 3), IMAGES (default /var/tmp/osstest-e2e-images, shared with the
 * virtual-lab e2e test), ACCEL (tcg or kvm, default tcg), NIC (virtio or e1000, default virtio; see
 * below), KEEP=1 keeps /tmp/ot-bbench (logs, serial
 * console of every run).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { Config } from '../src/config/config.js';
import { openConfiguredStore } from '../src/db/from-config.js';
import type { Store } from '../src/db/store.js';
import { distRoot } from '../src/executor/paths.js';
import { labDown, labUp, requireRoot } from '../src/lab/lab.js';
import { type LabPlan, labPlan } from '../src/lab/plan.js';
import { QemuPower } from '../src/power/qemu.js';
import { findKernelImage, updateKernelImage } from '../src/provision/images/kernel.js';
import { prepareRamdisk } from '../src/provision/install/host-install.js';
import { ipxeScriptPath, pxeSettings } from '../src/provision/pxe/index.js';
import { ensureKeyPair } from '../src/remote/keys.js';
import { RemoteSession } from '../src/remote/session.js';
import { DbHostKeyStore } from '../src/testcase/hosts.js';

/**
 * The test host's NIC, the same for both sides: virtio by default (the virtual lab's paravirtual NIC,
 * which the image install method needs anyway); NIC=e1000 for QEMU's emulated Intel card, whose
 * receive path holds packets for about a second after iPXE and the kernel set it up.
 */
const NIC = process.env.NIC ?? 'virtio';
const HELP = `usage: bench/boot [--help] [--cleanup]

Network boot of one QEMU host from power-on to ssh answering: our boot services (iPXE, HTTP) against
dnsmasq + pxelinux over TFTP, alternating. Ends with \`result: ratio=<ours / dnsmasq>\` (medians).
Needs root. Works in /tmp/ot-bbench (namespace ot-bbench, 10.216.0.0/24) and removes it at the end.

  --cleanup   only remove what a killed bench left behind (VM, services, dnsmasq, namespace)
Env: RUNS (per contender, default 3), IMAGES (kernel cache, default /var/tmp/osstest-e2e-images),
     ACCEL (tcg|kvm, default tcg), KEEP=1 (keep /tmp/ot-bbench: logs and serial consoles)
`;

const DIR = '/tmp/ot-bbench';
const NS = 'ot-bbench';
const HOST = 'bb-q0';
const DNSMASQ = '/usr/sbin/dnsmasq';
const RADVD = '/usr/sbin/radvd';
const PXELINUX = ['/usr/lib/PXELINUX/pxelinux.0', '/usr/lib/syslinux/modules/bios/ldlinux.c32'];
const RUN_TIMEOUT_MS = 300_000;

const log = (line: string) => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function writeConfig(): string {
  mkdirSync(DIR, { recursive: true, mode: 0o755 });
  chmodSync(DIR, 0o755);
  const file = join(DIR, 'config');
  const accel = process.env.ACCEL ?? 'tcg';
  if (NIC !== 'virtio' && NIC !== 'e1000') throw new Error(`NIC=${NIC}: virtio or e1000`);
  if (accel !== 'tcg' && accel !== 'kvm') throw new Error(`ACCEL=${accel}: use tcg or kvm`);
  writeFileSync(
    file,
    [
      '# bench/boot: its own lab, apart from any other on this machine',
      `StandaloneDb ${join(DIR, 'standalone.db')}`,
      `Logs ${join(DIR, 'logs')}`,
      `Stash ${join(DIR, 'logs')}`,
      `TestHostKeypairPath ${join(DIR, 'keys', 'id_ed25519')}`,
      `Images ${process.env.IMAGES || '/var/tmp/osstest-e2e-images'}`,
      `LabNamespace ${NS}`,
      'LabSubnet 10.216.0.0/24',
      'LabLinkNet 10.216.255.0/30',
      `LabDir ${join(DIR, 'lab')}`,
      'LabQemuHosts 1',
      'LabBuildHosts 0',
      'LabHostPrefix bb',
      `LabQemuAccel ${accel}`,
      `LabQemuNic ${NIC}`,
      '# ours is our own DHCP and TFTP servers, whatever a site config says',
      'BootServices builtin',
      `TftpPath ${join(DIR, 'tftp')}`,
      `WebspaceDir ${join(DIR, 'webspace')}`,
      '',
    ].join('\n'),
  );
  return file;
}

/** A process started in the lab namespace (`ip netns exec` execs in place: the pid is the program's). */
function inNamespace(argv: string[], logFile: string, env?: NodeJS.ProcessEnv): ChildProcess {
  const out = openSync(logFile, 'a');
  try {
    const child = spawn('ip', ['netns', 'exec', NS, ...argv], {
      stdio: ['ignore', out, out],
      env: env ?? process.env,
    });
    child.on('error', (e) => appendFileSync(logFile, `spawn ${argv[0]}: ${e.message}\n`));
    return child;
  } finally {
    closeSync(out);
  }
}

async function stopChild(c: ChildProcess | undefined): Promise<void> {
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const gone = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), 5_000);
  await gone;
  clearTimeout(t);
}

function tail(file: string, n = 15): string {
  return existsSync(file)
    ? readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n')
    : '(no log)';
}

/** Polls until `ready()` or the child exits or 30 s pass; throws with the log's tail unless ready. */
async function waitReady(what: string, c: ChildProcess, logFile: string, ready: () => boolean) {
  for (let i = 0; i < 300; i++) {
    if (ready()) return;
    if (c.exitCode !== null || c.signalCode !== null) break;
    await sleep(100);
  }
  throw new Error(`${what} did not come up; ${logFile}:\n${tail(logFile)}`);
}

interface Contender {
  name: 'ours' | 'dnsmasq';
  start(): Promise<ChildProcess[]>;
  /** A marker of its boot path in the serial console, and one of the other's. */
  mustSee: RegExp;
  mustNotSee: RegExp;
  times: number[];
  phases: Record<string, number>[];
}

/** Our boot services as `lab up` runs them: services-main.js in the namespace (it starts radvd). */
function ours(plan: LabPlan, configFile: string): Contender {
  return {
    name: 'ours',
    mustSee: /boot\.ipxe/,
    mustNotSee: /PXELINUX/,
    times: [],
    phases: [],
    start: async () => {
      const main = join(distRoot, 'src', 'lab', 'services-main.js');
      rmSync(plan.servicesFile, { force: true });
      const c = inNamespace([process.execPath, main], plan.servicesLog, {
        ...process.env,
        OSSTEST_CONFIG: configFile,
      });
      await waitReady('our boot services', c, plan.servicesLog, () => {
        try {
          return (JSON.parse(readFileSync(plan.servicesFile, 'utf8')) as { pid: number }).pid === c.pid;
        } catch {
          return false;
        }
      });
      return [c];
    },
  };
}

/** dnsmasq with a config of its own (DHCP reservation, TFTP, pxelinux.0), plus the same radvd as ours. */
function baseline(plan: LabPlan, mac: string, ip: string, cmdline: string, web: string): Contender {
  const dir = join(DIR, 'dnsmasq');
  const root = join(dir, 'tftp');
  mkdirSync(join(root, 'pxelinux.cfg'), { recursive: true, mode: 0o755 });
  for (const d of [dir, root, join(root, 'pxelinux.cfg')]) chmodSync(d, 0o755);
  // dnsmasq serves TFTP as user nobody: world-readable copies, not the webspace's own files.
  const put = (src: string, name: string) => {
    copyFileSync(src, join(root, name));
    chmodSync(join(root, name), 0o644);
  };
  for (const f of PXELINUX) put(f, f.slice(f.lastIndexOf('/') + 1));
  for (const f of ['vmlinuz', 'ramdisk.cpio.gz', 'host.cpio.gz']) put(join(web, f), f);
  const cfg = join(root, 'pxelinux.cfg', `01-${mac.toLowerCase().replace(/:/g, '-')}`);
  writeFileSync(
    cfg,
    [
      '# written by bench/boot: the kernel, initrds and command line of the iPXE script, over TFTP',
      'SERIAL 0 115200',
      'DEFAULT osstest',
      'PROMPT 0',
      'TIMEOUT 0',
      'LABEL osstest',
      '  KERNEL vmlinuz',
      '  INITRD ramdisk.cpio.gz,host.cpio.gz',
      `  APPEND ${cmdline}`,
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  const conf = join(dir, 'dnsmasq.conf');
  writeFileSync(
    conf,
    [
      '# written by bench/boot: DHCP for one reserved MAC, TFTP with pxelinux, no DNS',
      'port=0',
      `interface=${plan.bridge}`,
      'bind-interfaces',
      'user=nobody',
      `dhcp-range=${plan.serverIp.replace(/\.\d+$/, '.0')},static,${plan.netmask}`,
      `dhcp-host=${mac},${ip},${HOST}`,
      `dhcp-option=option:router,${plan.serverIp}`,
      `dhcp-leasefile=${join(dir, 'leases')}`,
      'dhcp-authoritative',
      `dhcp-boot=pxelinux.0,,${plan.serverIp}`,
      'enable-tftp',
      `tftp-root=${root}`,
      'log-dhcp',
      '',
    ].join('\n'),
  );
  const radvdConf = join(dir, 'radvd.conf');
  writeFileSync(
    radvdConf,
    [
      '# written by bench/boot: the same advertisement as the lab services send (no prefix, no route)',
      `interface ${plan.bridge} {`,
      '  AdvSendAdvert on;',
      '  AdvDefaultLifetime 0;',
      '  MinRtrAdvInterval 30;',
      '  MaxRtrAdvInterval 100;',
      '};',
      '',
    ].join('\n'),
  );
  const logFile = join(dir, 'dnsmasq.log');
  return {
    name: 'dnsmasq',
    mustSee: /PXELINUX/,
    mustNotSee: /boot\.ipxe/,
    times: [],
    phases: [],
    start: async () => {
      const from = existsSync(logFile) ? statSync(logFile).size : 0;
      const d = inNamespace(
        [DNSMASQ, '--keep-in-foreground', `--conf-file=${conf}`, '--log-facility=-'],
        logFile,
      );
      const started = () => {
        const s = readFileSync(logFile, 'utf8').slice(from);
        return /TFTP root is/.test(s) && /DHCP, static leases only/.test(s);
      };
      try {
        await waitReady('dnsmasq', d, logFile, started);
      } catch (err) {
        await stopChild(d);
        throw err;
      }
      const r = inNamespace(
        [RADVD, '-n', '-C', radvdConf, '-p', join(dir, 'radvd.pid'), '-m', 'stderr'],
        join(dir, 'radvd.log'),
      );
      // radvd has nothing to wait for: it answers solicitations once it runs; give it a moment.
      await sleep(500);
      if (r.exitCode !== null) {
        await stopChild(d);
        throw new Error(`radvd exited: ${tail(join(dir, 'radvd.log'))}`);
      }
      return [d, r];
    },
  };
}

/** Set by SIGINT/SIGTERM: the run in progress stops waiting, and the bench cleans up. */
const interrupt = new AbortController();

/**
 * Resolves with the times the first TCP connection to ip:22 was accepted and dropbear's banner was
 * first read on one. A new probe every 100 ms.
 */
function waitForBanner(ip: string, timeoutMs: number): Promise<{ tcp: number; banner: number }> {
  return new Promise((resolve, reject) => {
    const live = new Set<Socket>();
    let done = false;
    let tcp: number | undefined;
    const finish = (err?: Error, t?: number) => {
      if (done) return;
      done = true;
      clearInterval(tick);
      clearTimeout(limit);
      interrupt.signal.removeEventListener('abort', onAbort);
      for (const s of live) s.destroy();
      if (err) reject(err);
      else resolve({ tcp: tcp ?? t!, banner: t! });
    };
    const onAbort = () => finish(new Error('interrupted'));
    interrupt.signal.addEventListener('abort', onAbort);
    const probe = () => {
      // A host not up yet leaves connects waiting on ARP for ~3 s: several are in flight at once.
      if (live.size >= 40) return;
      const s = connect({ host: ip, port: 22 });
      live.add(s);
      let got = '';
      s.setTimeout(3_000, () => s.destroy());
      s.on('connect', () => {
        tcp ??= performance.now();
      });
      s.on('data', (d: Buffer) => {
        got += d.toString('latin1');
        if (got.startsWith('SSH-')) finish(undefined, performance.now());
      });
      s.on('error', () => {});
      s.on('close', () => live.delete(s));
    };
    const tick = setInterval(probe, 100);
    const limit = setTimeout(
      () => finish(new Error(`no ssh banner from ${ip} within ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
    if (interrupt.signal.aborted) return onAbort();
    probe();
  });
}

/** Follows the VM's serial log from `offset`, noting when each marker first appears. */
class SerialWatch {
  text = '';
  readonly seen = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;
  private offset: number;
  private readonly stamped: string[] = [];
  constructor(
    private readonly file: string,
    private readonly t0: number,
    private readonly markers: Array<[string, RegExp]>,
  ) {
    this.offset = statSync(file).size;
    this.timer = setInterval(() => this.poll(), 25);
  }

  poll(): void {
    const fd = openSync(this.file, 'r');
    try {
      const buf = Buffer.alloc(1 << 16);
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, this.offset);
        if (n <= 0) break;
        this.offset += n;
        const chunk = buf.subarray(0, n).toString('latin1');
        this.text += chunk;
        const t = performance.now();
        this.stamped.push(`[+${((t - this.t0) / 1000).toFixed(3)}] ${JSON.stringify(chunk)}`);
        for (const [name, re] of this.markers)
          if (!this.seen.has(name) && re.test(this.text)) this.seen.set(name, t);
      }
    } finally {
      closeSync(fd);
    }
  }

  stop(): string {
    clearInterval(this.timer);
    this.poll();
    return `${this.stamped.join('\n')}\n`;
  }
}

/**
 * What the console shows on the way: the iPXE ROM starts; its DHCP is answered (iPXE prints the
 * address it got); the loader has all three files (the second initrd is the last thing fetched);
 * the kernel has booted to the ramdisk's rcS; rcS has its own DHCP lease; dropbear listens.
 */
const MARKERS: Array<[string, RegExp]> = [
  ['ipxe', /iPXE/],
  ['dhcp', /net0: 10\.216\.0\.\d+\/|Configuring \(net0[^\n]*ok/],
  ['loaded', /host\.cpio\.gz[^\n]*ok/],
  ['kernel', /osstest-ramdisk: host /],
  ['lease', /osstest-ramdisk: network up/],
  ['dropbear', /osstest-ramdisk: dropbear listening/],
];
const PHASES: Array<[string, string | undefined, string]> = [
  ['firmware', undefined, 'ipxe'],
  ['dhcp', 'ipxe', 'dhcp'],
  ['fetch', 'dhcp', 'loaded'],
  ['kernel', 'loaded', 'kernel'],
  ['userspace', 'kernel', 'dropbear'],
];

async function oneRun(
  c: Contender,
  run: number,
  o: { plan: LabPlan; power: QemuPower; serialLog: string; ip: string; store: Store; key: Buffer },
): Promise<string> {
  const procs = await c.start();
  try {
    await sleep(1_000); // settled: nothing the contender does at start-up overlaps the boot
    const t0 = performance.now();
    const watch = new SerialWatch(o.serialLog, t0, MARKERS);
    let tSsh: number;
    let tTcp: number;
    try {
      await o.power.set('on');
      ({ banner: tSsh, tcp: tTcp } = await waitForBanner(o.ip, RUN_TIMEOUT_MS));
    } finally {
      writeFileSync(join(DIR, `run-${run}-${c.name}.serial.log`), watch.stop());
    }
    const secs = (tSsh - t0) / 1000;
    // A real ssh session, pinned to this install's host key: the host booted the ramdisk it was given.
    const s = await RemoteSession.connect({
      host: HOST,
      address: o.ip,
      privateKey: o.key,
      hostKeys: new DbHostKeyStore(o.store),
    });
    let check: string;
    try {
      check = (await s.exec('cat /run/osstest-boot-complete /proc/cmdline', { timeoutMs: 30_000 })).stdout;
    } finally {
      await s.close();
    }
    if (!check.includes(`osstest.host=${HOST}`))
      throw new Error(`run ${run} (${c.name}): /proc/cmdline is not ours: ${check}`);
    if (!c.mustSee.test(watch.text) || c.mustNotSee.test(watch.text))
      throw new Error(
        `run ${run} (${c.name}): the console does not show the expected boot path (${c.mustSee}); see ${DIR}`,
      );
    const at = (m: string | undefined) => (m === undefined ? t0 : watch.seen.get(m));
    const phases: Record<string, number> = {};
    for (const [name, from, to] of PHASES) {
      const a = at(from);
      const b = at(to);
      if (a !== undefined && b !== undefined) phases[name] = (b - a) / 1000;
    }
    const last = watch.seen.get('dropbear');
    if (last !== undefined) phases.reach = (tTcp - last) / 1000;
    phases.banner = (tSsh - tTcp) / 1000;
    c.times.push(secs);
    c.phases.push(phases);
    const parts = Object.entries(phases).map(([k, v]) => `${k} ${v.toFixed(1)}`);
    return `${c.name} ${secs.toFixed(1)} s (${parts.join(', ')})`;
  } finally {
    await o.power.set('off');
    for (const p of procs.reverse()) await stopChild(p);
  }
}

async function cleanup(configFile: string): Promise<void> {
  const config = Config.fromFiles([configFile], { cwd: DIR });
  const store = existsSync(config.path('StandaloneDb')) ? await openConfiguredStore(config) : undefined;
  try {
    await labDown(config, store, (l) => log(`cleanup: ${l}`));
  } finally {
    await store?.close();
  }
}

async function bench(): Promise<void> {
  const runs = Number(process.env.RUNS ?? 3);
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) throw new Error(`RUNS=${process.env.RUNS}: 1 to 20`);
  requireRoot('up (bench/boot)');
  const missing = [
    [DNSMASQ, 'dnsmasq-base'],
    [RADVD, 'radvd'],
  ].filter(([f]) => !existsSync(f!));
  if (missing.length > 0)
    throw new Error(`bench/boot needs ${missing.map(([f, p]) => `${f} (Debian: ${p})`).join(', ')}`);

  // Whatever an earlier, killed bench left.
  if (existsSync(join(DIR, 'config'))) await cleanup(join(DIR, 'config'));
  rmSync(DIR, { recursive: true, force: true });
  const configFile = writeConfig();
  const config = Config.fromFiles([configFile], { cwd: DIR });
  const plan = labPlan(config);
  const imagesDir = config.path('Images');
  const kernel = await updateKernelImage({ imagesDir, progress: (l) => log(`images: ${l}`) }).catch((err) => {
    // No mirror reachable: a kernel fetched before will do.
    log(`images update failed (${(err as Error).message}); using what ${imagesDir} has`);
    return findKernelImage(imagesDir);
  });

  const store = await openConfiguredStore(config);
  let interrupted: string | undefined;
  const onSignal = (sig: string) => {
    interrupted = sig;
    interrupt.abort();
    log(`${sig}: stopping after cleanup`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let failed = false;
  try {
    const state = await labUp(config, store, (l) => log(`lab: ${l}`));
    // The lab's own services process is replaced by one per run (see `ours`).
    if (state.services) {
      try {
        process.kill(state.services.pid, 'SIGTERM');
      } catch {
        // Gone already.
      }
      for (let i = 0; i < 50 && existsSync(`/proc/${state.services.pid}`); i++) await sleep(100);
    }
    const h = plan.qemuHosts[0]!;
    ensureKeyPair(config.path('TestHostKeypairPath'), 'osstest');
    const dbHost = (await store.getHost(HOST))!;
    const prepared = await prepareRamdisk(
      {
        config,
        store,
        host: {
          name: HOST,
          mac: h.mac,
          ip: h.ip,
          prop: (p) => config.hostProp(HOST, p, dbHost.props),
        },
        jobLogDir: join(DIR, 'logs'),
        sshTarget: () => {
          throw new Error('not used');
        },
        log: (l) => log(`prepare: ${l}`),
        webspaceUrl: plan.webspaceUrl,
      },
      pxeSettings(config),
    );
    await store.setHostProp(HOST, 'SshHostKey', prepared.hostPublicKey);
    const script = readFileSync(ipxeScriptPath(pxeSettings(config), HOST), 'utf8');
    const kline = /^kernel\s+\S+\s+(.*)$/m.exec(script);
    if (!kline) throw new Error(`no kernel line in the iPXE script:\n${script}`);
    const cmdline = kline[1]!.trim();

    const contenders = [
      ours(plan, configFile),
      baseline(plan, h.mac, h.ip, cmdline, join(config.path('WebspaceDir'), HOST)),
    ];
    const o = {
      plan,
      power: new QemuPower(HOST, h.vmDir),
      serialLog: join(h.vmDir, 'serial.log'),
      ip: h.ip,
      store,
      key: readFileSync(config.path('TestHostKeypairPath')),
    };
    log(
      `bench/boot: ${HOST} (${plan.qemu.accel}, ${plan.qemu.memoryMb} MB, ${plan.qemu.nic}/iPXE ROM), kernel ${kernel.release}, ` +
        `${runs} runs each, alternating; times from QEMU start to the ssh banner, s`,
    );
    log(
      "phases: firmware (to iPXE), dhcp (iPXE's), fetch (script/loader, kernel, initrds), kernel (to rcS), userspace (to dropbear), reach (a TCP connection to port 22 accepted), banner (dropbear's banner read)",
    );
    for (let run = 1; run <= runs && !interrupted; run++) {
      const order = run % 2 === 1 ? contenders : [...contenders].reverse();
      const parts: string[] = [];
      for (const c of order) {
        if (interrupted) break;
        parts.push(await oneRun(c, run, o));
      }
      log(`run ${run}: ${parts.join('; ')}`);
    }
    if (interrupted) throw new Error(`interrupted (${interrupted})`);
    for (const c of contenders) {
      const ph = PHASES.map(([n]) => n).concat('reach', 'banner');
      const meds = ph
        .filter((n) => c.phases.every((p) => p[n] !== undefined))
        .map((n) => `${n} ${median(c.phases.map((p) => p[n]!)).toFixed(1)}`);
      log(`median ${c.name}: ${median(c.times).toFixed(1)} s (${meds.join(', ')})`);
    }
    const [a, b] = contenders.map((c) => median(c.times)) as [number, number];
    log(`result: ratio=${(a / b).toFixed(3)}`);
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    await store.close();
    await cleanup(configFile);
    await rmWork(failed);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function rmWork(failed: boolean): Promise<void> {
  if (process.env.KEEP === '1' || failed) {
    log(`kept ${DIR} (logs, serial consoles of each run)${failed ? ' for the failure' : ''}`);
    return;
  }
  rmSync(DIR, { recursive: true, force: true });
}

const arg = process.argv[2];
if (arg === '--help' || arg === '-h') {
  process.stdout.write(HELP);
} else if (arg === '--cleanup') {
  requireRoot('down (bench/boot --cleanup)');
  if (existsSync(join(DIR, 'config'))) await cleanup(join(DIR, 'config'));
  rmSync(DIR, { recursive: true, force: true });
  log('cleanup: done');
} else if (arg !== undefined) {
  process.stderr.write(`bench/boot: unknown argument ${arg}\n${HELP}`);
  process.exit(2);
} else {
  try {
    await bench();
  } catch (err) {
    process.stderr.write(`bench/boot: ${(err as Error).message}\n`);
    process.exitCode = 1;
  }
}
