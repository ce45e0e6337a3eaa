// The virtual-key admin API: POST/GET/PATCH/DELETE /v1/keys (docs/KEYS.md). Parse, call the key
// service, answer. A virtual key may read itself (GET /v1/keys/:id with its own id); everything
// else here needs the admin key.
import { Router, type Response } from 'express';
import { z } from 'zod';
import type { KeelConfig } from '../config/schema.js';
import { KEY_PERIODS, type KeySettings, type KeySettingsPatch } from '../core/keys.js';
import { ApiError } from '../core/openai-error.js';
import type { KeyService } from '../services/key-service.js';
import { principalOf, requireAdmin } from './auth.js';
import { fromZodError } from './errors.js';

const Fields = {
  name: z.string().min(1).max(256),
  // Public model names or provider/model patterns; `*` matches anything.
  models: z.array(z.string().min(1).max(256)).min(1).max(100),
  budget: z.strictObject({
    usd: z.number().positive().max(1_000_000),
    period: z.enum(KEY_PERIODS).default('total'),
  }),
  rpm: z.number().int().min(1).max(1_000_000),
  tpm: z.number().int().min(1).max(1_000_000_000),
  // Epoch seconds, like OpenAI's timestamps.
  expires_at: z.number().int().positive(),
  // OpenAI's metadata limits: 16 pairs, keys up to 64 characters, values up to 512.
  metadata: z
    .record(z.string().min(1).max(64), z.string().max(512))
    .refine((m) => Object.keys(m).length <= 16, { message: 'at most 16 keys' }),
};

const CreateKey = z.strictObject({
  name: Fields.name.optional(),
  models: Fields.models.optional(),
  budget: Fields.budget.optional(),
  rpm: Fields.rpm.optional(),
  tpm: Fields.tpm.optional(),
  expires_at: Fields.expires_at.optional(),
  metadata: Fields.metadata.optional(),
});

// null clears a setting; an absent field keeps it.
const PatchKey = z
  .strictObject({
    name: Fields.name.nullable().optional(),
    models: Fields.models.nullable().optional(),
    budget: Fields.budget.nullable().optional(),
    rpm: Fields.rpm.nullable().optional(),
    tpm: Fields.tpm.nullable().optional(),
    expires_at: Fields.expires_at.nullable().optional(),
    metadata: Fields.metadata.nullable().optional(),
  })
  .refine((p) => Object.keys(p).length > 0, { message: 'nothing to change' });

const ListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  after: z.string().optional(),
});

/** API field names → the key's settings (expiry in ms). */
function settingsFrom<T extends z.infer<typeof PatchKey>>(body: T): KeySettingsPatch {
  const { expires_at, ...rest } = body;
  return { ...rest, ...(expires_at !== undefined && { expiresAt: expires_at === null ? null : expires_at * 1000 }) } as KeySettingsPatch;
}

function enabled(config: KeelConfig): void {
  if (config.auth.adminKey === undefined) {
    throw new ApiError(403, 'Virtual keys need authentication: set auth.adminKey (KEEL_ADMIN_KEY) and call with it', 'invalid_request_error', null, 'auth_disabled');
  }
}

function ownOrAdmin(res: Response, id: string): void {
  const p = principalOf(res);
  // Another key's id answers as if it did not exist.
  if (p.kind === 'key' && p.id !== id) throw new ApiError(404, `No key with id '${id}'`, 'invalid_request_error', 'id', 'key_not_found');
}

export function keysRouter(keys: KeyService, config: KeelConfig): Router {
  const router = Router();

  router.post('/v1/keys', async (req, res) => {
    enabled(config);
    requireAdmin(res);
    const parsed = CreateKey.safeParse(req.body);
    if (!parsed.success) throw fromZodError(parsed.error);
    if (parsed.data.expires_at !== undefined && parsed.data.expires_at * 1000 <= Date.now()) {
      throw new ApiError(400, 'expires_at is in the past', 'invalid_request_error', 'expires_at', 'invalid_value');
    }
    const { view, secret } = await keys.create(settingsFrom(parsed.data) as KeySettings);
    // The only time the secret is shown: Keel keeps its hash.
    res.status(201).json({ ...view, secret });
  });

  router.get('/v1/keys', async (req, res) => {
    enabled(config);
    requireAdmin(res);
    const q = ListQuery.safeParse(req.query);
    if (!q.success) throw fromZodError(q.error);
    res.json(await keys.list({ limit: q.data.limit, ...(q.data.after && { after: q.data.after }) }));
  });

  router.get('/v1/keys/:id', async (req, res) => {
    enabled(config);
    ownOrAdmin(res, req.params.id);
    res.json(await keys.get(req.params.id));
  });

  router.patch('/v1/keys/:id', async (req, res) => {
    enabled(config);
    requireAdmin(res);
    const parsed = PatchKey.safeParse(req.body);
    if (!parsed.success) throw fromZodError(parsed.error);
    res.json(await keys.change(req.params.id, settingsFrom(parsed.data)));
  });

  // Revocation: every API process refuses the key within KEY_CACHE_MS; its spend stays readable.
  router.delete('/v1/keys/:id', async (req, res) => {
    enabled(config);
    requireAdmin(res);
    res.json({ ...(await keys.revoke(req.params.id)), deleted: true });
  });

  return router;
}
