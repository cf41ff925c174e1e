import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, Notification } from '@jupyterlab/apputils';
import { Event } from '@jupyterlab/services';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

import { INTERACTION_EVENTS, InteractionReporter, isPersonEvent, reportInterval } from './activity';
import { canWrite, getStatus, keepAlive, reportActivity } from './api';
import { formatDuration, IStatus, nextRefreshDelay, secondsUntil, shouldWarn, statusText } from './format';
import { AutoShutdownPanel } from './panel';

const EVENT_SCHEMA = 'https://events.jupyter.org/jupyter_autoshutdown/v1';
const OPEN_PANEL = 'autoshutdown:open-panel';
const KEEP_ALIVE = 'autoshutdown:keep-alive';
/** What "Keep alive" asks for, bounded by the server's max_keep_alive. */
const KEEP_ALIVE_MINUTES = 60;

/** The kernel of a notebook or console widget, if any (works in JupyterLab and Notebook 7). */
function kernelOf(widget: any): string | null {
  const sessionContext = widget?.sessionContext ?? widget?.context?.sessionContext;
  return sessionContext?.session?.kernel?.id ?? null;
}

function currentKernelId(app: JupyterFrontEnd): string | null {
  return kernelOf(app.shell.currentWidget);
}

class AutoShutdownView {
  status: IStatus | null = null;
  writable = false;
  private warnedFor = new Map<string, string>();
  /** Warnings on screen: target ("app" or a kernel id) -> the toast and the deadline it names. */
  private shownWarnings = new Map<string, { id: string; shutdownAt: string }>();
  /** Kernel id -> title of the open notebook or console using it, as of the last tick. */
  private openKernels = new Map<string, string>();
  private refreshTimer: number | undefined;
  private panel: MainAreaWidget<AutoShutdownPanel> | null = null;
  readonly statusItem = new Widget();
  /** Tells the server a person is here: an open tab nobody uses must not keep it running. */
  private readonly reporter = new InteractionReporter(
    idleSeconds => void this.reportActivity(idleSeconds),
    () => reportInterval(this.status?.settings.idle_timeout_minutes ?? null)
  );

  constructor(private readonly app: JupyterFrontEnd) {
    this.statusItem.addClass('jp-AutoShutdown-status');
    this.statusItem.node.title = 'Auto-shutdown: click for details';
    this.statusItem.node.addEventListener('click', () => this.openPanel());
    window.setInterval(() => this.tick(), 1000); // local countdown: no request
    const onInteraction = (event: globalThis.Event) => {
      if (isPersonEvent(event as PointerEvent)) {
        this.reporter.interaction();
      }
    };
    for (const type of INTERACTION_EVENTS) {
      document.addEventListener(type, onInteraction, { capture: true, passive: true });
    }
    // The person switched to this tab or window.
    window.addEventListener('focus', onInteraction);
    app.serviceManager.events.stream.connect((_, event) => this.onEvent(event));
    void canWrite().then(writable => (this.writable = writable));
    void this.refresh();
  }

  /** Fetch the status now, then again at the next deadline or warning (at most every 30 s). */
  async refresh(): Promise<void> {
    window.clearTimeout(this.refreshTimer);
    try {
      this.status = await getStatus();
    } catch (error) {
      this.status = null;
    }
    this.tick();
    this.refreshTimer = window.setTimeout(
      () => void this.refresh(),
      nextRefreshDelay(this.status, Date.now())
    );
  }

  private async reportActivity(idleSeconds: number): Promise<void> {
    try {
      await reportActivity(idleSeconds);
    } catch (error) {
      return; // an older server without the route, or offline: the countdown stays as it is
    }
    await this.refresh(); // the server's deadline moved: show it
  }

  private tick(): void {
    const now = Date.now();
    // Remembered between ticks: once a kernel is culled its widget no longer names it.
    for (const widget of this.app.shell.widgets('main')) {
      const id = kernelOf(widget);
      if (id) {
        this.openKernels.set(id, widget.title.label);
      }
    }
    const kernelId = currentKernelId(this.app);
    this.statusItem.node.textContent = statusText(this.status, kernelId, now);
    this.panel?.content.update_(this.status, this.writable, now);
    this.warn(kernelId, now);
  }

  private warn(kernelId: string | null, now: number): void {
    const status = this.status;
    if (!status) {
      return;
    }
    // A warning whose deadline moved (someone was active) or passed is withdrawn: a toast saying
    // "stops in 6 s" must not stay next to a countdown that says otherwise.
    for (const [target, shown] of this.shownWarnings) {
      const current =
        target === 'app' ? status.app.action_at : status.kernels.find(k => k.id === target)?.shutdown_at ?? null;
      if (current !== shown.shutdownAt) {
        Notification.dismiss(shown.id);
        this.shownWarnings.delete(target);
      }
    }
    const kernel = kernelId ? status.kernels.find(k => k.id === kernelId) : undefined;
    if (kernel && shouldWarn(kernel.shutdown_at, kernel.warning_at, now, this.warnedFor.get(kernel.id!) ?? null)) {
      this.warnedFor.set(kernel.id!, kernel.shutdown_at!);
      this.notify(kernel.id!, kernel.shutdown_at!, `Auto-shutdown will shut down this kernel in ${formatDuration(secondsUntil(kernel.shutdown_at, now)!)}.`);
    }
    const app = status.app;
    if (!kernel && status.kernels.length === 0 && status.terminals.length === 0 && app.action !== 'none' && !app.own_schedule && app.action_at) {
      const warningAt = new Date(Date.parse(app.action_at) - status.settings.warning_seconds * 1000).toISOString();
      if (shouldWarn(app.action_at, warningAt, now, this.warnedFor.get('app') ?? null)) {
        this.warnedFor.set('app', app.action_at);
        this.notify('app', app.action_at, `Auto-shutdown will stop this server ('${app.action}') in ${formatDuration(secondsUntil(app.action_at, now)!)}.`);
      }
    }
  }

  private notify(target: string, shutdownAt: string, message: string): void {
    const previous = this.shownWarnings.get(target);
    if (previous) {
      Notification.dismiss(previous.id);
    }
    const id = Notification.warning(message, {
      autoClose: false,
      actions: [
        { label: 'Keep alive', callback: () => void this.keepAlive(), displayType: 'accent' },
        { label: 'Dismiss', callback: () => undefined }
      ]
    });
    this.shownWarnings.set(target, { id, shutdownAt });
  }

  async keepAlive(): Promise<void> {
    const maximum = this.status?.settings.max_keep_alive_minutes ?? KEEP_ALIVE_MINUTES;
    try {
      await keepAlive(Math.min(KEEP_ALIVE_MINUTES, maximum));
      Notification.success(`Kept alive for ${formatDuration(Math.min(KEEP_ALIVE_MINUTES, maximum) * 60)}.`, { autoClose: 4000 });
    } catch (error) {
      Notification.error(`Keep-alive failed: ${(error as Error).message}`);
    }
    await this.refresh();
  }

  /** After a cull, say plainly in the notebook what happened and why. */
  private onEvent(event: Event.Emission): void {
    if (event.schema_id !== EVENT_SCHEMA) {
      return;
    }
    const title = this.openKernels.get(String(event.target));
    if (event.event === 'culled' && event.kind === 'kernel' && title !== undefined) {
      this.openKernels.delete(String(event.target));
      Notification.error(
        `Auto-shutdown shut this notebook's kernel down (${title}): ${event.reason}. ` +
          'Restart the kernel to go on; the notebook itself is untouched.',
        { autoClose: false }
      );
    }
    void this.refresh();
  }

  openPanel(): void {
    if (!this.panel || this.panel.isDisposed) {
      this.panel = new MainAreaWidget({ content: new AutoShutdownPanel(() => void this.refresh()) });
      this.panel.id = 'jupyter-autoshutdown-panel';
      this.panel.title.label = 'Auto-shutdown';
    }
    if (!this.panel.isAttached) {
      this.app.shell.add(this.panel, 'main');
    }
    this.app.shell.activateById(this.panel.id);
    this.tick();
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-autoshutdown:plugin',
  description: 'Auto-shutdown countdown, warnings, keep-alive and panel.',
  autoStart: true,
  optional: [IStatusBar, ICommandPalette],
  activate: (app: JupyterFrontEnd, statusBar: IStatusBar | null, palette: ICommandPalette | null) => {
    const view = new AutoShutdownView(app);
    app.commands.addCommand(OPEN_PANEL, {
      label: 'Auto-shutdown: show kernels, countdowns and settings',
      execute: () => view.openPanel()
    });
    app.commands.addCommand(KEEP_ALIVE, {
      label: 'Auto-shutdown: keep everything alive for an hour',
      execute: () => view.keepAlive()
    });
    palette?.addItem({ command: OPEN_PANEL, category: 'Auto-shutdown' });
    palette?.addItem({ command: KEEP_ALIVE, category: 'Auto-shutdown' });
    statusBar?.registerStatusItem('jupyter-autoshutdown:status', {
      item: view.statusItem,
      align: 'left',
      rank: 1000
    });
  }
};

export default plugin;
