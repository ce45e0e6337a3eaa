// GET /status: per-provider uptime and latency over the last 30 minutes, drawn as inline SVG on
// the server (no chart library, no script: the page works wherever HTML does).
import type { SeriesPoint } from '../core/health-types.js';
import type { HealthLabel, ProviderView, ProvidersView, TargetView } from '../services/health-view.js';

const W = 600;
const H = 90;
const PAD_LEFT = 44;
const COLOURS: Record<HealthLabel, string> = { healthy: '#16a34a', degraded: '#d97706', down: '#dc2626', unknown: '#9ca3af' };

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const pct = (v: number | null | undefined) => (v === null || v === undefined ? '–' : `${(v * 100).toFixed(v === 1 ? 0 : 1)}%`);
const msText = (v: number | null | undefined) => (v === null || v === undefined ? '–' : v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${v} ms`);
const clock = (t: number) => new Date(t).toISOString().slice(11, 16);

function uptimeColour(uptime: number): string {
  if (uptime >= 0.99) return COLOURS.healthy;
  if (uptime >= 0.9) return '#84cc16';
  if (uptime >= 0.5) return COLOURS.degraded;
  return COLOURS.down;
}

/** One bar per minute: height and colour from the share of calls that succeeded; grey = no calls. */
function uptimeChart(id: string, series: SeriesPoint[]): string {
  const plotW = W - PAD_LEFT;
  const slot = plotW / Math.max(1, series.length);
  const bars = series
    .map((p, i) => {
      const x = PAD_LEFT + i * slot + 1;
      const title = `${clock(p.t)} UTC: ${p.uptime === null ? 'no calls' : `${pct(p.uptime)} of ${p.ok + p.failures} calls`}`;
      if (p.uptime === null) {
        return `<rect class="bar empty" x="${x.toFixed(1)}" y="${H - 6}" width="${(slot - 2).toFixed(1)}" height="4" fill="#e5e7eb"><title>${esc(title)}</title></rect>`;
      }
      const h = Math.max(4, (H - 10) * p.uptime);
      return `<rect class="bar" data-uptime="${p.uptime.toFixed(4)}" data-calls="${p.calls}" x="${x.toFixed(1)}" y="${(H - 2 - h).toFixed(1)}" width="${(slot - 2).toFixed(1)}" height="${h.toFixed(1)}" rx="1.5" fill="${uptimeColour(p.uptime)}"><title>${esc(title)}</title></rect>`;
    })
    .join('');
  const axis = `<text x="0" y="12" class="axis">100%</text><text x="0" y="${H - 2}" class="axis">0%</text>`;
  return `<svg class="chart uptime-chart" data-target="${esc(id)}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="uptime of ${esc(id)}">${axis}${bars}</svg>`;
}

/** p50 and p95 latency per minute, on a shared scale; minutes without calls break the line. */
function latencyChart(id: string, series: SeriesPoint[]): string {
  const max = Math.max(10, ...series.map((p) => p.p95Ms ?? 0));
  const plotW = W - PAD_LEFT;
  const slot = plotW / Math.max(1, series.length);
  const y = (v: number) => H - 4 - (H - 14) * (v / max);
  const line = (pick: (p: SeriesPoint) => number | null, cls: string, colour: string) => {
    const segments: string[][] = [[]];
    series.forEach((p, i) => {
      const v = pick(p);
      if (v === null) {
        if (segments[segments.length - 1].length > 0) segments.push([]);
        return;
      }
      segments[segments.length - 1].push(`${(PAD_LEFT + i * slot + slot / 2).toFixed(1)},${y(v).toFixed(1)}`);
    });
    return segments
      .filter((s) => s.length > 0)
      .map((s) =>
        s.length === 1
          ? `<circle class="${cls}" cx="${s[0].split(',')[0]}" cy="${s[0].split(',')[1]}" r="2.5" fill="${colour}"/>`
          : `<polyline class="${cls}" points="${s.join(' ')}" fill="none" stroke="${colour}" stroke-width="2" stroke-linejoin="round"/>`,
      )
      .join('');
  };
  const axis = `<text x="0" y="12" class="axis">${esc(msText(Math.round(max)))}</text><text x="0" y="${H - 2}" class="axis">0</text><line x1="${PAD_LEFT}" y1="${H - 4}" x2="${W}" y2="${H - 4}" stroke="#e5e7eb"/>`;
  const points = series.filter((p) => p.p50Ms !== null).length;
  return `<svg class="chart latency-chart" data-target="${esc(id)}" data-points="${points}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="latency of ${esc(id)}">${axis}${line((p) => p.p95Ms, 'p95', '#f97316')}${line((p) => p.p50Ms, 'p50', '#2563eb')}</svg>`;
}

function badge(health: HealthLabel, text: string = health): string {
  return `<span class="badge" style="background:${COLOURS[health]}">${esc(text)}</span>`;
}

function targetRow(t: TargetView): string {
  const s = t.stats?.['1m'];
  const breaker = t.breaker.state === 'closed' ? 'closed' : `${t.breaker.state.replace('_', '-')}${t.breaker.reason ? `: ${t.breaker.reason}` : ''}`;
  const price = t.pricing ? `$${t.pricing.input} / $${t.pricing.output}` : '–';
  return `<tr class="target" data-target="${esc(t.id)}" data-breaker="${t.breaker.state}"><td>${esc(t.model)}</td><td>${badge(t.health)}</td><td>${esc(breaker)}</td><td>${pct(s?.success_rate)}</td><td>${msText(s?.p50_ms)}</td><td>${msText(s?.p95_ms)}</td><td>${s?.tokens_per_sec ?? '–'}</td><td>${price}</td></tr>`;
}

function providerCard(p: ProviderView): string {
  const series = p.series ?? [];
  const s30 = p.stats?.['30m'];
  const s1 = p.stats?.['1m'];
  return `<section class="provider" data-provider="${esc(p.id)}" data-health="${p.health}">
<header><h2>${esc(p.id)} <small>${esc(p.type)}</small></h2>${badge(p.health)}</header>
<dl><div><dt>Uptime (30 min)</dt><dd class="uptime-30m">${pct(s30?.success_rate)}</dd></div><div><dt>p50 / p95 (1 min)</dt><dd>${msText(s1?.p50_ms)} / ${msText(s1?.p95_ms)}</dd></div><div><dt>Requests / min</dt><dd>${s1?.requests_per_min ?? 0}</dd></div><div><dt>Calls (30 min)</dt><dd>${s30?.calls ?? 0}</dd></div></dl>
<h3>Uptime per minute</h3>${uptimeChart(p.id, series)}
<h3>Latency per minute <span class="legend"><i style="background:#2563eb"></i>p50 <i style="background:#f97316"></i>p95</span></h3>${latencyChart(p.id, series)}
<div class="span">${series.length > 0 ? `${clock(series[0].t)} – ${clock(series[series.length - 1].t)} UTC` : ''}</div>
<table><thead><tr><th>Model</th><th>Health</th><th>Breaker</th><th>Success (1 min)</th><th>p50</th><th>p95</th><th>Tokens/s</th><th>Price in/out per 1M</th></tr></thead><tbody>${p.targets.map(targetRow).join('')}</tbody></table>
</section>`;
}

export function renderStatusPage(view: ProvidersView): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10"><title>Keel – provider status</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#111827;background:#f9fafb}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:0}h2 small{color:#6b7280;font-weight:normal}h3{font-size:12px;color:#6b7280;margin:14px 0 4px;font-weight:600}
.provider{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:16px;margin:16px 0;max-width:${W + 40}px}
header{display:flex;justify-content:space-between;align-items:center}
.badge{color:#fff;border-radius:10px;padding:1px 8px;font-size:12px}
dl{display:flex;gap:24px;margin:10px 0}dt{color:#6b7280;font-size:12px}dd{margin:0;font-weight:600}
.axis{font-size:10px;fill:#6b7280}.span{color:#9ca3af;font-size:11px;text-align:right}
.legend i{display:inline-block;width:10px;height:3px;margin:0 3px 2px 8px;vertical-align:middle}
table{border-collapse:collapse;width:100%;margin-top:10px;font-size:12px}th,td{text-align:left;padding:4px 6px;border-top:1px solid #f3f4f6}th{color:#6b7280;font-weight:600}
</style></head><body>
<h1>Provider status</h1><div class="updated">Updated ${new Date(view.updated_at).toISOString().replace('T', ' ').slice(0, 19)} UTC · last 30 minutes, one bar per minute</div>
${view.data.map(providerCard).join('\n')}
</body></html>`;
}
