// Running a test file with the codec on: `KEEL_TEST_CODEC=1` (the `*.codec.test.ts` files set it
// and import the file they repeat). Keys and the codec-server token are made per run and put in
// this process's environment, so child processes (workers, gateways) get them too.
import { randomBytes } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';

export const CODEC_UNDER_TEST = process.env.KEEL_TEST_CODEC === '1';

if (CODEC_UNDER_TEST) {
  process.env.KEEL_TEST_CODEC_KEY ??= randomBytes(32).toString('base64');
  process.env.KEEL_TEST_CODEC_TOKEN ??= randomBytes(24).toString('base64url');
}

/** A `codec:` section to append to a test's YAML (empty when the codec is off). */
export const codecYaml = CODEC_UNDER_TEST
  ? `
codec:
  enabled: true
  keys: [{ id: test, key: "\${KEEL_TEST_CODEC_KEY}" }]
  server: { tokens: ["\${KEEL_TEST_CODEC_TOKEN}"] }
`
  : '';

/** The payload's metadata encoding, to check what reached the history. */
export function payloadEncoding(payload: { metadata?: Record<string, Uint8Array | null | undefined> | null }): string | undefined {
  const e = payload.metadata?.encoding;
  return e ? Buffer.from(e).toString() : undefined;
}

/** The variables `codecYaml` refers to, for parseConfig in this process. */
export function codecEnv(): Record<string, string> {
  return CODEC_UNDER_TEST ? { KEEL_TEST_CODEC_KEY: process.env.KEEL_TEST_CODEC_KEY!, KEEL_TEST_CODEC_TOKEN: process.env.KEEL_TEST_CODEC_TOKEN! } : {};
}

type PayloadLike = { metadata?: Record<string, Uint8Array | null | undefined> | null; data?: Uint8Array | null };

function isPayload(v: unknown): v is PayloadLike {
  return typeof v === 'object' && v !== null && (v as PayloadLike).data instanceof Uint8Array && typeof (v as PayloadLike).metadata === 'object';
}

/**
 * A history as scanned for secrets: its JSON, then every payload in it decoded with `codec` (when
 * the codec is on, the JSON holds ciphertext only, and a scan of it alone would find nothing) and
 * read as text. Failures the codec encoded are payloads too (their `encodedAttributes`).
 */
export async function historyText(history: object, codec: PayloadCodec | undefined, json: string): Promise<string> {
  const payloads: PayloadLike[] = [];
  const walk = (v: unknown): void => {
    if (isPayload(v)) payloads.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object' && !(v instanceof Uint8Array)) Object.values(v).forEach(walk);
  };
  walk(history);
  const decoded = codec ? await codec.decode(payloads as Payload[]) : (payloads as Payload[]);
  return [json, ...decoded.map((p) => Buffer.from(p.data ?? new Uint8Array()).toString('utf8'))].join('\n');
}
