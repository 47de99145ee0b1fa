/** Recipes live in jobs/NAME.ts (compiled to dist/jobs/NAME.js), one per file, default-exported. */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { distRoot } from './paths.js';
import type { Recipe } from './recipe.js';

const NAME = /^[a-z0-9][a-z0-9-]*$/;

export async function loadRecipe(name: string): Promise<Recipe> {
  if (!NAME.test(name)) throw new Error(`invalid recipe name '${name}'`);
  const file = join(distRoot, 'jobs', `${name}.js`);
  if (!existsSync(file)) {
    throw new Error(
      `no recipe '${name}' (known: ${listRecipes().join(', ') || 'none; is the harness built?'})`,
    );
  }
  const mod = (await import(pathToFileURL(file).href)) as { default?: Recipe };
  if (!mod.default || typeof mod.default.steps !== 'function') {
    throw new Error(`${file} does not default-export a recipe`);
  }
  return mod.default;
}

export function listRecipes(): string[] {
  const dir = join(distRoot, 'jobs');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.js'))
    .map((f) => f.slice(0, -3))
    .sort();
}
