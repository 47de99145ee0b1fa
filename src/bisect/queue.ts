/**
 * The hand-over from the push gate to the bisector: a regression found by the gate becomes a
 * pending bisection in the database, which `osstest bisect` (or whoever runs bisections) picks up.
 * Asking twice for the same (branch, job, testid) while a bisection of it is open gives back the
 * open one: a regression that persists over several gate runs is bisected once.
 */
import type { Store } from '../db/store.js';
import type { Bisection } from '../db/types.js';

export interface BisectionRequest {
  branch: string;
  job: string;
  testid: string;
  /** The flight in which the gate saw the regression. */
  flight?: string;
}

export interface RequestedBisection {
  bisection: Bisection;
  /** false: a bisection of this regression was already pending or running. */
  created: boolean;
}

export async function requestBisection(store: Store, r: BisectionRequest): Promise<RequestedBisection> {
  return store.requestBisection({
    branch: r.branch,
    job: r.job,
    testid: r.testid,
    requestedFlight: r.flight ?? null,
  });
}

/** The bisections waiting to be started, oldest first (the order to work through them). */
export async function pendingBisections(store: Store, branch?: string): Promise<Bisection[]> {
  const list = await store.listBisections({ state: 'pending', ...(branch ? { branch } : {}) });
  return list.reverse();
}
