/**
 * Charts for the guides, rendered as SVG from measured or simulated data — never drawn by hand, so a
 * new measurement redraws the picture with one command.
 *
 * ```sh
 * # the transport comparison, from the demo's own measurement
 * npm run demo -- --json .bench-results/demo.json
 * node --import tsx scripts/render-chart.ts transports .bench-results/demo.json docs/img/transports.svg
 * # the reconnect storm: 1,000 clients, the server back after 5 s (simulated, seeded)
 * node --import tsx scripts/render-chart.ts storm docs/img/reconnect-storm.svg
 * ```
 *
 * The storm is simulated with the very {@link ReconnectSchedule} pollkit's `Subscriber` runs, beside
 * the published schedules of other clients (the same ones bench/storm.ts reproduces), on virtual time.
 *
 * @module
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { ReconnectSchedule, backoff, seededRandom } from 'pollkit/client';

// ---- SVG primitives -------------------------------------------------------------------------------

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, sans-serif"';
const COLORS = ['#2563eb', '#16a34a', '#d97706', '#dc2626', '#7c3aed', '#0891b2'] as const;

/** Escapes text for SVG content and attributes. */
function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Rounds coordinates so the SVG stays small and byte-stable across runs. */
const r = (value: number): string => String(Math.round(value * 10) / 10);

function text(x: number, y: number, content: string, attributes = ''): string {
  return `<text x="${r(x)}" y="${r(y)}" ${attributes}>${esc(content)}</text>`;
}

function svg(width: number, height: number, title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12" role="img" aria-label="${esc(title)}">`,
    `<title>${esc(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

// ---- horizontal bar panels (one metric each) ------------------------------------------------------

/** One panel of {@link renderBarPanels}: a metric, one bar per category. */
export interface BarPanel {
  readonly title: string;
  /** Formats a value for its label, e.g. `(v) => \`${v} ms\``. */
  readonly format: (value: number) => string;
  readonly values: readonly number[];
}

/** What {@link renderBarPanels} draws. */
export interface BarPanelsSpec {
  readonly title: string;
  readonly subtitle?: string;
  /** The bars' names, in order; each panel has one value per category. */
  readonly categories: readonly string[];
  readonly panels: readonly BarPanel[];
}

/**
 * Renders side-by-side horizontal bar charts that share their categories (small multiples), each
 * with its own linear scale and every bar labelled with its value.
 *
 * @example
 * ```ts
 * const chart = renderBarPanels({
 *   title: 'Cost per event',
 *   categories: ['short', 'long'],
 *   panels: [{ title: 'requests', format: (v) => v.toFixed(2), values: [0.2, 1] }],
 * });
 * ```
 */
export function renderBarPanels(spec: BarPanelsSpec): string {
  const labelWidth = 110;
  const panelWidth = 230;
  const gap = 24;
  const barHeight = 22;
  const barGap = 10;
  const top = spec.subtitle === undefined ? 56 : 74;
  const width = labelWidth + spec.panels.length * (panelWidth + gap);
  const plotHeight = spec.categories.length * (barHeight + barGap);
  const height = top + 30 + plotHeight + 16;
  const body: string[] = [text(16, 28, spec.title, 'font-size="17" font-weight="600" fill="#111"')];
  if (spec.subtitle !== undefined) body.push(text(16, 50, spec.subtitle, 'fill="#555"'));
  spec.categories.forEach((category, row) => {
    const y = top + 30 + row * (barHeight + barGap) + barHeight / 2 + 4;
    body.push(text(labelWidth - 10, y, category, 'text-anchor="end" fill="#222"'));
  });
  spec.panels.forEach((panel, index) => {
    const x0 = labelWidth + index * (panelWidth + gap);
    const max = Math.max(...panel.values, Number.MIN_VALUE);
    const valueRoom = 70; // keep the longest bar's label inside the panel
    body.push(text(x0, top + 14, panel.title, 'font-weight="600" fill="#222"'));
    body.push(`<line x1="${r(x0)}" y1="${top + 22}" x2="${r(x0)}" y2="${top + 26 + plotHeight}" stroke="#999"/>`);
    panel.values.forEach((value, row) => {
      const y = top + 30 + row * (barHeight + barGap);
      const length = Math.max(1, (value / max) * (panelWidth - valueRoom));
      const color = COLORS[row % COLORS.length]!;
      body.push(`<rect x="${r(x0)}" y="${r(y)}" width="${r(length)}" height="${barHeight}" fill="${color}" rx="2"/>`);
      body.push(text(x0 + length + 6, y + barHeight / 2 + 4, panel.format(value), 'fill="#222"'));
    });
  });
  return svg(width, height, spec.title, body);
}

// ---- stacked histograms on a log scale (one series each) ------------------------------------------

/** One panel of {@link renderHistograms}: counts per time bucket. */
export interface HistogramSeries {
  readonly name: string;
  readonly counts: readonly number[];
  /** A short note printed at the panel's right, e.g. the peak. */
  readonly note?: string;
}

/** What {@link renderHistograms} draws. */
export interface HistogramSpec {
  readonly title: string;
  readonly subtitle?: string;
  /** The width of one bucket, in milliseconds. */
  readonly bucketMs: number;
  /** A vertical marker, e.g. when the server came back. */
  readonly marker?: { readonly atMs: number; readonly label: string };
  /** The label of the y axis. */
  readonly yLabel: string;
  readonly series: readonly HistogramSeries[];
}

/**
 * Renders one histogram per series, stacked on a shared time axis and a shared logarithmic count
 * axis (1 to 1,000), so a spike of a thousand and a spread of forty read on the same page.
 *
 * @example
 * ```ts
 * const chart = renderHistograms({ title: 'Attempts', bucketMs: 100, yLabel: 'per 100 ms', series: [{ name: 'fixed', counts: [0, 1000, 0] }] });
 * ```
 */
export function renderHistograms(spec: HistogramSpec): string {
  const left = 210;
  const right = 130;
  const plotWidth = 600;
  const panelHeight = 70;
  const panelGap = 14;
  const top = spec.subtitle === undefined ? 50 : 68;
  const buckets = Math.max(...spec.series.map((series) => series.counts.length));
  const width = left + plotWidth + right;
  const height = top + spec.series.length * (panelHeight + panelGap) + 44;
  const maxCount = Math.max(1000, ...spec.series.flatMap((series) => series.counts));
  const logMax = Math.log10(maxCount) + 0.05;
  const yOf = (count: number, base: number): number =>
    base + panelHeight - (count <= 0 ? 0 : ((Math.log10(count) + 0.3) / (logMax + 0.3)) * panelHeight);
  const xOf = (ms: number): number => left + (ms / (buckets * spec.bucketMs)) * plotWidth;
  const body: string[] = [text(16, 28, spec.title, 'font-size="17" font-weight="600" fill="#111"')];
  if (spec.subtitle !== undefined) body.push(text(16, 48, spec.subtitle, 'fill="#555"'));

  spec.series.forEach((series, index) => {
    const base = top + index * (panelHeight + panelGap);
    const color = COLORS[index % COLORS.length]!;
    body.push(
      `<rect x="${left}" y="${r(base)}" width="${plotWidth}" height="${panelHeight}" fill="#f8fafc" stroke="#e2e8f0"/>`,
    );
    for (const tick of [1, 10, 100, 1000]) {
      const y = yOf(tick, base);
      body.push(`<line x1="${left}" y1="${r(y)}" x2="${left + plotWidth}" y2="${r(y)}" stroke="#e2e8f0"/>`);
      body.push(text(left - 6, y + 4, String(tick), 'text-anchor="end" font-size="10" fill="#64748b"'));
    }
    const barWidth = plotWidth / buckets;
    series.counts.forEach((count, bucket) => {
      if (count <= 0) return;
      const y = yOf(count, base);
      body.push(
        `<rect x="${r(left + bucket * barWidth)}" y="${r(y)}" width="${r(Math.max(barWidth - 0.3, 0.8))}" height="${r(base + panelHeight - y)}" fill="${color}"/>`,
      );
    });
    const words = series.name.split(' ');
    const lines: string[] = [];
    for (const word of words) {
      const last = lines.at(-1);
      if (last !== undefined && `${last} ${word}`.length <= 28) lines[lines.length - 1] = `${last} ${word}`;
      else lines.push(word);
    }
    lines.forEach((line, n) => body.push(text(16, base + 18 + n * 15, line, 'fill="#222"')));
    if (series.note !== undefined)
      body.push(text(left + plotWidth + 8, base + 18, series.note, 'font-size="11" fill="#444"'));
  });

  const axisY = top + spec.series.length * (panelHeight + panelGap) - panelGap + 16;
  const totalMs = buckets * spec.bucketMs;
  const step = totalMs <= 15_000 ? 1000 : 5000;
  for (let ms = 0; ms <= totalMs; ms += step) {
    body.push(text(xOf(ms), axisY, `${ms / 1000} s`, 'text-anchor="middle" font-size="10" fill="#64748b"'));
  }
  body.push(
    text(left + plotWidth / 2, axisY + 18, 'time since the connections dropped', 'text-anchor="middle" fill="#444"'),
  );
  body.push(text(left - 6, top - 8, spec.yLabel, 'text-anchor="end" font-size="10" fill="#64748b"'));
  if (spec.marker !== undefined) {
    const x = xOf(spec.marker.atMs);
    const bottom = top + spec.series.length * (panelHeight + panelGap) - panelGap;
    body.push(
      `<line x1="${r(x)}" y1="${top - 4}" x2="${r(x)}" y2="${r(bottom)}" stroke="#dc2626" stroke-dasharray="4 3"/>`,
    );
    body.push(text(x + 4, top - 6, spec.marker.label, 'font-size="11" fill="#dc2626"'));
  }
  return svg(width, height, spec.title, body);
}

// ---- data: the demo's transport measurement -------------------------------------------------------

/** The JSON `npm run demo -- --json FILE` writes. */
export interface DemoMeasurement {
  readonly measuredAt: string;
  readonly node: string;
  readonly events: number;
  readonly intervalMs: number;
  readonly figures: readonly {
    readonly transport: string;
    readonly events: number;
    readonly requests: number;
    readonly bytes: number;
    readonly meanLatencyMs: number;
    readonly p95LatencyMs: number;
  }[];
}

/**
 * The transport comparison chart from a demo measurement.
 *
 * @example
 * ```ts
 * const chart = transportsChart(JSON.parse(readFileSync('.bench-results/demo.json', 'utf8')));
 * ```
 */
export function transportsChart(data: DemoMeasurement): string {
  const perEvent = (value: number, events: number): number => value / Math.max(1, events);
  return renderBarPanels({
    title: 'One stream, four transports: what each delivered event cost',
    subtitle: `${data.events} events at irregular 50–350 ms gaps; short polling every ${data.intervalMs} ms; measured by npm run demo (Node ${data.node})`,
    categories: data.figures.map((figure) => figure.transport),
    panels: [
      {
        title: 'HTTP requests per event',
        format: (v) => v.toFixed(2),
        values: data.figures.map((figure) => perEvent(figure.requests, figure.events)),
      },
      {
        title: 'bytes on the wire per event',
        format: (v) => `${Math.round(v)} B`,
        values: data.figures.map((figure) => perEvent(figure.bytes, figure.events)),
      },
      {
        title: 'mean latency (append → delivery)',
        format: (v) => (v < 10 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`),
        values: data.figures.map((figure) => figure.meanLatencyMs),
      },
    ],
  });
}

// ---- data: the reconnect storm, simulated ---------------------------------------------------------

/** Options for {@link simulateStorm}. */
export interface StormOptions {
  /** How many clients lose their connection at t = 0. Default `1000`. */
  readonly clients?: number;
  /** When the server accepts connections again, in milliseconds. Default `5000`. */
  readonly outageMs?: number;
  /** How long to watch, in milliseconds. Default `12000`. */
  readonly horizonMs?: number;
  /** The histogram's bucket, in milliseconds. Default `100`. */
  readonly bucketMs?: number;
  /** Seed of the random numbers. Default `42`. */
  readonly seed?: number;
}

/** A client's reconnect schedule: the delay before attempt n (1-based) after the drop. */
type DelayFn = (attempt: number) => number;

/**
 * Simulates `clients` clients reconnecting after a drop, with the server refusing every attempt
 * before `outageMs`; returns attempts per bucket for each schedule.
 *
 * @example
 * ```ts
 * const series = simulateStorm({ clients: 1000, outageMs: 5000 });
 * console.log(series.map((s) => `${s.name}: peak ${Math.max(...s.counts)}`));
 * ```
 */
export function simulateStorm(options: StormOptions = {}): HistogramSeries[] {
  const clients = options.clients ?? 1000;
  const outageMs = options.outageMs ?? 5000;
  const horizonMs = options.horizonMs ?? 12_000;
  const bucketMs = options.bucketMs ?? 100;
  const random = seededRandom(options.seed ?? 42);

  const run = (name: string, makeClient: () => DelayFn): HistogramSeries => {
    const counts = new Array<number>(Math.ceil(horizonMs / bucketMs)).fill(0);
    for (let client = 0; client < clients; client++) {
      const delay = makeClient();
      let t = 0;
      for (let attempt = 1; t < horizonMs; attempt++) {
        t += delay(attempt);
        if (t >= horizonMs) break;
        counts[Math.floor(t / bucketMs)]!++;
        if (t >= outageMs) break; // connected
      }
    }
    const peak = Math.max(...counts);
    return { name, counts, note: `peak ${peak} / ${bucketMs} ms` };
  };

  // Module-level defaults are drawn once per process in reconnecting-websocket and partysocket.
  const sharedMin = 1000 + random() * 4000;
  return [
    run('pollkit Subscriber default (4.6 s first-reconnect spread, reconnectBackoff)', () => {
      const schedule = new ReconnectSchedule({ random });
      return () => schedule.next();
    }),
    run('pollkit, plain gRPC backoff (spreadMs: 0)', () => {
      const schedule = new ReconnectSchedule({ random, spreadMs: 0 });
      return () => schedule.next();
    }),
    run(
      'reconnecting-websocket / partysocket (min delay drawn once per process)',
      () => (attempt) => Math.min(10_000, sharedMin * 1.3 ** (attempt - 1)),
    ),
    run('EventSource (fixed 3 s retry, no jitter)', () => () => 3000),
    run('full jitter (AWS), 1 s base, ×2', () => {
      const policy = backoff({ strategy: 'full', initial: 1000, factor: 2, max: 30_000 });
      return (attempt) => policy.delay(attempt - 1, undefined, random);
    }),
  ];
}

/**
 * The reconnect-storm chart.
 *
 * @example
 * ```ts
 * writeFileSync('docs/img/reconnect-storm.svg', stormChart());
 * ```
 */
export function stormChart(options: StormOptions = {}): string {
  const outageMs = options.outageMs ?? 5000;
  const clients = options.clients ?? 1000;
  return renderHistograms({
    title: `Reconnect storm: ${clients.toLocaleString('en')} clients drop at once, the server is back after ${outageMs / 1000} s`,
    subtitle: 'connection attempts per 100 ms (log scale); simulated, seeded, with the schedules each client publishes',
    bucketMs: options.bucketMs ?? 100,
    yLabel: 'attempts',
    marker: { atMs: outageMs, label: 'server back' },
    series: simulateStorm(options),
  });
}

// ---- command line ---------------------------------------------------------------------------------

function main(argv: readonly string[]): void {
  const [kind, ...rest] = argv;
  if (kind === 'transports' && rest.length === 2) {
    const data = JSON.parse(readFileSync(rest[0]!, 'utf8')) as DemoMeasurement;
    writeFileSync(rest[1]!, transportsChart(data));
    console.log(`wrote ${rest[1]!}`);
  } else if (kind === 'storm' && rest.length === 1) {
    writeFileSync(rest[0]!, stormChart());
    console.log(`wrote ${rest[0]!}`);
  } else {
    console.error('usage: render-chart.ts transports <demo.json> <out.svg> | storm <out.svg>');
    process.exitCode = 2;
  }
}

if (import.meta.url === new URL(`file://${process.argv[1] ?? ''}`).href) main(process.argv.slice(2));
