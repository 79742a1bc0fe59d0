// End-to-end test of the dashboard in a real headless Chromium (Debian package, driven by
// playwright-core; no browser download). Needs a running `kwi serve` with the Google Trends sample
// (`.ci/e2e` starts one, and imports tests/fixtures/markets.csv so "coffee" is on three platforms)
// and a user to sign in as (`.ci/e2e` creates it with `kwi users create`).
//
//   node web/tests/dashboard.test.mjs [BASE_URL]      (or KWI_URL; default http://127.0.0.1:8080)
//   E2E_EMAIL, E2E_PASSWORD, E2E_KEY   the user's sign-in and API key (required)
//   E2E_OPEN_URL  a second server started with `--auth off` and its built-in sample (`.ci/e2e`
//                 starts one); without it the auth-off check is skipped
//   E2E_OUT=dir   where screenshots go (default target/e2e)
//   CHROMIUM=path browser binary (default /usr/bin/chromium)
//
// Every check prints `ok - ...`; the first failure prints `not ok - ...` and exits 1.

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const BASE = (process.argv[2] || process.env.KWI_URL || "http://127.0.0.1:8080").replace(/\/$/, "");
const OUT = resolve(process.env.E2E_OUT || "target/e2e");
const PLATFORM = "google";
const KEYWORD = "coffee";
const TIMEOUT = 20_000;
const { E2E_EMAIL: EMAIL, E2E_PASSWORD: PASSWORD, E2E_KEY: KEY } = process.env;
const OPEN = (process.env.E2E_OPEN_URL || "").replace(/\/$/, "");
// Where the dashboard keeps its credentials (sessionStorage, JSON {token, refresh?, expires?}).
const CREDENTIALS = "kwi.credentials";

if (!EMAIL || !PASSWORD || !KEY) {
  console.error("E2E_EMAIL, E2E_PASSWORD and E2E_KEY must be set (.ci/e2e creates the user with `kwi users create`)");
  process.exit(2);
}

mkdirSync(OUT, { recursive: true });
const results = [];
const pageErrors = [];
const foreignRequests = [];

/** The API as the e2e user (its API key, or `token`; null for none); a 429 is waited out, not failed on. */
async function api(path, { method = "GET", body, token = KEY } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (res.status === 429 && attempt < 5) {
      const wait = Math.min(10, Number(res.headers.get("retry-after")) || 1);
      await new Promise((r) => setTimeout(r, 1000 * wait));
      continue;
    }
    return { status: res.status, body: await res.json().catch(() => null) };
  }
}

/** What the page keeps in sessionStorage (null when signed out). */
const stored = async (page) => JSON.parse(await page.evaluate((k) => sessionStorage.getItem(k), CREDENTIALS));
const pathOf = (url) => new URL(url).pathname;

/** No sideways scrolling. */
async function assertFits(page) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `page is ${overflow}px wider than the screen`);
}

async function check(name, fn) {
  try {
    await fn();
    results.push(name);
    console.log(`ok - ${name}`);
  } catch (e) {
    console.log(`not ok - ${name}\n  ${String(e && e.stack || e).split("\n").join("\n  ")}`);
    throw e;
  }
}

const band = (step, level) => step.intervals.find((b) => b.level === level);

const profiles = [];
const contexts = [];

/**
 * A browser with a fresh profile (playwright takes the profile folder as launchPersistentContext's
 * argument, not as --user-data-dir), whose page fails the test on script errors and refuses every
 * request to an origin other than `base`'s.
 */
async function newPage(viewport, extra = {}, base = BASE) {
  const profile = mkdtempSync(join(tmpdir(), "kwi-e2e-chromium-"));
  profiles.push(profile);
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
    viewport,
    ...extra,
  });
  contexts.push(context);
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && !/Failed to load resource/.test(m.text()) && pageErrors.push(m.text()));
  const origin = new URL(base).origin;
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(origin) || url.startsWith("data:") || url.startsWith("blob:")) return route.continue();
    foreignRequests.push(url);
    return route.abort();
  });
  return { context, page };
}

/** Counts painted pixels of the chart's canvas (uPlot draws everything into one canvas). */
async function paintedPixels(page, selector) {
  return page.$eval(`${selector} canvas`, (c) => {
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n;
  });
}

let failed = false;
try {
  // The API's own answers: the page must show these exact numbers.
  const fcPath = `/v1/keywords/${PLATFORM}/${KEYWORD}/forecast?horizon=13&levels=80,95`;
  const fc = await api(fcPath);
  assert.equal(fc.status, 200, `forecast API: ${JSON.stringify(fc.body)}`);
  const kw = await api(`/v1/keywords/${PLATFORM}/${KEYWORD}`);
  assert.equal(kw.status, 200);
  const markets = await api(`/v1/keywords/${KEYWORD}/markets`);
  assert.equal(markets.status, 200);

  const { page } = await newPage({ width: 1366, height: 768 });
  const apiCalls = [];
  page.on("request", (r) => pathOf(r.url()).startsWith("/v1/") && apiCalls.push(pathOf(r.url())));

  await check("without credentials the sign-in view appears and no data is requested", async () => {
    const providers = await api("/v1/auth/providers", { token: null });
    assert.equal(providers.status, 200);
    await page.goto(BASE + "/");
    await page.waitForSelector("#signin-view:not([hidden])");
    await page.waitForSelector("#signin-view[data-sso]");
    assert.equal(await page.getAttribute("body", "data-auth"), "out");
    for (const sel of ["#home-view", "#keyword-view", "#search-form", "#account", "#account-button"]) {
      assert.ok(await page.isHidden(sel), `${sel} is shown before signing in`);
    }
    const sso = Boolean(providers.body.oidc && providers.body.oidc.enabled);
    assert.equal(await page.getAttribute("#signin-view", "data-sso"), sso ? "on" : "off");
    assert.equal(await page.isVisible("#sso-button"), sso);
    for (const id of ["login-email", "login-password", "api-key"]) {
      assert.equal(await page.$$eval(`label[for="${id}"]`, (l) => l.length), 1, `#${id} has no label`);
    }
    assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.id), "login-email");
    assert.ok(apiCalls.every((p) => p.startsWith("/v1/auth/")), `requested before signing in: ${apiCalls}`);
    await page.screenshot({ path: join(OUT, "signin-desktop.png"), fullPage: true });
  });

  await check("a single sign-on failure (#login_error=) shows its reason on the sign-in view and leaves the address bar", async () => {
    // Where the SSO callback sends a browser it could not sign in: a fresh page load.
    const why = "the identity provider refused the login: access_denied";
    await page.goto("about:blank");
    await page.goto(`${BASE}/#login_error=${encodeURIComponent(why)}`);
    await page.waitForSelector("#signin-view:not([hidden]) #signin-error:not([hidden])");
    assert.equal(await page.textContent("#signin-error"), `Single sign-on failed: ${why}`);
    assert.equal(await page.evaluate(() => location.hash), "");
    assert.equal(await page.getAttribute("body", "data-auth"), "out");
    assert.equal(await stored(page), null);
    // Opened in this tab (hashchange): shown as text, never as HTML; a malformed escape as it came.
    for (const [frag, text] of [["%3Cimg%20src%3Dx%3E%20refused", "<img src=x> refused"], ["100%25%ZZ", "100%25%ZZ"]]) {
      await page.goto(`${BASE}/#login_error=${frag}`);
      await page.waitForFunction((t) => document.querySelector("#signin-error").textContent === t,
        `Single sign-on failed: ${text}`);
      assert.equal(await page.evaluate(() => location.hash), "");
      assert.equal(await page.$$eval("#signin-error *", (l) => l.length), 0, "the message was read as HTML");
    }
    assert.ok(await page.isVisible("#signin-error"));
    await page.screenshot({ path: join(OUT, "signin-sso-error-desktop.png") });
    // A fresh sign-in view for the checks below.
    await page.goto("about:blank");
    await page.goto(BASE + "/");
    await page.waitForSelector("#signin-view:not([hidden])");
    assert.ok(await page.isHidden("#signin-error"));
  });

  await check("a wrong password shows the API's error and stays signed out", async () => {
    await page.fill("#login-email", EMAIL);
    await page.fill("#login-password", `${PASSWORD}-wrong`);
    const answer = page.waitForResponse((r) => pathOf(r.url()) === "/v1/auth/login");
    await page.click("#login-submit");
    const res = await answer;
    assert.equal(res.status(), 401);
    const body = await res.json();
    assert.equal(body.error.code, "unauthorized");
    await page.waitForSelector("#signin-error:not([hidden])");
    assert.equal((await page.textContent("#signin-error")).trim(), body.error.message);
    assert.equal(await page.getAttribute("#signin-error", "role"), "alert");
    assert.equal(await stored(page), null);
    assert.ok(await page.isHidden("#home-view"));
    await page.screenshot({ path: join(OUT, "signin-error-desktop.png") });
  });

  await check("signing in with email and password opens the dashboard", async () => {
    await page.fill("#login-password", PASSWORD);
    await page.click("#login-submit");
    await page.waitForSelector("body[data-auth='in'] #home-view:not([hidden])");
    assert.ok(await page.isHidden("#signin-view"));
    assert.ok(await page.isHidden("#signin-error"));
    assert.ok(await page.isVisible("#search-form"));
    const c = await stored(page);
    assert.ok(c && c.token && String(c.refresh).startsWith("kwi_rt_"), "no access and refresh token stored");
    assert.equal(await page.textContent("#account-email"), EMAIL);
  });

  await check("page loads (still signed in after a reload) with the trends panel (rows, or the no-insights message)", async () => {
    await page.goto(BASE + "/");
    await page.waitForSelector("#home-view:not([hidden])");
    await page.waitForSelector("#trends[data-state]");
    const state = await page.getAttribute("#trends", "data-state");
    const trends = await api("/v1/trends?direction=rising&limit=20");
    const items = trends.status === 200 ? trends.body.items || [] : [];
    if (items.length) {
      assert.equal(state, "rows");
      const rows = await page.$$eval("#trends-table tbody tr", (trs) =>
        trs.map((tr) => [tr.dataset.platform, tr.dataset.keyword, tr.querySelector("a").getAttribute("href")]));
      assert.deepEqual(rows.map((r) => r.slice(0, 2)), items.map((i) => [i.platform, i.keyword]));
      assert.ok(rows.every(([p, k, href]) => href === `#/${encodeURIComponent(p)}/${encodeURIComponent(k)}`));
    } else {
      assert.equal(state, "empty", `trends answered ${trends.status}`);
      assert.match(await page.textContent("#trends"), /no trend insights computed yet/i);
    }
    await page.screenshot({ path: join(OUT, "home-desktop.png"), fullPage: true });
  });

  await check("typing shows suggestions from the search API; picking one opens the keyword", async () => {
    await page.fill("#q", "");
    await page.type("#q", "cof", { delay: 40 });
    const sugg = `#suggestions li[data-platform="${PLATFORM}"][data-keyword="${KEYWORD}"]`;
    await page.waitForSelector(sugg);
    const shown = await page.$$eval("#suggestions li[data-keyword]", (lis) => lis.map((li) => li.dataset.keyword));
    const search = await api("/v1/keywords/search?q=cof&limit=8");
    assert.deepEqual(shown, search.body.results.map((h) => h.keyword));
    await page.click(sugg);
    await page.waitForFunction((h) => location.hash === h, `#/${PLATFORM}/${KEYWORD}`);
    await page.waitForSelector("#keyword-view:not([hidden])");
    assert.equal(await page.textContent("#kw-title"), KEYWORD);
  });

  await check("forecast chart renders history and bands on a canvas", async () => {
    await page.waitForSelector("#forecast-chart canvas");
    const box = await page.$eval("#forecast-chart canvas", (c) => [c.width, c.height]);
    assert.ok(box[0] > 300 && box[1] > 150, `canvas ${box}`);
    assert.ok((await paintedPixels(page, "#forecast-chart")) > 2000, "chart canvas is blank");
    const legend = await page.$$eval("#forecast-chart .u-legend .u-label", (ls) => ls.map((l) => l.textContent));
    for (const l of ["History", "Forecast", "80 % low", "95 % high"]) assert.ok(legend.includes(l), `legend lacks ${l}`);
  });

  await check("band values on the page equal the forecast API's (first step and every table row)", async () => {
    const first = fc.body.forecast[0];
    const ds = await page.$eval("#forecast-chart", (e) => ({ ...e.dataset }));
    assert.equal(ds.firstDate, first.period_start);
    assert.equal(Number(ds.firstMean), first.mean);
    assert.equal(Number(ds.firstLo80), band(first, 80).lo);
    assert.equal(Number(ds.firstHi80), band(first, 80).hi);
    assert.equal(Number(ds.firstLo95), band(first, 95).lo);
    assert.equal(Number(ds.firstHi95), band(first, 95).hi);
    assert.ok(band(first, 95).lo <= band(first, 80).lo && band(first, 80).hi <= band(first, 95).hi, "bands nest");
    const rows = await page.$$eval("#forecast-table tbody tr", (trs) => trs.map((tr) => {
      const o = { step: Number(tr.dataset.step) };
      for (const td of tr.querySelectorAll("td[data-field]")) {
        o[td.dataset.field] = td.dataset.field === "period_start" ? td.textContent : Number(td.dataset.value);
      }
      return o;
    }));
    assert.equal(rows.length, 13);
    assert.deepEqual(rows, fc.body.forecast.map((s) => ({
      step: s.step, period_start: s.period_start, mean: s.mean,
      lo80: band(s, 80).lo, hi80: band(s, 80).hi, lo95: band(s, 95).lo, hi95: band(s, 95).hi,
    })));
  });

  await check("model version, accuracy and score cards", async () => {
    assert.equal(await page.textContent("#model-version"), fc.body.model_version);
    const card = await page.textContent("#card-model");
    const mase = fc.body.model_accuracy?.validation?.mase ?? fc.body.model_accuracy?.mase;
    if (typeof mase === "number") assert.match(card, new RegExp(`MASE\\s*${mase.toFixed(3)}`));
    else assert.ok(card.length > "Model".length + fc.body.model_version.length, "model card says nothing about accuracy");
    const k = kw.body;
    const comp = await page.textContent("#card-competition");
    if (k.competition) {
      assert.equal(Number(await page.getAttribute("#card-competition [data-score]", "data-score")), k.competition.score);
      assert.equal(await page.$$eval("#card-competition [data-factor]", (l) => l.length), k.competition.contributions.length);
    } else assert.match(comp, /not scored yet/);
    const opp = await page.textContent("#card-opportunity");
    if (k.opportunity) assert.equal(Number(await page.getAttribute("#card-opportunity [data-score]", "data-score")), k.opportunity.score);
    else assert.match(opp, /not scored yet/);
    const ins = await page.textContent("#card-insights");
    if (k.insights?.peak) assert.match(ins, new RegExp(k.insights.peak.date));
    else if (!k.insights) assert.match(ins, /not scored yet/);
  });

  await check("markets chart shows the keyword on every platform the API lists", async () => {
    await page.waitForSelector("#markets-chart[data-platforms] canvas");
    const shown = (await page.getAttribute("#markets-chart", "data-platforms")).split(",").sort();
    assert.deepEqual(shown, markets.body.markets.map((m) => m.platform).sort());
    const legend = await page.$$eval("#markets-chart .u-legend .u-label", (ls) => ls.map((l) => l.textContent));
    for (const p of shown) assert.ok(legend.includes(p), `markets legend lacks ${p}`);
    assert.ok((await paintedPixels(page, "#markets-chart")) > 1000, "markets canvas is blank");
    await page.screenshot({ path: join(OUT, "keyword-desktop.png"), fullPage: true });
  });

  await check("the account panel shows the user, the plan, this month's usage and the recent searches", async () => {
    const me = await api("/v1/me");
    assert.equal(me.status, 200);
    assert.equal(me.body.email, EMAIL);
    assert.equal(me.body.plan.name, "pro");
    assert.equal(await page.textContent("#account-email"), EMAIL);
    assert.equal(await page.textContent("#account-role"), me.body.role);
    assert.equal(await page.textContent("#account-plan"), me.body.plan.name);
    assert.match(await page.textContent("#account-rate"), /requests\/min/);
    const quota = me.body.plan.monthly_lookups;
    assert.match(await page.textContent("#account-quota"), quota == null ? /unlimited/ : /a month/);
    await page.waitForSelector("#usage[data-lookups]");
    const usage = await api("/v1/me/usage");
    assert.equal(usage.status, 200);
    assert.equal(await page.getAttribute("#usage", "data-limit"),
      usage.body.monthly_lookups == null ? "unlimited" : String(usage.body.monthly_lookups));
    const shown = Number(await page.getAttribute("#usage", "data-lookups"));
    assert.ok(Number.isInteger(shown) && shown >= 0 && shown <= usage.body.lookups, `usage shows ${shown} of ${usage.body.lookups}`);
    if (usage.body.monthly_lookups != null) assert.ok(await page.isVisible("#usage [role=progressbar]"));
    // The keyword this test opened is among the recent searches; clicking it opens it again.
    const item = `#history li[data-platform="${PLATFORM}"][data-keyword="${KEYWORD}"] a`;
    await page.waitForSelector(item);
    assert.ok((await page.$$eval("#history li[data-keyword]", (l) => l.length)) <= 10);
    await page.locator("#account").screenshot({ path: join(OUT, "account-desktop.png") });
    await page.goto(BASE + "/");
    await page.waitForSelector("#home-view:not([hidden])");
    await page.waitForSelector(item);
    await page.click(item);
    await page.waitForFunction((h) => location.hash === h, `#/${PLATFORM}/${KEYWORD}`);
    await page.waitForSelector("#keyword-view:not([hidden])");
    assert.equal(await page.textContent("#kw-title"), KEYWORD);
    assert.equal(await page.inputValue("#q"), KEYWORD);
  });

  await check("an unknown keyword shows the API's 404 message", async () => {
    const missing = "no such keyword e2e";
    const expected = await api(`/v1/keywords/${PLATFORM}/${encodeURIComponent(missing)}`);
    assert.equal(expected.status, 404);
    await page.goto(`${BASE}/#/${PLATFORM}/${encodeURIComponent(missing)}`);
    await page.waitForSelector("#status.error");
    const text = await page.textContent("#status");
    assert.ok(text.includes(expected.body.error.message), `status says: ${text}`);
    assert.ok(await page.isHidden("#keyword-view"));
    await page.screenshot({ path: join(OUT, "unknown-keyword-desktop.png") });
  });

  await check("a keyword with listing data only: competition scored, the forecast's absence explained", async () => {
    const path = `/v1/keywords/amazon/${encodeURIComponent("usb cables")}`;
    let k = await api(path);
    // The start-up insights job scores it; wait for it rather than racing it.
    for (let i = 0; i < 40 && !(k.body && k.body.competition); i++) {
      await new Promise((r) => setTimeout(r, 500));
      k = await api(path);
    }
    assert.equal(k.status, 200);
    assert.ok(k.body.competition, "the insights job never scored amazon/usb cables");
    const f = await api(`${path}/forecast`);
    assert.equal(f.status, 404);
    await page.goto(`${BASE}/#/amazon/${encodeURIComponent("usb cables")}`);
    await page.waitForSelector("#keyword-view:not([hidden]) #no-forecast");
    assert.equal(await page.textContent("#no-forecast"), f.body.error.message);
    assert.equal(Number(await page.getAttribute("#card-competition [data-score]", "data-score")), k.body.competition.score);
    assert.match(await page.textContent("#kw-sub"), /listing data only/);
    assert.equal(await page.$$eval("#forecast-table tbody tr", (r) => r.length), 0);
    await page.waitForSelector("#no-markets");
    assert.match(await page.textContent("#card-opportunity"), /needs search-volume history/);
    await page.screenshot({ path: join(OUT, "listing-only-desktop.png"), fullPage: true });
  });

  await check("a server error reads as one (the forecast endpoint answering 500)", async () => {
    const pattern = `**/v1/keywords/${PLATFORM}/wifi/forecast*`;
    await page.route(pattern, (route) => route.fulfill({
      status: 500, contentType: "application/json",
      body: JSON.stringify({ error: { code: "internal", message: "internal server error" } }),
    }));
    await page.goto(`${BASE}/#/${PLATFORM}/wifi`);
    await page.waitForSelector("#status.error");
    assert.match(await page.textContent("#status"), /server failed \(500: internal server error\)/);
    assert.ok(await page.isHidden("#keyword-view"));
    await page.unroute(pattern);
  });

  await check("submitting a typed keyword with a platform picked opens it (or its 404)", async () => {
    await page.goto(BASE + "/");
    await page.selectOption("#platform", PLATFORM);
    await page.fill("#q", "Mobile Phone");
    await page.press("#q", "Enter");
    await page.waitForFunction(() => location.hash === "#/google/mobile%20phone");
    await page.waitForSelector("#forecast-chart canvas");
    assert.equal(await page.textContent("#kw-title"), "mobile phone");
  });

  await check("an access token the server refuses is renewed once with the refresh token", async () => {
    const before = await stored(page);
    await page.evaluate(([k, c]) => sessionStorage.setItem(k, JSON.stringify({ ...c, token: "not-a-valid-token" })),
      [CREDENTIALS, before]);
    const refreshes = [];
    const onRequest = (r) => pathOf(r.url()) === "/v1/auth/refresh" && refreshes.push(r.url());
    page.on("request", onRequest);
    await page.goto(BASE + "/");
    await page.waitForSelector("body[data-auth='in'] #home-view:not([hidden])");
    await page.waitForSelector("#trends[data-state]");
    page.off("request", onRequest);
    assert.equal(refreshes.length, 1);
    const after = await stored(page);
    assert.ok(after.token !== "not-a-valid-token" && after.refresh && after.refresh !== before.refresh, "tokens not renewed");
    assert.equal(await page.textContent("#account-email"), EMAIL);
  });

  await check("signing out revokes the refresh token and returns to the sign-in view", async () => {
    const before = await stored(page);
    const logout = page.waitForResponse((r) => pathOf(r.url()) === "/v1/auth/logout");
    await page.click("#sign-out");
    assert.equal((await logout).status(), 204);
    await page.waitForSelector("#signin-view:not([hidden])");
    assert.equal(await page.getAttribute("body", "data-auth"), "out");
    for (const sel of ["#account", "#search-form", "#home-view", "#keyword-view"]) assert.ok(await page.isHidden(sel), `${sel} still shown`);
    assert.equal(await stored(page), null);
    assert.equal(await page.textContent("#account-email"), "");
    const reuse = await api("/v1/auth/refresh", { method: "POST", body: { refresh_token: before.refresh }, token: null });
    assert.equal(reuse.status, 401, "the refresh token still works after signing out");
    await page.reload();
    await page.waitForSelector("#signin-view:not([hidden])");
  });

  await check("a refresh token the server refuses returns to the sign-in view with the reason", async () => {
    await page.evaluate((k) => sessionStorage.setItem(k, JSON.stringify({ token: "not-a-valid-token", refresh: "kwi_rt_not-a-valid-token" })),
      CREDENTIALS);
    await page.reload();
    await page.waitForSelector("#signin-view:not([hidden]) #signin-error:not([hidden])");
    assert.ok((await page.textContent("#signin-error")).trim().length > 0);
    assert.equal(await stored(page), null);
    assert.ok(await page.isHidden("#home-view"));
  });

  let phone;
  await check("a #key= link signs in and the key leaves the address bar", async () => {
    ({ page: phone } = await newPage({ width: 390, height: 844 }, { isMobile: true, hasTouch: true, deviceScaleFactor: 2 }));
    await phone.goto(`${BASE}/#key=${encodeURIComponent(KEY)}`);
    await phone.waitForSelector("body[data-auth='in'] #home-view:not([hidden])");
    assert.equal(await phone.evaluate(() => location.hash), "");
    assert.ok(!(await phone.evaluate(() => location.href)).includes(KEY), "the key is still in the address bar");
    assert.ok((await stored(phone)).token === KEY, "the key was not stored");
    assert.equal(await phone.textContent("#account-email"), EMAIL);
  });

  await check("phone layout (390x844): chart fits, no sideways scrolling", async () => {
    await phone.goto(`${BASE}/#/${PLATFORM}/${KEYWORD}`);
    await phone.waitForSelector("#forecast-chart canvas");
    await phone.waitForSelector("#markets-chart[data-platforms] canvas");
    await assertFits(phone);
    const w = await phone.$eval("#forecast-chart .uplot", (e) => e.getBoundingClientRect().width);
    assert.ok(w <= 390 && w > 250, `chart width ${w}`);
    await phone.screenshot({ path: join(OUT, "keyword-phone.png"), fullPage: true });
    await phone.goto(`${BASE}/#/`);
    await phone.waitForSelector("#trends[data-state]");
    await phone.screenshot({ path: join(OUT, "home-phone.png"), fullPage: true });
  });

  await check("phone: the account button reaches the panel; signing out shows a sign-in view that fits", async () => {
    const button = await phone.$eval("#account-button", (b) => {
      const r = b.getBoundingClientRect();
      return { left: r.left, right: r.right, top: r.top, text: b.textContent };
    });
    assert.ok(button.left >= 0 && button.right <= 390 && button.top < 60, `account button at ${JSON.stringify(button)}`);
    await phone.click("#account-button");
    await phone.waitForFunction(() => document.activeElement && document.activeElement.id === "account-title");
    await phone.waitForSelector("#usage[data-lookups]");
    await phone.screenshot({ path: join(OUT, "account-phone.png") });
    await phone.click("#sign-out");
    await phone.waitForSelector("#signin-view:not([hidden])");
    assert.equal(await stored(phone), null);
    await assertFits(phone);
    await phone.screenshot({ path: join(OUT, "signin-phone.png"), fullPage: true });
  });

  await check("with authentication off (--auth off) the dashboard opens without an account", async () => {
    if (!OPEN) {
      console.log("  # skipped: E2E_OPEN_URL is not set");
      return;
    }
    const providers = await (await fetch(OPEN + "/v1/auth/providers")).json();
    assert.equal(providers.required, false, `providers: ${JSON.stringify(providers)}`);
    const { page: open } = await newPage({ width: 1366, height: 768 }, {}, OPEN);
    const calls = [];
    open.on("request", (r) => pathOf(r.url()).startsWith("/v1/") && calls.push(pathOf(r.url())));
    await open.goto(OPEN + "/");
    await open.waitForSelector("body[data-auth='off'] #home-view:not([hidden])");
    assert.ok(await open.isHidden("#signin-view"));
    assert.ok(await open.isVisible("#q"), "no search box");
    assert.ok(await open.isVisible("#auth-off"), "no note that authentication is off");
    assert.match(await open.textContent("#auth-off"), /Authentication is off on this server/);
    for (const sel of ["#account", "#account-button", "#sign-out"]) assert.ok(await open.isHidden(sel), `${sel} is shown`);
    await open.waitForSelector("#trends[data-state]");
    assert.notEqual(await open.getAttribute("#trends", "data-state"), "error", await open.textContent("#trends"));
    // Searching works without credentials (the built-in sample has "coffee" on Google).
    await open.fill("#q", KEYWORD);
    const hit = `#suggestions li[data-platform="${PLATFORM}"][data-keyword="${KEYWORD}"]`;
    await open.waitForSelector(hit);
    await open.click(hit);
    await open.waitForFunction((h) => location.hash === h, `#/${PLATFORM}/${KEYWORD}`);
    await open.waitForSelector("#keyword-view:not([hidden])");
    assert.equal(await open.textContent("#kw-title"), KEYWORD);
    await open.waitForSelector("#forecast-chart canvas, #no-forecast");
    assert.ok(await open.isHidden("#signin-view"));
    assert.equal(await stored(open), null);
    assert.ok(!calls.some((p) => p.startsWith("/v1/me")), `asked for an account: ${calls}`);
    await open.screenshot({ path: join(OUT, "auth-off-desktop.png"), fullPage: true });
  });

  await check("no script errors and no request left the server's origin", async () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(foreignRequests, []);
  });
} catch (e) {
  failed = true;
  if (!results.length || !(e instanceof assert.AssertionError)) console.error(e);
} finally {
  for (const c of contexts) await c.close().catch(() => {});
  for (const p of profiles) rmSync(p, { recursive: true, force: true });
}

console.log(`\n${results.length} passed${failed ? ", 1 failed" : ""}; screenshots in ${OUT}`);
process.exit(failed ? 1 : 0);
