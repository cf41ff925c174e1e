import { Widget } from '@lumino/widgets';

import { dailyStopText, ICurrentKernel, statusText } from './format';
import { autoShutdownIcon } from './icon';
import { AutoShutdownModel } from './model';

/**
 * "Kernel stops in 12 min", "Kernel busy", "Server stops in 5 min", "Timeout 3 min", with the
 * auto-shutdown icon: a button (keyboard focusable, Enter or Space) that opens the panel. In
 * JupyterLab's status bar it follows the notebook or console in focus; in a notebook's toolbar
 * (Notebook 7, which has no status bar) it follows that notebook.
 */
export class CountdownItem extends Widget {
  constructor(
    private readonly model: AutoShutdownModel,
    private readonly kernel: () => ICurrentKernel | null,
    private readonly open: () => void
  ) {
    super({ node: document.createElement('div') });
    this.addClass('jp-AutoShutdown-status');
    const node = this.node;
    node.setAttribute('role', 'button');
    node.tabIndex = 0;
    node.appendChild(autoShutdownIcon.element({ tag: 'span', className: 'jp-AutoShutdown-statusIcon' }));
    this.label = document.createElement('span');
    this.label.className = 'jp-AutoShutdown-statusText';
    node.appendChild(this.label);
    node.addEventListener('click', () => this.open());
    node.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        this.open();
      }
    });
    model.changed.connect(this.render, this);
    model.ticked.connect(this.render, this);
    this.render();
  }

  render(): void {
    if (this.isDisposed) {
      return;
    }
    const { text, title } = statusText(this.model.status, this.kernel(), this.model.now());
    if (this.label.textContent !== text) {
      this.label.textContent = text;
    }
    const stop = this.model.status?.settings.daily_stop;
    const daily = stop && (stop.time || stop.set_by === 'user') ? ` Daily stop: ${dailyStopText(stop)}.` : '';
    const label = `Auto-shutdown: ${title}${daily} Open the auto-shutdown panel.`;
    if (this.node.title !== label) {
      this.node.title = label;
      this.node.setAttribute('aria-label', label);
    }
  }

  dispose(): void {
    this.model.changed.disconnect(this.render, this);
    this.model.ticked.disconnect(this.render, this);
    super.dispose();
  }

  private readonly label: HTMLSpanElement;
}
