// Who may use the codec server: bearer keys, a Temporal UI user's OIDC access token (a JWT
// verified against the identity provider's JWKS, served here on loopback like a real one), and
// loopback clients only when allowed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import { codecAuthenticator, isLoopback } from '../src/codec/codec-server.js';

const ISSUER = 'https://idp.test/';
let jwks: Server;
let jwksUrl = '';
let signingKey: CryptoKey;
let otherKey: CryptoKey;
const TOKEN = randomBytes(24).toString('base64url');

before(async () => {
  const pair = await generateKeyPair('RS256');
  signingKey = pair.privateKey;
  otherKey = (await generateKeyPair('RS256')).privateKey;
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'idp-1', alg: 'RS256', use: 'sig' };
  jwks = createServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`;
});

after(() => new Promise<void>((resolve) => jwks.close(() => resolve())));

const jwt = (key: CryptoKey, claims: { iss?: string; aud?: string; exp?: string } = {}) =>
  new SignJWT({ email: 'operator@example.com' })
    .setProtectedHeader({ alg: 'RS256', kid: 'idp-1' })
    .setIssuer(claims.iss ?? ISSUER)
    .setAudience(claims.aud ?? 'temporal-ui')
    .setIssuedAt()
    .setExpirationTime(claims.exp ?? '5m')
    .sign(key);

test('a bearer key is accepted; another token, a malformed header or none is not', async () => {
  const auth = codecAuthenticator({ enabled: true, tokens: [TOKEN], corsOrigins: [], allowLoopback: false, maxBodyBytes: 1 });
  assert.equal(await auth({ authorization: `Bearer ${TOKEN}`, remoteAddress: '10.0.0.5' }), true);
  assert.equal(await auth({ authorization: `Bearer ${TOKEN}x` }), false);
  assert.equal(await auth({ authorization: TOKEN }), false);
  assert.equal(await auth({ remoteAddress: '127.0.0.1' }), false, 'loopback needs a token unless allowed');
});

test("the UI user's OIDC token: valid signature, issuer, audience and expiry", async () => {
  const auth = codecAuthenticator({ enabled: true, tokens: [], jwt: { jwksUrl, issuer: ISSUER, audience: 'temporal-ui' }, corsOrigins: [], allowLoopback: false, maxBodyBytes: 1 });
  assert.equal(await auth({ authorization: `Bearer ${await jwt(signingKey)}` }), true);
  assert.equal(await auth({ authorization: `Bearer ${await jwt(otherKey)}` }), false, 'signed by another key');
  assert.equal(await auth({ authorization: `Bearer ${await jwt(signingKey, { iss: 'https://evil.test/' })}` }), false, 'another issuer');
  assert.equal(await auth({ authorization: `Bearer ${await jwt(signingKey, { aud: 'something-else' })}` }), false, 'another audience');
  assert.equal(await auth({ authorization: `Bearer ${await jwt(signingKey, { exp: '-1m' })}` }), false, 'expired');
  assert.equal(await auth({ authorization: 'Bearer not.a.jwt' }), false);
});

test('allowLoopback: clients on this machine only', async () => {
  const auth = codecAuthenticator({ enabled: true, tokens: [], corsOrigins: [], allowLoopback: true, maxBodyBytes: 1 });
  for (const a of ['127.0.0.1', '::1', '::ffff:127.0.0.1']) assert.equal(await auth({ remoteAddress: a }), true, a);
  for (const a of ['10.0.0.5', '::ffff:192.168.1.2', '172.17.0.1', undefined]) assert.equal(await auth({ ...(a && { remoteAddress: a }) }), false, String(a));
  assert.equal(isLoopback('127.8.9.10'), true);
});
