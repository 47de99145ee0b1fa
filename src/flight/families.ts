/** Flight families live in flights/NAME.ts (compiled to dist/flights/NAME.js), default-exported. */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Config } from '../config/config.js';
import { distRoot } from '../executor/paths.js';
import type { FlightFamily } from './family.js';

export function listFamilies(): string[] {
  const dir = join(distRoot, 'flights');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.js'))
    .map((f) => f.slice(0, -3))
    .sort();
}

/** The family of a branch: one of that name, else FlightFamily_<branch>, else the name before the first `-`. */
export function familyNameFor(branch: string, config: Config): string {
  const known = listFamilies();
  if (known.includes(branch)) return branch;
  const configured = config.get(`FlightFamily_${branch}`);
  if (configured) return configured;
  const head = branch.split('-')[0]!;
  if (known.includes(head)) return head;
  throw new Error(
    `no flight family for branch '${branch}' (families: ${known.join(', ') || 'none; is the harness built?'}; set FlightFamily_${branch})`,
  );
}

export async function loadFamily(name: string): Promise<FlightFamily> {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) throw new Error(`invalid flight family name '${name}'`);
  const file = join(distRoot, 'flights', `${name}.js`);
  if (!existsSync(file))
    throw new Error(`no flight family '${name}' (families: ${listFamilies().join(', ')})`);
  const mod = (await import(pathToFileURL(file).href)) as { default?: FlightFamily };
  if (!mod.default || typeof mod.default.makeJobs !== 'function') {
    throw new Error(`${file} does not default-export a flight family`);
  }
  return mod.default;
}
