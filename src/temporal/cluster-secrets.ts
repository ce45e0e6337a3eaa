// The secrets the production configuration takes from the environment, for a cluster run on one
// machine (`npm run cluster`, the cluster test) when the environment does not give them: made once
// per data folder and kept in it (owner-only), so a restarted cluster still reads the data its
// predecessor encrypted. Never printed.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const MAKERS: Record<string, () => string> = {
  // docs/ENCRYPTION.md: 32 random bytes in base64.
  KEEL_CODEC_KEY: () => randomBytes(32).toString('base64'),
  KEEL_CODEC_TOKEN: () => randomBytes(24).toString('base64url'),
  // docs/KEYS.md: the gateway's admin key, which the production config requires of the APIs (only
  // they get it: src/temporal/cluster.ts).
  KEEL_ADMIN_KEY: () => `keel-admin-${randomBytes(24).toString('base64url')}`,
};

/** Each secret `env` lacks, from `<dataDir>/secrets.json` (made there on first use). */
export function localClusterSecrets(dataDir: string, env: NodeJS.ProcessEnv): Record<string, string> {
  const file = join(dataDir, 'secrets.json');
  const kept = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>) : {};
  let changed = false;
  for (const [name, make] of Object.entries(MAKERS)) {
    if (kept[name] === undefined) {
      kept[name] = make();
      changed = true;
    }
  }
  if (changed) writeFileSync(file, `${JSON.stringify(kept, null, 2)}\n`, { mode: 0o600 });
  return Object.fromEntries(Object.entries(kept).filter(([name]) => !env[name]));
}
