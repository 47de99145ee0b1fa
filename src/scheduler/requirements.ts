/**
 * What a job needs from the lab, read from its definition runvars (OSSTEST-BEHAVIOUR §6):
 *  - idents: `host_idents` (space or comma separated), default `host`; a pair job `src_host dst_host`;
 *  - per ident, host flags: `all_hostflags` + `<ident>_hostflags` (comma lists; `!flag` = must not have);
 *  - `blessed-<intended>` for every ident when the flight's intended blessing is known;
 *  - `equiv-<class>`: a pseudo-flag, not looked up on hosts: every ident carrying it lands on hosts
 *    that share one real `equiv-*` host flag;
 *  - `share-build-<suite>-<arch>`: a real host flag that also lets a one-host build job use a slot
 *    of a shared build host of type `build-<suite>-<arch>` with the same harness revision;
 *  - a pre-set host: an `<ident>` runvar already naming a host (bisection pins hosts this way).
 */
import { SchedulerInputError } from './errors.js';

export interface IdentRequirement {
  ident: string;
  /** Host flags the host must have, sorted, `blessed-<intended>` included. */
  flags: string[];
  /** Host flags the host must not have (from `!flag`), sorted. */
  without: string[];
  /** Equivalence classes (the `<class>` of each `equiv-<class>`), sorted. */
  equiv: string[];
  /** The host named by the job's `<ident>` runvar: used as is, whatever its flags. */
  preset?: string;
  /** Share type (`build-<suite>-<arch>`) whose shared host slots this ident may use. */
  share?: string;
}

export interface JobRequirements {
  flight: string;
  job: string;
  idents: IdentRequirement[];
  /** The flight's intended blessing; null when no blessing is required (standalone). */
  intended: string | null;
  /** Harness revision the job runs with; a shared build host is joined only on the same one. */
  harness: string | null;
}

export interface RequirementsInput {
  flight: string;
  job: string;
  /** The job's definition runvars (not the synthesised ones: a `host` written by a previous run is no pin). */
  runvars: Readonly<Record<string, string>>;
  /** null: do not require `blessed-<intended>` (standalone mode). */
  intended: string | null;
  harness?: string | null;
  /** The recipe's idents when `host_idents` is absent; default [`host`]. */
  defaultIdents?: readonly string[];
}

const IDENT = /^[A-Za-z][A-Za-z0-9_]*$/;
const FLAG = /^[A-Za-z0-9][A-Za-z0-9_.+:=-]*$/;
const SHARE_PREFIX = 'share-';
const SHARE_FLAG = /^share-(build-.+)$/;

function splitFlags(where: string, val: string | undefined): string[] {
  if (val === undefined) return [];
  const out: string[] = [];
  for (const raw of val.split(',')) {
    const f = raw.trim();
    if (f === '') continue;
    const bare = f.startsWith('!') ? f.slice(1) : f;
    if (!FLAG.test(bare)) throw new SchedulerInputError(`${where}: bad host flag ${JSON.stringify(f)}`);
    out.push(f);
  }
  return out;
}

export function jobRequirements(input: RequirementsInput): JobRequirements {
  const { flight, job, runvars } = input;
  const where = (name: string) => `${flight}/${job}: runvar ${name}`;
  const identsVal = runvars.host_idents;
  const idents =
    identsVal !== undefined && identsVal.trim() !== ''
      ? identsVal.split(/[\s,]+/).filter((x) => x !== '')
      : [...(input.defaultIdents ?? ['host'])];
  if (idents.length === 0) throw new SchedulerInputError(`${flight}/${job}: the job names no host idents`);
  const seen = new Set<string>();
  for (const ident of idents) {
    if (!IDENT.test(ident))
      throw new SchedulerInputError(`${where('host_idents')}: bad host ident ${JSON.stringify(ident)}`);
    if (seen.has(ident))
      throw new SchedulerInputError(`${where('host_idents')}: host ident ${ident} named twice`);
    seen.add(ident);
  }
  if (input.intended !== null && !FLAG.test(input.intended))
    throw new SchedulerInputError(
      `${flight}/${job}: intended blessing ${JSON.stringify(input.intended)} cannot name a host flag`,
    );
  const all = splitFlags(where('all_hostflags'), runvars.all_hostflags);
  const out: IdentRequirement[] = idents.map((ident) => {
    const listed = [...all, ...splitFlags(where(`${ident}_hostflags`), runvars[`${ident}_hostflags`])];
    const flags = new Set<string>();
    const without = new Set<string>();
    const equiv = new Set<string>();
    let share: string | undefined;
    for (const f of listed) {
      if (f.startsWith('!')) {
        without.add(f.slice(1));
        continue;
      }
      if (f.startsWith('equiv-')) {
        const cls = f.slice('equiv-'.length);
        if (cls === '')
          throw new SchedulerInputError(`${where(`${ident}_hostflags`)}: equiv- names no class`);
        equiv.add(cls);
        continue;
      }
      const m = SHARE_FLAG.exec(f);
      if (m) {
        if (share !== undefined && share !== m[1])
          throw new SchedulerInputError(
            `${flight}/${job}: ident ${ident} asks for two share types (${SHARE_PREFIX}${share}, ${f})`,
          );
        share = m[1];
      }
      flags.add(f);
    }
    if (input.intended !== null) flags.add(`blessed-${input.intended}`);
    for (const f of flags)
      if (without.has(f))
        throw new SchedulerInputError(
          `${flight}/${job}: ident ${ident} both needs and excludes host flag ${f}`,
        );
    const preset = runvars[ident]?.trim();
    const r: IdentRequirement = {
      ident,
      flags: [...flags].sort(),
      without: [...without].sort(),
      equiv: [...equiv].sort(),
    };
    if (preset) r.preset = preset;
    if (share !== undefined) r.share = share;
    return r;
  });
  if (out.length > 1 && out.some((r) => r.share !== undefined))
    throw new SchedulerInputError(
      `${flight}/${job}: share-build-* host flags are for one-host build jobs; this job has idents ${idents.join(' ')}`,
    );
  return { flight, job, idents: out, intended: input.intended, harness: input.harness ?? null };
}

const signatures = new WeakMap<JobRequirements, string>();

/** A stable text for requirements that pick the same hosts (for caching candidate sets). */
export function requirementSignature(req: JobRequirements): string {
  let s = signatures.get(req);
  if (s === undefined) {
    s = JSON.stringify(req.idents.map((i) => [i.flags, i.without, i.equiv, i.preset ?? null]));
    signatures.set(req, s);
  }
  return s;
}
