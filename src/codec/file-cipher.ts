// Encrypted files for the file store: an authenticated, chunked format that can be written as a
// stream (batch files are up to 200 MB) and read either as a stream or by plaintext byte range
// (the batch reader pages through valid.jsonl by byte offset). docs/BATCHES.md, "Encryption".
//
//   header  magic (8) | chunk size (uint32 BE) | key id length (1) | key id | salt (16)
//   chunks  AES-256-GCM of each `chunk size` bytes of plaintext (the last one shorter), tag appended
//
// Each file gets its own key, HKDF-SHA256(key named in the header, salt), so chunk nonces can be
// counters: chunk i's nonce is i with a final-chunk flag, which makes a truncated file (or
// reordered chunks) fail to authenticate. The whole header is every chunk's associated data.
// Chunks have a fixed plaintext size, so plaintext offset → chunk → encrypted offset is arithmetic.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import type { Keyring } from './keyring.js';

const MAGIC = Buffer.from([0x00, 0x4b, 0x45, 0x45, 0x4c, 0x46, 0x53, 0x01]); // "\0KEELFS\x01": no text file starts with NUL
export const DEFAULT_CHUNK_BYTES = 64 * 1024;
const TAG = 16;
const SALT = 16;
/** Enough bytes to hold any header (key ids are at most 64 bytes). */
export const MAX_HEADER_BYTES = MAGIC.length + 4 + 1 + 255 + SALT;

export interface FileHeader {
  bytes: Buffer;
  chunkBytes: number;
  keyId: string;
  salt: Buffer;
}

export class FileDecryptError extends Error {
  override name = 'FileDecryptError';
}

/** The header at the start of `head`, or undefined when the object was written in clear. */
export function parseHeader(head: Buffer): FileHeader | undefined {
  if (head.length < MAGIC.length || !head.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const fixed = MAGIC.length + 4 + 1;
  if (head.length < fixed) throw new FileDecryptError('an encrypted file has a truncated header');
  const chunkBytes = head.readUInt32BE(MAGIC.length);
  const idLength = head[MAGIC.length + 4];
  const end = fixed + idLength + SALT;
  if (head.length < end || chunkBytes === 0) throw new FileDecryptError('an encrypted file has a truncated header');
  return {
    bytes: Buffer.from(head.subarray(0, end)),
    chunkBytes,
    keyId: head.subarray(fixed, fixed + idLength).toString('utf8'),
    salt: Buffer.from(head.subarray(fixed + idLength, end)),
  };
}

function fileKey(master: KeyObject, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', master, salt, 'keel-file/v1', 32));
}

function nonce(index: number, final: boolean): Buffer {
  const n = Buffer.alloc(12);
  n.writeUInt32BE(index, 7);
  n[11] = final ? 1 : 0;
  return n;
}

/** Plaintext size of an encrypted object of `size` bytes with this header. */
export function plainSize(header: FileHeader, size: number): number {
  const body = size - header.bytes.length;
  const chunks = Math.max(1, Math.ceil(body / (header.chunkBytes + TAG)));
  return Math.max(0, body - chunks * TAG);
}

function chunkCount(header: FileHeader, size: number): number {
  return Math.max(1, Math.ceil((size - header.bytes.length) / (header.chunkBytes + TAG)));
}

async function* buffers(source: AsyncIterable<string | Buffer | Uint8Array>): AsyncGenerator<Buffer> {
  for await (const piece of source) yield typeof piece === 'string' ? Buffer.from(piece, 'utf8') : Buffer.from(piece);
}

/**
 * Encrypts a stream with the keyring's current key. `tally.bytes` counts the plaintext (what
 * the store reports as the object's size).
 */
export async function* encryptFile(source: AsyncIterable<string | Buffer | Uint8Array>, keys: Keyring, tally: { bytes: number } = { bytes: 0 }, chunkBytes = DEFAULT_CHUNK_BYTES): AsyncGenerator<Buffer> {
  const keyId = keys.current;
  const id = Buffer.from(keyId, 'utf8');
  const salt = randomBytes(SALT);
  const size = Buffer.alloc(4);
  size.writeUInt32BE(chunkBytes);
  const header = Buffer.concat([MAGIC, size, Buffer.from([id.length]), id, salt]);
  const key = fileKey(keys.get(keyId, 'a file'), salt);
  yield header;
  let index = 0;
  const seal = (plain: Buffer, final: boolean): Buffer => {
    const cipher = createCipheriv('aes-256-gcm', key, nonce(index++, final));
    cipher.setAAD(header);
    return Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
  };
  let pending: Buffer = Buffer.alloc(0);
  for await (const piece of buffers(source)) {
    tally.bytes += piece.length;
    pending = pending.length ? Buffer.concat([pending, piece]) : piece;
    // A full chunk is sealed only once more data follows it: the last chunk carries the final flag.
    while (pending.length > chunkBytes) {
      yield seal(pending.subarray(0, chunkBytes), false);
      pending = pending.subarray(chunkBytes);
    }
  }
  yield seal(pending, true);
}

function opener(header: FileHeader, keys: Keyring, what: string) {
  const key = fileKey(keys.get(header.keyId, what), header.salt);
  return (sealed: Buffer, index: number, final: boolean): Buffer => {
    if (sealed.length < TAG) throw new FileDecryptError(`${what} (key "${header.keyId}") is truncated`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, nonce(index, final));
      decipher.setAAD(header.bytes);
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG));
      return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG)), decipher.final()]);
    } catch {
      throw new FileDecryptError(`${what} does not decrypt with key "${header.keyId}": wrong key, or the file was truncated or altered`);
    }
  };
}

/** Decrypts a whole stored object as a stream; an object written in clear passes through. */
export async function* decryptFile(source: AsyncIterable<Buffer>, keys: Keyring, what: string): AsyncGenerator<Buffer> {
  let pending: Buffer = Buffer.alloc(0);
  let header: FileHeader | undefined;
  let open: ReturnType<typeof opener> | undefined;
  let clear = false;
  let index = 0;
  for await (const piece of source) {
    if (clear) {
      yield piece;
      continue;
    }
    pending = pending.length ? Buffer.concat([pending, piece]) : piece;
    if (!header) {
      if (pending.length < MAGIC.length) continue;
      if (!pending.subarray(0, MAGIC.length).equals(MAGIC)) {
        clear = true;
        yield pending;
        continue;
      }
      if (pending.length < MAGIC.length + 5 || pending.length < MAGIC.length + 5 + pending[MAGIC.length + 4] + SALT) continue;
      header = parseHeader(pending)!;
      open = opener(header, keys, what);
      pending = pending.subarray(header.bytes.length);
    }
    const sealedBytes = header.chunkBytes + TAG;
    while (pending.length > sealedBytes) {
      yield open!(pending.subarray(0, sealedBytes), index++, false);
      pending = pending.subarray(sealedBytes);
    }
  }
  if (clear) return;
  if (!header) {
    if (pending.length >= MAGIC.length) throw new FileDecryptError(`${what} has a truncated header`);
    // Shorter than the magic: a (tiny) file written in clear.
    if (pending.length > 0) yield pending;
    return;
  }
  yield open!(pending, index, true);
}

/**
 * Plaintext bytes [offset, offset + length) of an encrypted object, through `readRange` on the
 * stored (encrypted) bytes: only the chunks that overlap the range are read and decrypted.
 */
export async function decryptRange(
  header: FileHeader,
  storedSize: number,
  readStored: (offset: number, length: number) => Promise<Buffer>,
  offset: number,
  length: number,
  keys: Keyring,
  what: string,
): Promise<Buffer> {
  const total = plainSize(header, storedSize);
  const end = Math.min(offset + length, total);
  if (length <= 0 || offset >= end) return Buffer.alloc(0);
  const chunks = chunkCount(header, storedSize);
  const first = Math.floor(offset / header.chunkBytes);
  const last = Math.floor((end - 1) / header.chunkBytes);
  const sealedBytes = header.chunkBytes + TAG;
  const start = header.bytes.length + first * sealedBytes;
  const stored = await readStored(start, Math.min(storedSize, header.bytes.length + (last + 1) * sealedBytes) - start);
  const open = opener(header, keys, what);
  const plain: Buffer[] = [];
  for (let i = first; i <= last; i++) {
    const at = (i - first) * sealedBytes;
    plain.push(open(stored.subarray(at, Math.min(stored.length, at + sealedBytes)), i, i === chunks - 1));
  }
  const joined = Buffer.concat(plain);
  return joined.subarray(offset - first * header.chunkBytes, end - first * header.chunkBytes);
}
