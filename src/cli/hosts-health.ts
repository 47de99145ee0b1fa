/**
 * `osstest hosts health [HOST] [--json]`: each host's health (good, suspect, quarantined,
 * maintenance), since when and why, with a host's recent health and lease events;
 * `osstest hosts health HOST --set maintenance|good [--reason TEXT]` sets it by hand.
 */
import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { HEALTH_STATES, isHealthState } from '../db/lab/types.js';
import { withStore } from './context.js';
import { printJson, table, UsageError, when } from './output.js';

export function register(program: Command): void {
  // The hosts command group is made by hosts.ts, registered before this module.
  const hosts = program.commands.find((c) => c.name() === 'hosts') ?? program.command('hosts');
  hosts
    .command('health')
    .argument('[host]', 'one host (default: all)')
    .option('--set <state>', `set the host's health by hand: ${HEALTH_STATES.join(', ')}`)
    .option('--reason <text>', 'with --set: why (shown by hosts health)')
    .option('--json', 'print as JSON')
    .description(
      "Show each host's health and why: a host where HealthQuarantineAfter jobs in a row broke while passing elsewhere is quarantined until its health check passes; maintenance keeps a host out of use until set good again.",
    )
    .action(async (name: string | undefined, o: { set?: string; reason?: string; json?: boolean }) =>
      withStore(async ({ store }) => {
        if (o.set !== undefined) {
          if (name === undefined) throw new UsageError('--set needs a host');
          if (!isHealthState(o.set))
            throw new UsageError(`--set ${o.set}: must be one of ${HEALTH_STATES.join(', ')}`);
          if (!(await store.getHost(name))) throw new UsageError(`no host '${name}'`);
          const ch = await store.lab.setHostHealth(
            name,
            o.set,
            o.reason ?? `set by hand by ${userInfo().username}`,
          );
          if (o.json) return printJson(ch);
          process.stdout.write(`host ${name}: ${ch.from} → ${ch.to}\n`);
          return;
        }
        if (name !== undefined && !(await store.getHost(name))) throw new UsageError(`no host '${name}'`);
        const records = await store.lab.hostHealth(name);
        if (name === undefined) {
          if (o.json) return printJson(records);
          process.stdout.write(
            `${table([
              ['host', 'health', 'since', 'broken in a row', 'why'],
              ...records.map((h) => [
                h.host,
                h.state,
                when(h.since),
                String(h.brokenStreak),
                h.reason || '-',
              ]),
            ])}\n`,
          );
          return;
        }
        const h = records[0]!;
        const events = (await store.listHostEvents(name))
          .filter((e) => e.kind === 'health' || e.kind === 'lease')
          .slice(-20);
        if (o.json) return printJson({ ...h, events });
        const out = [
          table([
            ['host', h.host],
            ['health', h.state],
            ['since', when(h.since)],
            ['why', h.reason || '-'],
            ['broken in a row', String(h.brokenStreak)],
            [
              'health check',
              h.checkFlight
                ? `flight ${h.checkFlight} (queued ${when(h.checkQueued)})`
                : h.checkQueued
                  ? `last queued ${when(h.checkQueued)}`
                  : '-',
            ],
          ]),
        ];
        if (events.length > 0)
          out.push('', 'recent events:', ...events.map((e) => `  ${when(e.at)}  ${e.kind}  ${e.detail}`));
        process.stdout.write(`${out.join('\n')}\n`);
      }),
    );
}
