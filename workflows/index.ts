// The workflow bundle's entry point: every workflow type Keel's workers run.
export { chatCompletionWorkflow, statusQuery } from './chat-completion.js';
