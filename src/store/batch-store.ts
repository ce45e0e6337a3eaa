// Files and batch records on top of an ObjectStore: the one place that knows the key layout.
//   files/<id>.json            File object        files/<id>.data    its content
//   batches/<id>.json          Batch object (the API reads it; the batch workflow writes it through activities)
//   batch-work/<id>/…          working state: valid.jsonl, invalid.jsonl, results/<round>-<seq>.jsonl, retry-<n>.jsonl
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { keys } from '../core/batch-keys.js';
import type { BatchObject, FileObject, FilePurpose } from '../core/batch-types.js';
import { localStore, type ObjectStore } from './file-store.js';
import { dataDir } from '../config/load.js';
import type { CodecSettings } from '../config/schema.js';
import { keyringFor } from '../codec/data-converter.js';
import { EncryptedObjectStore } from './encrypted-store.js';

export { keys };
export function newId(prefix: 'file' | 'batch'): string {
  return `${prefix}${prefix === 'file' ? '-' : '_'}${randomBytes(12).toString('hex')}`;
}

/** Output/error file ids derived from the batch and round, so a retried finalize rewrites the same files. */
export function derivedFileId(batchId: string, kind: 'output' | 'error', round: number): string {
  return `file-${createHash('sha256').update(`${batchId}/${kind}/${round}`).digest('hex').slice(0, 24)}`;
}

export class BatchStore {
  constructor(readonly store: ObjectStore) {}

  async putFile(meta: Omit<FileObject, 'object' | 'bytes' | 'status' | 'status_details' | 'expires_at'>, body: string | Readable | AsyncIterable<string | Buffer>): Promise<FileObject> {
    const bytes = await this.store.put(keys.fileData(meta.id), body);
    return this.putFileMeta({ ...meta, object: 'file', bytes, status: 'processed', expires_at: null, status_details: null });
  }

  async putFileMeta(file: FileObject): Promise<FileObject> {
    // Meta after data: a listed file always has its content.
    await this.store.put(keys.fileMeta(file.id), JSON.stringify(file));
    return file;
  }

  async getFile(id: string): Promise<FileObject | undefined> {
    if (!/^file-[A-Za-z0-9]+$/.test(id)) return undefined;
    const text = await this.store.readText(keys.fileMeta(id));
    return text ? (JSON.parse(text) as FileObject) : undefined;
  }

  async listFiles(purpose?: FilePurpose): Promise<FileObject[]> {
    const metas = (await this.store.list('files')).filter((k) => k.endsWith('.json'));
    const files: FileObject[] = [];
    for (const key of metas) {
      const text = await this.store.readText(key);
      if (!text) continue;
      const f = JSON.parse(text) as FileObject;
      if (!purpose || f.purpose === purpose) files.push(f);
    }
    return files;
  }

  async deleteFile(id: string): Promise<boolean> {
    if (!(await this.getFile(id))) return false;
    await this.store.delete(keys.fileMeta(id));
    await this.store.delete(keys.fileData(id));
    return true;
  }

  async getBatch(id: string): Promise<BatchObject | undefined> {
    if (!/^batch_[A-Za-z0-9]+$/.test(id)) return undefined;
    const text = await this.store.readText(keys.batch(id));
    return text ? (JSON.parse(text) as BatchObject) : undefined;
  }

  async putBatch(batch: BatchObject): Promise<BatchObject> {
    await this.store.put(keys.batch(batch.id), JSON.stringify(batch));
    return batch;
  }

  async patchBatch(id: string, patch: Partial<BatchObject>): Promise<BatchObject> {
    const current = await this.getBatch(id);
    if (!current) throw new Error(`batch ${id} has no record`);
    return this.putBatch({ ...current, ...patch });
  }

  async listBatches(): Promise<BatchObject[]> {
    const out: BatchObject[] = [];
    for (const key of await this.store.list('batches')) {
      if (!key.endsWith('.json')) continue;
      const text = await this.store.readText(key);
      if (text) out.push(JSON.parse(text) as BatchObject);
    }
    return out;
  }
}

/** The file store in `dir`; with codec keys, encrypted at rest (src/store/encrypted-store.ts). */
export function openBatchStore(codec: CodecSettings, dir = dataDir()): BatchStore {
  const local = localStore(dir);
  return new BatchStore(codec.keys.length > 0 ? new EncryptedObjectStore(local, keyringFor(codec), codec.enabled) : local);
}
