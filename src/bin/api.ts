// `npm run api`: the API role alone, against the Temporal server at TEMPORAL_ADDRESS.
import { startApi } from '../api/server.js';
import { apiConfigOrExit } from '../config/load.js';

const config = apiConfigOrExit();
const api = await startApi(config, { address: config.temporalAddress });
console.log(`keel api listening on ${api.url}`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void api.close().then(() => process.exit(0));
  });
}
