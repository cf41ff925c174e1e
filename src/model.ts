import { JupyterFrontEnd } from '@jupyterlab/application';
import { Event } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { canWrite, getStatus } from './api';
import { ICurrentKernel, IStatus, nextRefreshDelay } from './format';
import { IStatusMessage, RunningRequests } from './requests';

export const EVENT_SCHEMA = 'https://events.jupyter.org/jupyter_autoshutdown/v1';
const KERNEL_ACTIONS_SCHEMA = 'https://events.jupyter.org/jupyter_server/kernel_actions/v1';
/** Changes that come in bursts (a cell start sends several status messages) share one request. */
const REFRESH_COALESCE_MS = 150;

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
 * the server's events (kernel started or restarted, warning, cull, keep-alive). Between those it
 * looks again at the next deadline or warning (at most every 30 s); countdowns run locally.
 */
export class AutoShutdownModel {
  status: IStatus | null = null;
  writable = false;
  preferences: IPreferences = { ...DEFAULT_PREFERENCES };
  /** Kernel id -> the path of its session, for every session on the server. */
  sessionPaths = new Map<string, string>();
  /** Kernel id -> the notebook or console open in this page that uses it. */
  openDocuments = new Map<string, IOpenDocument>();
  /** The latest culls, newest first (the panel shows their full reasons). */
  culls: ICull[] = [];

  constructor(private readonly app: JupyterFrontEnd) {
    window.setInterval(() => this.tick(), 1000); // local countdowns: no request
    app.serviceManager.events.stream.connect((_, event) => this.onEvent(event));
    app.serviceManager.sessions.runningChanged.connect(() => {
      this.readSessions();
      this.scheduleRefresh();
    });
    const shell = app.shell as unknown as { currentChanged?: ISignal<unknown, unknown>; layoutModified?: ISignal<unknown, unknown> };
    shell.currentChanged?.connect(() => this.tick());
    shell.layoutModified?.connect(() => this.tick());
    void canWrite().then(writable => {
      this.writable = writable;
      this._changed.emit();
    });
    this.readSessions();
    void this.refresh();
  }

  /** Emitted after every refresh and every tick (once a second). */
  get changed(): ISignal<this, void> {
    return this._changed;
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

  /** Fetch the status now, then again at the next deadline or warning (at most every 30 s). */
  async refresh(): Promise<void> {
    window.clearTimeout(this.refreshTimer);
    window.clearTimeout(this.coalesceTimer);
    this.coalesceTimer = undefined;
    try {
      this.status = await getStatus();
    } catch {
      this.status = null;
    }
    this.tick();
    this.refreshTimer = window.setTimeout(() => void this.refresh(), nextRefreshDelay(this.status, Date.now()));
  }

  /** Refresh soon: several changes within REFRESH_COALESCE_MS make one request. */
  scheduleRefresh(): void {
    if (this.coalesceTimer === undefined) {
      this.coalesceTimer = window.setTimeout(() => void this.refresh(), REFRESH_COALESCE_MS);
    }
  }

  private tick(): void {
    this.watchOpenDocuments();
    this._changed.emit();
  }

  /** Find the notebooks and consoles open now, and follow their kernels' status and changes. */
  private watchOpenDocuments(): void {
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
        context.kernelChanged?.connect(() => this.scheduleRefresh());
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
    this.openDocuments = open;
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

  private onEvent(event: Event.Emission): void {
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
        at: Date.now()
      };
      this.culls = [cull, ...this.culls].slice(0, 20);
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

  private refreshTimer: number | undefined;
  private coalesceTimer: number | undefined;
  private followed = new WeakSet<object>();
  private readonly requests = new RunningRequests();
  /** Every kernel a notebook or console of this page used since it opened. */
  private lastOpen = new Map<string, IOpenDocument>();
  private readonly _changed = new Signal<this, void>(this);
  private readonly _culled = new Signal<this, ICull>(this);
}
