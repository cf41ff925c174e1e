/**
 * Tells the server that a person is using the page, so that an open tab nobody looks at does not
 * keep the server (and its bill) running, while one in use does. No JupyterLab imports: the timing
 * is unit-tested on its own.
 *
 * A report goes out at the first interaction, then at most once per interval; interactions in
 * between are reported once more when the interval ends, with how long ago the latest one was.
 * Nothing is ever sent without an interaction since the last report: a timer alone sends nothing.
 */

/**
 * The DOM events that mean a person is at the page. Not `scroll` or `focusin`: the page scrolls
 * and moves focus by itself (output arriving, a toast); a person's scrolling is a wheel, a key or
 * a pointer press.
 */
export const INTERACTION_EVENTS = ['keydown', 'pointerdown', 'pointermove', 'wheel'];

/**
 * Whether an event comes from a person: dispatched by the browser for real input (not by a
 * script), and for pointer moves, a move of the pointer itself (browsers send moves with no
 * movement when the page changes under a still pointer).
 */
export function isPersonEvent(event: { isTrusted: boolean; type: string; movementX?: number; movementY?: number }): boolean {
  if (!event.isTrusted) {
    return false;
  }
  if (event.type === 'pointermove') {
    return Boolean(event.movementX || event.movementY);
  }
  return true;
}

/** At most one report a minute, and at least four per timeout, so a short timeout is honoured. */
export function reportInterval(idleTimeoutMinutes: number | null): number {
  const minute = 60000;
  if (!idleTimeoutMinutes || idleTimeoutMinutes <= 0) {
    return minute;
  }
  return Math.max(1000, Math.min(minute, (idleTimeoutMinutes * minute) / 4));
}

export interface IClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const browserClock: IClock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => window.setTimeout(callback, ms),
  clearTimeout: handle => window.clearTimeout(handle as number)
};

export class InteractionReporter {
  private lastSent = -Infinity;
  /** The latest interaction not reported yet (ms since the epoch), or null. */
  private pending: number | null = null;
  private timer: unknown = undefined;

  /**
   * @param send reports "a person interacted `idleSeconds` seconds ago"
   * @param interval milliseconds between two reports (read at each interaction)
   */
  constructor(
    private readonly send: (idleSeconds: number) => void,
    private readonly interval: () => number,
    private readonly clock: IClock = browserClock
  ) {}

  /** Call on every interaction event; cheap (no request unless one is due). */
  interaction(): void {
    const now = this.clock.now();
    this.pending = now;
    const wait = this.lastSent + this.interval() - now;
    if (wait <= 0) {
      this.flush();
    } else if (this.timer === undefined) {
      this.timer = this.clock.setTimeout(() => this.flush(), wait);
    }
  }

  private flush(): void {
    if (this.timer !== undefined) {
      this.clock.clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pending === null) {
      return;
    }
    const now = this.clock.now();
    const idleSeconds = Math.max(0, (now - this.pending) / 1000);
    this.pending = null;
    this.lastSent = now;
    this.send(idleSeconds);
  }

  dispose(): void {
    if (this.timer !== undefined) {
      this.clock.clearTimeout(this.timer);
      this.timer = undefined;
    }
  }
}
