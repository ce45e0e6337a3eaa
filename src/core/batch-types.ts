// Shapes of OpenAI's File and Batch objects and of the batch workflow's own inputs. Type-only
// (plus a few pure helpers), so workflows may import it.
import type { RoutingConfig } from '../config/schema.js';

export type FilePurpose = 'batch' | 'batch_output' | 'user_data' | 'assistants' | 'fine-tune' | 'vision' | 'evals';

export interface FileObject {
  id: string;
  object: 'file';
  bytes: number;
  created_at: number;
  filename: string;
  purpose: FilePurpose;
  status: 'processed';
  expires_at: number | null;
  status_details: string | null;
  /** Keel's addition: the virtual key that owns the file (only it and the admin see it). */
  keel?: { key_id: string };
}

export type BatchStatus = 'validating' | 'failed' | 'in_progress' | 'finalizing' | 'completed' | 'expired' | 'cancelling' | 'cancelled';
export const TERMINAL_STATUSES: readonly BatchStatus[] = ['failed', 'completed', 'expired', 'cancelled'];

export interface BatchLineError {
  code: string;
  message: string;
  param: string | null;
  line: number | null;
}

export interface RequestCounts {
  total: number;
  completed: number;
  failed: number;
}

export interface BatchObject {
  id: string;
  object: 'batch';
  endpoint: string;
  errors: { object: 'list'; data: BatchLineError[] } | null;
  input_file_id: string;
  completion_window: string;
  status: BatchStatus;
  output_file_id: string | null;
  error_file_id: string | null;
  created_at: number;
  in_progress_at: number | null;
  expires_at: number | null;
  finalizing_at: number | null;
  completed_at: number | null;
  failed_at: number | null;
  expired_at: number | null;
  cancelling_at: number | null;
  cancelled_at: number | null;
  request_counts: RequestCounts;
  metadata: Record<string, string> | null;
  /** Keel's additions: how many retry-failed rounds ran; the virtual key that owns the batch. */
  keel?: { retry_rounds: number; key_id?: string };
}

/** A validated input line as the batch workflow starts it. */
export interface BatchItem {
  customId: string;
  model: string;
  body: Record<string, unknown>;
  /** Byte offset just past this line in its source object: the resume point once it has started. */
  end: number;
}

export interface BatchCursor {
  /** Store key of the JSONL the lines come from (valid lines, or a retry round's failed lines). */
  source: string;
  offset: number;
  counts: RequestCounts;
  /** Next results-chunk number; chunks are named by round and seq so replays overwrite, never add. */
  seq: number;
  cancelRequested: boolean;
}

export interface BatchWorkflowInput {
  batchId: string;
  inputFileId: string;
  endpoint: string;
  /** Epoch ms when the completion window passes. */
  expiresAt: number;
  routing: RoutingConfig;
  /** Where the lines' request workflows run (the batch itself runs on its own queue). */
  requestTaskQueue: string;
  window: number;
  childrenPerRun: number;
  flushSize: number;
  maxLines: number;
  /** 0 = the batch itself; n = the n-th retry-failed round. */
  round: number;
  /** Present after continue-as-new. */
  cursor?: BatchCursor;
  /** The virtual key the batch was created with: each line reserves against it before it starts. */
  key?: BatchKey;
}

/** A batch's key, as its settings were when the batch was created (what its lines are validated against). */
export interface BatchKey {
  id: string;
  /** Allowed models (absent: all). */
  models?: string[];
  /** The key had a budget: every line must be priced and bounded. */
  budgeted: boolean;
  /** The key had a TPM limit: every line must be bounded. */
  tpm: boolean;
}

export interface RecordItem {
  customId: string;
  childId: string;
  /** A line that never started (its key refused it): written as this error. */
  error?: { code: string; message: string };
}

/** Completion windows: OpenAI's "24h", plus any "<n>s|m|h" (Keel: short windows make expiry testable). */
export function parseCompletionWindow(text: string): number | undefined {
  const m = /^(\d{1,6})(s|m|h)$/.exec(text);
  if (!m) return undefined;
  const n = Number(m[1]);
  if (n <= 0) return undefined;
  return n * (m[2] === 's' ? 1_000 : m[2] === 'm' ? 60_000 : 3_600_000);
}
