// The workflow bundle's entry point: every workflow type Keel's workers run. The export names are
// the workflow type names of src/core/contract.ts (WORKFLOW_TYPES).
export { chatCompletionWorkflow, chatCompletionWorkflowV2 } from './chat-completion.js';
export { providerHealthWorkflow } from './provider-health.js';
export { batchWorkflow } from './batch.js';
export { virtualKeyWorkflow } from './virtual-key.js';
