// Delivers an async job's webhook: one signed POST per attempt. Temporal retries it with the
// bounded policy the workflow sets; a destination refused after DNS resolution fails at once
// (non-retryable). The signing secret comes from the worker's configuration, never from the input.
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { KeelConfig } from '../../src/config/schema.js';
import type { WebhookDeliveryInput } from '../../src/core/request-types.js';
import { destinationPolicy, resolveWebhookDestination, WebhookDestinationError, type Resolver } from '../../src/webhooks/destination.js';
import { SIGNATURE_HEADER, signWebhook } from '../../src/webhooks/signature.js';

export const WEBHOOK_REFUSED = 'webhook_destination_refused';

function uiLink(config: KeelConfig, requestId: string): string {
  return `${config.uiUrl}/namespaces/${encodeURIComponent(config.namespace)}/workflows/${encodeURIComponent(requestId)}`;
}

function post(url: URL, address: string, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<number> {
  const family = isIP(address);
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        signal,
        // Connect to the address that was checked, not to whatever a second lookup returns.
        lookup: (_host, opts, cb) => {
          if ((opts as { all?: boolean }).all) (cb as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address, family }]);
          else cb(null, address, family);
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export function createDeliverWebhook(config: KeelConfig, resolve?: Resolver) {
  return async function deliverWebhook(input: WebhookDeliveryInput): Promise<{ status: number; attempt: number }> {
    const ctx = Context.current();
    const secret = config.webhooks.secret;
    if (!secret) {
      throw ApplicationFailure.create({ type: 'webhook_not_configured', nonRetryable: true, message: 'webhooks.secret is not configured on this worker' });
    }
    const url = new URL(input.url);
    let address: string;
    try {
      address = await resolveWebhookDestination(url, destinationPolicy(config.webhooks, config.temporalAddress), resolve);
    } catch (err) {
      if (err instanceof WebhookDestinationError) throw ApplicationFailure.create({ type: WEBHOOK_REFUSED, nonRetryable: true, message: err.message });
      throw err;
    }
    const event = { ...input.event, data: { ...input.event.data, ui_url: uiLink(config, input.event.data.id) } };
    const body = JSON.stringify(event);
    const headers = {
      'content-type': 'application/json',
      'user-agent': 'keel-webhook/1',
      'x-keel-event-id': event.id,
      'x-keel-event-type': event.type,
      'x-keel-request-id': event.data.id,
      'x-keel-delivery-attempt': String(ctx.info.attempt),
      // Signed per attempt: the timestamp is the time of this delivery.
      [SIGNATURE_HEADER]: signWebhook(secret, body),
    };
    const signal = AbortSignal.any([ctx.cancellationSignal, AbortSignal.timeout(input.timeoutMs)]);
    let status: number;
    try {
      status = await post(url, address, headers, body, signal);
    } catch (err) {
      throw ApplicationFailure.create({ type: 'webhook_unreachable', message: `webhook POST to ${url.host} failed: ${(err as Error).message}` });
    }
    if (status < 200 || status >= 300) {
      throw ApplicationFailure.create({ type: 'webhook_http_error', message: `webhook receiver at ${url.host} answered HTTP ${status}` });
    }
    return { status, attempt: ctx.info.attempt };
  };
}
