// Every error the API sends is in OpenAI's shape, with the status a client can act on.
import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import type { ZodError } from 'zod';
import { ApiError, invalidRequest } from '../core/openai-error.js';
import { describeZodError } from '../core/zod-issues.js';

export function sendError(res: Response, err: ApiError): void {
  for (const [name, value] of Object.entries(err.headers ?? {})) res.setHeader(name, value);
  res.status(err.status).json({ error: err.toObject(), ...err.extra });
}

/** A 400 naming the offending value by its JSON path in `param` and in the message. */
export function fromZodError(error: ZodError): ApiError {
  const { param, message } = describeZodError(error);
  return invalidRequest(`Invalid request: ${param ? `${param}: ` : ''}${message}`, param, 'invalid_value');
}

export const notFoundRoute: RequestHandler = (req, res) => {
  sendError(res, new ApiError(404, `Unknown route: ${req.method} ${req.path}`, 'invalid_request_error', null, 'unknown_route'));
};

interface BodyParserError extends Error {
  type?: string;
  status?: number;
  limit?: number;
}

/** Last handler: turns anything thrown into an OpenAI error, never an HTML page or a stack trace. */
export const errorHandler: ErrorRequestHandler = (err: unknown, _req, res, _next) => {
  if (res.headersSent) {
    res.end();
    return;
  }
  if (err instanceof ApiError) return sendError(res, err);
  const e = err as BodyParserError;
  if (e?.type === 'entity.too.large') {
    return sendError(res, new ApiError(413, `Request body too large: the limit is ${e.limit} bytes`, 'invalid_request_error', null, 'request_too_large'));
  }
  if (e?.type === 'entity.parse.failed') {
    return sendError(res, invalidRequest(`The body is not valid JSON: ${e.message}`, null, 'invalid_json'));
  }
  if (e?.type === 'encoding.unsupported' || e?.type === 'charset.unsupported') {
    return sendError(res, new ApiError(415, e.message, 'invalid_request_error', null, 'unsupported_encoding'));
  }
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) {
    return sendError(res, new ApiError(e.status, e.message, 'invalid_request_error'));
  }
  // The id the client was told (a route may have replaced the generated one, e.g. for an Idempotency-Key).
  const header = res.getHeader('x-request-id');
  const requestId = typeof header === 'string' ? header : undefined;
  const id = requestId ? ` (request ${requestId})` : '';
  console.error(`keel api: unexpected error${id}`, err);
  sendError(res, new ApiError(500, `Internal error in Keel${id}`, 'server_error', null, 'internal_error', requestId ? { keel: { request_id: requestId } } : undefined));
};
