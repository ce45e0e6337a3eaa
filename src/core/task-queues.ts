// Task-queue names, shared by the worker (which polls them) and workflows (which route to them).

/** One task queue per provider: a Temporal-enforced rate limit, a concurrency cap and workers per provider. */
export function providerTaskQueue(provider: string): string {
  return `keel-provider-${provider}`;
}

/** The singleton provider-health workflow of the Keel deployment that runs on `taskQueue`. */
export function providerHealthWorkflowId(taskQueue: string): string {
  return `${taskQueue}-provider-health`;
}

/** Batch workflows and their activities; their children (request workflows) run on the request queue. */
export function batchTaskQueue(requestQueue: string): string {
  return `${requestQueue}-batches`;
}
