// OpenAI's Files API (the part batches need): uploads stream straight into the file store, never
// into memory, up to OpenAI's batch input limit.
import busboy from 'busboy';
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { keys, newId, type BatchStore } from '../store/batch-store.js';
import type { FileObject, FilePurpose } from '../core/batch-types.js';
import { ApiError, invalidRequest } from '../core/openai-error.js';
import { fromZodError } from './errors.js';
import { keyOf } from './auth.js';

const UPLOAD_PURPOSES = ['batch', 'user_data', 'assistants', 'fine-tune', 'vision', 'evals'] as const;

const ListQuery = z.object({
  purpose: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(10_000),
  after: z.string().optional(),
  order: z.enum(['asc', 'desc']).default('desc'),
});

interface Upload {
  purpose?: string;
  filename?: string;
  bytes?: number;
  tooLarge: boolean;
}

/** Parses the multipart body, streaming the `file` part into the store under `id`. */
function receive(req: Request, files: BatchStore, id: string, maxBytes: number): Promise<Upload> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: req.headers, limits: { fileSize: maxBytes, files: 1, fields: 20, fieldSize: 64 * 1024 } });
    } catch (err) {
      reject(invalidRequest(`Invalid multipart body: ${(err as Error).message}`));
      return;
    }
    const upload: Upload = { tooLarge: false };
    let stored: Promise<number> | undefined;
    bb.on('field', (name, value) => {
      if (name === 'purpose') upload.purpose = value;
    });
    bb.on('file', (name, stream, info) => {
      if (name !== 'file' || stored) {
        stream.resume();
        return;
      }
      upload.filename = info.filename ?? 'upload.jsonl';
      stream.on('limit', () => {
        upload.tooLarge = true;
      });
      stored = files.store.put(keys.fileData(id), stream);
      stored.catch(() => undefined);
    });
    bb.on('error', (err) => reject(invalidRequest(`Invalid multipart body: ${(err as Error).message}`)));
    bb.on('close', () => {
      if (!stored) return resolve(upload);
      stored.then((bytes) => resolve({ ...upload, bytes }), reject);
    });
    req.pipe(bb);
  });
}

function page<T extends { id: string }>(items: T[], after: string | undefined, limit: number) {
  const start = after ? items.findIndex((f) => f.id === after) + 1 : 0;
  const data = items.slice(start, start + limit);
  return { object: 'list' as const, data, first_id: data[0]?.id ?? null, last_id: data[data.length - 1]?.id ?? null, has_more: start + limit < items.length };
}

export { page as listPage };

export function filesRouter(files: BatchStore, maxBytes: number): Router {
  const router = Router();

  router.post('/v1/files', async (req, res) => {
    if (!req.is('multipart/form-data')) throw invalidRequest('Upload files as multipart/form-data with fields "file" and "purpose"', null, 'invalid_content_type');
    const id = newId('file');
    const upload = await receive(req, files, id, maxBytes);
    const discard = () => files.store.delete(keys.fileData(id));
    if (upload.tooLarge) {
      await discard();
      throw new ApiError(413, `File too large: the limit is ${maxBytes} bytes`, 'invalid_request_error', 'file', 'file_too_large');
    }
    if (upload.bytes === undefined) throw invalidRequest("Missing required parameter: 'file'", 'file', 'missing_required_parameter');
    if (!upload.purpose || !(UPLOAD_PURPOSES as readonly string[]).includes(upload.purpose)) {
      await discard();
      throw invalidRequest(`Invalid 'purpose': expected one of ${UPLOAD_PURPOSES.join(', ')}`, 'purpose', 'invalid_value');
    }
    const file: FileObject = {
      id,
      object: 'file',
      bytes: upload.bytes,
      created_at: Math.floor(Date.now() / 1000),
      filename: upload.filename ?? 'upload.jsonl',
      purpose: upload.purpose as FilePurpose,
      status: 'processed',
      expires_at: null,
      status_details: null,
      ...(keyOf(res) && { keel: { key_id: keyOf(res)!.id } }),
    };
    res.json(await files.putFileMeta(file));
  });

  router.get('/v1/files', async (req, res) => {
    const q = ListQuery.safeParse(req.query);
    if (!q.success) throw fromZodError(q.error);
    const owner = keyOf(res)?.id;
    const all = (await files.listFiles(q.data.purpose as FilePurpose | undefined)).filter((f) => owner === undefined || f.keel?.key_id === owner);
    const dir = q.data.order === 'asc' ? 1 : -1;
    all.sort((a, b) => dir * (a.created_at - b.created_at || a.id.localeCompare(b.id)));
    res.json(page(all, q.data.after, q.data.limit));
  });

  // A virtual key sees its own files only; another key's file answers as if it did not exist.
  const found = async (id: string, res: Response) => {
    const file = await files.getFile(id);
    const owner = keyOf(res)?.id;
    if (!file || (owner !== undefined && file.keel?.key_id !== owner)) throw new ApiError(404, `No such File object: ${id}`, 'invalid_request_error', 'id', 'file_not_found');
    return file;
  };

  router.get('/v1/files/:id', async (req, res) => {
    res.json(await found(req.params.id, res));
  });

  router.get('/v1/files/:id/content', async (req, res) => {
    const file = await found(req.params.id, res);
    const stream = await files.store.read(keys.fileData(file.id));
    res.setHeader('content-type', 'application/octet-stream');
    res.setHeader('content-length', String(file.bytes));
    res.setHeader('content-disposition', `attachment; filename="${file.filename.replace(/["\\\r\n]/g, '_')}"`);
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  });

  router.delete('/v1/files/:id', async (req, res) => {
    const file = await found(req.params.id, res);
    await files.deleteFile(file.id);
    res.json({ id: file.id, object: 'file', deleted: true });
  });

  return router;
}
