/**
 * Host flag expressions, as people write them to pick hosts: `arch-amd64 & !quarantined & (equiv-1 | equiv-2)`.
 *
 * - a flag is a host flag name (letters, digits and `_ . : + = -`, not starting with `-`); `*` and `?` in
 *   it make it a glob that holds when any of the host's flags matches;
 * - `!` (not) binds tightest, then `&` (and), then `|` (or); parentheses group;
 * - errors say the 1-based column, so the CLI can point at it.
 */
import { nameGlob } from './glob.js';

export type FlagExpr =
  | { readonly kind: 'flag'; readonly name: string; readonly column: number }
  | { readonly kind: 'not'; readonly expr: FlagExpr }
  | { readonly kind: 'and' | 'or'; readonly left: FlagExpr; readonly right: FlagExpr };

export class FlagExprError extends Error {
  override name = 'FlagExprError';
  constructor(
    /** What is wrong, without the position. */
    readonly reason: string,
    /** 1-based column in `source`. */
    readonly column: number,
    readonly source: string,
  ) {
    super(`column ${column}: ${reason}`);
  }

  /** The expression with a caret under the column, for a terminal. */
  pointer(indent = '  '): string {
    return `${indent}${this.source}\n${indent}${' '.repeat(Math.max(0, this.column - 1))}^`;
  }
}

type Token =
  | { t: '!' | '&' | '|' | '(' | ')'; col: number }
  | { t: 'flag'; name: string; col: number }
  | { t: 'end'; col: number };

const FLAG_CHAR = /[A-Za-z0-9_.:+=*?-]/;

function describe(tok: Token): string {
  if (tok.t === 'end') return 'the end of the expression';
  if (tok.t === 'flag') return `flag '${tok.name}'`;
  return `'${tok.t}'`;
}

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    const col = i + 1;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '!' || c === '&' || c === '|' || c === '(' || c === ')') {
      if ((c === '&' || c === '|') && src[i + 1] === c)
        throw new FlagExprError(`'${c}${c}' is not an operator here: write a single '${c}'`, col, src);
      out.push({ t: c, col });
      i++;
      continue;
    }
    if (FLAG_CHAR.test(c)) {
      let j = i;
      while (j < src.length && FLAG_CHAR.test(src[j]!)) j++;
      const name = src.slice(i, j);
      if (name.startsWith('-'))
        throw new FlagExprError(`a flag cannot start with '-' (write !${name.slice(1)} for "not")`, col, src);
      out.push({ t: 'flag', name, col });
      i = j;
      continue;
    }
    throw new FlagExprError(
      `unexpected character '${c}' (flags are letters, digits and _ . : + = -; operators are ! & | ( ))`,
      col,
      src,
    );
  }
  out.push({ t: 'end', col: src.length + 1 });
  return out;
}

export function parseFlagExpr(src: string): FlagExpr {
  const toks = tokenize(src);
  if (toks.length === 1) throw new FlagExprError('the expression is empty', 1, src);
  let pos = 0;
  const peek = (): Token => toks[pos]!;
  const next = (): Token => toks[pos++]!;

  const parseOr = (): FlagExpr => {
    let left = parseAnd();
    while (peek().t === '|') {
      next();
      left = { kind: 'or', left, right: parseAnd() };
    }
    return left;
  };
  const parseAnd = (): FlagExpr => {
    let left = parseNot();
    while (peek().t === '&') {
      next();
      left = { kind: 'and', left, right: parseNot() };
    }
    return left;
  };
  const parseNot = (): FlagExpr => {
    if (peek().t === '!') {
      next();
      return { kind: 'not', expr: parseNot() };
    }
    return parsePrimary();
  };
  const parsePrimary = (): FlagExpr => {
    const tok = next();
    if (tok.t === 'flag') return { kind: 'flag', name: tok.name, column: tok.col };
    if (tok.t === '(') {
      const inner = parseOr();
      const close = peek();
      if (close.t !== ')') {
        throw new FlagExprError(
          close.t === 'end'
            ? `'(' at column ${tok.col} is not closed`
            : `expected '&', '|' or ')' but found ${describe(close)}`,
          close.col,
          src,
        );
      }
      next();
      return inner;
    }
    throw new FlagExprError(`expected a flag, '!' or '(' but found ${describe(tok)}`, tok.col, src);
  };

  const expr = parseOr();
  const rest = peek();
  if (rest.t !== 'end') {
    throw new FlagExprError(
      rest.t === ')' ? `')' without a matching '('` : `expected '&' or '|' before ${describe(rest)}`,
      rest.col,
      src,
    );
  }
  return expr;
}

/** Whether a host with these flags satisfies the expression. */
export function evalFlagExpr(e: FlagExpr, flags: ReadonlySet<string> | readonly string[]): boolean {
  const set: ReadonlySet<string> = flags instanceof Set ? flags : new Set(flags as readonly string[]);
  const ev = (x: FlagExpr): boolean => {
    switch (x.kind) {
      case 'flag':
        if (!/[*?]/.test(x.name)) return set.has(x.name);
        return [...set].some((f) => nameGlob(x.name).test(f));
      case 'not':
        return !ev(x.expr);
      case 'and':
        return ev(x.left) && ev(x.right);
      case 'or':
        return ev(x.left) || ev(x.right);
    }
  };
  return ev(e);
}

/** The flag names (and flag globs) an expression mentions, in order of first appearance. */
export function flagExprNames(e: FlagExpr): string[] {
  const out: string[] = [];
  const walk = (x: FlagExpr): void => {
    if (x.kind === 'flag') {
      if (!out.includes(x.name)) out.push(x.name);
    } else if (x.kind === 'not') walk(x.expr);
    else {
      walk(x.left);
      walk(x.right);
    }
  };
  walk(e);
  return out;
}

const PREC = { or: 1, and: 2, not: 3, flag: 4 } as const;

/** The expression written back with only the parentheses its structure needs. */
export function formatFlagExpr(e: FlagExpr): string {
  const fmt = (x: FlagExpr, min: number): string => {
    let s: string;
    switch (x.kind) {
      case 'flag':
        return x.name;
      case 'not':
        s = `!${fmt(x.expr, PREC.not)}`;
        break;
      case 'and':
        s = `${fmt(x.left, PREC.and)} & ${fmt(x.right, PREC.and + 1)}`;
        break;
      case 'or':
        s = `${fmt(x.left, PREC.or)} | ${fmt(x.right, PREC.or + 1)}`;
        break;
    }
    return PREC[x.kind] < min ? `(${s})` : s;
  };
  return fmt(e, 0);
}
