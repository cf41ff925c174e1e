/** The Running sidebar's auto-shutdown section, on a fake model: no browser, no JupyterLab. */
import type { LabIcon } from '@jupyterlab/ui-components';
import { Signal } from '@lumino/signaling';

import { IRunningSource, runningManager } from '../running';
import type { IResourceStatus, IStatus } from '../types';

const NOW = Date.parse('2026-12-01T12:00:00Z');
const at = (seconds: number) => new Date(NOW + seconds * 1000).toISOString();
const clock = (iso: string) => {
  const date = new Date(iso);
  return `${String(date.getHours()).padStart(2, '0')}:${String(date.getMinutes()).padStart(2, '0')}`;
};

function kernel(id: string, overrides: Partial<IResourceStatus> = {}): IResourceStatus {
  return {
    id,
    name: 'python3',
    execution_state: 'idle',
    idle_seconds: 60,
    seconds_until_shutdown: 600,
    shutdown_at: at(600),
    reason: `idle since ${at(-60)}`,
    ...overrides
  };
}

class FakeModel implements IRunningSource {
  status: IStatus | null = null;
  readonly changed = new Signal<this, void>(this);
  calls: string[] = [];
  refuse = false;
  open = new Map<string, { widget: { id: string } }>();
  now(): number {
    return NOW;
  }
  describeKernel(kernelId: string): string {
    return { a: 'a.ipynb', b: 'work/b.ipynb' }[kernelId] ?? `python3 ${kernelId}`;
  }
  documentOf(kernelId: string) {
    return this.open.get(kernelId);
  }
  async refresh(): Promise<void> {
    this.calls.push('refresh');
  }
  async shutDownKernel(kernelId: string): Promise<void> {
    this.calls.push(`shutDown ${kernelId}`);
    if (this.refuse) {
      throw new Error('403: Forbidden');
    }
  }
  show(kernels: IResourceStatus[], keepAll: string | null = null): void {
    this.status = { kernels, keep_alive_until: keepAll } as IStatus;
    this.changed.emit();
  }
}

function setup() {
  const model = new FakeModel();
  const seen = { activated: [] as string[], panels: 0, failures: [] as string[] };
  const icon = { name: 'autoshutdown' } as unknown as LabIcon;
  const manager = runningManager(model, {
    icon,
    activate: id => seen.activated.push(id),
    openPanel: () => seen.panels++,
    failed: message => seen.failures.push(message)
  });
  return { model, manager, seen, icon };
}

const settle = async () => {
  for (let i = 0; i < 5; i++) {
    await Promise.resolve();
  }
};

describe('the Running sidebar section', () => {
  it('lists nothing before the status is read', () => {
    const { manager } = setup();
    expect(manager.running({ mode: 'list' })).toEqual([]);
    expect(manager.name).toBe('Auto-shutdown');
  });

  it('shows each kernel by its notebook, with when auto-shutdown stops it', () => {
    const { model, manager, icon } = setup();
    model.show([
      kernel('a'),
      kernel('b', { keep_alive_until: at(3600) }),
      kernel('c', { execution_state: 'busy', shutdown_at: null }),
      kernel('d', { exempt: true, reason: 'exempt by name' }),
      kernel('e', { shutdown_at: at(-1) })
    ]);
    const rows = manager.running({ mode: 'list' });
    expect(rows.map(row => [row.label(), row.detail!()])).toEqual([
      ['a.ipynb', `stops at ${clock(at(600))}`],
      ['work/b.ipynb', `kept until ${clock(at(3600))}`],
      ['python3 c', 'busy'],
      ['python3 d', 'exempt'],
      ['python3 e', 'stopping now']
    ]);
    expect(rows[0].icon()).toBe(icon);
    // The reason on hover, its time in local time.
    const title = rows[0].labelTitle!();
    expect(title).toMatch(/^a\.ipynb: stops at \d\d:\d\d\. Stops at \d\d:\d\d:\d\d unless it is used\. idle since \d\d:\d\d:\d\d$/);
  });

  it('says when everything is kept alive', () => {
    const { model, manager } = setup();
    model.show([kernel('a')], at(1800));
    expect(manager.running({ mode: 'list' })[0].detail!()).toBe(`kept until ${clock(at(1800))}`);
  });

  it('changes when the model does, and refreshes it on request', () => {
    const { model, manager } = setup();
    let changes = 0;
    manager.runningChanged.connect(() => changes++);
    model.show([kernel('a')]);
    expect(changes).toBe(1);
    manager.refreshRunning();
    expect(model.calls).toEqual(['refresh']);
  });

  it('opens the notebook using a kernel, or the panel for a kernel no tab here uses', () => {
    const { model, manager, seen } = setup();
    model.open.set('a', { widget: { id: 'notebook-a' } });
    model.show([kernel('a'), kernel('x')]);
    const [a, x] = manager.running({ mode: 'list' });
    a.open!();
    x.open!();
    expect(seen.activated).toEqual(['notebook-a']);
    expect(seen.panels).toBe(1);
  });

  it('shuts a kernel down, or all of them, and says when it cannot', async () => {
    const { model, manager, seen } = setup();
    model.show([kernel('a'), kernel('b')]);
    manager.running({ mode: 'list' })[1].shutdown!();
    manager.shutdownAll();
    await settle();
    expect(model.calls).toEqual(['shutDown b', 'shutDown a', 'shutDown b']);
    expect(seen.failures).toEqual([]);
    model.refuse = true;
    manager.running({ mode: 'list' })[0].shutdown!();
    await settle();
    expect(seen.failures).toEqual(['The kernel could not be shut down: 403: Forbidden']);
  });
});
