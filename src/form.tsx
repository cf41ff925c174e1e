import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Button, InputGroup } from '@jupyterlab/ui-components';
import React from 'react';

import { allowedRange, checkTimeout, dailyStopText, formatMinutes, isStopTime } from './format';
import type { IDailyStop, ISettings } from './types';

interface IFormProps {
  settings: ISettings;
  writable: boolean;
  /** Sends the changes (the model's command, which refreshes the status after). */
  save: (changes: Record<string, unknown>) => Promise<unknown>;
}

/** What the user typed or ticked, kept apart from the server's values until saved or reverted. */
interface IDraft {
  timeout: string;
  keep_terminals: boolean;
  cull_busy: boolean;
  cull_connected: boolean;
}

/** What a form says after saving: that it worked, or why not. */
interface IFormMessage {
  text: string;
  kind: 'ok' | 'error';
}

/** The one place both forms show their message (announced to screen readers as a status). */
function FormMessageView(props: { message: IFormMessage | null }): JSX.Element | null {
  const message = props.message;
  if (!message) {
    return null;
  }
  return (
    <div role="status" className={`jp-AutoShutdown-message jp-AutoShutdown-message-${message.kind}`}>
      {message.text}
    </div>
  );
}

interface IFormState {
  draft: IDraft | null;
  message: IFormMessage | null;
  saving: boolean;
}

const MESSAGE_MS = 6000;

/**
 * The runtime settings the server accepts: timeout, keep_terminals, cull_busy, cull_connected.
 * Edits live in the component's state: the status refreshing every second never touches a field
 * being typed in. Empty, non-numeric and out-of-bounds timeouts are refused here with the reason
 * (the bounds come from the server); turning auto-shutdown off asks first. Users who may not
 * change settings see the values without controls.
 */
export class SettingsForm extends React.Component<IFormProps, IFormState> {
  state: IFormState = { draft: null, message: null, saving: false };

  componentWillUnmount(): void {
    window.clearTimeout(this.messageTimer);
  }

  render(): React.ReactNode {
    const { settings, writable } = this.props;
    if (!writable) {
      return (
        <div className="jp-AutoShutdown-form jp-AutoShutdown-readonly">
          <dl>
            <dt>Idle timeout</dt>
            <dd>{settings.idle_timeout_minutes === 0 ? 'off' : formatMinutes(settings.idle_timeout_minutes)}</dd>
            <dt>Keep terminals</dt>
            <dd>{settings.keep_terminals ? 'yes' : 'no'}</dd>
            <dt>Shut down busy kernels</dt>
            <dd>{settings.cull_busy ? 'yes' : 'no'}</dd>
            <dt>Shut down kernels with an open tab</dt>
            <dd>{settings.cull_connected ? 'yes' : 'no'}</dd>
          </dl>
          <p className="jp-AutoShutdown-hint">You may view these settings but not change them.</p>
        </div>
      );
    }
    const draft = this.current();
    const check = checkTimeout(draft.timeout, settings);
    const invalid = this.state.draft !== null && !check.ok;
    const toggle = (key: 'keep_terminals' | 'cull_busy' | 'cull_connected', label: string, help: string) => (
      <label className="jp-AutoShutdown-check" title={help}>
        <input type="checkbox" name={key} checked={draft[key]} onChange={event => this.edit({ [key]: event.currentTarget.checked })} />
        {label}
      </label>
    );
    return (
      <form className="jp-AutoShutdown-form" onSubmit={event => void this.save(event)} noValidate>
        <label className="jp-AutoShutdown-field" htmlFor="jp-AutoShutdown-timeout">
          Idle timeout (minutes)
        </label>
        <InputGroup
          id="jp-AutoShutdown-timeout"
          name="idle_timeout_minutes"
          inputMode="decimal"
          autoComplete="off"
          value={draft.timeout}
          aria-invalid={invalid}
          aria-describedby="jp-AutoShutdown-timeoutHelp"
          onChange={event => this.edit({ timeout: event.currentTarget.value })}
        />
        <div id="jp-AutoShutdown-timeoutHelp" className={invalid ? 'jp-AutoShutdown-invalid' : 'jp-AutoShutdown-hint'}>
          {invalid && !check.ok
            ? check.reason
            : `Allowed: ${allowedRange(settings)}${settings.allow_disable ? '; 0 turns auto-shutdown off' : ''}.`}
        </div>
        {toggle('keep_terminals', 'Keep terminals', 'Never close idle terminals (kernels are still shut down).')}
        {toggle('cull_busy', 'Shut down busy kernels too', 'Also shut down kernels that are running code once idle: running work is lost.')}
        {toggle('cull_connected', 'Shut down kernels with an open tab', 'An open notebook tab does not keep its kernel running.')}
        <div className="jp-AutoShutdown-buttons">
          <Button type="submit" className="jp-mod-styled jp-mod-accept" disabled={this.state.saving || this.state.draft === null}>
            Save
          </Button>
          <Button
            type="button"
            className="jp-mod-styled jp-mod-reject"
            disabled={this.state.saving || this.state.draft === null}
            onClick={() => this.setState({ draft: null, message: null })}
          >
            Revert
          </Button>
        </div>
        <FormMessageView message={this.state.message} />
      </form>
    );
  }

  /** The draft, or the server's values while nothing is being edited. */
  private current(): IDraft {
    if (this.state.draft) {
      return this.state.draft;
    }
    const settings = this.props.settings;
    return {
      timeout: String(settings.idle_timeout_minutes),
      keep_terminals: settings.keep_terminals,
      cull_busy: settings.cull_busy,
      cull_connected: settings.cull_connected
    };
  }

  private edit(change: Partial<IDraft>): void {
    this.setState({ draft: { ...this.current(), ...change }, message: null });
  }

  private async save(event: React.FormEvent): Promise<void> {
    event.preventDefault();
    const draft = this.state.draft;
    if (draft === null) {
      return;
    }
    const settings = this.props.settings;
    const check = checkTimeout(draft.timeout, settings);
    if (!check.ok) {
      return; // the reason is shown under the field already
    }
    const changes: Record<string, unknown> = {};
    if (check.minutes !== settings.idle_timeout_minutes) {
      changes.idle_timeout_minutes = check.minutes;
    }
    for (const key of ['keep_terminals', 'cull_busy', 'cull_connected'] as const) {
      if (draft[key] !== settings[key]) {
        changes[key] = draft[key];
      }
    }
    if (Object.keys(changes).length === 0) {
      this.setState({ draft: null });
      this.say('Nothing changed.', 'ok');
      return;
    }
    if (check.turnsOff && 'idle_timeout_minutes' in changes) {
      const answer = await showDialog({
        title: 'Turn auto-shutdown off?',
        body:
          'Nothing will be shut down for being idle: kernels, terminals and this server keep running, ' +
          'and keep costing, until you set a timeout again. This setting is kept across restarts.',
        buttons: [Dialog.cancelButton({ label: 'Keep it on' }), Dialog.warnButton({ label: 'Turn off' })]
      });
      if (!answer.button.accept) {
        this.say('Auto-shutdown stays on; nothing was saved.', 'ok');
        return;
      }
    }
    if (check.ok && check.tiny && 'idle_timeout_minutes' in changes) {
      const seconds = Math.round(check.minutes * 60);
      const answer = await showDialog({
        title: `Set a ${check.minutes}-minute timeout?`,
        body:
          `Idle kernels are shut down after ${seconds} seconds, and once nothing is left the app action ` +
          'stops this server (and what it costs) within seconds of nobody using it. This setting is kept ' +
          'across restarts; after each start the server waits a few minutes (the start-up grace) before ' +
          'stopping, so that it can be changed back.',
        buttons: [Dialog.cancelButton({ label: 'Keep the current timeout' }), Dialog.warnButton({ label: `Set ${check.minutes} minutes` })]
      });
      if (!answer.button.accept) {
        this.say('The timeout was not changed; nothing was saved.', 'ok');
        return;
      }
    }
    this.setState({ saving: true });
    try {
      await this.props.save(changes);
      this.setState({ draft: null, saving: false });
      this.say(check.turnsOff ? 'Saved: auto-shutdown is off.' : 'Saved.', 'ok');
    } catch (error) {
      this.setState({ saving: false });
      this.say(`Not saved: ${(error as Error).message}`, 'error');
    }
  }

  private say(text: string, kind: 'ok' | 'error'): void {
    window.clearTimeout(this.messageTimer);
    this.setState({ message: { text, kind } });
    this.messageTimer = window.setTimeout(() => this.setState({ message: null }), MESSAGE_MS);
  }

  private messageTimer: number | undefined;
}

interface IDailyStopProps {
  stop: IDailyStop;
  writable: boolean;
  save: (changes: Record<string, unknown>) => Promise<unknown>;
  /** Brings back the operator's time (DELETE settings?field=daily_stop). */
  reset: () => Promise<unknown>;
}

interface IDailyStopState {
  /** The time typed ('' with `none`), or null while nothing is being edited. */
  draft: { time: string; none: boolean } | null;
  message: IFormMessage | null;
  saving: boolean;
}

/**
 * The daily stop: a time field and a "no daily stop" choice where the operator lets users move it
 * (allow_user_daily_stop), with "Reset to the operator's time"; elsewhere the time, who set it,
 * and no controls. The time zone stays the one in force (the operator's, unless a user set one
 * through the REST API).
 */
export class DailyStopForm extends React.Component<IDailyStopProps, IDailyStopState> {
  state: IDailyStopState = { draft: null, message: null, saving: false };

  render(): React.ReactNode {
    const { stop, writable } = this.props;
    if (!stop.user_may_change || !writable) {
      return (
        <div className="jp-AutoShutdown-form jp-AutoShutdown-dailyStop jp-AutoShutdown-readonly">
          <dl>
            <dt>Daily stop</dt>
            <dd>{dailyStopText(stop)}</dd>
          </dl>
          {!stop.user_may_change && <p className="jp-AutoShutdown-hint">The daily stop is the operator&apos;s to set on this server.</p>}
        </div>
      );
    }
    const draft = this.state.draft ?? { time: stop.time ?? '', none: !stop.time };
    const invalid = !draft.none && !isStopTime(draft.time);
    const operator = stop.operator_time ? `${stop.operator_time} ${stop.operator_timezone ?? 'server time'}` : 'none';
    return (
      <form className="jp-AutoShutdown-form jp-AutoShutdown-dailyStop" onSubmit={event => void this.save(event)} noValidate>
        <label className="jp-AutoShutdown-field" htmlFor="jp-AutoShutdown-stopTime">
          Daily stop ({stop.timezone ?? 'server time'})
        </label>
        <InputGroup
          id="jp-AutoShutdown-stopTime"
          name="daily_stop_time"
          placeholder="22:00"
          autoComplete="off"
          disabled={draft.none}
          value={draft.none ? '' : draft.time}
          aria-invalid={invalid}
          onChange={event => this.edit({ time: event.currentTarget.value })}
        />
        <label className="jp-AutoShutdown-check">
          <input
            type="checkbox"
            name="no_daily_stop"
            checked={draft.none}
            onChange={event => this.edit({ none: event.currentTarget.checked })}
          />
          No daily stop
        </label>
        <div className={invalid && this.state.draft ? 'jp-AutoShutdown-invalid' : 'jp-AutoShutdown-hint'}>
          {invalid && this.state.draft
            ? 'A time of day such as 22:00 or 22:00:30.'
            : `In force: ${dailyStopText(stop)}. The operator's: ${operator}.`}
        </div>
        <div className="jp-AutoShutdown-buttons">
          <Button
            type="submit"
            className="jp-mod-styled jp-mod-accept"
            disabled={this.state.saving || this.state.draft === null || invalid}
          >
            Save
          </Button>
          <Button
            type="button"
            className="jp-mod-styled"
            disabled={this.state.saving || stop.set_by !== 'user'}
            onClick={() => void this.run(() => this.props.reset(), "Back to the operator's time.")}
          >
            Reset to the operator&apos;s time
          </Button>
        </div>
        <FormMessageView message={this.state.message} />
      </form>
    );
  }

  private edit(change: Partial<{ time: string; none: boolean }>): void {
    const stop = this.props.stop;
    const current = this.state.draft ?? { time: stop.time ?? '', none: !stop.time };
    this.setState({ draft: { ...current, ...change }, message: null });
  }

  private async save(event: React.FormEvent): Promise<void> {
    event.preventDefault();
    const draft = this.state.draft;
    if (draft === null || (!draft.none && !isStopTime(draft.time))) {
      return;
    }
    await this.run(() => this.props.save({ daily_stop_time: draft.none ? '' : draft.time.trim() }), 'Saved.');
  }

  private async run(work: () => Promise<unknown>, done: string): Promise<void> {
    this.setState({ saving: true });
    try {
      await work();
      this.setState({ draft: null, saving: false, message: { text: done, kind: 'ok' } });
    } catch (error) {
      this.setState({ saving: false, message: { text: `Not saved: ${(error as Error).message}`, kind: 'error' } });
    }
  }
}
