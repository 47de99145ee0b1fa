export type { Allocation } from '../db/types.js';
export { hostAllocateWaitSeconds } from '../model/testcase-protocol.js';
export { DbHostKeyStore, type HostInfo, hostInfo, sshTarget } from './hosts.js';
export { plannerAllocate, usesPlanner } from './lab-hosts.js';
export { envPrefix, shq } from './shell.js';
export { DeclaredStatus, type JobRef, parseJobRef, Testcase, testcaseMain } from './testcase.js';
