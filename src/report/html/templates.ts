/**
 * The HTML templates: eta files in config/templates/html/, rendered with auto-escaping on.
 *
 * Why files rather than strings in the code: they read and diff as HTML, a lab can look at them
 * next to the other templates osstest ships (PXE, preseed), and eta caches each compiled template.
 *
 * The escaping rule, checked by a unit test over every template: data is only ever written with
 * `<%= … %>` (escaped); `<%~ … %>` (raw) appears only around `include(…)` and the layout's
 * `it.body`, which are themselves template output. No template interpolates into a `<script>` or
 * `<style>` element or into an event-handler attribute, and links come from Links, which
 * percent-encodes every name.
 */
import { join } from 'node:path';
import { Eta } from 'eta';
import { harnessRoot } from '../../executor/paths.js';

export const TEMPLATE_DIR = join(harnessRoot, 'config', 'templates', 'html');

let eta: Eta | undefined;

function engine(): Eta {
  eta ??= new Eta({
    views: TEMPLATE_DIR,
    autoEscape: true,
    cache: true,
    // Templates are trusted code; the data is not, and goes only through `it`.
    useWith: false,
    autoTrim: [false, 'nl'],
  });
  return eta;
}

export type TemplateName =
  | 'flight'
  | 'job'
  | 'flights'
  | 'job-history'
  | 'host-history'
  | 'branch'
  | 'live'
  | 'plan'
  | 'error';

export function renderTemplate(name: TemplateName, view: object): string {
  return engine().render(name, view);
}
