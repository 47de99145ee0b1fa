/**
 * `osstest blockage FROM TO FLAG [--label TEXT]` books every host with FLAG for a maintenance window
 * (mg-blockage): the planner schedules jobs around it and no job is given such a host while it lasts
 * (jobs already running keep theirs). `--list` shows the blockages not yet over; `--remove ID` drops one.
 */
import { userInfo } from 'node:os';
import type { Command } from 'commander';
import type { LabReservation } from '../db/lab/types.js';
import { withStore } from './context.js';
import { printJson, table, UsageError, when } from './output.js';
import { parseWhen } from './times.js';

/** Who books by hand: $USER, else the account's name. */
export function currentUser(): string {
  return process.env.USER || userInfo().username;
}

/** Reservations as a table for people. */
export function reservationTable(rs: readonly LabReservation[]): string {
  return table([
    ['id', 'host', 'kind', 'from', 'to', 'owner', 'label'],
    ...rs.map((r) => [String(r.id), r.host, r.kind, when(r.start), when(r.end), r.owner, r.label]),
  ]);
}

export function register(program: Command): void {
  program
    .command('blockage')
    .alias('mg-blockage')
    .argument('[from]', 'start: now, +DURATION (e.g. +2h) or an ISO time (UTC unless it names a zone)')
    .argument('[to]', 'end: +DURATION from now, or an ISO time')
    .argument('[flag]', 'every host with this flag is blocked')
    .option('--label <text>', 'why (shown by --list and on the plan)')
    .option('--list', 'show the blockages not yet over')
    .option('--remove <id>', 'remove the blockage with this id')
    .option('--json', 'print as JSON')
    .description(
      'Block every host with FLAG from FROM to TO (a maintenance window): the planner books jobs around it and gives no job such a host while it lasts; jobs already running keep their hosts.',
    )
    .action(
      async (
        from: string | undefined,
        to: string | undefined,
        flag: string | undefined,
        o: { label?: string; list?: boolean; remove?: string; json?: boolean },
      ) =>
        withStore(async ({ store, config }) => {
          if (o.list || o.remove !== undefined) {
            if (from !== undefined || (o.list && o.remove !== undefined))
              throw new UsageError('--list and --remove take no FROM TO FLAG, and not each other');
            if (o.remove !== undefined) {
              const id = Number(o.remove);
              if (!/^\d+$/.test(o.remove) || !Number.isSafeInteger(id) || id < 1)
                throw new UsageError(`--remove ${o.remove}: a blockage id is a whole number (see --list)`);
              const r = (await store.lab.listReservations()).find((x) => x.id === id);
              if (!r) throw new UsageError(`no blockage ${id} (see osstest blockage --list)`);
              if (r.kind !== 'blockage')
                throw new UsageError(
                  `reservation ${id} is not a blockage but host ${r.host} taken by hand by ${r.owner}: give it back with osstest allocate '!${r.host}'`,
                );
              await store.lab.removeReservation(id);
              if (o.json) return printJson(r);
              process.stdout.write(`removed blockage ${id} of ${r.host}\n`);
              return;
            }
            const rs = (await store.lab.listReservations({ current: true })).filter(
              (r) => r.kind === 'blockage',
            );
            if (o.json) return printJson(rs);
            process.stdout.write(rs.length === 0 ? 'no blockages\n' : `${reservationTable(rs)}\n`);
            return;
          }
          if (from === undefined || to === undefined || flag === undefined)
            throw new UsageError('blockage needs FROM TO FLAG (or --list, --remove ID)');
          const now = Date.now();
          const start = parseWhen(from, 'FROM', now);
          const end = parseWhen(to, 'TO', now);
          if (start >= end) throw new UsageError(`FROM (${when(start)}) must be before TO (${when(end)})`);
          if (end <= now) throw new UsageError(`TO (${when(end)}) is in the past: nothing to block`);
          const hosts = (await store.listHosts())
            .filter((h) => config.hostFlags(h.name, h.flags).includes(flag))
            .map((h) => h.name);
          if (hosts.length === 0) throw new UsageError(`no host has flag '${flag}': nothing blocked`);
          const made = await store.lab.addReservations({
            hosts,
            start,
            end,
            kind: 'blockage',
            owner: currentUser(),
            label: o.label ?? `blockage of ${flag}`,
          });
          if (o.json) return printJson(made);
          process.stdout.write(
            `blocked ${made.length} host(s) with ${flag} from ${when(start)} to ${when(end)}\n${reservationTable(made)}\n`,
          );
        }),
    );
}
