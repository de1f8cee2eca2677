import { describe, expect, it } from 'vitest';
import {
  type DemoMeasurement,
  renderBarPanels,
  renderHistograms,
  simulateStorm,
  stormChart,
  transportsChart,
} from '../../scripts/render-chart.js';

const demo: DemoMeasurement = {
  measuredAt: '2026-01-01T00:00:00.000Z',
  node: 'v20.0.0',
  events: 10,
  intervalMs: 1000,
  figures: [
    { transport: 'short polling', events: 10, requests: 4, bytes: 3000, meanLatencyMs: 500, p95LatencyMs: 900 },
    { transport: 'SSE <push>', events: 10, requests: 1, bytes: 1200, meanLatencyMs: 2, p95LatencyMs: 4 },
  ],
};

/** Every opening tag is closed, or self-closing: a cheap well-formedness check without a parser. */
function balanced(svg: string): boolean {
  const stack: string[] = [];
  for (const [, closing, name, selfClosing] of svg.matchAll(/<(\/?)([a-z]+)[^>]*?(\/?)>/g)) {
    if (selfClosing === '/') continue;
    if (closing === '/') {
      if (stack.pop() !== name) return false;
    } else stack.push(name!);
  }
  return stack.length === 0;
}

describe('scripts/render-chart', () => {
  it('draws one bar per transport and metric, labelled with its value, text escaped', () => {
    const svg = transportsChart(demo);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(balanced(svg)).toBe(true);
    expect(svg.match(/<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="22"/g)).toHaveLength(2 * 3);
    expect(svg).toContain('>0.40<'); // 4 requests / 10 events
    expect(svg).toContain('>300 B<');
    expect(svg).toContain('>2.0 ms<');
    expect(svg).toContain('SSE &lt;push&gt;');
    expect(svg).not.toContain('SSE <push>');
  });

  it('scales bars to the largest value of their own panel', () => {
    const svg = renderBarPanels({
      title: 't',
      categories: ['a', 'b'],
      panels: [{ title: 'p', format: String, values: [50, 100] }],
    });
    const widths = [...svg.matchAll(/height="22" fill/g)].length;
    expect(widths).toBe(2);
    const [a, b] = [...svg.matchAll(/width="([\d.]+)" height="22"/g)].map((match) => Number(match[1]));
    expect(a! * 2).toBeCloseTo(b!, 0);
  });

  it('simulates the storm deterministically, every client reconnecting once the server is back', () => {
    const first = simulateStorm({ clients: 200, outageMs: 5000, seed: 1 });
    expect(simulateStorm({ clients: 200, outageMs: 5000, seed: 1 })).toEqual(first);
    const byName = Object.fromEntries(first.map((series) => [series.name, series.counts]));
    const fixed = byName['EventSource (fixed 3 s retry, no jitter)']!;
    expect(fixed[30]).toBe(200); // everyone at 3 s
    expect(fixed[60]).toBe(200); // and again at 6 s, when it connects
    expect(fixed.reduce((sum, count) => sum + count, 0)).toBe(400);
    const pollkit = first[0]!.counts;
    expect(Math.max(...pollkit)).toBeLessThan(200 / 10); // spread over the window, no spike
    expect(Math.max(...pollkit)).toBeLessThan(Math.max(...first[1]!.counts)); // the spread beats plain gRPC
  });

  it('renders the storm chart as stacked log-scale histograms with the return marked', () => {
    const svg = stormChart({ clients: 100 });
    expect(balanced(svg)).toBe(true);
    expect(svg).toContain('server back');
    expect(svg.match(/<text[^>]*>1000<\/text>/g)).toHaveLength(5); // a 1–1000 axis per panel
    const empty = renderHistograms({
      title: 'x',
      bucketMs: 100,
      yLabel: 'n',
      series: [{ name: 'none', counts: [0, 0] }],
    });
    expect(empty).not.toMatch(/<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="[\d.]+" fill="#2563eb"/);
  });
});
