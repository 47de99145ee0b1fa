/**
 * Name globs for jobs, runvars and hosts: `*` is any run of characters, `?` one character, and a
 * comma separates alternatives (`build-*,test-*-xl`). None of these names can hold a comma (see
 * db/names.ts), so the comma is free to mean "or". Hand-written rather than picomatch & co: those
 * give `/` and leading dots a path meaning that a job or host name must not have.
 */

function one(glob: string): RegExp {
  const re = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`);
}

export interface NameGlob {
  /** The glob as written. */
  readonly text: string;
  test(name: string): boolean;
}

/** Throws when the glob is empty or has an empty alternative (`a,,b`): both are typing slips. */
export function nameGlob(text: string): NameGlob {
  const parts = text.split(',');
  if (parts.some((p) => p === '')) throw new Error(`'${text}' is not a name glob (an empty alternative)`);
  const res = parts.map(one);
  return { text, test: (name) => res.some((r) => r.test(name)) };
}

export function hasGlobChars(s: string): boolean {
  return /[*?,]/.test(s);
}
