/**
 * Bringing a host from whatever state it is in to a fresh install answering ssh, and rebooting or
 * power-cycling it afterwards: the logic behind ts-host-install, ts-host-reboot and ts-host-powercycle.
 *
 * Install: power off → prepare the install method's files and the host's boot config → power on →
 * wait, with deadlines, on the host's events (DHCP, boot files fetched, progress it reports from the
 * installed system) → ssh, pinned to the host key the install gave the host. The serial console is
 * captured into the job's logs throughout, and every event is logged as it arrives.
 */
import { appendFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Config } from '../../config/config.js';
import { serialLogPath } from '../../console/capture.js';
import { consoleFor, type SerialCapture, startSerialCapture } from '../../console/index.js';
import type { Store } from '../../db/store.js';
import type { HostEvent } from '../../db/types.js';
import { type PowerDriver, powerFor } from '../../power/index.js';
import { publicKeyOf } from '../../remote/keys.js';
import { type RemoteSession, type SshTarget, waitForSsh } from '../../remote/session.js';
import { findKernelImage } from '../images/kernel.js';
import { bootLoaderOf, type PxeSettings, pxeSettings, writeNetboot } from '../pxe/index.js';
import { debianInstallerDriver } from './debian-installer.js';
import { publish, writeFileAtomic } from './files.js';
import { imageDriver } from './image.js';
import { InstallError } from './install-error.js';
import { buildRamdisk, DEFAULT_MODULES, hostOverlay, makeDropbearHostKey } from './ramdisk.js';

export interface ProvisionHost {
  name: string;
  mac: string | null;
  ip: string | null;
  /** Effective property (config over host database). */
  prop(name: string): string | undefined;
}

export interface ProvisionContext {
  config: Config;
  store: Store;
  host: ProvisionHost;
  /** `<Logs>/<flight>/<job>`: the serial log and the host's event log go here. */
  jobLogDir: string;
  /** The ssh target of the host (host keys pinned through the store). */
  sshTarget(): SshTarget;
  log(line: string): void;
  /** WebspaceUrl (ends in /). */
  webspaceUrl: string;
}

export const INSTALL_METHODS = ['ramdisk', 'image', 'debian-installer'] as const;

export { InstallError, publish, writeFileAtomic };

export interface PreparedBoot {
  purpose: string;
  /** Host events that mean "the install has begun" (its kernel was fetched). */
  kernelFile: string;
  hostPublicKey: string;
}

/**
 * Ramdisk install: the shared image (cached), a fresh per-host overlay and host key, the kernel, all
 * published to the host's webspace and TFTP directories, and the boot configs pointing at them.
 */
export async function prepareRamdisk(
  ctx: ProvisionContext,
  pxe: PxeSettings,
  extras: RamdiskExtras = {},
): Promise<PreparedBoot> {
  const { config, host } = ctx;
  if (!host.mac || !host.ip) {
    throw new InstallError(
      `host ${host.name}: a network-booted install needs its MAC and IP in the host database`,
    );
  }
  const imagesDir = config.path('Images');
  const kernel = findKernelImage(imagesDir, 'amd64');
  const modules = (host.prop('RamdiskModules') ?? DEFAULT_MODULES.join(' '))
    .split(/[\s,]+/)
    .filter((m) => m)
    .concat(extras.modules ?? []);
  const base = await buildRamdisk(imagesDir, { kernel, modules });
  ctx.log(
    `ramdisk: ${base.cached ? 'cached' : 'built'} ${base.path} (${(base.bytes / 1e6).toFixed(1)} MB, modules ${base.modules.join(' ')}); kernel ${kernel.release} from ${kernel.package} ${kernel.version}`,
  );
  const key = await makeDropbearHostKey(host.name, join(imagesDir, 'ramdisk', '.keys'));
  const keyPath = config.path('TestHostKeypairPath');
  const authorized = publicKeyOf(readFileSync(keyPath), keyPath);
  const overlay = hostOverlay({
    host: host.name,
    mac: host.mac,
    progressUrl: `${ctx.webspaceUrl}host/${host.name}/progress`,
    authorizedKeys: authorized,
    hostKey: key,
  });
  const web = join(pxe.webspaceDir, host.name);
  const tftpRel = join('hosts', host.name);
  const tftp = join(pxe.tftpRoot, tftpRel);
  mkdirSync(web, { recursive: true, mode: 0o755 });
  if (bootLoaderOf(host.prop, host.name) === 'pxelinux') mkdirSync(tftp, { recursive: true, mode: 0o755 });
  publish(kernel.vmlinuz, join(web, 'vmlinuz'));
  publish(base.path, join(web, 'ramdisk.cpio.gz'));
  writeFileAtomic(join(web, 'host.cpio.gz'), overlay);
  for (const x of extras.initrds ?? []) publish(x.path, join(web, x.name));
  // The overlay holds the host's private key. The webspace hands files only to the host's own
  // address; TFTP cannot tell hosts apart, so the files go there only for hosts that boot by pxelinux.
  const extra = (extras.initrds ?? []).map((x) => x.name);
  const files = ['vmlinuz', 'ramdisk.cpio.gz', 'host.cpio.gz', ...extra];
  if (bootLoaderOf(host.prop, host.name) === 'pxelinux') {
    for (const f of files) publish(join(web, f), join(tftp, f));
  } else {
    rmSync(tftp, { recursive: true, force: true });
  }
  const file = (name: string) => ({
    tftpPath: join(tftpRel, name),
    url: `${ctx.webspaceUrl}host/${host.name}/${name}`,
  });
  const purpose = `osstest ramdisk (${kernel.release})`;
  const written = writeNetboot(pxe, host, {
    purpose,
    kernel: file('vmlinuz'),
    initrds: [file('ramdisk.cpio.gz'), file('host.cpio.gz'), ...extra.map(file)],
    // cryptomgr.notests: no self-tests of the kernel's crypto algorithms at each boot. They only check
    // Debian's (already tested) code on this CPU; under emulation they are about a sixth of the kernel's
    // own start-up (0.3–0.4 s of ~2.3 s under TCG). A kernel booted with fips=1 runs them regardless.
    cmdline: `console=ttyS0,115200n8 panic=30 loglevel=5 cryptomgr.notests osstest.host=${host.name}`,
  });
  ctx.log(`boot config: ${written.pxelinux} (pxelinux), ${written.ipxe} (iPXE)`);
  return { purpose, kernelFile: 'vmlinuz', hostPublicKey: key.publicKey };
}

/** Follows a host's events from `since`, logging each once; `until` decides when it is enough. */
export class EventWatch {
  private seen = 0;
  readonly events: HostEvent[] = [];
  constructor(
    private readonly ctx: ProvisionContext,
    private readonly since: number,
    private readonly started: number,
  ) {}

  async poll(): Promise<HostEvent[]> {
    const all = await this.ctx.store.listHostEvents(this.ctx.host.name, { since: this.since });
    const fresh = all.slice(this.seen);
    this.seen = all.length;
    for (const e of fresh) {
      this.events.push(e);
      const line = `host event +${((e.at - this.started) / 1000).toFixed(1)}s ${e.kind} ${e.detail}`;
      this.ctx.log(line);
      appendFileSync(
        join(this.ctx.jobLogDir, `host-events-${this.ctx.host.name}.log`),
        `${new Date(e.at).toISOString()} ${e.kind} ${e.detail}\n`,
      );
    }
    return fresh;
  }

  has(pred: (e: HostEvent) => boolean): boolean {
    return this.events.some(pred);
  }

  /** Polls until `pred` holds for some event, or throws after `deadline` saying what it waited for. */
  async waitFor(
    what: string,
    pred: (e: HostEvent) => boolean,
    deadline: number,
    fail?: (e: HostEvent) => boolean,
  ) {
    for (;;) {
      await this.poll();
      const bad = fail && this.events.find(fail);
      if (bad)
        throw new InstallError(
          `host ${this.ctx.host.name}: ${bad.kind} ${bad.detail} while waiting for ${what}`,
        );
      if (this.has(pred)) return;
      if (Date.now() > deadline) {
        const last = this.events.at(-1);
        throw new InstallError(
          `host ${this.ctx.host.name}: no ${what} within ${((deadline - this.started) / 1000).toFixed(0)} s of power-on` +
            ` (last event: ${last ? `${last.kind} ${last.detail}` : 'none'})`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

export interface InstallResult {
  method: string;
  /** Power-on to a working ssh session. */
  seconds: number;
  events: HostEvent[];
  session: RemoteSession;
  serialLog: string;
}

function startCapture(ctx: ProvisionContext): Promise<SerialCapture> {
  const console = consoleFor(ctx.host);
  ctx.log(`serial: ${console.describe} → ${serialLogPath(ctx.jobLogDir, ctx.host.name)}`);
  return startSerialCapture(console, serialLogPath(ctx.jobLogDir, ctx.host.name));
}

/** Checks the boot-complete marker the installed system writes last; returns its boot id. */
async function bootComplete(ctx: ProvisionContext, s: RemoteSession): Promise<string> {
  const r = await s.exec('cat /run/osstest-boot-complete', { allowFailure: true, timeoutMs: 30_000 });
  const id = r.stdout.trim();
  if (r.exitCode !== 0 || id === '') {
    throw new InstallError(`host ${ctx.host.name}: ssh works but the boot-complete marker is missing`);
  }
  return id;
}

/** What the image and debian-installer methods add to the ramdisk boot. */
export interface RamdiskExtras {
  /** Modules to load besides RamdiskModules (dependencies are added). */
  modules?: string[];
  /** Further initrds, published next to the others and loaded after them. */
  initrds?: Array<{ name: string; path: string }>;
}

/** A host up in the ramdisk: the ssh session, its events so far, when it was powered on. */
export interface RunningInstall {
  session: RemoteSession;
  watch: EventWatch;
  started: number;
  /** Power-on + HostInstallTimeout. */
  deadline: number;
  bootId: string;
}

/** What installHost hands an install method: the host is off, its console captured. */
export interface InstallKit {
  power: PowerDriver;
  pxe: PxeSettings;
  /** Boots the host into the ramdisk (plus extras) and returns an ssh session to it. */
  bootRamdisk(extras?: RamdiskExtras): Promise<RunningInstall>;
  /** A watch on the host's events from `since` (ms), times relative to `started`. */
  watch(since: number, started: number): EventWatch;
  /** Reads the boot-complete marker, waiting up to `ms` for it; returns the boot id. */
  bootComplete(session: RemoteSession, ms?: number): Promise<string>;
}

/** One install method (labgrid-style: one module each, this one small interface). */
export interface InstallDriver {
  readonly method: string;
  install(ctx: ProvisionContext, kit: InstallKit): Promise<RunningInstall>;
}

const ramdiskDriver: InstallDriver = {
  method: 'ramdisk',
  install: (_ctx, kit) => kit.bootRamdisk(),
};

const DRIVERS: Record<(typeof INSTALL_METHODS)[number], InstallDriver> = {
  ramdisk: ramdiskDriver,
  image: imageDriver,
  'debian-installer': debianInstallerDriver,
};

async function bootRamdisk(
  ctx: ProvisionContext,
  power: PowerDriver,
  pxe: PxeSettings,
  extras: RamdiskExtras = {},
): Promise<RunningInstall> {
  const { config, host } = ctx;
  const prepared = await prepareRamdisk(ctx, pxe, extras);
  // Pinned before the host can answer: ssh must meet exactly the key this install gave it.
  await ctx.store.setHostProp(host.name, 'SshHostKey', prepared.hostPublicKey);
  ctx.log(`ssh host key of ${host.name} is now ${prepared.hostPublicKey.slice(0, 40)}…`);
  const since = Date.now();
  ctx.log(`power: ${power.method} on`);
  await power.set('on');
  const started = Date.now();
  const fetchDeadline = started + config.int('HostInstallFetchTimeout') * 1000;
  const deadline = started + config.int('HostInstallTimeout') * 1000;
  const watch = new EventWatch(ctx, since, started);
  const isKernel = (e: HostEvent) =>
    e.kind === 'fetch' &&
    new RegExp(`\\b(\\S*/)?${prepared.kernelFile}\\b`).test(e.detail) &&
    !/not-found|failed|timeout/.test(e.detail);
  await watch.waitFor('fetch of its kernel', isKernel, Math.min(fetchDeadline, deadline), reportedFailure);
  await watch.waitFor(
    '"booted" report',
    (e) => e.kind === 'progress' && e.detail === 'booted',
    deadline,
    reportedFailure,
  );
  await watch.waitFor(
    '"ssh-ready" report',
    (e) => e.kind === 'progress' && e.detail === 'ssh-ready',
    deadline,
    reportedFailure,
  );
  const session = await waitForSsh(ctx.sshTarget(), {
    timeoutMs: Math.max(5_000, deadline - Date.now()),
    intervalMs: 500,
    log: ctx.log,
  });
  const bootId = await bootComplete(ctx, session);
  return { session, watch, started, deadline, bootId };
}

/** A progress report ending in `failed` (`ssh-failed`, `install-failed`) ends the wait at once. */
export const reportedFailure = (e: HostEvent) => e.kind === 'progress' && /failed$/.test(e.detail);

export async function installHost(ctx: ProvisionContext): Promise<InstallResult> {
  const { config, host } = ctx;
  const method = host.prop('InstallMethod') ?? 'ramdisk';
  if (!(INSTALL_METHODS as readonly string[]).includes(method)) {
    throw new InstallError(
      `host ${host.name}: InstallMethod ${method} is not available (available: ${INSTALL_METHODS.join(', ')})`,
    );
  }
  const driver = DRIVERS[method as (typeof INSTALL_METHODS)[number]];
  mkdirSync(ctx.jobLogDir, { recursive: true });
  const power: PowerDriver = powerFor(host, { log: ctx.log });
  const capture = await startCapture(ctx);
  try {
    ctx.log(`power: ${power.method} off`);
    await power.set('off');
    const pxe = pxeSettings(config);
    const kit: InstallKit = {
      power,
      pxe,
      bootRamdisk: (extras) => bootRamdisk(ctx, power, pxe, extras),
      watch: (since, started) => new EventWatch(ctx, since, started),
      bootComplete: async (s, ms = 0) => {
        const until = Date.now() + ms;
        for (;;) {
          try {
            return await bootComplete(ctx, s);
          } catch (err) {
            if (Date.now() >= until) throw err;
            await new Promise((r) => setTimeout(r, 1_000));
          }
        }
      },
    };
    const run = await driver.install(ctx, kit);
    const seconds = (Date.now() - run.started) / 1000;
    await run.watch.poll();
    ctx.log(
      `host ${host.name} installed (${method}) and answering ssh ${seconds.toFixed(1)} s after power-on (boot ${run.bootId})`,
    );
    return { method, seconds, events: run.watch.events, session: run.session, serialLog: capture.logFile };
  } finally {
    await capture.stop();
  }
}

/** Resolves once nothing accepts connections on the host's ssh port (or rejects at the deadline). */
async function waitDown(ctx: ProvisionContext, target: SshTarget, deadline: number): Promise<void> {
  const open = () =>
    new Promise<boolean>((resolve) => {
      const s = connect({ host: target.address, port: target.port ?? 22 });
      const done = (ok: boolean) => {
        s.destroy();
        resolve(ok);
      };
      s.setTimeout(1_000, () => done(false));
      s.once('connect', () => done(true));
      s.once('error', () => done(false));
    });
  while (await open()) {
    if (Date.now() > deadline) throw new InstallError(`host ${ctx.host.name} did not go down`);
    await new Promise((r) => setTimeout(r, 300));
  }
  ctx.log(`host ${ctx.host.name} is down`);
}

export interface RebootResult {
  seconds: number;
  oldBootId: string;
  newBootId: string;
}

/**
 * Reboot (`how: 'reboot'`, from inside) or power cycle (`how: 'powercycle'`, by the power method):
 * down, up with ssh, and the boot-complete marker of a new boot.
 */
export async function rebootHost(ctx: ProvisionContext, how: 'reboot' | 'powercycle'): Promise<RebootResult> {
  mkdirSync(ctx.jobLogDir, { recursive: true });
  const capture = await startCapture(ctx);
  const target = ctx.sshTarget();
  try {
    const before = await waitForSsh(target, { timeoutMs: 30_000, log: ctx.log });
    const oldBootId = await bootComplete(ctx, before);
    const started = Date.now();
    const deadline = started + ctx.config.int('HostRebootTimeout') * 1000;
    if (how === 'reboot') {
      ctx.log(`rebooting ${ctx.host.name} (boot ${oldBootId})`);
      // In the background, so the command returns before the connection drops.
      await before.exec('(sleep 1; reboot) </dev/null >/dev/null 2>&1 &', { timeoutMs: 30_000 });
      await before.close();
      await waitDown(ctx, target, deadline);
    } else {
      await before.close();
      const power = powerFor(ctx.host, { log: ctx.log });
      ctx.log(`power cycling ${ctx.host.name} with ${power.method} (boot ${oldBootId})`);
      await power.set('off');
      await new Promise((r) => setTimeout(r, 2_000));
      await power.set('on');
    }
    for (;;) {
      const s = await waitForSsh(target, {
        timeoutMs: Math.max(5_000, deadline - Date.now()),
        intervalMs: 500,
        log: ctx.log,
      });
      try {
        const newBootId = await bootComplete(ctx, s).catch(() => undefined);
        if (newBootId && newBootId !== oldBootId) {
          const seconds = (Date.now() - started) / 1000;
          await new EventWatch(ctx, started, started).poll();
          ctx.log(`host ${ctx.host.name} back after ${seconds.toFixed(1)} s (boot ${newBootId})`);
          return { seconds, oldBootId, newBootId };
        }
      } finally {
        await s.close();
      }
      if (Date.now() > deadline)
        throw new InstallError(`host ${ctx.host.name}: no new boot within the reboot timeout`);
      await new Promise((r) => setTimeout(r, 1_000));
    }
  } finally {
    await capture.stop();
  }
}
