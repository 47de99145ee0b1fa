/** `osstest config show [NAME]`: the effective configuration and where each value came from. */
import type { Command } from 'commander';
import { Config, LOCAL_CONFIG, USER_CONFIG } from '../config/config.js';
import { configName, NAME_RE, parseConfigText } from '../config/parse.js';
import { settingFor } from '../config/settings.js';
import { printJson, table, UsageError } from './output.js';

export interface ShownSetting {
  name: string;
  value: string;
  source: string;
}

/** One line per value; a value with newlines (a heredoc) is shown with them escaped. */
function oneLine(value: string): string {
  if (value === '') return "''";
  return value.includes('\n') ? value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n') : value;
}

/** The aligned `Name value  (source)` table of `config show`. */
export function formatEffective(rows: readonly ShownSetting[]): string {
  return table(rows.map((r) => [r.name, oneLine(r.value), `(${r.source})`]));
}

/** One setting in config-file syntax, so it can be pasted into a config file, under a comment naming its source. */
export function formatOne(s: ShownSetting): string {
  let body = s.value === '' ? `${s.name} ''` : `${s.name} ${s.value}`;
  if (!roundTrips(body, s.value)) {
    const lines = s.value.split('\n');
    let end = 'END';
    for (let i = 2; lines.includes(end); i++) end = `END${i}`;
    body = `${s.name} <<${end}\n${s.value}\n${end}`;
  }
  return `# ${s.source}\n${body}`;
}

function roundTrips(text: string, value: string): boolean {
  try {
    const e = parseConfigText(text, '');
    return e.length === 1 && e[0]!.value === value;
  } catch {
    return false;
  }
}

export interface ShowOne {
  name: string;
  value: string | null;
  source: string | null;
  doc: string | null;
}

/** A named setting: its value and source, or null ones when a known setting has neither value nor default. */
export function showOne(config: Config, rawName: string): ShowOne {
  const name = configName(rawName);
  if (!NAME_RE.test(name)) throw new UsageError(`'${rawName}' is not a setting name`);
  const doc = settingFor(name)?.doc ?? null;
  const hit = config.effective().find((e) => e.name === name);
  if (hit) return { ...hit, doc };
  if (doc === null) {
    const where = config.files.length > 0 ? config.files.join(', ') : 'no config file';
    throw new UsageError(`no setting ${name}: it is not set (read: ${where}) and osstest does not know it`);
  }
  return { name, value: null, source: null, doc };
}

const SOURCES_HELP = `
Sources, later wins:
  1. $OSSTEST_CONFIG: a colon-separated list of config files, read in order; each must exist.
     When OSSTEST_CONFIG is unset or empty: ~/${USER_CONFIG}, if it exists.
  2. ./${LOCAL_CONFIG} in the current directory, if it exists.
  3. Built-in defaults (shown as "default") for settings no file sets.
Within a file a later line wins too. Relative paths are taken from the current directory.
Syntax: "Name value", "Name ''" for the empty string, "Name <<END" ... "END" for several
lines, and # comments. Values are plain text: nothing is evaluated or expanded.
Every setting is described in standalone.config.example.`;

export function register(program: Command): void {
  const cfg = program
    .command('config')
    .description('Inspect the configuration')
    .addHelpText('after', SOURCES_HELP);

  cfg
    .command('show')
    .argument('[name]', 'show only this setting (in config-file syntax, with its source)')
    .option('--json', 'print as JSON')
    .description('Show every effective setting with the file and line it came from, or "default"')
    .addHelpText('after', SOURCES_HELP)
    .action((name: string | undefined, o: { json?: boolean }) => {
      const config = Config.load({ env: process.env });
      if (name === undefined) {
        const rows = config.effective();
        if (o.json) return printJson(rows);
        process.stdout.write(`${formatEffective(rows)}\n`);
        return;
      }
      const one = showOne(config, name);
      if (o.json) printJson(one);
      else if (one.value === null) process.stdout.write(`# ${one.name} is not set: ${one.doc}\n`);
      else
        process.stdout.write(
          `${formatOne({ name: one.name, value: one.value, source: one.source ?? '' })}\n`,
        );
      // Like `git config NAME`: a known setting without a value exits 1, so scripts can test for it.
      if (one.value === null) process.exitCode = 1;
    });
}
