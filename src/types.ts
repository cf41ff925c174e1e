/**
 * The JSON the server answers with (autoshutdown/api/status, settings, keepalive): the shapes the
 * front end reads, and nothing else. docs/rest-api.md describes every field.
 */

/** The parts of `GET autoshutdown/api/status` the front end reads. */
export interface IResourceStatus {
  id?: string;
  name: string;
  execution_state?: string;
  last_activity?: string | null;
  idle_seconds: number | null;
  seconds_until_shutdown: number | null;
  shutdown_at: string | null;
  warning_at?: string | null;
  reason: string;
  exempt?: boolean;
  /** The end of this kernel's or terminal's own keep-alive. */
  keep_alive_until?: string | null;
}

export interface IAppStatus {
  action: string;
  action_at: string | null;
  reason: string;
  /** Set when the action follows its own rule (Studio Classic's apps), not the server's idleness. */
  own_schedule?: string | null;
  last_run_at?: string | null;
  /** Why the last run failed, in one sentence (a refused SageMaker call names its permission). */
  last_error?: string | null;
  /** What the action stops, as the rest of a sentence, when the server says. */
  description?: string | null;
  /** The latest activity that counts for the app (UTC), and what it was ("jupyter-server-proxy",
   * "ssh session of alice on pts/1", "front end interaction"). */
  last_activity?: string | null;
  last_activity_source?: string | null;
}

/** The operator's bounds on the timeout (minutes; 0: no bound). */
export interface ITimeoutLimits {
  min_idle_timeout_minutes: number;
  max_idle_timeout_minutes: number;
  allow_disable: boolean;
}

/** The daily stop in force, who set it, and the operator's time to go back to. */
export interface IDailyStop {
  time: string | null;
  timezone: string | null;
  label: string | null;
  set_by: 'operator' | 'user';
  operator_time: string | null;
  operator_timezone: string | null;
  user_may_change: boolean;
}

/** What open pages hold unsaved, and the save before the app action (status.documents). */
export interface IDocumentsStatus {
  unsaved: string[];
  unsavable: { path: string; reason: string }[];
  waiting_until: string | null;
  waiting_for: string[];
  grace_minutes: number;
  last_save: { at: string; saved: string[]; failed: { path: string; reason: string }[] } | null;
}

export interface ISettings extends ITimeoutLimits {
  idle_timeout_minutes: number;
  keep_terminals: boolean;
  cull_busy: boolean;
  cull_connected: boolean;
  warning_seconds: number;
  max_keep_alive_minutes: number;
  daily_stop?: IDailyStop;
}

export interface IStatus {
  now: string;
  running: boolean;
  settings: ISettings;
  keep_alive_until: string | null;
  kernels: IResourceStatus[];
  terminals: IResourceStatus[];
  app: IAppStatus;
  next_daily_stop?: string | null;
  documents?: IDocumentsStatus;
}

/** The answer of `POST` and `DELETE autoshutdown/api/keepalive`. */
export interface IKeepAlive {
  keep_alive_until: string | null;
  max_minutes: number;
  kernels: Record<string, string>;
  terminals: Record<string, string>;
}
