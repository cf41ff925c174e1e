import { Widget } from '@lumino/widgets';

import { patchSettings } from './api';
import { formatDuration, IResourceStatus, IStatus, secondsUntil } from './format';

/** Every kernel and terminal with its state, idle time, countdown and reason; the settings. */
export class AutoShutdownPanel extends Widget {
  constructor(private readonly onChanged: () => void) {
    super();
    this.id = 'jupyter-autoshutdown-panel';
    this.title.label = 'Auto-shutdown';
    this.title.closable = true;
    this.addClass('jp-AutoShutdown-panel');
  }

  update_(status: IStatus | null, writable: boolean, now: number): void {
    if (status === null) {
      this.node.textContent = 'Auto-shutdown status is not available.';
      return;
    }
    const row = (kind: string, r: IResourceStatus) => {
      const left = secondsUntil(r.shutdown_at, now);
      return `<tr data-kind="${kind}"><td>${kind}</td><td>${escape(r.id ?? r.name)}</td>
        <td>${escape(r.execution_state ?? '')}</td>
        <td>${r.idle_seconds === null ? '' : formatDuration(r.idle_seconds)}</td>
        <td>${left === null ? 'not scheduled' : formatDuration(left)}</td>
        <td>${escape(r.reason)}</td></tr>`;
    };
    const rows = [
      ...status.kernels.map(k => row('kernel', k)),
      ...status.terminals.map(t => row('terminal', t))
    ].join('');
    const table = `
      <p>App action: ${escape(status.app.action)}: ${escape(status.app.reason)}</p>
      <table class="jp-AutoShutdown-table">
        <thead><tr><th>Kind</th><th>Id</th><th>State</th><th>Idle</th><th>Shuts down in</th>
          <th>Why</th></tr></thead>
        <tbody>${rows || '<tr><td colspan="6">No kernels or terminals.</td></tr>'}</tbody>
      </table>`;
    const existing = this.node.querySelector('form');
    if (existing && existing.contains(document.activeElement)) {
      // The user is editing: refresh only the table, never the form under their cursor.
      (this.node.querySelector('.jp-AutoShutdown-resources') as HTMLElement).innerHTML = table;
      return;
    }
    const disabled = writable ? '' : 'disabled';
    this.node.innerHTML = `
      <h2>Auto-shutdown</h2>
      <form class="jp-AutoShutdown-settings">
        <label>Idle timeout (minutes)
          <input name="idle_timeout_minutes" type="number" min="0" step="any"
                 value="${status.settings.idle_timeout_minutes}" ${disabled}></label>
        <label><input name="keep_terminals" type="checkbox"
                 ${status.settings.keep_terminals ? 'checked' : ''} ${disabled}> Keep terminals</label>
        <button type="submit" ${disabled}>Save</button>
        <span class="jp-AutoShutdown-message">${writable ? '' : 'Read-only: you may not change settings.'}</span>
      </form>
      <div class="jp-AutoShutdown-resources">${table}</div>`;
    const form = this.node.querySelector('form') as HTMLFormElement;
    form.addEventListener('submit', event => {
      event.preventDefault();
      const timeout = Number((form.elements.namedItem('idle_timeout_minutes') as HTMLInputElement).value);
      const keep = (form.elements.namedItem('keep_terminals') as HTMLInputElement).checked;
      const message = form.querySelector('.jp-AutoShutdown-message') as HTMLElement;
      patchSettings({ idle_timeout_minutes: timeout, keep_terminals: keep })
        .then(() => {
          message.textContent = 'Saved.';
          this.onChanged();
        })
        .catch((error: Error) => {
          message.textContent = error.message;
        });
    });
  }
}

function escape(text: string): string {
  const div = document.createElement('div');
  div.textContent = text;
  return div.innerHTML;
}
