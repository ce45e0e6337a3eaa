// The codec server (docs/ENCRYPTION.md): POST /codec/encode and /codec/decode in Temporal's
// codec-server protocol, so the Temporal UI (`--ui-codec-endpoint`, the UI server's
// TEMPORAL_CODEC_ENDPOINT) and CLI (`--codec-endpoint`) show decrypted payloads to people who may
// see them. CORS answers only the configured UI origins; every POST is authenticated.
import express, { Router, type Request, type Response } from 'express';
import type { KeelConfig } from '../config/schema.js';
import { CodecRequestError, codecAuthenticator, runCodec, serverCodec, type CodecOperation } from '../codec/codec-server.js';
import { ApiError, invalidRequest } from '../core/openai-error.js';

const ALLOWED_HEADERS = 'Content-Type, X-Namespace, Authorization';

export function codecRouter(config: KeelConfig): Router {
  const settings = config.codec.server;
  const origins = new Set(settings.corsOrigins);
  const authenticated = codecAuthenticator(settings);
  const codec = serverCodec(config.codec);
  const router = Router();

  router.use((req, res, next) => {
    const origin = req.headers.origin;
    if (origin && origins.has(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', ALLOWED_HEADERS);
      res.setHeader('Access-Control-Max-Age', '600');
    }
    res.vary('Origin');
    // A preflight carries no credentials: it is answered (with or without CORS headers) and nothing runs.
    if (req.method === 'OPTIONS') {
      res.status(204).end();
      return;
    }
    next();
  });

  const handle = (op: CodecOperation) => async (req: Request, res: Response) => {
    if (!(await authenticated({ ...(req.headers.authorization && { authorization: req.headers.authorization }), ...(req.socket.remoteAddress && { remoteAddress: req.socket.remoteAddress }) }))) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="keel-codec"');
      throw new ApiError(401, 'The codec server needs `Authorization: Bearer <token>` (codec.server.tokens, or the Temporal UI user\'s token with codec.server.jwt)', 'authentication_error', null, 'codec_unauthorized');
    }
    if (!req.is('application/json')) throw invalidRequest('Send the payloads as application/json', null, 'invalid_content_type');
    try {
      res.json(await runCodec(codec, op, req.body));
    } catch (err) {
      if (err instanceof CodecRequestError) throw invalidRequest(err.message, 'payloads', 'invalid_payloads');
      // A payload this process cannot decrypt (a key it lacks): the message names the key id only.
      if (['MissingKeyError', 'DecryptError'].includes((err as Error).name)) throw new ApiError(422, (err as Error).message, 'invalid_request_error', 'payloads', 'codec_key_unavailable');
      throw err;
    }
  };

  // The protocol looks only at the last part of the path: /codec/decode, /codec/<namespace>/decode.
  router.post(['/decode', '/:scope/decode'], express.json({ limit: settings.maxBodyBytes }), handle('decode'));
  router.post(['/encode', '/:scope/encode'], express.json({ limit: settings.maxBodyBytes }), handle('encode'));
  return router;
}
