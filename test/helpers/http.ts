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
