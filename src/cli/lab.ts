/** `osstest lab up|down|status`: the virtual lab (src/lab/lab.ts). */
import type { Command } from 'commander';
import { Config } from '../config/config.js';
import { openConfiguredStore } from '../db/from-config.js';
import { LabError, labDown, labStatus, labUp, requireRoot } from '../lab/lab.js';
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
}
