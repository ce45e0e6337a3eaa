// Runs before `npm start` and `npm test`: installs the npm dependencies when node_modules is
// missing or older than the lockfile, so the quick start is one command each on a fresh clone.
// Plain JavaScript on purpose: it must run before tsx is installed.
import { execSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';

const marker = 'node_modules/.package-lock.json';
const stale = !existsSync(marker) || statSync('package-lock.json').mtimeMs > statSync(marker).mtimeMs;
if (stale) {
  console.error('keel: installing npm dependencies ...');
  // Not `npm ci`: the registry mirror here lacks other platforms' optional packages (@swc/core-darwin-*,
  // ...), which npm cannot record in the lockfile, and `npm ci` then refuses the lockfile as out of sync.
  execSync('npm install --no-audit --no-fund', { stdio: 'inherit' });
}
