import type { Command } from 'commander';
import type { Config } from '../config/config.js';
import type { Store } from '../db/store.js';
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

export function register(program: Command): void {
  const hosts = program.command('hosts').description('Inspect and edit the host database');

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
}
