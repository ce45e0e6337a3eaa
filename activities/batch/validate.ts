// The `validating` step: one streaming pass over the input file. Good lines go to valid.jsonl (the
// batch workflow reads it in pages); bad lines become error-file lines, reported per line as
// OpenAI does. Only when nothing can run does the whole batch fail with `errors`.
import { Context } from '@temporalio/activity';
import { z } from 'zod';
import { keys, type BatchStore } from '../../src/store/batch-store.js';
import type { BatchKey, BatchLineError } from '../../src/core/batch-types.js';
import { keyedRequestProblem, worstCase } from '../../src/core/key-cost.js';
import { requestFeatures } from '../../src/core/capabilities.js';
import { ChatRequestSchema, type ChatRequestBody } from '../../src/core/chat-request.js';
import { describeZodError } from '../../src/core/zod-issues.js';
import type { KeelConfig, RoutingConfig } from '../../src/config/schema.js';
import { readLines, NotFoundError } from '../../src/store/file-store.js';
import { PlanError, planRequest } from '../../src/core/routing.js';
import { errorLine } from './lines.js';

export interface ValidateInput {
  batchId: string;
  inputFileId: string;
  endpoint: string;
  maxLines: number;
  /** The batch's virtual key: lines it may not make are invalid lines. */
  key?: BatchKey;
}

export interface ValidateOutput {
  total: number;
  valid: number;
  invalid: number;
  /** Set when the batch cannot run at all: it fails with these as its `errors`. */
  fatal?: BatchLineError[];
}

const LineSchema = z.object({
  custom_id: z.string().min(1).max(512),
  method: z.string(),
  url: z.string(),
  body: z.record(z.string(), z.unknown()),
});

const MAX_REPORTED = 100;

export type LineBodyCheck =
  | { ok: true; body: ChatRequestBody; model: string }
  | { ok: false; code: string; message: string; param: string | null };

/**
 * A line's `body`, held to what POST /v1/chat/completions accepts: the same schema (a violation
 * names its path under `body.`), no streaming, and a plan (known model, a target that can carry it).
 */
export function checkLineBody(body: unknown, routing: RoutingConfig): LineBodyCheck {
  const parsed = ChatRequestSchema.safeParse(body);
  if (!parsed.success) {
    const { param, message } = describeZodError(parsed.error, ['body']);
    return { ok: false, code: 'invalid_body', message: `${param}: ${message}`, param };
  }
  if (parsed.data.stream === true) return { ok: false, code: 'invalid_body', message: 'body.stream: streaming is not available in batches', param: 'body.stream' };
  try {
    const plan = planRequest(parsed.data, routing, undefined, { features: requestFeatures(parsed.data) });
    return { ok: true, body: parsed.data, model: plan.requestedModel };
  } catch (err) {
    if (!(err instanceof PlanError)) throw err;
    return { ok: false, code: err.code, message: err.message, param: err.param === null ? null : `body.${err.param}` };
  }
}

export function createValidateBatch(config: KeelConfig, files: BatchStore) {
  return async function validateBatchInput(input: ValidateInput): Promise<ValidateOutput> {
    const ctx = Context.current();
    const meta = await files.getFile(input.inputFileId);
    if (!meta) return { total: 0, valid: 0, invalid: 0, fatal: [{ code: 'invalid_file', message: `No file with id '${input.inputFileId}'`, param: 'input_file_id', line: null }] };
    const invalidLines: string[] = [];
    const reported: BatchLineError[] = [];
    const seen = new Set<string>();
    let total = 0;
    let valid = 0;
    let tooMany = false;

    const bad = (line: number, code: string, message: string, customId: string | null, param: string | null = null) => {
      invalidLines.push(JSON.stringify(errorLine(input.batchId, customId ?? `line-${line}`, code, `Line ${line}: ${message}`, customId)));
      if (reported.length < MAX_REPORTED) reported.push({ code, message, param, line });
    };

    async function* validLines(): AsyncGenerator<string> {
      let lineNo = 0;
      for await (const raw of readLines(files.store, `files/${input.inputFileId}.data`)) {
        lineNo += 1;
        if (raw.trim() === '') continue;
        total += 1;
        if (total > input.maxLines) {
          tooMany = true;
          return;
        }
        if (total % 2_000 === 0) ctx.heartbeat(total);
        let json: unknown;
        try {
          json = JSON.parse(raw);
        } catch {
          bad(lineNo, 'invalid_json_line', 'This line is not parseable as valid JSON.', null);
          continue;
        }
        const customId = typeof (json as { custom_id?: unknown })?.custom_id === 'string' ? (json as { custom_id: string }).custom_id : null;
        const line = LineSchema.safeParse(json);
        if (!line.success) {
          const { param, message } = describeZodError(line.error);
          bad(lineNo, 'invalid_request', `${param ?? 'line'}: ${message}`, customId, param);
          continue;
        }
        const { custom_id, method, url, body } = line.data;
        if (method !== 'POST') {
          bad(lineNo, 'invalid_method', `The method must be POST, not '${method}'.`, custom_id);
          continue;
        }
        if (url !== input.endpoint) {
          bad(lineNo, 'mismatched_endpoint', `The url '${url}' does not match the batch endpoint '${input.endpoint}'.`, custom_id);
          continue;
        }
        if (seen.has(custom_id)) {
          bad(lineNo, 'duplicate_custom_id', `The custom_id '${custom_id}' is used by an earlier line.`, custom_id);
          continue;
        }
        seen.add(custom_id);
        const checked = checkLineBody(body, config.routing);
        if (!checked.ok) {
          bad(lineNo, checked.code, checked.message, custom_id, checked.param);
          continue;
        }
        const key = input.key;
        if (key) {
          const wc = key.budgeted || key.tpm ? worstCase(checked.body, config.routing, requestFeatures(checked.body)) : undefined;
          const problem = keyedRequestProblem(key, checked.body, config.routing, wc);
          if (problem) {
            bad(lineNo, problem.code, problem.message, custom_id, `body.${problem.param}`);
            continue;
          }
        }
        valid += 1;
        yield `${JSON.stringify({ custom_id, model: checked.model, body: checked.body })}\n`;
      }
    }

    try {
      await files.store.put(keys.valid(input.batchId), validLines());
    } catch (err) {
      if (err instanceof NotFoundError) return { total: 0, valid: 0, invalid: 0, fatal: [{ code: 'invalid_file', message: 'The input file has no content', param: 'input_file_id', line: null }] };
      throw err;
    }
    if (tooMany) {
      return { total, valid: 0, invalid: 0, fatal: [{ code: 'batch_too_large', message: `The input file has more than the maximum of ${input.maxLines} requests.`, param: 'input_file_id', line: null }] };
    }
    if (total === 0) return { total, valid, invalid: 0, fatal: [{ code: 'empty_file', message: 'The input file has no requests.', param: 'input_file_id', line: null }] };
    if (valid === 0) return { total, valid, invalid: invalidLines.length, fatal: reported };
    await files.store.put(keys.invalid(input.batchId), invalidLines.map((l) => `${l}\n`).join(''));
    return { total, valid, invalid: invalidLines.length };
  };
}
