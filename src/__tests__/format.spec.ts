import {
  formatDuration,
  IStatus,
  nextRefreshDelay,
  shouldWarn,
  statusText
} from '../format';

const NOW = Date.parse('2026-11-22T12:00:00Z');
const at = (seconds: number) => new Date(NOW + seconds * 1000).toISOString();

function status(overrides: Partial<IStatus> = {}): IStatus {
  return {
    now: at(0),
    running: true,
    settings: {
      idle_timeout_minutes: 120,
      keep_terminals: false,
      warning_seconds: 300,
      max_keep_alive_minutes: 720
    },
    keep_alive_until: null,
    kernels: [],
    terminals: [],
    app: { action: 'none', action_at: null, reason: 'no app action configured' },
    ...overrides
  };
}

const kernel = (shutdownIn: number | null, extra = {}) => ({
  id: 'k1',
  name: 'python3',
  execution_state: 'idle',
  idle_seconds: 10,
  seconds_until_shutdown: shutdownIn,
  shutdown_at: shutdownIn === null ? null : at(shutdownIn),
  warning_at: shutdownIn === null ? null : at(shutdownIn - 300),
  reason: 'idle',
  ...extra
});

describe('formatDuration', () => {
  it.each([
    [0, '0 s'],
    [0.2, '1 s'],
    [59, '59 s'],
    [60, '1 min'],
    [61, '2 min'],
    [720, '12 min'],
    [3600, '1 h'],
    [3900, '1 h 5 min']
  ])('%d seconds -> %s', (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });
});

describe('statusText', () => {
  it('counts down for the current kernel', () => {
    expect(statusText(status({ kernels: [kernel(720)] }), 'k1', NOW)).toBe('Shuts down in 12 min');
    expect(statusText(status({ kernels: [kernel(720)] }), 'k1', NOW + 700000)).toBe(
      'Shuts down in 20 s'
    );
  });
  it('says busy kernels are not counting', () => {
    const busy = kernel(null, { execution_state: 'busy' });
    expect(statusText(status({ kernels: [busy] }), 'k1', NOW)).toBe('Busy: not counting');
  });
  it('shows a keep-alive before anything else', () => {
    const text = statusText(status({ keep_alive_until: at(3600), kernels: [kernel(60)] }), 'k1', NOW);
    expect(text).toMatch(/^Kept alive until \d\d:\d\d$/);
  });
  it('says when auto-shutdown is off', () => {
    const off = status();
    off.settings.idle_timeout_minutes = 0;
    expect(statusText(off, null, NOW)).toBe('Auto-shutdown off');
  });
  it('shows the server countdown when nothing is left', () => {
    const empty = status({ app: { action: 'server', action_at: at(90), reason: '' } });
    expect(statusText(empty, null, NOW)).toBe('Server stops in 2 min');
  });
  it('says when the app action ran and waits for new activity', () => {
    const ran = status({ app: { action: 'command', action_at: null, reason: '', last_run_at: at(-5) } });
    expect(statusText(ran, null, NOW)).toMatch(/^Server: 'command' ran at \d\d:\d\d$/);
  });
  it('shows no server countdown for an action on its own schedule (Studio Classic)', () => {
    const classic = status({
      app: { action: 'sagemaker', action_at: at(90), reason: '', own_schedule: 'Studio Classic: ...' }
    });
    expect(statusText(classic, null, NOW)).toBe('Auto-shutdown: 2 h idle');
  });
  it('says exempt kernels are never shut down', () => {
    const exempt = kernel(null, { exempt: true });
    expect(statusText(status({ kernels: [exempt] }), 'k1', NOW)).toBe('Auto-shutdown: never (exempt)');
  });
});

describe('nextRefreshDelay', () => {
  it('wakes at the next warning or shutdown, bounded', () => {
    expect(nextRefreshDelay(status({ kernels: [kernel(400)] }), NOW)).toBe(30000);
    expect(nextRefreshDelay(status({ kernels: [kernel(310)] }), NOW)).toBe(10000);
    expect(nextRefreshDelay(status({ kernels: [kernel(0.1)] }), NOW)).toBe(1000);
    expect(nextRefreshDelay(null, NOW)).toBe(30000);
  });
});

describe('shouldWarn', () => {
  it('warns once per deadline inside the warning window', () => {
    expect(shouldWarn(at(200), at(-100), NOW, null)).toBe(true);
    expect(shouldWarn(at(200), at(-100), NOW, at(200))).toBe(false);
    expect(shouldWarn(at(400), at(100), NOW, null)).toBe(false);
    expect(shouldWarn(at(-1), at(-301), NOW, null)).toBe(false);
    expect(shouldWarn(null, null, NOW, null)).toBe(false);
  });
});
