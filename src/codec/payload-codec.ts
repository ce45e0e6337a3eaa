// Keel's payload codec: every payload a Keel client or worker sends to Temporal is encrypted with
// AES-256-GCM (Node's crypto) before it leaves the process, and decrypted when it comes back.
// The original payload (metadata and data) is serialized whole and encrypted, so nothing of it —
// not even its encoding — stays in clear. Clear metadata says which key was used (rotation) and
// whether the payload was compressed first; both are bound to the ciphertext as associated data.
// Payloads without `encoding: binary/encrypted` pass through decode untouched: histories
// written before the codec was enabled stay readable (docs/ENCRYPTION.md, "Mixed histories").
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { deflateRaw, inflateRaw } from 'node:zlib';
import type { Payload, PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';
import type { Keyring } from './keyring.js';

const ProtoPayload = proto.temporal.api.common.v1.Payload;
const deflate = promisify(deflateRaw);
const inflate = promisify(inflateRaw);

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_META = 'encryption-key-id';
export const CIPHER_META = 'encryption-cipher';
export const COMPRESSION_META = 'keel-compression';
const CIPHER = 'AES-256-GCM';
const IV_BYTES = 12;
const TAG_BYTES = 16;

const utf8 = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array | null | undefined) => (b ? Buffer.from(b).toString('utf8') : undefined);

function aad(keyId: string, compression: string): Buffer {
  return Buffer.from(`keel-payload/v1\n${keyId}\n${compression}`);
}

export class DecryptError extends Error {
  override name = 'DecryptError';
}

export interface EncryptionCodecOptions {
  /** Payloads of at least this many bytes (serialized) are deflated before encryption. */
  compressAboveBytes?: number;
  /** false: decrypt what is encrypted, write in clear (codec.enabled false with keys kept). */
  encrypt?: boolean;
}

export class EncryptionCodec implements PayloadCodec {
  constructor(
    private readonly keys: Keyring,
    private readonly opts: EncryptionCodecOptions = {},
  ) {}

  async encode(payloads: Payload[]): Promise<Payload[]> {
    if (this.opts.encrypt === false) return payloads;
    return Promise.all(payloads.map((p) => this.encodeOne(p)));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return Promise.all(payloads.map((p) => this.decodeOne(p)));
  }

  private async encodeOne(payload: Payload): Promise<Payload> {
    let plain: Uint8Array = ProtoPayload.encode(payload).finish();
    let compression = 'none';
    const threshold = this.opts.compressAboveBytes;
    if (threshold !== undefined && plain.length >= threshold) {
      const packed = await deflate(plain);
      // Only when it pays: JSON shrinks, already-random bytes do not.
      if (packed.length < plain.length) {
        plain = packed;
        compression = 'deflate';
      }
    }
    const keyId = this.keys.current;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(keyId, 'a payload'), iv);
    cipher.setAAD(aad(keyId, compression));
    const data = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    return {
      metadata: {
        encoding: utf8(ENCRYPTED_ENCODING),
        [KEY_ID_META]: utf8(keyId),
        [CIPHER_META]: utf8(CIPHER),
        ...(compression !== 'none' && { [COMPRESSION_META]: utf8(compression) }),
      },
      data,
    };
  }

  private async decodeOne(payload: Payload): Promise<Payload> {
    if (text(payload.metadata?.encoding) !== ENCRYPTED_ENCODING) return payload;
    const keyId = text(payload.metadata?.[KEY_ID_META]);
    if (!keyId) throw new DecryptError('an encrypted payload carries no key id');
    const key = this.keys.get(keyId, 'a payload');
    const compression = text(payload.metadata?.[COMPRESSION_META]) ?? 'none';
    const data = Buffer.from(payload.data ?? new Uint8Array());
    if (data.length < IV_BYTES + TAG_BYTES) throw new DecryptError(`an encrypted payload (key "${keyId}") is truncated`);
    let plain: Buffer;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
      decipher.setAAD(aad(keyId, compression));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new DecryptError(`a payload encrypted with key "${keyId}" does not decrypt with the configured key "${keyId}": wrong key, or the payload was altered`);
    }
    if (compression === 'deflate') plain = await inflate(plain);
    else if (compression !== 'none') throw new DecryptError(`unknown payload compression "${compression}"`);
    const decoded = ProtoPayload.decode(plain);
    return { metadata: decoded.metadata, data: decoded.data };
  }
}
