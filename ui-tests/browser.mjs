// What both browser scripts share: Debian's Chromium through playwright-core, one page, screenshots
// taken once every toast is fully on screen, and one JSON line per step.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

export const report = (step, data = {}) =>
  console.log(JSON.stringify({ step, time: Date.now() / 1000, ...data }));

export async function openBrowser(outDir) {
  fs.mkdirSync(outDir, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Playwright starts it with a new empty profile. Without the background-networking flags
    // Chromium keeps dialing out of a closed network.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync']
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  // Toasts slide in from the right: screenshots wait until every one is fully on screen.
  const toastsSettled = () =>
    page.waitForFunction(() =>
      [...document.querySelectorAll('.Toastify__toast')].every(
        toast => toast.getBoundingClientRect().right <= window.innerWidth
      )
    );
  const shot = async name => {
    await toastsSettled();
    const file = path.join(outDir, name);
    await page.screenshot({ path: file });
    return file;
  };
  return { browser, page, shot };
}

/**
 * Replace the first cell of `notebook` (a locator) with `code`, run it, and wait until `status`
 * (a locator) says "Kernel busy". Returns the milliseconds since the epoch when it was run and
 * the seconds until Busy showed.
 */
export async function runCellUntilBusy(page, notebook, status, code) {
  await notebook.locator('.jp-Cell .cm-content').first().click();
  await page.keyboard.press('Control+a');
  await page.keyboard.type(code);
  const started = Date.now();
  await page.keyboard.press('Control+Enter');
  await status.filter({ hasText: 'Kernel busy' }).waitFor({ timeout: 10000 });
  return { started, seconds: (Date.now() - started) / 1000 };
}
