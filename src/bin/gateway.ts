// `npm run gateway`: the API and a worker in one process against the Temporal server at
// TEMPORAL_ADDRESS — the production role for interactive traffic, scaled horizontally beside
// pure workers (`npm run worker`). See README, "Roles and commands".
import { apiConfigOrExit } from '../config/load.js';
import { installRuntime } from '../worker/temporal-runtime.js';
import { GatewayProcess } from './gateway-process.js';

const config = apiConfigOrExit();
const runtime = await installRuntime({ metrics: config.telemetry.metrics.enabled && config.telemetry.metrics.temporal });
const gateway = new GatewayProcess(config, runtime);
let stopping = false;
async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  await gateway.stop().catch((err) => console.error(`keel gateway: while stopping: ${(err as Error).message}`));
  process.exit(code);
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
try {
  const api = await gateway.start(config.temporalAddress, () => {
    if (stopping) throw new Error('stopped during start-up');
  });
  gateway.running?.catch((err) => {
    console.error(`keel gateway: a worker failed: ${(err as Error).stack ?? err}`);
    void stop(1);
  });
  console.log(`keel gateway listening on ${api.url} (worker polling ${config.taskQueue})`);
} catch (err) {
  if (!stopping) console.error(`keel gateway: could not start: ${(err as Error).stack ?? err}`);
  await stop(1);
}
