// Type guards for values of unknown shape (parsed JSON, thrown values, SDK answers).

/** A plain object: not null and not an array (an array is no map of fields). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
