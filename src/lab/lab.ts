/**
 * The virtual lab (DESIGN §4): one network namespace with a bridge, the controller's boot services
 * running inside it, QEMU test hosts on taps on the bridge, and netns build hosts with a second link on
 * the bridge. The layout comes from the config (plan.ts); what is running is recorded in
 * `<LabDir>/state.json`, so `lab down` and `lab status` work from any later process.
 *
 * `up` registers the hosts in the store (MAC, address, flags, PowerMethod/SerialMethod qemu,
 * InstallMethod ramdisk); the QEMU hosts stay powered off until something (ts-host-install) powers
 * them on. `down` powers off every VM, stops the services, removes build hosts, taps, links, the route
 * and the namespace, and unregisters the hosts: nothing is left behind. It also works when `up` died
 * half-way or state.json is gone (everything is found by the names the plan gives).
 *
 * Needs root, iproute2, QEMU (qemu-system-x86, ipxe-qemu), pxelinux + syslinux-common, OpenSSH's sshd
 * for build hosts. Tested with QEMU 7.2 and iproute2 6.1 on Debian bookworm (test/e2e/virtual-lab.test.ts).
 */
import { spawn } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Config } from '../config/config.js';
import type { Store } from '../db/store.js';
import { distRoot } from '../executor/paths.js';
import { QemuPower, type QemuVmSpec, runningQemuPid, writeVmSpec } from '../power/qemu.js';
import { ensureKeyPair, writeAtomic } from '../remote/keys.js';
import { listNetnsHosts, NetnsHost, removeNetnsHost } from './netns-host.js';
import { processStartTime } from './netns-names.js';
import { type LabPlan, labPlan } from './plan.js';

export interface LabState {
  version: 1;
  namespace: string;
  createdAt: string;
  configFiles: string[];
  services: { pid: number; start: number; log: string } | null;
  qemuHosts: Array<{ name: string; mac: string; ip: string; tap: string; vmDir: string }>;
  buildHosts: Array<{ name: string; address: string; labIp: string; namespace: string; stateDir: string }>;
}

export class LabError extends Error {
  override name = 'LabError';
}

/** Where pxelinux's files come from (Debian's pxelinux and syslinux-common). */
const PXELINUX_FILES: Array<[string, string]> = [
  ['/usr/lib/PXELINUX/pxelinux.0', 'pxelinux'],
  ['/usr/lib/syslinux/modules/bios/ldlinux.c32', 'syslinux-common'],
];

type Log = (line: string) => void;

export function requireRoot(what: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new LabError(`lab ${what} must run as root (it makes network namespaces, taps and VMs)`);
  }
}

async function ip(args: string[], what: string, tolerate?: RegExp): Promise<void> {
  const r = await execa('ip', args, { reject: false });
  if (r.exitCode !== 0 && !tolerate?.test(r.stderr)) {
    throw new LabError(`${what}: ip ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
  }
}

export async function namespaceExists(ns: string): Promise<boolean> {
  const r = await execa('ip', ['netns', 'list'], { reject: false });
  return r.stdout.split('\n').some((l) => l.split(/\s+/)[0] === ns);
}

export function readLabState(plan: LabPlan): LabState | undefined {
  try {
    return JSON.parse(readFileSync(plan.stateFile, 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

function writeLabState(plan: LabPlan, state: LabState): void {
  mkdirSync(plan.dir, { recursive: true });
  writeAtomic(plan.stateFile, `${JSON.stringify(state, null, 2)}\n`, 0o644);
}

function pidAlive(pid: number, start?: number): boolean {
  const s = processStartTime(pid);
  return s !== undefined && (start === undefined || s === start);
}

async function checkTools(plan: LabPlan): Promise<void> {
  const missing: string[] = [];
  for (const [cmd, pkg] of [
    ['ip', 'iproute2'],
    [plan.qemu.binary, 'qemu-system-x86'],
    ...(plan.qemu.disk === '0' ? [] : [['qemu-img', 'qemu-utils']]),
  ] as const) {
    const r = await execa('sh', ['-c', `command -v "$1"`, 'sh', cmd], { reject: false });
    if (r.exitCode !== 0) missing.push(`${cmd} (Debian: ${pkg})`);
  }
  for (const [file, pkg] of PXELINUX_FILES) if (!existsSync(file)) missing.push(`${file} (Debian: ${pkg})`);
  if (plan.buildHosts.length > 0 && !existsSync('/usr/sbin/sshd'))
    missing.push('/usr/sbin/sshd (Debian: openssh-server)');
  if (missing.length > 0) throw new LabError(`lab up needs: ${missing.join(', ')}`);
  if (plan.qemu.accel === 'kvm') {
    try {
      closeSync(openSync('/dev/kvm', 'r+'));
    } catch (err) {
      throw new LabError(
        `LabQemuAccel is kvm but /dev/kvm cannot be opened (${(err as Error).message}); use LabQemuAccel tcg`,
      );
    }
  }
}

function vmSpec(plan: LabPlan, h: LabQemuHost): QemuVmSpec {
  return {
    name: h.name,
    namespace: plan.namespace,
    qemu: plan.qemu.binary,
    args: [
      '-name',
      h.name,
      '-machine',
      'pc',
      '-accel',
      plan.qemu.accel,
      '-m',
      String(plan.qemu.memoryMb),
      '-smp',
      '1',
      '-nodefaults',
      '-no-user-config',
      '-display',
      'none',
      '-vga',
      'none',
      '-monitor',
      'none',
      '-netdev',
      `tap,id=net0,ifname=${h.tap},script=no,downscript=no`,
      '-device',
      // The emulated e1000 otherwise "negotiates" its link for ~2 s after every driver load (the
      // ramdisk waits for carrier before DHCP): a tap has no link partner to negotiate with.
      `${plan.qemu.nic === 'virtio' ? 'virtio-net-pci' : 'e1000,autonegotiation=off'},netdev=net0,mac=${h.mac}`,
      ...(plan.qemu.disk === '0'
        ? []
        : ['-drive', `file=${join(h.vmDir, 'disk.qcow2')},if=virtio,format=qcow2,cache=unsafe`]),
      '-boot',
      'order=n',
      // SeaBIOS copies what the firmware and iPXE print to the serial port too, so the serial log shows
      // the whole boot, not only the kernel's part. It reads the port as a binary integer (a `string=`
      // item would not do); QEMU warns that the name lacks an `opt/` prefix, which SeaBIOS's cannot have.
      '-fw_cfg',
      `name=etc/sercon-port,file=${join(h.vmDir, 'sercon-port')}`,
    ],
    serialLog: join(h.vmDir, 'serial.log'),
    pidFile: join(h.vmDir, 'qemu.pid'),
  };
}

type LabQemuHost = LabPlan['qemuHosts'][number];

/** Hosts the lab registers in the store, with their flags and properties. */
async function registerHosts(
  store: Store,
  plan: LabPlan,
  build: LabState['buildHosts'],
  buildKeys: Map<string, string>,
) {
  for (const h of plan.qemuHosts) {
    await store.upsertHost({ name: h.name, mac: h.mac, ip: h.ip });
    await store.setHostFlags(h.name, [
      'arch-amd64',
      'purpose-test',
      'virtual-lab',
      plan.qemu.disk === '0' ? 'diskless' : 'disk',
    ]);
    for (const [p, v] of Object.entries({
      PowerMethod: `qemu ${h.vmDir}`,
      SerialMethod: `qemu ${h.vmDir}`,
      InstallMethod: 'ramdisk',
      Workdir: '/var/tmp/osstest',
      // The ramdisk's NIC driver (its default is e1000's).
      ...(plan.qemu.nic === 'virtio' ? { RamdiskModules: 'virtio_pci virtio_net' } : {}),
    })) {
      await store.setHostProp(h.name, p, v);
    }
    // Not installed yet: whatever key it had belongs to an earlier life.
    await store.setHostProp(h.name, 'SshHostKey', null);
  }
  for (const b of build) {
    await store.upsertHost({ name: b.name, ip: b.address });
    await store.setHostFlags(b.name, ['arch-amd64', 'purpose-build', 'virtual-lab', 'netns']);
    await store.setHostProp(b.name, 'LabIp', b.labIp);
    await store.setHostProp(b.name, 'Workdir', join(b.stateDir, 'work'));
    const key = buildKeys.get(b.name);
    await store.setHostProp(b.name, 'SshHostKey', key ?? null);
  }
}

async function startServices(
  plan: LabPlan,
  config: Config,
  log: Log,
): Promise<NonNullable<LabState['services']>> {
  const main = join(distRoot, 'src', 'lab', 'services-main.js');
  if (!existsSync(main)) throw new LabError(`${main} is missing: run \`npm run build\``);
  rmSync(plan.servicesFile, { force: true });
  const out = openSync(plan.servicesLog, 'a');
  let child: ReturnType<typeof spawn>;
  try {
    // `ip netns exec` execs node in place, so the child's pid is the services' pid.
    child = spawn('ip', ['netns', 'exec', plan.namespace, process.execPath, main], {
      cwd: config.baseDir,
      env: { ...process.env, OSSTEST_CONFIG: config.files.join(':') },
      stdio: ['ignore', out, out],
      detached: true,
    });
  } finally {
    closeSync(out);
  }
  child.unref();
  const pid = child.pid;
  if (pid === undefined) throw new LabError('could not start the boot services process');
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (existsSync(plan.servicesFile)) {
      const s = JSON.parse(readFileSync(plan.servicesFile, 'utf8')) as { pid: number };
      if (s.pid === pid) {
        log(`boot services running (pid ${pid}); log ${plan.servicesLog}`);
        return { pid, start: processStartTime(pid) ?? 0, log: plan.servicesLog };
      }
    }
    if (child.exitCode !== null || !pidAlive(pid)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const tail = existsSync(plan.servicesLog)
    ? readFileSync(plan.servicesLog, 'utf8').trimEnd().split('\n').slice(-15).join('\n')
    : '(no log)';
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
  throw new LabError(`the boot services did not come up; ${plan.servicesLog}:\n${tail}`);
}

/** Brings the lab up. Fails if it is already up; cleans up after itself if anything fails. */
export async function labUp(config: Config, store: Store, log: Log): Promise<LabState> {
  requireRoot('up');
  const plan = labPlan(config);
  await checkTools(plan);
  if (readLabState(plan) && (await namespaceExists(plan.namespace))) {
    throw new LabError(`the lab is already up (namespace ${plan.namespace}); \`osstest lab down\` first`);
  }
  // Leftovers of an `up` that died, or of a lab whose state file was removed.
  await teardown(plan, store, () => {}, { unregister: false });
  const started = Date.now();
  const state: LabState = {
    version: 1,
    namespace: plan.namespace,
    createdAt: new Date().toISOString(),
    configFiles: config.files,
    services: null,
    qemuHosts: [],
    buildHosts: [],
  };
  try {
    mkdirSync(plan.dir, { recursive: true });
    writeLabState(plan, state);
    const ns = ['-n', plan.namespace];
    const what = 'lab up';
    await ip(['netns', 'add', plan.namespace], what);
    await ip([...ns, 'link', 'set', 'lo', 'up'], what);
    await ip([...ns, 'link', 'add', plan.bridge, 'type', 'bridge'], what);
    await ip([...ns, 'addr', 'add', `${plan.serverIp}/${plan.prefix}`, 'dev', plan.bridge], what);
    await ip([...ns, 'link', 'set', plan.bridge, 'up'], what);
    // DHCP replies to 255.255.255.255 must leave by the bridge.
    await ip([...ns, 'route', 'add', '255.255.255.255/32', 'dev', plan.bridge], what);
    const fwd = await execa(
      'ip',
      ['netns', 'exec', plan.namespace, 'sysctl', '-qw', 'net.ipv4.ip_forward=1'],
      {
        reject: false,
      },
    );
    if (fwd.exitCode !== 0)
      throw new LabError(`lab up: enabling forwarding in ${plan.namespace}: ${fwd.stderr.trim()}`);
    const l = plan.link;
    await ip(
      ['link', 'add', l.rootIf, 'type', 'veth', 'peer', 'name', l.labIf, 'netns', plan.namespace],
      what,
    );
    await ip(['addr', 'add', `${l.rootIp}/${l.prefix}`, 'dev', l.rootIf], what);
    await ip(['link', 'set', l.rootIf, 'up'], what);
    await ip([...ns, 'addr', 'add', `${l.labIp}/${l.prefix}`, 'dev', l.labIf], what);
    await ip([...ns, 'link', 'set', l.labIf, 'up'], what);
    await ip(['route', 'add', plan.subnet, 'via', l.labIp, 'dev', l.rootIf], what);
    log(
      `namespace ${plan.namespace}: bridge ${plan.bridge} ${plan.serverIp}/${plan.prefix}, routed from here via ${l.rootIf}`,
    );

    const tftpRoot = config.path('TftpPath');
    mkdirSync(join(tftpRoot, config.string('TftpPxeDir')), { recursive: true });
    mkdirSync(config.path('WebspaceDir'), { recursive: true });
    for (const [file] of PXELINUX_FILES)
      copyFileSync(file, join(tftpRoot, file.slice(file.lastIndexOf('/') + 1)));

    for (const h of plan.qemuHosts) {
      await ip([...ns, 'tuntap', 'add', 'dev', h.tap, 'mode', 'tap'], what);
      await ip([...ns, 'link', 'set', h.tap, 'master', plan.bridge], what);
      await ip([...ns, 'link', 'set', h.tap, 'up'], what);
      mkdirSync(h.vmDir, { recursive: true });
      const spec = vmSpec(plan, h);
      writeVmSpec(h.vmDir, spec);
      writeFileSync(join(h.vmDir, 'sercon-port'), Buffer.from([0xf8, 0x03]));
      if (plan.qemu.disk !== '0') {
        // A fresh, empty disk at every lab up (qcow2: it takes only what is written).
        const disk = join(h.vmDir, 'disk.qcow2');
        rmSync(disk, { force: true });
        const r = await execa('qemu-img', ['create', '-q', '-f', 'qcow2', disk, plan.qemu.disk], {
          reject: false,
        });
        if (r.exitCode !== 0) throw new LabError(`qemu-img create ${disk}: ${r.stderr.trim()}`);
      }
      writeFileSync(spec.serialLog, '');
      state.qemuHosts.push({ name: h.name, mac: h.mac, ip: h.ip, tap: h.tap, vmDir: h.vmDir });
      log(
        `qemu host ${h.name}: ${h.mac} ${h.ip} on ${h.tap} (${plan.qemu.accel}, ${plan.qemu.memoryMb} MB), powered off`,
      );
    }
    writeLabState(plan, state);

    const keys = new Map<string, string>();
    // The key installs put on QEMU hosts too, so made even when there is no build host.
    const { publicKey } = ensureKeyPair(config.path('TestHostKeypairPath'), 'osstest');
    if (plan.buildHosts.length > 0) {
      for (const b of plan.buildHosts) {
        const host = await NetnsHost.create({
          name: b.name,
          authorizedKeys: publicKey,
          stateDir: b.stateDir,
          ownerPid: 0,
        });
        state.buildHosts.push({
          name: b.name,
          address: host.address,
          labIp: b.labIp,
          namespace: host.namespace,
          stateDir: b.stateDir,
        });
        writeLabState(plan, state);
        keys.set(b.name, host.hostPublicKey);
        // A second link, from the build host onto the lab bridge, so it can reach the test hosts.
        await ip(
          [
            ...ns,
            'link',
            'add',
            b.bridgePort,
            'type',
            'veth',
            'peer',
            'name',
            'lab0',
            'netns',
            host.namespace,
          ],
          what,
        );
        await ip([...ns, 'link', 'set', b.bridgePort, 'master', plan.bridge], what);
        await ip([...ns, 'link', 'set', b.bridgePort, 'up'], what);
        await ip(['-n', host.namespace, 'addr', 'add', `${b.labIp}/${plan.prefix}`, 'dev', 'lab0'], what);
        await ip(['-n', host.namespace, 'link', 'set', 'lab0', 'up'], what);
        mkdirSync(join(b.stateDir, 'work'), { recursive: true });
        log(`netns build host ${b.name}: ${host.address} (ssh), ${b.labIp} on the lab bridge`);
      }
    }
    await registerHosts(store, plan, state.buildHosts, keys);
    state.services = await startServices(plan, config, log);
    writeLabState(plan, state);
    log(`lab up in ${((Date.now() - started) / 1000).toFixed(1)} s; webspace ${plan.webspaceUrl}`);
    return state;
  } catch (err) {
    log(`lab up failed: ${(err as Error).message}; cleaning up`);
    await teardown(plan, store, () => {}, { unregister: true }).catch(() => {});
    throw err;
  }
}

async function killPid(pid: number, start?: number): Promise<void> {
  if (!pidAlive(pid, start)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 50 && pidAlive(pid, start); i++) await new Promise((r) => setTimeout(r, 100));
  if (pidAlive(pid, start)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone in between.
    }
    for (let i = 0; i < 50 && pidAlive(pid, start); i++) await new Promise((r) => setTimeout(r, 100));
  }
}

/** Everything the plan names, removed; tolerates any of it being absent already. */
async function teardown(
  plan: LabPlan,
  store: Store | undefined,
  log: Log,
  opts: { unregister: boolean },
): Promise<void> {
  const state = readLabState(plan);
  for (const h of plan.qemuHosts) {
    if (!existsSync(join(h.vmDir, 'vm.json'))) continue;
    const power = new QemuPower(h.name, h.vmDir);
    if ((await power.get()) === 'on') {
      log(`powering off ${h.name}`);
      await power.set('off');
    }
  }
  if (state?.services) {
    log(`stopping the boot services (pid ${state.services.pid})`);
    await killPid(state.services.pid, state.services.start);
  }
  // Build hosts: by lease, whether or not state.json lists them.
  const buildDirs = new Set(plan.buildHosts.map((b) => b.stateDir));
  for (const lease of listNetnsHosts()) {
    if (buildDirs.has(lease.stateDir)) {
      log(`removing build host ${lease.name} (${lease.namespace})`);
      await removeNetnsHost(lease);
    }
  }
  if (await namespaceExists(plan.namespace)) {
    // Anything still running in the namespace (a VM started by hand, a stray services process).
    const pids = await execa('ip', ['netns', 'pids', plan.namespace], { reject: false });
    for (const p of pids.stdout.split(/\s+/).filter(Boolean)) await killPid(Number(p));
    log(`removing namespace ${plan.namespace}`);
    await ip(['netns', 'del', plan.namespace], 'lab down', /No such file/);
  }
  await ip(
    ['route', 'del', plan.subnet, 'dev', plan.link.rootIf],
    'lab down',
    /No such process|Cannot find device|does not exist/,
  );
  await ip(['link', 'del', plan.link.rootIf], 'lab down', /Cannot find device|does not exist/);
  for (const h of plan.qemuHosts) rmSync(join(h.vmDir, 'qemu.pid'), { force: true });
  if (opts.unregister && store) {
    for (const name of [...plan.qemuHosts, ...plan.buildHosts].map((h) => h.name)) {
      const held = (await store.listAllocations()).find((a) => a.host === name);
      if (held) {
        log(`keeping host ${name} in the database: allocated to ${held.flight}/${held.job}`);
        continue;
      }
      if (await store.getHost(name)) await store.deleteHost(name);
    }
  }
  rmSync(plan.servicesFile, { force: true });
  rmSync(plan.stateFile, { force: true });
}

/** Takes the lab down completely; fine to run when it is (partly or wholly) down already. */
export async function labDown(config: Config, store: Store | undefined, log: Log): Promise<void> {
  requireRoot('down');
  const plan = labPlan(config);
  await teardown(plan, store, log, { unregister: true });
  log('lab down');
}

export interface LabStatus {
  up: boolean;
  namespace: string;
  namespaceExists: boolean;
  webspaceUrl: string;
  services: { pid: number; running: boolean; log: string } | null;
  qemuHosts: Array<{ name: string; mac: string; ip: string; power: 'on' | 'off'; serialLog: string }>;
  buildHosts: Array<{ name: string; address: string; labIp: string; namespaceExists: boolean }>;
  /** Processes running inside the lab namespace (root only; empty otherwise). */
  pids: number[];
}

export async function labStatus(config: Config): Promise<LabStatus> {
  const plan = labPlan(config);
  const state = readLabState(plan);
  const nsExists = await namespaceExists(plan.namespace);
  let pids: number[] = [];
  if (nsExists) {
    const r = await execa('ip', ['netns', 'pids', plan.namespace], { reject: false });
    pids = r.stdout.split(/\s+/).filter(Boolean).map(Number);
  }
  const services = state?.services
    ? {
        pid: state.services.pid,
        running: pidAlive(state.services.pid, state.services.start),
        log: state.services.log,
      }
    : null;
  const qemuHosts = (state?.qemuHosts ?? []).map((h) => {
    let power: 'on' | 'off' = 'off';
    try {
      power =
        runningQemuPid({ pidFile: join(h.vmDir, 'qemu.pid') } as QemuVmSpec) === undefined ? 'off' : 'on';
    } catch {
      power = 'off';
    }
    return { name: h.name, mac: h.mac, ip: h.ip, power, serialLog: join(h.vmDir, 'serial.log') };
  });
  const buildHosts = [];
  for (const b of state?.buildHosts ?? []) {
    buildHosts.push({
      name: b.name,
      address: b.address,
      labIp: b.labIp,
      namespaceExists: await namespaceExists(b.namespace),
    });
  }
  return {
    up: state !== undefined && nsExists && services?.running === true,
    namespace: plan.namespace,
    namespaceExists: nsExists,
    webspaceUrl: plan.webspaceUrl,
    services,
    qemuHosts,
    buildHosts,
    pids,
  };
}
