// Temporal's two PostgreSQL databases, created and brought up to the server version's schema with
// its own schema tool, exactly as docker-compose.yml's temporal-schema service does. Every step is
// idempotent: an existing database is kept, setup-schema leaves a versioned schema alone, and
// update-schema applies only the missing versions.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The databases and their schema folders under schema/postgresql/v12 (the compose file uses the same). */
export const TEMPORAL_DATABASES = [
  { name: 'temporal', schema: 'temporal' },
  { name: 'temporal_visibility', schema: 'visibility' },
] as const;

export interface SchemaTarget {
  /** temporal-sql-tool */
  sqlTool: string;
  /** The module's schema/postgresql/v12 folder. */
  schemaDir: string;
  host: string;
  port: number;
  user: string;
  password?: string;
}

export async function setUpTemporalSchema(t: SchemaTarget): Promise<void> {
  for (const db of TEMPORAL_DATABASES) {
    const base = ['--plugin', 'postgres12', '--ep', t.host, '-p', String(t.port), '-u', t.user, '--db', db.name];
    const steps = [['create-database'], ['setup-schema', '-v', '0.0'], ['update-schema', '-d', join(t.schemaDir, db.schema, 'versioned')]];
    for (const step of steps) {
      try {
        await run(t.sqlTool, [...base, ...step], { env: { ...process.env, ...(t.password && { SQL_PASSWORD: t.password }) }, maxBuffer: 16 * 1024 * 1024 });
      } catch (err) {
        const e = err as { stderr?: string; stdout?: string; message: string };
        throw new Error(`temporal-sql-tool ${step[0]} (${db.name}) failed: ${(e.stderr || e.stdout || e.message).slice(-2_000)}`);
      }
    }
  }
}
