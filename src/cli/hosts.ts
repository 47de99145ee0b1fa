import type { Command } from 'commander';
import type { Config } from '../config/config.js';
import { checkHostFlag, checkHostName, checkHostProp, normaliseMac } from '../db/names.js';
import type { Store } from '../db/store.js';
import type { Host } from '../db/types.js';
import {
  evalFlagExpr,
  FlagExprError,
  flagExprNames,
  formatFlagExpr,
  parseFlagExpr,
} from '../model/flag-expr.js';
import { type NameGlob, nameGlob } from '../model/glob.js';
import { hostInfo } from '../testcase/hosts.js';
import { withStore } from './context.js';
import { printJson, table, UsageError } from './output.js';

async function mustHost(store: Store, name: string) {
  const h = await store.getHost(name);
  if (!h) throw new UsageError(`no host '${name}' (osstest hosts add ${name} --ip ADDRESS)`);
  return h;
}

async function describeHost(store: Store, config: Config, name: string) {
  const h = await mustHost(store, name);
  const info = hostInfo(config, h);
  const alloc = (await store.listAllocations()).find((a) => a.host === name) ?? null;
  const propNames = new Set([
    ...Object.keys(h.props),
    ...['Ip', 'SshPort', 'SshUser', 'Workdir', 'InstallMethod', 'PowerMethod', 'SerialMethod'],
  ]);
  const props: Record<string, string> = {};
  for (const p of [...propNames].sort()) {
    const v = info.prop(p);
    if (v !== undefined) props[p] = v;
  }
  return {
    name,
    mac: h.mac,
    ip: h.ip,
    address: info.address,
    flags: info.flags,
    dbFlags: h.flags,
    props,
    dbProps: h.props,
    allocation: alloc,
  };
}

/** `+flag`/`flag` adds, `-flag`/`!flag` removes. */
export function parseFlagEdits(words: readonly string[]): { add: string[]; remove: string[] } {
  const add: string[] = [];
  const remove: string[] = [];
  for (const w of words) {
    const m = /^([+!-]?)([A-Za-z0-9][A-Za-z0-9_.:-]*)$/.exec(w);
    if (!m) throw new UsageError(`'${w}' is not a flag edit (+flag, -flag or !flag)`);
    (m[1] === '-' || m[1] === '!' ? remove : add).push(m[2]!);
  }
  return { add, remove };
}

function glob(text: string, what: string): NameGlob {
  try {
    return nameGlob(text);
  } catch (e) {
    throw new UsageError(`${what}: ${(e as Error).message}`);
  }
}

/** The hosts a glob names; none is an error (a typo would otherwise change nothing, silently). */
async function hostsMatching(store: Store, text: string): Promise<Host[]> {
  const g = glob(text, 'host glob');
  const all = await store.listHosts();
  const hit = all.filter((h) => g.test(h.name));
  if (hit.length === 0) {
    throw new UsageError(`no host matches '${text}' (hosts: ${all.map((h) => h.name).join(' ') || 'none'})`);
  }
  return hit;
}

function parsePropEdits(words: readonly string[]): [string, string | null][] {
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw new UsageError(`'${w}' is not Prop=value (Prop= deletes)`);
    const prop = w.slice(0, eq);
    try {
      checkHostProp(prop);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const v = w.slice(eq + 1);
    return [prop, v === '' ? null : v];
  });
}

function parseExpr(text: string) {
  try {
    return parseFlagExpr(text);
  } catch (e) {
    if (e instanceof FlagExprError) throw new UsageError(`flag expression: ${e.message}\n${e.pointer()}`);
    throw e;
  }
}

export function register(program: Command): void {
  const hosts = program
    .command('hosts')
    .alias('mg-hosts')
    .description('Inspect and edit the host database (OSSTest name: mg-hosts)');

  hosts
    .command('list')
    .option('--json', 'print as JSON')
    .description('List hosts with address, flags and who holds them')
    .action(async (o: { json?: boolean }) =>
      withStore(async ({ store, config }) => {
        const all = [];
        for (const h of await store.listHosts()) all.push(await describeHost(store, config, h.name));
        if (o.json) return printJson(all);
        process.stdout.write(
          `${table([
            ['host', 'address', 'flags', 'allocated to'],
            ...all.map((h) => [
              h.name,
              h.address,
              h.flags.join(','),
              h.allocation ? `${h.allocation.flight}/${h.allocation.job}` : '-',
            ]),
          ])}\n`,
        );
      }),
    );

  hosts
    .command('show')
    .argument('<host>', 'host name')
    .option('--json', 'print as JSON')
    .description('Show one host: address, effective flags and properties (config over database), allocation')
    .action(async (name: string, o: { json?: boolean }) =>
      withStore(async ({ store, config }) => {
        const d = await describeHost(store, config, name);
        if (o.json) return printJson(d);
        process.stdout.write(
          `${table([
            ['host', d.name],
            ['address', d.address],
            ['mac', d.mac ?? '-'],
            ['flags', d.flags.join(',')],
            [
              'allocated to',
              d.allocation ? `${d.allocation.flight}/${d.allocation.job} as ${d.allocation.ident}` : '-',
            ],
            ...Object.entries(d.props).map(([k, v]) => [`  ${k}`, v]),
          ])}\n`,
        );
      }),
    );

  hosts
    .command('add')
    .argument('<host>', 'host name')
    .option('--ip <address>', 'address the controller reaches it at')
    .option('--mac <mac>', 'MAC address of its boot interface')
    .option('--flags <flags>', 'comma-separated flags')
    .description('Add a host to the database (or update its address)')
    .action(async (name: string, o: { ip?: string; mac?: string; flags?: string }) =>
      withStore(async ({ store }) => {
        const edits = parseFlagEdits((o.flags ?? '').split(',').filter((f) => f !== ''));
        await store.upsertHost({ name, ...(o.ip ? { ip: o.ip } : {}), ...(o.mac ? { mac: o.mac } : {}) });
        if (edits.add.length > 0) await store.setHostFlags(name, edits.add, edits.remove);
      }),
    );

  hosts
    .command('flags')
    .argument('<host>', 'host name')
    .argument('[edits...]', '+flag / flag adds, -flag / !flag removes; none: show')
    .option('--json', 'print as JSON')
    .allowUnknownOption()
    .description("Show or edit a host's flags in the database (config HostFlags apply on top)")
    .action(async (name: string, words: string[], o: { json?: boolean }) =>
      withStore(async ({ store, config }) => {
        await mustHost(store, name);
        const { add, remove } = parseFlagEdits(words);
        if (add.length + remove.length > 0) await store.setHostFlags(name, add, remove);
        const h = await mustHost(store, name);
        const flags = config.hostFlags(name, h.flags);
        if (o.json) return printJson({ host: name, flags, dbFlags: h.flags });
        process.stdout.write(`${flags.join('\n')}\n`);
      }),
    );

  hosts
    .command('props')
    .argument('<host>', 'host name')
    .argument('[assignments...]', 'Prop=value sets, Prop= deletes; none: show')
    .option('--json', 'print as JSON')
    .description(
      "Show or edit a host's properties in the database (config HostProp_<host>_<Prop> wins over them)",
    )
    .action(async (name: string, words: string[], o: { json?: boolean }) =>
      withStore(async ({ store, config }) => {
        await mustHost(store, name);
        const edits = words.map((w) => {
          const eq = w.indexOf('=');
          if (eq <= 0 || !/^[A-Za-z][A-Za-z0-9_]*$/.test(w.slice(0, eq)))
            throw new UsageError(`'${w}' is not Prop=value`);
          return [w.slice(0, eq), w.slice(eq + 1)] as const;
        });
        for (const [k, v] of edits) await store.setHostProp(name, k, v === '' ? null : v);
        const d = await describeHost(store, config, name);
        if (o.json) return printJson({ host: name, props: d.props, dbProps: d.dbProps });
        process.stdout.write(`${table(Object.entries(d.props).map(([k, v]) => [k, v]))}\n`);
      }),
    );

  hosts
    .command('create-like')
    .argument('<new>', 'name of the new host')
    .argument('<existing>', 'host whose flags and properties it gets')
    .option('--ip <address>', 'address of the new host')
    .option('--mac <mac>', 'MAC address of its boot interface')
    .option('--json', 'print the new host as JSON')
    .description(
      'Add a host with the database flags and properties of another (not its address; config HostFlags_/HostProp_ of the other are not copied)',
    )
    .action(async (name: string, like: string, o: { ip?: string; mac?: string; json?: boolean }) =>
      withStore(async ({ store }) => {
        checkHostName(name);
        if (o.mac !== undefined) normaliseMac(o.mac, name);
        const src = await mustHost(store, like);
        if (await store.getHost(name)) throw new UsageError(`host '${name}' already exists`);
        await store.upsertHost({ name, ...(o.ip ? { ip: o.ip } : {}), ...(o.mac ? { mac: o.mac } : {}) });
        if (src.flags.length > 0) await store.setHostFlags(name, src.flags);
        for (const [k, v] of Object.entries(src.props)) await store.setHostProp(name, k, v);
        const h = await mustHost(store, name);
        if (o.json) return printJson(h);
        process.stdout.write(
          `${name}: like ${like}; flags ${h.flags.join(',') || '-'}; props ${
            Object.entries(h.props)
              .map(([k, v]) => `${k}=${v}`)
              .join(' ') || '-'
          }\n`,
        );
      }),
    );

  hosts
    .command('setflags')
    .argument('<hostglob>', 'hosts: * and ? globs, commas between alternatives')
    .argument('<edits...>', '+flag / flag adds, -flag / !flag removes')
    .option('--json', 'print each host with its database flags afterwards')
    .allowUnknownOption()
    .description('Add and remove database flags on every host the glob matches')
    .action(async (pattern: string, words: string[], o: { json?: boolean }) =>
      withStore(async ({ store }) => {
        const { add, remove } = parseFlagEdits(words);
        for (const f of [...add, ...remove]) checkHostFlag(f);
        const both = add.filter((f) => remove.includes(f));
        if (both.length > 0) throw new UsageError(`flag ${both[0]} is both added and removed`);
        const targets = await hostsMatching(store, pattern);
        const out = [];
        for (const h of targets) {
          await store.setHostFlags(h.name, add, remove);
          out.push({ host: h.name, flags: (await mustHost(store, h.name)).flags });
        }
        if (o.json) return printJson(out);
        process.stdout.write(`${table(out.map((r) => [r.host, r.flags.join(',') || '-']))}\n`);
      }),
    );

  hosts
    .command('setprops')
    .argument('<hostglob>', 'hosts: * and ? globs, commas between alternatives')
    .argument('<assignments...>', 'Prop=value sets, Prop= deletes')
    .option('--json', 'print each host with its database properties afterwards')
    .description('Set or delete database properties on every host the glob matches')
    .action(async (pattern: string, words: string[], o: { json?: boolean }) =>
      withStore(async ({ store }) => {
        const edits = parsePropEdits(words);
        const targets = await hostsMatching(store, pattern);
        const out = [];
        for (const h of targets) {
          for (const [k, v] of edits) await store.setHostProp(h.name, k, v);
          out.push({ host: h.name, props: (await mustHost(store, h.name)).props });
        }
        if (o.json) return printJson(out);
        process.stdout.write(
          `${table(
            out.map((r) => [
              r.host,
              Object.entries(r.props)
                .map(([k, v]) => `${k}=${v}`)
                .join(' ') || '-',
            ]),
          )}\n`,
        );
      }),
    );

  hosts
    .command('select')
    .argument('<expr...>', "flag expression, e.g. 'arch-amd64 & !quarantined & (equiv-1 | equiv-2)'")
    .option('--json', 'print {expr, hosts} as JSON')
    .description(
      'List the hosts whose flags (database and config) satisfy an expression: ! not, & and, | or (that order of precedence), parentheses; * and ? in a flag match any flag like it',
    )
    .action(async (words: string[], o: { json?: boolean }) =>
      withStore(async ({ store, config }) => {
        const expr = parseExpr(words.join(' '));
        const all = (await store.listHosts()).map((h) => ({
          name: h.name,
          flags: config.hostFlags(h.name, h.flags),
        }));
        const known = new Set(all.flatMap((h) => h.flags));
        for (const n of flagExprNames(expr)) {
          if (!evalFlagExpr({ kind: 'flag', name: n, column: 0 }, known))
            process.stderr.write(`osstest: note: no host has flag '${n}'\n`);
        }
        const hit = all.filter((h) => evalFlagExpr(expr, h.flags)).map((h) => h.name);
        if (o.json) return printJson({ expr: formatFlagExpr(expr), hosts: hit });
        if (hit.length > 0) process.stdout.write(`${hit.join('\n')}\n`);
      }),
    );

  hosts
    .command('matrix')
    .option('--flags <glob>', 'only flags matching (* and ?, commas between alternatives)')
    .option('--hosts <glob>', 'only hosts matching')
    .option('--json', 'print {flags, hosts: [{name, flags}]} as JSON')
    .description(
      'A host × flag table of effective flags (database and config): x where the host has the flag',
    )
    .action(async (o: { flags?: string; hosts?: string; json?: boolean }) =>
      withStore(async ({ store, config }) => {
        const fg = o.flags === undefined ? undefined : glob(o.flags, '--flags');
        const hg = o.hosts === undefined ? undefined : glob(o.hosts, '--hosts');
        const rows = (await store.listHosts())
          .filter((h) => !hg || hg.test(h.name))
          .map((h) => ({
            name: h.name,
            flags: config.hostFlags(h.name, h.flags).filter((f) => !fg || fg.test(f)),
          }));
        const flags = [...new Set(rows.flatMap((r) => r.flags))].sort();
        if (o.json) return printJson({ flags, hosts: rows });
        process.stdout.write(`${flagMatrix(rows, flags)}\n`);
      }),
    );
}

/**
 * Flags as columns whose names are written downwards, so a wide lab still fits a terminal:
 * one character per flag, `x` where the host has it, `.` where not.
 */
export function flagMatrix(
  rows: readonly { name: string; flags: readonly string[] }[],
  flags: readonly string[],
): string {
  if (rows.length === 0) return '(no hosts)';
  const w = Math.max(4, ...rows.map((r) => r.name.length));
  const tall = Math.max(0, ...flags.map((f) => f.length));
  const out: string[] = [];
  for (let i = 0; i < tall; i++) {
    // Names are bottom-aligned, so each ends on the row just above the grid.
    const line = flags.map((f) => f[i - (tall - f.length)] ?? ' ').join(' ');
    out.push(`${' '.repeat(w)}  ${line}`.trimEnd());
  }
  out.push(`${'host'.padEnd(w)}  ${flags.map(() => '-').join(' ')}`.trimEnd());
  for (const r of rows) {
    const has = new Set(r.flags);
    out.push(`${r.name.padEnd(w)}  ${flags.map((f) => (has.has(f) ? 'x' : '.')).join(' ')}`.trimEnd());
  }
  return out.join('\n');
}
