/**
 * Which hosts can serve each ident of a job, and the assignments of hosts to a job's idents:
 * no host twice, and every equivalence class of idents on hosts that share one real `equiv-*` flag.
 *
 * An assignment is found by bipartite matching (idents to hosts) for each choice of one real
 * `equiv-*` flag per class, so a pair job over 50 hosts costs a few hundred steps, not 2,500.
 */
import type { IdentRequirement, JobRequirements } from './requirements.js';
import { inService, type SchedHost } from './types.js';

/** The snapshot's hosts, with their flags as sets, built once per plan. */
export class HostIndex {
  readonly byName = new Map<string, SchedHost>();
  /** Sorted, for deterministic results. */
  readonly names: string[];
  readonly flagSet = new Map<string, ReadonlySet<string>>();
  /** Each host's real `equiv-*` flags (without the `equiv-` prefix). */
  readonly equivOf = new Map<string, readonly string[]>();

  constructor(hosts: readonly SchedHost[]) {
    for (const h of hosts) {
      this.byName.set(h.name, h);
      this.flagSet.set(h.name, new Set(h.flags));
      this.equivOf.set(
        h.name,
        h.flags.filter((f) => f.startsWith('equiv-')).map((f) => f.slice('equiv-'.length)),
      );
    }
    this.names = [...this.byName.keys()].sort();
  }

  has(host: string, flag: string): boolean {
    return this.flagSet.get(host)?.has(flag) ?? false;
  }
}

export interface IdentCandidates {
  ident: string;
  /** Hosts that satisfy the ident whatever their health, sorted. */
  all: string[];
  /** Of those, the hosts in service (not quarantined, not in maintenance). */
  usable: string[];
  preset?: string;
}

export interface EquivClass {
  name: string;
  /** Indexes into the job's idents. */
  idents: number[];
  /** Real equiv flags (without `equiv-`) that every ident of the class has a candidate with. */
  options: string[];
}

export interface JobCandidates {
  idents: IdentCandidates[];
  classes: EquivClass[];
  /** For each ident (by index), the classes (indexes into `classes`) it belongs to. */
  identClasses: number[][];
  warnings: string[];
  /** Why no assignment exists whatever the hosts' health and use; absent when one does. */
  impossible?: string;
  /** Why no assignment exists among hosts in service; absent when one does. */
  outOfService?: string;
}

function lacking(
  index: HostIndex,
  host: string,
  r: IdentRequirement,
): { missing: string[]; extra: string[] } {
  return {
    missing: r.flags.filter((f) => !index.has(host, f)),
    extra: r.without.filter((f) => index.has(host, f)),
  };
}

function satisfies(index: HostIndex, host: string, r: IdentRequirement): boolean {
  const have = index.flagSet.get(host);
  if (!have) return false;
  for (const f of r.flags) if (!have.has(f)) return false;
  for (const f of r.without) if (have.has(f)) return false;
  return true;
}

function describeNone(index: HostIndex, r: IdentRequirement): string {
  const want = [...r.flags, ...r.without.map((f) => `!${f}`)].join(',') || '(no flags)';
  let best = Number.POSITIVE_INFINITY;
  let near: string[] = [];
  for (const h of index.names) {
    const l = lacking(index, h, r);
    const n = l.missing.length + l.extra.length;
    if (n < best) {
      best = n;
      near = [];
    }
    if (n === best) near.push(`${h} lacks ${[...l.missing, ...l.extra.map((f) => `!${f}`)].join(',')}`);
  }
  const closest = near.length > 0 ? `; closest: ${near.slice(0, 3).join('; ')}` : '';
  return `ident ${r.ident}: no host has ${want}${closest}`;
}

/** Candidate hosts of each ident, the job's equivalence classes, and whether it can ever be placed. */
export function jobCandidates(req: JobRequirements, index: HostIndex): JobCandidates {
  const warnings: string[] = [];
  const problems: string[] = [];
  const idents: IdentCandidates[] = [];
  // Idents pinned to a host with no equiv flag cannot take part in their classes: they are
  // used as pinned (with a warning) and the class constrains the others.
  const classMembers = new Map<string, number[]>();
  const pinnedTo = new Map<string, string>();
  req.idents.forEach((r, i) => {
    let all: string[];
    if (r.preset !== undefined) {
      const h = r.preset;
      if (!index.byName.has(h)) {
        problems.push(`ident ${r.ident}: pre-set host ${h} (runvar ${r.ident}) is not a known host`);
        all = [];
      } else {
        const other = pinnedTo.get(h);
        if (other !== undefined) problems.push(`idents ${other} and ${r.ident} are both pinned to host ${h}`);
        pinnedTo.set(h, r.ident);
        const l = lacking(index, h, r);
        if (l.missing.length + l.extra.length > 0)
          warnings.push(
            `ident ${r.ident}: pre-set host ${h} ${[
              l.missing.length > 0 ? `lacks ${l.missing.join(',')}` : '',
              l.extra.length > 0 ? `has excluded ${l.extra.join(',')}` : '',
            ]
              .filter((x) => x !== '')
              .join(' and ')}; used as pinned`,
          );
        all = [h];
      }
    } else {
      all = index.names.filter((h) => satisfies(index, h, r));
      if (all.length === 0) problems.push(describeNone(index, r));
    }
    const usable = all.filter((h) => inService(index.byName.get(h)!));
    const c: IdentCandidates = { ident: r.ident, all, usable };
    if (r.preset !== undefined) c.preset = r.preset;
    idents.push(c);
    for (const cls of r.equiv) {
      if (
        r.preset !== undefined &&
        index.byName.has(r.preset) &&
        (index.equivOf.get(r.preset) ?? []).length === 0
      ) {
        warnings.push(
          `ident ${r.ident}: pre-set host ${r.preset} has no equiv-* flag; equiv-${cls} not applied to it`,
        );
        continue;
      }
      const m = classMembers.get(cls) ?? [];
      m.push(i);
      classMembers.set(cls, m);
    }
  });
  const classes: EquivClass[] = [];
  const identClasses: number[][] = req.idents.map(() => []);
  for (const [name, members] of [...classMembers].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    let options: Set<string> | undefined;
    for (const i of members) {
      const has = new Set(idents[i]!.all.flatMap((h) => index.equivOf.get(h) ?? []));
      options = options === undefined ? has : new Set([...options].filter((f) => has.has(f)));
    }
    const opts = [...(options ?? [])].sort();
    if (opts.length === 0 && members.every((i) => idents[i]!.all.length > 0))
      problems.push(
        `equiv-${name}: no real equiv-* host flag is shared by candidates of idents ${members
          .map((i) => req.idents[i]!.ident)
          .join(', ')}`,
      );
    for (const i of members) identClasses[i]!.push(classes.length);
    classes.push({ name, idents: members, options: opts });
    // A host with none of the class's shared equiv flags can never serve its idents.
    for (const i of members) {
      const c = idents[i]!;
      const ok = (h: string) => (index.equivOf.get(h) ?? []).some((f) => opts.includes(f));
      c.all = c.all.filter(ok);
      c.usable = c.usable.filter(ok);
    }
  }
  const jc: JobCandidates = { idents, classes, identClasses, warnings };
  if (problems.length === 0 && findAssignment(jc, index, 'all', () => true) === undefined)
    problems.push(
      `no assignment of distinct hosts to idents ${req.idents.map((r) => r.ident).join(', ')} satisfies them together`,
    );
  if (problems.length > 0) {
    jc.impossible = problems.join('; ');
    return jc;
  }
  if (findAssignment(jc, index, 'usable', () => true) === undefined) {
    const out = idents.flatMap((c) =>
      c.all.filter((h) => !inService(index.byName.get(h)!)).map((h) => `${h} ${index.byName.get(h)!.health}`),
    );
    jc.outOfService = `candidate hosts out of service: ${[...new Set(out)].sort().join(', ')}`;
  }
  return jc;
}

/** Extra condition on (ident index, host) beyond the candidate sets: free at the time wanted, say. */
export type UsableFn = (ident: number, host: string) => boolean;

/** Each combination of one real equiv flag per class (a single empty combination when there are no classes). */
function* classChoices(jc: JobCandidates): Generator<string[]> {
  const n = jc.classes.length;
  if (n === 0) {
    yield [];
    return;
  }
  const idx = new Array<number>(n).fill(0);
  if (jc.classes.some((c) => c.options.length === 0)) return;
  for (;;) {
    yield idx.map((k, c) => jc.classes[c]!.options[k]!);
    let c = n - 1;
    while (c >= 0) {
      idx[c]! += 1;
      if (idx[c]! < jc.classes[c]!.options.length) break;
      idx[c] = 0;
      c -= 1;
    }
    if (c < 0) return;
  }
}

function allowedLists(
  jc: JobCandidates,
  index: HostIndex,
  pool: 'all' | 'usable',
  usable: UsableFn,
  choice: readonly string[],
  order?: (ident: number) => readonly string[],
): string[][] {
  return jc.idents.map((c, i) => {
    const base = order ? order(i) : c[pool];
    const need = jc.identClasses[i]!.map((k) => `equiv-${choice[k]!}`);
    return base.filter((h) => need.every((f) => index.has(h, f)) && usable(i, h));
  });
}

/** Kuhn's augmenting paths: a host per ident, all distinct, or undefined. */
function match(lists: readonly string[][]): string[] | undefined {
  const owner = new Map<string, number>();
  const tryIdent = (i: number, seen: Set<string>): boolean => {
    for (const h of lists[i]!) {
      if (seen.has(h)) continue;
      seen.add(h);
      const o = owner.get(h);
      if (o === undefined || tryIdent(o, seen)) {
        owner.set(h, i);
        return true;
      }
    }
    return false;
  };
  for (let i = 0; i < lists.length; i++) {
    // A free host first (in list order), so the result follows the lists' preference where it can.
    const free = lists[i]!.find((h) => !owner.has(h));
    if (free !== undefined) owner.set(free, i);
    else if (!tryIdent(i, new Set())) return undefined;
  }
  const out = new Array<string>(lists.length);
  for (const [h, i] of owner) out[i] = h;
  return out;
}

/** Some valid assignment (host per ident, by ident index) among `pool` hosts that pass `usable`. */
export function findAssignment(
  jc: JobCandidates,
  index: HostIndex,
  pool: 'all' | 'usable',
  usable: UsableFn,
): string[] | undefined {
  for (const choice of classChoices(jc)) {
    const lists = allowedLists(jc, index, pool, usable, choice);
    if (lists.some((l) => l.length === 0)) continue;
    const m = match(lists);
    if (m) return m;
  }
  return undefined;
}

/**
 * Every valid assignment among usable hosts that pass `usable` (at most `limit`), in the order
 * `order` lists each ident's hosts (best first), so a truncated enumeration still holds good ones.
 */
export function* assignments(
  jc: JobCandidates,
  index: HostIndex,
  usable: UsableFn,
  order?: (ident: number) => readonly string[],
  limit = 5000,
): Generator<string[]> {
  let n = 0;
  const seen = new Set<string>();
  for (const choice of classChoices(jc)) {
    const lists = allowedLists(jc, index, 'usable', usable, choice, order);
    if (lists.some((l) => l.length === 0)) continue;
    const cur: string[] = [];
    const used = new Set<string>();
    const out: string[][] = [];
    const rec = (i: number): boolean => {
      if (i === lists.length) {
        const k = cur.join('\n');
        if (!seen.has(k)) {
          seen.add(k);
          out.push([...cur]);
          n += 1;
        }
        return n >= limit;
      }
      for (const h of lists[i]!) {
        if (used.has(h)) continue;
        used.add(h);
        cur.push(h);
        const stop = rec(i + 1);
        cur.pop();
        used.delete(h);
        if (stop) return true;
      }
      return false;
    };
    const stop = rec(0);
    yield* out;
    if (stop) return;
  }
}
