/** The configuration layer: config files, their format, the settings table and typed access. */
export { Config, LOCAL_CONFIG, type LoadOptions, sourceOf, USER_CONFIG } from './config.js';
export { ConfigError } from './errors.js';
export { type ConfigEntry, configName, NAME_RE, parseConfigText, readConfigFile } from './parse.js';
export { SETTINGS, type Setting, settingFor } from './settings.js';
