// Gemini API generateContent wire format, as `@google/genai` sends and parses it: the SDK puts
// the model in the path (`/v1beta/models/{model}:generateContent`, `models/` added when missing).

import { z } from 'zod';
import { bearerToken, describeIssues, findLast, sseData, type NeutralRequest, type StreamEvent, type WireFormat } from './wire.js';

const part = z.looseObject({ text: z.string().optional() });
const content = z.looseObject({ role: z.string().nullish(), parts: z.array(part).nullish() });

const bodySchema = z.looseObject({
  contents: z.array(content).min(1),
  systemInstruction: content.nullish(),
  tools: z.array(z.looseObject({ functionDeclarations: z.array(z.looseObject({ name: z.string() })).nullish() })).nullish(),
  toolConfig: z
    .looseObject({
      functionCallingConfig: z
        .looseObject({ mode: z.string().nullish(), allowedFunctionNames: z.array(z.string()).nullish() })
        .nullish(),
    })
    .nullish(),
  generationConfig: z
    .looseObject({
      maxOutputTokens: z.number().int().min(1).nullish(),
      stopSequences: z.array(z.string()).nullish(),
      candidateCount: z.number().int().min(1).max(8).nullish(),
    })
    .nullish(),
});

type Content = z.infer<typeof content>;

function text(c: Content | null | undefined): string {
  return (c?.parts ?? [])
    .map((p) => p.text ?? '')
    .filter((t) => t !== '')
    .join('\n');
}

const isUser = (c: Content): boolean => c.role == null || c.role === 'user';

const STATUS: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  409: 'ABORTED',
  429: 'RESOURCE_EXHAUSTED',
  499: 'CANCELLED',
  500: 'INTERNAL',
  501: 'UNIMPLEMENTED',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};

const FINISH = { stop: 'STOP', stop_sequence: 'STOP', length: 'MAX_TOKENS', tool: 'STOP' } as const;

export const geminiWire: WireFormat = {
  type: 'gemini',
  basePath: '',

  route(method, url) {
    const generate = /^\/v1[a-z0-9]*\/(.+):(generateContent|streamGenerateContent)$/.exec(url.pathname);
    if (method === 'POST' && generate) {
      const model = decodeURIComponent(generate[1]).replace(/^models\//, '');
      return { op: 'generate', model, stream: generate[2] === 'streamGenerateContent' };
    }
    if (method === 'GET' && /^\/v1[a-z0-9]*\/models$/.test(url.pathname)) return { op: 'models' };
    return undefined;
  },

  apiKey(headers, url) {
    const key = headers['x-goog-api-key'];
    return (Array.isArray(key) ? key[0] : key) ?? url.searchParams.get('key') ?? bearerToken(headers);
  },

  parse(raw, route) {
    const parsed = bodySchema.safeParse(raw);
    if (!parsed.success) return describeIssues(parsed.error);
    const body = parsed.data;
    const last = body.contents[body.contents.length - 1];
    const calling = body.toolConfig?.functionCallingConfig;
    const toolChoice: NeutralRequest['toolChoice'] =
      calling?.mode === 'ANY'
        ? { mode: 'forced', ...(calling.allowedFunctionNames?.[0] ? { name: calling.allowedFunctionNames[0] } : {}) }
        : calling?.mode === 'NONE'
          ? { mode: 'none' }
          : { mode: 'auto' };
    const maxTokens = body.generationConfig?.maxOutputTokens ?? undefined;
    const before = body.contents.at(-2);
    const prior = last.role === 'model' ? last : isUser(last) && before?.role === 'model' ? before : undefined;
    const priorText = text(prior);
    return {
      model: route.model ?? '',
      lastUserText: text(findLast(body.contents, (c) => isUser(c) && text(c) !== '')),
      endsWithUser: isUser(last) && !(last.parts ?? []).some((p) => 'functionResponse' in p),
      promptChars: text(body.systemInstruction).length + body.contents.reduce((sum, c) => sum + text(c).length, 0),
      tools: (body.tools ?? []).flatMap((t) => (t.functionDeclarations ?? []).map((f) => f.name)),
      toolChoice,
      ...(maxTokens !== undefined ? { maxTokens } : {}),
      stop: body.generationConfig?.stopSequences ?? [],
      n: body.generationConfig?.candidateCount ?? 1,
      stream: route.stream === true,
      ...(priorText ? { priorAssistantText: priorText } : {}),
    };
  },

  answer(req, answer, id) {
    return {
      candidates: answer.choices.map((choice, index) => ({
        content: {
          role: 'model',
          parts: choice.toolCall
            ? [{ functionCall: { name: choice.toolCall.name, args: choice.toolCall.args } }]
            : [{ text: choice.text }],
        },
        finishReason: FINISH[choice.finish],
        index,
      })),
      usageMetadata: {
        promptTokenCount: answer.promptTokens,
        candidatesTokenCount: answer.completionTokens,
        totalTokenCount: answer.promptTokens + answer.completionTokens,
      },
      modelVersion: req.model,
      responseId: id,
    };
  },

  // The SDK's ApiError exposes no response headers, so a retry delay also goes where the real
  // API puts it: a google.rpc.RetryInfo detail.
  error({ status, message, code, retryAfterMs }) {
    const details =
      retryAfterMs === undefined
        ? undefined
        : [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: `${+(retryAfterMs / 1000).toFixed(3)}s` }];
    return { error: { code: status, message, status: code ?? STATUS[status] ?? 'UNKNOWN', ...(details ? { details } : {}) } };
  },

  // streamGenerateContent?alt=sse: GenerateContentResponse objects as data events (CRLF, as the
  // real API), each candidate's text in pieces; the last piece of a candidate carries its finish
  // reason, the last event the usage. Function calls come whole, as Gemini sends them.
  stream(req, answer, id, pieces) {
    const usageMetadata = { promptTokenCount: answer.promptTokens, candidatesTokenCount: answer.completionTokens, totalTokenCount: answer.promptTokens + answer.completionTokens };
    const events: StreamEvent[] = [];
    answer.choices.forEach((choice, index) => {
      const parts: unknown[][] = choice.toolCall ? [[{ functionCall: { name: choice.toolCall.name, args: choice.toolCall.args } }]] : pieces(choice.text).map((t) => [{ text: t }]);
      if (parts.length === 0) parts.push([{ text: '' }]);
      parts.forEach((p, i) => {
        const lastOfCandidate = i === parts.length - 1;
        const lastOfAll = lastOfCandidate && index === answer.choices.length - 1;
        const data = {
          candidates: [{ content: { role: 'model', parts: p }, index, ...(lastOfCandidate && { finishReason: FINISH[choice.finish] }) }],
          usageMetadata: lastOfAll ? usageMetadata : { promptTokenCount: answer.promptTokens, totalTokenCount: answer.promptTokens },
          modelVersion: req.model,
          responseId: id,
        };
        events.push({ sse: sseData(data, undefined, '\r\n'), content: true });
      });
    });
    return events;
  },

  // A failure after the stream began: an error object in a data event, which @google/genai raises.
  streamError(spec) {
    return sseData(this.error(spec), undefined, '\r\n');
  },

  models(ids) {
    return {
      models: ids.map((id) => ({ name: `models/${id}`, displayName: id, supportedGenerationMethods: ['generateContent'] })),
    };
  },
};
