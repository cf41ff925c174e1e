import type { IRunningSessions } from '@jupyterlab/running';
import type { LabIcon } from '@jupyterlab/ui-components';
import type { ISignal } from '@lumino/signaling';

import { formatLocalTime, localizeTimes, runningDetail } from './format';
import type { IStatus } from './types';

/** What the section reads of the model (AutoShutdownModel in the page; a fake in tests). */
export interface IRunningSource {
  readonly status: IStatus | null;
  readonly changed: ISignal<unknown, void>;
  now(): number;
  describeKernel(kernelId: string, kernelName?: string): string;
  documentOf(kernelId: string): { widget: { id: string } } | undefined;
  refresh(): Promise<void>;
  shutDownKernel(kernelId: string): Promise<void>;
}

export interface IRunningOptions {
  icon: LabIcon;
  /** Bring a widget of the main area to the front (`app.shell.activateById`). */
  activate: (widgetId: string) => void;
  /** Open the auto-shutdown panel (for a kernel no tab of this page uses). */
  openPanel: () => void;
  /** Say that a shut-down failed (a notification in the page). */
  failed: (message: string) => void;
}

/**
 * A section of JupyterLab's "Running Terminals and Kernels" sidebar (`IRunningSessionManagers`):
 * every kernel by its notebook or console, with when auto-shutdown stops it ("stops at 18:05",
 * "kept until 19:00", "busy"), the reason on hover; a click opens its notebook (or the panel),
 * the row's button shuts it down now. It changes when the model does (no ticking: the times are
 * clock times).
 */
export function runningManager(model: IRunningSource, options: IRunningOptions): IRunningSessions.IManager {
  const shutDown = (kernelId: string) =>
    model.shutDownKernel(kernelId).catch(error => options.failed(`The kernel could not be shut down: ${error?.message ?? error}`));
  const kernels = () => model.status?.kernels.filter(kernel => kernel.id) ?? [];
  return {
    name: 'Auto-shutdown',
    supportsMultipleViews: false,
    runningChanged: model.changed,
    refreshRunning: () => void model.refresh(),
    running: () =>
      kernels().map(kernel => {
        const id = kernel.id!;
        const path = model.describeKernel(id, kernel.name);
        return {
          className: 'jp-AutoShutdown-runningItem',
          context: id,
          icon: () => options.icon,
          label: () => path,
          labelTitle: () => {
            const now = model.now();
            const when = kernel.shutdown_at ? ` Stops at ${formatLocalTime(kernel.shutdown_at, now)} unless it is used.` : '';
            return `${path}: ${runningDetail(kernel, model.status?.keep_alive_until ?? null, now)}.${when} ${localizeTimes(kernel.reason, now)}`;
          },
          detail: () => runningDetail(kernel, model.status?.keep_alive_until ?? null, model.now()),
          open: () => {
            const document = model.documentOf(id);
            if (document) {
              options.activate(document.widget.id);
            } else {
              options.openPanel();
            }
          },
          shutdown: () => void shutDown(id)
        };
      }),
    shutdownAll: () => void Promise.all(kernels().map(kernel => shutDown(kernel.id!))),
    shutdownLabel: 'Shut down now',
    shutdownAllConfirmationText: 'Shut down every kernel listed now? Their variables are lost; their notebooks stay as saved.'
  };
}
