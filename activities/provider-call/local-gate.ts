// A provider's concurrency cap on the local call path. Calls on a provider task queue are capped
// by that queue's worker slots; local calls share the request worker's local-activity slots, so
// each provider's share is held here: a call waits for a permit before its request goes out.
const inFlight = new Map<string, number>();
const waiting = new Map<string, (() => void)[]>();

/** A release function when fewer than `limit` calls to `provider` are in flight now; undefined otherwise (nothing waits). */
export function tryAcquirePermit(provider: string, limit: number): (() => void) | undefined {
  if ((inFlight.get(provider) ?? 0) >= limit) return undefined;
  return take(provider);
}

function take(provider: string): () => void {
  inFlight.set(provider, (inFlight.get(provider) ?? 0) + 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    inFlight.set(provider, (inFlight.get(provider) ?? 1) - 1);
    waiting.get(provider)?.shift()?.();
  };
}

/** Resolves with a release function once fewer than `limit` calls to `provider` are in flight. */
export async function acquirePermit(provider: string, limit: number, signal: AbortSignal): Promise<() => void> {
  while ((inFlight.get(provider) ?? 0) >= limit) {
    signal.throwIfAborted();
    await new Promise<void>((resolve) => {
      const queue = waiting.get(provider) ?? [];
      waiting.set(provider, queue);
      const wake = () => {
        signal.removeEventListener('abort', wake);
        const i = queue.indexOf(wake);
        if (i >= 0) queue.splice(i, 1);
        resolve();
      };
      queue.push(wake);
      signal.addEventListener('abort', wake, { once: true });
    });
  }
  return take(provider);
}
