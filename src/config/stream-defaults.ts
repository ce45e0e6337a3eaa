// Apart from schema.ts because workflows read it (src/core/routing.ts, for inputs recorded without
// stream settings): a value imported from schema.ts would bring zod into the workflow bundle.
/**
 * The stall limit and what a break after the first token leads to, unless the model or request says
 * otherwise. Half a minute without a chunk mid-answer is long for any provider; a slow first token
 * (a reasoning step) is bounded by the attempt timeout instead.
 */
export const DEFAULT_STREAM: { idleTimeoutMs: number; recovery: 'none' | 'continue' } = { idleTimeoutMs: 30_000, recovery: 'none' };
