import OpenAI from 'openai';
import { startFakeProvider } from '../src/fakes/index.js';
import { startKeel, startTemporal } from '../test/helpers/temporal.js';
const env = await startTemporal();
const fake = await startFakeProvider({ type: 'openai' });
const keel = await startKeel(env, `providers:\n  a: { type: openai, baseURL: ${fake.url} }\nmodels:\n  chat: { targets: [a/m] }\n`);
const c = new OpenAI({ baseURL: `${keel.url}/v1`, apiKey: 'x', maxRetries: 0 });
for (let i=0;i<15;i++) {
  const t0 = performance.now();
  const { response } = await c.chat.completions.create({ model: 'chat', messages: [{ role: 'user', content: 'x' }] }).withResponse();
  const total = performance.now() - t0;
  const h = await env.client.workflow.getHandle(response.headers.get('x-request-id')!).fetchHistory();
  const ts = h.events!.map(e => Number(e.eventTime!.seconds) * 1000 + e.eventTime!.nanos! / 1e6);
  if (i >= 5) console.log('total', total.toFixed(1), 'history', (ts.at(-1)! - ts[0]).toFixed(1), h.events!.map((e,i)=> `${e.eventType}@${(ts[i]-ts[0]).toFixed(0)}`).join(' '));
}
await keel.stop(); await fake.close(); await env.teardown();
