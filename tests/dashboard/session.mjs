// An operator's session in the studio's dashboard, in Debian's headless Chromium driven by
// playwright-core (tests/e2e/dashboard_test.cpp starts the studio and a worker waiting for
// approval, then runs this). Every step acts through the page as a person would (clicks, typing,
// the keyboard) and waits for what the page shows. Only what happens beside the page comes from
// elsewhere: another client's calls (the studio's API with the admin token), the worker's
// operator (`studio-worker pause`), a broken proxy in front of the studio (page.route).
//
// Environment: STUDIO_URL, ADMIN_TOKEN, CLIENT_KEY (a client-scope key), ARTIFACTS (a folder for
// the screenshots), APPROVE_REQUEST and REJECT_REQUEST (the two registration requests waiting),
// REJECT_REASON, PAUSE_COMMAND and RESUME_COMMAND (`studio-worker pause|resume` for the approved
// worker), CHROMIUM (default /usr/bin/chromium); KEEP_GOING=1 runs every step even after one
// failed (to see which steps a change breaks).
// Prints one JSON line {"ok": bool, "steps": [...], "consoleErrors": [...], "screenshots": [...]}
// and exits 0 only when every step passed and the console stayed free of errors.
import {chromium} from 'playwright-core';
import {execSync} from 'node:child_process';
import {mkdirSync} from 'node:fs';
import {join} from 'node:path';

const url = process.env.STUDIO_URL;
const admin = process.env.ADMIN_TOKEN;
const clientKey = process.env.CLIENT_KEY;
const artifacts = process.env.ARTIFACTS;
const approveRequest = process.env.APPROVE_REQUEST;
const rejectRequest = process.env.REJECT_REQUEST;
const rejectReason = process.env.REJECT_REASON;
const keepGoing = process.env.KEEP_GOING === '1';
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
  if (expectHttpError && new RegExp(`status of (${expectHttpError})`).test(text)) return;
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
    expectHttpError = null;
    if (!keepGoing) throw error;
  }
}

// The studio's API as another client calls it, beside the page.
async function studioApi(method, path, body) {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: {Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json'},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const value = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(value)}`);
  return value;
}

// How many reads view `name` has shown (the page counts them in data-reads).
function reads(name) {
  return page.evaluate(
    (n) => Number(document.getElementById(`view-${n}`)?.dataset.reads || 0), name);
}

// Waits until `element` lost focus or view `name` showed `count` more reads; then says whether
// it still has focus. (A rebuild of the view takes the focus away at once.)
async function keepsFocusOver(element, name, count) {
  const before = await reads(name);
  await page.waitForFunction(([el, n, target]) =>
    document.activeElement !== el ||
        Number(document.getElementById(`view-${n}`).dataset.reads || 0) >= target,
  [element, name, before + count]);
  return element.evaluate((el) => el.isConnected && document.activeElement === el);
}

// Submits the New job form; the new job's id once its detail is open (not the job open before).
async function submitJob() {
  const before = await page.evaluate(() => location.hash);
  await page.click('#new-job button[type=submit]');
  const hash = await page.waitForFunction(
    (before) => location.hash.startsWith('#jobs/') && location.hash !== before && location.hash,
    before);
  const id = decodeURIComponent((await hash.jsonValue()).slice('#jobs/'.length));
  await page.waitForSelector(`#job-detail h2:text-is("${id}")`);
  return id;
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

  await step('a key with an invisible character is refused and the character named', async () => {
    await signIn(`${admin.slice(0, 4)}\u200b${admin.slice(4)}`);
    await page.waitForSelector('#sign-in-error:has-text("U+200B")');
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
    const card = page.locator(`#view-approvals article[data-request="${approveRequest}"]`);
    await card.waitFor();
    await shot('approvals');
    await card.locator('button:has-text("Approve")').click();
    await page.waitForSelector('#notice:has-text("approved as")');
  });

  await step('a rejection reason typed across a refresh stays, keeps focus and is sent', async () => {
    const input = page.locator(`#view-approvals article[data-request="${rejectRequest}"] input`);
    await input.click();
    const half = Math.floor(rejectReason.length / 2);
    await page.keyboard.type(rejectReason.slice(0, half));
    // The cards are read again every 5 s while the view is open.
    if (!(await keepsFocusOver(await input.elementHandle(), 'approvals', 1))) {
      throw new Error('the reason field lost focus at a refresh');
    }
    await page.keyboard.type(rejectReason.slice(half));
    const typed = await input.inputValue();
    if (typed !== rejectReason) throw new Error(`the reason field reads "${typed}"`);
    const sent = page.waitForRequest((r) => r.url().endsWith(`/${rejectRequest}/reject`));
    await page.click(`#view-approvals article[data-request="${rejectRequest}"] button:has-text("Reject")`);
    const reason = (await sent).postDataJSON().reason;
    if (reason !== rejectReason) throw new Error(`the studio was sent the reason "${reason}"`);
    await page.waitForSelector('#notice:has-text("rejected")');
  });

  await step('the approved worker connects and the fleet shows it', async () => {
    await page.click('#nav a[data-view=fleet]');
    // Live: the page is not reloaded; the worker's "connected" event updates the table.
    await page.waitForSelector('#view-fleet tr[data-worker] .badge-connected');
    await page.waitForSelector('#view-fleet tr[data-worker] td:has-text("image")');
    await shot('fleet');
  });

  await step('Delete works from the keyboard across a refresh and Escape disarms it', async () => {
    const button = page.locator('#view-fleet tr[data-worker] button:has-text("Delete")').first();
    await button.focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.activeElement?.textContent === 'Confirm delete');
    const armed = await page.evaluateHandle(() => document.activeElement);
    const label = await armed.evaluate((el) => el.getAttribute('aria-label'));
    if (!/^Confirm delete/.test(label)) throw new Error(`the armed button is labelled "${label}"`);
    if (!(await keepsFocusOver(armed, 'fleet', 1))) {
      throw new Error('the armed Delete lost focus at a refresh');
    }
    await page.keyboard.press('Escape');
    await page.waitForFunction((el) => el.textContent === 'Delete' && document.activeElement === el,
                               armed);
  });

  await step('the fleet shows a worker paused and resumed by its operator', async () => {
    execSync(process.env.PAUSE_COMMAND, {stdio: 'ignore'});
    try {
      await page.waitForSelector('#view-fleet tr[data-worker] .badge-paused');
      await shot('fleet-paused');
    } finally {
      execSync(process.env.RESUME_COMMAND, {stdio: 'ignore'});  // the later steps need it
    }
    await page.waitForSelector('#view-fleet tr[data-worker] .badge-paused', {state: 'detached'});
  });

  await step('a failed read stays shown, the rows marked old, until a read succeeds', async () => {
    const failure = {status: 503, contentType: 'application/json',
      body: JSON.stringify({error: 'unavailable', message: 'database is locked'})};
    let answer = failure;
    let hits = 0;
    let onHit = () => {};
    const workers = (u) => u.pathname === '/api/v1/workers';
    await page.route(workers, async (route) => {
      ++hits;
      onHit();
      await route.fulfill(answer);
    });
    expectHttpError = '502|503';
    try {
      await page.click('#view-fleet .view-head button:has-text("Refresh")');
      await page.waitForSelector('#view-fleet > p.error:has-text("database is locked")');
      // Two more reads fail (the view reads every 5 s), unless the error went first.
      const target = hits + 2;
      const twoMore = new Promise((resolve) => {
        onHit = () => { if (hits >= target) resolve(); };
      });
      const errorGone = page.waitForFunction(
        () => !document.querySelector('#view-fleet > p.error'), null, {timeout: 30000});
      errorGone.catch(() => {});
      await Promise.race([twoMore, errorGone]);
      if (!(await page.isVisible('#view-fleet > p.error:has-text("database is locked")'))) {
        throw new Error('the error was replaced by the rows read before it');
      }
      await page.waitForSelector('#view-fleet .table-wrap.stale');
      // A proxy's HTML error page is not shown as markup.
      answer = {status: 502, contentType: 'text/html',
        body: '<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>'};
      await page.click('#view-fleet .view-head button:has-text("Refresh")');
      await page.waitForSelector('#view-fleet > p.error:has-text("502")');
      const text = await page.textContent('#view-fleet > p.error');
      if (text.includes('<')) throw new Error(`the error reads "${text}"`);
    } finally {
      await page.unroute(workers);
    }
    await page.waitForSelector('#view-fleet > p.error', {state: 'detached'});
    await page.waitForSelector('#view-fleet .table-wrap:not(.stale) tr[data-worker]');
    expectHttpError = null;
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

  await step('a list read that answers after the job\'s events does not undo them', async () => {
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    const list = (u) => u.pathname === '/api/v1/jobs';
    await page.route(list, async (route) => {
      if (route.request().method() !== 'GET') return route.continue();  // the submit itself
      const response = await route.fetch();  // the list as it is when asked
      await held;
      await route.fulfill({response});
    });
    let id;
    let before;
    try {
      await page.fill('#job-prompt', 'a fox, read late');
      id = await submitJob();
      await page.waitForSelector('#job-detail .badge-done');  // its events came
      before = await reads('jobs');
    } finally {
      release();
    }
    // Until the late answer is shown (a read counted), or the row went back.
    await page.waitForFunction(([id, before]) => {
      const row = document.querySelector(`#view-jobs tr[data-job="${id}"]`);
      return !row?.textContent.includes('done') ||
          Number(document.getElementById('view-jobs').dataset.reads || 0) > before;
    }, [id, before]);
    await page.unroute(list);
    const row = await page.textContent(`#view-jobs tr[data-job="${id}"]`);
    if (!row.includes('done')) throw new Error(`the job's row went back to "${row}"`);
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

  await step('the open job follows a cancel made elsewhere while another job arrives', async () => {
    await page.fill('#job-prompt', 'cancelled by another client');
    const id = await submitJob();
    await page.waitForSelector('#job-detail .waiting:has-text("GB")');
    // Two events close together: this job's cancel, then a new job.
    await studioApi('POST', `/api/v1/jobs/${encodeURIComponent(id)}/cancel`, {});
    await studioApi('POST', '/api/v1/jobs',
                    {model: 'page-huge', task: {kind: 'image', prompt: 'at the same time'}});
    await page.waitForSelector('#job-detail .badge-cancelled');
    await page.waitForSelector('#cancel-job', {state: 'detached'});
    if (await page.isVisible('#job-detail .waiting')) throw new Error('it still says why it waits');
  });

  await step('jobs filter by status and open from the keyboard', async () => {
    await page.selectOption('#filter-status', 'done');
    await page.waitForFunction(() => {
      const rows = [...document.querySelectorAll('#view-jobs tbody tr[data-job]')];
      return rows.length > 0 && rows.every((row) => row.textContent.includes('done'));
    });
    await page.goto(`${url}/#jobs`);  // a reload keeps the key (session storage)
    await page.waitForSelector('#view-jobs tbody tr[data-job]');
    // Each row's job link is its keyboard stop: Enter opens the job, Escape closes it.
    await page.locator('#view-jobs tbody tr[data-job] a').first().focus();
    await page.keyboard.press('Enter');
    await page.waitForSelector('#job-detail:not([hidden]) h2');
    await page.keyboard.press('Escape');
    await page.waitForSelector('#job-detail', {state: 'hidden'});
    // Back on the row it was opened from.
    await page.waitForFunction(
      () => document.activeElement?.closest('#view-jobs tbody tr[data-job]') !== null);
  });

  await step('keyboard focus on a job stays there while the list is read again', async () => {
    const link = page.locator('#view-jobs tbody tr[data-job] a').first();
    await link.focus();
    if (!(await keepsFocusOver(await link.elementHandle(), 'jobs', 2))) {
      throw new Error('focus left the job link at a refresh');
    }
  });

  await step('a malformed address is told on the page, not thrown', async () => {
    await page.evaluate(() => { location.hash = '#jobs/%E0%A4%A'; });
    await page.waitForSelector('#notice:has-text("address")');
    await page.waitForSelector('#view-jobs:not([hidden])');
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

  await step('a key narrowed to inference is signed out at once', async () => {
    const {keys} = await studioApi('GET', '/api/v1/keys');
    const key = keys.find((k) => k.name === 'dashboard client');
    // Until the page notices, its reads above the new scope are refused (403).
    expectHttpError = 403;
    await studioApi('PATCH', `/api/v1/keys/${key.id}`, {scope: 'inference'});
    await page.waitForSelector('#sign-in:not([hidden])');
    await page.waitForSelector('#sign-in-error:has-text("inference")');
    expectHttpError = null;
  });

  report.ok = report.consoleErrors.length === 0 && report.steps.every((s) => s.ok);
} catch {
  report.ok = false;
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
process.exit(report.ok ? 0 : 1);
