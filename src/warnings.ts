import { Notification } from '@jupyterlab/apputils';

import type { KeepAliveTarget } from './api';
import { appWarningMessage, cullMessage, formatDuration, secondsUntil, shouldWarn, warningMessage } from './format';
import { AutoShutdownModel, ICull } from './model';

/**
 * The page's warnings before a shutdown, and its message after a cull.
 *
 * Every notebook and console open in the page is warned for (not only the one in focus, unless
 * the preference says so), naming it; the server is warned for when its app action is due. One
 * warning per target at a time; a warning whose deadline moved or passed is withdrawn. "Keep
 * alive" keeps what the warning is about: that kernel, or for the server's warning, everything.
 */
export class Warnings {
  constructor(
    private readonly model: AutoShutdownModel,
    /** What this page holds unsaved (it saves them before the app action). */
    private readonly unsaved: { unsaved(): { unsaved: string[]; unsavable: { path: string }[] } } | null = null
  ) {
    // Time-based as well: a warning window opens as time passes.
    model.changed.connect(() => this.update());
    model.ticked.connect(() => this.update());
    model.culled.connect((_, cull) => this.showCull(cull));
  }

  private update(): void {
    const status = this.model.status;
    if (!status) {
      return;
    }
    const now = this.model.now();
    for (const [target, shown] of this.shown) {
      const current = target === APP ? status.app.action_at : (status.kernels.find(k => k.id === target)?.shutdown_at ?? null);
      if (current !== shown.shutdownAt) {
        Notification.dismiss(shown.id);
        this.shown.delete(target);
      }
    }
    for (const kernel of status.kernels) {
      const document = this.model.openDocuments.get(kernel.id!);
      if (!document || (!document.current && !this.model.preferences.warnBackground)) {
        continue;
      }
      if (shouldWarn(kernel.shutdown_at, kernel.warning_at, now, this.warnedFor.get(kernel.id!) ?? null)) {
        this.warnedFor.set(kernel.id!, kernel.shutdown_at!);
        const left = secondsUntil(kernel.shutdown_at, now)!;
        this.notify(kernel.id!, kernel.shutdown_at!, warningMessage(document.path, left), { kernel_id: kernel.id! });
      }
    }
    const app = status.app;
    if (status.kernels.length === 0 && status.terminals.length === 0 && app.action !== 'none' && !app.own_schedule && app.action_at) {
      const warningAt = new Date(Date.parse(app.action_at) - status.settings.warning_seconds * 1000).toISOString();
      const shown = this.shown.get(APP);
      const message = () => {
        const mine = this.unsaved?.unsaved() ?? { unsaved: [], unsavable: [] };
        const unsavable = new Set([
          ...mine.unsavable.map(item => item.path),
          ...(status.documents?.unsavable ?? []).map(item => item.path)
        ]);
        return { unsavable, text: appWarningMessage(secondsUntil(app.action_at, now)!, mine.unsaved, [...unsavable]) };
      };
      if (shouldWarn(app.action_at, warningAt, now, this.warnedFor.get(APP) ?? null)) {
        this.warnedFor.set(APP, app.action_at);
        const { text, unsavable } = message();
        this.notify(APP, app.action_at, text, {}, [...unsavable].join('\n'));
      } else if (shown && shown.shutdownAt === app.action_at) {
        // A save failed since the warning came: say so in it (the countdown text stays as shown).
        const { text, unsavable } = message();
        const names = [...unsavable].join('\n');
        if (names !== shown.unsavable) {
          this.notify(APP, app.action_at, text, {}, names);
        }
      }
    }
  }

  private notify(target: string, shutdownAt: string, message: string, keep: KeepAliveTarget, unsavable = ''): void {
    const previous = this.shown.get(target);
    if (previous) {
      Notification.dismiss(previous.id);
    }
    const minutes = this.keepAliveMinutes();
    const actions: Notification.IAction[] = [];
    if (minutes > 0) {
      actions.push({
        label: 'Keep alive',
        caption: `Keep ${target === APP ? 'everything' : 'this kernel'} for ${formatDuration(minutes * 60)}`,
        callback: () => void this.keepAlive(keep),
        displayType: 'accent'
      });
    }
    actions.push({ label: 'Dismiss', callback: () => undefined });
    const id = Notification.warning(message, { autoClose: false, actions });
    this.shown.set(target, { id, shutdownAt, unsavable });
  }

  /** The keep-alive offered: the preference, bounded by the server's max_keep_alive (0: none). */
  keepAliveMinutes(): number {
    const maximum = this.model.status?.settings.max_keep_alive_minutes ?? this.model.preferences.keepAliveMinutes;
    return Math.max(0, Math.min(this.model.preferences.keepAliveMinutes, maximum));
  }

  async keepAlive(target: KeepAliveTarget): Promise<void> {
    const minutes = this.keepAliveMinutes();
    const what = 'kernel_id' in target ? `The kernel of “${this.model.describeKernel(target.kernel_id)}” is` : 'Everything is';
    try {
      await this.model.keepAlive(minutes, target);
      Notification.success(`${what} kept alive for ${formatDuration(minutes * 60)}.`, { autoClose: 4000 });
    } catch (error) {
      Notification.error(`Keep-alive failed: ${(error as Error).message}`, { autoClose: 8000 });
    }
  }

  /** After a cull, say in the page what happened, in a few words, with a way to go on. */
  private showCull(cull: ICull): void {
    const document = this.model.documentOf(cull.kernelId);
    const actions: Notification.IAction[] = [];
    if (document) {
      actions.push({
        label: 'Restart kernel',
        caption: `Start a new ${document.kernelName} kernel for this notebook`,
        callback: () =>
          void this.model
            .restartAfterCull(cull)
            .catch(error => Notification.error(`Restarting failed: ${(error as Error).message}`, { autoClose: 8000 })),
        displayType: 'accent'
      });
    }
    actions.push({ label: 'Details', caption: 'Open the auto-shutdown panel', callback: () => this.onDetails() });
    Notification.info(cullMessage(cull.path, cull.idleSeconds), { autoClose: false, actions });
  }

  /** Set by the plugin: opens the panel (its "Recently shut down" list has the full reason). */
  onDetails: () => void = () => undefined;

  private warnedFor = new Map<string, string>();
  /** Warnings on screen: target (APP or a kernel id) -> the toast and the deadline it names. */
  private shown = new Map<string, { id: string; shutdownAt: string; unsavable: string }>();
}

const APP = 'app';
