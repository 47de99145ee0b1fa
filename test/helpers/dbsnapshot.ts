/** Every row of every table of a sqlite database, to assert that a refused command changed nothing. */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';

export function snapshotSqlite(path: string): string {
  if (!existsSync(path)) return '<no database>';
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as {
      name: string;
    }[];
    const out: Record<string, unknown[]> = {};
    for (const { name } of tables) out[name] = db.prepare(`SELECT * FROM "${name}"`).all();
    return JSON.stringify(out);
  } finally {
    db.close();
  }
}
