// Temporal's codec-server protocol (the Temporal UI's and CLI's `--codec-endpoint`): a POST to
// `…/encode` or `…/decode` with `{"payloads": [{"metadata": {k: base64}, "data": base64}]}`
// (Payloads in protobuf's JSON form) answers with the same shape, encoded or decoded by Keel's
// codec. This module is the protocol and the authentication; src/api/codec.ts is the route.
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { z } from 'zod';
import type { CodecSettings } from '../config/schema.js';
import { keyringFor } from './data-converter.js';
import { EncryptionCodec } from './payload-codec.js';

const base64 = z.string().regex(/^[A-Za-z0-9+/_-]*={0,2}$/, 'must be base64');
const PayloadsBody = z.object({
  payloads: z
    .array(z.object({ metadata: z.record(z.string(), base64).nullish(), data: base64.nullish() }).passthrough())
    .max(10_000),
});

export type CodecOperation = 'encode' | 'decode';

export class CodecRequestError extends Error {
  override name = 'CodecRequestError';
}

function toPayload(p: z.infer<typeof PayloadsBody>['payloads'][number]): Payload {
  return {
    metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    data: Buffer.from(p.data ?? '', 'base64'),
  };
}

function fromPayload(p: Payload): { metadata: Record<string, string>; data: string } {
  return {
    metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')])),
    data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
  };
}

/** The payload codec the server applies: the one every client and worker uses. */
export function serverCodec(codec: CodecSettings): PayloadCodec {
  return new EncryptionCodec(keyringFor(codec), {
    encrypt: codec.enabled,
    ...(codec.compressAboveBytes !== undefined && { compressAboveBytes: codec.compressAboveBytes }),
  });
}

/** Runs one protocol request. A body of the wrong shape is a CodecRequestError (a 400). */
export async function runCodec(codec: PayloadCodec, op: CodecOperation, body: unknown): Promise<{ payloads: ReturnType<typeof fromPayload>[] }> {
  const parsed = PayloadsBody.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CodecRequestError(`expected {"payloads": [{"metadata": {...}, "data": "<base64>"}]}: ${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`);
  }
  const payloads = parsed.data.payloads.map(toPayload);
  const out = op === 'encode' ? await codec.encode(payloads) : await codec.decode(payloads);
  return { payloads: out.map(fromPayload) };
}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (isIP(v4) === 4) return v4.startsWith('127.');
  return address === '::1';
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * Who may use the codec server: a bearer key from `codec.server.tokens`; or a JWT the Temporal UI
 * forwards for its signed-in user (`codec.server.jwt`: signature against the issuer's JWKS,
 * issuer, audience, expiry); or, with `allowLoopback`, any client on this machine.
 */
export function codecAuthenticator(server: CodecSettings['server']): (req: { authorization?: string; remoteAddress?: string }) => Promise<boolean> {
  const tokens = server.tokens.map(digest);
  const jwks = server.jwt ? createRemoteJWKSet(new URL(server.jwt.jwksUrl)) : undefined;
  return async ({ authorization, remoteAddress }) => {
    if (server.allowLoopback && isLoopback(remoteAddress)) return true;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m) return false;
    const presented = digest(m[1]);
    // Compared as digests in constant time: the comparison says nothing about a token's prefix.
    if (tokens.some((t) => timingSafeEqual(t, presented))) return true;
    if (jwks && server.jwt) {
      try {
        await jwtVerify(m[1], jwks, { issuer: server.jwt.issuer, ...(server.jwt.audience && { audience: server.jwt.audience }) });
        return true;
      } catch {
        return false;
      }
    }
    return false;
  };
}
