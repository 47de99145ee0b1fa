/**
 * Recipe `build`: build the job's trees on a build host and stash the result.
 * allocate (broken) → prepare the build host (broken) → build (fail) → capture logs (always).
 */
import type { Recipe } from '../src/executor/recipe.js';

const recipe: Recipe = {
  name: 'build',
  description: 'build the trees at their revisions on a build host; stash the artefacts',
  hostIdents: () => ['host'],
  steps: () => [
    {
      testcase: 'ts-hosts-allocate',
      args: ['+', 'host'],
      onFailure: 'broken',
      marksRunning: true,
      waitsForHosts: true,
      timeoutSeconds: 600,
    },
    { testcase: 'ts-build-prep', args: ['+', 'host'], onFailure: 'broken', timeoutSeconds: 900 },
    { testcase: 'ts-build', args: ['+', 'host'], onFailure: 'fail' },
    {
      testcase: 'ts-logs-capture',
      args: ['+', 'host'],
      testid: 'capture-logs',
      onFailure: 'broken',
      always: true,
      timeoutSeconds: 900,
    },
  ],
};

export default recipe;
