// Reading a /metrics scrape as Prometheus would: the text format parsed by a parser of its own
// (parse-prometheus-text-format), then values looked up by metric name and labels.
import assert from 'node:assert/strict';
import parsePrometheusTextFormat, { type PromFamily, type PromSample } from 'parse-prometheus-text-format';

export class Scrape {
  readonly families = new Map<string, PromFamily>();
  /** Each family's declared type (`# TYPE`), histograms included. */
  readonly types = new Map<string, string>();

  constructor(readonly text: string) {
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) this.types.set(m[1], m[2]);
    // The parser folds a histogram's series into one and drops their labels (its prom2json shape
    // has no place for them), so histograms are parsed as their plain series: name_bucket,
    // name_sum and name_count, each with its labels. Interleaved (all series of one label set,
    // then the next), they come back as several families of one name: merged here.
    const histograms = [...this.types].filter(([, type]) => type === 'histogram').map(([name]) => name);
    const plain = text.replace(/^# (TYPE|HELP) (\S+) .*$/gm, (line, _kind: string, name: string) => (histograms.includes(name) ? '' : line));
    for (const f of parsePrometheusTextFormat(plain)) {
      const seen = this.families.get(f.name);
      if (seen) seen.metrics.push(...f.metrics);
      else this.families.set(f.name, f);
    }
    for (const name of histograms) this.families.set(name, { name, help: '', type: 'HISTOGRAM', metrics: this.families.get(`${name}_count`)?.metrics ?? [] });
  }

  private samples(name: string, labels: Record<string, string>): PromSample[] {
    const family = this.families.get(name);
    if (!family) return [];
    return family.metrics.filter((s) => Object.entries(labels).every(([k, v]) => (s.labels?.[k] ?? '') === v));
  }

  /** Sum of a counter's or gauge's samples matching `labels` (0 without any). */
  value(name: string, labels: Record<string, string> = {}): number {
    return this.samples(name, labels).reduce((n, s) => n + Number(s.value), 0);
  }

  /** A histogram's observations and their sum over the series matching `labels`. */
  histogram(name: string, labels: Record<string, string> = {}): { count: number; sum: number } {
    assert.equal(this.types.get(name) ?? 'histogram', 'histogram', `${name} is a ${this.types.get(name)}`);
    return { count: this.value(`${name}_count`, labels), sum: this.value(`${name}_sum`, labels) };
  }

  /** Every label set of a family (for checking what labels carry). */
  labelSets(name: string): Record<string, string>[] {
    return (this.families.get(name)?.metrics ?? []).map((s) => s.labels ?? {});
  }
}

/** `token`: sent as `Authorization: Bearer <token>` (a metrics token or the admin key). */
export async function scrape(url: string, token?: string): Promise<Scrape> {
  const res = await fetch(url, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200, `GET ${url}`);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return new Scrape(await res.text());
}

/** Metric family names a text exposition declares (`# TYPE` lines), samples or not. */
export function declaredFamilies(text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) \S+$/gm)].map((m) => m[1]));
}
