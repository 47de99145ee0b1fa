/** Brings a sqlite database up to the newest schema (src/db/schema.ts), safely when several processes open it at once. */
import type Database from 'better-sqlite3';
import { StoreError } from '../errors.js';
import { MIGRATIONS, MIGRATIONS_TABLE, migrationSql, SCHEMA_VERSION } from '../schema.js';

function appliedIds(db: Database.Database): Set<number> {
  const has = db
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
    .get();
  if (!has) return new Set();
  return new Set(db.prepare('SELECT id FROM schema_migrations').pluck().all() as number[]);
}

export function migrateSqlite(db: Database.Database, path: string): void {
  let applied = appliedIds(db);
  const newest = Math.max(0, ...applied);
  if (newest > SCHEMA_VERSION) {
    throw new StoreError(
      `sqlite database ${path} has schema version ${newest}, newer than this osstest knows (${SCHEMA_VERSION}): use a newer osstest`,
    );
  }
  if (MIGRATIONS.every((m) => applied.has(m.id))) return;

  db.exec(migrationSql(MIGRATIONS_TABLE, 'sqlite'));
  const record = db.prepare('INSERT INTO schema_migrations (id, name, applied) VALUES (?, ?, ?)');
  for (const m of MIGRATIONS) {
    // IMMEDIATE takes the write lock before looking, so two processes opening a fresh file
    // cannot both decide to apply the same migration.
    db.transaction(() => {
      applied = appliedIds(db);
      if (applied.has(m.id)) return;
      db.exec(migrationSql(m.sql, 'sqlite'));
      record.run(m.id, m.name, Date.now());
    }).immediate();
  }
}
