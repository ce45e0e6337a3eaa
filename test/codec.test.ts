// The codec's parts without Temporal: payload encryption (rotation, compression, mixed payloads,
// wrong and missing keys), the encrypted file store (streams, plaintext byte ranges across chunk
// boundaries, tampering, files written in clear) and the configuration's checks on keys.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { defaultPayloadConverter } from '@temporalio/common';
import { ConfigError, parseConfig } from '../src/config/load.js';
import { Keyring } from '../src/codec/keyring.js';
import { EncryptionCodec } from '../src/codec/payload-codec.js';
import { LocalObjectStore, readLines } from '../src/store/file-store.js';
import { EncryptedObjectStore } from '../src/store/encrypted-store.js';

const newKey = () => randomBytes(32).toString('base64');
const k1 = { id: 'k1', key: newKey() };
const k2 = { id: 'k2', key: newKey() };
const CANARY = `canary-${randomBytes(8).toString('hex')}`;

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

describe('payload codec', () => {
  test('encrypts a payload whole, names the key in clear metadata, and decodes it back', async () => {
    const codec = new EncryptionCodec(new Keyring({ keys: [k1] }));
    const payload = defaultPayloadConverter.toPayload({ prompt: CANARY });
    const [encoded] = await codec.encode([payload]);
    assert.equal(Buffer.from(encoded.metadata!.encoding!).toString(), 'binary/encrypted');
    assert.equal(Buffer.from(encoded.metadata!['encryption-key-id']!).toString(), 'k1');
    assert.ok(!Buffer.from(encoded.data!).includes(CANARY));
    assert.ok(!Buffer.from(encoded.data!).includes('json/plain'), 'the original encoding is encrypted too');
    const [decoded] = await codec.decode([encoded]);
    assert.deepEqual(defaultPayloadConverter.fromPayload(decoded), { prompt: CANARY });
  });

  test('rotation: new payloads use the newest key (or encryptWith); every key decrypts', async () => {
    const old = new EncryptionCodec(new Keyring({ keys: [k1] }));
    const rotated = new EncryptionCodec(new Keyring({ keys: [k1, k2] }));
    const [byOld] = await old.encode([defaultPayloadConverter.toPayload('before')]);
    const [byNew] = await rotated.encode([defaultPayloadConverter.toPayload('after')]);
    assert.equal(Buffer.from(byNew.metadata!['encryption-key-id']!).toString(), 'k2');
    assert.deepEqual((await rotated.decode([byOld, byNew])).map((p) => defaultPayloadConverter.fromPayload(p)), ['before', 'after']);
    const staged = new EncryptionCodec(new Keyring({ keys: [k1, k2], encryptWith: 'k1' }));
    const [bySteady] = await staged.encode([defaultPayloadConverter.toPayload('x')]);
    assert.equal(Buffer.from(bySteady.metadata!['encryption-key-id']!).toString(), 'k1');
  });

  test('a missing key and a wrong key fail with the key id, never the key', async () => {
    const [encoded] = await new EncryptionCodec(new Keyring({ keys: [k1, k2] })).encode([defaultPayloadConverter.toPayload('x')]);
    await assert.rejects(new EncryptionCodec(new Keyring({ keys: [k1] })).decode([encoded]), (err: Error) => {
      assert.match(err.message, /key "k2", which this process does not have/);
      return true;
    });
    const wrong = { id: 'k2', key: newKey() };
    await assert.rejects(new EncryptionCodec(new Keyring({ keys: [wrong] })).decode([encoded]), (err: Error) => {
      assert.match(err.message, /does not decrypt with the configured key "k2"/);
      assert.ok(!err.message.includes(wrong.key) && !err.message.includes(k2.key));
      return true;
    });
  });

  test('payloads written in clear pass through (histories from before the codec)', async () => {
    const codec = new EncryptionCodec(new Keyring({ keys: [k1] }));
    const clear = defaultPayloadConverter.toPayload({ a: 1 });
    assert.deepEqual(await codec.decode([clear]), [clear]);
  });

  test('large payloads are compressed before encryption when asked to', async () => {
    const big = defaultPayloadConverter.toPayload({ text: 'lorem ipsum '.repeat(5_000) });
    const plain = new EncryptionCodec(new Keyring({ keys: [k1] }));
    const packed = new EncryptionCodec(new Keyring({ keys: [k1] }), { compressAboveBytes: 1024 });
    const [a] = await plain.encode([big]);
    const [b] = await packed.encode([big]);
    assert.equal(Buffer.from(b.metadata!['keel-compression']!).toString(), 'deflate');
    assert.ok(b.data!.length < a.data!.length / 10, `${b.data!.length} vs ${a.data!.length} bytes`);
    // Whoever decodes needs no setting: the payload says it is compressed.
    assert.deepEqual(defaultPayloadConverter.fromPayload((await plain.decode([b]))[0]), defaultPayloadConverter.fromPayload(big));
    const [small] = await packed.encode([defaultPayloadConverter.toPayload('tiny')]);
    assert.equal(small.metadata!['keel-compression'], undefined);
  });
});

describe('encrypted file store', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keel-codec-store-'));
  const local = new LocalObjectStore(dir);
  const store = new EncryptedObjectStore(local, new Keyring({ keys: [k1] }));
  // ~300 KB of JSONL: several 64 KiB chunks, lines crossing chunk boundaries, multi-byte characters.
  const lines = Array.from({ length: 2_000 }, (_, i) => JSON.stringify({ custom_id: `r${i}`, body: { text: `${CANARY} ${i} ${'ü€'.repeat(i % 50)}` } }));
  const text = `${lines.join('\n')}\n`;
  const plain = Buffer.from(text);

  test('a streamed object is encrypted on disk and reads back whole, line by line and by size', async () => {
    const bytes = await store.put('batch-work/b1/valid.jsonl', Readable.from(lines.map((l) => `${l}\n`)));
    assert.equal(bytes, plain.length);
    assert.equal(await store.size('batch-work/b1/valid.jsonl'), plain.length);
    for (const f of files(dir)) assert.ok(!readFileSync(f).includes(CANARY), `${f} holds the canary in clear`);
    const back: string[] = [];
    for await (const line of readLines(store, 'batch-work/b1/valid.jsonl')) back.push(line);
    assert.deepEqual(back, lines);
    assert.equal(await store.readText('batch-work/b1/valid.jsonl'), text);
    assert.equal(await store.readText('batch-work/b1/absent.jsonl'), undefined);
  });

  test('readRange returns plaintext bytes at plaintext offsets, across chunk boundaries and at the end', async () => {
    const chunk = 64 * 1024;
    const cases: [number, number][] = [[0, 10], [chunk - 5, 10], [chunk, chunk], [chunk * 2 - 1, chunk * 2 + 2], [1000, 256 * 1024], [plain.length - 3, 100], [plain.length, 10], [plain.length + 50, 10], [0, plain.length + 100]];
    for (const [offset, length] of cases) {
      assert.ok((await store.readRange('batch-work/b1/valid.jsonl', offset, length)).equals(plain.subarray(offset, offset + length)), `range ${offset}+${length}`);
    }
  });

  test('empty objects and objects of exactly whole chunks round-trip', async () => {
    for (const size of [0, 1, 64 * 1024, 128 * 1024]) {
      const body = randomBytes(size);
      assert.equal(await store.put(`t/s${size}`, body), size);
      assert.equal(await store.size(`t/s${size}`), size);
      const parts: Buffer[] = [];
      for await (const p of await store.read(`t/s${size}`)) parts.push(p as Buffer);
      assert.ok(Buffer.concat(parts).equals(body), `size ${size}`);
      assert.ok((await store.readRange(`t/s${size}`, 0, size + 10)).equals(body));
    }
  });

  test('a truncated or altered object fails to read instead of returning wrong bytes', async () => {
    await store.put('t/victim', plain);
    const path = join(dir, 't', 'victim');
    const stored = readFileSync(path);
    writeFileSync(path, stored.subarray(0, stored.length - (16 + 64 * 1024) + 0));
    await assert.rejects(async () => {
      for await (const _ of await store.read('t/victim')) void _;
    }, /does not decrypt with key "k1"/);
    const flipped = Buffer.from(stored);
    flipped[flipped.length - 100] ^= 1;
    writeFileSync(path, flipped);
    await assert.rejects(store.readRange('t/victim', plain.length - 200, 50), /wrong key, or the file was truncated or altered/);
  });

  test('objects written in clear (before encryption) are still read; rotation keeps old objects readable', async () => {
    mkdirSync(join(dir, 'old'), { recursive: true });
    writeFileSync(join(dir, 'old', 'clear.jsonl'), text);
    assert.equal(await store.size('old/clear.jsonl'), plain.length);
    assert.ok((await store.readRange('old/clear.jsonl', 70_000, 300)).equals(plain.subarray(70_000, 70_300)));
    assert.equal(await store.readText('old/clear.jsonl'), text);

    const rotated = new EncryptedObjectStore(local, new Keyring({ keys: [k1, k2] }));
    await rotated.put('t/new', 'written with k2');
    assert.equal(await rotated.readText('batch-work/b1/valid.jsonl'), text, 'k1 object, read with k1 and k2 configured');
    assert.equal(await rotated.readText('t/new'), 'written with k2');
    await assert.rejects(store.readText('t/new'), /encrypted with key "k2", which this process does not have/);
    assert.ok(statSync(join(dir, 't', 'new')).size > 'written with k2'.length);
  });

  test('with the codec turned off but keys kept, new objects are clear and old ones still decrypt', async () => {
    const off = new EncryptedObjectStore(local, new Keyring({ keys: [k1] }), false);
    await off.put('t/clear', 'in clear');
    assert.equal(readFileSync(join(dir, 't', 'clear'), 'utf8'), 'in clear');
    assert.equal(await off.readText('batch-work/b1/valid.jsonl'), text);
  });
});

describe('codec configuration', () => {
  const base = `providers:\n  a: { type: openai, baseURL: http://127.0.0.1:1/v1 }\nmodels:\n  chat: { targets: [a/m] }\n`;
  const error = (yaml: string, env: NodeJS.ProcessEnv = {}) => {
    try {
      parseConfig(yaml, env);
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err.message;
    }
    return assert.fail('expected a ConfigError');
  };

  test('off by default; keys from the environment; the last key encrypts unless encryptWith says otherwise', () => {
    assert.equal(parseConfig(base, {}).codec.enabled, false);
    const cfg = parseConfig(`${base}codec:\n  enabled: true\n  keys:\n    - { id: k1, key: "\${K1}" }\n    - { id: k2, key: "\${K2}" }\n  server: { allowLoopback: true }\n`, { K1: k1.key, K2: k2.key });
    assert.equal(cfg.codec.encryptWith, 'k2');
    assert.equal(cfg.codec.server.enabled, true);
    assert.deepEqual(cfg.codec.server.corsOrigins, ['http://localhost:8233', 'http://127.0.0.1:8233']);
    assert.equal(parseConfig(`${base}codec:\n  enabled: true\n  encryptWith: k1\n  keys:\n    - { id: k1, key: "\${K1}" }\n    - { id: k2, key: "\${K2}" }\n  server: { enabled: false }\n`, { K1: k1.key, K2: k2.key }).codec.encryptWith, 'k1');
  });

  test('a bad key is an error naming the field, never the value', () => {
    assert.match(error(`${base}codec:\n  enabled: true\n  keys: [{ id: k1, key: "${k1.key}" }]\n`), /codec\.server: the codec server needs tokens, jwt or allowLoopback/);
    for (const bad of ['not-base64-at-all', randomBytes(16).toString('base64'), randomBytes(33).toString('base64'), randomBytes(32).toString('hex')]) {
      const message = error(`${base}codec:\n  enabled: true\n  keys: [{ id: k1, key: "\${K1}" }]\n`, { K1: bad });
      assert.match(message, /codec\.keys\.0\.key: must be 32 random bytes in base64/);
      assert.ok(!message.includes(bad), 'the value is not in the message');
    }
    assert.match(error(`${base}codec:\n  enabled: true\n  keys: [{ id: k1, key: "\${K1}" }]\n`), /K1 is not set/);
    assert.match(error(`${base}codec: { enabled: true }\n`), /codec\.keys: the codec is enabled but has no keys/);
    assert.match(error(`${base}codec:\n  enabled: true\n  keys: [{ id: k1, key: "${k1.key}" }, { id: k1, key: "${k2.key}" }]\n`), /codec\.keys\.1\.id: duplicate key id "k1"/);
    assert.match(error(`${base}codec:\n  enabled: true\n  encryptWith: k9\n  keys: [{ id: k1, key: "${k1.key}" }]\n`), /codec\.encryptWith: no key with id "k9"/);
    const token = 'short';
    assert.ok(!error(`${base}codec:\n  enabled: true\n  keys: [{ id: k1, key: "${k1.key}" }]\n  server: { tokens: ["${token}"] }\n`).includes(`"${token}"`));
  });
});
