import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type { IKeepAlive, IStatus } from './types';
import type { IDocumentsReport } from './unsaved';

/** A request to this extension's REST API, authenticated like every JupyterLab request. */
export async function requestAPI<T>(path: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'autoshutdown', 'api', path);
  const response = await ServerConnection.makeRequest(url, init, settings);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response, data?.message ?? response.statusText);
  }
  return data as T;
}

export const getStatus = (): Promise<IStatus> => requestAPI<IStatus>('status');

/** What a keep-alive keeps: everything (the server's own warning, the panel), or one resource. */
export type KeepAliveTarget = { kernel_id: string } | { terminal: string } | Record<string, never>;

export const keepAlive = (minutes: number, target: KeepAliveTarget = {}): Promise<IKeepAlive> =>
  requestAPI<IKeepAlive>('keepalive', { method: 'POST', body: JSON.stringify({ minutes, ...target }) });

export const cancelKeepAlive = (target: KeepAliveTarget = {}): Promise<IKeepAlive> => {
  const query = new URLSearchParams(target as Record<string, string>).toString();
  return requestAPI<IKeepAlive>(`keepalive${query ? `?${query}` : ''}`, { method: 'DELETE' });
};

/** A person used the page `idleSeconds` ago (counts as server activity: see activity.py). */
export const reportActivity = (idleSeconds: number): Promise<unknown> =>
  requestAPI('activity', { method: 'POST', body: JSON.stringify({ idle_seconds: idleSeconds }) });

/** This page's documents: unsaved, unsavable, saved on auto-shutdown's behalf (documents.py). */
export const reportDocuments = (report: IDocumentsReport): Promise<unknown> =>
  requestAPI('documents', { method: 'POST', body: JSON.stringify(report), keepalive: Boolean(report.closing) });

/** Bring back the operator's values of runtime settings (`daily_stop`: its time and zone). */
export const resetSettings = (field: string): Promise<unknown> =>
  requestAPI(`settings?field=${encodeURIComponent(field)}`, { method: 'DELETE' });

export const patchSettings = (changes: Record<string, unknown>): Promise<unknown> =>
  requestAPI('settings', { method: 'PATCH', body: JSON.stringify(changes) });

/** Shut a kernel down now, through jupyter_server's own route. */
export async function shutDownKernel(kernelId: string): Promise<void> {
  await serverRequest(URLExt.join('api', 'kernels', kernelId), 'DELETE');
}

/** Close a terminal now, through jupyter_server's own route. */
export async function shutDownTerminal(name: string): Promise<void> {
  await serverRequest(URLExt.join('api', 'terminals', name), 'DELETE');
}

async function serverRequest(path: string, method: string): Promise<void> {
  const settings = ServerConnection.makeSettings();
  const response = await ServerConnection.makeRequest(URLExt.join(settings.baseUrl, path), { method }, settings);
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response);
  }
}

/** Whether the current user may change settings (jupyter_server's /api/me permissions). */
export async function canWrite(): Promise<boolean> {
  const settings = ServerConnection.makeSettings();
  const permissions = encodeURIComponent(JSON.stringify({ autoshutdown: ['write'] }));
  const url = URLExt.join(settings.baseUrl, 'api', 'me') + `?permissions=${permissions}`;
  try {
    const response = await ServerConnection.makeRequest(url, {}, settings);
    const data = await response.json();
    return (data?.permissions?.autoshutdown ?? []).includes('write');
  } catch {
    return false;
  }
}

/** The calls the model makes (model.ts), as one object: the model takes it as a parameter. */
export const autoShutdownApi = {
  getStatus,
  canWrite,
  keepAlive,
  cancelKeepAlive,
  shutDownKernel,
  shutDownTerminal,
  patchSettings,
  resetSettings
};
