/** standalone.config.example is the settings documentation for users: it must not drift from SETTINGS. */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Config, parseConfigText, SETTINGS, settingFor } from '../../src/config/index.js';

const file = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'standalone.config.example');
const text = readFileSync(file, 'utf8');
// `#Name value` (no blank after #) is an example setting; `# text` is prose.
const exampleLines = text
  .split('\n')
  .filter((l) => /^#[A-Za-z]/.test(l))
  .map((l) => l.slice(1))
  .join('\n');
const examples = parseConfigText(exampleLines, file);

describe('standalone.config.example', () => {
  it('parses as it is, and with its example lines uncommented', () => {
    expect(() => Config.fromText(text, file)).not.toThrow();
    expect(examples.length).toBeGreaterThan(20);
  });

  it('mentions every setting of SETTINGS; every non-family one has an example line', () => {
    const shown = new Set(examples.map((e) => e.name));
    const missing = SETTINGS.filter((s) => !text.includes(s.name) || (!s.family && !shown.has(s.name)));
    expect(missing.map((s) => s.name)).toEqual([]);
  });

  it('shows each default exactly as SETTINGS has it', () => {
    const wrong = SETTINGS.filter((s) => !s.family && s.default !== undefined)
      .map((s) => ({
        name: s.name,
        table: s.default,
        example: examples.find((e) => e.name === s.name)?.value,
      }))
      .filter((x) => x.example !== x.table);
    expect(wrong).toEqual([]);
  });

  it('shows no setting that SETTINGS does not document', () => {
    expect(examples.filter((e) => settingFor(e.name) === undefined).map((e) => e.name)).toEqual([]);
  });
});

describe('SETTINGS', () => {
  it('has unique names, a doc for each, and no default on a family', () => {
    const names = SETTINGS.map((s) => s.name);
    expect(new Set(names).size).toBe(names.length);
    for (const s of SETTINGS) {
      expect(s.doc.length, s.name).toBeGreaterThan(10);
      expect(s.family === true, s.name).toBe(s.name.includes('<'));
      if (s.family) expect(s.default, s.name).toBeUndefined();
      else expect(s.name, s.name).toMatch(/^[A-Za-z][A-Za-z0-9_]*$/);
    }
  });

  it('settingFor finds the most specific family', () => {
    expect(settingFor('HostProp_Workdir')?.name).toBe('HostProp_Workdir');
    expect(settingFor('HostProp_PowerMethod')?.name).toBe('HostProp_<Prop>');
    expect(settingFor('HostProp_h1_Ip')?.name).toBe('HostProp_<host>_<Prop>');
    expect(settingFor('Tree_xen')?.name).toBe('Tree_<tree>');
    expect(settingFor('Tree_')).toBeUndefined();
    expect(settingFor('Unknown')).toBeUndefined();
  });
});
