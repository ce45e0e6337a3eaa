// The accepted shape of POST /v1/chat/completions: OpenAI's fields, OpenRouter's routing fields
// (`models`, `provider`) and Keel's own (`keel`). Unknown top-level fields pass through to
// OpenAI-compatible providers, as OpenAI adds fields faster than a gateway can list them.
import { z } from 'zod';

const TextPart = z.object({ type: z.literal('text'), text: z.string() }).passthrough();
const ImagePart = z
  .object({ type: z.literal('image_url'), image_url: z.object({ url: z.string().min(1) }).passthrough() })
  .passthrough();
const OtherPart = z.object({ type: z.string() }).passthrough();
const ContentSchema = z.union([z.string(), z.array(z.union([TextPart, ImagePart, OtherPart])).min(1)]);

const ToolCall = z
  .object({
    id: z.string(),
    type: z.literal('function'),
    function: z.object({ name: z.string(), arguments: z.string() }).passthrough(),
  })
  .passthrough();

const MessageSchema = z.discriminatedUnion('role', [
  z.object({ role: z.literal('system'), content: ContentSchema, name: z.string().optional() }).passthrough(),
  z.object({ role: z.literal('developer'), content: ContentSchema, name: z.string().optional() }).passthrough(),
  z.object({ role: z.literal('user'), content: ContentSchema, name: z.string().optional() }).passthrough(),
  z
    .object({
      role: z.literal('assistant'),
      content: ContentSchema.nullable().optional(),
      tool_calls: z.array(ToolCall).optional(),
      name: z.string().optional(),
    })
    .passthrough(),
  z.object({ role: z.literal('tool'), content: ContentSchema, tool_call_id: z.string() }).passthrough(),
]);

const ToolSchema = z
  .object({
    type: z.literal('function'),
    function: z
      .object({ name: z.string().min(1), description: z.string().optional(), parameters: z.record(z.string(), z.unknown()).optional() })
      .passthrough(),
  })
  .passthrough();

const ToolChoiceSchema = z.union([
  z.enum(['none', 'auto', 'required']),
  z.object({ type: z.literal('function'), function: z.object({ name: z.string() }) }).passthrough(),
]);

const ResponseFormatSchema = z.union([
  z.object({ type: z.literal('text') }),
  z.object({ type: z.literal('json_object') }),
  z
    .object({
      type: z.literal('json_schema'),
      json_schema: z.object({ name: z.string(), schema: z.record(z.string(), z.unknown()).optional(), strict: z.boolean().nullable().optional() }).passthrough(),
    })
    .passthrough(),
]);

export const ProviderPrefsSchema = z
  .object({
    order: z.array(z.string()).optional(),
    allow_fallbacks: z.boolean().optional(),
    only: z.array(z.string()).optional(),
    ignore: z.array(z.string()).optional(),
    sort: z.enum(['price', 'latency', 'throughput']).optional(),
  })
  .strict();
export type ProviderPrefs = z.infer<typeof ProviderPrefsSchema>;

export const KeelOptionsSchema = z
  .object({
    mode: z.enum(['fallback', 'race', 'hedge']).optional(),
    race_width: z.number().int().min(2).max(8).optional(),
    hedge_delay_ms: z.number().int().nonnegative().optional(),
    max_attempts: z.number().int().min(1).optional(),
    attempt_timeout_ms: z.number().int().positive().optional(),
    timeout_ms: z.number().int().positive().optional(),
    answer: z.enum(['early', 'recorded']).optional(),
  })
  .strict();
export type KeelOptions = z.infer<typeof KeelOptionsSchema>;

export const ChatRequestSchema = z
  .object({
    model: z.string().min(1).optional(),
    models: z.array(z.string().min(1)).min(1).max(20).optional(),
    messages: z.array(MessageSchema).min(1),
    stream: z.boolean().optional(),
    temperature: z.number().min(0).max(2).nullable().optional(),
    top_p: z.number().min(0).max(1).nullable().optional(),
    max_tokens: z.number().int().positive().nullable().optional(),
    max_completion_tokens: z.number().int().positive().nullable().optional(),
    n: z.number().int().min(1).max(128).nullable().optional(),
    stop: z.union([z.string(), z.array(z.string()).max(4)]).nullable().optional(),
    tools: z.array(ToolSchema).optional(),
    tool_choice: ToolChoiceSchema.optional(),
    response_format: ResponseFormatSchema.optional(),
    provider: ProviderPrefsSchema.optional(),
    keel: KeelOptionsSchema.optional(),
  })
  .passthrough()
  .refine((r) => r.model !== undefined || r.models !== undefined, { message: 'model is required', path: ['model'] });

export type ChatRequestBody = z.infer<typeof ChatRequestSchema>;
