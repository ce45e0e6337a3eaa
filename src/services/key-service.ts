// Virtual keys for the API: creating, reading, changing and revoking them (each is an entity
// workflow, workflows/virtual-key.ts), finding the key a presented secret belongs to, and the
// reservation a request makes before it starts. docs/KEYS.md.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError, WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, WorkflowNotFoundError, defaultPayloadConverter } from '@temporalio/common';
import { decodeMapFromPayloads } from '@temporalio/common/lib/internal-non-workflow/index.js';
import type { KeelConfig } from '../config/schema.js';
import { WORKFLOW_TYPES, changeKeyUpdate, keySnapshotQuery, releaseKeySignal, reserveKeyUpdate, type VirtualKeyWorkflow } from '../core/contract.js';
import {
  KEY_ID_PATTERN,
  keyView,
  keyWorkflowId,
  newKeyState,
  nanosToUsd,
  type KeyChange,
  type KeyRecord,
  type KeySettings,
  type KeySettingsPatch,
  type KeySnapshot,
  type KeyView,
  type Refusal,
  type ReserveItem,
  type ReserveOutcome,
} from '../core/keys.js';
import { ApiError } from '../core/openai-error.js';
import { KeelKey, KeelStatus } from '../core/search-attributes.js';
import { queryLiteral } from './request-list.js';

/**
 * How long an API process trusts a key it has read: a revocation or a change reaches every
 * process within this (plus one query). Keys with a budget or a limit are checked again by their
 * reservation, which sees a revocation at once.
 */
export const KEY_CACHE_MS = 500;
/** Revoked keys stay refused without a round trip; bounded so that a flood of ids cannot grow it. */
const REVOKED_MEMORY = 10_000;

/** A request's caller, as the auth middleware found it. */
export type Principal = { kind: 'open' } | { kind: 'admin' } | KeyPrincipal;
export interface KeyPrincipal {
  kind: 'key';
  id: string;
  view: KeyView;
}

const SECRET_PATTERN = /^sk-keel-([0-9a-f]{24})-([A-Za-z0-9_-]{43})$/;

export function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** The key id a secret names, or undefined for anything not shaped like a Keel secret. */
export function keyIdOfSecret(secret: string): string | undefined {
  const m = SECRET_PATTERN.exec(secret);
  return m ? `vk_${m[1]}` : undefined;
}

/** The 401 every missing, wrong, revoked or expired key gets: the same answer, so it says nothing about which. */
export function invalidApiKey(reason = 'Incorrect API key provided'): ApiError {
  return new ApiError(401, `${reason}. Send a Keel key as "Authorization: Bearer <key>".`, 'invalid_request_error', null, 'invalid_api_key', undefined, { 'www-authenticate': 'Bearer' });
}

/** A reservation's refusal as the client's error: 429 with what is left and when to come back. */
export function refusalError(keyId: string, refusal: Refusal): ApiError {
  if (refusal.code === 'budget_exceeded') {
    return new ApiError(429, refusal.message, 'insufficient_quota', null, 'budget_exceeded', {
      keel: {
        key_id: keyId,
        budget: {
          usd: nanosToUsd(refusal.budgetNanos),
          period: refusal.period,
          remaining_usd: nanosToUsd(refusal.remainingNanos),
          resets_at: refusal.resetsAt !== undefined ? Math.floor(refusal.resetsAt / 1000) : null,
        },
        requested_usd: nanosToUsd(refusal.requestedNanos),
      },
    });
  }
  if (refusal.code !== 'rate_limit_exceeded') return invalidApiKey(refusal.message);
  const headers: Record<string, string> | undefined =
    refusal.retryAfterMs !== undefined ? { 'retry-after': String(Math.ceil(refusal.retryAfterMs / 1000)), 'retry-after-ms': String(refusal.retryAfterMs) } : undefined;
  // OpenAI's own shape for its per-key limits: type `requests` or `tokens`, code rate_limit_exceeded.
  return new ApiError(429, refusal.message, refusal.limit === 'rpm' ? 'requests' : 'tokens', null, 'rate_limit_exceeded', { keel: { key_id: keyId, limit: refusal.limit } }, headers);
}

function notFound(id: string): ApiError {
  return new ApiError(404, `No key with id '${id}'`, 'invalid_request_error', 'id', 'key_not_found');
}

export interface KeyListItem {
  id: string;
  object: 'keel.key';
  name: string | null;
  status: 'active' | 'revoked';
  created_at: number;
}

export interface KeyList {
  object: 'list';
  data: KeyListItem[];
  has_more: boolean;
  next_after: string | null;
}

/** Reservations per Update at most (an Update's input stays small). */
const MAX_RESERVATIONS_PER_UPDATE = 200;

interface ReserveQueue {
  waiting: { item: ReserveItem; resolve: (o: ReserveOutcome) => void; reject: (err: unknown) => void }[];
  sending: boolean;
}

interface CacheEntry {
  at: number;
  snapshot?: KeySnapshot;
}

export class KeyService {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly inflight = new Map<string, Promise<CacheEntry>>();
  private readonly revoked = new Set<string>();
  private readonly queues = new Map<string, ReserveQueue>();

  constructor(
    readonly client: Client,
    readonly config: KeelConfig,
  ) {}

  private handle(id: string): WorkflowHandle<VirtualKeyWorkflow> {
    return this.client.workflow.getHandle(keyWorkflowId(id));
  }

  /** Creates a key: its secret is in the answer and nowhere else (the workflow keeps its SHA-256). */
  async create(settings: KeySettings): Promise<{ view: KeyView; secret: string }> {
    const hex = randomBytes(12).toString('hex');
    const id = `vk_${hex}`;
    const secret = `sk-keel-${hex}-${randomBytes(32).toString('base64url')}`;
    const record: KeyRecord = { id, secretHash: sha256(secret).toString('hex'), createdAt: Date.now(), settings };
    try {
      await this.client.workflow.start<VirtualKeyWorkflow>(WORKFLOW_TYPES.virtualKey, {
        taskQueue: this.config.taskQueue,
        workflowId: keyWorkflowId(id),
        args: [{ record }],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        memo: { name: settings.name ?? null },
        staticSummary: `key ${id}${settings.name ? ` (${settings.name})` : ''}`,
        typedSearchAttributes: [
          { key: KeelKey, value: id },
          { key: KeelStatus, value: 'active' },
        ],
      });
    } catch (err) {
      // 96 random bits: a collision is a broken random source, not bad luck.
      if (err instanceof WorkflowExecutionAlreadyStartedError) throw new Error(`key id ${id} already exists`);
      throw err;
    }
    return { view: keyView(newKeyState(record), Date.now()), secret };
  }

  async get(id: string): Promise<KeyView> {
    if (!KEY_ID_PATTERN.test(id)) throw notFound(id);
    const entry = await this.read(id);
    if (!entry.snapshot) throw notFound(id);
    return entry.snapshot.view;
  }

  async list(opts: { limit: number; after?: string }): Promise<KeyList> {
    const query = `WorkflowType = ${queryLiteral(WORKFLOW_TYPES.virtualKey, 'type')}`;
    const nextPageToken = opts.after ? Buffer.from(opts.after, 'base64url') : undefined;
    let res;
    try {
      res = await this.client.workflowService.listWorkflowExecutions({ namespace: this.client.options.namespace, query, pageSize: opts.limit, ...(nextPageToken && { nextPageToken }) });
    } catch (err) {
      if (opts.after && (err as { code?: number }).code === 3) throw new ApiError(400, 'after is not a cursor from a previous page', 'invalid_request_error', 'after', 'invalid_cursor');
      throw err;
    }
    // Search attributes are never encoded; the memo goes through the client's converter (and codec).
    const decode = (p: unknown): unknown => (p ? defaultPayloadConverter.fromPayload(p as never) : undefined);
    const converter = this.client.workflow.options.loadedDataConverter;
    const data = await Promise.all((res.executions ?? []).map(async (e): Promise<KeyListItem> => {
      const fields = e.searchAttributes?.indexedFields ?? {};
      const status = decode(fields[KeelStatus.name]);
      const memo = await decodeMapFromPayloads(converter, (e.memo?.fields ?? {}) as Record<string, never>).catch(() => undefined);
      const name = memo?.name;
      return {
        id: (e.execution?.workflowId ?? '').replace(/^keel-key-/, ''),
        object: 'keel.key',
        name: typeof name === 'string' ? name : null,
        status: (Array.isArray(status) ? status[0] : status) === 'revoked' ? 'revoked' : 'active',
        created_at: Number(e.startTime?.seconds ?? 0),
      };
    }));
    const token = res.nextPageToken && res.nextPageToken.length > 0 ? Buffer.from(res.nextPageToken).toString('base64url') : null;
    return { object: 'list', data, has_more: token !== null && data.length === opts.limit, next_after: token };
  }

  async change(id: string, settings: KeySettingsPatch): Promise<KeyView> {
    return this.update(id, { settings });
  }

  async revoke(id: string): Promise<KeyView> {
    const view = await this.update(id, { revoke: true });
    this.markRevoked(id);
    return view;
  }

  private async update(id: string, change: KeyChange): Promise<KeyView> {
    if (!KEY_ID_PATTERN.test(id)) throw notFound(id);
    try {
      const view = await this.handle(id).executeUpdate(changeKeyUpdate, { args: [change] });
      const cached = this.cache.get(id)?.snapshot;
      if (cached) this.remember(id, { at: Date.now(), snapshot: { ...cached, view } });
      return view;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        // A revoked key whose workflow has ended: revoking it again changes nothing.
        const entry = await this.read(id, true);
        if (entry.snapshot && 'revoke' in change) return entry.snapshot.view;
        if (entry.snapshot) throw new ApiError(409, 'This key has been revoked: it cannot be changed', 'invalid_request_error', null, 'key_revoked');
        throw notFound(id);
      }
      if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure && err.cause.type === 'key_revoked') {
        throw new ApiError(409, 'This key has been revoked: it cannot be changed', 'invalid_request_error', null, 'key_revoked');
      }
      throw err;
    }
  }

  /** A revocation is final: this process refuses the key from now on without asking again. */
  private markRevoked(id: string): void {
    this.cache.delete(id);
    if (this.revoked.size >= REVOKED_MEMORY) this.revoked.delete(this.revoked.values().next().value!);
    this.revoked.add(id);
  }

  private remember(id: string, entry: CacheEntry): void {
    if (entry.snapshot?.view.status === 'revoked') return this.markRevoked(id);
    this.cache.delete(id);
    this.cache.set(id, entry);
    // Bounded (oldest first): an entry is only used while it is younger than KEY_CACHE_MS anyway.
    if (this.cache.size > REVOKED_MEMORY) this.cache.delete(this.cache.keys().next().value!);
  }

  /** The key's snapshot, from this process's cache while it is fresh. One query per key at a time. */
  private async read(id: string, fresh = false): Promise<CacheEntry> {
    const cached = this.cache.get(id);
    if (!fresh && cached && Date.now() - cached.at < KEY_CACHE_MS) return cached;
    const pending = this.inflight.get(id);
    if (pending) return pending;
    const query = (async (): Promise<CacheEntry> => {
      try {
        const snapshot = await this.handle(id).query(keySnapshotQuery, { now: Date.now() });
        const entry = { at: Date.now(), snapshot };
        this.remember(id, entry);
        return entry;
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        const entry = { at: Date.now() };
        this.remember(id, entry);
        return entry;
      } finally {
        this.inflight.delete(id);
      }
    })();
    this.inflight.set(id, query);
    return query;
  }

  /**
   * The key a presented secret belongs to, or undefined (no such key, wrong secret, revoked or
   * expired). The secret is compared by its SHA-256, in constant time.
   */
  async authenticate(secret: string): Promise<KeyPrincipal | undefined> {
    const id = keyIdOfSecret(secret);
    if (!id || this.revoked.has(id)) return undefined;
    const { snapshot } = await this.read(id);
    if (!snapshot) return undefined;
    const presented = sha256(secret);
    const stored = Buffer.from(snapshot.secretHash, 'hex');
    if (stored.length !== presented.length || !timingSafeEqual(presented, stored)) return undefined;
    const { view } = snapshot;
    if (view.status !== 'active') return undefined;
    if (view.expires_at !== null && Date.now() >= view.expires_at * 1000) return undefined;
    return { kind: 'key', id, view };
  }

  /**
   * Reserves against the key's budget and limits; the key's workflow decides. Reservations of one
   * key made while an Update for it is on its way wait and go together in the next one: one
   * Update per key in flight per process, however many requests arrive at once (concurrent Updates
   * to one workflow contend, and Temporal retries the losers).
   */
  reserve(id: string, item: ReserveItem): Promise<ReserveOutcome> {
    return new Promise((resolve, reject) => {
      let queue = this.queues.get(id);
      if (!queue) this.queues.set(id, (queue = { waiting: [], sending: false }));
      queue.waiting.push({ item, resolve, reject });
      if (!queue.sending) void this.flush(id, queue);
    });
  }

  private async flush(id: string, queue: ReserveQueue): Promise<void> {
    queue.sending = true;
    while (queue.waiting.length > 0) {
      const batch = queue.waiting.splice(0, MAX_RESERVATIONS_PER_UPDATE);
      try {
        const outcomes = await this.reserveMany(id, batch.map((w) => w.item));
        batch.forEach((w, i) => w.resolve(outcomes[i]));
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    queue.sending = false;
    this.queues.delete(id);
  }

  /** One Update for several reservations: every outcome, refusals included (a refused Update is every item's refusal). */
  async reserveMany(id: string, items: ReserveItem[]): Promise<ReserveOutcome[]> {
    try {
      return await this.handle(id).executeUpdate(reserveKeyUpdate, { args: [items] });
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw invalidApiKey();
      if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure && err.cause.details?.[0]) {
        const [first, outcomes] = err.cause.details as [Refusal, ReserveOutcome[] | undefined];
        if (first.code === 'key_revoked') this.markRevoked(id);
        return items.map((_, i) => outcomes?.[i] ?? { ok: false, refusal: first });
      }
      throw err;
    }
  }

  /** Gives back a reservation whose request never started. */
  async release(id: string, requestId: string): Promise<void> {
    await this.handle(id).signal(releaseKeySignal, { requestId });
  }
}
