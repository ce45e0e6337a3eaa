// Shared by the entry points: read the configuration or exit with a message naming the field.
import { ConfigError, configPath, loadConfig, type KeelConfig } from './config.js';

export function loadConfigOrExit(): KeelConfig {
  try {
    return loadConfig(configPath());
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`keel: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }
}

export function temporalAddress(config: KeelConfig, env: NodeJS.ProcessEnv = process.env): string {
  return env.TEMPORAL_ADDRESS ?? config.raw.temporal?.address ?? '127.0.0.1:7233';
}

export function dataDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.KEEL_DATA_DIR ?? '.keel';
}
