import { Notification } from '@jupyterlab/apputils';
import { Button, ReactWidget, refreshIcon, SidePanel, ToolbarButton, UseSignal } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';
import { Panel } from '@lumino/widgets';
import React from 'react';

import type { KeepAliveTarget } from './api';
import { DailyStopForm, SettingsForm } from './form';
import { describeAction, formatDuration, formatLocalTime, formatMinutes, lastActivityText, localizeTimes, secondsUntil } from './format';
import { autoShutdownIcon } from './icon';
import { AutoShutdownModel } from './model';
import type { IResourceStatus, IStatus } from './types';
import { Warnings } from './warnings';

export const PANEL_ID = 'jupyter-autoshutdown-panel';

/**
 * The sidebar: what will stop and when (every kernel by its notebook or console, every terminal,
 * then the server), why, and what can be done about it; the keep-alive in force; the latest culls
 * with their full reasons; the settings.
 *
 * It renders the model and calls the model's commands. While it is collapsed it does no work: the
 * model's changes and ticks reach its views only while it is visible, and showing it renders the
 * latest state. A tick touches only countdown texts.
 */
export class AutoShutdownPanel extends SidePanel {
  constructor(
    private readonly model: AutoShutdownModel,
    warnings: Warnings
  ) {
    // One section: a plain panel, not the default accordion with its title bar.
    super({ content: new Panel() });
    this.id = PANEL_ID;
    this.addClass('jp-AutoShutdown-panel');
    this.title.icon = autoShutdownIcon;
    this.title.caption = 'Auto-shutdown';
    this.header.addWidget(ReactWidget.create(<h2 className="jp-AutoShutdown-heading">Auto-shutdown</h2>));
    this.toolbar.addItem(
      'refresh',
      new ToolbarButton({ icon: refreshIcon, tooltip: 'Refresh the auto-shutdown status', onClick: () => void model.refresh() })
    );
    this.toolbar.addItem(
      'keep-all',
      new ToolbarButton({
        icon: autoShutdownIcon,
        label: 'Keep all alive',
        tooltip: 'Keep every kernel, terminal and the server alive for a while',
        onClick: () => void warnings.keepAlive({})
      })
    );
    const views = { changed: this.viewChanged, ticked: this.viewTicked };
    const content = ReactWidget.create(
      <UseSignal signal={this.viewChanged}>{() => <PanelBody model={model} warnings={warnings} views={views} />}</UseSignal>
    );
    content.addClass('jp-AutoShutdown-body');
    this.addWidget(content);
    model.changed.connect(this.onModelChanged, this);
    model.ticked.connect(this.onTick, this);
  }

  dispose(): void {
    this.model.changed.disconnect(this.onModelChanged, this);
    this.model.ticked.disconnect(this.onTick, this);
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.viewChanged.emit(); // what changed while it was collapsed
  }

  private onModelChanged(): void {
    if (this.isVisible) {
      this.viewChanged.emit();
    }
  }

  private onTick(): void {
    if (this.isVisible) {
      this.viewTicked.emit();
    }
  }

  private readonly viewChanged = new Signal<this, void>(this);
  private readonly viewTicked = new Signal<this, void>(this);
}

/** The panel's own signals: the model's, passed on only while the panel is visible. */
interface IViews {
  changed: ISignal<unknown, void>;
  ticked: ISignal<unknown, void>;
}

/** Text that depends on the time (a countdown): re-rendered on each tick, alone. */
function Countdown({ views, model, text }: { views: IViews; model: AutoShutdownModel; text: (now: number) => string }): JSX.Element {
  return <UseSignal signal={views.ticked}>{() => <>{text(model.now())}</>}</UseSignal>;
}

function PanelBody({ model, warnings, views }: { model: AutoShutdownModel; warnings: Warnings; views: IViews }): JSX.Element {
  const status = model.status;
  if (status === null) {
    return <p className="jp-AutoShutdown-hint">The auto-shutdown status is not available (is the server extension enabled?).</p>;
  }
  const now = model.now();
  const minutes = warnings.keepAliveMinutes();
  const act = (work: () => Promise<unknown>, failure: string) => async () => {
    try {
      await work();
    } catch (error) {
      Notification.error(`${failure}: ${(error as Error).message}`, { autoClose: 8000 });
    }
  };
  const keepButtons = (resource: IResourceStatus, target: KeepAliveTarget) => {
    const kept = secondsUntil(resource.keep_alive_until, now);
    if (kept !== null && kept > 0) {
      return (
        <>
          <span className="jp-AutoShutdown-kept">kept until {formatLocalTime(resource.keep_alive_until, now)}</span>
          <Button small minimal className="jp-AutoShutdown-action" onClick={act(() => model.cancelKeepAlive(target), 'Cancelling failed')}>
            Cancel keep-alive
          </Button>
        </>
      );
    }
    return minutes > 0 ? (
      <Button
        small
        minimal
        className="jp-AutoShutdown-action"
        title={`Keep only this one for ${formatDuration(minutes * 60)}`}
        onClick={() => void warnings.keepAlive(target)}
      >
        Keep {formatDuration(minutes * 60)}
      </Button>
    ) : null;
  };
  return (
    <div className="jp-AutoShutdown-content">
      <Summary status={status} model={model} views={views} />
      <KeepAllAlive status={status} model={model} views={views} />
      <section aria-label="Kernels">
        <h3>Kernels ({status.kernels.length})</h3>
        {status.kernels.length === 0 && <p className="jp-AutoShutdown-hint">No kernels are running.</p>}
        {status.kernels.map(kernel => (
          <Row
            key={kernel.id}
            kind="kernel"
            title={model.describeKernel(kernel.id!, kernel.name)}
            subtitle={kernel.name}
            resource={kernel}
            model={model}
            views={views}
          >
            {model.writable && keepButtons(kernel, { kernel_id: kernel.id! })}
            {model.writable && (
              <Button
                small
                minimal
                className="jp-AutoShutdown-action jp-mod-warn"
                onClick={act(() => model.shutDownKernel(kernel.id!), 'Shutting down failed')}
              >
                Shut down now
              </Button>
            )}
          </Row>
        ))}
      </section>
      <section aria-label="Terminals">
        <h3>Terminals ({status.terminals.length})</h3>
        {status.terminals.length === 0 && <p className="jp-AutoShutdown-hint">No terminals are open.</p>}
        {status.terminals.map(terminal => (
          <Row
            key={terminal.name}
            kind="terminal"
            title={`Terminal ${terminal.name}`}
            subtitle=""
            resource={terminal}
            model={model}
            views={views}
          >
            {model.writable && keepButtons(terminal, { terminal: terminal.name })}
            {model.writable && (
              <Button
                small
                minimal
                className="jp-AutoShutdown-action jp-mod-warn"
                onClick={act(() => model.shutDownTerminal(terminal.name), 'Closing failed')}
              >
                Close now
              </Button>
            )}
          </Row>
        ))}
      </section>
      {model.culls.length > 0 && (
        <section aria-label="Recently shut down">
          <h3>Recently shut down</h3>
          <ul className="jp-AutoShutdown-culls">
            {model.culls.map(cull => (
              <li key={`${cull.kernelId}-${cull.at}`}>
                <strong>{cull.path}</strong> at {formatLocalTime(new Date(cull.at).toISOString(), now)}: {localizeTimes(cull.reason, now)}
              </li>
            ))}
          </ul>
        </section>
      )}
      <section aria-label="Settings">
        <h3>Settings</h3>
        <SettingsForm settings={status.settings} writable={model.writable} save={changes => model.saveSettings(changes)} />
        {status.settings.daily_stop && (
          <DailyStopForm
            stop={status.settings.daily_stop}
            writable={model.writable}
            save={changes => model.saveSettings(changes)}
            reset={() => model.resetSettings('daily_stop')}
          />
        )}
      </section>
    </div>
  );
}

function Summary({ status, model, views }: { status: IStatus; model: AutoShutdownModel; views: IViews }): JSX.Element {
  const settings = status.settings;
  if (settings.idle_timeout_minutes === 0) {
    return <p className="jp-AutoShutdown-summary">Auto-shutdown is off: nothing is shut down for being idle.</p>;
  }
  const app = status.app;
  const server = (now: number): string => {
    const left = secondsUntil(app.action_at, now);
    if (app.action === 'none') {
      return 'When nothing is left, the server itself keeps running.';
    } else if (app.own_schedule) {
      return `${app.own_schedule}.`;
    } else if (left !== null) {
      return `Nothing is left: ${describeAction(app)} at ${formatLocalTime(app.action_at, now)} (in ${formatDuration(left)}) unless someone uses it.`;
    } else if (app.last_run_at) {
      return `'${app.action}' ran at ${formatLocalTime(app.last_run_at, now)}; it runs again after new activity.`;
    }
    return `When nothing is left and nobody uses the server for ${formatMinutes(settings.idle_timeout_minutes)}, ${describeAction(app)}.`;
  };
  return (
    <div className="jp-AutoShutdown-summary">
      <p>
        Kernels and terminals idle for <strong>{formatMinutes(settings.idle_timeout_minutes)}</strong> are shut down
        {settings.keep_terminals ? ' (terminals are kept)' : ''}.
      </p>
      <p>
        <Countdown views={views} model={model} text={server} />
      </p>
      {app.last_activity_source && !app.own_schedule && (
        <p className="jp-AutoShutdown-last-activity">
          <Countdown views={views} model={model} text={now => lastActivityText(app, now)} />
        </p>
      )}
      {app.last_error && (
        <p className="jp-AutoShutdown-app-error" role="alert">
          The last attempt failed: {app.last_error}
        </p>
      )}
      <UnsavedLines status={status} now={model.now()} />
    </div>
  );
}

/** What open pages hold unsaved, what the app action waits for, and the last save on its behalf. */
function UnsavedLines({ status, now }: { status: IStatus; now: number }): JSX.Element | null {
  const documents = status.documents;
  if (!documents) {
    return null;
  }
  const last = documents.last_save;
  return (
    <>
      {documents.unsavable.length > 0 && (
        <p className="jp-AutoShutdown-unsavable" role="alert">
          Cannot be saved before the server stops: {documents.unsavable.map(item => `${item.path} (${item.reason})`).join(', ')}
          {documents.grace_minutes > 0 ? `; the server waits for them at most ${formatMinutes(documents.grace_minutes)}.` : '.'}
        </p>
      )}
      {documents.waiting_until && (
        <p className="jp-AutoShutdown-waiting">
          Waiting until {formatLocalTime(documents.waiting_until, now)} for open pages to save: {documents.waiting_for.join(', ')}.
        </p>
      )}
      {last && (last.saved.length > 0 || last.failed.length > 0) && (
        <p className="jp-AutoShutdown-lastSave">
          {last.saved.length > 0 ? `Saved before stopping at ${formatLocalTime(last.at, now)}: ${last.saved.join(', ')}.` : ''}
          {last.failed.length > 0 ? ` Not saved: ${last.failed.map(item => item.path).join(', ')}.` : ''}
        </p>
      )}
    </>
  );
}

function KeepAllAlive({ status, model, views }: { status: IStatus; model: AutoShutdownModel; views: IViews }): JSX.Element | null {
  const left = secondsUntil(status.keep_alive_until, model.now());
  if (left === null || left <= 0) {
    return null;
  }
  const cancel = async () => {
    try {
      await model.cancelKeepAlive();
    } catch (error) {
      Notification.error(`Cancelling failed: ${(error as Error).message}`, { autoClose: 8000 });
    }
  };
  const text = (now: number) =>
    `Everything is kept alive until ${formatLocalTime(status.keep_alive_until, now)} (for ${formatDuration(secondsUntil(status.keep_alive_until, now) ?? 0)}).`;
  return (
    <div className="jp-AutoShutdown-keepall" role="status">
      <Countdown views={views} model={model} text={text} />
      {model.writable && (
        <Button small minimal className="jp-AutoShutdown-action" onClick={() => void cancel()}>
          Cancel
        </Button>
      )}
    </div>
  );
}

function Row(props: {
  kind: string;
  title: string;
  subtitle: string;
  resource: IResourceStatus;
  model: AutoShutdownModel;
  views: IViews;
  children?: React.ReactNode;
}): JSX.Element {
  const { resource, model, views } = props;
  const now = model.now();
  const state = resource.execution_state ?? (props.kind === 'terminal' ? 'open' : 'unknown');
  const when = (at: number): string => {
    const left = secondsUntil(resource.shutdown_at, at);
    if (left === null) {
      return 'not scheduled';
    } else if (left <= 0) {
      return 'stopping now';
    }
    return `stops at ${formatLocalTime(resource.shutdown_at, at)} (in ${formatDuration(left)})`;
  };
  return (
    <div className="jp-AutoShutdown-row" data-kind={props.kind} data-id={resource.id ?? resource.name}>
      <div className="jp-AutoShutdown-rowTitle" title={props.title}>
        {props.title}
        {props.subtitle && <span className="jp-AutoShutdown-subtitle">{props.subtitle}</span>}
        <span className={`jp-AutoShutdown-state jp-AutoShutdown-state-${state}`}>{state}</span>
      </div>
      <div className="jp-AutoShutdown-when">
        <Countdown views={views} model={model} text={when} />
        {resource.last_activity ? `; last active ${formatLocalTime(resource.last_activity, now)}` : ''}
      </div>
      <div className="jp-AutoShutdown-reason">{localizeTimes(resource.reason, now)}</div>
      <div className="jp-AutoShutdown-actions">{props.children}</div>
    </div>
  );
}
