/**
 * The naming rules the store enforces (OSSTEST-BEHAVIOUR §1). Flight and job names become directory
 * names under Logs and Stash, so they can never hold `/` or start with `.`; runvar names become parts
 * of other names (`<ident>_hostflags`, `path_<part>dist`) and environment-like words, so they are
 * identifiers. Each check throws InvalidNameError quoting the bad name and the rule it broke.
 */
import { InvalidNameError, StoreError } from './errors.js';

const FLIGHT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const JOB = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;
const RUNVAR = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HOST_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
/** Same alphabet as the CLI's flag edits (src/cli/hosts.ts), plus `+` and `=` seen in real flags. */
const HOST_FLAG = /^[A-Za-z0-9][A-Za-z0-9_.:+=-]*$/;
/** Branches, intended blessings and blessings: they end up in file names (`allow.<branch>`) and URLs. */
const LABEL = /^[A-Za-z0-9][A-Za-z0-9._+-]*$/;
const MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

/** Longest name accepted anywhere: keeps paths and report columns sane. */
const MAX_NAME = 200;

function quote(s: string): string {
  return JSON.stringify(s);
}

function check(kind: string, name: unknown, re: RegExp, rule: string): string {
  if (typeof name !== 'string' || !re.test(name) || name.length > MAX_NAME) {
    const shown = typeof name === 'string' ? quote(name) : String(name);
    throw new InvalidNameError(`invalid ${kind} ${shown}: ${rule}`);
  }
  return name;
}

export function checkFlightName(name: string): string {
  return check(
    'flight name',
    name,
    FLIGHT,
    "a flight name starts with a letter or digit and has only letters, digits, '.', '_' and '-' (it becomes a directory name)",
  );
}

export function checkJobName(name: string): string {
  return check(
    'job name',
    name,
    JOB,
    "a job name starts with a letter or digit and has only letters, digits, '.', '_', '+' and '-' (it becomes a directory name)",
  );
}

export function checkRunvarName(name: string): string {
  return check(
    'runvar name',
    name,
    RUNVAR,
    "a runvar name starts with a letter or '_' and has only letters, digits and '_'",
  );
}

/** Host idents (`host`, `src_host`) name runvars, so they follow the runvar rule. */
export function checkHostIdent(name: string): string {
  return check(
    'host ident',
    name,
    RUNVAR,
    "a host ident starts with a letter or '_' and has only letters, digits and '_'",
  );
}

export function checkHostName(name: string): string {
  const rule =
    "a host name is DNS labels joined by '.': each 1-63 letters, digits and '-', not starting or ending with '-'";
  if (typeof name !== 'string' || name.length > 253 || !name.split('.').every((l) => HOST_LABEL.test(l))) {
    throw new InvalidNameError(
      `invalid host name ${typeof name === 'string' ? quote(name) : String(name)}: ${rule}`,
    );
  }
  return name;
}

export function checkHostFlag(flag: string): string {
  return check(
    'host flag',
    flag,
    HOST_FLAG,
    "a host flag starts with a letter or digit and has only letters, digits and '_', '.', ':', '+', '=', '-'",
  );
}

export function checkHostProp(name: string): string {
  return check(
    'host property name',
    name,
    RUNVAR,
    "a property name starts with a letter or '_' and has only letters, digits and '_'",
  );
}

/** Branch, intended blessing, blessing. */
export function checkLabel(kind: string, name: string): string {
  return check(
    kind,
    name,
    LABEL,
    `a ${kind} starts with a letter or digit and has only letters, digits, '.', '_', '+' and '-'`,
  );
}

/** Lower-cases a MAC address written with `:` or `-`, or throws naming the host it was for. */
export function normaliseMac(mac: string, host: string): string {
  const m = typeof mac === 'string' ? mac.trim().toLowerCase().replace(/-/g, ':') : '';
  if (!MAC.test(m)) {
    throw new StoreError(
      `invalid MAC address ${quote(String(mac))} for host ${host}: expected six hex pairs like 52:54:00:12:34:56`,
    );
  }
  return m;
}

/** Texts that must be present (recipe, testcase, testid, harness revision). */
export function checkNonEmpty(kind: string, s: string): string {
  if (typeof s !== 'string' || s.trim() === '') throw new StoreError(`${kind} must not be empty`);
  return s;
}

const EVENT_KIND = /^[a-z][a-z0-9-]*$/;
/** Longest host event detail kept; longer ones are cut (they are log lines, not data). */
export const MAX_EVENT_DETAIL = 2000;

/** A host event's kind is a lower-case word (`dhcp`, `fetch`, `progress`…); its detail is cut to a log line. */
export function checkHostEvent(
  host: string,
  e: { kind: string; detail: string },
): { kind: string; detail: string } {
  checkHostName(host);
  check(
    'host event kind',
    e.kind,
    EVENT_KIND,
    "a host event kind is a lower-case word (letters, digits, '-')",
  );
  if (typeof e.detail !== 'string')
    throw new StoreError(`host event detail must be a string, not ${typeof e.detail}`);
  return {
    kind: e.kind,
    detail: e.detail.length > MAX_EVENT_DETAIL ? `${e.detail.slice(0, MAX_EVENT_DETAIL)}…` : e.detail,
  };
}
