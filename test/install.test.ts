// Reproducible installs: the committed lockfile is the one npm writes, so installing on a fresh
// clone (what `npm start`, `npm test` and CI do first) leaves `git status` clean.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

test('a fresh clone is clean after the install that npm start and npm test run', { timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-clone-'));
  try {
    // The working tree's tracked files as a fresh repository: what a clone of this commit holds.
    const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter(Boolean);
    for (const f of tracked) {
      mkdirSync(dirname(join(dir, f)), { recursive: true });
      try {
        copyFileSync(join(ROOT, f), join(dir, f));
      } catch {
        // A tracked file deleted in the working tree is not part of the clone.
      }
    }
    const git = (...args: string[]) => execFileSync('git', args, { cwd: dir, encoding: 'utf8' });
    git('init', '-q');
    git('add', '-A');
    git('-c', 'user.name=keel-test', '-c', 'user.email=keel-test@localhost', 'commit', '-qm', 'clone');
    execFileSync(process.execPath, ['scripts/ensure-deps.mjs'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, npm_config_prefer_offline: 'true' } });
    assert.equal(git('status', '--porcelain'), '', 'the install changed tracked files');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
