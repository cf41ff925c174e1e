import {
  checkTimeout,
  appWarningMessage,
  cullMessage,
  dailyStopText,
  isStopTime,
  formatClock,
  formatDuration,
  formatLocalTime,
  ICurrentKernel,
  localizeTimes,
  MESSAGE_LIMIT,
  nextRefreshDelay,
  runningDetail,
  shorten,
  shouldWarn,
  statusText,
  TINY_TIMEOUT_MINUTES,
  warningMessage
} from '../format';
import type { IStatus } from '../types';

const NOW = Date.parse('2026-11-22T12:00:00Z');
const at = (seconds: number) => new Date(NOW + seconds * 1000).toISOString();

function status(overrides: Partial<IStatus> = {}): IStatus {
  return {
    now: at(0),
    running: true,
    settings: {
      idle_timeout_minutes: 120,
      keep_terminals: false,
      cull_busy: false,
      cull_connected: true,
      warning_seconds: 300,
      max_keep_alive_minutes: 720,
      min_idle_timeout_minutes: 0,
      max_idle_timeout_minutes: 0,
      allow_disable: true
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
  const text = (s: IStatus | null, current: ICurrentKernel | null, now = NOW) => statusText(s, current, now).text;
  const k1 = { id: 'k1' };
  it('counts down for the current kernel, naming it', () => {
    expect(text(status({ kernels: [kernel(720)] }), k1)).toBe('Kernel stops in 12 min');
    expect(text(status({ kernels: [kernel(720)] }), k1, NOW + 700000)).toBe('Kernel stops in 20 s');
  });
  it('never counts down on a busy kernel, as the server or this page sees it', () => {
    const busy = kernel(null, { execution_state: 'busy' });
    expect(text(status({ kernels: [busy] }), k1)).toBe('Kernel busy');
    // The page saw the cell start before the server's status said so.
    expect(text(status({ kernels: [kernel(60)] }), { id: 'k1', localStatus: 'busy' })).toBe('Kernel busy');
  });
  it('shows a keep-alive before anything else', () => {
    expect(text(status({ keep_alive_until: at(3600), kernels: [kernel(60)] }), k1)).toMatch(/^Kept alive until \d\d:\d\d$/);
  });
  it("shows one kernel's own keep-alive", () => {
    const kept = kernel(3600, { keep_alive_until: at(3600) });
    expect(text(status({ kernels: [kept] }), k1)).toMatch(/^Kernel kept until \d\d:\d\d$/);
  });
  it('says when auto-shutdown is off', () => {
    const off = status();
    off.settings.idle_timeout_minutes = 0;
    expect(text(off, null)).toBe('Auto-shutdown off');
  });
  it('shows the server countdown when nothing is left', () => {
    const empty = status({ app: { action: 'server', action_at: at(90), reason: '' } });
    expect(text(empty, null)).toBe('Server stops in 2 min');
    expect(statusText(empty, null, NOW).title).toContain('this Jupyter server stops');
  });
  it("uses the server's own words for what stops, and says when stopping was refused", () => {
    const notebook = status({
      app: {
        action: 'sagemaker',
        action_at: at(90),
        reason: '',
        description: 'this SageMaker notebook instance stops (its ML storage volume is kept)'
      }
    });
    expect(statusText(notebook, null, NOW).title).toContain('notebook instance stops (its ML storage volume is kept)');
    const refused = status({
      app: {
        action: 'sagemaker',
        action_at: at(-30),
        reason: '',
        last_error: 'SageMaker refused StopNotebookInstance (AccessDeniedException): the execution role needs ...'
      }
    });
    expect(text(refused, null)).toBe('Server: stop failed');
    expect(statusText(refused, null, NOW).title).toContain('needs');
  });
  it('says when the app action ran and waits for new activity', () => {
    const ran = status({ app: { action: 'command', action_at: null, reason: '', last_run_at: at(-5) } });
    expect(text(ran, null)).toMatch(/^Server: 'command' ran at \d\d:\d\d$/);
  });
  it('names the timeout as a timeout, not as elapsed time', () => {
    const classic = status({
      app: { action: 'sagemaker', action_at: at(90), reason: '', own_schedule: 'Studio Classic: ...' }
    });
    expect(text(classic, null)).toBe('Timeout 2 h');
    const short = status();
    short.settings.idle_timeout_minutes = 0.75;
    expect(text(short, null)).toBe('Timeout 45 s');
  });
  it('says exempt kernels are never shut down', () => {
    expect(text(status({ kernels: [kernel(null, { exempt: true })] }), k1)).toBe('Kernel exempt');
  });
  it('says when the status cannot be read', () => {
    expect(text(null, k1)).toBe('Auto-shutdown unavailable');
  });
});

describe('formatLocalTime', () => {
  it('shows local time with seconds, and the date only for another day', () => {
    const noon = new Date(NOW);
    const pad = (n: number) => String(n).padStart(2, '0');
    expect(formatLocalTime(at(65), NOW)).toBe(`${pad(noon.getHours())}:${pad(noon.getMinutes() + 1)}:05`);
    expect(formatLocalTime(at(-3 * 86400), NOW)).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    expect(formatLocalTime(null, NOW)).toBe('');
    expect(formatLocalTime('not a time', NOW)).toBe('');
  });
});

describe('localizeTimes', () => {
  it("shows the server's UTC timestamps as local times", () => {
    const text = localizeTimes(`kept alive by a user until ${new Date(NOW + 65000).toISOString().replace('Z', '+00:00')}`, NOW);
    expect(text).toMatch(/^kept alive by a user until \d\d:\d\d:05$/);
    expect(localizeTimes('idle: shut down after 45 s', NOW)).toBe('idle: shut down after 45 s');
  });
});

describe('statusText after a cull', () => {
  it('says the kernel stopped, not the timeout', () => {
    expect(statusText(status(), { id: 'gone', culled: true }, NOW).text).toBe('Kernel stopped');
  });
});

describe('cullMessage', () => {
  it('fits in a toast whatever the path, keeping the name', () => {
    const short = cullMessage('demo.ipynb', 45);
    expect(short).toBe('Auto-shutdown stopped the kernel of “demo.ipynb” after 45 s idle. Its variables are gone; its file is unchanged.');
    const deep = 'projects/' + 'very-long-folder-name/'.repeat(12) + 'analysis.ipynb';
    const long = cullMessage(deep, 7200);
    expect(long.length).toBeLessThanOrEqual(MESSAGE_LIMIT);
    expect(long).toContain('analysis.ipynb');
    expect(cullMessage('x.ipynb', null)).not.toContain('after');
  });
});

describe('warningMessage', () => {
  it('names the notebook and stays short', () => {
    expect(warningMessage('b.ipynb', 15)).toBe('Auto-shutdown stops the kernel of “b.ipynb” in 15 s unless it is used.');
    expect(warningMessage(null, 90)).toBe('Auto-shutdown stops this server in 2 min unless it is used.');
    expect(warningMessage('x/'.repeat(200) + 'end.ipynb', 15).length).toBeLessThanOrEqual(MESSAGE_LIMIT);
  });
});

describe('checkTimeout', () => {
  const open = { min_idle_timeout_minutes: 0, max_idle_timeout_minutes: 0, allow_disable: true };
  const bounded = { min_idle_timeout_minutes: 5, max_idle_timeout_minutes: 240, allow_disable: false };
  it('refuses an empty field instead of turning auto-shutdown off', () => {
    expect(checkTimeout('', open)).toEqual({ ok: false, reason: 'Enter the timeout in minutes.' });
    expect(checkTimeout('   ', open).ok).toBe(false);
  });
  it.each(['abc', '1e3', '-5', '5 min', '0x10', '1,5', 'Infinity', 'NaN'])('refuses %s', typed => {
    const result = checkTimeout(typed, open);
    expect(result.ok).toBe(false);
  });
  it('accepts minutes, with decimals', () => {
    expect(checkTimeout('30', open)).toEqual({ ok: true, minutes: 30, turnsOff: false, tiny: false });
    expect(checkTimeout(' 0.5 ', open)).toEqual({ ok: true, minutes: 0.5, turnsOff: false, tiny: true });
    expect(checkTimeout('.5', open)).toEqual({ ok: true, minutes: 0.5, turnsOff: false, tiny: true });
  });
  it('marks a timeout under a few minutes as tiny (to be confirmed), from TINY_TIMEOUT_MINUTES up not', () => {
    expect(checkTimeout('0.01', open)).toMatchObject({ ok: true, tiny: true });
    expect(checkTimeout('4.9', open)).toMatchObject({ ok: true, tiny: true });
    expect(checkTimeout(String(TINY_TIMEOUT_MINUTES), open)).toMatchObject({ ok: true, tiny: false });
  });
  it('marks 0 as turning it off (to be confirmed), unless the operator forbids it', () => {
    expect(checkTimeout('0', open)).toEqual({ ok: true, minutes: 0, turnsOff: true, tiny: false });
    expect(checkTimeout('0', bounded)).toEqual({
      ok: false,
      reason: 'Turning auto-shutdown off is not allowed on this server.'
    });
  });
  it("enforces the server's bounds, naming them", () => {
    expect(checkTimeout('2', bounded)).toEqual({ ok: false, reason: 'The timeout must be from 5 to 240 minutes.' });
    expect(checkTimeout('300', bounded).ok).toBe(false);
    expect(checkTimeout('240', bounded).ok).toBe(true);
    expect(checkTimeout('1', { ...open, min_idle_timeout_minutes: 2 })).toEqual({
      ok: false,
      reason: 'The timeout must be at least 2 minutes.'
    });
  });
});

describe('shorten', () => {
  it('keeps short text and cuts long text in the middle', () => {
    expect(shorten('abc', 5)).toBe('abc');
    expect(shorten('abcdefghij', 7)).toBe('ab…ghij');
    expect(shorten('abcdefghij', 7).length).toBe(7);
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

describe('runningDetail', () => {
  it('says when a kernel stops in a clock time, or why it does not', () => {
    const clock = (iso: string) => formatClock(iso);
    expect(runningDetail(kernel(400), null, NOW)).toBe(`stops at ${clock(at(400))}`);
    expect(runningDetail(kernel(-1), null, NOW)).toBe('stopping now');
    expect(runningDetail({ ...kernel(400), exempt: true }, null, NOW)).toBe('exempt');
    expect(runningDetail({ ...kernel(400), shutdown_at: null, execution_state: 'busy' }, null, NOW)).toBe('busy');
    expect(runningDetail({ ...kernel(400), shutdown_at: null }, null, NOW)).toBe('not scheduled');
    expect(runningDetail({ ...kernel(400), keep_alive_until: at(900) }, null, NOW)).toBe(`kept until ${clock(at(900))}`);
    expect(runningDetail(kernel(400), at(1800), NOW)).toBe(`kept until ${clock(at(1800))}`);
    expect(runningDetail(kernel(400), at(-10), NOW)).toBe(`stops at ${clock(at(400))}`);
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

describe('appWarningMessage', () => {
  it('names what the page saves first and what cannot be saved', () => {
    expect(appWarningMessage(300, [], [])).toBe('Auto-shutdown stops the server in 5 min unless it is used.');
    expect(appWarningMessage(300, ['work/a.ipynb'], [])).toBe('Auto-shutdown stops the server in 5 min; it will save “a.ipynb” first.');
    expect(appWarningMessage(300, ['a.ipynb', 'b.ipynb'], [])).toBe(
      'Auto-shutdown stops the server in 5 min; it will save 2 unsaved notebooks first.'
    );
    expect(appWarningMessage(300, ['a.ipynb', 'notes.md'], ['ro.ipynb'])).toBe(
      'Auto-shutdown stops the server in 5 min; it will save 2 unsaved documents first. “ro.ipynb” cannot be saved.'
    );
    expect(appWarningMessage(60, [], ['x.ipynb', 'y.ipynb'])).toContain('2 notebooks cannot be saved.');
    const long = appWarningMessage(60, ['a'.repeat(300) + '.ipynb'], ['b'.repeat(300) + '.ipynb']);
    expect(long.length).toBeLessThanOrEqual(MESSAGE_LIMIT);
  });
});

describe('the daily stop', () => {
  const stop = {
    time: '18:00',
    timezone: 'Europe/Berlin',
    label: '18:00 Europe/Berlin',
    set_by: 'operator' as const,
    operator_time: '18:00',
    operator_timezone: 'Europe/Berlin',
    user_may_change: false
  };
  it('says the time and who set it', () => {
    expect(dailyStopText(stop)).toBe("18:00 Europe/Berlin (the operator's)");
    expect(dailyStopText({ ...stop, time: '20:30', set_by: 'user' })).toBe('20:30 Europe/Berlin (set by a user)');
    expect(dailyStopText({ ...stop, time: null, set_by: 'user' })).toBe('none (you turned it off)');
    expect(dailyStopText({ ...stop, time: null, timezone: null })).toBe('none');
  });
  it('accepts the times the server accepts', () => {
    for (const ok of ['22:00', '7:05', '23:59:59', ' 00:00 ']) {
      expect(isStopTime(ok)).toBe(true);
    }
    for (const bad of ['24:00', '22', '22:60', '22:00:60', 'noon', '']) {
      expect(isStopTime(bad)).toBe(false);
    }
  });
});

describe('statusText while the app action waits for saves', () => {
  it('says the server saves first, and until when it waits', () => {
    const now = Date.parse('2026-12-02T10:00:10Z');
    const status = {
      now: '2026-12-02T10:00:10Z',
      running: true,
      settings: {
        idle_timeout_minutes: 30,
        keep_terminals: false,
        cull_busy: false,
        cull_connected: true,
        warning_seconds: 300,
        max_keep_alive_minutes: 60,
        min_idle_timeout_minutes: 0,
        max_idle_timeout_minutes: 0,
        allow_disable: true
      },
      keep_alive_until: null,
      kernels: [],
      terminals: [],
      app: { action: 'server', action_at: '2026-12-02T10:00:00Z', reason: '' },
      documents: {
        unsaved: [],
        unsavable: [{ path: 'ro.ipynb', reason: 'read-only' }],
        waiting_until: '2026-12-02T10:05:00Z',
        waiting_for: ['ro.ipynb'],
        grace_minutes: 5,
        last_save: null
      }
    };
    const shown = statusText(status, null, now);
    expect(shown.text).toBe('Server: saving first');
    expect(shown.title).toContain('ro.ipynb');
  });
});
