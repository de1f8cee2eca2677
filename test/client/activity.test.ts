import { describe, expect, it } from 'vitest';
import { ActivityGate, type VisibilityLike } from '../../src/client/activity.js';

function fakeDocument(state: 'visible' | 'hidden') {
  const listeners = new Set<() => void>();
  const document: VisibilityLike & {
    visibilityState: string;
    flip(to: string): void;
    readonly listeners: Set<() => void>;
  } = {
    visibilityState: state,
    listeners,
    addEventListener: (_type, listener) => listeners.add(listener),
    removeEventListener: (_type, listener) => listeners.delete(listener),
    flip(to: string) {
      this.visibilityState = to;
      for (const listener of [...listeners]) listener();
    },
  };
  return document;
}

describe('ActivityGate', () => {
  it('is active with no sources, and in Node even when asked to watch', async () => {
    expect(new ActivityGate().active).toBe(true);
    const gate = new ActivityGate({ pauseWhenHidden: true, pauseWhenOffline: true });
    expect(gate.active).toBe(true);
    await gate.whenActive();
  });

  it('waits for visibility and listens only while someone waits', async () => {
    const document = fakeDocument('hidden');
    const gate = new ActivityGate({ pauseWhenHidden: document });
    expect(gate.pauseReason).toBe('hidden');
    expect(document.listeners.size).toBe(0);
    let woke = false;
    const waiting = gate.whenActive().then(() => {
      woke = true;
    });
    expect(document.listeners.size).toBe(1);
    document.flip('hidden');
    await Promise.resolve();
    expect(woke).toBe(false);
    document.flip('visible');
    await waiting;
    expect(woke).toBe(true);
    expect(document.listeners.size).toBe(0);
  });

  it('reports offline before visible, and wakes only when both allow', async () => {
    const document = fakeDocument('visible');
    const events = new Set<() => void>();
    const navigator = { onLine: false };
    const gate = new ActivityGate({
      pauseWhenHidden: document,
      pauseWhenOffline: {
        navigator,
        events: { addEventListener: (_t, l) => events.add(l), removeEventListener: (_t, l) => events.delete(l) },
      },
    });
    expect(gate.pauseReason).toBe('offline');
    const waiting = gate.whenActive();
    document.flip('hidden');
    navigator.onLine = true;
    for (const listener of [...events]) listener();
    expect(gate.pauseReason).toBe('hidden');
    document.flip('visible');
    await waiting;
    expect(events.size).toBe(0);
  });

  it('rejects with the signal reason and removes its listeners on abort', async () => {
    const document = fakeDocument('hidden');
    const gate = new ActivityGate({ pauseWhenHidden: document });
    const controller = new AbortController();
    const waiting = gate.whenActive(controller.signal);
    controller.abort(new Error('gone'));
    await expect(waiting).rejects.toThrow('gone');
    expect(document.listeners.size).toBe(0);
  });
});
