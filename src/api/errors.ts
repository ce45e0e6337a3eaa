// Every error the API sends is in OpenAI's shape, with the status a client can act on.
import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import type { ZodError } from 'zod';
import { ApiError, invalidRequest } from '../core/openai-error.js';

export function sendError(res: Response, err: ApiError): void {
  res.status(err.status).json({ error: err.toObject(), ...err.extra });
}

export function fromZodError(error: ZodError): ApiError {
  const issue = error.issues[0];
  const param = issue && issue.path.length > 0 ? issue.path.map(String).join('.') : null;
  const where = param ? `${param}: ` : '';
  return invalidRequest(`Invalid request: ${where}${issue?.message ?? 'invalid body'}`, param, 'invalid_value');
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
  console.error('keel api: unexpected error', err);
  sendError(res, new ApiError(500, 'Internal error in Keel', 'server_error', null, 'internal_error'));
};
