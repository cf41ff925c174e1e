import { HEARTBEAT_MS, IDocumentsReport, IOpenFile, UnsavedSaver } from '../unsaved';

class FakeFile implements IOpenFile {
  saves = 0;
  constructor(
    public path: string,
    public dirty: boolean,
    public writable = true,
    private readonly outcome: 'ok' | 'fails' = 'ok'
  ) {}
  async save(): Promise<void> {
    this.saves += 1;
    if (this.outcome === 'fails') {
      throw new Error('Permission denied: ro.ipynb');
    }
    this.dirty = false;
  }
}

function setUp(files: FakeFile[]) {
  let now = 1000;
  const sent: IDocumentsReport[] = [];
  const saver = new UnsavedSaver(
    () => files,
    async report => {
      sent.push(JSON.parse(JSON.stringify(report)));
    },
    'page-1',
    { now: () => now, setInterval: () => 1, clearInterval: () => undefined }
  );
  return { saver, sent, advance: (ms: number) => (now += ms) };
}

describe('UnsavedSaver', () => {
  it('reports only when the unsaved set changes, and as a heartbeat while it holds any', async () => {
    const file = new FakeFile('a.ipynb', false);
    const { saver, sent, advance } = setUp([file]);
    await saver.look();
    await saver.look();
    expect(sent).toEqual([{ page: 'page-1', unsaved: [], unsavable: [] }]);
    file.dirty = true;
    await saver.look();
    await saver.look();
    expect(sent.length).toBe(2);
    expect(sent[1].unsaved).toEqual(['a.ipynb']);
    advance(HEARTBEAT_MS);
    await saver.look();
    expect(sent.length).toBe(3);
  });

  it('announces its saves, saves each document once, and reports what it saved and what failed', async () => {
    const a = new FakeFile('a.ipynb', true);
    const again = new FakeFile('a.ipynb', true); // the same file open twice
    const clean = new FakeFile('clean.ipynb', false);
    const readOnly = new FakeFile('opened-ro.ipynb', true, false);
    const failing = new FakeFile('ro.ipynb', true, true, 'fails');
    const { saver, sent } = setUp([a, again, clean, readOnly, failing]);
    const result = await saver.saveAll();
    expect(a.saves + again.saves).toBe(1);
    expect(clean.saves + readOnly.saves).toBe(0);
    expect(result.saved).toEqual(['a.ipynb']);
    expect(result.failed).toEqual([
      { path: 'opened-ro.ipynb', reason: 'read-only' },
      { path: 'ro.ipynb', reason: 'cannot be written: Permission denied: ro.ipynb' }
    ]);
    expect(sent[0].saving).toEqual(['a.ipynb', 'ro.ipynb']);
    const last = sent[sent.length - 1];
    expect(last.saved).toEqual(['a.ipynb']);
    expect(last.unsaved).toEqual([]);
    expect(last.unsavable?.map(item => item.path)).toEqual(['opened-ro.ipynb', 'ro.ipynb']);
    // What failed stays named as unsavable until it is saved or closed.
    expect(saver.unsaved().unsavable.map(item => item.path)).toEqual(['opened-ro.ipynb', 'ro.ipynb']);
  });

  it('shares one round between a warning and a request that come together, and says when the page closes', async () => {
    const a = new FakeFile('a.ipynb', true);
    const { saver, sent } = setUp([a]);
    await Promise.all([saver.saveAll(), saver.saveAll()]);
    expect(a.saves).toBe(1);
    await saver.close();
    expect(sent[sent.length - 1]).toEqual({ page: 'page-1', closing: true });
  });

  it('with nothing unsaved, saves nothing and announces nothing', async () => {
    const { saver, sent } = setUp([new FakeFile('a.ipynb', false)]);
    expect(await saver.saveAll()).toEqual({ saved: [], failed: [] });
    expect(sent.every(report => !report.saving)).toBe(true);
  });
});
