// The one OpenAI-compatible fake every target calls (0 ms unless told otherwise): `dev/fakes/cli.ts` in a process of its
// own, like the external fake a user puts behind `npm start`, so its work shares no event loop
// with the load generator or the in-process floors. With no latency setting the fake answers
// on the next timer tick (setTimeout 0, ~1 ms): the "direct" row shows what that costs. With
// `latencyMs` it answers that much later, as a provider that takes time to generate.
import { startProcess, type Child } from './children.js';
import { ROOT } from './paths.js';

export interface ExternalFake {
  /** The OpenAI SDK's base URL: http://127.0.0.1:PORT/v1 */
  url: string;
  child: Child;
}

export async function startExternalFake(latencyMs = 0): Promise<ExternalFake> {
  const args = ['--import', 'tsx', 'dev/fakes/cli.ts', '--type', 'openai', '--host', '127.0.0.1', '--port', '0', ...(latencyMs > 0 ? ['--latency-ms', String(latencyMs)] : [])];
  const child = startProcess('fake provider', process.execPath, args, { cwd: ROOT });
  await child.waitFor(/^http:\/\/127\.0\.0\.1:\d+\/v1$/m, 60_000);
  const url = /^(http:\/\/127\.0\.0\.1:\d+\/v1)$/m.exec(child.output())![1];
  return { url, child };
}
