/**
 * Pure functions behind what the front end shows: countdown text, when to look again, when to
 * warn, what a cull message says, whether a typed timeout may be saved. No JupyterLab imports, so
 * they are unit-tested on their own. The server's JSON shapes they read are in types.ts.
 */

import type { IAppStatus, IDailyStop, IResourceStatus, IStatus, ITimeoutLimits } from './types';

/** "45 s", "12 min", "2 h 5 min": rounded up, so "stops in 1 min" never means 0. */
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

/** A timeout in minutes as people say it: "45 s", "3 min", "2 h" (not rounded up). */
export function formatMinutes(minutes: number): string {
  if (minutes > 0 && minutes < 1) {
    return `${Math.round(minutes * 60)} s`;
  }
  if (minutes >= 60 && minutes % 60 === 0) {
    return `${minutes / 60} h`;
  }
  return `${Number(minutes.toFixed(2))} min`;
}

/** Local wall-clock time "18:05" of an ISO timestamp. */
export function formatClock(iso: string): string {
  const date = new Date(iso);
  const pad = (value: number) => String(value).padStart(2, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** Local time with seconds, "18:05:09", and the date when it is not `now`'s day. */
export function formatLocalTime(iso: string | null | undefined, now: number): string {
  if (!iso) {
    return '';
  }
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    return '';
  }
  const pad = (value: number) => String(value).padStart(2, '0');
  const clock = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  const today = new Date(now);
  if (date.toDateString() === today.toDateString()) {
    return clock;
  }
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${clock}`;
}

/** "Last activity: ssh session of alice on pts/1, 12 s ago." ('' when the server does not say). */
export function lastActivityText(app: IAppStatus, now: number): string {
  const ago = secondsUntil(app.last_activity, now);
  if (!app.last_activity_source || ago === null || Number.isNaN(ago)) {
    return '';
  }
  return `Last activity: ${app.last_activity_source}, ${formatDuration(-ago)} ago.`;
}

export function secondsUntil(iso: string | null | undefined, now: number): number | null {
  if (!iso) {
    return null;
  }
  return (Date.parse(iso) - now) / 1000;
}

/** The kernel of the widget in focus, as the page knows it right now. */
export interface ICurrentKernel {
  id: string;
  /** The kernel's status as this page sees it ("busy" the moment a cell starts). */
  localStatus?: string;
  /** Auto-shutdown stopped it (the page may still show it as idle). */
  culled?: boolean;
}

/** What the status bar shows: a short text naming its subject, and a longer description. */
export interface IStatusText {
  text: string;
  title: string;
}

/**
 * The status item for the notebook or console in focus, or for the whole server when there is
 * none. `now` is milliseconds since the epoch. A kernel that is busy (as this page sees it, or as
 * the server does) never shows a countdown.
 */
export function statusText(status: IStatus | null, current: ICurrentKernel | null, now: number): IStatusText {
  if (status === null) {
    return { text: 'Auto-shutdown unavailable', title: 'The auto-shutdown status could not be read from the server.' };
  }
  const timeout = formatMinutes(status.settings.idle_timeout_minutes);
  if (status.settings.idle_timeout_minutes === 0) {
    return { text: 'Auto-shutdown off', title: 'Auto-shutdown is off: nothing is shut down for being idle.' };
  }
  const keepAll = secondsUntil(status.keep_alive_until, now);
  if (keepAll !== null && keepAll > 0 && status.keep_alive_until) {
    const until = formatClock(status.keep_alive_until);
    return { text: `Kept alive until ${until}`, title: `Everything is kept alive until ${until}.` };
  }
  const kernel = current ? status.kernels.find(k => k.id === current.id) : undefined;
  if (current?.culled && !kernel) {
    return { text: 'Kernel stopped', title: 'Auto-shutdown stopped this kernel for being idle: restart it to go on.' };
  }
  if (current) {
    const busy = current.localStatus === 'busy' || (kernel?.execution_state === 'busy' && !kernel.shutdown_at);
    if (kernel?.exempt) {
      return { text: 'Kernel exempt', title: `This kernel is never shut down: ${kernel.reason}.` };
    }
    if (busy) {
      return { text: 'Kernel busy', title: 'This kernel is running code: it is not shut down while it runs.' };
    }
    if (kernel) {
      const left = secondsUntil(kernel.shutdown_at, now);
      if (left === null) {
        return { text: 'Kernel not scheduled', title: `This kernel is not scheduled to stop: ${kernel.reason}.` };
      }
      const kept = secondsUntil(kernel.keep_alive_until, now);
      if (kept !== null && kept > 0 && kernel.keep_alive_until) {
        const until = formatClock(kernel.keep_alive_until);
        return { text: `Kernel kept until ${until}`, title: `This kernel is kept alive until ${until}.` };
      }
      if (left <= 0) {
        return { text: 'Kernel stopping now', title: `This kernel is being shut down: ${kernel.reason}.` };
      }
      return {
        text: `Kernel stops in ${formatDuration(left)}`,
        title: `This kernel stops at ${formatClock(kernel.shutdown_at!)} unless it is used: ${kernel.reason}.`
      };
    }
  }
  const serverStops = status.app.action !== 'none' && !status.app.own_schedule;
  if (status.kernels.length === 0 && status.terminals.length === 0 && serverStops) {
    const left = secondsUntil(status.app.action_at, now);
    if (status.app.last_error && (left === null || left <= 0)) {
      // Refused (a missing permission, say): it is retried; the sentence says what it needs.
      return { text: 'Server: stop failed', title: `Auto-shutdown could not stop it: ${status.app.last_error}` };
    }
    const waiting = status.documents?.waiting_until;
    if (left !== null && left <= 0 && waiting && !status.app.last_run_at) {
      return {
        text: 'Server: saving first',
        title: `The server stops by ${formatClock(waiting)} at the latest: it waits for open pages to save ${status.documents!.waiting_for.join(', ')}.`
      };
    }
    if (left !== null) {
      return left <= 0
        ? { text: 'Server stopping now', title: `Auto-shutdown is running '${status.app.action}'.` }
        : {
            text: `Server stops in ${formatDuration(left)}`,
            title: `Nothing is running: ${describeAction(status.app)} at ${formatClock(status.app.action_at!)} unless someone uses it.`
          };
    }
    if (status.app.last_run_at) {
      // It ran and waits for new activity (a `command` action leaves us running).
      return {
        text: `Server: '${status.app.action}' ran at ${formatClock(status.app.last_run_at)}`,
        title: `Auto-shutdown ran '${status.app.action}' at ${formatClock(status.app.last_run_at)}.`
      };
    }
  }
  return {
    text: `Timeout ${timeout}`,
    title: `Kernels and terminals idle for ${timeout} are shut down; then ${describeAction(status.app)}.`
  };
}

/**
 * A kernel's row in JupyterLab's Running sidebar: when auto-shutdown stops it, in a few words
 * that need no ticking ("stops at 18:05", "kept until 19:00", "busy", "exempt").
 */
export function runningDetail(kernel: IResourceStatus, keepAllUntil: string | null, now: number): string {
  if (kernel.exempt) {
    return 'exempt';
  }
  for (const until of [keepAllUntil, kernel.keep_alive_until]) {
    const kept = secondsUntil(until, now);
    if (until && kept !== null && kept > 0) {
      return `kept until ${formatClock(until)}`;
    }
  }
  const left = secondsUntil(kernel.shutdown_at, now);
  if (kernel.execution_state === 'busy' && !kernel.shutdown_at) {
    return 'busy';
  }
  if (left === null) {
    return 'not scheduled';
  }
  return left <= 0 ? 'stopping now' : `stops at ${formatClock(kernel.shutdown_at!)}`;
}

/** The app action in plain words, as the rest of a sentence (the server's own words first). */
export function describeAction(app: Pick<IAppStatus, 'action' | 'description'>): string {
  if (app.description) {
    return app.description;
  }
  const action = app.action;
  switch (action) {
    case 'none':
      return 'the server itself keeps running';
    case 'server':
      return 'this Jupyter server stops';
    case 'jupyterhub':
      return 'this JupyterHub server stops';
    case 'sagemaker':
      return 'this SageMaker Studio app stops (your files stay)';
    case 'command':
      return "the operator's stop command runs";
    default:
      return `the action '${action}' runs`;
  }
}

/**
 * Milliseconds until the status is worth fetching again: at the next warning or shutdown time,
 * at most `maxMs`, at least `minMs`. Between fetches the countdown runs locally.
 */
export function nextRefreshDelay(status: IStatus | null, now: number, maxMs = 30000, minMs = 1000): number {
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

/** Toasts and the notification centre show about this many characters before cutting. */
export const MESSAGE_LIMIT = 140;

/** `text` cut to `limit` characters with an ellipsis in the middle (a path's end says most). */
export function shorten(text: string, limit: number): string {
  if (text.length <= limit) {
    return text;
  }
  if (limit <= 1) {
    return '…'.slice(0, limit);
  }
  const head = Math.ceil((limit - 1) / 3);
  const tail = limit - 1 - head;
  return `${text.slice(0, head)}…${text.slice(text.length - tail)}`;
}

/** The message after a kernel was culled: whole within MESSAGE_LIMIT, whatever the path. */
export function cullMessage(title: string, idleSeconds: number | null | undefined): string {
  const idle = typeof idleSeconds === 'number' && idleSeconds >= 0 ? ` after ${formatDuration(idleSeconds)} idle` : '';
  const build = (name: string) => `Auto-shutdown stopped the kernel of “${name}”${idle}. Its variables are gone; its file is unchanged.`;
  const room = MESSAGE_LIMIT - build('').length;
  return build(shorten(title, Math.max(8, room)));
}

/** The warning before a shutdown, naming what it is about; within MESSAGE_LIMIT. */
export function warningMessage(title: string | null, secondsLeft: number): string {
  const when = `in ${formatDuration(secondsLeft)} unless it is used`;
  if (title === null) {
    return `Auto-shutdown stops this server ${when}.`;
  }
  const build = (name: string) => `Auto-shutdown stops the kernel of “${name}” ${when}.`;
  return build(shorten(title, Math.max(8, MESSAGE_LIMIT - build('').length)));
}

/**
 * The server's warning, naming what the page saves first ("it will save 2 unsaved notebooks
 * first") and what cannot be saved; within MESSAGE_LIMIT.
 */
export function appWarningMessage(secondsLeft: number, toSave: string[], unsavable: string[]): string {
  const head = `Auto-shutdown stops the server in ${formatDuration(secondsLeft)}`;
  const base = (name: string) => basename(name);
  const kind = (paths: string[]) => (paths.every(path => path.endsWith('.ipynb')) ? 'notebook' : 'document');
  let text = `${head} unless it is used.`;
  if (toSave.length === 1) {
    text = `${head}; it will save “${base(toSave[0])}” first.`;
  } else if (toSave.length > 1) {
    text = `${head}; it will save ${toSave.length} unsaved ${kind(toSave)}s first.`;
  }
  if (unsavable.length === 1) {
    const room = MESSAGE_LIMIT - text.length - ' “” cannot be saved.'.length;
    text += ` “${shorten(base(unsavable[0]), Math.max(8, room))}” cannot be saved.`;
  } else if (unsavable.length > 1) {
    text += ` ${unsavable.length} ${kind(unsavable)}s cannot be saved.`;
  }
  return shorten(text, MESSAGE_LIMIT);
}

function basename(path: string): string {
  return path.split('/').pop() || path;
}

/** The daily stop in a few words, with who set it: "18:00 Europe/Berlin (yours)". */
export function dailyStopText(stop: IDailyStop | undefined): string {
  if (!stop) {
    return '';
  }
  if (!stop.time) {
    return stop.set_by === 'user' ? 'none (you turned it off)' : 'none';
  }
  const zone = stop.timezone ?? 'server time';
  return `${stop.time} ${zone} (${stop.set_by === 'user' ? 'set by a user' : "the operator's"})`;
}

/** Whether "HH:MM" or "HH:MM:SS" is a time of day the server accepts. */
export function isStopTime(text: string): boolean {
  return /^([01]?\d|2[0-3]):[0-5]\d(:[0-5]\d)?$/.test(text.trim());
}

/** A timeout under this many minutes is asked about before it is saved (as the CLI's `set` does). */
export const TINY_TIMEOUT_MINUTES = 5;

export type TimeoutCheck = { ok: true; minutes: number; turnsOff: boolean; tiny: boolean } | { ok: false; reason: string };

/**
 * Whether the text typed as the timeout may be saved, and why not. Empty and non-numeric text is
 * refused (an empty field must never mean 0, which turns auto-shutdown off); so are values
 * outside the server's bounds. 0 is allowed only where the server allows turning it off, and the
 * caller asks for confirmation (`turnsOff`); so it does for a timeout under a few minutes (`tiny`),
 * which stops idle kernels, and then the server, within seconds.
 */
export function checkTimeout(text: string, limits: ITimeoutLimits): TimeoutCheck {
  const trimmed = text.trim();
  if (trimmed === '') {
    return { ok: false, reason: 'Enter the timeout in minutes.' };
  }
  if (!/^(\d+\.?\d*|\.\d+)$/.test(trimmed)) {
    return { ok: false, reason: `“${shorten(trimmed, 20)}” is not a number of minutes.` };
  }
  const minutes = Number(trimmed);
  if (!Number.isFinite(minutes)) {
    return { ok: false, reason: 'That number is too large.' };
  }
  if (minutes === 0) {
    if (!limits.allow_disable) {
      return { ok: false, reason: 'Turning auto-shutdown off is not allowed on this server.' };
    }
    return { ok: true, minutes: 0, turnsOff: true, tiny: false };
  }
  const low = limits.min_idle_timeout_minutes;
  const high = limits.max_idle_timeout_minutes;
  if ((low && minutes < low) || (high && minutes > high)) {
    return { ok: false, reason: `The timeout must be ${allowedRange(limits)}.` };
  }
  return { ok: true, minutes, turnsOff: false, tiny: minutes < TINY_TIMEOUT_MINUTES };
}

/** ISO 8601 times in `text` (the server's reasons carry them in UTC) as local times. */
export function localizeTimes(text: string, now: number): string {
  return text.replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)/g, iso => formatLocalTime(iso, now) || iso);
}

/** The allowed timeouts in words, e.g. "from 5 to 240 minutes". */
export function allowedRange(limits: ITimeoutLimits): string {
  const low = limits.min_idle_timeout_minutes;
  const high = limits.max_idle_timeout_minutes;
  if (low && high) {
    return `from ${low} to ${high} minutes`;
  }
  if (low) {
    return `at least ${low} minutes`;
  }
  if (high) {
    return `at most ${high} minutes`;
  }
  return 'any number of minutes';
}
