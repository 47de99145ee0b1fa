/** The store contract on sqlite files, plus what only sqlite has: its pragmas, migrations on a file, opening. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { StoreError } from '../../src/db/errors.js';
import { openStore } from '../../src/db/open.js';
import { MIGRATIONS, SCHEMA_VERSION } from '../../src/db/schema.js';
import { openSqliteStore, SqliteStore } from '../../src/db/sqlite/store.js';
import { snapshotSqlite } from '../helpers/dbsnapshot.js';
import { defineStoreSuite, runStoreChildren } from './store-suite.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'osstest-store-'));
}

defineStoreSuite('sqlite', async () => {
  const dir = tempDir();
  // A directory that does not exist yet: opening must make it.
  const path = join(dir, 'sub', 'store.db');
  const store = await openSqliteStore(path);
  return {
    store,
    reopen: () => openSqliteStore(path),
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    spec: { kind: 'sqlite', path },
    snapshot: () => snapshotSqlite(path),
  };
});

describe('sqlite store specifics', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  function newPath(): string {
    const d = tempDir();
    dirs.push(d);
    return join(d, 'a', 'b', 'store.db');
  }

  it('runs in WAL with a busy timeout of at least 10 s, foreign keys on, synchronous NORMAL', async () => {
    const store = await openSqliteStore(newPath());
    try {
      expect(store).toBeInstanceOf(SqliteStore);
      expect((store as SqliteStore).settings()).toEqual({
        journalMode: 'wal',
        busyTimeoutMs: expect.any(Number),
        foreignKeys: true,
        synchronous: 'NORMAL',
      });
      expect((store as SqliteStore).settings().busyTimeoutMs).toBeGreaterThanOrEqual(10_000);
    } finally {
      await store.close();
    }
  });

  it('applies each migration once and keeps data across reopening', async () => {
    const path = newPath();
    const s1 = await openSqliteStore(path);
    await s1.createFlight({ flight: 'kept', branch: 'b', intended: 'play' });
    await s1.close();
    const s2 = await openStore({ kind: 'sqlite', path });
    expect((await s2.getFlight('kept'))?.flight).toBe('kept');
    await s2.close();
    const db = new Database(path, { readonly: true });
    try {
      const rows = db.prepare('SELECT id, name FROM schema_migrations ORDER BY id').all();
      expect(rows).toEqual(MIGRATIONS.map((m) => ({ id: m.id, name: m.name })));
    } finally {
      db.close();
    }
  });

  it('refuses a database whose schema is newer than this program', async () => {
    const path = newPath();
    await (await openSqliteStore(path)).close();
    const db = new Database(path);
    db.prepare('INSERT INTO schema_migrations (id, name, applied) VALUES (?, ?, ?)').run(
      SCHEMA_VERSION + 1,
      'future',
      0,
    );
    db.close();
    await expect(openSqliteStore(path)).rejects.toThrow(new RegExp(`schema version ${SCHEMA_VERSION + 1}`));
  });

  it('says which file is not a database', async () => {
    const path = newPath();
    await (await openSqliteStore(path)).close();
    rmSync(path);
    for (const ext of ['-wal', '-shm']) rmSync(path + ext, { force: true });
    writeFileSync(path, 'this is not sqlite, just text that is long enough to have a header '.repeat(20));
    const err = await openSqliteStore(path).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StoreError);
    expect((err as Error).message).toContain(path);
  });

  it('migrates a fresh file once when several processes open it at the same moment', async () => {
    const path = newPath();
    const results = (await runStoreChildren(
      Array.from({ length: 3 }, () => ({ mode: 'create-flight', spec: { kind: 'sqlite', path } })),
    )) as { flight: string }[];
    expect(results.map((r) => r.flight).sort()).toEqual(['1', '2', '3']);
    const store = await openSqliteStore(path);
    expect((await store.listFlights()).map((f) => f.flight).sort()).toEqual(['1', '2', '3']);
    await store.close();
  }, 60_000);

  it('opens through openStore, which dispatches on the kind', async () => {
    const s = await openStore({ kind: 'sqlite', path: newPath() });
    expect(s.kind).toBe('sqlite');
    await s.close();
    // Nothing listens on port 1: the PostgreSQL store answers, naming the server it could not reach.
    await expect(openStore({ kind: 'postgres', connection: 'postgres://127.0.0.1:1/x' })).rejects.toThrow(
      /127\.0\.0\.1:1 database x/,
    );
  });
});
