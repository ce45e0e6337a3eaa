// The accepted shape of POST /v1/chat/completions (and of a batch line's body): OpenAI's request,
// strictly where Keel translates it, plus OpenRouter's routing fields (`models`, `provider`) and
// Keel's own (`keel`). The official SDK's types (openai/resources/chat/completions) are the
// reference; the type checks at the bottom keep the two in step.
//
// Strict: every message, content part, tool, tool call, tool choice and response format accepts
// only its own fields, with their types and ranges, so nothing malformed reaches an adapter. A
// violation is a 400 whose `param` is the JSON path (`messages[0].content[1].image_url`).
// Loose: unknown top-level fields pass through untouched to OpenAI-compatible providers (OpenAI
// adds fields faster than a gateway can list them); the Anthropic and Gemini adapters ignore them.
import { z } from 'zod';
import type {
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionMessageParam,
  ChatCompletionTool,
  ChatCompletionToolChoiceOption,
} from 'openai/resources/chat/completions';
import { dataUrlProblem, isBase64, splitDataUrl } from './media-types.js';

// ---- Content parts -----------------------------------------------------------------------

const CacheBreakpoint = z.strictObject({ mode: z.literal('explicit') });

const TextPart = z.strictObject({
  type: z.literal('text'),
  text: z.string(),
  prompt_cache_breakpoint: CacheBreakpoint.optional(),
});

const RefusalPart = z.strictObject({ type: z.literal('refusal'), refusal: z.string() });

const HTTP_URL = /^https?:\/\/[^\s/?#]+[^\s]*$/i;

/** OpenAI takes images as http(s) URLs or base64 data URLs. */
const ImageUrl = z.string().superRefine((url, ctx) => {
  if (HTTP_URL.test(url)) return;
  if (!url.startsWith('data:')) {
    ctx.addIssue({ code: 'custom', message: 'must be an http(s) URL or a data URL' });
    return;
  }
  const problem = dataUrlProblem(url);
  if (problem) ctx.addIssue({ code: 'custom', message: `the data URL ${problem}` });
  else if (!splitDataUrl(url)!.mediaType.startsWith('image/')) ctx.addIssue({ code: 'custom', message: 'the data URL is not an image (image/*)' });
});

const ImagePart = z.strictObject({
  type: z.literal('image_url'),
  image_url: z.strictObject({ url: ImageUrl, detail: z.enum(['auto', 'low', 'high']).optional() }),
  prompt_cache_breakpoint: CacheBreakpoint.optional(),
});

const Base64 = z.string().refine(isBase64, 'must be non-empty base64');

const AudioPart = z.strictObject({
  type: z.literal('input_audio'),
  input_audio: z.strictObject({ data: Base64, format: z.enum(['wav', 'mp3']) }),
  prompt_cache_breakpoint: CacheBreakpoint.optional(),
});

/** A data URL or bare base64, as OpenAI's file part documents. */
const FileData = z.string().superRefine((data, ctx) => {
  if (!data.startsWith('data:')) {
    if (!isBase64(data)) ctx.addIssue({ code: 'custom', message: 'must be a data URL or base64' });
    return;
  }
  const problem = dataUrlProblem(data);
  if (problem) ctx.addIssue({ code: 'custom', message: `the data URL ${problem}` });
});

const FilePart = z.strictObject({
  type: z.literal('file'),
  file: z
    .strictObject({ file_data: FileData.optional(), file_id: z.string().min(1).optional(), filename: z.string().optional() })
    .refine((f) => f.file_data !== undefined || f.file_id !== undefined, 'file_data or file_id is required'),
  prompt_cache_breakpoint: CacheBreakpoint.optional(),
});

const UserPart = z.discriminatedUnion('type', [TextPart, ImagePart, AudioPart, FilePart]);
const AssistantPart = z.discriminatedUnion('type', [TextPart, RefusalPart]);

const TextContent = z.union([z.string(), z.array(TextPart).min(1)]);
const UserContent = z.union([z.string(), z.array(UserPart).min(1)]);
const AssistantContent = z.union([z.string(), z.array(AssistantPart).min(1)]);

// ---- Tools -------------------------------------------------------------------------------

/** OpenAI's rule for function (and response format) names. */
const Name = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'must be 1 to 64 letters, digits, underscores or dashes');
const JsonSchemaObject = z.record(z.string(), z.unknown());

const FunctionDefinition = z.strictObject({
  name: Name,
  description: z.string().optional(),
  parameters: JsonSchemaObject.optional(),
  strict: z.boolean().nullable().optional(),
});

const FunctionTool = z.strictObject({ type: z.literal('function'), function: FunctionDefinition });
const CustomTool = z.strictObject({
  type: z.literal('custom'),
  custom: z.strictObject({
    name: Name,
    description: z.string().optional(),
    format: z
      .discriminatedUnion('type', [
        z.strictObject({ type: z.literal('text') }),
        z.strictObject({
          type: z.literal('grammar'),
          grammar: z.strictObject({ definition: z.string(), syntax: z.enum(['lark', 'regex']) }),
        }),
      ])
      .optional(),
  }),
});
const ToolSchema = z.discriminatedUnion('type', [FunctionTool, CustomTool]);

const ToolCall = z.discriminatedUnion('type', [
  z.strictObject({
    id: z.string().min(1),
    type: z.literal('function'),
    function: z.strictObject({ name: z.string().min(1), arguments: z.string() }),
  }),
  z.strictObject({
    id: z.string().min(1),
    type: z.literal('custom'),
    custom: z.strictObject({ name: z.string().min(1), input: z.string() }),
  }),
]);

const NamedFunction = z.strictObject({ type: z.literal('function'), function: z.strictObject({ name: z.string().min(1) }) });
const NamedCustom = z.strictObject({ type: z.literal('custom'), custom: z.strictObject({ name: z.string().min(1) }) });

const ToolChoiceSchema = z.union([
  z.enum(['none', 'auto', 'required']),
  z.discriminatedUnion('type', [
    NamedFunction,
    NamedCustom,
    z.strictObject({
      type: z.literal('allowed_tools'),
      allowed_tools: z.strictObject({
        mode: z.enum(['auto', 'required']),
        tools: z.array(z.discriminatedUnion('type', [NamedFunction, NamedCustom])).min(1),
      }),
    }),
  ]),
]);

const LegacyFunction = z.strictObject({ name: Name, description: z.string().optional(), parameters: JsonSchemaObject.optional() });

// ---- Messages ----------------------------------------------------------------------------

const MessageSchema = z.discriminatedUnion('role', [
  z.strictObject({ role: z.literal('system'), content: TextContent, name: z.string().optional() }),
  z.strictObject({ role: z.literal('developer'), content: TextContent, name: z.string().optional() }),
  z.strictObject({ role: z.literal('user'), content: UserContent, name: z.string().optional() }),
  z
    .strictObject({
      role: z.literal('assistant'),
      content: AssistantContent.nullable().optional(),
      refusal: z.string().nullable().optional(),
      name: z.string().optional(),
      audio: z.strictObject({ id: z.string().min(1) }).nullable().optional(),
      tool_calls: z.array(ToolCall).min(1).optional(),
      function_call: z.strictObject({ name: z.string().min(1), arguments: z.string() }).nullable().optional(),
      // A response's message sent back as it came (the SDKs make that easy) carries its annotations.
      annotations: z.array(z.unknown()).optional(),
    })
    .refine((m) => m.content != null || m.tool_calls !== undefined || m.function_call != null || m.audio != null, {
      message: 'an assistant message needs content, tool_calls, function_call or audio',
      path: ['content'],
    }),
  z.strictObject({ role: z.literal('tool'), content: TextContent, tool_call_id: z.string().min(1) }),
  z.strictObject({ role: z.literal('function'), content: z.string().nullable(), name: z.string().min(1) }),
]);

// ---- Response format and the rest --------------------------------------------------------

const ResponseFormatSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('text') }),
  z.strictObject({ type: z.literal('json_object') }),
  z.strictObject({
    type: z.literal('json_schema'),
    json_schema: z.strictObject({
      name: Name,
      description: z.string().optional(),
      schema: JsonSchemaObject.optional(),
      strict: z.boolean().nullable().optional(),
    }),
  }),
]);

const Penalty = z.number().min(-2).max(2).nullable().optional();

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
    answer: z.enum(['call', 'early', 'recorded']).optional(),
    // Streamed requests: no chunk for this long once the answer has begun ends the attempt (a stall).
    stream_idle_timeout_ms: z.number().int().positive().optional(),
    // After the first token, a broken stream ends with an error event (`none`) or is continued by
    // the next target (`continue`).
    stream_recovery: z.enum(['none', 'continue']).optional(),
  })
  .strict();
export type KeelOptions = z.infer<typeof KeelOptionsSchema>;

const RequestFields = z.looseObject({
  model: z.string().min(1).optional(),
  models: z.array(z.string().min(1)).min(1).max(20).optional(),
  messages: z.array(MessageSchema).min(1),
  stream: z.boolean().nullable().optional(),
  stream_options: z.strictObject({ include_usage: z.boolean().optional(), include_obfuscation: z.boolean().optional() }).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().min(0).max(1).nullable().optional(),
  max_tokens: z.number().int().positive().nullable().optional(),
  max_completion_tokens: z.number().int().positive().nullable().optional(),
  n: z.number().int().min(1).max(128).nullable().optional(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).nullable().optional(),
  presence_penalty: Penalty,
  frequency_penalty: Penalty,
  seed: z.number().int().nullable().optional(),
  logit_bias: z
    .record(z.string().regex(/^\d+$/, 'must be a token id'), z.number().min(-100).max(100))
    .nullable()
    .optional(),
  logprobs: z.boolean().nullable().optional(),
  top_logprobs: z.number().int().min(0).max(20).nullable().optional(),
  user: z.string().optional(),
  safety_identifier: z.string().nullable().optional(),
  prompt_cache_key: z.string().nullable().optional(),
  metadata: z
    .record(z.string().max(64), z.string().max(512))
    .refine((m) => Object.keys(m).length <= 16, 'at most 16 keys')
    .nullable()
    .optional(),
  store: z.boolean().nullable().optional(),
  // OpenAI adds tiers and efforts often; only OpenAI-compatible providers read them.
  service_tier: z.string().nullable().optional(),
  reasoning_effort: z.string().nullable().optional(),
  verbosity: z.enum(['low', 'medium', 'high']).nullable().optional(),
  modalities: z.array(z.enum(['text', 'audio'])).nullable().optional(),
  audio: z
    .strictObject({
      format: z.enum(['wav', 'aac', 'mp3', 'flac', 'opus', 'pcm16']),
      voice: z.union([z.string().min(1), z.strictObject({ id: z.string().min(1) })]),
    })
    .nullable()
    .optional(),
  prediction: z.strictObject({ type: z.literal('content'), content: TextContent }).nullable().optional(),
  tools: z.array(ToolSchema).optional(),
  tool_choice: ToolChoiceSchema.optional(),
  parallel_tool_calls: z.boolean().optional(),
  functions: z.array(LegacyFunction).min(1).max(128).optional(),
  function_call: z.union([z.enum(['none', 'auto']), z.strictObject({ name: z.string().min(1) })]).optional(),
  response_format: ResponseFormatSchema.optional(),
  provider: ProviderPrefsSchema.optional(),
  keel: KeelOptionsSchema.optional(),
});

type RequestShape = z.infer<typeof RequestFields>;

/** Rules that span fields: what OpenAI itself refuses, and what no adapter could translate. */
function crossFieldIssues(r: RequestShape, ctx: z.RefinementCtx): void {
  const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
  if (r.model === undefined && r.models === undefined) issue(['model'], 'model is required');

  // A tool result answers a call made earlier in the conversation (Gemini matches them by name).
  const callIds = new Set<string>();
  r.messages.forEach((m, i) => {
    if (m.role === 'assistant') for (const call of m.tool_calls ?? []) callIds.add(call.id);
    if (m.role === 'tool' && !callIds.has(m.tool_call_id)) {
      issue(['messages', i, 'tool_call_id'], `no earlier assistant message has a tool call with id "${m.tool_call_id}"`);
    }
  });

  const functions = new Set(r.tools?.flatMap((t) => (t.type === 'function' ? [t.function.name] : [])));
  const customs = new Set(r.tools?.flatMap((t) => (t.type === 'custom' ? [t.custom.name] : [])));
  const named = (choice: z.infer<typeof NamedFunction> | z.infer<typeof NamedCustom>, path: (string | number)[]) => {
    const [names, name] = choice.type === 'function' ? [functions, choice.function.name] : [customs, choice.custom.name];
    if (!names.has(name)) issue([...path, choice.type, 'name'], `no ${choice.type} tool named "${name}" in tools`);
  };
  const tc = r.tool_choice;
  if (tc !== undefined && tc !== 'none' && tc !== 'auto') {
    if (!r.tools?.length) issue(['tool_choice'], 'tool_choice needs tools');
    else if (tc === 'required') {
      // any tool will do
    } else if (tc.type === 'allowed_tools') tc.allowed_tools.tools.forEach((t, i) => named(t, ['tool_choice', 'allowed_tools', 'tools', i]));
    else named(tc, ['tool_choice']);
  }
  const fc = r.function_call;
  if (typeof fc === 'object' && !r.functions?.some((f) => f.name === fc.name)) issue(['function_call', 'name'], `no function named "${fc.name}" in functions`);
  if (r.top_logprobs != null && r.logprobs !== true) issue(['top_logprobs'], 'top_logprobs needs logprobs: true');
  if (r.modalities?.includes('audio') && !r.audio) issue(['audio'], 'audio output (modalities: ["audio"]) needs the audio parameter');
}

export const ChatRequestSchema = RequestFields.superRefine(crossFieldIssues);

export type ChatRequestBody = z.infer<typeof ChatRequestSchema>;
export type ChatMessage = ChatRequestBody['messages'][number];

// ---- Kept in step with the official SDK's request types ----------------------------------
// Each line fails to compile if the schema accepts something the SDK's type does not allow.
type Accepts<Sdk, Ours extends Sdk> = Ours;
export type _MessagesAreOpenAIs = Accepts<ChatCompletionMessageParam, ChatMessage>;
export type _ToolsAreOpenAIs = Accepts<ChatCompletionTool, NonNullable<ChatRequestBody['tools']>[number]>;
export type _ToolChoiceIsOpenAIs = Accepts<ChatCompletionToolChoiceOption, NonNullable<ChatRequestBody['tool_choice']>>;
export type _ResponseFormatIsOpenAIs = Accepts<NonNullable<ChatCompletionCreateParamsNonStreaming['response_format']>, NonNullable<ChatRequestBody['response_format']>>;
