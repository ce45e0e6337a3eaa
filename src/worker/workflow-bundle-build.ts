// Child process of bundleWorkflows(): `workflow-bundle-build.ts <workflows path> <out dir> [failure converter path]`.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';

const [workflowsPath, outDir, failureConverterPath] = process.argv.slice(2);
// The bundler reports every module at info level; start-up output should stay readable.
const quiet = { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: (m: string) => console.warn(m), error: (m: string) => console.error(m) };
// Workflow interceptor modules (tracing) come from the parent through the environment.
const interceptors = process.env.KEEL_BUNDLE_INTERCEPTORS;
const bundle = await bundleWorkflowCode({
  workflowsPath,
  logger: quiet,
  ...(interceptors && { workflowInterceptorModules: [interceptors] }),
  ...(failureConverterPath && { failureConverterPath }),
});
writeFileSync(join(outDir, 'workflows.js'), bundle.code);
writeFileSync(join(outDir, 'workflows.js.map'), bundle.sourceMap);
