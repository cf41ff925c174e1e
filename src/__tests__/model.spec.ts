/** The model with a fake clock, a fake API and a fake application: no browser, no JupyterLab. */
import type { Event } from '@jupyterlab/services';
import { Signal } from '@lumino/signaling';

import type { KeepAliveTarget } from '../api';
import { AutoShutdownModel, EVENT_SCHEMA, IAppLike, IAutoShutdownApi, IClock, IVisibility } from '../model';
import type { IKeepAlive, IStatus } from '../types';

/**
 * The model's clock on jest's fake timers, which also drive Lumino's Poll and Throttler (they use
 * the platform's setTimeout and Date).
 */
const fakeClock: IClock = {
  now: () => Date.now(),
  setInterval: (callback, ms) => setInterval(callback, ms) as unknown as number,
  clearInterval: handle => clearInterval(handle)
};

/** Move time forward by `ms`, running the timers that come due and the promises they settle. */
const advance = (ms: number): Promise<void> => jest.advanceTimersByTimeAsync(ms);

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
  /** When each status request was made (ms since the epoch, by the fake timers). */
  statusTimes: number[] = [];
  pendingStatus: Array<(value: IStatus) => void> = [];
  failNext = false;
  /** Every status request fails at once (the server is down). */
  statusFails = false;

  getStatus(): Promise<IStatus> {
    this.calls.push('getStatus');
    this.statusTimes.push(Date.now());
    if (this.statusFails) {
      return Promise.reject(new Error('unreachable'));
    }
    return new Promise(resolve => this.pendingStatus.push(resolve));
  }
  statusCalls(): number {
    return this.statusTimes.length;
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

// Lets what is due now run: the poll's immediate ticks, and the promises they settle.
const settle = (): Promise<void> => advance(0);

function setup() {
  const api = new FakeApi();
  const visibility = new FakeVisibility();
  const app = fakeApp();
  const model = new AutoShutdownModel(app, api, fakeClock, visibility);
  return { api, visibility, model, app };
}

beforeEach(() => {
  jest.useFakeTimers({ now: Date.parse('2026-12-01T12:00:00Z') });
});

afterEach(() => {
  jest.useRealTimers();
  jest.restoreAllMocks();
});

const kernelDue = (at: number) => ({ id: 'k', shutdown_at: new Date(at).toISOString() }) as IStatus['kernels'][0];

describe('AutoShutdownModel', () => {
  it('does nothing before start(): no request, no timer', async () => {
    const { api, model } = setup();
    model.scheduleRefresh();
    await model.refresh();
    await advance(60_000);
    expect(api.calls).toEqual([]);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('fetches at start, then again at the next deadline', async () => {
    const { api, model } = setup();
    model.start();
    await settle();
    expect(api.calls).toEqual(['canWrite', 'getStatus']);
    api.release(status({ kernels: [kernelDue(Date.now() + 10_000)] }));
    await settle();
    expect(model.status?.kernels[0].id).toBe('k');
    await advance(9_000);
    expect(api.statusCalls()).toBe(1);
    await advance(1_000);
    expect(api.statusCalls()).toBe(2);
    model.dispose();
  });

  it('looks again at most every 30 s when nothing is due sooner', async () => {
    const { api, model } = setup();
    model.start();
    await settle();
    api.release(status());
    await settle();
    await advance(29_999);
    expect(api.statusCalls()).toBe(1);
    await advance(1);
    expect(api.statusCalls()).toBe(2);
    model.dispose();
  });

  it('applies only the latest request: an older answer never overwrites a newer one', async () => {
    const { api, model } = setup();
    model.start();
    await settle();
    const second = model.refresh();
    await settle();
    expect(api.pendingStatus).toHaveLength(2);
    // The second request is answered first, then the first (older) one.
    api.pendingStatus.reverse();
    api.release(status({ keep_alive_until: 'newer' }));
    await second;
    api.release(status({ keep_alive_until: 'older' }));
    await settle();
    expect(model.status?.keep_alive_until).toBe('newer');
    model.dispose();
  });

  it('drops the answer of a superseded request even when it comes first', async () => {
    const { api, model } = setup();
    model.start();
    await settle();
    const second = model.refresh();
    await settle();
    api.release(status({ keep_alive_until: 'older' }));
    await settle();
    expect(model.status).toBeNull();
    api.release(status({ keep_alive_until: 'newer' }));
    await second;
    expect(model.status?.keep_alive_until).toBe('newer');
    model.dispose();
  });

  it('does not poll while the page is hidden, and fetches when it is shown again', async () => {
    const { api, visibility, model } = setup();
    visibility.set(true);
    model.start();
    await settle();
    api.release(status());
    await settle();
    await advance(120_000);
    expect(api.statusCalls()).toBe(1);
    visibility.set(false);
    await settle();
    expect(api.statusCalls()).toBe(2);
    model.dispose();
  });

  it('stops polling when the page is hidden, but still asks when something changes', async () => {
    const { api, app, visibility, model } = setup();
    model.start();
    await settle();
    api.release(status());
    await settle();
    visibility.set(true);
    await advance(120_000);
    expect(api.statusCalls()).toBe(1);
    // The server's event (a warning, a cull) in a background tab: its warning must show.
    (app.serviceManager.events.stream as Signal<unknown, Event.Emission>).emit({
      schema_id: EVENT_SCHEMA,
      event: 'warning',
      kind: 'kernel'
    } as unknown as Event.Emission);
    await settle();
    expect(api.statusCalls()).toBe(2);
    api.release(status());
    await advance(120_000);
    expect(api.statusCalls()).toBe(2);
    model.dispose();
  });

  it('shows the status as unavailable when the server does not answer, and backs off', async () => {
    jest.spyOn(Math, 'random').mockReturnValue(0.5); // Lumino's jitter, made repeatable
    const { api, model } = setup();
    model.start();
    await settle();
    // Answered, with a deadline in 1 s (the poll looks again then); from then on, no answer.
    api.release(status({ kernels: [kernelDue(Date.now() + 1_000)] }));
    await settle();
    api.statusFails = true;
    await advance(1_000);
    expect(model.status).toBeNull();
    for (let minute = 0; minute < 30; minute++) {
      await advance(60_000);
    }
    const times = api.statusTimes.slice(1);
    const gaps = times.slice(1).map((time, i) => time - times[i]);
    // Longer and longer waits from about 5 s (not the 1 s of the last answer) up to 5 minutes:
    // 15 requests in 30 minutes where a fixed 30 s poll makes 60.
    expect(gaps[0]).toBeGreaterThanOrEqual(3_000);
    expect(gaps.slice(1).every((gap, i) => gap >= gaps[i] && gap >= 5_000)).toBe(true);
    expect(gaps[gaps.length - 1]).toBe(300_000);
    expect(api.statusCalls()).toBeLessThan(20);
    // The server answers again: the status shows, and the poll is back to its pace.
    api.statusFails = false;
    const refreshing = model.refresh();
    await settle();
    api.release(status());
    await refreshing;
    expect(model.status).not.toBeNull();
    const answered = api.statusCalls();
    await advance(30_000);
    expect(api.statusCalls()).toBe(answered + 1);
    model.dispose();
  });

  it('makes one request for a burst of changes', async () => {
    const { api, model } = setup();
    model.start();
    await settle();
    api.release(status());
    await settle();
    model.scheduleRefresh();
    await advance(100);
    model.scheduleRefresh();
    model.scheduleRefresh();
    expect(api.statusCalls()).toBe(1);
    // 150 ms after the first change; then the poll's immediate tick (jest's fake timers make a
    // 0 ms timeout set inside a timer 1 ms).
    await advance(51);
    expect(api.statusCalls()).toBe(2);
    await advance(1_000);
    expect(api.statusCalls()).toBe(2);
    // A change while that request is in flight is not lost: it asks again.
    model.scheduleRefresh();
    await advance(151);
    expect(api.statusCalls()).toBe(3);
    model.dispose();
  });

  it('ticks once a second for countdowns without a data change', async () => {
    const { api, model } = setup();
    let ticks = 0;
    let changes = 0;
    model.ticked.connect(() => ticks++);
    model.changed.connect(() => changes++);
    model.start();
    await settle();
    api.release(status());
    await settle();
    const changesBefore = changes;
    await advance(3_000);
    expect(ticks).toBe(3);
    expect(changes).toBe(changesBefore);
    model.dispose();
  });

  it('runs commands through the API and refreshes after, a refusal included', async () => {
    const { api, model } = setup();
    model.start();
    await settle();
    api.release(status());
    await settle();
    const keeping = model.keepAlive(30, { kernel_id: 'k' });
    await settle();
    api.release(status({ keep_alive_until: 'kept' }));
    await keeping;
    expect(model.status?.keep_alive_until).toBe('kept');
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
    expect(api.statusCalls()).toBe(4);
    expect(api.calls).toContain('patchSettings {"idle_timeout_minutes":45}');
    model.dispose();
  });

  it('stops everything when disposed', async () => {
    const { api, model } = setup();
    let ticks = 0;
    model.ticked.connect(() => ticks++);
    model.start();
    await settle();
    api.release(status());
    await settle();
    model.scheduleRefresh();
    model.dispose();
    expect(model.isDisposed).toBe(true);
    await advance(60_000);
    expect(ticks).toBe(0);
    expect(api.statusCalls()).toBe(1);
    expect(jest.getTimerCount()).toBe(0); // nothing re-arms
    await model.refresh();
    model.scheduleRefresh();
    await advance(1_000);
    expect(api.statusCalls()).toBe(1);
  });
});
