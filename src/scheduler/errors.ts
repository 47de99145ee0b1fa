/** Bad input to the scheduler: the message names the job and runvar (or setting) it came from. */
export class SchedulerInputError extends Error {
  override name = 'SchedulerInputError';
}
