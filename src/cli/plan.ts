/**
 * `osstest plan [--json]`: the resource plan as a script or a terminal sees it — what the planner
 * would decide now for every queued job of the lab (the same full plan as the /plan/ page and
 * /api/plan: hosts held, bookings, waits, starved and impossible jobs). Reads, writes nothing.
 */
import type { Command } from 'commander';
import { loadResourcePlan } from '../report/html/plan-view.js';
import { withStore } from './context.js';
import { printJson, secs, table } from './output.js';

export function register(program: Command): void {
  program
    .command('plan')
    .option('--json', 'print as JSON: {now, hosts, spans, decisions}, as /api/plan serves it')
    .description(
      "Show the lab's resource plan: for every runnable queued job, the planner's decision now (allocate, booked hosts and when, wait, starved, impossible) and each host's holders and bookings. Writes nothing.",
    )
    .action(async (o: { json?: boolean }) =>
      withStore(async ({ store, config }) => {
        const r = await loadResourcePlan(store, config);
        const p = r.plan;
        if (o.json) return printJson({ now: p.now, hosts: r.hosts, spans: p.spans, decisions: p.decisions });
        const rows = p.decisions.map((d) => {
          switch (d.kind) {
            case 'allocate':
            case 'book':
              return [
                d.key,
                d.kind === 'allocate' ? 'allocate now' : `booked in ${secs(d.start - p.now)}`,
                Object.entries(d.hosts)
                  .map(([i, h]) => `${i}=${h}`)
                  .join(' '),
                `for ${secs(d.end - d.start)}`,
              ];
            default:
              return [d.key, d.kind, '-', d.reason];
          }
        });
        const out = [
          `${r.hosts.length} host(s), ${r.hosts.filter((h) => !h.inService).length} out of service; ${p.decisions.length} runnable queued job(s)`,
        ];
        if (rows.length > 0) out.push(table([['job', 'decision', 'hosts', 'expected / why'], ...rows]));
        process.stdout.write(`${out.join('\n')}\n`);
      }),
    );
}
