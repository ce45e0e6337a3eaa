// The workflow bundle is built by webpack in a child process. Webpack's heap (~400 MB here) would
// otherwise stay in the worker's resident set for its whole life: V8 rarely returns freed pages.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { WORKFLOW_TRACING_INTERCEPTORS } from '../observability/temporal-tracing.js';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../../workflows/index.ts', import.meta.url));
const BUILDER = fileURLToPath(new URL('./workflow-bundle-build.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * `tracing`: compile Temporal's OpenTelemetry workflow interceptors into the bundle (a bundle is
 * built for one tracing setting: without them, workflow code spends nothing on spans).
 * `failureConverterPath`: the failure converter compiled into the bundle — with the codec on,
 * failure messages are encoded inside the workflow sandbox (src/codec/data-converter.ts,
 * `bundleOptionsFor`), so a bundle is built for one codec setting too.
 */
export async function bundleWorkflows(opts: { tracing?: boolean; failureConverterPath?: string } = {}): Promise<WorkflowBundleWithSourceMap> {
  const out = mkdtempSync(join(tmpdir(), 'keel-bundle-'));
  try {
    const env = { ...process.env, KEEL_BUNDLE_INTERCEPTORS: opts.tracing ? WORKFLOW_TRACING_INTERCEPTORS : '' };
    const args = [BUILDER, WORKFLOWS_PATH, out, ...(opts.failureConverterPath ? [opts.failureConverterPath] : [])];
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, env, stdio: ['ignore', 'inherit', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-10_000);
    });
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (c) => resolve(c));
    });
    if (code !== 0) throw new Error(`bundling the workflows failed (exit ${code}):\n${stderr}`);
    return { code: readFileSync(join(out, 'workflows.js'), 'utf8'), sourceMap: readFileSync(join(out, 'workflows.js.map'), 'utf8') };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
