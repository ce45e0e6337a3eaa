// The object-store key layout of files and batches. Pure, so the batch workflow can name the
// keys it hands to activities (a chunk's key is the workflow's choice: replays rewrite, never add).
export const keys = {
  fileMeta: (id: string) => `files/${id}.json`,
  fileData: (id: string) => `files/${id}.data`,
  batch: (id: string) => `batches/${id}.json`,
  work: (id: string) => `batch-work/${id}`,
  valid: (id: string) => `batch-work/${id}/valid.jsonl`,
  invalid: (id: string) => `batch-work/${id}/invalid.jsonl`,
  results: (id: string) => `batch-work/${id}/results`,
  chunk: (id: string, round: number, seq: number) => `batch-work/${id}/results/r${String(round).padStart(4, '0')}-${String(seq).padStart(7, '0')}.jsonl`,
  retry: (id: string, round: number) => `batch-work/${id}/retry-${round}.jsonl`,
};

/** A line's request workflow ID: batch id + round + custom_id, so a re-drive finds the same execution. */
export function childWorkflowId(batchId: string, round: number, customId: string): string {
  return `${batchId}/${round}/${customId}`;
}
