/**
 * Flight families: given a branch, a blessing and the revisions to test, the jobs of a new flight
 * with their runvars (what OSSTest's make-flight does). One family per file in flights/.
 * The shape carries OSSTest's job matrix: per-arch build jobs, test jobs per (hypervisor arch,
 * dom0 arch), jobs needing two hosts (`host_idents`, `equiv-*` flags in `*_hostflags`), and test jobs
 * whose builds come from another flight (`buildjob=<flight>.<job>`).
 */
import type { Config } from '../config/config.js';

export interface JobSpec {
  job: string;
  recipe: string;
  runvars: Record<string, string>;
}

export interface FamilyInput {
  branch: string;
  blessing: string;
  /** tree name → revision to test (already resolved to a commit where possible). */
  revisions: Record<string, string>;
  /** tree name → URL. */
  trees: Record<string, string>;
  config: Config;
  /** Take builds from this flight instead of making build jobs. */
  buildFlight?: string;
}

export interface FlightFamily {
  name: string;
  description: string;
  /** The trees this family tests on the branch (their revisions must be known before makeJobs). */
  trees(branch: string, config: Config): string[];
  makeJobs(input: FamilyInput): JobSpec[];
}

/** The name a build job is referenced by from a test job, honouring --build-flight. */
export function buildRef(job: string, buildFlight: string | undefined): string {
  return buildFlight ? `${buildFlight}.${job}` : job;
}
