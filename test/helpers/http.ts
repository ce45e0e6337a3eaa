// JSON over real HTTP to a running Keel API, for tests that check status codes and bodies.
export type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export async function callJson(baseUrl: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  return { res, json: (await res.json()) as Json };
}

/** Polls `fn` every 100 ms until it returns something, or fails after `timeoutMs`. */
export async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** GET /v1/requests/:id until the request has an outcome. */
export function settledRequest(baseUrl: string, id: string): Promise<Json> {
  return until(`request ${id} to settle`, async () => {
    const { json } = await callJson(baseUrl, 'GET', `/v1/requests/${id}`);
    return ['succeeded', 'failed', 'cancelled'].includes(json.status) ? json : undefined;
  });
}
