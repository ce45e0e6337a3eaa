// The workflow bundle's entry point: every workflow type Keel's workers run.
export { chatCompletionWorkflow, statusQuery } from './chat-completion.js';
export { providerHealthWorkflow } from './provider-health.js';
export { batchWorkflow, cancelBatchSignal } from './batch.js';
