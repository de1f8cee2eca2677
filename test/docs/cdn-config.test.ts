import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DOCUMENTED_NGINX, pollkitNginxHttp } from '../helpers/nginx.js';

const guide = readFileSync(new URL('../../docs/cdn.md', import.meta.url), 'utf8');

describe('docs/cdn.md', () => {
  it('shows the very nginx configuration the shared-cache suite and bench:cdn run', () => {
    const block = /```nginx\n([\s\S]*?)```/.exec(guide)?.[1];
    expect(block).toBe(pollkitNginxHttp(DOCUMENTED_NGINX));
  });

  it('derives the lock and read timeouts from the wait cap', () => {
    const config = pollkitNginxHttp({ ...DOCUMENTED_NGINX, maxWaitSeconds: 60, prefix: '/api/v1.poll' });
    expect(config).toContain('proxy_cache_lock_timeout 69s;');
    expect(config).toContain('proxy_cache_lock_age 69s;');
    expect(config).toContain('proxy_read_timeout 89s;');
    expect(config).toContain('location ~ ^/api/v1\\.poll/topics/[^/]+/records$ {');
  });
});
