// The worker-side Temporal runtime's logging: warnings and errors only, without the notices
// that every provider-only worker prints by design (it runs activities, no workflows).
import { DefaultLogger, Runtime, type LogEntry } from '@temporalio/worker';

const EXPECTED = [/^No workflows registered/, /^No Nexus services registered/];

export function installRuntime(level: 'DEBUG' | 'INFO' | 'WARN' | 'ERROR' = (process.env.KEEL_LOG_LEVEL as 'WARN') ?? 'WARN'): void {
  Runtime.install({
    logger: new DefaultLogger(level, (entry: LogEntry) => {
      if (EXPECTED.some((re) => re.test(entry.message))) return;
      const line = `${new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString()} [${entry.level}] ${entry.message}`;
      (entry.level === 'ERROR' || entry.level === 'WARN' ? console.error : console.log)(line, entry.meta ?? '');
    }),
  });
}
