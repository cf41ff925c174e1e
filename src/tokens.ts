import { Token } from '@lumino/coreutils';
import type { ISignal } from '@lumino/signaling';

import type { KeepAliveTarget } from './api';
import type { IKeepAlive, IStatus } from './types';

/**
 * Auto-shutdown in this page, for other extensions: the server's status as this page last read
 * it (every kernel and terminal with when it stops and why, the keep-alive, the app action), a
 * signal when it changes, and the keep-alive. The page keeps it current (see model.ts); reading
 * it makes no request. Ask for it as an optional dependency of your plugin:
 *
 * ```ts
 * import { IAutoShutdown } from 'jupyter-autoshutdown';
 * const plugin = { id: 'my-ext:plugin', optional: [IAutoShutdown], activate: (app, autoShutdown: IAutoShutdown | null) => ... };
 * ```
 */
export interface IAutoShutdown {
  /** The latest status (`GET autoshutdown/api/status`); null before the first answer, or when the server does not answer. */
  readonly status: IStatus | null;
  /** Emitted when the status, or what this page has open, changed. */
  readonly changed: ISignal<IAutoShutdown, void>;
  /** The current time by the page's clock, to count down to the status's times. */
  now(): number;
  /** Fetch the status now; resolves once it is applied. */
  refresh(): Promise<void>;
  /**
   * Keep a kernel (`{ kernel_id }`), a terminal (`{ terminal }`) or everything (`{}`) alive for
   * `minutes`, as the panel's Keep alive does; rejected when the server refuses it (more
   * minutes than its `max_keep_alive` allows, say).
   */
  keepAlive(minutes: number, target?: KeepAliveTarget): Promise<IKeepAlive>;
  /** End that keep-alive. */
  cancelKeepAlive(target?: KeepAliveTarget): Promise<IKeepAlive>;
}

/** The token of `IAutoShutdown`, provided by the `jupyter-autoshutdown:plugin` plugin. */
export const IAutoShutdown = new Token<IAutoShutdown>(
  'jupyter-autoshutdown:IAutoShutdown',
  "Auto-shutdown's status in this page (when each kernel and terminal stops, and why), and its keep-alive."
);
