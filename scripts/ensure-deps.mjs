// Runs before `npm start` and `npm test`: installs the npm dependencies when node_modules is
// missing or older than the lockfile, so the quick start is one command each on a fresh clone.
// Plain JavaScript on purpose: it must run before tsx is installed.
//
// `npm ci` installs exactly the committed lockfile and never rewrites it, so a fresh clone stays
// clean (`git status`). The lockfile is committed as npm writes it, other platforms' optional
// packages (@swc/core-*, @oxlint/binding-*) included; test/install.test.ts checks both.
import { execSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';

const marker = 'node_modules/.package-lock.json';
const stale = !existsSync(marker) || statSync('package-lock.json').mtimeMs > statSync(marker).mtimeMs;
if (stale) {
  console.error('keel: installing npm dependencies (npm ci) ...');
  execSync('npm ci --no-audit --no-fund', { stdio: 'inherit' });
}
