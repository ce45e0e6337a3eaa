// Where a webhook may go. Checked twice: by the API at submit time (the URL as written → 400),
// and by the delivery activity after DNS resolution (every resolved address, the connection then
// pinned to a checked address so a second lookup cannot rebind it → non-retryable failure).
// Refused unless configured: loopback, private, link-local, CGNAT and reserved ranges; cloud
// metadata endpoints and the Temporal frontend stay refused even with allowPrivate, unless an
// allowedHosts entry names them exactly.
import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import type { WebhookSettings } from '../config/schema.js';

export class WebhookDestinationError extends Error {
  override name = 'WebhookDestinationError';
}

export interface DestinationPolicy {
  allowPrivate: boolean;
  allowedHosts: string[];
  /** host:port of the Temporal frontend. */
  temporalAddress: string;
}

export function destinationPolicy(webhooks: WebhookSettings, temporalAddress: string): DestinationPolicy {
  return { allowPrivate: webhooks.allowPrivate, allowedHosts: webhooks.allowedHosts, temporalAddress };
}

const METADATA_HOSTS = new Set(['metadata.google.internal', 'metadata.goog', 'metadata']);
const METADATA_ADDRESSES = new Set(['169.254.169.254', 'fd00:ec2::254']);

const nonPublic = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network", 0.0.0.0
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // CGNAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local (and metadata)
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  nonPublic.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128], // unspecified
  ['::1', 128],
  ['fc00::', 7], // unique local (fd00:ec2::254 included)
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
  ['64:ff9b::', 96], // NAT64 can reach IPv4 private space
] as const) {
  nonPublic.addSubnet(net, prefix, 'ipv6');
}

/** ::ffff:10.0.0.1 is 10.0.0.1. */
function normalizeAddress(address: string): string {
  const a = address.toLowerCase().replace(/^\[|\]$/g, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  return mapped ? mapped[1] : a;
}

function splitHostPort(address: string): { host: string; port?: number } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(address);
  if (v6) return { host: normalizeAddress(v6[1]), ...(v6[2] && { port: Number(v6[2]) }) };
  if (isIP(address) === 6) return { host: normalizeAddress(address) };
  const i = address.lastIndexOf(':');
  if (i > 0 && /^\d+$/.test(address.slice(i + 1))) return { host: address.slice(0, i).toLowerCase(), port: Number(address.slice(i + 1)) };
  return { host: address.toLowerCase() };
}

function isNonPublic(address: string): boolean {
  const a = normalizeAddress(address);
  const family = isIP(a);
  if (family === 4) return nonPublic.check(a, 'ipv4');
  if (family === 6) return nonPublic.check(a, 'ipv6');
  return false;
}

function defaultPort(url: URL): number {
  return url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
}

/** An allowedHosts entry names this host (name or address), either without a port or with exactly this port. */
function listed(policy: DestinationPolicy, names: string[], port: number, exactPortOnly = false): boolean {
  const wanted = new Set(names.map(normalizeAddress));
  return policy.allowedHosts.some((entry) => {
    const { host, port: p } = splitHostPort(entry.trim());
    if (!wanted.has(normalizeAddress(host))) return false;
    return p === undefined ? !exactPortOnly : p === port;
  });
}

/** The frontend's host as written and, for localhost, the loopback addresses it stands for. */
function frontendNames(policy: DestinationPolicy): { names: string[]; port: number } {
  const { host, port } = splitHostPort(policy.temporalAddress);
  const names = [host];
  if (host === 'localhost') names.push('127.0.0.1', '::1');
  return { names, port: port ?? 7233 };
}

/**
 * The reason this destination is refused, or undefined. `addresses` are what the host resolved
 * to (empty at submit time for a host name); each is checked.
 */
export function refusal(url: URL, policy: DestinationPolicy, addresses: string[] = [], frontendAddresses: string[] = []): string | undefined {
  const host = normalizeAddress(url.hostname);
  const port = defaultPort(url);
  const names = [host, ...addresses.map(normalizeAddress)];

  const frontend = frontendNames(policy);
  const frontendSet = new Set([...frontend.names, ...frontendAddresses.map(normalizeAddress)]);
  if (port === frontend.port && names.some((n) => frontendSet.has(n)) && !listed(policy, names, port, true)) {
    return 'the Temporal frontend is not a webhook destination';
  }
  const metadata = METADATA_HOSTS.has(host) || names.some((n) => METADATA_ADDRESSES.has(n));
  if (metadata) return listed(policy, names, port) ? undefined : 'cloud metadata endpoints are not webhook destinations';

  const local = host === 'localhost' || host.endsWith('.localhost') || names.some(isNonPublic);
  if (local && !policy.allowPrivate && !listed(policy, names, port)) {
    return 'private, loopback and link-local addresses are not webhook destinations (see webhooks.allowPrivate / allowedHosts)';
  }
  return undefined;
}

/** Submit-time check of the URL as written: scheme, credentials, literal addresses and names. */
export function checkWebhookUrl(raw: string, policy: DestinationPolicy): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WebhookDestinationError('webhook.url is not a valid URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new WebhookDestinationError('webhook.url must be http or https');
  if (url.username || url.password) throw new WebhookDestinationError('webhook.url must not contain credentials');
  const reason = refusal(url, policy);
  if (reason) throw new WebhookDestinationError(`webhook.url refused: ${reason}`);
  return url;
}

export type Resolver = (host: string) => Promise<string[]>;

export const systemResolver: Resolver = async (host) => (await dnsLookup(host, { all: true, verbatim: true })).map((a) => a.address);

/**
 * Delivery-time check: resolves the host (and the frontend's host) and checks every address.
 * Returns the address to connect to.
 */
export async function resolveWebhookDestination(url: URL, policy: DestinationPolicy, resolve: Resolver = systemResolver): Promise<string> {
  const literal = normalizeAddress(url.hostname);
  const addresses = isIP(literal) ? [literal] : await resolve(url.hostname);
  if (addresses.length === 0) throw new Error(`webhook host ${url.hostname} did not resolve`);
  const frontendHost = frontendNames(policy).names[0];
  const frontendAddresses = isIP(frontendHost) ? [] : await resolve(frontendHost).catch(() => []);
  const reason = refusal(url, policy, addresses, frontendAddresses);
  if (reason) throw new WebhookDestinationError(`webhook.url refused after DNS resolution: ${reason}`);
  return addresses[0];
}
