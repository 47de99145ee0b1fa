/**
 * The naive allocator, kept as a baseline for tests and the bench (the product does not use it):
 * jobs in arrival order, each given the first free hosts that fit (by name), now or never; no
 * bookings, no estimates. It keeps hosts busy, but a job needing two equivalent hosts at once can
 * wait for ever while one-host jobs keep taking whichever of them frees first.
 */
import { findAssignment, HostIndex, jobCandidates } from './candidates.js';
import type { Decision, Snapshot } from './types.js';

export function greedyPlan(snap: Snapshot): Decision[] {
  const index = new HostIndex(snap.hosts);
  const busy = new Set<string>(snap.allocations.map((a) => a.host));
  for (const r of snap.reservations) if (r.start <= snap.now && r.end > snap.now) busy.add(r.host);
  const queue = [...snap.queue].sort((a, b) => a.waitStart - b.waitStart || (a.key < b.key ? -1 : 1));
  const out: Decision[] = [];
  for (const j of queue) {
    const jc = jobCandidates(j.req, index);
    if (jc.impossible) {
      out.push({ kind: 'impossible', key: j.key, warnings: jc.warnings, reason: jc.impossible });
      continue;
    }
    const a = findAssignment(jc, index, 'usable', (_i, h) => !busy.has(h));
    if (!a) {
      out.push({ kind: 'wait', key: j.key, warnings: jc.warnings, reason: 'no fitting hosts free now' });
      continue;
    }
    const hosts: Record<string, string> = {};
    j.req.idents.forEach((r, k) => {
      hosts[r.ident] = a[k]!;
      busy.add(a[k]!);
    });
    out.push({
      kind: 'allocate',
      key: j.key,
      warnings: jc.warnings,
      hosts,
      start: snap.now,
      end: snap.now + j.durationMs,
    });
  }
  return out;
}
