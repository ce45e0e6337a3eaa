// The codec's keys, decoded once from the configuration (codec.keys). A key is a secret: this
// module never puts one into a message, and errors name key ids only.
import { createSecretKey, type KeyObject } from 'node:crypto';
import type { CodecSettings } from '../config/schema.js';

export class MissingKeyError extends Error {
  override name = 'MissingKeyError';
  constructor(readonly keyId: string, what: string) {
    super(`${what} is encrypted with key "${keyId}", which this process does not have: add it to codec.keys (keys are never removed while data written with them is kept)`);
  }
}

export class Keyring {
  private readonly keys = new Map<string, KeyObject>();
  /** The id new payloads and files are encrypted with. */
  readonly current: string;

  constructor(settings: Pick<CodecSettings, 'keys' | 'encryptWith'>) {
    for (const { id, key } of settings.keys) {
      const bytes = Buffer.from(key, 'base64');
      // The schema checked the shape; this holds for keyrings built in code too.
      if (bytes.length !== 32) throw new Error(`codec.keys: key "${id}" is not 32 bytes of base64`);
      this.keys.set(id, createSecretKey(bytes));
    }
    const current = settings.encryptWith ?? settings.keys.at(-1)?.id;
    if (!current || !this.keys.has(current)) throw new Error('codec.keys: no key to encrypt with');
    this.current = current;
  }

  has(id: string): boolean {
    return this.keys.has(id);
  }

  ids(): string[] {
    return [...this.keys.keys()];
  }

  /** The key `id`; `what` names the payload or file in the error when it is missing. */
  get(id: string, what: string): KeyObject {
    const key = this.keys.get(id);
    if (!key) throw new MissingKeyError(id, what);
    return key;
  }
}
