import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Config, ConfigError, configName, parseConfigText } from '../../src/config/index.js';

function errorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('config syntax', () => {
  it('reads Name value, trimming blanks around the value and keeping them inside', () => {
    const e = parseConfigText('Logs   /var/log/osstest  \n\tStash\t/x y  z\t\nlower_case_1 ok\n', 'f');
    expect(e).toEqual([
      { name: 'Logs', value: '/var/log/osstest', file: 'f', line: 1 },
      { name: 'Stash', value: '/x y  z', file: 'f', line: 2 },
      { name: 'lower_case_1', value: 'ok', file: 'f', line: 3 },
    ]);
  });

  it("reads Name='' and Name '' as the empty string", () => {
    const c = Config.fromText("A=''\nB ''\nC   ''  \n");
    expect([c.get('A'), c.get('B'), c.get('C')]).toEqual(['', '', '']);
  });

  it('skips comments and blank lines, and keeps # inside a value', () => {
    const c = Config.fromText(
      '# a comment\n\n   # indented comment\n   \nUrl http://h/x#frag # not a comment\n',
    );
    expect(c.get('Url')).toBe('http://h/x#frag # not a comment');
    expect(c.origin('Url')?.line).toBe(5);
  });

  it('reads heredocs verbatim, any terminator word, final newline dropped', () => {
    const text = [
      'Script <<END',
      '  indented line  ',
      '',
      '# not a comment',
      'Name value',
      'END',
      'Other <<EOT2',
      'one',
      'EOT2',
      "Quoted <<'STOP'",
      'x',
      'STOP',
      'Empty <<E',
      'E',
      'After done',
    ].join('\n');
    const c = Config.fromText(text, 'f');
    expect(c.get('Script')).toBe('  indented line  \n\n# not a comment\nName value');
    expect(c.has('Name')).toBe(false);
    expect(c.get('Other')).toBe('one');
    expect(c.get('Quoted')).toBe('x');
    expect(c.get('Empty')).toBe('');
    expect(c.origin('After')?.line).toBe(15);
  });

  it('ends a heredoc only at a line that is exactly the terminator', () => {
    const c = Config.fromText('H <<END\n END\nEND \nENDING\nEND\n');
    expect(c.get('H')).toBe(' END\nEND \nENDING');
  });

  it('accepts CRLF line ends', () => {
    const c = Config.fromText('A 1\r\nH <<END\r\nx\r\nEND\r\n');
    expect(c.get('A')).toBe('1');
    expect(c.get('H')).toBe('x');
  });

  it('lets a later line win within a file', () => {
    const c = Config.fromText('A 1\nA 2\n', 'f');
    expect(c.get('A')).toBe('2');
    expect(c.origin('A')).toEqual({ name: 'A', value: '2', file: 'f', line: 2 });
  });

  it.each([
    ['9bad name', 2, /invalid setting name '9bad'/],
    ['_x 1', 2, /invalid setting name '_x'/],
    ['Na-me 1', 2, /invalid setting name 'Na-me'/],
    ['Lonely', 2, /Lonely has no value/],
    ['Lonely   ', 2, /Lonely has no value/],
    ['Name=value', 2, /write 'Name value'/],
    ['Name = value', 2, /without '='/],
    ["Name='' extra", 2, /cannot parse/],
    ['"quoted" 1', 2, /invalid setting name/],
    ['Doc <<END trailing', 2, /heredoc/],
    ['Doc <<', 2, /heredoc/],
    ['Doc <<END\nbody\n END', 2, /heredoc has no terminating line 'END'/],
  ])('rejects %j naming file and line', (bad, line, msg) => {
    const e = errorOf(() => Config.fromText(`Good 1\n${bad}\nMore 2\n`, '/etc/osstest.conf'));
    expect(e.file).toBe('/etc/osstest.conf');
    expect(e.line).toBe(line);
    expect(e.message).toMatch(msg);
    expect(e.message.startsWith(`/etc/osstest.conf:${line}: `)).toBe(true);
  });

  it('reports an unterminated heredoc at the line that opened it', () => {
    const e = errorOf(() => Config.fromText('A 1\n\nB <<EOF\nx\ny\n', 'f'));
    expect(e.message).toBe("f:3: B: heredoc has no terminating line 'EOF'");
  });
});

describe('values are never evaluated', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'osstest-cfg-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps $(...), backquotes, dollar-brace and <<EOF inside values as literal text, and runs nothing', () => {
    const marker = join(dir, 'ran');
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the literal text is the point
    const braced = '${HOME}/x';
    const text = [
      `Cmd $(touch ${marker})`,
      `Tick \`touch ${marker}\``,
      `Var ${braced}`,
      'Doc echo <<EOF',
      `Path $(touch ${marker})`,
      'Here <<END',
      `$(touch ${marker})`,
      'END',
      `Perl do { system("touch ${marker}") }`,
    ].join('\n');
    const file = join(dir, 'config');
    writeFileSync(file, text);
    const c = Config.fromFiles([file], { cwd: dir });
    expect(c.string('Cmd')).toBe(`$(touch ${marker})`);
    expect(c.string('Tick')).toBe(`\`touch ${marker}\``);
    expect(c.string('Var')).toBe(braced);
    expect(c.string('Doc')).toBe('echo <<EOF');
    expect(c.path('Path')).toBe(join(dir, `$(touch ${marker})`));
    expect(c.string('Here')).toBe(`$(touch ${marker})`);
    expect(c.list('Perl')).toEqual(['do', '{', 'system("touch', `${marker}")`, '}']);
    c.effective();
    expect(existsSync(marker)).toBe(false);
  });
});

describe('typed access', () => {
  const c = Config.fromText(
    [
      'N 42',
      'Neg -3',
      'Bad abc',
      'Float 1.5',
      'Y yes',
      'F Off',
      'One 1',
      'Maybe perhaps',
      'Rel some/dir',
      'Abs /abs/dir',
      "Empty ''",
      'L  a, b,,c   d ,',
    ].join('\n'),
    'cfg',
    '/base',
  );

  it('int: whole numbers, else an error naming file, line and value', () => {
    expect(c.int('N')).toBe(42);
    expect(c.int('Neg')).toBe(-3);
    expect(() => c.int('Bad')).toThrow("cfg:3: Bad must be a whole number, not 'abc'");
    expect(() => c.int('Float')).toThrow("cfg:4: Float must be a whole number, not '1.5'");
  });

  it('bool: true/false/yes/no/on/off/1/0 in any case', () => {
    expect(c.bool('Y')).toBe(true);
    expect(c.bool('F')).toBe(false);
    expect(c.bool('One')).toBe(true);
    expect(() => c.bool('Maybe')).toThrow(/cfg:8: Maybe must be true\/false.*not 'perhaps'/);
  });

  it('path: absolute stays, relative resolves against baseDir, empty is an error', () => {
    expect(c.baseDir).toBe('/base');
    expect(c.path('Rel')).toBe('/base/some/dir');
    expect(c.path('Abs')).toBe('/abs/dir');
    expect(() => c.path('Empty')).toThrow(/cfg:11: Empty is empty/);
  });

  it('list: splits on commas and blanks', () => {
    expect(c.list('L')).toEqual(['a', 'b', 'c', 'd']);
    expect(c.list('Unset')).toEqual([]);
  });

  it('string/optString: value, else the settings default, else required (with its doc) / undefined', () => {
    expect(c.string('N')).toBe('42');
    expect(c.get('Logs')).toBeUndefined();
    expect(c.has('Logs')).toBe(false);
    expect(c.string('Logs')).toBe('logs');
    expect(c.path('Logs')).toBe('/base/logs');
    expect(c.int('StepTimeout')).toBe(3600);
    expect(c.optString('TestHost')).toBeUndefined();
    expect(() => c.string('TestHost')).toThrow(/^setting TestHost is required \(The host a job uses/);
    expect(() => c.string('Tree_xen')).toThrow(/setting Tree_xen is required \(URL/);
    expect(() => c.string('Nothing')).toThrow(/^setting Nothing is required$/);
    expect(c.origin('Logs')).toBeUndefined();
  });

  it('an empty value is a value: it beats the default', () => {
    const e = Config.fromText("DemoTestCommand ''");
    expect(e.string('DemoTestCommand')).toBe('');
  });

  it('looks names up with - and . written as _', () => {
    expect(configName('HostProp_db-1.lab_Ip')).toBe('HostProp_db_1_lab_Ip');
    const t = Config.fromText('Tree_qemu_upstream git://x\nHostProp_db_1_Ip 10.0.0.1');
    expect(t.get('Tree_qemu-upstream')).toBe('git://x');
    expect(t.hostProp('db-1', 'Ip')).toBe('10.0.0.1');
  });

  it('effective: every set name and every defaulted setting, with sources, sorted', () => {
    const e = Config.fromText('Logs /l\nZed 1\n', 'f').effective();
    expect(e.find((x) => x.name === 'Logs')).toEqual({ name: 'Logs', value: '/l', source: 'f:1' });
    expect(e.find((x) => x.name === 'Zed')).toEqual({ name: 'Zed', value: '1', source: 'f:2' });
    expect(e.find((x) => x.name === 'Stash')).toEqual({ name: 'Stash', value: 'logs', source: 'default' });
    expect(e.find((x) => x.name === 'HostProp_Workdir')?.value).toBe('/var/tmp/osstest');
    expect(e.some((x) => x.name.includes('<'))).toBe(false);
    expect(e.some((x) => x.name === 'TestHost')).toBe(false);
    const names = e.map((x) => x.name);
    expect(names).toEqual([...names].sort());
  });

  it('withOverrides: a copy with entries on top, source labelled', () => {
    const base = Config.fromText('A 1\nB 2\n', 'f', '/base');
    const o = base.withOverrides({ B: '3', StepTimeout: 'x' }, 'command line');
    expect(base.get('B')).toBe('2');
    expect(o.get('A')).toBe('1');
    expect(o.get('B')).toBe('3');
    expect(o.baseDir).toBe('/base');
    expect(o.effective().find((x) => x.name === 'B')?.source).toBe('command line');
    expect(() => o.int('StepTimeout')).toThrow("command line: StepTimeout must be a whole number, not 'x'");
    expect(() => base.withOverrides({ '1x': 'y' })).toThrow(/invalid setting name '1x'/);
  });

  it('prefixed: set values under a prefix, by name', () => {
    const t = Config.fromText('Tree_xen x\nTree_linux l\nTree_ empty?\nTreeish no\n');
    expect(t.prefixed('Tree_')).toEqual([
      { suffix: 'linux', value: 'l' },
      { suffix: 'xen', value: 'x' },
    ]);
  });
});

describe('hosts', () => {
  it('testHost: TestHost_<ident>, else TestHost for ident host; empty means none', () => {
    const c = Config.fromText('TestHost h0\nTestHost_src_host h1\n');
    expect(c.testHost('host')).toBe('h0');
    expect(c.testHost('src_host')).toBe('h1');
    expect(c.testHost('dst_host')).toBeUndefined();
    expect(Config.fromText('TestHost_host hx\nTestHost h0').testHost('host')).toBe('hx');
    expect(Config.fromText("TestHost ''").testHost('host')).toBeUndefined();
  });

  it('hostProp precedence: HostProp_<host>_<Prop> > database > HostProp_<Prop> > default', () => {
    const db = { Ip: '10.0.0.2', Workdir: '/db/work', PowerMethod: 'qemu' };
    const c = Config.fromText('HostProp_h1_Ip 10.0.0.1\nHostProp_Ip 10.0.0.9\nHostProp_SerialMethod none\n');
    expect(c.hostProp('h1', 'Ip', db)).toBe('10.0.0.1');
    expect(c.hostProp('h2', 'Ip', db)).toBe('10.0.0.2');
    expect(c.hostProp('h2', 'Ip', {})).toBe('10.0.0.9');
    expect(c.hostProp('h2', 'Workdir', db)).toBe('/db/work');
    expect(c.hostProp('h2', 'Workdir')).toBe('/var/tmp/osstest');
    expect(c.hostProp('h2', 'SerialMethod', db)).toBe('none');
    expect(c.hostProp('h2', 'PowerMethod', db)).toBe('qemu');
    expect(c.hostProp('h2', 'Nope', db)).toBeUndefined();
    expect(c.hostProp('h2', 'SshPort')).toBeUndefined();
  });

  it('hostFlags: database, then HostFlags, then HostFlags_<host>; !flag removes; sorted, unique', () => {
    const c = Config.fromText(
      'HostFlags purpose-test, !purpose-build share\nHostFlags_h1 !share,extra !arch-i386\n',
    );
    expect(c.hostFlags('h1', ['arch-amd64', 'purpose-build', 'arch-i386'])).toEqual([
      'arch-amd64',
      'extra',
      'purpose-test',
    ]);
    expect(c.hostFlags('h2', ['purpose-build', 'zeta', 'alpha', 'alpha'])).toEqual([
      'alpha',
      'purpose-test',
      'share',
      'zeta',
    ]);
    expect(Config.fromText('').hostFlags('h', [])).toEqual([]);
    // A later list may add back what an earlier one removed.
    expect(Config.fromText('HostFlags !a\nHostFlags_h a').hostFlags('h', ['a'])).toEqual(['a']);
  });
});

describe('sources and layering', () => {
  let root: string;
  let home: string;
  let cwd: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'osstest-cfg-'));
    home = join(root, 'home');
    cwd = join(root, 'work');
    mkdirSync(join(home, '.config', 'osstest'), { recursive: true });
    mkdirSync(cwd);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const write = (p: string, lines: string[]) => {
    writeFileSync(p, `${lines.join('\n')}\n`);
    return p;
  };

  it('with nothing to read: no files, defaults only, baseDir = cwd', () => {
    const c = Config.load({ env: {}, cwd, home });
    expect(c.files).toEqual([]);
    expect(c.baseDir).toBe(cwd);
    expect(c.path('StandaloneDb')).toBe(join(cwd, 'standalone.db'));
  });

  it('home config, then ./standalone.config; later wins', () => {
    const user = write(join(home, '.config', 'osstest', 'config'), ['A home', 'B home']);
    const local = write(join(cwd, 'standalone.config'), ['B local', 'C local']);
    const c = Config.load({ env: {}, cwd, home });
    expect(c.files).toEqual([user, local]);
    expect([c.get('A'), c.get('B'), c.get('C')]).toEqual(['home', 'local', 'local']);
    expect(c.origin('B')).toEqual({ name: 'B', value: 'local', file: local, line: 1 });
    expect(c.origin('A')?.file).toBe(user);
  });

  it('uses $HOME from env when no home is given', () => {
    write(join(home, '.config', 'osstest', 'config'), ['A home']);
    expect(Config.load({ env: { HOME: home }, cwd }).get('A')).toBe('home');
  });

  it('OSSTEST_CONFIG replaces the home config; its files in order; ./standalone.config still last', () => {
    write(join(home, '.config', 'osstest', 'config'), ['A home', 'H home']);
    const one = write(join(root, 'one'), ['A one', 'B one', 'C one']);
    const two = write(join(cwd, 'two'), ['B two']);
    const local = write(join(cwd, 'standalone.config'), ['C local']);
    const c = Config.load({ env: { OSSTEST_CONFIG: `${one}::two` }, cwd, home });
    expect(c.files).toEqual([one, two, local]);
    expect([c.get('A'), c.get('B'), c.get('C'), c.get('H')]).toEqual(['one', 'two', 'local', undefined]);
  });

  it('an empty OSSTEST_CONFIG counts as unset', () => {
    write(join(home, '.config', 'osstest', 'config'), ['A home']);
    expect(Config.load({ env: { OSSTEST_CONFIG: '' }, cwd, home }).get('A')).toBe('home');
  });

  it('a file list handed on (local file last) reads the local file once, with the same result', () => {
    const one = write(join(root, 'one'), ['A one']);
    const local = write(join(cwd, 'standalone.config'), ['A local']);
    const first = Config.load({ env: { OSSTEST_CONFIG: one }, cwd, home });
    const again = Config.load({ env: { OSSTEST_CONFIG: first.files.join(':') }, cwd, home });
    expect(again.files).toEqual([one, local]);
    expect(again.get('A')).toBe('local');
  });

  it('a missing file named in OSSTEST_CONFIG is an error naming it', () => {
    const missing = join(root, 'nope.conf');
    const e = errorOf(() => Config.load({ env: { OSSTEST_CONFIG: missing }, cwd, home }));
    expect(e.file).toBe(missing);
    expect(e.message).toContain(missing);
    expect(e.message).toContain('no such file');
    expect(e.message).toContain('OSSTEST_CONFIG');
  });

  it('a directory given as a config file is an error naming it', () => {
    const e = errorOf(() => Config.fromFiles([root]));
    expect(e.message).toContain(root);
  });

  it('a syntax error in a layered file names that file and line', () => {
    write(join(home, '.config', 'osstest', 'config'), ['A 1']);
    const local = write(join(cwd, 'standalone.config'), ['# x', 'B 2', 'oops']);
    const e = errorOf(() => Config.load({ env: {}, cwd, home }));
    expect(e.message).toBe(`${local}:3: oops has no value (write oops '' for the empty string)`);
  });

  it('fromFiles: exactly these files, relative to cwd, all must exist', () => {
    const a = write(join(cwd, 'a'), ['X a', 'Rel d']);
    write(join(cwd, 'standalone.config'), ['X local']);
    const c = Config.fromFiles(['a'], { cwd });
    expect(c.files).toEqual([a]);
    expect(c.get('X')).toBe('a');
    expect(c.path('Rel')).toBe(join(cwd, 'd'));
    expect(() => Config.fromFiles(['a', 'b'], { cwd })).toThrow(
      `${join(cwd, 'b')}: cannot read config file: no such file`,
    );
  });
});
