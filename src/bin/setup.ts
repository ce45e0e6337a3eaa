// `npm run setup`: prepares a Temporal cluster for Keel (src/temporal/setup.ts).
//   npm run setup -- [--address host:port] [--namespace NS] [--retention 7d]
//       creates the namespace (with that retention; an existing one's is changed only when
//       --retention or KEEL_NAMESPACE_RETENTION is given) and registers Keel's search attributes.
//       Defaults: TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE, else KEEL_CONFIG's temporal section.
//   npm run setup -- --dynamic-config FILE
//       writes the Temporal server's dynamic config for KEEL_CONFIG's providers to FILE (or - for
//       stdout); point the server's dynamicConfigClient.filepath at it. Needs no server.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfigOrExit } from '../config/load.js';
import { clusterDynamicConfigYaml } from '../temporal/dynamic-config.js';
import { DEFAULT_RETENTION, parseRetention, setUpKeelNamespace } from '../temporal/setup.js';

const USAGE = 'usage: npm run setup -- [--address host:port] [--namespace NS] [--retention 7d] | --dynamic-config FILE';

let values;
try {
  ({ values } = parseArgs({
    options: {
      address: { type: 'string' },
      namespace: { type: 'string' },
      retention: { type: 'string' },
      'dynamic-config': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (err) {
  console.error(`keel setup: ${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

const config = loadConfigOrExit();
if (values['dynamic-config']) {
  const text = clusterDynamicConfigYaml(Object.keys(config.providers));
  if (values['dynamic-config'] === '-') process.stdout.write(text);
  else {
    writeFileSync(values['dynamic-config'], text);
    console.log(`keel setup: wrote ${values['dynamic-config']} (${Object.keys(config.providers).length} provider queue(s))`);
  }
  process.exit(0);
}

const retentionText = values.retention ?? process.env.KEEL_NAMESPACE_RETENTION;
try {
  const address = values.address ?? config.temporalAddress;
  const namespace = values.namespace ?? config.namespace;
  const result = await setUpKeelNamespace({
    address,
    namespace,
    retentionSeconds: parseRetention(retentionText ?? DEFAULT_RETENTION),
    updateRetention: retentionText !== undefined,
    log: (line) => console.log(`keel setup: ${line}`),
  });
  console.log(`keel setup: ${address} namespace ${namespace} is ready for Keel${result.namespaceCreated ? ' (new)' : ''}`);
} catch (err) {
  console.error(`keel setup: ${(err as Error).message}`);
  process.exit(1);
}
