// A zod failure as the one thing a client needs: where (a JSON path, as OpenAI writes it:
// `messages[0].content[1].image_url`) and what is wrong there. Used for request bodies and for
// batch lines alike.
import type { z } from 'zod';

type Issue = z.core.$ZodIssue;
type PathKey = PropertyKey;

export interface IssueReport {
  /** JSON path of the offending value; null for the whole body. */
  param: string | null;
  message: string;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

export function jsonPath(path: readonly PathKey[]): string | null {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (typeof key === 'string' && IDENTIFIER.test(key)) out += out ? `.${key}` : key;
    else out += `[${JSON.stringify(String(key))}]`;
  }
  return out || null;
}

/** A union's branch that failed only because the value has another type says nothing useful. */
function wrongTypeOnly(branch: readonly Issue[]): boolean {
  return branch.length > 0 && branch.every((i) => i.path.length === 0 && i.code === 'invalid_type');
}

function depth(branch: readonly Issue[]): number {
  return Math.max(0, ...branch.map((i) => i.path.length));
}

/** The most specific issue: into the union branch that matched the value's type, to the bad key. */
function explain(issue: Issue, prefix: readonly PathKey[]): { path: PathKey[]; message: string } {
  const path = [...prefix, ...issue.path];
  if (issue.code === 'invalid_union' && issue.errors.length > 0) {
    const relevant = issue.errors.filter((b) => !wrongTypeOnly(b));
    if (relevant.length === 0) {
      const expected = [...new Set(issue.errors.flat().map((i) => (i.code === 'invalid_type' ? i.expected : undefined)).filter(Boolean))];
      return { path, message: `Invalid input: expected ${expected.join(' or ')}` };
    }
    const best = relevant.reduce((a, b) => (depth(b) > depth(a) ? b : a));
    return explain(best[0], path);
  }
  if (issue.code === 'unrecognized_keys') {
    const [first, ...rest] = issue.keys;
    return { path: [...path, first], message: `Unknown field${rest.length ? `s (also ${rest.map((k) => `"${k}"`).join(', ')})` : ''}: not part of this object` };
  }
  if (issue.code === 'invalid_key' && issue.issues.length > 0) {
    return { path, message: `Invalid key: ${issue.issues[0].message}` };
  }
  if (issue.code === 'invalid_type' && issue.message.endsWith('received undefined')) {
    return { path, message: `Required (${issue.expected})` };
  }
  return { path, message: issue.message };
}

/** `prefix`: where the validated value sits (e.g. `['body']` for a batch line's request). */
export function describeZodError(error: z.ZodError, prefix: readonly PathKey[] = []): IssueReport {
  const issue = error.issues[0];
  if (!issue) return { param: jsonPath(prefix), message: 'Invalid input' };
  const { path, message } = explain(issue, prefix);
  return { param: jsonPath(path), message };
}
