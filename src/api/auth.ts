// Gateway authentication: with `auth.adminKey` set, every route but the open paths needs
// `Authorization: Bearer <key>` — the admin key, or a virtual key (docs/KEYS.md). This only reads
// and checks the key; what a key may do is the services' business.
import { timingSafeEqual } from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import type { KeelConfig } from '../config/schema.js';
import { ApiError } from '../core/openai-error.js';
import { invalidApiKey, sha256, type KeyPrincipal, type KeyService, type Principal } from '../services/key-service.js';

function bearer(header: string | undefined): string | undefined {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  return m?.[1];
}

export function authMiddleware(config: KeelConfig, keys: KeyService): RequestHandler {
  const admin = config.auth.adminKey !== undefined ? sha256(config.auth.adminKey) : undefined;
  const open = new Set(config.auth.openPaths);
  return async (req, res, next) => {
    if (!admin || open.has(req.path)) {
      res.locals.principal = { kind: 'open' } satisfies Principal;
      return next();
    }
    const presented = bearer(req.header('authorization'));
    if (presented === undefined) throw invalidApiKey(req.header('authorization') === undefined ? "You didn't provide an API key" : 'Malformed Authorization header');
    // Compared as SHA-256 digests: equal lengths, so timingSafeEqual takes the same time for any input.
    if (timingSafeEqual(sha256(presented), admin)) {
      res.locals.principal = { kind: 'admin' } satisfies Principal;
      return next();
    }
    const key = await keys.authenticate(presented);
    if (!key) throw invalidApiKey();
    res.locals.principal = key;
    // For the metrics and traces of the request (never the secret).
    res.locals.keyId = key.id;
    next();
  };
}

export function principalOf(res: Response): Principal {
  return (res.locals.principal as Principal | undefined) ?? { kind: 'open' };
}

/** The virtual key a request was made with, if any. */
export function keyOf(res: Response): KeyPrincipal | undefined {
  const p = principalOf(res);
  return p.kind === 'key' ? p : undefined;
}

/** Administrative routes: the admin key (or no authentication at all) only. */
export function requireAdmin(res: Response): void {
  if (principalOf(res).kind === 'key') throw new ApiError(403, 'This route needs the admin key', 'invalid_request_error', null, 'permission_denied');
}
