import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('npm run demo', () => {
  it('runs the job and the four transports, prints the table and exits 0 by itself', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pollkit-demo-'));
    const json = join(dir, 'demo.json');
    try {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', 'scripts/demo.ts', '--events', '8', '--interval', '400', '--json', json],
        { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const started = Date.now();
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(stderr).toBe('');
      expect(code).toBe(0);
      expect(Date.now() - started).toBeLessThan(30_000);

      expect(stdout).toContain('100 %');
      expect(stdout).toMatch(/succeeded after \d+ changes/);
      expect(stdout).toMatch(
        /transport\s+events\s+requests\s+req\/event\s+bytes\s+bytes\/event\s+mean latency\s+p95 latency/,
      );
      for (const transport of ['short polling', 'long polling', 'SSE', 'WebSocket']) {
        expect(stdout).toMatch(new RegExp(`${transport}\\s+8\\s+\\d+`));
      }
      expect(stdout).toContain('examples/chat/server.ts');

      const data = JSON.parse(readFileSync(json, 'utf8')) as {
        figures: { transport: string; events: number; requests: number; bytes: number; meanLatencyMs: number }[];
      };
      const byName = Object.fromEntries(data.figures.map((figure) => [figure.transport, figure]));
      expect(Object.keys(byName)).toEqual(['short polling', 'long polling', 'SSE', 'WebSocket']);
      for (const figure of data.figures) expect(figure.events).toBe(8);
      // The shape of the trade-off, which holds on any machine: one connection for push, and short
      // polling's latency is of the order of its interval while the others deliver at once.
      expect(byName['SSE']!.requests).toBe(1);
      expect(byName['WebSocket']!.requests).toBe(1);
      expect(byName['long polling']!.requests).toBeGreaterThanOrEqual(8);
      expect(byName['short polling']!.meanLatencyMs).toBeGreaterThan(byName['long polling']!.meanLatencyMs);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
