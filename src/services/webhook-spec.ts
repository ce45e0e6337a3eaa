// The `webhook` field of an async job (POST /v1/requests), checked at submit time: the shape, that
// webhooks are configured, and that the destination is one Keel may call (docs/REQUESTS.md).
import type { Connection } from '@temporalio/client';
import { z } from 'zod';
import { invalidRequest } from '../core/openai-error.js';
import type { WebhookSpec } from '../core/request-types.js';
import { checkWebhookUrl, destinationPolicy, WebhookDestinationError } from '../webhooks/destination.js';
import type { RequestService } from './request-service.js';

/** `webhook: { url }` (an object, so delivery options can be added without a breaking change). */
const WebhookFieldSchema = z.object({ url: z.string().min(1).max(2048) }).strict();

/** The Temporal frontend addresses the API knows of: the configured one and the one it is connected to. */
function frontendAddresses(requests: RequestService): string[] {
  const connected = (requests.client.connection as Connection).options?.address;
  return [...new Set([requests.config.temporalAddress, ...(connected ? [connected] : [])])];
}

export function webhookSpec(requests: RequestService, field: unknown): WebhookSpec | undefined {
  if (field === undefined || field === null) return undefined;
  const parsed = WebhookFieldSchema.safeParse(field);
  if (!parsed.success) throw invalidRequest('webhook must be an object { "url": "https://..." }', 'webhook', 'invalid_value');
  const settings = requests.config.webhooks;
  if (!settings.secret) throw invalidRequest('Webhooks are not configured on this Keel (webhooks.secret)', 'webhook', 'webhooks_not_configured');
  try {
    for (const address of frontendAddresses(requests)) checkWebhookUrl(parsed.data.url, destinationPolicy(settings, address));
  } catch (err) {
    if (err instanceof WebhookDestinationError) throw invalidRequest(err.message, 'webhook.url', 'webhook_destination_refused');
    throw err;
  }
  return { url: parsed.data.url, timeoutMs: settings.timeoutMs, retry: settings.retry };
}

