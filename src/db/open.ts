/** Opens a store by kind: the one place that knows which implementations exist. */
import { StoreError } from './errors.js';
import { openSqliteStore } from './sqlite/store.js';
import type { Store } from './store.js';

/**
 * `connection` for PostgreSQL: a postgres:// URL or libpq keyword/value pairs (`host=… dbname=…`);
 * empty means the PG* environment (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD).
 */
export type StoreSpec = { kind: 'sqlite'; path: string } | { kind: 'postgres'; connection: string };

export async function openStore(opts: StoreSpec): Promise<Store> {
  switch (opts.kind) {
    case 'sqlite':
      return openSqliteStore(opts.path);
    case 'postgres': {
      // Loaded on demand: `pg` costs about 90 ms at start-up, which every standalone command would pay.
      const { openPostgresStore } = await import('./postgres/store.js');
      return openPostgresStore(opts.connection);
    }
    default: {
      const kind: never = opts;
      throw new StoreError(`unknown store kind ${JSON.stringify((kind as { kind: unknown }).kind)}`);
    }
  }
}
