// `npm run temporal:install-server`: prints the Temporal server's and schema tool's paths, building
// them from the Go module on first use (src/temporal/server-install.ts).
import { ensureTemporalServer } from '../temporal/server-install.js';

const tools = ensureTemporalServer();
console.log(`${tools.server}\n${tools.sql}\n${tools.postgresSchemaDir}`);
