/**
 * The virtual lab's boot services as a process: `lab up` runs it inside the lab's namespace
 * (`ip netns exec NS node services-main.js`), with the config in OSSTEST_CONFIG. It writes
 * `<LabDir>/services.json` (pid, addresses, ports) once everything listens, logs to stdout (which
 * lab up sends to `<LabDir>/services.log`), and stops cleanly on SIGTERM. DHCP and TFTP come from the
 * `BootServices` backend; one that keeps its own copy of the reservations (dnsmasq) is brought in line
 * with the host database every 2 s and on SIGHUP.
 *
 * It also runs radvd (when installed) on the bridge, sending router advertisements that offer no
 * prefix and no default route. iPXE configures IPv6 alongside DHCP and waits for a router
 * advertisement before it boots; unanswered, that costs about 13 s of every network boot (measured
 * here: power-on to ssh went from 31 s to 19 s).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Config } from '../config/config.js';
import { openConfiguredStore } from '../db/from-config.js';
import { logStamp } from '../model/testcase-protocol.js';
import { writeAtomic } from '../remote/keys.js';
import { labPlan } from './plan.js';
import { startBootServices } from './services.js';

const log = (line: string) => process.stdout.write(`${logStamp()} ${line}\n`);

const RADVD = '/usr/sbin/radvd';
/** How often a backend with its own copy of the reservations is brought in line with the host database. */
const HOST_SYNC_MS = 2000;

function startRadvd(dir: string, bridge: string): ChildProcess | undefined {
  if (!existsSync(RADVD)) {
    log(
      `${RADVD} is not installed: iPXE will wait ~13 s per boot for IPv6 router advertisements (Debian: radvd)`,
    );
    return undefined;
  }
  const conf = join(dir, 'radvd.conf');
  writeFileSync(
    conf,
    [
      '# written by osstest: answer router solicitations without offering a prefix or a default route',
      `interface ${bridge} {`,
      '  AdvSendAdvert on;',
      '  AdvDefaultLifetime 0;',
      '  MinRtrAdvInterval 30;',
      '  MaxRtrAdvInterval 100;',
      '};',
      '',
    ].join('\n'),
  );
  const child = spawn(RADVD, ['-n', '-C', conf, '-p', join(dir, 'radvd.pid'), '-m', 'stderr'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  child.on('error', (e) => log(`radvd: ${e.message}`));
  child.on('exit', (code, sig) => log(`radvd exited (${code ?? sig})`));
  return child;
}

async function main(): Promise<void> {
  const config = Config.load({ env: process.env });
  const plan = labPlan(config);
  const store = await openConfiguredStore(config);
  const tftpRoot = config.path('TftpPath');
  const webspaceDir = config.path('WebspaceDir');
  mkdirSync(tftpRoot, { recursive: true });
  mkdirSync(webspaceDir, { recursive: true });
  const services = await startBootServices({
    config,
    store,
    serverIp: plan.serverIp,
    netmask: plan.netmask,
    router: plan.serverIp,
    tftpRoot,
    webspaceDir,
    httpPort: plan.httpPort,
    webspaceUrl: plan.webspaceUrl,
    interface: plan.bridge,
    stateDir: plan.dir,
    log,
  });
  const radvd = startRadvd(plan.dir, plan.bridge);
  const stats = () => ({
    ...services.backend.stats(),
    webspace: services.webspaceStats,
  });
  writeAtomic(
    plan.servicesFile,
    `${JSON.stringify(
      {
        ...services.backend.describe(),
        // After the backend's fields: lab up knows the services by this pid.
        pid: process.pid,
        startedAt: new Date().toISOString(),
        bootServices: services.backend.kind,
        http: { address: services.web.address, port: services.web.port },
      },
      null,
      2,
    )}\n`,
    0o644,
  );
  log(
    `boot services up on ${plan.serverIp} (namespace ${plan.namespace}): dhcp and tftp (${services.backend.kind}), http :${plan.httpPort}`,
  );
  // A backend that keeps its own copy of the reservations (dnsmasq) follows the host database.
  let syncing = false;
  const sync = async () => {
    if (syncing) return;
    syncing = true;
    try {
      if (await services.backend.syncHosts())
        log(`boot services: reservations updated from the host database`);
    } catch (err) {
      log(`boot services: updating reservations failed: ${(err as Error).message}`);
    } finally {
      syncing = false;
    }
  };
  const syncTimer = setInterval(() => void sync(), HOST_SYNC_MS);
  process.on('SIGHUP', () => void sync());
  let stopping = false;
  const stop = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    clearInterval(syncTimer);
    log(`${sig}: stopping; counters ${JSON.stringify(stats())}`);
    radvd?.kill('SIGTERM');
    await services.close();
    await store.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  // Counters in the log now and then, for whoever is debugging a boot.
  setInterval(() => log(`counters ${JSON.stringify(stats())}`), 60_000).unref();
}

main().catch((err: unknown) => {
  log(`boot services failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
