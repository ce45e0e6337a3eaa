// The Temporal UI shows a request's decrypted input through Keel's codec server, driven in
// headless Chromium (playwright-core with Debian's /usr/bin/chromium, as the status-page test):
// the dev server's UI runs with `--ui-codec-endpoint` pointing at Keel's /codec. The codec
// server wants a bearer token; the UI forwards its signed-in user's token (passAccessToken),
// which the dev server's UI, having no sign-in, cannot: the browser adds it here instead. Without
// it the UI gets a 401 and shows the ciphertext.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startFakeProvider, type FakeProvider } from '../dev/fakes/index.js';
import { callJson } from './helpers/http.js';
import { freePort } from './helpers/processes.js';
import { startKeel, startTemporal, type KeelUnderTest } from './helpers/temporal.js';
import { launchChromium } from './helpers/chromium.js';

const PROMPT = `ui-prompt-canary-${randomBytes(6).toString('hex')}`;
const TOKEN = randomBytes(24).toString('base64url');

let env: TestWorkflowEnvironment;
let fake: FakeProvider;
let keel: KeelUnderTest;
let uiUrl = '';
let requestId = '';

before(async () => {
  const [uiPort, apiPort] = [await freePort(), await freePort()];
  uiUrl = `http://127.0.0.1:${uiPort}`;
  env = await startTemporal({ uiPort, extraArgs: ['--ui-codec-endpoint', `http://127.0.0.1:${apiPort}/codec`] });
  fake = await startFakeProvider({ type: 'openai' });
  keel = await startKeel(
    env,
    `
temporal: { uiUrl: ${uiUrl} }
providers:
  a: { type: openai, baseURL: ${fake.url} }
models:
  chat: { targets: [a/m] }
codec:
  enabled: true
  keys: [{ id: k1, key: "\${K1}" }]
  server: { tokens: ["\${TOKEN}"] }
`,
    { env: { K1: randomBytes(32).toString('base64'), TOKEN }, port: apiPort },
  );
  const { res } = await callJson(keel.url, 'POST', '/v1/chat/completions', { model: 'chat', messages: [{ role: 'user', content: PROMPT }] });
  assert.equal(res.status, 200);
  requestId = res.headers.get('x-request-id')!;
});

after(async () => {
  await keel?.stop();
  await fake?.close();
  await env?.teardown();
});

test('the Temporal UI shows the decoded input through the codec server, and ciphertext without its token', async (t) => {
  const browser = await launchChromium();
  if (!browser) return t.skip('chromium is not installed (npm test installs it)');
  try {
    const view = async (token: boolean) => {
      const page = await browser.newPage({ viewport: { width: 1400, height: 2000 } });
      const codecCalls: number[] = [];
      await page.route(`${keel.url}/codec/**`, async (route) => {
        const headers = { ...route.request().headers(), ...(token && { authorization: `Bearer ${TOKEN}` }) };
        const response = await route.fetch({ headers });
        if (route.request().method() === 'POST') codecCalls.push(response.status());
        await route.fulfill({ response });
      });
      await page.goto(`${uiUrl}/namespaces/default/workflows/${encodeURIComponent(requestId)}`);
      await page.getByText('Result', { exact: true }).first().waitFor({ timeout: 30_000 });
      // The UI decodes payloads as it renders them; give it until a codec call has answered.
      const deadline = Date.now() + 30_000;
      while (codecCalls.length === 0 && Date.now() < deadline) await page.waitForTimeout(200);
      await page.waitForTimeout(1_000);
      const text = await page.locator('body').innerText();
      const html = await page.content();
      await page.close();
      return { text, html, codecCalls };
    };

    const decoded = await view(true);
    assert.ok(decoded.codecCalls.includes(200), `codec calls: ${decoded.codecCalls.join(', ')}`);
    assert.ok(decoded.text.includes(PROMPT), 'the prompt is shown decoded');

    const refused = await view(false);
    assert.ok(refused.codecCalls.length > 0 && refused.codecCalls.every((s) => s === 401), `codec calls: ${refused.codecCalls.join(', ')}`);
    assert.ok(!refused.html.includes(PROMPT), 'the prompt is not shown');
    assert.match(refused.text, /Codec Server could not connect/);
    // The input box shows the stored ciphertext: the start event's payload data, as base64.
    const history = await keel.api.client.workflow.getHandle(requestId).fetchHistory();
    const stored = Buffer.from(history.events![0].workflowExecutionStartedEventAttributes!.input!.payloads![0].data!).toString('base64');
    assert.ok(refused.text.replace(/\s/g, '').includes(stored.slice(0, 60)), 'the ciphertext is shown');
  } finally {
    await browser.close();
  }
});
