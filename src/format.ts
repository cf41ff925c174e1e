/**
 * Pure functions behind what the front end shows: countdown text, when to look again, when to
 * warn. No JupyterLab imports, so they are unit-tested on their own.
 */

/** The parts of `GET autoshutdown/api/status` the front end reads. */
export interface IResourceStatus {
  id?: string;
  name: string;
  execution_state?: string;
  idle_seconds: number | null;
  seconds_until_shutdown: number | null;
  shutdown_at: string | null;
  warning_at?: string | null;
  reason: string;
  exempt?: boolean;
}

export interface IAppStatus {
  action: string;
  action_at: string | null;
  reason: string;
  /** Set when the action follows its own rule (Studio Classic's apps), not the server's idleness. */
  own_schedule?: string | null;
  last_run_at?: string | null;
}

export interface IStatus {
  now: string;
  running: boolean;
  settings: {
    idle_timeout_minutes: number;
    keep_terminals: boolean;
    warning_seconds: number;
    max_keep_alive_minutes: number;
  };
  keep_alive_until: string | null;
  kernels: IResourceStatus[];
  terminals: IResourceStatus[];
  app: IAppStatus;
}

/** "45 s", "12 min", "2 h 5 min": rounded up, so "shuts down in 1 min" never means 0. */
export function formatDuration(seconds: number): string {
  const total = Math.max(0, Math.ceil(seconds));
  if (total < 60) {
    return `${total} s`;
  }
  const minutes = Math.ceil(total / 60);
  if (minutes < 60) {
    return `${minutes} min`;
  }
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return rest ? `${hours} h ${rest} min` : `${hours} h`;
}

/** Local wall-clock time "18:05" of an ISO timestamp. */
export function formatClock(iso: string): string {
  const date = new Date(iso);
  const pad = (value: number) => String(value).padStart(2, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

export function secondsUntil(iso: string | null | undefined, now: number): number | null {
  if (!iso) {
    return null;
  }
  return (Date.parse(iso) - now) / 1000;
}

/**
 * The status bar text for the current notebook's kernel, or for the whole server when there is
 * no current kernel. `now` is milliseconds since the epoch.
 */
export function statusText(status: IStatus | null, kernelId: string | null, now: number): string {
  if (status === null) {
    return 'Auto-shutdown: unknown';
  }
  if (status.settings.idle_timeout_minutes === 0) {
    return 'Auto-shutdown off';
  }
  const keepAlive = secondsUntil(status.keep_alive_until, now);
  if (keepAlive !== null && keepAlive > 0 && status.keep_alive_until) {
    return `Kept alive until ${formatClock(status.keep_alive_until)}`;
  }
  const kernel = kernelId ? status.kernels.find(k => k.id === kernelId) : undefined;
  if (kernel) {
    if (kernel.exempt) {
      return 'Auto-shutdown: never (exempt)';
    }
    if (kernel.execution_state === 'busy' && kernel.shutdown_at === null) {
      return 'Busy: not counting';
    }
    const left = secondsUntil(kernel.shutdown_at, now);
    if (left === null) {
      return 'Auto-shutdown: not scheduled';
    }
    return left <= 0 ? 'Shutting down now' : `Shuts down in ${formatDuration(left)}`;
  }
  const serverStops = status.app.action !== 'none' && !status.app.own_schedule;
  if (status.kernels.length === 0 && status.terminals.length === 0 && serverStops) {
    const left = secondsUntil(status.app.action_at, now);
    if (left !== null) {
      return left <= 0 ? 'Server stopping now' : `Server stops in ${formatDuration(left)}`;
    }
    if (status.app.last_run_at) {
      // It ran and waits for new activity (a `command` or `none`-like action leaves us running).
      return `Server: '${status.app.action}' ran at ${formatClock(status.app.last_run_at)}`;
    }
  }
  return `Auto-shutdown: ${formatDuration(status.settings.idle_timeout_minutes * 60)} idle`;
}

/**
 * Milliseconds until the status is worth fetching again: at the next warning or shutdown time,
 * at most `maxMs`, at least `minMs`. Between fetches the countdown runs locally.
 */
export function nextRefreshDelay(
  status: IStatus | null,
  now: number,
  maxMs = 30000,
  minMs = 1000
): number {
  if (status === null) {
    return maxMs;
  }
  const times: (string | null | undefined)[] = [status.app.action_at];
  for (const resource of [...status.kernels, ...status.terminals]) {
    times.push(resource.shutdown_at, resource.warning_at);
  }
  let delay = maxMs;
  for (const iso of times) {
    const ms = iso ? Date.parse(iso) - now : NaN;
    if (ms > 0 && ms < delay) {
      delay = ms;
    }
  }
  return Math.max(minMs, delay);
}

/** Whether to warn now about a shutdown at `shutdownAt`, given the deadline warned about last. */
export function shouldWarn(
  shutdownAt: string | null,
  warningAt: string | null | undefined,
  now: number,
  lastWarnedFor: string | null
): boolean {
  if (!shutdownAt || !warningAt || shutdownAt === lastWarnedFor) {
    return false;
  }
  return Date.parse(warningAt) <= now && now < Date.parse(shutdownAt);
}
