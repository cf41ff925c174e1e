import { IStatusMessage, RunningRequests } from '../requests';

const status = (state: string, parent?: string): IStatusMessage => ({
  header: { msg_type: 'status' },
  parent_header: parent ? { msg_id: parent } : {},
  content: { execution_state: state }
});

describe('RunningRequests', () => {
  it('keeps a running cell busy through a control request answered meanwhile', () => {
    const requests = new RunningRequests();
    requests.onMessage('k', status('busy', 'cell'));
    requests.onMessage('k', status('busy', 'complete'));
    requests.onMessage('k', status('idle', 'complete'));
    expect(requests.isBusy('k')).toBe(true);
    requests.onMessage('k', status('idle', 'cell'));
    expect(requests.isBusy('k')).toBe(false);
  });
  it('forgets what a restarted kernel ran', () => {
    const requests = new RunningRequests();
    requests.onMessage('k', status('busy', 'cell'));
    requests.onMessage('k', status('restarting'));
    expect(requests.isBusy('k')).toBe(false);
    requests.onMessage('k', status('busy', 'cell2'));
    requests.onMessage('k', status('starting'));
    expect(requests.isBusy('k')).toBe(false);
  });
  it('ignores other messages, statuses without a parent, and other kernels', () => {
    const requests = new RunningRequests();
    requests.onMessage('k', { header: { msg_type: 'stream' }, parent_header: { msg_id: 'x' } });
    requests.onMessage('k', status('busy'));
    requests.onMessage('other', status('busy', 'cell'));
    expect(requests.isBusy('k')).toBe(false);
    expect(requests.isBusy('other')).toBe(true);
    requests.forget('other');
    expect(requests.isBusy('other')).toBe(false);
  });
});
