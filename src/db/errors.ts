/** Errors the store raises; each says what was refused and why, so the CLI can print it as is. */

export class StoreError extends Error {
  override name = 'StoreError';
}

/** A flight, job, host or runvar that does not exist. */
export class NotFoundError extends StoreError {
  override name = 'NotFoundError';
}

/** A change to a flight's definition after the flight has started running (OSSTEST-BEHAVIOUR §1). */
export class FrozenError extends StoreError {
  override name = 'FrozenError';
}

/** A name that breaks the rules (flight names, job names, runvar names). */
export class InvalidNameError extends StoreError {
  override name = 'InvalidNameError';
}

/** Something that already exists, or a resource already held by someone else. */
export class ConflictError extends StoreError {
  override name = 'ConflictError';
}
