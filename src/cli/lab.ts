/** `osstest lab up|down|status|leases`: the virtual lab (src/lab/lab.ts). */
import type { Command } from 'commander';
import { Config } from '../config/config.js';
import { openConfiguredStore } from '../db/from-config.js';
import { LabError, labDown, labStatus, labUp, requireRoot } from '../lab/lab.js';
import { labPlan } from '../lab/plan.js';
import { readBackendLeases } from '../provision/boot-services/index.js';
import { withStore } from './context.js';
import { printJson, table, UsageError } from './output.js';

const say = (line: string) => process.stdout.write(`${line}\n`);

function asUsage(err: unknown): never {
  if (err instanceof LabError) throw new UsageError(err.message);
  throw err;
}

export function register(program: Command): void {
  const lab = program
    .command('lab')
    .description('The virtual lab: a network namespace with QEMU test hosts and netns build hosts (root)');

  lab
    .command('up')
    .description(
      'Make the lab: namespace and bridge, boot services (DHCP, TFTP, HTTP) inside it, QEMU test hosts (powered off) and netns build hosts, registered in the host database',
    )
    .option('--json', 'print the lab state as JSON')
    .action(async (o: { json?: boolean }) => {
      // Before anything else (the store may not even be readable to this user).
      try {
        requireRoot('up');
      } catch (err) {
        asUsage(err);
      }
      return withStore(async ({ config, store }) => {
        const state = await labUp(config, store, o.json ? () => {} : say).catch(asUsage);
        if (o.json) printJson(state);
      });
    });

  lab
    .command('down')
    .description('Stop every VM and service of the lab and remove its namespaces, links and hosts')
    .action(async () => {
      try {
        requireRoot('down');
      } catch (err) {
        asUsage(err);
      }
      const config = Config.load({ env: process.env });
      // The lab must come down even when the store cannot be opened; its hosts then stay registered.
      let store: Awaited<ReturnType<typeof openConfiguredStore>> | undefined;
      try {
        store = await openConfiguredStore(config);
      } catch (err) {
        say(`cannot open the store (${(err as Error).message}): lab hosts stay registered`);
      }
      try {
        await labDown(config, store, say).catch(asUsage);
      } finally {
        await store?.close();
      }
    });

  lab
    .command('status')
    .description('Show whether the lab is up: services, VMs with their power state, build hosts')
    .option('--json', 'print as JSON')
    .action(async (o: { json?: boolean }) => {
      const config = Config.load({ env: process.env });
      const s = await labStatus(config);
      if (o.json) return printJson(s);
      say(`lab ${s.up ? 'up' : 'down'} (namespace ${s.namespace}${s.namespaceExists ? '' : ', absent'})`);
      if (s.services)
        say(
          `boot services: pid ${s.services.pid} ${s.services.running ? 'running' : 'NOT running'}; log ${s.services.log}`,
        );
      say(`webspace: ${s.webspaceUrl}`);
      const rows = [
        ['host', 'kind', 'address', 'state'],
        ...s.qemuHosts.map((h) => [h.name, 'qemu', `${h.ip} ${h.mac}`, `power ${h.power}`]),
        ...s.buildHosts.map((b) => [
          b.name,
          'netns',
          `${b.address} (lab ${b.labIp})`,
          b.namespaceExists ? 'up' : 'gone',
        ]),
      ];
      if (rows.length > 1) say(table(rows));
    });

  lab
    .command('leases')
    .description(
      "Which address each MAC got, from the boot-services backend's lease file (BootServices: the builtin's or dnsmasq's in LabDir, or the site's DhcpLeasesFile), with the host it belongs to",
    )
    .option('--json', 'print as JSON')
    .action(async (o: { json?: boolean }) =>
      withStore(async ({ config, store }) => {
        let r: Awaited<ReturnType<typeof readBackendLeases>>;
        try {
          r = await readBackendLeases(config, labPlan(config).dir);
        } catch (err) {
          throw new UsageError((err as Error).message);
        }
        const hosts = await store.listHosts();
        const leases = r.leases.map((l) => ({
          mac: l.mac,
          ip: l.ip,
          host: hosts.find((h) => h.mac === l.mac)?.name ?? null,
          hostname: l.hostname ?? null,
          expires: l.expires === null ? null : new Date(l.expires).toISOString(),
        }));
        if (o.json)
          return printJson({ bootServices: r.bootServices, file: r.file, leases, skipped: r.skipped });
        say(`${r.bootServices} leases from ${r.file}`);
        for (const s of r.skipped) say(`skipped line ${s.line}: ${s.reason}`);
        if (leases.length === 0) {
          say('no leases in force');
          return;
        }
        say(
          table([
            ['mac', 'address', 'host', 'expires'],
            ...leases.map((l) => [
              l.mac,
              l.ip,
              l.host ?? `(${l.hostname ?? 'unknown'})`,
              l.expires ?? 'never',
            ]),
          ]),
        );
      }),
    );
}
