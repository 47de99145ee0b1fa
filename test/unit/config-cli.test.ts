/** `osstest config show`, run in-process through commander against real config files in a temp dir. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatEffective, formatOne, register } from '../../src/cli/config.js';
import { UsageError } from '../../src/cli/output.js';
import { Config, parseConfigText } from '../../src/config/index.js';

describe('config show formatting', () => {
  it('aligns Name value (source), one line per setting', () => {
    const out = formatEffective([
      { name: 'Logs', value: '/var/log/osstest', source: '/etc/o.conf:3' },
      { name: 'StepTimeout', value: '3600', source: 'default' },
      { name: 'Empty', value: '', source: 'f:1' },
      { name: 'Script', value: 'a\nb\\c', source: 'f:2' },
    ]);
    expect(out.split('\n')).toEqual([
      'Logs         /var/log/osstest  (/etc/o.conf:3)',
      'StepTimeout  3600              (default)',
      "Empty        ''                (f:1)",
      'Script       a\\nb\\\\c           (f:2)',
    ]);
  });

  it('shows one setting in config syntax that reads back to the same value', () => {
    const cases = [
      'plain value',
      '',
      '  padded  ',
      'two\nlines',
      'has\nEND\nin it',
      "''",
      '<<EOF',
      '= x',
      '$(x)',
    ];
    for (const value of cases) {
      const text = formatOne({ name: 'S', value, source: 'f:1' });
      expect(text.startsWith('# f:1\n')).toBe(true);
      const back = parseConfigText(text, 't');
      expect(back.map((e) => [e.name, e.value])).toEqual([['S', value]]);
    }
    expect(formatOne({ name: 'Logs', value: 'logs', source: 'default' })).toBe('# default\nLogs logs');
  });
});

describe('osstest config show', () => {
  let dir: string;
  let out: string;
  const saved = {
    cwd: process.cwd(),
    env: process.env.OSSTEST_CONFIG,
    home: process.env.HOME,
    write: process.stdout.write,
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'osstest-cfgcli-'));
    mkdirSync(join(dir, 'home'));
    process.env.HOME = join(dir, 'home');
    delete process.env.OSSTEST_CONFIG;
    process.chdir(dir);
    out = '';
    process.stdout.write = ((chunk: string | Uint8Array) => {
      out += String(chunk);
      return true;
    }) as typeof process.stdout.write;
    process.exitCode = undefined;
  });

  afterEach(() => {
    process.stdout.write = saved.write;
    process.chdir(saved.cwd);
    if (saved.env === undefined) delete process.env.OSSTEST_CONFIG;
    else process.env.OSSTEST_CONFIG = saved.env;
    process.env.HOME = saved.home;
    process.exitCode = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  async function run(...args: string[]): Promise<void> {
    const program = new Command('osstest').exitOverride();
    register(program);
    await program.parseAsync(['config', 'show', ...args], { from: 'user' });
  }

  it('lists every effective setting with its source', async () => {
    const other = join(dir, 'other.conf');
    writeFileSync(other, 'Logs /from/other\nTree_demo /src/demo\n');
    writeFileSync(join(dir, 'standalone.config'), '# local\nLogs /from/local\n');
    process.env.OSSTEST_CONFIG = other;
    await run();
    const lines = out.trimEnd().split('\n');
    expect(lines).toContainEqual(
      expect.stringMatching(new RegExp(`^Logs +/from/local +\\(${dir}/standalone.config:2\\)$`)),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(new RegExp(`^Tree_demo +/src/demo +\\(${other}:2\\)$`)),
    );
    expect(lines).toContainEqual(expect.stringMatching(/^StepTimeout +3600 +\(default\)$/));
    expect(lines.length).toBe(Config.load({ env: process.env, cwd: dir }).effective().length);
  });

  it('--json gives the same rows', async () => {
    writeFileSync(join(dir, 'standalone.config'), 'Logs /l\n');
    await run('--json');
    const rows = JSON.parse(out) as { name: string; value: string; source: string }[];
    expect(rows).toContainEqual({ name: 'Logs', value: '/l', source: `${dir}/standalone.config:1` });
    expect(rows).toContainEqual({ name: 'SshPort', value: '22', source: 'default' });
  });

  it('NAME: the value and its source; a heredoc value comes back as a heredoc', async () => {
    writeFileSync(join(dir, 'standalone.config'), 'DemoTestCommand <<END\nmake check\nmake more\nEND\n');
    await run('DemoTestCommand');
    expect(out).toBe(`# ${dir}/standalone.config:1\nDemoTestCommand <<END\nmake check\nmake more\nEND\n`);
    out = '';
    await run('SshUser', '--json');
    expect(JSON.parse(out)).toEqual({
      name: 'SshUser',
      value: 'root',
      source: 'default',
      doc: expect.any(String),
    });
  });

  it('NAME known but unset: says so and exits 1; unknown and unset: a usage error (exit 2)', async () => {
    await run('TestHost');
    expect(out).toMatch(/^# TestHost is not set: /);
    expect(process.exitCode).toBe(1);
    process.exitCode = undefined;
    await expect(run('NoSuchThing')).rejects.toThrow(UsageError);
    await expect(run('NoSuchThing')).rejects.toThrow(/no setting NoSuchThing/);
  });

  it('a broken config file is reported with its file and line', async () => {
    writeFileSync(join(dir, 'standalone.config'), 'Good 1\nBad\n');
    await expect(run()).rejects.toThrow(`${dir}/standalone.config:2: Bad has no value`);
  });

  it('--help explains the sources and their precedence', async () => {
    const program = new Command('osstest');
    register(program);
    const show = program.commands
      .find((c) => c.name() === 'config')!
      .commands.find((c) => c.name() === 'show')!;
    let help = '';
    show.configureOutput({ writeOut: (s) => (help += s) });
    show.outputHelp();
    expect(help).toContain('OSSTEST_CONFIG');
    expect(help).toContain('~/.config/osstest/config');
    expect(help).toContain('./standalone.config');
    expect(help).toMatch(/later wins/);
  });
});
