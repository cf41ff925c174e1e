/**
 * Which requests a kernel is running, from its status messages, as the server does
 * (execution.py): busy while any request it said busy for has not been followed by idle for
 * that same request. A kernel's own status is the last status message of any request, so a
 * completion or debugger request answered on the control channel while a cell runs makes a busy
 * kernel look idle; this does not. No JupyterLab imports: unit-tested on its own.
 */

/** A kernel never says idle for requests whose messages were lost: the table stays bounded. */
const MAX_TRACKED = 256;

export interface IStatusMessage {
  header?: { msg_type?: string };
  parent_header?: { msg_id?: string } | Record<string, never>;
  content?: { execution_state?: string };
}

export class RunningRequests {
  /** Record one IOPub message of `kernelId` (anything but a status message is ignored). */
  onMessage(kernelId: string, message: IStatusMessage): void {
    if (message?.header?.msg_type !== 'status') {
      return;
    }
    const state = message.content?.execution_state;
    const request = (message.parent_header as { msg_id?: string } | undefined)?.msg_id;
    let running = this.running.get(kernelId);
    if (state === 'starting' || state === 'restarting' || state === 'dead') {
      running?.clear(); // a new process runs nothing of what the old one ran
      return;
    }
    if (!request) {
      return;
    }
    if (state === 'busy') {
      if (running === undefined) {
        running = new Set();
        this.running.set(kernelId, running);
      }
      if (running.size < MAX_TRACKED) {
        running.add(request);
      }
    } else if (state === 'idle') {
      running?.delete(request);
    }
  }

  /** Whether the kernel is running any request now, as far as its messages tell. */
  isBusy(kernelId: string): boolean {
    return (this.running.get(kernelId)?.size ?? 0) > 0;
  }

  forget(kernelId: string): void {
    this.running.delete(kernelId);
  }

  private running = new Map<string, Set<string>>();
}
