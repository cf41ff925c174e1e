// An open, visible JupyterLab tab that nobody uses, or that someone types in, in headless Chromium
// (Debian's, driven by playwright-core). Usage:
//   node ui-tests/idle-tab.mjs <lab url> <token> <notebook path> <output dir> nobody|typing <seconds>
// nobody: run one cell, then touch nothing until the server's app action has run.
// typing: type one character into a cell every 10 s for <seconds> (no run, no save).
// unsaved, unsavable: edit the cell and run it without saving, then touch nothing until the app
// action has run (unsavable: the server refuses to save the notebook).
// Prints one JSON line per step; tests/test_frontend_e2e.py runs it and checks the server side.
import { openBrowser, report } from './browser.mjs';

const [url, token, notebook, outDir, mode, seconds] = process.argv.slice(2);
const { browser, page, shot } = await openBrowser(outDir);
// GETs only, like the tab's own polls (and our status route is never activity anyway).
const get = route =>
  page.evaluate(async ([route, token]) => {
    const response = await fetch(route, { headers: { Authorization: `token ${token}` } });
    return response.json();
  }, [`${url}/${route}`, token]);
const pause = ms => new Promise(resolve => setTimeout(resolve, ms));

try {
  const status = page.locator('.jp-AutoShutdown-status');
  await page.goto(`${url}/lab/tree/${notebook}?token=${token}`);
  await status.filter({ hasText: /Kernel stops in/ }).waitFor({ timeout: 60000 });
  const visibility = await page.evaluate(() => document.visibilityState);
  report('opened', { text: await status.textContent(), visibility, screenshot: await shot('30-opened.png') });

  if (mode === 'daily-stop') {
    // The panel's daily stop form, where the operator lets users move it; <seconds> is unused.
    await status.click();
    const form = page.locator('#jupyter-autoshutdown-panel .jp-AutoShutdown-dailyStop');
    await form.waitFor({ timeout: 15000 });
    const shown = await form.textContent();
    await form.locator('#jp-AutoShutdown-stopTime').fill('25:00');
    const refused = await form.getByRole('button', { name: 'Save' }).isDisabled();
    await form.locator('#jp-AutoShutdown-stopTime').fill('21:30');
    await form.getByRole('button', { name: 'Save' }).click();
    await form.getByText('set by a user', { exact: false }).first().waitFor({ timeout: 15000 });
    const userSet = (await get('autoshutdown/api/settings')).daily_stop;
    for (let tries = 0; tries < 50 && !(await status.getAttribute('title')).includes('set by a user'); tries++) {
      await pause(100); // the status item's tooltip follows within a tick
    }
    report('user-time', { shown, refused, text: await form.textContent(), daily_stop: userSet,
                          tooltip: await status.getAttribute('title'), screenshot: await shot('60-daily-stop-user.png') });
    await form.getByRole('button', { name: "Reset to the operator's time" }).click();
    await form.getByText("In force: ", { exact: false }).filter({ hasText: "the operator's)" }).first().waitFor({ timeout: 15000 });
    report('reset', { daily_stop: (await get('autoshutdown/api/settings')).daily_stop,
                      screenshot: await shot('61-daily-stop-reset.png') });
  } else {
    const editor = page.locator('.jp-Cell .cm-content').first();
    await editor.click();
    if (mode === 'nobody') {
      await page.keyboard.press('Shift+Enter');
      await page.locator('.jp-InputArea-prompt', { hasText: '[1]' }).first().waitFor({ timeout: 30000 });
      report('ran-cell', { screenshot: await shot('31-ran-cell.png') });
      // From here on nobody touches the page; it stays open, visible and polling.
      const culled = page.getByText("Auto-shutdown stopped the kernel of", { exact: false }).first();
      await culled.waitFor({ timeout: 120000 });
      report('culled', { text: await culled.textContent(), screenshot: await shot('32-culled.png') });
      await status.filter({ hasText: /Server stops in/ }).waitFor({ timeout: 30000 });
      report('server-countdown', { text: await status.textContent(), screenshot: await shot('33-server-countdown.png') });
      const started = Date.now();
      let app = (await get('autoshutdown/api/status')).app;
      while (!app.last_run_at && Date.now() - started < 120000) {
        await pause(200);
        app = (await get('autoshutdown/api/status')).app;
      }
      // The page learns it from the server's event stream within moments.
      await status.filter({ hasText: /ran at/ }).waitFor({ timeout: 15000 }).catch(() => null);
      report('action-ran', { text: await status.textContent(), app, screenshot: await shot('34-action-ran.png') });
    } else if (mode === 'unsaved' || mode === 'unsavable') {
      await page.keyboard.press('End');
      await page.keyboard.type('  # edited, never saved by hand');
      await page.keyboard.press('Shift+Enter');
      await page.locator('.jp-InputArea-prompt', { hasText: '[1]' }).first().waitFor({ timeout: 30000 });
      report('edited', { screenshot: await shot(`50-${mode}-edited.png`) });
      const culled = page.getByText('Auto-shutdown stopped the kernel of', { exact: false }).first();
      await culled.waitFor({ timeout: 120000 });
      report('culled', { text: await culled.textContent() });
      const warning = page.getByText('Auto-shutdown stops the server in', { exact: false }).first();
      await warning.waitFor({ timeout: 120000 });
      report('warned', { text: await warning.textContent(), screenshot: await shot(`51-${mode}-warned.png`) });
      if (mode === 'unsavable') {
        const named = page.getByText('cannot be saved', { exact: false }).first();
        await named.waitFor({ timeout: 30000 });
        report('named', { text: await named.textContent(), screenshot: await shot('52-unsavable-named.png') });
      }
      const started = Date.now();
      let status = await get('autoshutdown/api/status');
      while (!status.app.last_run_at && Date.now() - started < 120000) {
        await pause(200);
        status = await get('autoshutdown/api/status');
      }
      report('action-ran', { app: status.app, documents: status.documents, screenshot: await shot(`53-${mode}-action-ran.png`) });
    } else {
      const end = Date.now() + Number(seconds) * 1000;
      let typed = 0;
      while (Date.now() < end) {
        await page.keyboard.type('x');
        typed += 1;
        if (typed === 4) {
          report('typing', { text: await status.textContent(), screenshot: await shot('40-typing.png') });
        }
        await pause(10000);
      }
      const kernels = await get('api/kernels');
      report('typed', { typed, kernels: kernels.length, text: await status.textContent(),
                        app: (await get('autoshutdown/api/status')).app,
                        screenshot: await shot('41-typed.png') });
    }
  }
} catch (error) {
  report('error', { message: String(error), screenshot: await shot('99-idle-tab-error.png').catch(() => null) });
  process.exitCode = 1;
} finally {
  await browser.close();
}
