// The payload codec alone: encode + decode of one payload (AES-256-GCM through Node's crypto),
// without Temporal, at a request's typical input size and larger. `npx tsx bench/codec-micro.ts`.
import { randomBytes } from 'node:crypto';
import { defaultPayloadConverter } from '@temporalio/common';
import { Keyring } from '../src/codec/keyring.js';
import { EncryptionCodec } from '../src/codec/payload-codec.js';
import { writeResults } from './stats.js';

const keys = new Keyring({ keys: [{ id: 'k1', key: randomBytes(32).toString('base64') }] });
const codecs = { plain: new EncryptionCodec(keys), compressed: new EncryptionCodec(keys, { compressAboveBytes: 1024 }) };
const results: Record<string, Record<string, number>> = {};
for (const [name, codec] of Object.entries(codecs)) {
  results[name] = {};
  for (const size of [1_500, 20_000, 200_000]) {
    // JSON text, as prompts are: compressible, unlike random bytes.
    const payload = defaultPayloadConverter.toPayload({ text: Array.from({ length: size / 6 }, (_, i) => `w${i % 97} `).join('').slice(0, size) });
    const once = async () => codec.decode(await codec.encode([payload]));
    for (let i = 0; i < 200; i++) await once();
    const n = size > 100_000 ? 300 : 2_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await once();
    results[name][`${size}B_us`] = +(((performance.now() - t0) / n) * 1000).toFixed(1);
  }
}
console.log(JSON.stringify(results, null, 2));
console.log(`written to ${writeResults('codec-micro', results)}`);
