// OpenAI's batch output/error line format:
//   {"id":"batch_req_…","custom_id":"…","response":{"status_code","request_id","body"},"error":null}
// A request that ran and failed keeps `response` (its status and OpenAI error body); a line that
// never ran (invalid, expired, cancelled) has `response: null` and an `error`.
import { createHash } from 'node:crypto';

export interface BatchOutputLine {
  id: string;
  custom_id: string | null;
  response: { status_code: number; request_id: string; body: unknown } | null;
  error: { code: string; message: string } | null;
}

export function lineId(batchId: string, key: string): string {
  return `batch_req_${createHash('sha256').update(`${batchId}\n${key}`).digest('hex').slice(0, 24)}`;
}

export function responseLine(batchId: string, customId: string, requestId: string, statusCode: number, body: unknown): BatchOutputLine {
  return { id: lineId(batchId, requestId), custom_id: customId, response: { status_code: statusCode, request_id: requestId, body }, error: null };
}

export function errorLine(batchId: string, key: string, code: string, message: string, customId: string | null = key): BatchOutputLine {
  return { id: lineId(batchId, `${key}\n${code}`), custom_id: customId, response: null, error: { code, message } };
}

export function isSuccess(line: BatchOutputLine): boolean {
  return line.response !== null && line.response.status_code >= 200 && line.response.status_code < 300;
}
