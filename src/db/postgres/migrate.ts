/**
 * Brings a PostgreSQL database up to the newest schema (src/db/schema.ts). Many processes on many
 * machines open the store at once (workers, the executor, every testcase), so each migration runs in
 * its own transaction under a transaction-scoped advisory lock, and looks again at what is applied
 * once it holds the lock: whoever comes second finds the work done. PostgreSQL's DDL is
 * transactional, so a migration that fails leaves nothing half-made.
 *
 * Tables are found through the connection's search_path, so a lab can keep osstest in a schema of
 * its own (`options=-c search_path=osstest`).
 */
import type pg from 'pg';
import { StoreError } from '../errors.js';
import { MIGRATIONS, MIGRATIONS_TABLE, migrationSql, SCHEMA_VERSION } from '../schema.js';

/** The advisory lock that serialises migrations: ('osst', 1) as PostgreSQL's two-int key. */
export const MIGRATION_LOCK: readonly [number, number] = [0x6f737374, 1];

async function appliedIds(c: pg.ClientBase): Promise<Set<number>> {
  const t = await c.query<{ t: string | null }>("SELECT to_regclass('schema_migrations')::text AS t");
  if (t.rows[0]?.t == null) return new Set();
  const r = await c.query<{ id: number }>('SELECT id FROM schema_migrations');
  return new Set(r.rows.map((x) => Number(x.id)));
}

function tooNew(applied: Set<number>, where: string): StoreError | undefined {
  const newest = Math.max(0, ...applied);
  if (newest <= SCHEMA_VERSION) return undefined;
  return new StoreError(
    `PostgreSQL database ${where} has schema version ${newest}, newer than this osstest knows (${SCHEMA_VERSION}): use a newer osstest`,
  );
}

/** Applies what is missing; `where` names the database in messages. */
export async function migratePostgres(c: pg.ClientBase, where: string): Promise<void> {
  const seen = await appliedIds(c);
  const refuse = tooNew(seen, where);
  if (refuse) throw refuse;
  if (MIGRATIONS.every((m) => seen.has(m.id))) return;

  for (const m of MIGRATIONS) {
    await c.query('BEGIN');
    try {
      await c.query('SELECT pg_advisory_xact_lock($1, $2)', [...MIGRATION_LOCK]);
      await c.query(migrationSql(MIGRATIONS_TABLE, 'postgres'));
      const applied = await appliedIds(c);
      const newer = tooNew(applied, where);
      if (newer) throw newer;
      if (!applied.has(m.id)) {
        await c.query(migrationSql(m.sql, 'postgres'));
        await c.query('INSERT INTO schema_migrations (id, name, applied) VALUES ($1, $2, $3)', [
          m.id,
          m.name,
          Date.now(),
        ]);
      }
      await c.query('COMMIT');
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      if (e instanceof StoreError) throw e;
      throw new StoreError(
        `PostgreSQL database ${where}: migration ${m.id} (${m.name}) failed: ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
}
