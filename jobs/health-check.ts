/**
 * Recipe `health-check`: is a quarantined host fit to be used again? Workers queue it (a flight with
 * this one job, runvar `host` naming the host) every HealthCheckInterval while the host is
 * quarantined; when it passes the host is good again. A host class that needs more (an install
 * before the smoke test) names its own recipe in the host property HealthCheckRecipe.
 * allocate (broken) → ssh smoke test (broken).
 */
import type { Recipe } from '../src/executor/recipe.js';

const recipe: Recipe = {
  name: 'health-check',
  description: 'check that a host answers ssh and runs a command (brings a quarantined host back)',
  hostIdents: () => ['host'],
  steps: () => [
    {
      testcase: 'ts-hosts-allocate',
      args: ['+', 'host'],
      onFailure: 'broken',
      marksRunning: true,
      waitsForHosts: true,
      timeoutSeconds: 300,
    },
    { testcase: 'ts-host-ping', args: ['+', 'host'], onFailure: 'broken', timeoutSeconds: 300 },
  ],
};

export default recipe;
