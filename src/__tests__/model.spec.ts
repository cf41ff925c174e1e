/** The model with a fake clock, a fake API and a fake application: no browser, no JupyterLab. */
import { Signal } from '@lumino/signaling';

import type { KeepAliveTarget } from '../api';
import { AutoShutdownModel, IAppLike, IAutoShutdownApi, IClock, IVisibility } from '../model';
import type { IKeepAlive, IStatus } from '../types';

class FakeClock implements IClock {
  time = Date.parse('2026-12-01T12:00:00Z');
  private timers = new Map<number, { at: number; every: number | null; callback: () => void }>();
  private next = 1;

  now(): number {
    return this.time;
  }
  setTimeout(callback: () => void, ms: number): number {
    this.timers.set(this.next, { at: this.time + ms, every: null, callback });
    return this.next++;
  }
  clearTimeout(handle: number | undefined): void {
    if (handle !== undefined) {
      this.timers.delete(handle);
    }
  }
  setInterval(callback: () => void, ms: number): number {
    this.timers.set(this.next, { at: this.time + ms, every: ms, callback });
    return this.next++;
  }
  clearInterval(handle: number | undefined): void {
    this.clearTimeout(handle);
  }
  pending(): number {
    return this.timers.size;
  }
  /** Move time forward, running each timer that comes due, in order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) {
        break;
      }
      const [handle, timer] = due;
      this.time = timer.at;
      if (timer.every === null) {
        this.timers.delete(handle);
      } else {
        timer.at += timer.every;
      }
      timer.callback();
    }
    this.time = end;
  }
}

function status(overrides: Partial<IStatus> = {}): IStatus {
  return {
    now: '',
    running: true,
    keep_alive_until: null,
    kernels: [],
    terminals: [],
    settings: { idle_timeout_minutes: 60 } as IStatus['settings'],
    app: { action: 'none', action_at: null } as unknown as IStatus['app'],
    ...overrides
  };
}

/** An API whose answers the test releases one by one. */
class FakeApi implements IAutoShutdownApi {
  calls: string[] = [];
  pendingStatus: Array<(value: IStatus) => void> = [];
  failNext = false;

  getStatus(): Promise<IStatus> {
    this.calls.push('getStatus');
    return new Promise(resolve => this.pendingStatus.push(resolve));
  }
  canWrite(): Promise<boolean> {
    this.calls.push('canWrite');
    return Promise.resolve(true);
  }
  keepAlive(minutes: number, target: KeepAliveTarget = {}): Promise<IKeepAlive> {
    this.calls.push(`keepAlive ${minutes} ${JSON.stringify(target)}`);
    return this.answer();
  }
  cancelKeepAlive(target: KeepAliveTarget = {}): Promise<IKeepAlive> {
    this.calls.push(`cancelKeepAlive ${JSON.stringify(target)}`);
    return this.answer();
  }
  shutDownKernel(kernelId: string): Promise<void> {
    this.calls.push(`shutDownKernel ${kernelId}`);
    return this.answer().then(() => undefined);
  }
  shutDownTerminal(name: string): Promise<void> {
    this.calls.push(`shutDownTerminal ${name}`);
    return this.answer().then(() => undefined);
  }
  patchSettings(changes: Record<string, unknown>): Promise<unknown> {
    this.calls.push(`patchSettings ${JSON.stringify(changes)}`);
    return this.answer();
  }
  resetSettings(field: string): Promise<unknown> {
    this.calls.push(`resetSettings ${field}`);
    return this.answer();
  }
  private answer(): Promise<IKeepAlive> {
    if (this.failNext) {
      this.failNext = false;
      return Promise.reject(new Error('refused'));
    }
    return Promise.resolve({ keep_alive_until: null, max_minutes: 60, kernels: {}, terminals: {} });
  }
  /** Answer the oldest status request still open. */
  release(value: IStatus): void {
    this.pendingStatus.shift()!(value);
  }
}

class FakeVisibility implements IVisibility {
  isHidden = false;
  listeners: Array<() => void> = [];
  hidden(): boolean {
    return this.isHidden;
  }
  onChange(callback: () => void): () => void {
    this.listeners.push(callback);
    return () => (this.listeners = this.listeners.filter(l => l !== callback));
  }
  set(hidden: boolean): void {
    this.isHidden = hidden;
    this.listeners.forEach(listener => listener());
  }
}

function fakeApp(): IAppLike {
  const owner = {};
  return {
    serviceManager: {
      events: { stream: new Signal(owner) },
      sessions: { runningChanged: new Signal(owner), running: () => [] }
    },
    shell: { currentWidget: null, widgets: () => [] }
  };
}

// Lets pending promise callbacks run (a few turns of the microtask queue).
const settle = async (): Promise<void> => {
  for (let i = 0; i < 10; i++) {
    await Promise.resolve();
  }
};

function setup() {
  const clock = new FakeClock();
  const api = new FakeApi();
  const visibility = new FakeVisibility();
  const model = new AutoShutdownModel(fakeApp(), api, clock, visibility);
  return { clock, api, visibility, model };
}

describe('AutoShutdownModel', () => {
  it('does nothing before start(): no request, no timer', () => {
    const { api, clock } = setup();
    expect(api.calls).toEqual([]);
    expect(clock.pending()).toBe(0);
  });

  it('fetches at start, then again at the next deadline', async () => {
    const { api, clock, model } = setup();
    model.start();
    expect(api.calls).toEqual(['canWrite', 'getStatus']);
    const deadline = new Date(clock.now() + 10_000).toISOString();
    api.release(status({ kernels: [{ id: 'k', shutdown_at: deadline } as IStatus['kernels'][0]] }));
    await settle();
    expect(model.status?.kernels[0].id).toBe('k');
    clock.advance(9_000);
    expect(api.calls.filter(c => c === 'getStatus')).toHaveLength(1);
    clock.advance(1_000);
    expect(api.calls.filter(c => c === 'getStatus')).toHaveLength(2);
    model.dispose();
  });

  it('applies answers in the order of their requests: an older one never overwrites a newer one', async () => {
    const { api, model } = setup();
    model.start();
    const second = model.refresh();
    // The second request is answered first, then the first (older) one.
    api.pendingStatus.reverse();
    api.release(status({ keep_alive_until: 'newer' }));
    api.release(status({ keep_alive_until: 'older' }));
    await second;
    await settle();
    expect(model.status?.keep_alive_until).toBe('newer');
    model.dispose();
  });

  it('does not poll while the page is hidden, and fetches when it is shown again', async () => {
    const { api, clock, visibility, model } = setup();
    visibility.set(true);
    model.start();
    api.release(status());
    await settle();
    clock.advance(120_000);
    expect(api.calls.filter(c => c === 'getStatus')).toHaveLength(1);
    visibility.set(false);
    expect(api.calls.filter(c => c === 'getStatus')).toHaveLength(2);
    model.dispose();
  });

  it('ticks once a second for countdowns without a data change', async () => {
    const { api, clock, model } = setup();
    let ticks = 0;
    let changes = 0;
    model.ticked.connect(() => ticks++);
    model.changed.connect(() => changes++);
    model.start();
    api.release(status());
    await settle();
    const changesBefore = changes;
    clock.advance(3_000);
    expect(ticks).toBe(3);
    expect(changes).toBe(changesBefore);
    model.dispose();
  });

  it('runs commands through the API and refreshes after, a refusal included', async () => {
    const { api, model } = setup();
    model.start();
    api.release(status());
    await settle();
    const keeping = model.keepAlive(30, { kernel_id: 'k' });
    await settle();
    api.release(status());
    await keeping;
    expect(api.calls).toContain('keepAlive 30 {"kernel_id":"k"}');
    api.failNext = true;
    const refused = model.shutDownKernel('k');
    await settle();
    api.release(status());
    await expect(refused).rejects.toThrow('refused');
    const saving = model.saveSettings({ idle_timeout_minutes: 45 });
    await settle();
    api.release(status());
    await saving;
    expect(api.calls.filter(c => c === 'getStatus')).toHaveLength(4);
    expect(api.calls).toContain('patchSettings {"idle_timeout_minutes":45}');
    model.dispose();
  });

  it('stops everything when disposed', async () => {
    const { api, clock, model } = setup();
    let ticks = 0;
    model.ticked.connect(() => ticks++);
    model.start();
    api.release(status());
    await settle();
    model.dispose();
    expect(model.isDisposed).toBe(true);
    expect(clock.pending()).toBe(0);
    clock.advance(60_000);
    expect(ticks).toBe(0);
    await model.refresh();
    expect(api.calls.filter(c => c === 'getStatus')).toHaveLength(1);
  });
});
