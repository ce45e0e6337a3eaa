// The one place that turns the configuration's `codec` section into Temporal's data converter:
// every client and worker Keel creates takes it from here (src/api/server.ts,
// src/worker/workers.ts, the entry points, tests and benchmarks). Off: Temporal's defaults.
import { fileURLToPath } from 'node:url';
import type { DataConverter } from '@temporalio/common';
import type { CodecSettings } from '../config/schema.js';
import { Keyring } from './keyring.js';
import { EncryptionCodec } from './payload-codec.js';

/** The module with the `failureConverter` that encodes failure messages (for the bundle and the worker). */
export const FAILURE_CONVERTER_PATH = fileURLToPath(new URL('./failure-converter.ts', import.meta.url));

const keyrings = new WeakMap<CodecSettings, Keyring>();

/** The settings' keyring (one per settings object, shared by everything built from it). */
export function keyringFor(codec: CodecSettings): Keyring {
  let ring = keyrings.get(codec);
  if (!ring) {
    ring = new Keyring(codec);
    keyrings.set(codec, ring);
  }
  return ring;
}

/**
 * For `new Client({ dataConverter })` and `Worker.create({ dataConverter })`. Undefined without
 * keys (Temporal's defaults). With keys but `enabled: false`, payloads are written in clear and
 * encrypted ones are still decrypted: how encryption is turned off without losing what it wrote.
 */
export function keelDataConverter(codec: CodecSettings): DataConverter | undefined {
  if (codec.keys.length === 0) return undefined;
  return {
    payloadCodecs: [
      new EncryptionCodec(keyringFor(codec), {
        encrypt: codec.enabled,
        ...(codec.compressAboveBytes !== undefined && { compressAboveBytes: codec.compressAboveBytes }),
      }),
    ],
    ...(codec.enabled && { failureConverterPath: FAILURE_CONVERTER_PATH }),
  };
}

/** The workflow bundle's options for these settings (its failure converter is compiled in). */
export function bundleOptionsFor(codec: CodecSettings): { failureConverterPath?: string } {
  return codec.enabled ? { failureConverterPath: FAILURE_CONVERTER_PATH } : {};
}
