/**
 * The retention sweep keeps pace: 5,000 submits a second for 20 s with 1 s retention, in a child
 * process with the in-memory store; the store never holds more than 2 × rate × (retention + sweep
 * interval). (The Redis suite runs the same with the Redis store at the rate one process reaches
 * through Redis on the CI machine.)
 */
import { describe, expect, it } from 'vitest';
import { runSubmitter } from '../helpers/child/run-submitter.js';

describe('the retention sweep under a steady submit rate', () => {
  it('holds at most 2 × rate × (retention + sweep interval) jobs at 5,000 submits/s for 20 s', async () => {
    const rate = 5000;
    const report = await runSubmitter({ RATE: String(rate), SECONDS: '20' });
    console.log('submit-rate (memory store):', JSON.stringify(report));
    expect(report.refused).toBe(0);
    expect(report.rate).toBeGreaterThan(rate * 0.95);
    expect(report.most).toBeLessThanOrEqual(2 * rate * (1 + 1));
    expect(report.left).toBe(0);
  }, 60_000);
});
