import { IClock, InteractionReporter, isPersonEvent, reportInterval } from '../activity';

/** A clock whose time and timers the test moves by hand. */
class FakeClock implements IClock {
  time = 0;
  private timers = new Map<number, { at: number; callback: () => void }>();
  private next = 1;
  now(): number {
    return this.time;
  }
  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.next++;
    this.timers.set(id, { at: this.time + ms, callback });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at);
      if (due.length === 0) {
        break;
      }
      const [id, timer] = due[0];
      this.timers.delete(id);
      this.time = timer.at;
      timer.callback();
    }
    this.time = end;
  }
  get pending(): number {
    return this.timers.size;
  }
}

function setup(intervalMs = 60000) {
  const clock = new FakeClock();
  const sent: { at: number; idleSeconds: number }[] = [];
  const reporter = new InteractionReporter(
    idleSeconds => sent.push({ at: clock.time, idleSeconds }),
    () => intervalMs,
    clock
  );
  return { clock, sent, reporter };
}

describe('InteractionReporter', () => {
  it('reports the first interaction at once', () => {
    const { sent, reporter } = setup();
    reporter.interaction();
    expect(sent).toEqual([{ at: 0, idleSeconds: 0 }]);
  });

  it('sends at most one report per interval, then one trailing report with how long ago', () => {
    const { clock, sent, reporter } = setup();
    reporter.interaction(); // t=0: sent
    for (let t = 5000; t <= 30000; t += 5000) {
      clock.advance(5000);
      reporter.interaction(); // t=5..30 s: held
    }
    expect(sent).toHaveLength(1);
    clock.advance(30000); // t=60 s: the trailing report, last interaction 30 s ago
    expect(sent).toEqual([
      { at: 0, idleSeconds: 0 },
      { at: 60000, idleSeconds: 30 }
    ]);
  });

  it('never sends on a timer alone', () => {
    const { clock, sent, reporter } = setup();
    reporter.interaction();
    clock.advance(10 * 60000);
    expect(sent).toHaveLength(1);
    expect(clock.pending).toBe(0);
  });

  it('reports again at once after a quiet interval', () => {
    const { clock, sent, reporter } = setup();
    reporter.interaction();
    clock.advance(90000);
    reporter.interaction();
    expect(sent.map(s => s.at)).toEqual([0, 90000]);
  });
});

describe('reportInterval', () => {
  it('is a minute for long timeouts and a quarter of a short one', () => {
    expect(reportInterval(120)).toBe(60000);
    expect(reportInterval(2)).toBe(30000);
    expect(reportInterval(0.5)).toBe(7500);
    expect(reportInterval(0)).toBe(60000);
    expect(reportInterval(null)).toBe(60000);
    expect(reportInterval(0.001)).toBe(1000);
  });
});

describe('isPersonEvent', () => {
  it('takes trusted input, and pointer moves only when the pointer moved', () => {
    expect(isPersonEvent({ isTrusted: true, type: 'keydown' })).toBe(true);
    expect(isPersonEvent({ isTrusted: false, type: 'keydown' })).toBe(false);
    expect(isPersonEvent({ isTrusted: true, type: 'pointermove', movementX: 0, movementY: 0 })).toBe(false);
    expect(isPersonEvent({ isTrusted: true, type: 'pointermove', movementX: 3, movementY: 0 })).toBe(true);
  });
});
