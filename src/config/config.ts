/**
 * The effective configuration: config files layered in order (later wins), with typed access and
 * the defaults of the settings table.
 *
 * Sources: $OSSTEST_CONFIG (colon-separated files, each must exist) or, when that is unset or empty,
 * ~/.config/osstest/config if it exists; then ./standalone.config if it exists.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { ConfigError } from './errors.js';
import { type ConfigEntry, configName, NAME_RE, parseConfigText, readConfigFile } from './parse.js';
import { SETTINGS, settingFor } from './settings.js';

export type { ConfigEntry } from './parse.js';

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  home?: string;
}

/** The per-user config file, relative to the home directory. */
export const USER_CONFIG = join('.config', 'osstest', 'config');
/** The per-directory config file, relative to the current directory. */
export const LOCAL_CONFIG = 'standalone.config';

const TRUE_WORDS = new Set(['true', 'yes', 'on', '1']);
const FALSE_WORDS = new Set(['false', 'no', 'off', '0']);

function defaultOf(name: string): string | undefined {
  const s = SETTINGS.find((x) => !x.family && x.name === name);
  return s?.default;
}

/** Splits a flag or word list: commas and blanks both separate. */
function words(v: string): string[] {
  return v.split(/[\s,]+/).filter((w) => w !== '');
}

export class Config {
  private readonly entries: ReadonlyMap<string, ConfigEntry>;

  private constructor(
    entries: readonly ConfigEntry[],
    readonly files: string[],
    readonly baseDir: string,
  ) {
    const m = new Map<string, ConfigEntry>();
    for (const e of entries) m.set(e.name, e);
    this.entries = m;
  }

  /** The configuration a command runs with: the files named by the environment and the current directory. */
  static load(opts: LoadOptions = {}): Config {
    const env = opts.env ?? process.env;
    const cwd = resolve(opts.cwd ?? process.cwd());
    const home = opts.home ?? env.HOME ?? homedir();
    const files: string[] = [];
    const entries: ConfigEntry[] = [];
    const read = (file: string, why?: string) => {
      entries.push(...readConfigFile(file, why));
      files.push(file);
    };
    const listed = env.OSSTEST_CONFIG;
    if (listed) {
      for (const f of listed.split(':').filter((x) => x !== ''))
        read(resolve(cwd, f), 'listed in OSSTEST_CONFIG');
    } else {
      const user = resolve(home, USER_CONFIG);
      if (existsSync(user)) read(user);
    }
    const local = resolve(cwd, LOCAL_CONFIG);
    // The executor hands its file list on as OSSTEST_CONFIG, local file last; reading it twice would
    // change nothing but the file list.
    if (existsSync(local) && files[files.length - 1] !== local) read(local);
    return new Config(entries, files, cwd);
  }

  /** Exactly these files, in order (later wins); each must exist. */
  static fromFiles(files: string[], opts: { cwd?: string } = {}): Config {
    const cwd = resolve(opts.cwd ?? process.cwd());
    const abs = files.map((f) => resolve(cwd, f));
    return new Config(
      abs.flatMap((f) => readConfigFile(f)),
      abs,
      cwd,
    );
  }

  /** Config from text, as if read from `file` (no file is read; `files` is empty). */
  static fromText(text: string, file = '<text>', cwd?: string): Config {
    return new Config(parseConfigText(text, file), [], resolve(cwd ?? process.cwd()));
  }

  /** A copy with `values` layered on top, their origin shown as `source`. */
  withOverrides(values: Record<string, string>, source = 'override'): Config {
    const extra: ConfigEntry[] = Object.entries(values).map(([raw, value]) => {
      const name = configName(raw);
      if (!NAME_RE.test(name)) throw new ConfigError(`invalid setting name '${raw}'`, source);
      return { name, value, file: source, line: 0 };
    });
    return new Config([...this.entries.values(), ...extra], this.files, this.baseDir);
  }

  /** The value as set in the config (no default). */
  get(name: string): string | undefined {
    return this.entries.get(configName(name))?.value;
  }

  has(name: string): boolean {
    return this.entries.has(configName(name));
  }

  /** Where the value in effect was set; undefined if it is not set (a default is not an origin). */
  origin(name: string): ConfigEntry | undefined {
    return this.entries.get(configName(name));
  }

  /** The value, else the default, else a ConfigError saying what the setting is for. */
  string(name: string): string {
    const v = this.optString(name);
    if (v !== undefined) return v;
    const doc = settingFor(configName(name))?.doc;
    throw new ConfigError(`setting ${name} is required${doc ? ` (${doc})` : ''}`);
  }

  optString(name: string): string | undefined {
    return this.get(name) ?? defaultOf(configName(name));
  }

  int(name: string): number {
    const v = this.string(name).trim();
    if (/^[+-]?\d+$/.test(v) && Number.isSafeInteger(Number(v))) return Number(v);
    throw this.badValue(name, `must be a whole number, not '${v}'`);
  }

  bool(name: string): boolean {
    const v = this.string(name).trim().toLowerCase();
    if (TRUE_WORDS.has(v)) return true;
    if (FALSE_WORDS.has(v)) return false;
    throw this.badValue(name, `must be true/false, yes/no, on/off or 1/0, not '${this.string(name)}'`);
  }

  /** An absolute path; a relative value is taken from baseDir (the directory osstest was started in). */
  path(name: string): string {
    const v = this.string(name);
    if (v === '') throw this.badValue(name, 'is empty, but must be a path');
    return isAbsolute(v) ? v : resolve(this.baseDir, v);
  }

  list(name: string): string[] {
    return words(this.optString(name) ?? '');
  }

  /** Every setting that has a value: set in a file (source `file:line`) or defaulted (source `default`). */
  effective(): Array<{ name: string; value: string; source: string }> {
    const out = [...this.entries.values()].map((e) => ({
      name: e.name,
      value: e.value,
      source: sourceOf(e),
    }));
    for (const s of SETTINGS) {
      if (!s.family && s.default !== undefined && !this.entries.has(s.name)) {
        out.push({ name: s.name, value: s.default, source: 'default' });
      }
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Set values (not defaults) whose names start with `prefix`, by name. */
  prefixed(prefix: string): Array<{ suffix: string; value: string }> {
    return [...this.entries.values()]
      .filter((e) => e.name.startsWith(prefix) && e.name.length > prefix.length)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((e) => ({ suffix: e.name.slice(prefix.length), value: e.value }));
  }

  /** The host configured for a job's host ident; an empty value means none. */
  testHost(ident: string): string | undefined {
    const v = this.get(`TestHost_${ident}`) ?? (ident === 'host' ? this.get('TestHost') : undefined);
    return v === '' ? undefined : v;
  }

  /** A host property: HostProp_<host>_<Prop>, else the host database, else HostProp_<Prop>, else its default. */
  hostProp(host: string, prop: string, dbProps?: Record<string, string>): string | undefined {
    return (
      this.get(`HostProp_${host}_${prop}`) ??
      dbProps?.[prop] ??
      this.get(`HostProp_${prop}`) ??
      defaultOf(configName(`HostProp_${prop}`))
    );
  }

  /** A host's flags: the database's, then HostFlags, then HostFlags_<host>; `!flag` removes. */
  hostFlags(host: string, dbFlags: readonly string[] = []): string[] {
    const flags = new Set<string>();
    const apply = (list: readonly string[]) => {
      for (const f of list) {
        if (f.startsWith('!')) flags.delete(f.slice(1));
        else flags.add(f);
      }
    };
    apply(dbFlags.flatMap(words));
    apply(words(this.get('HostFlags') ?? ''));
    apply(words(this.get(`HostFlags_${host}`) ?? ''));
    flags.delete('');
    return [...flags].sort();
  }

  private badValue(name: string, what: string): ConfigError {
    const e = this.origin(name);
    if (!e) return new ConfigError(`${name} ${what} (default)`);
    return e.line > 0
      ? new ConfigError(`${name} ${what}`, e.file, e.line)
      : new ConfigError(`${name} ${what}`, e.file);
  }
}

/** How an entry's origin is shown: `file:line`, or the override label. */
export function sourceOf(e: ConfigEntry): string {
  return e.line > 0 ? `${e.file}:${e.line}` : e.file;
}
