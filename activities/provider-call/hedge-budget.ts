// Caps hedging at a share of this worker's provider calls over the last minute, so that when a
// provider is slow for everyone, hedging cannot double the load on the others.
const WINDOW_MS = 60_000;
// Lets a quiet worker hedge at all (a share of very few calls rounds down to none).
const BURST = 1;

const calls: number[] = [];
const hedges: number[] = [];

function prune(list: number[], now: number): void {
  while (list.length > 0 && list[0] <= now - WINDOW_MS) list.shift();
}

export function noteProviderCall(now = Date.now()): void {
  calls.push(now);
  prune(calls, now);
}

export function takeHedge(maxShare: number, now = Date.now()): boolean {
  prune(calls, now);
  prune(hedges, now);
  if (hedges.length + 1 > maxShare * calls.length + BURST) return false;
  hedges.push(now);
  return true;
}
