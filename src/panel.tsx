import { Notification } from '@jupyterlab/apputils';
import { ReactWidget, refreshIcon, SidePanel, ToolbarButton, UseSignal } from '@jupyterlab/ui-components';
import { Panel } from '@lumino/widgets';
import React from 'react';

import { cancelKeepAlive, KeepAliveTarget, shutDownKernel, shutDownTerminal } from './api';
import { SettingsForm } from './form';
import {
  describeAction,
  formatDuration,
  formatLocalTime,
  formatMinutes,
  IResourceStatus,
  IStatus,
  localizeTimes,
  secondsUntil
} from './format';
import { autoShutdownIcon } from './icon';
import { AutoShutdownModel } from './model';
import { Warnings } from './warnings';

export const PANEL_ID = 'jupyter-autoshutdown-panel';

/**
 * The sidebar: what will stop and when (every kernel by its notebook or console, every terminal,
 * then the server), why, and what can be done about it; the keep-alive in force; the latest culls
 * with their full reasons; the settings.
 */
export class AutoShutdownPanel extends SidePanel {
  constructor(model: AutoShutdownModel, warnings: Warnings) {
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
    const content = ReactWidget.create(
      <UseSignal signal={model.changed}>{() => <PanelBody model={model} warnings={warnings} />}</UseSignal>
    );
    content.addClass('jp-AutoShutdown-body');
    this.addWidget(content);
  }
}

function PanelBody({ model, warnings }: { model: AutoShutdownModel; warnings: Warnings }): JSX.Element {
  const status = model.status;
  if (status === null) {
    return <p className="jp-AutoShutdown-hint">The auto-shutdown status is not available (is the server extension enabled?).</p>;
  }
  const now = Date.now();
  const minutes = warnings.keepAliveMinutes();
  const act = (work: () => Promise<unknown>, failure: string) => async () => {
    try {
      await work();
    } catch (error) {
      Notification.error(`${failure}: ${(error as Error).message}`, { autoClose: 8000 });
    }
    await model.refresh();
  };
  const keepButtons = (resource: IResourceStatus, target: KeepAliveTarget) => {
    const kept = secondsUntil(resource.keep_alive_until, now);
    if (kept !== null && kept > 0) {
      return (
        <>
          <span className="jp-AutoShutdown-kept">kept until {formatLocalTime(resource.keep_alive_until, now)}</span>
          <button className="jp-AutoShutdown-action" onClick={act(() => cancelKeepAlive(target), 'Cancelling failed')}>
            Cancel keep-alive
          </button>
        </>
      );
    }
    return minutes > 0 ? (
      <button className="jp-AutoShutdown-action" title={`Keep only this one for ${formatDuration(minutes * 60)}`} onClick={() => void warnings.keepAlive(target)}>
        Keep {formatDuration(minutes * 60)}
      </button>
    ) : null;
  };
  return (
    <div className="jp-AutoShutdown-content">
      <Summary status={status} now={now} />
      <KeepAllAlive status={status} now={now} model={model} />
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
            now={now}
          >
            {model.writable && keepButtons(kernel, { kernel_id: kernel.id! })}
            {model.writable && (
              <button className="jp-AutoShutdown-action jp-mod-warn" onClick={act(() => shutDownKernel(kernel.id!), 'Shutting down failed')}>
                Shut down now
              </button>
            )}
          </Row>
        ))}
      </section>
      <section aria-label="Terminals">
        <h3>Terminals ({status.terminals.length})</h3>
        {status.terminals.length === 0 && <p className="jp-AutoShutdown-hint">No terminals are open.</p>}
        {status.terminals.map(terminal => (
          <Row key={terminal.name} kind="terminal" title={`Terminal ${terminal.name}`} subtitle="" resource={terminal} now={now}>
            {model.writable && keepButtons(terminal, { terminal: terminal.name })}
            {model.writable && (
              <button className="jp-AutoShutdown-action jp-mod-warn" onClick={act(() => shutDownTerminal(terminal.name), 'Closing failed')}>
                Close now
              </button>
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
        <SettingsForm settings={status.settings} writable={model.writable} onSaved={() => void model.refresh()} />
      </section>
    </div>
  );
}

function Summary({ status, now }: { status: IStatus; now: number }): JSX.Element {
  const settings = status.settings;
  if (settings.idle_timeout_minutes === 0) {
    return <p className="jp-AutoShutdown-summary">Auto-shutdown is off: nothing is shut down for being idle.</p>;
  }
  const app = status.app;
  const left = secondsUntil(app.action_at, now);
  let server: string;
  if (app.action === 'none') {
    server = 'When nothing is left, the server itself keeps running.';
  } else if (app.own_schedule) {
    server = `${app.own_schedule}.`;
  } else if (left !== null) {
    server = `Nothing is left: ${describeAction(app.action)} at ${formatLocalTime(app.action_at, now)} (in ${formatDuration(left)}) unless someone uses it.`;
  } else if (app.last_run_at) {
    server = `'${app.action}' ran at ${formatLocalTime(app.last_run_at, now)}; it runs again after new activity.`;
  } else {
    server = `When nothing is left and nobody uses the server for ${formatMinutes(settings.idle_timeout_minutes)}, ${describeAction(app.action)}.`;
  }
  return (
    <div className="jp-AutoShutdown-summary">
      <p>
        Kernels and terminals idle for <strong>{formatMinutes(settings.idle_timeout_minutes)}</strong> are shut down
        {settings.keep_terminals ? ' (terminals are kept)' : ''}.
      </p>
      <p>{server}</p>
    </div>
  );
}

function KeepAllAlive({ status, now, model }: { status: IStatus; now: number; model: AutoShutdownModel }): JSX.Element | null {
  const left = secondsUntil(status.keep_alive_until, now);
  if (left === null || left <= 0) {
    return null;
  }
  const cancel = async () => {
    try {
      await cancelKeepAlive();
    } catch (error) {
      Notification.error(`Cancelling failed: ${(error as Error).message}`, { autoClose: 8000 });
    }
    await model.refresh();
  };
  return (
    <div className="jp-AutoShutdown-keepall" role="status">
      Everything is kept alive until {formatLocalTime(status.keep_alive_until, now)} (for {formatDuration(left)}).
      {model.writable && (
        <button className="jp-AutoShutdown-action" onClick={() => void cancel()}>
          Cancel
        </button>
      )}
    </div>
  );
}

function Row(props: {
  kind: string;
  title: string;
  subtitle: string;
  resource: IResourceStatus;
  now: number;
  children?: React.ReactNode;
}): JSX.Element {
  const { resource, now } = props;
  const left = secondsUntil(resource.shutdown_at, now);
  const state = resource.execution_state ?? (props.kind === 'terminal' ? 'open' : 'unknown');
  let when: string;
  if (left === null) {
    when = 'not scheduled';
  } else if (left <= 0) {
    when = 'stopping now';
  } else {
    when = `stops at ${formatLocalTime(resource.shutdown_at, now)} (in ${formatDuration(left)})`;
  }
  return (
    <div className="jp-AutoShutdown-row" data-kind={props.kind} data-id={resource.id ?? resource.name}>
      <div className="jp-AutoShutdown-rowTitle" title={props.title}>
        {props.title}
        {props.subtitle && <span className="jp-AutoShutdown-subtitle">{props.subtitle}</span>}
        <span className={`jp-AutoShutdown-state jp-AutoShutdown-state-${state}`}>{state}</span>
      </div>
      <div className="jp-AutoShutdown-when">
        {when}
        {resource.last_activity ? `; last active ${formatLocalTime(resource.last_activity, now)}` : ''}
      </div>
      <div className="jp-AutoShutdown-reason">{localizeTimes(resource.reason, now)}</div>
      <div className="jp-AutoShutdown-actions">{props.children}</div>
    </div>
  );
}
