import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { IRunningSessionManagers } from '@jupyterlab/running';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { DisposableDelegate } from '@lumino/disposable';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { INTERACTION_EVENTS, InteractionReporter, isPersonEvent, reportInterval } from './activity';
import { autoShutdownApi, reportActivity, reportDocuments } from './api';
import { autoShutdownIcon } from './icon';
import { AutoShutdownModel, DEFAULT_PREFERENCES, EVENT_SCHEMA, IPreferences } from './model';
import { AutoShutdownPanel, PANEL_ID } from './panel';
import { runningManager } from './running';
import { CountdownItem } from './statusitem';
import { IAutoShutdown } from './tokens';
import { IOpenFile, UnsavedSaver } from './unsaved';
import { Warnings } from './warnings';

const PLUGIN_ID = 'jupyter-autoshutdown:plugin';
const OPEN_PANEL = 'autoshutdown:open-panel';
const KEEP_ALIVE = 'autoshutdown:keep-alive';

/**
 * Tells the server a person is using this page (keyboard, pointer, wheel, focus), so that an open
 * tab nobody uses does not keep the server, and its bill, running (see activity.ts).
 */
function reportPeopleActivity(model: AutoShutdownModel): void {
  const reporter = new InteractionReporter(
    idleSeconds =>
      void reportActivity(idleSeconds).then(
        () => model.scheduleRefresh(), // the server's deadline moved: show it
        () => undefined // an older server without the route, or offline
      ),
    () => reportInterval(model.status?.settings.idle_timeout_minutes ?? null)
  );
  const onInteraction = (event: globalThis.Event) => {
    if (isPersonEvent(event as PointerEvent)) {
      reporter.interaction();
    }
  };
  for (const type of INTERACTION_EVENTS) {
    document.addEventListener(type, onInteraction, { capture: true, passive: true });
  }
  // The person switched to this tab or window.
  window.addEventListener('focus', onInteraction);
}

/** The documents open in the page's main area, as the saver needs them (one per context). */
function openFiles(app: JupyterFrontEnd): IOpenFile[] {
  const files: IOpenFile[] = [];
  const seen = new Set<unknown>();
  for (const widget of app.shell.widgets('main')) {
    const context = (widget as unknown as { context?: DocumentRegistry.Context }).context;
    if (!context || seen.has(context) || !context.model || context.isDisposed) {
      continue;
    }
    seen.add(context);
    files.push({
      path: context.path,
      dirty: context.model.dirty,
      writable: context.contentsModel?.writable !== false,
      // As the Save command does: the save, then a checkpoint (its failure loses nothing).
      save: async () => {
        await context.save();
        await context.createCheckpoint().catch(() => undefined);
      }
    });
  }
  return files;
}

/**
 * Saves what this page holds unsaved before the app action stops the server: when the server's
 * warning for the app action comes, and when it asks just before the action (unsaved.ts).
 */
function saveBeforeTheAppAction(app: JupyterFrontEnd, model: AutoShutdownModel): UnsavedSaver {
  const page = typeof crypto !== 'undefined' && 'randomUUID' in crypto ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
  const saver = new UnsavedSaver(() => openFiles(app), reportDocuments, page, {
    now: () => Date.now(),
    setInterval: (callback, ms) => window.setInterval(callback, ms),
    clearInterval: handle => window.clearInterval(handle as number)
  });
  app.serviceManager.events.stream.connect((_, event) => {
    if (event.schema_id !== EVENT_SCHEMA) {
      return;
    }
    if (event.event === 'save_request' || (event.event === 'warning' && event.kind === 'app')) {
      void saver.saveAll().then(() => model.scheduleRefresh());
    }
  });
  window.addEventListener('pagehide', () => void saver.close().catch(() => undefined));
  saver.start();
  return saver;
}

const plugin: JupyterFrontEndPlugin<IAutoShutdown> = {
  id: PLUGIN_ID,
  description: 'Auto-shutdown: countdowns, warnings for every open notebook, keep-alive, a sidebar panel and settings.',
  autoStart: true,
  provides: IAutoShutdown,
  optional: [IStatusBar, ICommandPalette, ISettingRegistry, IRunningSessionManagers],
  activate: (
    app: JupyterFrontEnd,
    statusBar: IStatusBar | null,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    runningSessions: IRunningSessionManagers | null
  ): IAutoShutdown => {
    const model = new AutoShutdownModel(app, autoShutdownApi);
    model.start();
    reportPeopleActivity(model);
    const saver = saveBeforeTheAppAction(app, model);
    const warnings = new Warnings(model, saver);

    // A sidebar, as the original extension had, in JupyterLab and in Notebook 7 (whose shell
    // takes one main-area widget, but has sidebars).
    const panel = new AutoShutdownPanel(model, warnings);
    app.shell.add(panel, 'left', { rank: 950 });
    const openPanel = () => {
      void model.refresh();
      app.shell.activateById(PANEL_ID);
    };
    warnings.onDetails = openPanel;

    app.commands.addCommand(OPEN_PANEL, {
      label: 'Auto-shutdown: show what stops when, and the settings',
      icon: autoShutdownIcon,
      describedBy: { args: { type: 'object', properties: {} } },
      execute: openPanel
    });
    app.commands.addCommand(KEEP_ALIVE, {
      label: () => `Auto-shutdown: keep everything alive for ${model.preferences.keepAliveMinutes} min`,
      describedBy: { args: { type: 'object', properties: {} } },
      execute: () => warnings.keepAlive({})
    });
    palette?.addItem({ command: OPEN_PANEL, category: 'Auto-shutdown' });
    palette?.addItem({ command: KEEP_ALIVE, category: 'Auto-shutdown' });

    // A section of the Running sidebar, where people look for their kernels.
    runningSessions?.add(
      runningManager(model, {
        icon: autoShutdownIcon,
        activate: id => app.shell.activateById(id),
        openPanel,
        failed: message => void Notification.error(message, { autoClose: 5000 })
      })
    );

    const preferencesChanged = new Signal<unknown, void>(plugin);
    if (statusBar) {
      const item = new CountdownItem(model, () => model.currentKernel(), openPanel);
      statusBar.registerStatusItem('jupyter-autoshutdown:status', {
        item,
        align: 'left',
        rank: 1000,
        isActive: () => model.preferences.showStatusItem,
        activeStateChanged: preferencesChanged
      });
    } else {
      // No status bar (Notebook 7): each notebook shows its own countdown in its toolbar.
      const extension: DocumentRegistry.IWidgetExtension<any, any> = {
        createNew: (notebook: any) => {
          const item = new CountdownItem(model, () => model.kernelOf(notebook), openPanel);
          item.addClass('jp-AutoShutdown-toolbarItem');
          (notebook.toolbar as { insertItem(index: number, name: string, widget: Widget): boolean }).insertItem(
            10,
            'autoshutdownCountdown',
            item
          );
          return new DisposableDelegate(() => item.dispose());
        }
      };
      app.docRegistry.addWidgetExtension('Notebook', extension);
    }

    if (settingRegistry) {
      void settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          const apply = () => {
            model.setPreferences({ ...DEFAULT_PREFERENCES, ...(settings.composite as Partial<IPreferences>) });
            preferencesChanged.emit();
          };
          settings.changed.connect(apply);
          apply();
        })
        .catch(reason => console.warn('jupyter-autoshutdown: preferences not loaded', reason));
    }
    return model;
  }
};

export default plugin;
export { IAutoShutdown } from './tokens';
export type { KeepAliveTarget } from './api';
export type * from './types';
