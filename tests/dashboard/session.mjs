// An operator's session in the studio's dashboard, in Debian's headless Chromium driven by
// playwright-core (tests/e2e/dashboard_test.cpp starts the studio and a worker waiting for
// approval, then runs this). Every step acts through the page as a person would (clicks, typing,
// the keyboard) and waits for what the page shows; nothing calls the studio's API directly.
//
// Environment: STUDIO_URL, ADMIN_TOKEN, CLIENT_KEY (a client-scope key), ARTIFACTS (a folder for
// the screenshots), CHROMIUM (default /usr/bin/chromium).
// Prints one JSON line {"ok": bool, "steps": [...], "consoleErrors": [...], "screenshots": [...]}
// and exits 0 only when every step passed and the console stayed free of errors.
import {chromium} from 'playwright-core';
import {mkdirSync} from 'node:fs';
import {join} from 'node:path';

const url = process.env.STUDIO_URL;
const admin = process.env.ADMIN_TOKEN;
const clientKey = process.env.CLIENT_KEY;
const artifacts = process.env.ARTIFACTS;
mkdirSync(artifacts, {recursive: true});

const report = {ok: false, steps: [], consoleErrors: [], screenshots: []};
// The steps that make the studio answer an HTTP error on purpose (a wrong key, a bad model):
// Chromium logs "Failed to load resource: … status of 4xx" for them, and only for them is that
// line expected. Any other console error, and any uncaught page error, fails the run.
let expectHttpError = null;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // Root in CI containers: Chromium's sandbox needs user namespaces it may not have there.
  args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
});
const context = await browser.newContext({viewport: {width: 1366, height: 900}});
const page = await context.newPage();
page.setDefaultTimeout(20000);
page.on('console', (message) => {
  if (message.type() !== 'error') return;
  const text = message.text();
  if (expectHttpError && new RegExp(`status of ${expectHttpError}`).test(text)) return;
  report.consoleErrors.push(text);
});
page.on('pageerror', (error) => report.consoleErrors.push(`uncaught: ${error.message}`));

async function shot(name) {
  const path = join(artifacts, `${name}.png`);
  await page.screenshot({path, fullPage: true});
  report.screenshots.push(path);
}

async function step(name, body) {
  const started = Date.now();
  try {
    await body();
    report.steps.push({name, ok: true, ms: Date.now() - started});
  } catch (error) {
    report.steps.push({name, ok: false, error: String(error.message || error).split('\n')[0]});
    await shot(`failed-${report.steps.length}`).catch(() => {});
    throw error;
  }
}

async function signIn(key) {
  await page.fill('#key', key);
  await page.click('#sign-in-form button[type=submit]');
}

try {
  await step('the page loads and asks for a key', async () => {
    await page.goto(url);
    await page.waitForSelector('#sign-in:not([hidden])');
    await shot('sign-in');
  });

  await step('a key the studio does not know is refused on the page', async () => {
    expectHttpError = 401;
    await signIn('not-a-key');
    await page.waitForSelector('#sign-in-error:has-text("does not know this key")');
    expectHttpError = null;
  });

  await step('the admin token signs in and every view is offered', async () => {
    await signIn(admin);
    await page.waitForSelector('#nav:not([hidden])');
    for (const view of ['fleet', 'approvals', 'jobs', 'models', 'metrics']) {
      await page.waitForSelector(`#nav a[data-view=${view}]:not([hidden])`);
    }
    await page.waitForSelector('#live:has-text("live")');
  });

  await step('a pending worker is approved from Approvals', async () => {
    await page.click('#nav a[data-view=approvals]');
    const card = page.locator('#view-approvals article[data-request]').first();
    await card.waitFor();
    await shot('approvals');
    await card.locator('button:has-text("Approve")').click();
    await page.waitForSelector('#notice:has-text("approved as")');
  });

  await step('the approved worker connects and the fleet shows it', async () => {
    await page.click('#nav a[data-view=fleet]');
    // Live: the page is not reloaded; the worker's "connected" event updates the table.
    await page.waitForSelector('#view-fleet tr[data-worker] .badge-connected');
    await page.waitForSelector('#view-fleet tr[data-worker] td:has-text("image")');
    await shot('fleet');
  });

  await step('a model with a bad field is refused and the field is named', async () => {
    await page.click('#nav a[data-view=models]');
    await page.fill('#model-id', 'page-image');
    await page.selectOption('#model-kind', 'image');
    await page.selectOption('#model-engine', 'synthetic');
    await page.fill('#model-vramGbEstimate', '-5');
    expectHttpError = 400;
    await page.click('#model-form button[type=submit]');
    await page.waitForSelector('#model-vramGbEstimate[aria-invalid=true]');
    const message = await page.textContent('#model-vramGbEstimate-error');
    if (!/vramGbEstimate/.test(message)) throw new Error(`field error reads "${message}"`);
    expectHttpError = null;
    await shot('models-bad-field');
  });

  await step('the corrected model is saved and listed', async () => {
    await page.fill('#model-vramGbEstimate', '1');
    await page.click('#model-form button[type=submit]');
    await page.waitForSelector('#view-models tr[data-model="page-image"]');
    // A model no connected worker can hold (4000 GB): its jobs wait, and say why.
    await page.click('#model-form button:has-text("New")');
    await page.fill('#model-id', 'page-huge');
    await page.selectOption('#model-kind', 'image');
    await page.fill('#model-vramGbEstimate', '4000');
    await page.click('#model-form button[type=submit]');
    await page.waitForSelector('#view-models tr[data-model="page-huge"]');
    await shot('models');
  });

  await step('a job submitted from the page runs and its image is previewed', async () => {
    await page.click('#nav a[data-view=jobs]');
    await page.selectOption('#job-model', 'page-image');
    await page.fill('#job-prompt', 'a red fox in the snow');
    await page.click('#new-job button[type=submit]');
    await page.waitForSelector('#job-detail .badge-done');
    const image = page.locator('#job-preview img');
    await image.waitFor();
    await page.waitForFunction(() => {
      const img = document.querySelector('#job-preview img');
      return img && img.complete && img.naturalWidth > 0;
    });
    await shot('job-done');
  });

  await step('a job no worker can take says why it waits and is cancelled', async () => {
    await page.selectOption('#job-model', 'page-huge');
    await page.fill('#job-prompt', 'too big for this fleet');
    await page.click('#new-job button[type=submit]');
    await page.waitForSelector('#job-detail .waiting:has-text("GB")');
    await shot('job-waiting');
    await page.click('#cancel-job');
    await page.waitForSelector('#job-detail .badge-cancelled');
  });

  await step('jobs filter by status and open from the keyboard', async () => {
    await page.selectOption('#filter-status', 'done');
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#view-jobs tbody tr[data-job]')];
      return rows.length === 1 && rows[0].textContent.includes('done');
    });
    await page.goto(`${url}/#jobs`);  // a reload keeps the key (session storage)
    await page.waitForSelector('#view-jobs tbody tr[data-job]');
    // Each row's job link is its keyboard stop: Enter opens the job, Escape closes it.
    await page.locator('#view-jobs tbody tr[data-job] a').first().focus();
    await page.keyboard.press('Enter');
    await page.waitForSelector('#job-detail:not([hidden]) h2');
    await page.keyboard.press('Escape');
    await page.waitForSelector('#job-detail', {state: 'hidden'});
  });

  await step('metrics chart what the studio counted', async () => {
    await page.click('#nav a[data-view=metrics]');
    await page.waitForSelector('#view-metrics figcaption:has-text("Jobs per minute")');
    // Two samples (5 s apart) make a line.
    await page.waitForSelector('#view-metrics svg polyline', {timeout: 15000});
    await shot('metrics');
  });

  await step('on a phone screen nothing overflows the page', async () => {
    await page.setViewportSize({width: 390, height: 844});
    for (const view of ['fleet', 'jobs', 'models', 'metrics']) {
      await page.click(`#nav a[data-view=${view}]`);
      await page.waitForSelector(`#view-${view}:not([hidden])`);
      const overflow = await page.evaluate(
        () => document.documentElement.scrollWidth - window.innerWidth);
      if (overflow > 1) throw new Error(`${view} is ${overflow}px wider than the screen`);
      await shot(`phone-${view}`);
    }
    await page.setViewportSize({width: 1366, height: 900});
  });

  await step('a client key sees jobs and models but not the fleet', async () => {
    await page.click('#sign-out');
    await page.waitForSelector('#sign-in:not([hidden])');
    await signIn(clientKey);
    await page.waitForSelector('#nav a[data-view=jobs]:not([hidden])');
    for (const view of ['fleet', 'approvals']) {
      if (await page.isVisible(`#nav a[data-view=${view}]`)) throw new Error(`${view} is shown`);
    }
    await page.click('#nav a[data-view=jobs]');
    await page.waitForSelector('#view-jobs tbody tr[data-job]');
    await shot('client-jobs');
  });

  report.ok = report.consoleErrors.length === 0;
} catch {
  report.ok = false;
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
process.exit(report.ok ? 0 : 1);
