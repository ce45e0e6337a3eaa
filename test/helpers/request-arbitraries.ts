// fast-check generators of OpenAI chat requests: valid ones (every message role, multi-part
// content, tools and tool calls with their results, tool_choice, response formats, sampling
// fields) and mutated ones (one value somewhere in a valid request deleted, nulled, retyped or
// given an unknown key). Shared by the in-process property test and the one over HTTP.
import fc from 'fast-check';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };

/** Fixed, so a failure reproduces: fast-check prints the seed, path and counterexample. */
export const SEED = 20_260_613;

const TOOL_NAMES = ['get_weather', 'lookup', 'sum_numbers', 'search-web'] as const;

const text = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('', 'hi', 'Say hi', 'use tool please', 'What is in this picture?') },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom('naïve café 東京 🚀', 'line\nbreak\t"quoted"', '\u0000\u001f\ud83d', '{"json": true}') },
);
const base64 = fc.uint8Array({ minLength: 1, maxLength: 24 }).map((b) => Buffer.from(b).toString('base64'));

const imageUrl = fc.oneof(
  fc.constantFrom('https://example.com/cat.jpg', 'http://127.0.0.1:9/x.png', 'https://example.com/img?id=7&size=large'),
  fc
    .tuple(fc.constantFrom('image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/heic', 'image/bmp'), base64)
    .map(([type, data]) => `data:${type};base64,${data}`),
  fc.constant('data:image/svg+xml,%3Csvg%20xmlns%3D%22http%3A%2F%2Fwww.w3.org%2F2000%2Fsvg%22%2F%3E'),
);

const textPart = fc.record({ type: fc.constant('text'), text });
const imagePart = fc.record({
  type: fc.constant('image_url'),
  image_url: fc.record({ url: imageUrl, detail: fc.constantFrom('auto', 'low', 'high') }, { requiredKeys: ['url'] }),
});
const audioPart = fc.record({ type: fc.constant('input_audio'), input_audio: fc.record({ data: base64, format: fc.constantFrom('wav', 'mp3') }) });
const filePart = fc.record({
  type: fc.constant('file'),
  file: fc.oneof(
    fc.record({ file_data: base64.map((d) => `data:application/pdf;base64,${d}`), filename: fc.constant('doc.pdf') }, { requiredKeys: ['file_data'] }),
    fc.record({ file_data: base64, filename: fc.constantFrom('doc.pdf', 'notes.txt', 'photo.png') }),
    fc.record({ file_id: fc.constant('file-abc123') }),
  ),
});
const refusalPart = fc.record({ type: fc.constant('refusal'), refusal: text });

const textContent = fc.oneof(text, fc.array(textPart, { minLength: 1, maxLength: 3 }));
const userContent = fc.oneof(
  { weight: 2, arbitrary: text },
  {
    weight: 3,
    arbitrary: fc.array(fc.oneof({ weight: 4, arbitrary: textPart }, { weight: 3, arbitrary: imagePart }, { weight: 1, arbitrary: audioPart }, { weight: 1, arbitrary: filePart }), {
      minLength: 1,
      maxLength: 4,
    }),
  },
);

const args = fc.constantFrom('{}', '{"city":"Paris"}', '{"a":1,"b":[2,3]}', '[1,2]', '"text"', 'not json', '');
const toolCall = fc.oneof(
  { weight: 5, arbitrary: fc.record({ type: fc.constant('function'), function: fc.record({ name: fc.constantFrom(...TOOL_NAMES), arguments: args }) }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('custom'), custom: fc.record({ name: fc.constant('shell'), input: text }) }) },
);

/** One step of a conversation; tool exchanges get their ids when the conversation is assembled. */
const block = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('user' as const), name: fc.option(fc.constant('alice'), { nil: undefined }), content: userContent }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('system' as const), role: fc.constantFrom('system', 'developer'), content: textContent }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('assistant' as const),
      content: fc.oneof(text, fc.array(fc.oneof(textPart, refusalPart), { minLength: 1, maxLength: 2 })),
      refusal: fc.option(fc.constant(null), { nil: undefined }),
      annotations: fc.option(fc.constant([] as Json[]), { nil: undefined }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('tools' as const),
      content: fc.option(text, { nil: null }),
      calls: fc.array(toolCall, { minLength: 1, maxLength: 3 }),
      answered: fc.nat(3),
      results: fc.array(textContent, { minLength: 3, maxLength: 3 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('function' as const), name: fc.constantFrom(...TOOL_NAMES), content: fc.option(text, { nil: null }) }) },
);

type Block = typeof block extends fc.Arbitrary<infer T> ? T : never;

function conversation(blocks: Block[]): Json[] {
  const messages: Json[] = [];
  blocks.forEach((b, i) => {
    switch (b.kind) {
      case 'user':
        messages.push({ role: 'user', content: b.content as Json, ...(b.name && { name: b.name }) });
        break;
      case 'system':
        messages.push({ role: b.role, content: b.content as Json });
        break;
      case 'assistant':
        messages.push({ role: 'assistant', content: b.content as Json, ...(b.refusal !== undefined && { refusal: b.refusal }), ...(b.annotations && { annotations: b.annotations }) });
        break;
      case 'tools': {
        const calls = b.calls.map((c, j) => ({ id: `call_${i}_${j}`, ...c }) as Json);
        messages.push({ role: 'assistant', content: b.content, tool_calls: calls });
        for (let j = 0; j < Math.min(b.answered, calls.length); j++) messages.push({ role: 'tool', tool_call_id: `call_${i}_${j}`, content: b.results[j] as Json });
        break;
      }
      case 'function':
        messages.push({ role: 'function', name: b.name, content: b.content });
        break;
    }
  });
  return messages;
}

const functionTool = (name: string) =>
  fc.record(
    {
      type: fc.constant('function'),
      function: fc.record(
        {
          name: fc.constant(name),
          description: text,
          parameters: fc.constantFrom(
            { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
            { type: 'object', properties: {} },
            { type: 'object', properties: { echo: { type: 'string' }, n: { type: 'integer', minimum: 0 } } },
          ),
          strict: fc.boolean(),
        },
        { requiredKeys: ['name'] },
      ),
    },
  );

/** tools, then a tool_choice that names only what they define. */
const toolsAndChoice = fc
  .tuple(fc.subarray([...TOOL_NAMES], { minLength: 1 }), fc.boolean())
  .chain(([names, custom]) =>
    fc.tuple(fc.tuple(...names.map(functionTool)), fc.constant(custom)).map(([tools, c]) => [...tools, ...(c ? [{ type: 'custom', custom: { name: 'shell' } }] : [])] as Obj[]),
  )
  .chain((tools) => {
    const fnNames = tools.flatMap((t) => (t.type === 'function' ? [(t.function as Obj).name as string] : []));
    const named = fc.constantFrom(...fnNames).map((name) => ({ type: 'function', function: { name } }));
    const choice = fc.oneof(
      fc.constantFrom('none', 'auto', 'required'),
      named,
      fc.record({
        type: fc.constant('allowed_tools'),
        allowed_tools: fc.record({ mode: fc.constantFrom('auto', 'required'), tools: fc.array(named, { minLength: 1, maxLength: 2 }) }),
      }),
    );
    return fc.record({ tools: fc.constant(tools), tool_choice: choice, parallel_tool_calls: fc.boolean() }, { requiredKeys: ['tools'] });
  });

const responseFormat = fc.oneof(
  fc.constant({ type: 'text' }),
  fc.constant({ type: 'json_object' }),
  fc.record(
    {
      type: fc.constant('json_schema'),
      json_schema: fc.record(
        { name: fc.constantFrom('answer', 'city_report'), schema: fc.constant({ type: 'object', properties: { answer: { type: 'string' } } }), strict: fc.boolean(), description: text },
        { requiredKeys: ['name'] },
      ),
    },
  ),
);

const sampling = fc.record(
  {
    temperature: fc.double({ min: 0, max: 2, noNaN: true }),
    top_p: fc.double({ min: 0, max: 1, noNaN: true }),
    max_tokens: fc.integer({ min: 1, max: 4096 }),
    max_completion_tokens: fc.integer({ min: 1, max: 4096 }),
    n: fc.constantFrom(1, 1, 2),
    stop: fc.oneof(fc.constant(null), text, fc.array(fc.string({ minLength: 1, maxLength: 5 }), { maxLength: 4 })),
    presence_penalty: fc.double({ min: -2, max: 2, noNaN: true }),
    frequency_penalty: fc.double({ min: -2, max: 2, noNaN: true }),
    seed: fc.integer(),
    logit_bias: fc.dictionary(fc.integer({ min: 0, max: 100_000 }).map(String), fc.integer({ min: -100, max: 100 }), { maxKeys: 3 }),
    user: fc.constantFrom('user-42', ''),
    metadata: fc.dictionary(fc.constantFrom('team', 'run', 'ticket'), fc.string({ maxLength: 10 }), { maxKeys: 3 }),
    response_format: responseFormat,
    // Unknown top-level fields pass through to OpenAI-compatible providers.
    future_option: fc.constantFrom<Json>(1, 'x', null, { nested: [true] }),
  },
  { requiredKeys: [] },
);

const rarely = fc.record(
  {
    logprobs: fc.constantFrom({ logprobs: true, top_logprobs: 2 }, { logprobs: false }),
    audio: fc.constant({ modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'wav' } }),
    functions: fc.constant({ functions: [{ name: 'get_weather', parameters: { type: 'object', properties: {} } }], function_call: { name: 'get_weather' } }),
  },
  { requiredKeys: [] },
);

/** A request OpenAI's API would accept, for one of `models`. */
export function validRequest(models: readonly string[]): fc.Arbitrary<Obj> {
  return fc
    .record(
      {
        model: fc.constantFrom(...models),
        blocks: fc.array(block, { minLength: 1, maxLength: 6 }),
        sampling,
        tools: fc.option(toolsAndChoice, { nil: undefined, freq: 2 }),
        rarely: fc.option(rarely, { nil: undefined, freq: 4 }),
      },
      { requiredKeys: ['model', 'blocks', 'sampling'] },
    )
    .map(({ model, blocks, sampling, tools, rarely }) => {
      const request: Obj = { model, messages: conversation(blocks), ...(sampling as Obj), ...(tools as Obj | undefined) };
      for (const extra of Object.values(rarely ?? {})) Object.assign(request, extra);
      return request;
    });
}

// ---- Mutations ---------------------------------------------------------------------------

type Path = (string | number)[];

/** Every place in a JSON value, depth first. */
function pathsOf(value: Json, prefix: Path = [], out: Path[] = []): Path[] {
  const children: [string | number, Json][] = Array.isArray(value) ? value.map((v, i) => [i, v]) : value && typeof value === 'object' ? Object.entries(value) : [];
  for (const [key, child] of children) {
    out.push([...prefix, key]);
    pathsOf(child, [...prefix, key], out);
  }
  return out;
}

const MUTATIONS = ['delete', 'null', 'number', 'negative', 'string', 'empty string', 'boolean', 'empty array', 'array', 'object', 'unknown key'] as const;
export type Mutation = (typeof MUTATIONS)[number];

function mutate(request: Obj, path: Path, how: Mutation): Json {
  const copy = structuredClone(request) as Json;
  const parent = path.slice(0, -1).reduce<Json>((v, k) => (v as Record<string | number, Json>)[k], copy) as Record<string | number, Json> | Json[];
  const key = path.at(-1)!;
  const current = (parent as Record<string | number, Json>)[key];
  const replacement: Record<Exclude<Mutation, 'delete'>, () => Json> = {
    null: () => null,
    number: () => 7,
    negative: () => -1,
    string: () => 'x',
    'empty string': () => '',
    boolean: () => true,
    'empty array': () => [],
    array: () => [current],
    object: () => ({ value: current }),
    'unknown key': () => (current && typeof current === 'object' && !Array.isArray(current) ? { ...current, surprise: 1 } : { surprise: current }),
  };
  if (how === 'delete') {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete parent[key];
  } else {
    (parent as Record<string | number, Json>)[key] = replacement[how]();
  }
  return copy;
}

export interface MutatedRequest {
  request: Json;
  /** Where and how the valid request was changed (for failure messages). */
  mutation: string;
}

/** A valid request with one value changed somewhere: most become invalid, some stay valid. */
export function mutatedRequest(models: readonly string[]): fc.Arbitrary<MutatedRequest> {
  return fc.tuple(validRequest(models), fc.nat(), fc.constantFrom(...MUTATIONS)).map(([request, pick, how]) => {
    const paths = pathsOf(request);
    const path = paths[pick % paths.length];
    return { request: mutate(request, path, how), mutation: `${how} at ${JSON.stringify(path)}` };
  });
}

/** Valid and mutated requests, one in four valid. */
export function anyRequest(models: readonly string[]): fc.Arbitrary<MutatedRequest> {
  return fc.oneof({ weight: 1, arbitrary: validRequest(models).map((request) => ({ request: request as Json, mutation: 'none' })) }, { weight: 3, arbitrary: mutatedRequest(models) });
}

/** Whether `param` is a JSON path whose parent exists in `value` (it names a real place in the request). */
export function pathExists(value: unknown, param: string): boolean {
  const segments: (string | number)[] = [];
  const re = /(?:^|\.)([A-Za-z_$][\w$]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/gy;
  let m: RegExpExecArray | null;
  let at = 0;
  while ((m = re.exec(param)) !== null) {
    segments.push(m[1] ?? (m[2] !== undefined ? Number(m[2]) : (JSON.parse(m[3]) as string)));
    at = re.lastIndex;
  }
  if (at !== param.length || segments.length === 0) return false;
  let v: unknown = value;
  for (const s of segments.slice(0, -1)) {
    if (v === null || typeof v !== 'object') return false;
    v = (v as Record<string | number, unknown>)[s];
  }
  return v !== null && typeof v === 'object';
}
