// Where a provider call keeps its attempt log between Temporal's retries of it. An activity on a
// provider task queue carries it in its heartbeat details, which the server hands to the next
// attempt, wherever it runs. A local activity cannot heartbeat; Temporal retries it inside the
// same worker (below the local retry threshold), so the log stays in this process, keyed by the
// call. A local call whose worker dies is retried by the next workflow task from its first
// attempt: the attempts the dead worker made are lost with it (docs/ROUTING.md, "Call paths").
import type { Context } from '@temporalio/activity';
import type { AttemptLogDetails, AttemptRecord } from '../../src/core/request-types.js';

export interface AttemptLog {
  /** The attempts before this one. */
  readonly prior: AttemptRecord[];
  /** Chunks the previous attempt had streamed to a client when it last proved itself alive (task-queue calls). */
  readonly priorStreamed: number;
  /** Keeps the log for the next attempt (and proves this one alive, where that is how cancellation arrives). */
  keep(attempts: AttemptRecord[], streamed?: number): void;
  /** The call is over: nothing follows. */
  close(): void;
}

// Entries of calls that ended without close() (a retry moved to another worker) expire.
const LOCAL_TTL_MS = 60 * 60_000;
const local = new Map<string, { attempts: AttemptRecord[]; at: number }>();

function sweep(now: number): void {
  for (const [key, entry] of local) if (now - entry.at > LOCAL_TTL_MS) local.delete(key);
}

export function attemptLog(ctx: Context): AttemptLog {
  const info = ctx.info;
  if (!info.isLocal) {
    const details = info.heartbeatDetails as AttemptLogDetails | undefined;
    return {
      prior: details?.attempts ?? [],
      priorStreamed: details?.streamed ?? 0,
      keep: (attempts, streamed) => ctx.heartbeat({ attempts, ...(streamed && { streamed }) } satisfies AttemptLogDetails),
      close: () => undefined,
    };
  }
  const key = `${info.workflowExecution?.workflowId}/${info.workflowExecution?.runId}/${info.activityId}`;
  const prior = local.get(key)?.attempts ?? [];
  return {
    prior,
    // A local call whose worker died is run again from its first attempt by the next worker.
    priorStreamed: 0,
    keep(attempts) {
      const now = Date.now();
      if (local.size > 0 && local.size % 1000 === 0) sweep(now);
      local.set(key, { attempts, at: now });
    },
    close: () => void local.delete(key),
  };
}

/** For tests: how many local calls hold a log. */
export function localLogsHeld(): number {
  return local.size;
}
