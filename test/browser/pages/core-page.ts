import { Backoff, backoff, retry, sleep, systemClock } from 'pollkit';

const report: Record<string, unknown> = {};
(window as unknown as { __pollkit: Record<string, unknown> }).__pollkit = report;

const policy = backoff({ strategy: 'full', initial: 1000 });
report['firstDelays'] = Array.from({ length: 1000 }, () => new Backoff(policy, () => systemClock.random()).next());

const controller = new AbortController();
setTimeout(() => controller.abort(new DOMException('left the page', 'AbortError')), 10);
report['aborted'] = await sleep(10_000, { signal: controller.signal }).then(
  () => 'resolved',
  (error: unknown) => (error as Error).name,
);

let attempts = 0;
report['retried'] = await retry(
  async () => {
    attempts++;
    const response = await fetch('/flaky');
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.text();
  },
  { retries: 5, policy: backoff({ initial: 10, max: 50 }) },
);
report['attempts'] = attempts;
report['done'] = true;
