// Free loopback ports for the processes of a local cluster.
import { createServer } from 'node:net';

function tryListen(port: number, host: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(undefined));
    s.listen(port, host, () => {
      const bound = (s.address() as { port: number }).port;
      s.close(() => resolve(bound));
    });
  });
}

/**
 * A port nothing listens on now, below the ephemeral range (32768 and up on Linux). A port the OS
 * hands out for `listen(0)` comes from the range it also gives outgoing connections: between the
 * check and the server's own bind, any client on the machine may take it ("address in use").
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [port] = await freeLowPorts(1, host);
  return port;
}

/**
 * Free ports below 32768, none of them in `taken`. The Temporal server stores each service's
 * membership port in a SMALLINT column of its SQL schema: an ephemeral port (32768 and up) makes
 * it fail at start ("value ... is out of range for type smallint").
 */
export async function freeLowPorts(count: number, host = '127.0.0.1', taken: Set<number> = new Set()): Promise<number[]> {
  const ports: number[] = [];
  for (let tries = 0; ports.length < count; tries++) {
    if (tries > 2_000) throw new Error(`no ${count} free ports below 32768 on ${host}`);
    const candidate = 20_000 + Math.floor(Math.random() * 12_000);
    if (taken.has(candidate) || ports.includes(candidate)) continue;
    if ((await tryListen(candidate, host)) !== undefined) ports.push(candidate);
  }
  return ports;
}
