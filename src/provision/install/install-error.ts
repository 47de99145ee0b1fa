/** An install that did not reach its goal; the message says which host and what it waited for. */
export class InstallError extends Error {
  override name = 'InstallError';
}
