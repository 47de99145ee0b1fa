/** What most commands start with: the effective config and the store it names. */
import { Config } from '../config/config.js';
import { openConfiguredStore } from '../db/from-config.js';
import type { Store } from '../db/store.js';

export interface Ctx {
  config: Config;
  store: Store;
}

export async function withStore<T>(fn: (ctx: Ctx) => Promise<T>): Promise<T> {
  const config = Config.load({ env: process.env });
  const store = await openConfiguredStore(config);
  try {
    return await fn({ config, store });
  } finally {
    await store.close();
  }
}

/** The standalone flight: $OSSTEST_FLIGHT, else `standalone`. */
export function defaultFlight(): string {
  return process.env.OSSTEST_FLIGHT || 'standalone';
}

/** Repeated `--rev TREE=REV` options, collected by commander. */
export function collectRev(value: string, prev: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0 || eq === value.length - 1) throw new Error(`--rev ${value}: expected TREE=REVISION`);
  return { ...prev, [value.slice(0, eq)]: value.slice(eq + 1) };
}
