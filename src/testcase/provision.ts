/**
 * Host provisioning for testcases: install, reboot and power-cycle the host of an ident, with the
 * serial console captured into the job's logs (`<Logs>/<flight>/<job>/serial-<host>.log`) and the
 * host's events logged as they arrive.
 */
import { join } from 'node:path';
import { serialLogPath } from '../console/capture.js';
import { consoleFor, startSerialCapture } from '../console/index.js';
import {
  type InstallResult,
  installHost,
  type ProvisionContext,
  type RebootResult,
  rebootHost,
} from '../provision/install/host-install.js';
import { labWebspaceUrl } from '../provision/webspace/url.js';
import { sshTarget } from './hosts.js';
import type { Testcase } from './testcase.js';

async function context(tc: Testcase, ident: string): Promise<ProvisionContext> {
  const info = await tc.host(ident);
  const h = (await tc.store.getHost(info.name))!;
  return {
    config: tc.config,
    store: tc.store,
    host: { name: info.name, mac: h.mac, ip: info.prop('Ip') ?? h.ip, prop: info.prop },
    jobLogDir: join(tc.config.path('Logs'), tc.flight, tc.job),
    sshTarget: () => sshTarget(tc.config, tc.store, info),
    log: (line) => tc.log(line),
    webspaceUrl: labWebspaceUrl(tc.config),
  };
}

/**
 * Copies what the host's serial console printed since the job's last capture into the job's serial log
 * (for file-backed consoles: everything, even while no testcase was running). For log capture at the end.
 * Undefined when the host has no serial console.
 */
export async function captureSerialNow(tc: Testcase, ident = 'host'): Promise<string | undefined> {
  const ctx = await context(tc, ident);
  const console = consoleFor(ctx.host);
  if (console.method === 'none') return undefined;
  const log = serialLogPath(ctx.jobLogDir, ctx.host.name);
  const c = await startSerialCapture(console, log);
  await c.stop();
  return log;
}

/** Installs the host of `ident` (its InstallMethod) and returns once it answers ssh. */
export async function installTestHost(tc: Testcase, ident = 'host'): Promise<InstallResult> {
  return installHost(await context(tc, ident));
}

export async function rebootTestHost(tc: Testcase, ident = 'host'): Promise<RebootResult> {
  return rebootHost(await context(tc, ident), 'reboot');
}

export async function powercycleTestHost(tc: Testcase, ident = 'host'): Promise<RebootResult> {
  return rebootHost(await context(tc, ident), 'powercycle');
}
