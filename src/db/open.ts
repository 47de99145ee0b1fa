/** Opens a store by kind: the one place that knows which implementations exist. */
import { StoreError } from './errors.js';
import { openSqliteStore } from './sqlite/store.js';
import type { Store } from './store.js';

export type StoreSpec = { kind: 'sqlite'; path: string } | { kind: 'postgres'; connection: string };

export async function openStore(opts: StoreSpec): Promise<Store> {
  switch (opts.kind) {
    case 'sqlite':
      return openSqliteStore(opts.path);
    case 'postgres':
      throw new StoreError(
        'PostgreSQL store is not built yet (JobDB Executive); use JobDB Standalone with StandaloneDb for now',
      );
    default: {
      const kind: never = opts;
      throw new StoreError(`unknown store kind ${JSON.stringify((kind as { kind: unknown }).kind)}`);
    }
  }
}
