// The layout's rules hold by checks, not by comments (docs/ARCHITECTURE.md): the import rules
// in .oxlintrc.json (run by `npm test`) reject a violation, and the Temporal contract is the one
// place where workflow, signal, query and update names are written.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { WORKFLOW_TYPES } from '../src/core/contract.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OXLINT = join(ROOT, 'node_modules', '.bin', 'oxlint');

/** Lints `files` (path → source) laid out as in the repository, with the repository's rules. */
function lint(files: Record<string, string>): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'keel-boundaries-'));
  try {
    copyFileSync(join(ROOT, '.oxlintrc.json'), join(dir, '.oxlintrc.json'));
    for (const [path, source] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), source);
    }
    const run = spawnSync(OXLINT, ['-c', '.oxlintrc.json', ...Object.keys(files)], { cwd: dir, encoding: 'utf8' });
    return { status: run.status, output: `${run.stdout}${run.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('import rules', () => {
  test('the repository passes them', () => {
    const run = spawnSync(OXLINT, ['--deny-warnings'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stdout + run.stderr);
  });

  const refused: [string, string, string][] = [
    ['workflows/x.ts', "import { readFileSync } from 'node:fs';\nexport const x = readFileSync;\n", 'node:fs'],
    ['workflows/x.ts', "import { Client } from '@temporalio/client';\nexport const x = Client;\n", '@temporalio/client'],
    ['workflows/x.ts', "import { loadConfig } from '../src/config/load.js';\nexport const x = loadConfig;\n", 'config/load'],
    ['workflows/x.ts', "import { createActivities } from '../activities/index.js';\nexport const x = createActivities;\n", 'activities'],
    ['src/core/x.ts', "import { createHash } from 'crypto';\nexport const x = createHash;\n", 'crypto'],
    ['src/core/x.ts', "import type { KeelActivities } from '../../activities/index.js';\nexport type X = KeelActivities;\n", 'activities'],
    ['src/core/x.ts', "import { sendError } from '../api/errors.js';\nexport const x = sendError;\n", 'api/errors'],
    ['src/config/schema.ts', "import { join } from 'node:path';\nexport const x = join;\n", 'node:path'],
    ['src/services/x.ts', "import { sendError } from '../api/errors.js';\nexport const x = sendError;\n", 'api/errors'],
    ['activities/x.ts', "import { RequestService } from '../src/services/request-service.js';\nexport const x = RequestService;\n", 'services'],
    ['activities/x.ts', "import type { HealthAgent } from '../src/worker/health-agent.js';\nexport type X = HealthAgent;\n", 'worker (not even a type)'],
    ['src/api/x.ts', "import { Client } from '@temporalio/client';\nexport const x = Client;\n", '@temporalio/client'],
    ['src/worker/x.ts', "import { RequestService } from '../services/request-service.js';\nexport const x = RequestService;\n", 'services'],
  ];
  for (const [path, source, what] of refused) {
    test(`${path} may not import ${what}`, () => {
      const run = lint({ [path]: source });
      assert.notEqual(run.status, 0, `accepted:\n${run.output}`);
      assert.match(run.output, /no-restricted-imports/);
    });
  }

  test('type-only imports across a boundary are allowed where the rule says so', () => {
    const run = lint({
      'workflows/x.ts': "import type { KeelActivities } from '../activities/index.js';\nimport type { Client } from '@temporalio/client';\nexport type X = [KeelActivities, Client];\n",
    });
    assert.equal(run.status, 0, run.output);
  });
});

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

describe('one Temporal contract', () => {
  const CONTRACT = 'src/core/contract.ts';
  const files = ['src', 'workflows', 'activities', 'dev', 'bench', 'test'].flatMap(sourceFiles).filter((f) => f !== CONTRACT && f !== 'test/boundaries.test.ts');
  const names = Object.values(WORKFLOW_TYPES);
  // A handler or workflow named by a string where a definition from the contract belongs.
  const byString = /\b(defineSignal|defineQuery|defineUpdate|query|signal|executeUpdate|startUpdate|signalWithStart|executeChild|startChild)\s*(<[^>(]*>)?\(\s*['"`]/;

  test('workflow type names are written only in the contract', () => {
    const found = files.flatMap((f) => {
      const text = readFileSync(join(ROOT, f), 'utf8');
      return names.filter((n) => new RegExp(`['"\`]${n}['"\`]`).test(text)).map((n) => `${f}: '${n}'`);
    });
    assert.deepEqual(found, []);
  });

  test('signals, queries and updates are defined and called through the contract', () => {
    const found = files.flatMap((f) =>
      readFileSync(join(ROOT, f), 'utf8')
        .split('\n')
        .map((line, i) => (byString.test(line) ? `${f}:${i + 1}: ${line.trim()}` : undefined))
        .filter((l): l is string => l !== undefined),
    );
    assert.deepEqual(found, []);
  });

  test('the workflow bundle exports exactly the contract’s workflow types', async () => {
    const bundle = await import('../workflows/index.js');
    assert.deepEqual(Object.keys(bundle).sort(), [...names].sort());
  });
});
