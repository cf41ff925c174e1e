import type { Event } from '@jupyterlab/services';
import type { IDisposable } from '@lumino/disposable';
import { IPoll, Poll, Throttler } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';
import type { Widget } from '@lumino/widgets';

import type { KeepAliveTarget } from './api';
import { ICurrentKernel, nextRefreshDelay } from './format';
import { IStatusMessage, RunningRequests } from './requests';
import type { IKeepAlive, IStatus } from './types';

/** What the model asks of the server (api.ts in the page; a fake in tests). */
export interface IAutoShutdownApi {
  getStatus(): Promise<IStatus>;
  canWrite(): Promise<boolean>;
  keepAlive(minutes: number, target?: KeepAliveTarget): Promise<IKeepAlive>;
  cancelKeepAlive(target?: KeepAliveTarget): Promise<IKeepAlive>;
  shutDownKernel(kernelId: string): Promise<void>;
  shutDownTerminal(name: string): Promise<void>;
  patchSettings(changes: Record<string, unknown>): Promise<unknown>;
  resetSettings(field: string): Promise<unknown>;
}

/**
 * The time, and the once-a-second countdown tick (the window's in the page). The status poll and
 * the coalescing of changes are Lumino's (`Poll`, `Throttler`), on the platform's timers: tests
 * fake those with jest's fake timers, and pass a clock that reads them.
 */
export interface IClock {
  now(): number;
  setInterval(callback: () => void, ms: number): number;
  clearInterval(handle: number | undefined): void;
}

export const browserClock: IClock = {
  now: () => Date.now(),
  setInterval: (callback, ms) => window.setInterval(callback, ms),
  clearInterval: handle => window.clearInterval(handle)
};

/** Whether the page is hidden, and a way to hear when that changes. */
export interface IVisibility {
  hidden(): boolean;
  onChange(callback: () => void): () => void;
}

export const documentVisibility: IVisibility = {
  hidden: () => document.hidden,
  onChange: callback => {
    document.addEventListener('visibilitychange', callback);
    return () => document.removeEventListener('visibilitychange', callback);
  }
};

/** The parts of a JupyterLab or Notebook 7 application the model reads. */
export interface IAppLike {
  serviceManager: {
    events: { stream: ISignal<unknown, Event.Emission> };
    sessions: {
      runningChanged: ISignal<unknown, unknown>;
      running(): Iterable<{ path: string; kernel?: { id: string } | null }>;
    };
  };
  shell: {
    currentWidget: Widget | null;
    widgets(area?: string): Iterable<Widget>;
  };
}

export const EVENT_SCHEMA = 'https://events.jupyter.org/jupyter_autoshutdown/v1';
const KERNEL_ACTIONS_SCHEMA = 'https://events.jupyter.org/jupyter_server/kernel_actions/v1';
/** Changes that come in bursts (a cell start sends several status messages) share one request. */
const REFRESH_COALESCE_MS = 150;
/**
 * After a request that failed (the server restarting, the network down): again within 5 s, then
 * about three times longer each time (Lumino's backoff with jitter), at most every 5 minutes, as
 * JupyterLab's own kernel and session polls. Between answers the poll waits until the next
 * deadline or warning, at most 30 s (`nextRefreshDelay`).
 */
export const RETRY_FREQUENCY: IPoll.Frequency = { interval: 5_000, backoff: true, max: 300_000 };

/** The front end's own preferences (schema/plugin.json, in the Settings Editor). */
export interface IPreferences {
  showStatusItem: boolean;
  warnBackground: boolean;
  keepAliveMinutes: number;
}

export const DEFAULT_PREFERENCES: IPreferences = {
  showStatusItem: true,
  warnBackground: true,
  keepAliveMinutes: 60
};

/** A notebook or console open in this page, and the kernel it uses. */
export interface IOpenDocument {
  widget: Widget;
  /** The path of its file (notebook) or session (console), else its tab title. */
  path: string;
  kernelName: string;
  /** Whether it is the widget in focus. */
  current: boolean;
}

/** A kernel auto-shutdown stopped, as the page heard of it. */
export interface ICull {
  kernelId: string;
  path: string;
  reason: string;
  idleSeconds: number | null;
  at: number;
}

/** What the widget's session context offers (notebooks and consoles in JupyterLab and Notebook 7). */
export interface ISessionContextLike {
  session?: { kernel?: { id: string; name: string; status?: string } | null; path?: string; dispose?: () => void } | null;
  path?: string;
  statusChanged?: ISignal<unknown, unknown>;
  kernelChanged?: ISignal<unknown, unknown>;
  iopubMessage?: ISignal<unknown, IStatusMessage>;
  changeKernel?: (options: { name: string }) => Promise<unknown>;
}

export function sessionContextOf(widget: unknown): ISessionContextLike | null {
  const anyWidget = widget as { sessionContext?: ISessionContextLike; context?: { sessionContext?: ISessionContextLike } };
  return anyWidget?.sessionContext ?? anyWidget?.context?.sessionContext ?? null;
}

/**
 * The server's auto-shutdown status and what this page has open, kept current by events: kernel
 * status and kernel changes of every open notebook and console, the widget in focus changing,
 * the server's events (kernel started or restarted, warning, cull, keep-alive). Between those a
 * Lumino `Poll` looks again at the next deadline or warning (at most every 30 s), standing by while
 * the page is hidden, backing off while the server does not answer; countdowns run locally
 * (`ticked`, once a second, changes no data).
 *
 * Views render it and call its commands (keep alive, cancel, shut down, save settings); it is the
 * only place that talks to the API. Nothing happens before `start()`; `dispose()` stops it all.
 * Only the answer to the latest request is applied (the poll drops the answers of the requests a
 * newer one superseded): an older answer never overwrites a newer one.
 */
export class AutoShutdownModel implements IDisposable {
  status: IStatus | null = null;
  writable = false;
  preferences: IPreferences = { ...DEFAULT_PREFERENCES };
  /** Kernel id -> the path of its session, for every session on the server. */
  sessionPaths = new Map<string, string>();
  /** Kernel id -> the notebook or console open in this page that uses it. */
  openDocuments = new Map<string, IOpenDocument>();
  /** The latest culls, newest first (the panel shows their full reasons). */
  culls: ICull[] = [];

  constructor(
    private readonly app: IAppLike,
    private readonly api: IAutoShutdownApi,
    private readonly clock: IClock = browserClock,
    private readonly visibility: IVisibility = documentVisibility
  ) {
    this.poll = new Poll<IStatus, unknown, 'standby'>({
      auto: false,
      name: 'jupyter-autoshutdown:status',
      factory: () => this.fetchStatus(),
      frequency: RETRY_FREQUENCY,
      // The equivalent of 'when-hidden', read from the injected visibility, and without Lumino's
      // lingering tick: hidden, the poll asks nothing on its own; a refresh (a change, a
      // command, an event of the server) still asks, so that warnings reach a background tab.
      standby: () => this.visibility.hidden() && this.poll.state.phase !== 'refreshed'
    });
    this.poll.ticked.connect(this.onPolled, this);
    this.coalesce = new Throttler(() => void this.refresh(), { limit: REFRESH_COALESCE_MS, edge: 'trailing' });
  }

  /** Follow the server and the page: signals, the countdown tick, the first requests. */
  start(): void {
    if (this.started || this._isDisposed) {
      return;
    }
    this.started = true;
    const app = this.app;
    this.tickTimer = this.clock.setInterval(() => this._ticked.emit(), 1000); // local countdowns
    app.serviceManager.events.stream.connect(this.onEvent, this);
    app.serviceManager.sessions.runningChanged.connect(this.onSessionsChanged, this);
    const shell = app.shell as unknown as { currentChanged?: ISignal<unknown, unknown>; layoutModified?: ISignal<unknown, unknown> };
    shell.currentChanged?.connect(this.onLayout, this);
    shell.layoutModified?.connect(this.onLayout, this);
    this.stopListening = this.visibility.onChange(() => {
      if (!this.visibility.hidden()) {
        void this.refresh(); // back in view: what changed meanwhile (the poll stood by)
      }
    });
    void this.api.canWrite().then(writable => {
      if (!this._isDisposed) {
        this.writable = writable;
        this._changed.emit();
      }
    });
    this.readSessions();
    this.watchOpenDocuments();
    void this.refresh();
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    this.clock.clearInterval(this.tickTimer);
    this.poll.dispose(); // a tick already scheduled fires once and does nothing
    this.coalesce.dispose();
    this.stopListening();
    Signal.clearData(this);
  }

  /** Emitted when what the model holds changed (status, documents, culls, preferences). */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emitted once a second, for countdown text only: no data changed. */
  get ticked(): ISignal<this, void> {
    return this._ticked;
  }

  /** The current time by the model's clock (countdowns). */
  now(): number {
    return this.clock.now();
  }

  // ---- commands: the only way views change anything --------------------------------------

  /** Keep `target` (or everything) alive for `minutes`; the status is fetched again after. */
  async keepAlive(minutes: number, target: KeepAliveTarget = {}): Promise<IKeepAlive> {
    return this.thenRefresh(this.api.keepAlive(minutes, target));
  }

  async cancelKeepAlive(target: KeepAliveTarget = {}): Promise<IKeepAlive> {
    return this.thenRefresh(this.api.cancelKeepAlive(target));
  }

  async shutDownKernel(kernelId: string): Promise<void> {
    return this.thenRefresh(this.api.shutDownKernel(kernelId));
  }

  async shutDownTerminal(name: string): Promise<void> {
    return this.thenRefresh(this.api.shutDownTerminal(name));
  }

  async saveSettings(changes: Record<string, unknown>): Promise<unknown> {
    return this.thenRefresh(this.api.patchSettings(changes));
  }

  /** Bring back the operator's value of a runtime setting (`daily_stop`). */
  async resetSettings(field: string): Promise<unknown> {
    return this.thenRefresh(this.api.resetSettings(field));
  }

  /** Refresh after `work`, whether it succeeded or not; its result or error goes to the caller. */
  private async thenRefresh<T>(work: Promise<T>): Promise<T> {
    try {
      return await work;
    } finally {
      await this.refresh();
    }
  }

  /** Emitted when the server says a kernel was culled (for the message in the page). */
  get culled(): ISignal<this, ICull> {
    return this._culled;
  }

  setPreferences(preferences: Partial<IPreferences>): void {
    this.preferences = { ...DEFAULT_PREFERENCES, ...preferences };
    this._changed.emit();
  }

  /** The kernel of the notebook or console in focus, with its status as this page sees it. */
  currentKernel(): ICurrentKernel | null {
    return this.kernelOf(this.app.shell.currentWidget);
  }

  /**
   * The kernel of a notebook or console widget, busy while it runs any request (as the page sees
   * its status messages), and whether auto-shutdown stopped it.
   */
  kernelOf(widget: unknown): ICurrentKernel | null {
    const kernel = sessionContextOf(widget)?.session?.kernel;
    if (!kernel) {
      return null;
    }
    const localStatus = this.requests.isBusy(kernel.id) ? 'busy' : kernel.status;
    return this.withCulls({ id: kernel.id, localStatus });
  }

  /** Marks a kernel auto-shutdown stopped: the page may not have noticed yet. */
  withCulls(kernel: ICurrentKernel | null): ICurrentKernel | null {
    if (kernel && this.culls.some(cull => cull.kernelId === kernel.id)) {
      return { ...kernel, culled: true };
    }
    return kernel;
  }

  /**
   * Start a new kernel for the notebook or console whose kernel auto-shutdown stopped. The server
   * deleted its session with the kernel: the page's session is let go first, else JupyterLab asks
   * the server for the old one and fails.
   */
  async restartAfterCull(cull: ICull): Promise<void> {
    const document = this.documentOf(cull.kernelId);
    const context = document ? sessionContextOf(document.widget) : null;
    if (!document || !context?.changeKernel) {
      throw new Error(`${cull.path} is no longer open`);
    }
    const session = context.session;
    if (session && (!session.kernel || session.kernel.id === cull.kernelId)) {
      session.dispose?.();
    }
    await context.changeKernel({ name: document.kernelName });
  }

  /** The notebook path, console path or a short description of a kernel. */
  describeKernel(kernelId: string, kernelName = ''): string {
    const path = this.openDocuments.get(kernelId)?.path ?? this.sessionPaths.get(kernelId);
    return path ?? `${kernelName || 'kernel'} ${kernelId.slice(0, 8)} (no notebook)`;
  }

  /**
   * Fetch the status now (superseding a request in flight, whose answer is dropped); the poll
   * then looks again at the next deadline or warning. Resolves once it is answered, or superseded.
   */
  async refresh(): Promise<void> {
    if (!this.started || this._isDisposed) {
      return;
    }
    await this.poll.schedule({ interval: Poll.IMMEDIATE, phase: 'refreshed' });
    await this.poll.tick.catch(() => undefined); // rejected only when disposed
  }

  /** Refresh soon: several changes within REFRESH_COALESCE_MS make one request. */
  scheduleRefresh(): void {
    if (this.started && !this._isDisposed) {
      void this.coalesce.invoke().catch(() => undefined); // rejected only when stopped
    }
  }

  /** The poll's request; the next one is due at the next deadline or warning (at most 30 s). */
  private async fetchStatus(): Promise<IStatus> {
    const tick = this.poll.tick;
    let status: IStatus;
    try {
      status = await this.api.getStatus();
    } catch (error) {
      if (this.poll.tick === tick) {
        this.poll.frequency = RETRY_FREQUENCY;
      }
      throw error;
    }
    if (this.poll.tick === tick) {
      // Not for a superseded request: the latest sets when to look again.
      this.poll.frequency = { ...RETRY_FREQUENCY, interval: nextRefreshDelay(status, this.clock.now()) };
    }
    return status;
  }

  /** A request was answered (only the latest request's answer comes here), or it failed. */
  private onPolled(_: unknown, state: IPoll.State<IStatus, unknown, 'standby'>): void {
    if (state.phase === 'resolved' || state.phase === 'reconnected') {
      this.status = state.payload as IStatus;
    } else if (state.phase === 'rejected') {
      this.status = null; // "Auto-shutdown unavailable" until the server answers again
    } else {
      return;
    }
    this._changed.emit();
  }

  private onSessionsChanged(): void {
    this.readSessions();
    this.watchOpenDocuments();
    this.scheduleRefresh();
  }

  private onLayout(): void {
    if (this.watchOpenDocuments()) {
      this._changed.emit();
    }
  }

  /**
   * Find the notebooks and consoles open now, and follow their kernels' status and changes (run
   * when the shell's layout or focus changes, or a session or kernel does; not on a timer).
   * True when what is open changed.
   */
  private watchOpenDocuments(): boolean {
    const current = this.app.shell.currentWidget;
    const open = new Map<string, IOpenDocument>();
    for (const widget of this.app.shell.widgets('main')) {
      const context = sessionContextOf(widget);
      if (context === null) {
        continue;
      }
      if (!this.followed.has(context)) {
        this.followed.add(context);
        // A cell starting or ending, a kernel restarting: show it now, ask the server soon.
        context.statusChanged?.connect(() => {
          this._changed.emit();
          this.scheduleRefresh();
        });
        context.kernelChanged?.connect(() => {
          this.onLayout();
          this.scheduleRefresh();
        });
        context.iopubMessage?.connect((_, message) => {
          const kernelId = context.session?.kernel?.id;
          if (kernelId) {
            this.requests.onMessage(kernelId, message);
          }
        });
      }
      const kernel = context.session?.kernel;
      if (kernel) {
        const path = context.session?.path ?? context.path ?? widget.title.label;
        open.set(kernel.id, { widget, path, kernelName: kernel.name, current: widget === current });
      }
    }
    // Kept after a cull (the widget no longer names the kernel it lost); forgotten once closed.
    for (const [kernelId, document] of this.lastOpen) {
      if (document.widget.isDisposed) {
        this.lastOpen.delete(kernelId);
        this.requests.forget(kernelId);
      }
    }
    this.lastOpen = new Map([...this.lastOpen, ...open]);
    const changed = !sameDocuments(this.openDocuments, open);
    this.openDocuments = open;
    return changed;
  }

  private readSessions(): void {
    const paths = new Map<string, string>();
    for (const session of this.app.serviceManager.sessions.running()) {
      if (session.kernel) {
        paths.set(session.kernel.id, session.path);
      }
    }
    this.sessionPaths = paths;
  }

  private onEvent(_: unknown, event: Event.Emission): void {
    if (event.schema_id === KERNEL_ACTIONS_SCHEMA) {
      this.scheduleRefresh(); // a kernel started, restarted or was interrupted
      return;
    }
    if (event.schema_id !== EVENT_SCHEMA) {
      return;
    }
    if (event.event === 'culled' && event.kind === 'kernel') {
      const kernelId = String(event.target);
      const document = this.lastOpen.get(kernelId);
      const cull: ICull = {
        kernelId,
        path: document?.path ?? this.sessionPaths.get(kernelId) ?? `kernel ${kernelId.slice(0, 8)}`,
        reason: String(event.reason ?? ''),
        idleSeconds: typeof event.idle_seconds === 'number' ? event.idle_seconds : null,
        at: this.clock.now()
      };
      this.culls = [cull, ...this.culls].slice(0, 20);
      this._changed.emit();
      if (document !== undefined) {
        this._culled.emit(cull);
      }
    }
    void this.refresh();
  }

  /** The open notebook or console that used `kernelId`, even after its kernel went away. */
  documentOf(kernelId: string): IOpenDocument | undefined {
    return this.openDocuments.get(kernelId) ?? this.lastOpen.get(kernelId);
  }

  private started = false;
  private _isDisposed = false;
  private stopListening: () => void = () => undefined;
  private tickTimer: number | undefined;
  /** Fetches the status: at the next deadline or warning, on `refresh()`, backing off on errors. */
  private readonly poll: Poll<IStatus, unknown, 'standby'>;
  private readonly coalesce: Throttler<undefined, unknown, []>;
  private followed = new WeakSet<object>();
  private readonly requests = new RunningRequests();
  /** Every kernel a notebook or console of this page used since it opened. */
  private lastOpen = new Map<string, IOpenDocument>();
  private readonly _changed = new Signal<this, void>(this);
  private readonly _culled = new Signal<this, ICull>(this);
  private readonly _ticked = new Signal<this, void>(this);
}

function sameDocuments(a: Map<string, IOpenDocument>, b: Map<string, IOpenDocument>): boolean {
  if (a.size !== b.size) {
    return false;
  }
  for (const [kernelId, document] of b) {
    const other = a.get(kernelId);
    if (!other || other.widget !== document.widget || other.path !== document.path || other.current !== document.current) {
      return false;
    }
  }
  return true;
}
