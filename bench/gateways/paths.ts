// Where the gateway benchmark works: the repository root, and the git-ignored folder that holds
// the peers it installs (.keel/ is ignored as a whole).
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const PEERS_DIR = join(ROOT, '.keel', 'bench');
