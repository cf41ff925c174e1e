// End-to-end check of the JupyterLab front end in headless Chromium (Debian's, driven by
// playwright-core), as a new user meets it. Usage:
//   node ui-tests/e2e.mjs <lab url> <token> <output dir>
// The server has a.ipynb and b.ipynb and a short timeout. Prints one JSON line per step;
// tests/test_frontend_e2e.py runs it and checks the server side.
import { openBrowser, report, runCellUntilBusy } from './browser.mjs';

const [url, token, outDir] = process.argv.slice(2);
const { browser, page, shot } = await openBrowser(outDir);
const api = (route, method = 'GET', body = undefined) =>
  page.evaluate(async ([route, method, token, body]) => {
    const response = await fetch(route, {
      method,
      headers: { Authorization: `token ${token}` },
      body: body === undefined ? undefined : JSON.stringify(body)
    });
    return response.status === 204 ? null : response.json();
  }, [`${url}/${route}`, method, token, body]);
const command = (id, args = {}) =>
  page.evaluate(async ([id, args]) => { await window.jupyterapp.commands.execute(id, args); }, [id, args]);
const pause = ms => new Promise(resolve => setTimeout(resolve, ms));
const toast = text => page.locator('.Toastify__toast', { hasText: text }).first();
const currentNotebook = () => page.locator('.jp-NotebookPanel:not(.lm-mod-hidden)');

try {
  const status = page.locator('#jp-main-statusbar .jp-AutoShutdown-status');
  await page.goto(`${url}/lab/tree/a.ipynb?token=${token}`);
  // Text and label read at one moment, once the countdown shows: right after a kernel connects,
  // JupyterLab's own requests (kernel info, comm info, the debugger's) make it busy for moments,
  // and a second read could land in one of them.
  const seen = await (await page.waitForFunction(() => {
    const node = document.querySelector('#jp-main-statusbar .jp-AutoShutdown-status');
    return node && /Kernel stops in/.test(node.textContent)
      ? { text: node.textContent, label: node.getAttribute('aria-label') } : null;
  }, null, { timeout: 60000 })).jsonValue();
  // The status item is a button with a label, reached by keyboard.
  const statusRole = await status.getAttribute('role');
  const statusLabel = seen.label;
  const statusTabIndex = await status.evaluate(node => node.tabIndex);
  const icon = await status.locator('svg').count();
  report('countdown', { text: seen.text, role: statusRole, label: statusLabel,
                        tabIndex: statusTabIndex, icon, screenshot: await shot('01-countdown.png') });

  // Another extension asks for the IAutoShutdown token (as an import of the shared package would
  // give it) and reads the status this page holds: its kernel, with when it stops.
  const provided = await page.evaluate(async () => {
    const { IAutoShutdown } = (await window._JUPYTERLAB['jupyter-autoshutdown'].get('./index'))();
    const service = await window.jupyterapp.resolveOptionalService(IAutoShutdown);
    const kernel = service?.status?.kernels[0];
    return { token: IAutoShutdown.name, provided: Boolean(service), shutdownAt: kernel?.shutdown_at ?? null };
  });
  report('token', provided);

  // JupyterLab's Running sidebar lists the kernel in an auto-shutdown section, with when it stops.
  await page.evaluate(() => window.jupyterapp.shell.activateById('jp-running-sessions'));
  const runningRow = page.locator('.jp-AutoShutdown-runningItem', { hasText: 'a.ipynb' }).first();
  await runningRow.waitFor({ timeout: 15000 });
  report('running-sidebar', { text: await runningRow.textContent(),
                              title: await runningRow.locator('.jp-RunningSessions-itemLabel').getAttribute('title'),
                              screenshot: await shot('01b-running-sidebar.png') });

  // A second notebook, opened now, stays in the background: its kernel is due first.
  await command('docmanager:open', { path: 'b.ipynb' });
  await page.locator('.lm-TabBar-tab', { hasText: 'b.ipynb' }).waitFor();
  await command('docmanager:open', { path: 'a.ipynb' });
  await status.filter({ hasText: /Kernel stops in/ }).waitFor({ timeout: 30000 });

  // Busy shows within moments of a cell starting, with no countdown while it runs.
  const { started, seconds: busyAfter } = await runCellUntilBusy(page, currentNotebook(), status, 'import time; time.sleep(7)');
  report('busy', { text: await status.textContent(), seconds: busyAfter, screenshot: await shot('02-busy.png') });
  // Every text shown while the cell runs (it sleeps 7 s; looked at for 5 s).
  const shown = new Set();
  while (Date.now() - started < 5000) {
    shown.add(await status.textContent());
    await pause(100);
  }
  const countdownDuringBusy = [...shown].some(text => /stops in/.test(text));
  await status.filter({ hasText: /Kernel stops in/ }).waitFor({ timeout: 20000 });
  report('busy-over', { text: await status.textContent(), countdownDuringBusy, shown: [...shown] });

  // The background notebook is warned for by name, while a.ipynb is in focus.
  const background = toast('“b.ipynb”');
  await background.waitFor({ timeout: 90000 });
  const currentTab = await page.locator('.lm-TabBar-tab.lm-mod-current.jp-mod-current, .jp-mod-current.lm-TabBar-tab').first().textContent();
  report('background-warning', { text: await background.textContent(), currentTab, screenshot: await shot('03-background-warning.png') });
  const kernels = await api('api/sessions');
  const kernelOf = path => kernels.find(session => session.path === path)?.kernel.id;
  // Its "Keep alive" keeps that kernel only.
  await background.getByRole('button', { name: 'Keep alive' }).click();
  await toast('is kept alive for').waitFor({ timeout: 15000 });
  const keep = await api('autoshutdown/api/keepalive');
  report('kept-one', { keep, a: kernelOf('a.ipynb'), b: kernelOf('b.ipynb'), screenshot: await shot('04-kept-one.png') });

  // The panel, opened from the status item by keyboard, in the left sidebar.
  await status.focus();
  await page.keyboard.press('Enter');
  const panel = page.locator('#jupyter-autoshutdown-panel');
  await panel.locator('.jp-AutoShutdown-row[data-kind="kernel"]').first().waitFor({ timeout: 15000 });
  await panel.locator('.jp-AutoShutdown-row', { hasText: 'b.ipynb' }).locator('.jp-AutoShutdown-kept').waitFor({ timeout: 15000 });
  report('panel', { text: await panel.textContent(), inLeftArea: await panel.evaluate(node => Boolean(node.closest('#jp-left-stack'))),
                    screenshot: await shot('05-panel.png') });

  // The settings form: an empty field is refused in the page; nothing reaches the server.
  const before = await api('autoshutdown/api/settings');
  const timeout = panel.locator('#jp-AutoShutdown-timeout');
  await timeout.fill('');
  await panel.getByRole('button', { name: 'Save' }).click();
  const refusal = panel.locator('.jp-AutoShutdown-invalid');
  await refusal.waitFor({ timeout: 5000 });
  await pause(1000);
  const afterEmpty = await api('autoshutdown/api/settings');
  report('empty-refused', { refusal: await refusal.textContent(), before: before.idle_timeout_minutes,
                            after: afterEmpty.idle_timeout_minutes, screenshot: await shot('06-empty-refused.png') });
  // A typed value survives the panel's refreshes (it re-renders every second).
  await timeout.fill('7');
  await pause(3000);
  const survived = await timeout.inputValue();
  const focused = await timeout.evaluate(node => node === document.activeElement);
  report('typed-survives', { value: survived, focused, screenshot: await shot('07-typed.png') });
  // 0 asks first; "Keep it on" changes nothing.
  await timeout.fill('0');
  await panel.getByRole('button', { name: 'Save' }).click();
  const dialog = page.locator('.jp-Dialog');
  await dialog.waitFor({ timeout: 5000 });
  const dialogText = await dialog.textContent();
  await shot('08-turn-off-dialog.png');
  await dialog.getByRole('button', { name: 'Keep it on' }).click();
  await pause(500);
  const afterZero = await api('autoshutdown/api/settings');
  await panel.getByRole('button', { name: 'Revert' }).click();
  report('turn-off-asked', { dialog: dialogText, after: afterZero.idle_timeout_minutes });
  // A timeout under a few minutes asks first too; keeping the current one changes nothing.
  await timeout.fill('0.5');
  await panel.getByRole('button', { name: 'Save' }).click();
  await dialog.waitFor({ timeout: 5000 });
  const tinyText = await dialog.textContent();
  await shot('08b-tiny-timeout-dialog.png');
  await dialog.getByRole('button', { name: 'Keep the current timeout' }).click();
  await pause(500);
  const afterTiny = await api('autoshutdown/api/settings');
  const tinyMessage = await panel.locator('.jp-AutoShutdown-message').first().textContent().catch(() => '');
  await panel.getByRole('button', { name: 'Revert' }).click();
  report('tiny-asked', { dialog: tinyText, after: afterTiny.idle_timeout_minutes, message: tinyMessage });

  // a.ipynb's kernel is culled (nobody uses it): a short message, with a restart action.
  const culled = toast('Auto-shutdown stopped the kernel of “a.ipynb”');
  await culled.waitFor({ timeout: 120000 });
  const cullText = await culled.locator('.jp-toast-message, .Toastify__toast-body').first().textContent();
  const restart = culled.getByRole('button', { name: 'Restart kernel' });
  const styled = await culled.evaluate(node => node.className);
  report('culled', { text: cullText, length: cullText.length, restart: await restart.count(), className: styled,
                     fullReason: await panel.locator('.jp-AutoShutdown-culls').textContent().catch(() => ''),
                     screenshot: await shot('09-culled.png') });
  await restart.click();
  await status.filter({ hasText: /Kernel (stops in|busy)/ }).waitFor({ timeout: 60000 });
  const sessions = await api('api/sessions');
  report('restarted', { text: await status.textContent(), a: sessions.find(s => s.path === 'a.ipynb')?.kernel?.id ?? null,
                        screenshot: await shot('10-restarted.png') });

  // The Settings Editor finds our preferences when one searches "shutdown".
  await command('settingeditor:open');
  const search = page.locator('input[placeholder*="Search settings"]').first();
  await search.waitFor({ timeout: 30000 });
  await search.fill('shutdown');
  const entry = page.locator('.jp-PluginList li, .jp-PluginList-entry', { hasText: 'Auto-shutdown' }).first();
  await entry.waitFor({ timeout: 15000 });
  await entry.click();
  await page.getByText('Warn before shutdown for notebooks not in focus').first().waitFor({ timeout: 15000 });
  const listed = await page.locator('.jp-PluginList li, .jp-PluginList-entry').allTextContents();
  report('settings-editor', { text: await entry.textContent(), listed, screenshot: await shot('11-settings-editor.png') });
} catch (error) {
  report('error', { message: String(error), screenshot: await shot('99-error.png').catch(() => null) });
  process.exitCode = 1;
} finally {
  await browser.close();
}
