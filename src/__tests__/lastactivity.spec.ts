/** The panel's "Last activity" line (issue 30: the activity sources name what kept the server). */
import { lastActivityText } from '../format';
import type { IAppStatus } from '../types';

const NOW = Date.parse('2026-12-04T12:00:00Z');

function app(extra: Partial<IAppStatus>): IAppStatus {
  return { action: 'server', action_at: null, reason: '', ...extra };
}

describe('lastActivityText', () => {
  it('names the source and how long ago', () => {
    const text = lastActivityText(
      app({ last_activity: '2026-12-04T11:59:48+00:00', last_activity_source: 'ssh session of alice on pts/1' }),
      NOW
    );
    expect(text).toBe('Last activity: ssh session of alice on pts/1, 12 s ago.');
  });

  it('says nothing when the server does not say', () => {
    expect(lastActivityText(app({}), NOW)).toBe('');
    expect(lastActivityText(app({ last_activity: 'not a time', last_activity_source: 'x' }), NOW)).toBe('');
  });
});
