/** Host allocation: requirements, candidates, cost, estimates, priorities and the planner (see planner.ts). */
export * from './candidates.js';
export * from './cost.js';
export * from './errors.js';
export * from './estimate.js';
export * from './planner.js';
export * from './priority.js';
export * from './requirements.js';
export * from './timeline.js';
export * from './types.js';
