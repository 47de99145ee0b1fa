import { describe, expect, it } from 'vitest';
import {
  evalFlagExpr,
  FlagExprError,
  flagExprNames,
  formatFlagExpr,
  parseFlagExpr,
} from '../../src/model/flag-expr.js';
import { nameGlob } from '../../src/model/glob.js';

const holds = (expr: string, flags: string[]) => evalFlagExpr(parseFlagExpr(expr), flags);

function errorOf(expr: string): FlagExprError {
  try {
    parseFlagExpr(expr);
  } catch (e) {
    if (e instanceof FlagExprError) return e;
    throw e;
  }
  throw new Error(`'${expr}' parsed`);
}

describe('flag expressions', () => {
  it('evaluates the example from the docs', () => {
    const e = 'arch-amd64 & !quarantined & (equiv-1 | equiv-2)';
    expect(holds(e, ['arch-amd64', 'equiv-1'])).toBe(true);
    expect(holds(e, ['arch-amd64', 'equiv-2', 'purpose-test'])).toBe(true);
    expect(holds(e, ['arch-amd64', 'equiv-1', 'quarantined'])).toBe(false);
    expect(holds(e, ['arch-amd64'])).toBe(false);
    expect(holds(e, ['arch-i386', 'equiv-1'])).toBe(false);
  });

  it('binds ! tighter than & and & tighter than |', () => {
    expect(formatFlagExpr(parseFlagExpr('a | b & c'))).toBe('a | b & c');
    expect(formatFlagExpr(parseFlagExpr('(a | b) & c'))).toBe('(a | b) & c');
    expect(formatFlagExpr(parseFlagExpr('!a & b'))).toBe('!a & b');
    expect(formatFlagExpr(parseFlagExpr('!(a & b)'))).toBe('!(a & b)');
    expect(formatFlagExpr(parseFlagExpr('((a))'))).toBe('a');
    // a | (b & c): true with only a; (a | b) & c would be false.
    expect(holds('a | b & c', ['a'])).toBe(true);
    expect(holds('(a | b) & c', ['a'])).toBe(false);
    // (!a) & b, not !(a & b).
    expect(holds('!a & b', [])).toBe(false);
    expect(holds('!(a & b)', [])).toBe(true);
    expect(holds('!!a', ['a'])).toBe(true);
    expect(holds('a&b|c', ['c'])).toBe(true);
  });

  it('treats * and ? in a flag as a glob over the host flags', () => {
    expect(holds('share-build-*', ['share-build-bookworm-amd64'])).toBe(true);
    expect(holds('share-build-*', ['purpose-build'])).toBe(false);
    expect(holds('equiv-?', ['equiv-7'])).toBe(true);
    expect(holds('equiv-?', ['equiv-17'])).toBe(false);
    expect(holds('!hvm-*', ['hvm'])).toBe(true);
  });

  it('accepts every flag character the store accepts', () => {
    expect(holds('blessed-real & need:x+y=1 & a_b.c', ['blessed-real', 'need:x+y=1', 'a_b.c'])).toBe(true);
    expect(flagExprNames(parseFlagExpr('a & (b | !a) & c*'))).toEqual(['a', 'b', 'c*']);
  });

  it('reports errors with the column', () => {
    const cases: [string, number, RegExp][] = [
      ['', 1, /empty/],
      ['   ', 1, /empty/],
      ['a &', 4, /expected a flag, '!' or '\(' but found the end/],
      ['a & & b', 5, /found '&'/],
      ['a b', 3, /expected '&' or '\|' before flag 'b'/],
      ['(a | b', 7, /'\(' at column 1 is not closed/],
      ['a | b)', 6, /'\)' without a matching '\('/],
      ['(a b)', 4, /expected '&', '\|' or '\)' but found flag 'b'/],
      ['a && b', 3, /'&&' is not an operator here/],
      ['a || b', 3, /'\|\|' is not an operator here/],
      ['a & -b', 5, /cannot start with '-'.*!b/],
      ['a & b$', 6, /unexpected character '\$'/],
      ['()', 2, /found '\)'/],
      ['!', 2, /found the end/],
    ];
    for (const [src, col, re] of cases) {
      const e = errorOf(src);
      expect(e.column, src).toBe(col);
      expect(e.message, src).toMatch(new RegExp(`^column ${col}: `));
      expect(e.message, src).toMatch(re);
    }
    expect(errorOf('a & & b').pointer('')).toBe('a & & b\n    ^');
  });
});

describe('name globs', () => {
  it('matches * and ? and comma alternatives, anchored', () => {
    const g = nameGlob('build-*,test-?-xl');
    expect(g.test('build-amd64')).toBe(true);
    expect(g.test('test-a-xl')).toBe(true);
    expect(g.test('test-ab-xl')).toBe(false);
    expect(g.test('xbuild-amd64')).toBe(false);
    expect(nameGlob('a.b').test('axb')).toBe(false);
    expect(nameGlob('*').test('anything.at+all')).toBe(true);
  });

  it('refuses empty alternatives', () => {
    expect(() => nameGlob('')).toThrow(/empty alternative/);
    expect(() => nameGlob('a,,b')).toThrow(/empty alternative/);
  });
});
