// `npm run worker`: the worker role alone (request workflows + one activity worker per provider).
import { NativeConnection } from '@temporalio/worker';
import { installRuntime } from '../worker/temporal-runtime.js';
import { loadConfigOrExit } from '../config/load.js';
import { createKeelWorkers, runKeelWorkers } from '../worker/workers.js';
import { bundleWorkflows } from '../worker/workflow-bundle.js';
import { bundleOptionsFor } from '../codec/data-converter.js';

const config = loadConfigOrExit();
installRuntime();
const connection = await NativeConnection.connect({ address: config.temporalAddress });
const { workers } = await createKeelWorkers({ connection, config, workflowBundle: await bundleWorkflows(bundleOptionsFor(config.codec)) });
console.log(`keel worker polling ${config.taskQueue} and ${Object.keys(config.providers).length} provider queue(s)`);
// Worker.run() shuts down on SIGINT/SIGTERM by itself, finishing the calls in flight.
await runKeelWorkers(workers);
await connection.close();
