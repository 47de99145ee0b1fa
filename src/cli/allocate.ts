/**
 * `osstest allocate [DURATION] HOST…` takes free hosts by hand (mg-allocate) as reservations owned by
 * $USER from now for DURATION (default 1h): no job is given them until then or until they are given
 * back with `osstest allocate '!HOST'…`. A host a job holds, or one reserved during that time, is
 * refused and nothing is taken. `--list` shows the hosts taken by hand.
 */
import type { Command } from 'commander';
import type { LabReservation } from '../db/lab/types.js';
import { currentUser, reservationTable } from './blockage.js';
import { withStore } from './context.js';
import { printJson, UsageError, when } from './output.js';
import { durationMs, parseDuration } from './times.js';

const DEFAULT_DURATION = '1h';

export function register(program: Command): void {
  program
    .command('allocate')
    .alias('mg-allocate')
    .argument('[words...]', "[DURATION] then hosts to take, or '!HOST' to give one back")
    .option('--label <text>', 'why (shown by --list and on the plan)')
    .option('--list', 'show the hosts taken by hand (reservations not yet over)')
    .option('--json', 'print as JSON')
    .description(
      `Take hosts by hand for DURATION (e.g. 30m, 2h; default ${DEFAULT_DURATION}) from now: no job is given them until then. '!HOST' gives a host you took back. A host a job holds or that is reserved (a blockage, someone else's) in that time is refused, and nothing is taken.`,
    )
    .action(async (words: string[], o: { label?: string; list?: boolean; json?: boolean }) =>
      withStore(async ({ store }) => {
        if (o.list) {
          if (words.length > 0) throw new UsageError('--list takes no hosts');
          const rs = (await store.lab.listReservations({ current: true })).filter((r) => r.kind === 'manual');
          if (o.json) return printJson(rs);
          process.stdout.write(rs.length === 0 ? 'no hosts taken by hand\n' : `${reservationTable(rs)}\n`);
          return;
        }
        const known = new Set((await store.listHosts()).map((h) => h.name));
        let rest = words;
        let duration = parseDuration(DEFAULT_DURATION, 'DURATION');
        // A first word starting with a digit is the duration unless it names a host.
        if (
          rest.length > 0 &&
          /^\d/.test(rest[0]!) &&
          (durationMs(rest[0]!) !== undefined || !known.has(rest[0]!))
        ) {
          duration = parseDuration(rest[0]!, 'DURATION');
          rest = rest.slice(1);
        }
        if (rest.length === 0) throw new UsageError('allocate needs hosts: [DURATION] HOST… or !HOST…');
        const giveBack = rest.filter((w) => w.startsWith('!')).map((w) => w.slice(1));
        const take = rest.filter((w) => !w.startsWith('!'));
        if (giveBack.some((h) => h === '')) throw new UsageError("'!' needs a host name after it");
        const both = take.filter((h) => giveBack.includes(h));
        if (both.length > 0) throw new UsageError(`host ${both.join(', ')} is both taken and given back`);
        const owner = currentUser();
        // Check every host exists before changing anything.
        const unknown = [...giveBack, ...take].filter((h) => !known.has(h));
        if (unknown.length > 0) throw new UsageError(`no host ${[...new Set(unknown)].join(', ')}`);
        let ended: LabReservation[] = [];
        if (giveBack.length > 0) {
          const mine = (await store.lab.listReservations({ current: true })).filter(
            (r) => r.kind === 'manual' && r.owner === owner,
          );
          const notMine = giveBack.filter((h) => !mine.some((r) => r.host === h));
          if (notMine.length > 0)
            throw new UsageError(`you (${owner}) have not taken ${notMine.join(', ')}: nothing given back`);
        }
        const now = Date.now();
        let made: LabReservation[] = [];
        if (take.length > 0)
          made = await store.lab.addReservations({
            hosts: take,
            start: now,
            end: now + duration,
            kind: 'manual',
            owner,
            label: o.label ?? `taken by hand by ${owner}`,
            exclusive: true,
            now,
          });
        if (giveBack.length > 0)
          ended = await store.lab.endReservations({ hosts: giveBack, owner, kind: 'manual' });
        if (o.json) return printJson({ taken: made, givenBack: ended });
        const out: string[] = [];
        for (const r of made) out.push(`took ${r.host} until ${when(r.end)} (reservation ${r.id})`);
        for (const h of [...new Set(ended.map((r) => r.host))]) out.push(`gave back ${h}`);
        process.stdout.write(`${out.join('\n')}\n`);
      }),
    );
}
