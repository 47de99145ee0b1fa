/**
 * The config file format (OSSTest's, minus code execution):
 *
 *     # comment
 *     Name value with spaces        value = rest of line, blanks around it trimmed
 *     Name ''                       the empty string (also Name='')
 *     Name <<END                    heredoc: the lines up to one that is exactly END,
 *     any text, kept verbatim       verbatim, without the last newline
 *     END
 *
 * Values are plain text: nothing in them is ever evaluated or expanded.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from './errors.js';

export interface ConfigEntry {
  name: string;
  value: string;
  /** The file it was read from (or a label such as `override` for entries not from a file). */
  file: string;
  /** 1-based line of the name; 0 when not from a file. */
  line: number;
}

export const NAME_RE = /^[A-Za-z][A-Za-z0-9_]*$/;

/**
 * The name to look up for a setting built from parts, e.g. `HostProp_${host}_Ip` with host `db-1.lab`:
 * names in files cannot hold `-` or `.`, so every character outside [A-Za-z0-9_] is written as `_`.
 */
export function configName(name: string): string {
  return name.replace(/[^A-Za-z0-9_]/g, '_');
}

// Name, then either `=''`, or blanks and the rest of the line.
const LINE_RE = /^([^\s=]+)(?:(='')|[ \t]+(.*))?$/;
// `<<END`, `<< END`, `<<'END'`, `<<"END"`: the quotes are optional and only show the word is literal.
const HEREDOC_RE = /^<<[ \t]*(?:'([^'\s]+)'|"([^"\s]+)"|([^'"\s]\S*))$/;

export function parseConfigText(text: string, file: string): ConfigEntry[] {
  const lines = text.split(/\r?\n/);
  // A final newline ends the last line; it does not start an empty one.
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const entries: ConfigEntry[] = [];
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = lines[i]!;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE_RE.exec(line);
    if (!m) {
      const eq = /^([A-Za-z][A-Za-z0-9_]*)=/.exec(line);
      throw new ConfigError(
        eq
          ? `cannot parse '${clip(line)}': write '${eq[1]} value' ('=' is only for ${eq[1]}='')`
          : `cannot parse '${clip(line)}': expected 'Name value', 'Name <<END' or a # comment`,
        file,
        lineNo,
      );
    }
    const name = m[1]!;
    if (!NAME_RE.test(name)) {
      throw new ConfigError(
        `invalid setting name '${clip(name)}': a name is a letter then letters, digits or _`,
        file,
        lineNo,
      );
    }
    if (m[2] !== undefined) {
      entries.push({ name, value: '', file, line: lineNo });
      continue;
    }
    const rest = m[3]?.trim() ?? '';
    if (rest === '') {
      throw new ConfigError(`${name} has no value (write ${name} '' for the empty string)`, file, lineNo);
    }
    if (/^=(\s|$)/.test(rest)) {
      throw new ConfigError(
        `write '${name} value', without '=' (a value that starts with '= ' needs a heredoc)`,
        file,
        lineNo,
      );
    }
    if (rest.startsWith('<<')) {
      const h = HEREDOC_RE.exec(rest);
      if (!h) {
        throw new ConfigError(
          `${name}: a heredoc is '${name} <<WORD' with one word after << and nothing else on the line`,
          file,
          lineNo,
        );
      }
      const end = h[1] ?? h[2] ?? h[3]!;
      const body: string[] = [];
      let j = i + 1;
      for (; j < lines.length && lines[j] !== end; j++) body.push(lines[j]!);
      if (j >= lines.length) {
        throw new ConfigError(`${name}: heredoc has no terminating line '${end}'`, file, lineNo);
      }
      entries.push({ name, value: body.join('\n'), file, line: lineNo });
      i = j;
      continue;
    }
    entries.push({ name, value: rest === "''" ? '' : rest, file, line: lineNo });
  }
  return entries;
}

/** Reads and parses one file; a missing or unreadable file is a ConfigError naming it. */
export function readConfigFile(file: string, why?: string): ConfigEntry[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const reason =
      err.code === 'ENOENT'
        ? 'no such file'
        : err.code === 'EISDIR'
          ? 'is a directory, not a config file'
          : (err.message ?? String(e));
    throw new ConfigError(`cannot read config file: ${reason}${why ? ` (${why})` : ''}`, file);
  }
  return parseConfigText(text, file);
}

function clip(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
