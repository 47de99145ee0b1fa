export * from './hostkeys.js';
export * from './keys.js';
export * from './session.js';
