// End-to-end check of the JupyterLab front end in headless Chromium (Debian's, driven by
// playwright-core). Usage: node ui-tests/e2e.mjs <lab url> <token> <notebook path> <output dir>
// Prints one JSON line per step; tests/test_frontend_e2e.py runs it and checks the server side.
import { openBrowser, report } from './browser.mjs';

const [url, token, notebook, outDir] = process.argv.slice(2);
const { browser, page, shot } = await openBrowser(outDir);
const api = (route, method = 'GET') =>
  page.evaluate(async ([route, method, token]) => {
    const response = await fetch(route, { method, headers: { Authorization: `token ${token}` } });
    return response.status === 204 ? null : response.json();
  }, [route, method, token]);

try {
  const status = page.locator('.jp-AutoShutdown-status');
  await page.goto(`${url}/lab/tree/${notebook}?token=${token}`);
  await status.filter({ hasText: /Shuts down in/ }).waitFor({ timeout: 60000 });
  report('countdown', { text: await status.textContent(), screenshot: await shot('01-countdown.png') });

  const warning = page.getByText('Auto-shutdown will shut down this kernel', { exact: false }).first();
  await warning.waitFor({ timeout: 90000 });
  await page.getByRole('button', { name: 'Keep alive' }).first().waitFor();
  report('warning', { text: await warning.textContent(), screenshot: await shot('02-warning.png') });

  await page.getByRole('button', { name: 'Keep alive' }).first().click();
  await status.filter({ hasText: /Kept alive until/ }).waitFor({ timeout: 15000 });
  report('kept-alive', { text: await status.textContent(), screenshot: await shot('03-kept-alive.png') });

  await status.click();
  const panel = page.locator('.jp-AutoShutdown-table');
  await panel.waitFor({ timeout: 15000 });
  await page.locator('.jp-AutoShutdown-table tr[data-kind="kernel"]').first().waitFor({ timeout: 15000 });
  const kernels = (await api('api/kernels')).map(kernel => kernel.id);
  report('panel', { text: await panel.textContent(), kernels, screenshot: await shot('04-panel.png') });

  // The keep-alive ends: the kernel has been idle past its timeout, so it goes now.
  await api('autoshutdown/api/keepalive', 'DELETE');
  const culled = page.getByText("Auto-shutdown shut this notebook's kernel down", { exact: false }).first();
  await culled.waitFor({ timeout: 60000 });
  report('culled', { text: await culled.textContent(), screenshot: await shot('05-culled.png') });
} catch (error) {
  report('error', { message: String(error), screenshot: await shot('99-error.png').catch(() => null) });
  process.exitCode = 1;
} finally {
  await browser.close();
}
