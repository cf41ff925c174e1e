// The front end in Notebook 7 (headless Chromium, playwright-core): the countdown in the
// notebook's toolbar (Notebook 7 has no status bar), Busy while a cell runs, and the panel in a
// sidebar. Usage: node ui-tests/notebook7.mjs <server url> <token> <output dir>
// Prints one JSON line per step; tests/test_frontend_e2e.py runs it.
import { openBrowser, report, runCellUntilBusy } from './browser.mjs';

const [url, token, outDir] = process.argv.slice(2);
const { browser, page, shot } = await openBrowser(outDir);

try {
  await page.goto(`${url}/notebooks/a.ipynb?token=${token}`);
  const item = page.locator('.jp-AutoShutdown-toolbarItem');
  await item.filter({ hasText: /Kernel stops in/ }).waitFor({ timeout: 60000 });
  report('n7-countdown', { text: await item.textContent(), screenshot: await shot('20-notebook7-countdown.png') });

  const { seconds } = await runCellUntilBusy(page, page.locator('.jp-NotebookPanel'), item, 'import time; time.sleep(5)');
  report('n7-busy', { text: await item.textContent(), seconds,
                      screenshot: await shot('21-notebook7-busy.png') });

  // The panel opens from the toolbar item, in a sidebar of the notebook page.
  await item.click();
  const panel = page.locator('#jupyter-autoshutdown-panel');
  await panel.locator('.jp-AutoShutdown-row[data-kind="kernel"]').first().waitFor({ timeout: 15000 });
  const box = await panel.boundingBox();
  report('n7-panel', { text: await panel.textContent(), visible: await panel.isVisible(),
                       width: box?.width ?? 0, screenshot: await shot('22-notebook7-panel.png') });
} catch (error) {
  report('error', { message: String(error), screenshot: await shot('29-notebook7-error.png').catch(() => null) });
  process.exitCode = 1;
} finally {
  await browser.close();
}
