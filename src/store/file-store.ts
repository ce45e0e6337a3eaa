// Where batch input, output and error files (and a batch's working state) live. The interface is
// what an object store offers — whole-object writes, ranged reads, prefix listing — so S3 or GCS
// can replace the local folder without touching the batch code. No appends: every writer owns a
// key it can rewrite whole, which also makes retried activities idempotent.
import { createWriteStream } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface ObjectStore {
  /** Writes the whole object atomically (readers never see half of it). Returns its size in bytes. */
  put(key: string, body: string | Buffer | Readable | AsyncIterable<string | Buffer>): Promise<number>;
  /** Streams the object; rejects with NotFoundError if absent. */
  read(key: string): Promise<Readable>;
  readText(key: string): Promise<string | undefined>;
  /** Up to `length` bytes from `offset` (fewer at the end of the object). */
  readRange(key: string, offset: number, length: number): Promise<Buffer>;
  size(key: string): Promise<number | undefined>;
  /** Keys under a prefix ("dir/"), sorted. */
  list(prefix: string): Promise<string[]>;
  delete(key: string): Promise<boolean>;
  /** Removes every key under a prefix. */
  deletePrefix(prefix: string): Promise<void>;
}

export class NotFoundError extends Error {
  override name = 'NotFoundError';
}

/** Keys are "a/b/c" paths; this keeps them inside the root whatever a caller passes. */
function safeKey(key: string): string {
  if (!/^[A-Za-z0-9_.=~+-]+(\/[A-Za-z0-9_.=~+-]+)*\/?$/.test(key) || key.split('/').some((p) => p === '..' || p === '.')) {
    throw new Error(`invalid store key: ${key}`);
  }
  return key;
}

export class LocalObjectStore implements ObjectStore {
  readonly root: string;
  constructor(root: string) {
    this.root = resolve(root);
  }

  private path(key: string): string {
    return join(this.root, ...safeKey(key).split('/').filter(Boolean));
  }

  async put(key: string, body: string | Buffer | Readable | AsyncIterable<string | Buffer>): Promise<number> {
    const target = this.path(key);
    await mkdir(dirname(target), { recursive: true });
    // Write beside the target and rename: a crash leaves the old object or the new one, never half.
    const tmp = `${target}.tmp-${randomUUID()}`;
    try {
      const source = typeof body === 'string' || Buffer.isBuffer(body) ? Readable.from([body]) : body;
      await pipeline(source, createWriteStream(tmp));
      const { size } = await stat(tmp);
      await rename(tmp, target);
      return size;
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async read(key: string): Promise<Readable> {
    const path = this.path(key);
    try {
      const handle = await open(path, 'r');
      return handle.createReadStream();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(key);
      throw err;
    }
  }

  async readText(key: string): Promise<string | undefined> {
    try {
      return await readFile(this.path(key), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async readRange(key: string, offset: number, length: number): Promise<Buffer> {
    let handle;
    try {
      handle = await open(this.path(key), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(key);
      throw err;
    }
    try {
      const buf = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buf, 0, length, offset);
      return buf.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }

  async size(key: string): Promise<number | undefined> {
    try {
      return (await stat(this.path(key))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const dir = this.path(prefix.endsWith('/') ? prefix : `${prefix}/`);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const base = prefix.endsWith('/') ? prefix : `${prefix}/`;
    return names.filter((n) => !n.includes('.tmp-')).sort().map((n) => `${base}${n}`);
  }

  async delete(key: string): Promise<boolean> {
    const path = this.path(key);
    try {
      await stat(path);
    } catch {
      return false;
    }
    await rm(path, { force: true });
    return true;
  }

  async deletePrefix(prefix: string): Promise<void> {
    const dir = this.path(prefix);
    if (!dir.startsWith(this.root + sep)) throw new Error(`refusing to delete ${dir}`);
    await rm(dir, { recursive: true, force: true });
  }
}

/** Reads an object line by line without holding it in memory. */
export async function* readLines(store: ObjectStore, key: string): AsyncGenerator<string> {
  const stream = await store.read(key);
  // A chunk may end inside a multi-byte character: the decoder carries it to the next chunk.
  const decoder = new StringDecoder('utf8');
  let rest = '';
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    const text = rest + decoder.write(chunk);
    const lines = text.split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) yield line;
  }
  rest += decoder.end();
  if (rest.length > 0) yield rest;
}

export function localStore(dataDir: string): LocalObjectStore {
  return new LocalObjectStore(dataDir);
}
