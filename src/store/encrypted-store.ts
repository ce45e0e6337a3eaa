// The file store with encryption at rest (codec.enabled): every object — batch input, output and
// error files, their metadata, batch records and working files — is written in the chunked format
// of src/codec/file-cipher.ts with the codec's current key, and read back through any key of the
// keyring. Offsets and sizes are the plaintext's, so the batch code is unchanged: `readRange`
// decrypts only the chunks a range touches. Objects written in clear (before encryption was
// enabled) are read as they are. docs/BATCHES.md, "Encryption at rest".
import { Readable } from 'node:stream';
import type { Keyring } from '../codec/keyring.js';
import { MAX_HEADER_BYTES, decryptFile, decryptRange, encryptFile, parseHeader, plainSize } from '../codec/file-cipher.js';
import type { ObjectStore } from './file-store.js';

export class EncryptedObjectStore implements ObjectStore {
  constructor(
    readonly inner: ObjectStore,
    private readonly keys: Keyring,
    /** false: write in clear, still read what was encrypted (codec.enabled false with keys kept). */
    private readonly encrypt = true,
  ) {}

  async put(key: string, body: string | Buffer | Readable | AsyncIterable<string | Buffer>): Promise<number> {
    if (!this.encrypt) return this.inner.put(key, body);
    const source: AsyncIterable<string | Buffer> = typeof body === 'string' || Buffer.isBuffer(body) ? Readable.from([body]) : body;
    const tally = { bytes: 0 };
    await this.inner.put(key, Readable.from(encryptFile(source, this.keys, tally)));
    return tally.bytes;
  }

  async read(key: string): Promise<Readable> {
    const stored = await this.inner.read(key);
    return Readable.from(decryptFile(stored, this.keys, `file store object ${key}`));
  }

  async readText(key: string): Promise<string | undefined> {
    let stream: Readable;
    try {
      stream = await this.read(key);
    } catch (err) {
      if ((err as Error).name === 'NotFoundError') return undefined;
      throw err;
    }
    const parts: Buffer[] = [];
    for await (const part of stream) parts.push(part as Buffer);
    return Buffer.concat(parts).toString('utf8');
  }

  async readRange(key: string, offset: number, length: number): Promise<Buffer> {
    const header = parseHeader(await this.inner.readRange(key, 0, MAX_HEADER_BYTES));
    if (!header) return this.inner.readRange(key, offset, length);
    const size = await this.inner.size(key);
    if (size === undefined) return Buffer.alloc(0);
    return decryptRange(header, size, (o, l) => this.inner.readRange(key, o, l), offset, length, this.keys, `file store object ${key}`);
  }

  async size(key: string): Promise<number | undefined> {
    const size = await this.inner.size(key);
    if (size === undefined) return undefined;
    const header = parseHeader(await this.inner.readRange(key, 0, MAX_HEADER_BYTES));
    return header ? plainSize(header, size) : size;
  }

  list(prefix: string): Promise<string[]> {
    return this.inner.list(prefix);
  }

  delete(key: string): Promise<boolean> {
    return this.inner.delete(key);
  }

  deletePrefix(prefix: string): Promise<void> {
    return this.inner.deletePrefix(prefix);
  }
}
