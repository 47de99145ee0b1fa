/**
 * Testid naming (OSSTEST-BEHAVIOUR §3). Every history and regression comparison is keyed on
 * (job, testid), so these rules must never drift.
 *
 * - the default testid is the script name without `ts-`, followed by `/@`;
 * - spec `=` is the default, `=SFX` is the default followed by SFX, `*` is the default followed by `(*)`;
 *   any other spec is taken literally;
 * - `/@` becomes `/arg` for each argument before a `+` (arguments after the `+` reach the script but
 *   not the testid), or nothing when there are none;
 * - a final `(*)` becomes `(<stepno>)`.
 */

/** The argument that separates arguments named in the testid from those that are not. */
export const TESTID_ARG_SEPARATOR = '+';

export function scriptBaseName(script: string): string {
  const base = script.replace(/^.*\//, '').replace(/\.(ts|js|mjs)$/, '');
  return base.startsWith('ts-') ? base.slice(3) : base;
}

/** Arguments before the `+`: the ones that name the testid. */
export function testidArgs(args: readonly string[]): string[] {
  const plus = args.indexOf(TESTID_ARG_SEPARATOR);
  return plus < 0 ? [...args] : args.slice(0, plus);
}

/** Arguments the script is run with: all of them, without the `+` itself. */
export function scriptArgs(args: readonly string[]): string[] {
  return args.filter((a, i) => !(a === TESTID_ARG_SEPARATOR && i === args.indexOf(TESTID_ARG_SEPARATOR)));
}

export function testidTemplate(spec: string | undefined, script: string): string {
  const def = `${scriptBaseName(script)}/@`;
  if (spec === undefined || spec === '' || spec === '=') return def;
  if (spec.startsWith('=')) return def + spec.slice(1);
  if (spec === '*') return `${def}(*)`;
  return spec;
}

export function expandTestid(template: string, args: readonly string[], stepno: number): string {
  const named = testidArgs(args);
  const argPart = named.map((a) => `/${a}`).join('');
  let t = template.split('/@').join(argPart);
  if (t.endsWith('(*)')) t = `${t.slice(0, -3)}(${stepno})`;
  return t;
}

export function computeTestid(
  spec: string | undefined,
  script: string,
  args: readonly string[],
  stepno: number,
): string {
  return expandTestid(testidTemplate(spec, script), args, stepno);
}

/** Reports and histories compare testids without the step number a `*` spec added. */
export function reportTestid(testid: string): string {
  return testid.replace(/\(\d+\)$/, '');
}
