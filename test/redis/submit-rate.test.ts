/**
 * The retention sweep keeps pace through Redis: a child process submits to itself at a steady rate
 * with 1 s retention; the store (the jobs index in Redis) never holds more than 2 × rate × (retention
 * + sweep interval). One process on the 2-core CI machine completes about 2,000 jobs/s through the
 * Redis store (each job is three Lua scripts and their notices), so the rate here is 1,500/s; the
 * 5,000/s run with the in-memory store is in the soak suite.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSubmitter } from '../helpers/child/run-submitter.js';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

describe('the retention sweep through Redis', () => {
  it('holds at most 2 × rate × (retention + sweep interval) jobs at 1,500 submits/s for 10 s', async () => {
    const rate = 1500;
    const report = await runSubmitter({
      STORE: 'redis',
      REDIS_URL: redis.url,
      KEY_PREFIX: 'rate:',
      RATE: String(rate),
      SECONDS: '10',
    });
    console.log('submit-rate (Redis store):', JSON.stringify(report));
    expect(report.refused).toBe(0);
    expect(report.rate).toBeGreaterThan(rate * 0.9);
    expect(report.most).toBeLessThanOrEqual(2 * rate * (1 + 1));
    expect(report.left).toBe(0);
  }, 60_000);
});
