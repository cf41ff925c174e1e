/**
 * Unsaved edits and the app action: this page tells the server which documents it holds with
 * unsaved changes, and saves them on auto-shutdown's behalf, as "Save" would, when the app
 * action's warning comes and when the server asks just before the action (its `save_request`
 * event). Each save is announced first (`saving`), so the server does not count it as a person's
 * activity: saving never postpones the action. A document that cannot be saved (read-only, a
 * conflict waiting for an answer, an error) is reported, and the server waits for it at most its
 * grace period (documents.py on the server side).
 *
 * Kernel culls save nothing: only the app action stops the server the page saves to.
 * No JupyterLab imports: the logic is unit-tested on its own (the plugin adapts the shell).
 */

/** A document open in this page, as the saver needs it. */
export interface IOpenFile {
  path: string;
  dirty: boolean;
  /** False when the server said the file cannot be written (opened read-only). */
  writable: boolean;
  /** Save as the Save command does; rejects when the save failed. */
  save(): Promise<void>;
}

export interface IUnsavable {
  path: string;
  reason: string;
}

export interface IDocumentsReport {
  page: string;
  unsaved?: string[];
  unsavable?: IUnsavable[];
  saving?: string[];
  saved?: string[];
  closing?: boolean;
}

export interface ISaveResult {
  saved: string[];
  failed: IUnsavable[];
}

export interface ISaverClock {
  now(): number;
  setInterval(callback: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

/** How often the page looks whether its documents' unsaved state changed (no request unless it did). */
export const LOOK_MS = 5000;
/** A page holding unsaved documents says so at least this often (the server forgets it after 3 min). */
export const HEARTBEAT_MS = 60000;
/** A save that waits longer than this (a conflict dialog nobody answers) counts as failed. */
export const SAVE_TIMEOUT_MS = 30000;

/** A save that did not finish in time: the dialog it shows waits for a person. */
export class SaveTimeout extends Error {}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new SaveTimeout('no answer within 30 s (a dialog waits in the page)')), ms);
    promise.then(
      value => {
        clearTimeout(timer);
        resolve(value);
      },
      error => {
        clearTimeout(timer);
        reject(error);
      }
    );
  });
}

/** Why a save failed, in a few words, from the server's message where there is one. */
export function failureReason(error: unknown): string {
  const message = (error as { message?: string })?.message ?? String(error);
  if (/permission denied|forbidden|403/i.test(message)) {
    return `cannot be written: ${message}`;
  }
  return message || 'the save failed';
}

export class UnsavedSaver {
  /** What the server last heard from this page: unsaved paths and unsavable ones. */
  private lastReported = '';
  private lastReportAt = -Infinity;
  private timer: unknown = undefined;
  private saving: Promise<ISaveResult> | null = null;
  /** Documents whose save on our behalf failed, kept until they are saved or closed. */
  readonly failed = new Map<string, string>();
  /** The latest save on our behalf: when, and what. */
  lastSave: { at: number; saved: string[]; failed: IUnsavable[] } | null = null;

  constructor(
    private readonly files: () => IOpenFile[],
    private readonly send: (report: IDocumentsReport) => Promise<unknown>,
    readonly page: string,
    private readonly clock: ISaverClock
  ) {}

  /** Look every few seconds; report when the unsaved set changes, and as a heartbeat while any. */
  start(): void {
    if (this.timer === undefined) {
      this.timer = this.clock.setInterval(() => void this.look(), LOOK_MS);
    }
  }

  dispose(): void {
    if (this.timer !== undefined) {
      this.clock.clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** The documents with unsaved changes, and those known not to save, by path (one per path). */
  unsaved(): { unsaved: string[]; unsavable: IUnsavable[] } {
    const unsaved: string[] = [];
    const unsavable: IUnsavable[] = [];
    const seen = new Set<string>();
    for (const file of this.files()) {
      if (seen.has(file.path)) {
        continue;
      }
      seen.add(file.path);
      if (!file.dirty) {
        this.failed.delete(file.path);
        continue;
      }
      const reason = !file.writable ? 'read-only' : this.failed.get(file.path);
      if (reason !== undefined) {
        unsavable.push({ path: file.path, reason });
      } else {
        unsaved.push(file.path);
      }
    }
    return { unsaved, unsavable };
  }

  /** Report the unsaved state if it changed, or as a heartbeat while there is any. */
  async look(): Promise<void> {
    if (this.saving) {
      return;
    }
    const state = this.unsaved();
    const key = JSON.stringify(state);
    const holds = state.unsaved.length > 0 || state.unsavable.length > 0;
    const due = key !== this.lastReported || (holds && this.clock.now() - this.lastReportAt >= HEARTBEAT_MS);
    if (due) {
      await this.report({ ...state });
    }
  }

  /**
   * Save every document with unsaved changes, on auto-shutdown's behalf, then report. Concurrent
   * calls share one round of saving.
   */
  saveAll(): Promise<ISaveResult> {
    if (!this.saving) {
      this.saving = this.saveRound().finally(() => {
        this.saving = null;
      });
    }
    return this.saving;
  }

  private async saveRound(): Promise<ISaveResult> {
    const byPath = new Map<string, IOpenFile>();
    for (const file of this.files()) {
      if (file.dirty && !byPath.has(file.path)) {
        byPath.set(file.path, file);
      }
    }
    const failed: IUnsavable[] = [];
    const toSave: IOpenFile[] = [];
    for (const file of byPath.values()) {
      if (file.writable) {
        toSave.push(file);
      } else {
        failed.push({ path: file.path, reason: 'read-only' });
      }
    }
    if (byPath.size === 0) {
      await this.report(this.unsaved());
      return { saved: [], failed: [] };
    }
    const paths = toSave.map(file => file.path);
    if (paths.length > 0) {
      // Announced first: the server does not count these saves as a person's activity.
      await this.report({ ...this.unsaved(), saving: paths }).catch(() => undefined);
    }
    const saved: string[] = [];
    await Promise.all(
      toSave.map(async file => {
        try {
          await withTimeout(file.save(), SAVE_TIMEOUT_MS);
          saved.push(file.path);
          this.failed.delete(file.path);
        } catch (error) {
          const reason = failureReason(error);
          this.failed.set(file.path, reason);
          failed.push({ path: file.path, reason });
        }
      })
    );
    this.lastSave = { at: this.clock.now(), saved, failed };
    await this.report({ ...this.unsaved(), saved });
    return { saved, failed };
  }

  /** The page is closing: the server stops waiting for it. */
  close(): Promise<unknown> {
    this.dispose();
    return this.send({ page: this.page, closing: true });
  }

  private async report(fields: Omit<IDocumentsReport, 'page'>): Promise<void> {
    const body: IDocumentsReport = { page: this.page, unsaved: fields.unsaved ?? [], unsavable: fields.unsavable ?? [] };
    if (fields.saving?.length) {
      body.saving = fields.saving;
    }
    if (fields.saved !== undefined) {
      body.saved = fields.saved; // even empty: this report ends a round of saving
    }
    this.lastReported = JSON.stringify({ unsaved: body.unsaved, unsavable: body.unsavable });
    this.lastReportAt = this.clock.now();
    try {
      await this.send(body);
    } catch {
      this.lastReported = ''; // an older server without the route, or offline: try again later
    }
  }
}
