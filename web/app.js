// Digitallz Keywords dashboard: vanilla JS over the public JSON API, charts with uPlot (served by
// `kwi serve` itself, see build.rs). Routes live in the location hash:
//   #/                    predicted trends (rising / falling)
//   #/{platform}/{kw}     one keyword: history + forecast bands, scores, the same keyword elsewhere
// Every /v1 data route needs `Authorization: Bearer <token>`: a JWT from the sign-in view (email and
// password, or SSO) or an API key. Credentials live in sessionStorage (this tab only); they also
// arrive in the fragment (#key=... from `kwi serve`'s first-start link, #access_token=... from the
// SSO callback), which is taken out of the address bar at once, as is #login_error=... (why SSO
// failed). A server started with `--auth off` needs none (GET /v1/auth/providers says
// `required: false`): the dashboard then opens without an account.
"use strict";

(() => {
  const $ = (sel) => document.querySelector(sel);
  const LEVELS = [80, 95];
  const HORIZON = 13;
  const PLATFORM_COLORS = {
    google: "#2563eb", amazon: "#d97706", etsy: "#db2777", ebay: "#16a34a", benchmark: "#7c3aed",
  };

  // ---------- API ----------

  /** An API failure with the message a person should read. */
  class ApiFailure extends Error {
    constructor(status, message, code) {
      super(message);
      this.status = status;
      this.code = code || null;
      this.signedOut = false;
    }
  }

  /** One request; a network failure reads as one. */
  async function send(path, { method = "GET", body, token } = {}) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = `Bearer ${token}`;
    try {
      return await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (_) {
      throw new ApiFailure(0, "Cannot reach the server. Check that `kwi serve` is running, then reload.");
    }
  }

  /** An answer's JSON (null for 204), else an ApiFailure with the server's own message. */
  async function read(res) {
    if (res.status === 204) return null;
    let body = null;
    try {
      body = await res.json();
    } catch (_) {
      body = null;
    }
    if (!res.ok) {
      // Errors are {error: {code, message}}; rate limiting (429) is problem+json with `detail`.
      const err = body && body.error;
      const msg = (err && err.message) || (body && body.detail);
      const code = err ? err.code : res.status === 429 ? "rate_limited" : null;
      if (res.status >= 500) {
        throw new ApiFailure(res.status,
          `The server failed (${res.status}${msg ? ": " + msg : ""}). Try again in a moment.`, code);
      }
      let text = msg || `Request failed (${res.status}).`;
      const wait = Number(res.headers.get("Retry-After"));
      if (res.status === 429 && wait > 0) text += ` (try again in ${wait} s)`;
      throw new ApiFailure(res.status, text, code);
    }
    if (body === null) throw new ApiFailure(res.status, "The server sent an unreadable answer.");
    return body;
  }

  // ---------- credentials ----------

  const CREDENTIALS = "kwi.credentials";
  // The route to come back to after the SSO round trip (its callback returns to `/`).
  const AFTER_SIGN_IN = "kwi.after_sign_in";

  const session = {
    get(k) {
      try {
        return sessionStorage.getItem(k);
      } catch (_) {
        return null; // storage switched off: credentials last as long as the page
      }
    },
    set(k, v) {
      try {
        if (v === null) sessionStorage.removeItem(k);
        else sessionStorage.setItem(k, v);
      } catch (_) {
        /* see get */
      }
    },
  };

  /** {token, refresh?, expires?}: `token` is an access token or an API key; only tokens have `refresh`. */
  let creds = (() => {
    try {
      const c = JSON.parse(session.get(CREDENTIALS));
      return c && typeof c.token === "string" && c.token ? c : null;
    } catch (_) {
      return null;
    }
  })();

  function setCreds(c) {
    creds = c;
    session.set(CREDENTIALS, c ? JSON.stringify(c) : null);
  }

  /** Stores what /v1/auth/login, /v1/auth/refresh or the SSO callback handed out. */
  function storeTokens(t) {
    const ttl = Number(t.expires_in);
    setCreds({
      token: t.access_token,
      refresh: t.refresh_token || null,
      expires: ttl > 0 ? Date.now() + ttl * 1000 : null,
    });
  }

  let renewing = null;

  /**
   * Trades the refresh token for new tokens: once for however many requests were refused together
   * (a refresh token works once; using it twice revokes the whole family). Resolves {ok, error}.
   */
  function renew(stale) {
    if (!creds || !creds.refresh) return Promise.resolve({ ok: false, error: null });
    if (creds.token !== stale) return Promise.resolve({ ok: true }); // renewed meanwhile
    if (!renewing) {
      const refresh = creds.refresh;
      renewing = api("/v1/auth/refresh", { method: "POST", body: { refresh_token: refresh }, auth: false })
        .then((t) => {
          if (!creds || creds.refresh !== refresh) return { ok: false, error: null }; // signed out meanwhile
          storeTokens(t);
          return { ok: true };
        }, (e) => ({ ok: false, error: e }))
        .finally(() => {
          renewing = null;
        });
    }
    return renewing;
  }

  /** Ends the session after the server refused it, and says why on the sign-in view. */
  function refused(message) {
    const text = signedIn ? `Your session has ended: ${message.replace(/\.$/, "")}. Please sign in again.` : message;
    // Requests refused together end the session once; the first one's message stays on screen.
    if (creds) {
      setCreds(null);
      showSignIn(text);
    }
    const f = new ApiFailure(401, text, "unauthorized");
    f.signedOut = true;
    return f;
  }

  /**
   * Every API call. With `auth` (the default) it sends the stored credential; a 401 with a refresh
   * token renews it once and retries, and a 401 after that returns to the sign-in view. With
   * authentication off on the server (and no credential stored) it sends none.
   */
  async function api(path, { method = "GET", body, auth = true } = {}) {
    if (!auth) return read(await send(path, { method, body }));
    // Signed out (or out meanwhile): nothing to send; the sign-in view is already up.
    const gone = () => {
      const f = new ApiFailure(401, "Not signed in.", "unauthorized");
      f.signedOut = true;
      return f;
    };
    if (!creds && authOff) {
      const res = await send(path, { method, body });
      if (res.status !== 401) return read(res);
      // Restarted with authentication on: sign in after all (once, however many were refused).
      if (authOff) {
        providers = null;
        showSignIn("This server now requires signing in.");
      }
      throw gone();
    }
    /** A failed renewal: the server unreachable, busy or failing is no reason to end the session. */
    const transient = (e) => e && (e.status === 0 || e.status === 429 || e.status >= 500);
    const renewFailed = (r, res) => (transient(r.error) ? r.error : creds ? refusedBy(r.error, res) : gone());
    if (!creds) throw gone();
    // An access token known to be (nearly) expired is renewed first rather than sent to be refused.
    if (creds.refresh && creds.expires && Date.now() > creds.expires - 15000) {
      const r = await renew(creds.token);
      if (!r.ok) throw await renewFailed(r, null);
      if (!creds) throw gone();
    }
    const used = creds.token;
    let res = await send(path, { method, body, token: used });
    if (res.status !== 401) return read(res);
    if (!creds) throw gone();
    const r = await renew(used);
    if (!r.ok) throw await renewFailed(r, res);
    if (!creds) throw gone();
    res = await send(path, { method, body, token: creds.token });
    if (res.status !== 401) return read(res);
    throw await refusedBy(null, res);
  }

  /** `refused` with the refresh's failure, else the 401's own message. */
  async function refusedBy(error, res) {
    let message = error && error.message;
    if (!message && res) {
      try {
        await read(res);
      } catch (e) {
        message = e.message;
      }
    }
    return refused(message || "The server refused the credentials.");
  }

  const enc = encodeURIComponent;
  const keywordHref = (platform, keyword) => `#/${enc(platform)}/${enc(keyword)}`;

  // ---------- formatting ----------

  const nf = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  const fmt = (v) => (v === null || v === undefined || Number.isNaN(v) ? "–" : nf.format(v));
  const fmtPct = (v) => (typeof v === "number" ? `${v > 0 ? "+" : ""}${nf.format(v)} %` : "–");
  const toTs = (iso) => Date.parse(iso + "T00:00:00Z") / 1000;

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("data-")) e.setAttribute(k, String(v));
      else if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // ---------- status line ----------

  function setStatus(kind, text, ...extra) {
    const s = $("#status");
    if (!kind) {
      s.hidden = true;
      s.textContent = "";
      s.className = "";
      return;
    }
    s.hidden = false;
    s.className = kind;
    s.setAttribute("role", kind === "error" ? "alert" : "status");
    s.replaceChildren(text, ...extra);
  }

  // ---------- search with suggestions ----------

  const q = $("#q");
  const list = $("#suggestions");
  const platformSel = $("#platform");
  let hits = [];
  let active = -1;
  let searchSeq = 0;
  let debounce = null;

  function closeSuggestions() {
    list.hidden = true;
    list.replaceChildren();
    q.setAttribute("aria-expanded", "false");
    active = -1;
  }

  function renderSuggestions(query) {
    list.replaceChildren();
    if (hits.length === 0) {
      list.append(el("li", { class: "empty", text: `No keyword matches “${query}”.` }));
    }
    hits.forEach((h, i) => {
      const li = el("li", {
        role: "option", id: `sugg-${i}`, "data-platform": h.platform, "data-keyword": h.keyword,
        "aria-selected": i === active ? "true" : "false",
      },
      el("span", { class: "kw", text: h.keyword }),
      el("span", { class: `pill p-${h.platform}`, text: h.platform }),
      el("span", { class: "vol", text: h.search_volume == null ? "" : fmt(h.search_volume) }));
      // mousedown, not click: it fires before the input's blur closes the list.
      li.addEventListener("mousedown", (ev) => {
        ev.preventDefault();
        pick(h);
      });
      list.append(li);
    });
    list.hidden = false;
    q.setAttribute("aria-expanded", "true");
  }

  async function suggest() {
    const query = q.value.trim();
    if (!query) {
      closeSuggestions();
      return;
    }
    const seq = ++searchSeq;
    const p = platformSel.value;
    try {
      const body = await api(`/v1/keywords/search?q=${enc(query)}&limit=8${p ? "&platform=" + enc(p) : ""}`);
      if (seq !== searchSeq) return; // an older answer arriving late
      hits = body.results || [];
      active = -1;
      renderSuggestions(query);
      scheduleAccountRefresh();
    } catch (e) {
      if (seq !== searchSeq) return;
      hits = [];
      list.replaceChildren(el("li", { class: "empty", text: e.message }));
      list.hidden = false;
    }
  }

  function pick(hit) {
    closeSuggestions();
    q.value = hit.keyword;
    location.hash = keywordHref(hit.platform, hit.keyword);
  }

  q.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(suggest, 150);
  });
  q.addEventListener("keydown", (ev) => {
    if (list.hidden || hits.length === 0) return;
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      const n = hits.length;
      active = ev.key === "ArrowDown" ? (active + 1) % n : (active - 1 + n) % n;
      [...list.children].forEach((li, i) => li.setAttribute("aria-selected", i === active ? "true" : "false"));
      q.setAttribute("aria-activedescendant", `sugg-${active}`);
    } else if (ev.key === "Escape") {
      closeSuggestions();
    }
  });
  q.addEventListener("blur", () => setTimeout(closeSuggestions, 100));
  platformSel.addEventListener("change", () => {
    if (q.value.trim()) suggest();
    if (currentRoute().view === "home") loadTrends();
  });
  $("#search-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const query = q.value.trim();
    if (!query) return;
    if (active >= 0 && hits[active]) return pick(hits[active]);
    // Exact match among the suggestions first, then the chosen platform, else the first hit.
    clearTimeout(debounce);
    await suggest();
    if (!signedIn) return;
    const exact = hits.find((h) => h.keyword === query.toLowerCase());
    if (exact) return pick(exact);
    if (platformSel.value) {
      closeSuggestions();
      location.hash = keywordHref(platformSel.value, query);
      return;
    }
    if (hits[0]) return pick(hits[0]);
    closeSuggestions();
    setStatus("error", `No keyword matches “${query}” on any platform.`);
  });

  // ---------- trends (home) ----------

  let direction = "rising";
  document.querySelectorAll("[data-direction]").forEach((b) =>
    b.addEventListener("click", () => {
      direction = b.dataset.direction;
      document.querySelectorAll("[data-direction]").forEach((o) =>
        o.setAttribute("aria-pressed", o === b ? "true" : "false"));
      loadTrends();
    }));

  let trendsSeq = 0;
  async function loadTrends() {
    const box = $("#trends");
    const seq = ++trendsSeq;
    box.replaceChildren(el("p", { class: "loading", text: "Loading trends…" }));
    const p = platformSel.value;
    let items;
    try {
      const body = await api(`/v1/trends?direction=${direction}&limit=20${p ? "&platform=" + enc(p) : ""}`);
      items = body.items || [];
    } catch (e) {
      if (seq !== trendsSeq) return;
      // 404: the endpoint or the insights do not exist yet; that is a state, not a failure.
      const msg = e.status === 404
        ? "No trend insights computed yet."
        : `Could not load trends: ${e.message}`;
      box.replaceChildren(el("p", { class: e.status === 404 ? "empty" : "error", id: "trends-empty", text: msg }));
      box.dataset.state = e.status === 404 ? "empty" : "error";
      return;
    }
    if (seq !== trendsSeq) return;
    if (items.length === 0) {
      box.replaceChildren(el("p", { class: "empty", id: "trends-empty", text: "No trend insights computed yet." }));
      box.dataset.state = "empty";
      return;
    }
    const rows = items.map((it) => el("tr", { "data-platform": it.platform, "data-keyword": it.keyword },
      el("td", {}, el("a", { href: keywordHref(it.platform, it.keyword), text: it.keyword })),
      el("td", {}, el("span", { class: `pill p-${it.platform}`, text: it.platform })),
      el("td", { class: `num ${it.growth_pct >= 0 ? "up" : "down"}`, text: fmtPct(it.growth_pct) }),
      el("td", { class: "num", text: fmt(it.current) }),
      el("td", { class: "num", text: fmt(it.forecast_end) }),
      el("td", { class: "num hide-sm", text: it.horizon == null ? "–" : `${it.horizon} wk` })));
    box.replaceChildren(el("div", { class: "scroll" }, el("table", { id: "trends-table" },
      el("thead", {}, el("tr", {},
        el("th", { text: "Keyword" }), el("th", { text: "Platform" }), el("th", { class: "num", text: "Growth" }),
        el("th", { class: "num", text: "Now" }), el("th", { class: "num", text: "Forecast" }),
        el("th", { class: "num hide-sm", text: "Horizon" }))),
      el("tbody", {}, ...rows))));
    box.dataset.state = "rows";
  }

  // ---------- charts ----------

  const charts = {};

  function chartWidth(box) {
    return Math.max(260, box.clientWidth || box.parentElement.clientWidth || 600);
  }
  const chartHeight = () => (window.innerWidth < 600 ? 240 : 340);

  function mountChart(name, box, opts, data) {
    if (charts[name]) {
      charts[name].destroy();
      delete charts[name];
    }
    box.replaceChildren();
    if (typeof window.uPlot !== "function") {
      box.append(el("p", { class: "error", text: window.KWI_UPLOT_MISSING || "The chart library did not load." }));
      return;
    }
    charts[name] = new window.uPlot({ width: chartWidth(box), height: chartHeight(), ...opts }, data, box);
  }

  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const [name, u] of Object.entries(charts)) {
        const box = name === "forecast" ? $("#forecast-chart") : $("#markets-chart");
        u.setSize({ width: chartWidth(box), height: chartHeight() });
      }
    }, 100);
  });

  const bandOf = (step, level) => step.intervals.find((b) => b.level === level) || {};

  function drawForecast(kw, fc) {
    const all = $("#all-history").checked;
    const hist = kw.history.filter((h) => h.search_volume !== null);
    const shown = all ? hist : hist.slice(-156);
    const steps = fc.forecast;
    const n = shown.length + steps.length;
    const x = new Array(n);
    const cols = [[], [], [], [], [], []].map(() => new Array(n).fill(null));
    const [vol, mean, lo80, hi80, lo95, hi95] = cols;
    shown.forEach((h, i) => {
      x[i] = toTs(h.period_start);
      vol[i] = h.search_volume;
    });
    // The forecast lines start at the last observation so the two read as one curve.
    if (shown.length) {
      const i = shown.length - 1;
      mean[i] = lo80[i] = hi80[i] = lo95[i] = hi95[i] = vol[i];
    }
    steps.forEach((s, j) => {
      const i = shown.length + j;
      x[i] = toTs(s.period_start);
      mean[i] = s.mean;
      const b80 = bandOf(s, 80);
      const b95 = bandOf(s, 95);
      lo80[i] = b80.lo ?? null;
      hi80[i] = b80.hi ?? null;
      lo95[i] = b95.lo ?? null;
      hi95[i] = b95.hi ?? null;
    });
    const bandStroke = "rgba(0,0,0,0)";
    const opts = {
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: true } },
      axes: [{}, { size: 56, values: (u, ticks) => ticks.map(fmt) }],
      series: [
        { label: "Week" },
        { label: "History", stroke: "#334155", width: 1.5, value: (u, v) => fmt(v) },
        { label: "Forecast", stroke: "#2563eb", width: 2, dash: [6, 4], value: (u, v) => fmt(v) },
        { label: "80 % low", stroke: bandStroke, value: (u, v) => fmt(v), points: { show: false } },
        { label: "80 % high", stroke: bandStroke, value: (u, v) => fmt(v), points: { show: false } },
        { label: "95 % low", stroke: bandStroke, value: (u, v) => fmt(v), points: { show: false } },
        { label: "95 % high", stroke: bandStroke, value: (u, v) => fmt(v), points: { show: false } },
      ],
      // Series indices: 3 lo80, 4 hi80, 5 lo95, 6 hi95 (bands fill between [upper, lower]).
      bands: [
        { series: [6, 5], fill: "rgba(37,99,235,0.12)" },
        { series: [4, 3], fill: "rgba(37,99,235,0.25)" },
      ],
    };
    const box = $("#forecast-chart");
    mountChart("forecast", box, opts, [x, vol, mean, lo80, hi80, lo95, hi95]);
    // The first forecast step, exposed for tests and for anyone inspecting the page.
    const first = steps[0];
    if (first) {
      Object.assign(box.dataset, {
        points: String(n), steps: String(steps.length), firstDate: first.period_start,
        firstMean: String(first.mean),
        firstLo80: String(bandOf(first, 80).lo), firstHi80: String(bandOf(first, 80).hi),
        firstLo95: String(bandOf(first, 95).lo), firstHi95: String(bandOf(first, 95).hi),
      });
    }
  }

  function fillForecastTable(fc) {
    const rows = fc.forecast.map((s) => {
      const b80 = bandOf(s, 80);
      const b95 = bandOf(s, 95);
      const cell = (field, v) => el("td", { class: "num", "data-field": field, "data-value": v, text: fmt(v) });
      return el("tr", { "data-step": s.step },
        el("td", { "data-field": "period_start", text: s.period_start }),
        cell("mean", s.mean), cell("lo80", b80.lo), cell("hi80", b80.hi), cell("lo95", b95.lo), cell("hi95", b95.hi));
    });
    $("#forecast-table tbody").replaceChildren(...rows);
  }

  function drawMarkets(body) {
    const box = $("#markets-chart");
    const indexed = $("#markets-index").checked;
    const markets = body.markets || [];
    // trend_data: [[period_start, search_volume], ...] per platform, on a shared date axis.
    const series = markets.map((m) => {
      const pts = new Map();
      for (const p of m.snapshot.trend_data || []) {
        const [d, v] = Array.isArray(p) ? p : [p.period_start, p.search_volume];
        if (d) pts.set(toTs(String(d).slice(0, 10)), v === undefined ? null : v);
      }
      return { platform: m.platform, pts };
    });
    const xs = [...new Set(series.flatMap((s) => [...s.pts.keys()]))].sort((a, b) => a - b);
    if (!xs.length) {
      if (charts.markets) {
        charts.markets.destroy();
        delete charts.markets;
      }
      delete box.dataset.platforms;
      box.replaceChildren(el("p", { class: "muted", id: "no-markets", text: "No search volume on any platform yet." }));
      $("#markets-note").textContent = markets.length
        ? `Listed on ${markets.map((m) => m.platform).join(", ")}, without search-volume data.`
        : "";
      return;
    }
    const data = [xs];
    for (const s of series) {
      let col = xs.map((t) => (s.pts.has(t) ? s.pts.get(t) : null));
      if (indexed) {
        const peak = Math.max(0, ...col.filter((v) => typeof v === "number"));
        col = col.map((v) => (typeof v === "number" && peak > 0 ? (100 * v) / peak : v));
      }
      data.push(col);
    }
    box.dataset.platforms = series.map((s) => s.platform).join(",");
    $("#markets-note").replaceChildren(
      markets.length === 1
        ? `Only ${markets[0].platform} has data for this keyword so far.`
        : `${markets.length} platforms have this keyword: `,
      ...(markets.length > 1
        ? [...markets.flatMap((m, i) => [i ? ", " : "", el("a", { href: keywordHref(m.platform, body.keyword), text: m.platform })]), "."]
        : []),
      indexed ? " Each line is scaled to its own peak, since platforms count volume differently." : "");
    mountChart("markets", box, {
      legend: { live: true },
      scales: { x: { time: true } },
      axes: [{}, { size: 56, values: (u, ticks) => ticks.map(fmt) }],
      series: [{ label: "Week" }, ...series.map((s) => ({
        label: s.platform, stroke: PLATFORM_COLORS[s.platform] || "#64748b", width: 2, spanGaps: true,
        value: (u, v) => fmt(v),
      }))],
    }, data);
  }

  // ---------- cards ----------

  const notScored = (title, why) => [el("h3", { text: title }), el("p", { class: "muted", text: why || "not scored yet" })];

  function volumeCard(kw, fc) {
    const s = kw.snapshot;
    return [
      el("h3", { text: "Search volume" }),
      el("p", { class: "big", text: fmt(s.search_volume) }),
      el("p", { class: "muted" }, `CPC ${s.cpc == null ? "–" : fmt(s.cpc)} · data to ${fc ? fc.data_as_of : "–"}`),
    ];
  }

  function competitionCard(c) {
    if (!c) return notScored("Competition");
    const contribs = Array.isArray(c.contributions) ? c.contributions : [];
    const maxAbs = Math.max(1e-9, ...contribs.map((x) => Math.abs(x.points)));
    return [
      el("h3", { text: "Competition" }),
      el("p", { class: "big", "data-score": c.score }, fmt(c.score), el("small", { text: " / 100" }),
        c.band ? el("span", { class: `band b-${String(c.band).replace(/\s+/g, "-")}`, text: c.band }) : null),
      contribs.length ? el("ul", { class: "factors" }, ...contribs.map((f) =>
        el("li", { "data-factor": f.factor },
          el("span", { class: "f-label", text: f.label || f.factor }),
          el("span", { class: "f-bar" }, el("span", {
            class: f.points >= 0 ? "pos" : "neg", style: `width:${(100 * Math.abs(f.points)) / maxAbs}%`,
          })),
          el("span", { class: "f-pts", text: `${f.points > 0 ? "+" : ""}${fmt(f.points)}` })))) : null,
      el("p", { class: "muted" }, c.model_version ? `model ${c.model_version}` : "",
        c.synthetic ? el("span", { class: "tag", title: "scored from synthetic competition data", text: "synthetic data" }) : null),
    ];
  }

  function opportunityCard(o, why) {
    if (!o) return notScored("Opportunity", why);
    return [
      el("h3", { text: "Opportunity" }),
      el("p", { class: "big", "data-score": o.score }, fmt(o.score), el("small", { text: " / 100" })),
      o.explanation ? el("p", { class: "muted", text: o.explanation }) : null,
    ];
  }

  function insightsCard(ins, why) {
    if (!ins) return notScored("Outlook", why);
    const arrow = { rising: "▲", falling: "▼", flat: "▬" }[ins.direction] || "";
    const out = [
      el("h3", { text: "Outlook" }),
      el("p", { class: `big dir-${ins.direction}` }, `${arrow} ${ins.direction || "–"} `, el("small", { text: fmtPct(ins.growth_pct) })),
    ];
    if (ins.peak) {
      out.push(el("p", { class: "peak" }, `Seasonal peak in ${ins.peak.in_weeks} week${ins.peak.in_weeks === 1 ? "" : "s"} `,
        `(${ins.peak.date}) at ${fmt(ins.peak.value)}`));
    } else {
      out.push(el("p", { class: "muted", text: "No seasonal peak ahead in the forecast." }));
    }
    if (ins.anomaly) {
      const a = ins.anomaly;
      out.push(el("p", { class: "anomaly" }, `Unusual week ${a.date}: ${fmt(a.actual)} outside the expected `,
        `${fmt(a.lower)}–${fmt(a.upper)}`));
    }
    return out;
  }

  /** Finds a metric whatever nesting the model's manifest uses ({mase}, {validation: {mase}}, ...). */
  function metric(acc, re) {
    if (!acc || typeof acc !== "object") return [];
    const found = [];
    const walk = (o, prefix, depth) => {
      for (const [k, v] of Object.entries(o)) {
        const name = prefix ? `${prefix} ${k}` : k;
        if (typeof v === "number" && re.test(name)) found.push([name, v]);
        else if (v && typeof v === "object" && !Array.isArray(v) && depth < 2) walk(v, name, depth + 1);
      }
    };
    walk(acc, "", 0);
    return found;
  }

  function modelCard(fc) {
    const acc = fc.model_accuracy || {};
    const mase = metric(acc, /mase/i)[0];
    const smape = metric(acc, /smape/i)[0];
    const coverage = metric(acc, /coverage/i);
    const dl = el("dl", { class: "kv" });
    const row = (k, v, id) => dl.append(el("dt", { text: k }), el("dd", { id, text: v }));
    row("Version", fc.model_version, "model-version");
    if (mase) row("MASE", mase[1].toFixed(3), "model-mase");
    if (smape) row("sMAPE", `${smape[1].toFixed(2)} %`);
    for (const [name, v] of coverage) {
      const label = name.replace(/^(validation|backtest)\s+/, "").replace(/_/g, " ");
      row(label, v <= 1 ? `${(100 * v).toFixed(1)} %` : `${v.toFixed(1)} %`);
    }
    const out = [el("h3", { text: "Model" }), dl];
    if (!mase && !coverage.length) {
      out.push(el("p", { class: "muted", text: acc.note || "No backtest accuracy recorded for this model." }));
    }
    if (fc.input_gaps) out.push(el("p", { class: "muted", text: `${fc.input_gaps} missing weeks interpolated` }));
    return out;
  }

  // ---------- keyword view ----------

  let viewSeq = 0;
  let lastKw = null;
  let lastFc = null;
  let lastMarkets = null;

  async function showKeyword(platform, keyword) {
    const seq = ++viewSeq;
    $("#home-view").hidden = true;
    $("#keyword-view").hidden = true;
    setStatus("loading", `Loading “${keyword}” on ${platform}…`);
    document.title = `${keyword} · ${platform} · Digitallz Keywords`;
    const base = `/v1/keywords/${enc(platform)}/${enc(keyword)}`;
    let kw;
    let fc;
    // A keyword known only from listing data has no forecast (404 saying so): the view still shows
    // its competition, with the reason where the forecast would be.
    let noForecast = null;
    try {
      [kw, fc] = await Promise.all([
        api(base),
        api(`${base}/forecast?horizon=${HORIZON}&levels=${LEVELS.join(",")}`).catch((e) => {
          if (e.status !== 404) throw e;
          noForecast = e.message;
          return null;
        }),
      ]);
    } catch (e) {
      if (seq !== viewSeq) return;
      scheduleAccountRefresh();
      const prefix = e.status === 404 ? "Unknown keyword: " : e.status === 400 ? "Not a valid request: " : "";
      setStatus("error", prefix + e.message, " ", el("a", { href: "#/", text: "Back to trends" }));
      return;
    }
    if (seq !== viewSeq) return;
    scheduleAccountRefresh();
    lastKw = kw;
    lastFc = fc;
    setStatus(null);
    $("#keyword-view").hidden = false;
    $("#kw-title").textContent = kw.keyword;
    const weeks = kw.history.filter((h) => h.search_volume !== null).length;
    $("#kw-sub").replaceChildren(el("span", { class: `pill p-${kw.platform}`, text: kw.platform }),
      fc ? ` ${weeks} weeks of history · forecast ${fc.horizon} weeks ahead`
        : weeks === 0 ? " listing data only · no search-volume history to forecast"
          : ` ${weeks} weeks of history · no forecast yet`);
    $("#card-volume").replaceChildren(...volumeCard(kw, fc));
    $("#card-competition").replaceChildren(...competitionCard(kw.competition));
    const needsVolume = weeks === 0 ? "needs search-volume history" : undefined;
    $("#card-opportunity").replaceChildren(...opportunityCard(kw.opportunity, needsVolume));
    $("#card-insights").replaceChildren(...insightsCard(kw.insights, needsVolume));
    if (fc) {
      $("#card-model").replaceChildren(...modelCard(fc));
      drawForecast(kw, fc);
      fillForecastTable(fc);
    } else {
      $("#card-model").replaceChildren(el("h3", { text: "Model" }), el("p", { class: "muted", text: "No forecast for this keyword." }));
      if (charts.forecast) {
        charts.forecast.destroy();
        delete charts.forecast;
      }
      const box = $("#forecast-chart");
      for (const k of Object.keys(box.dataset)) delete box.dataset[k];
      box.replaceChildren(el("p", { class: "muted", id: "no-forecast", text: noForecast }));
      $("#forecast-table tbody").replaceChildren();
    }

    const mbox = $("#markets-chart");
    mbox.replaceChildren(el("p", { class: "loading", text: "Loading other platforms…" }));
    $("#markets-note").textContent = "";
    delete mbox.dataset.platforms;
    try {
      const m = await api(`/v1/keywords/${enc(kw.keyword)}/markets`);
      if (seq !== viewSeq) return;
      lastMarkets = m;
      drawMarkets(m);
    } catch (e) {
      if (seq !== viewSeq) return;
      mbox.replaceChildren(el("p", { class: "error", text: `Could not load other platforms: ${e.message}` }));
    }
  }

  $("#all-history").addEventListener("change", () => lastKw && lastFc && drawForecast(lastKw, lastFc));
  $("#markets-index").addEventListener("change", () => lastMarkets && drawMarkets(lastMarkets));

  // ---------- sign-in ----------

  let signedIn = false;
  /** In the app without an account: the server runs with `--auth off` and no credential is stored. */
  let authOff = false;
  let providers = null;

  function setSignInError(message) {
    const box = $("#signin-error");
    box.hidden = !message;
    box.textContent = message || "";
  }

  /** GET /v1/auth/providers, asked once; null when it fails. */
  async function getProviders() {
    if (!providers) {
      try {
        providers = await api("/v1/auth/providers", { auth: false });
      } catch (_) {
        return null;
      }
    }
    return providers;
  }

  /** Shows SSO only where GET /v1/auth/providers says a provider is configured. */
  async function loadProviders() {
    if (!(await getProviders())) {
      // Password and API key sign-in still work; SSO stays hidden.
      $("#signin-view").dataset.sso = "off";
      return;
    }
    const oidc = providers.oidc || {};
    const sso = Boolean(oidc.enabled && oidc.login_url);
    $("#sso").hidden = !sso;
    $("#login-form").hidden = providers.password === false;
    $("#signin-view").dataset.sso = sso ? "on" : "off";
  }

  /** The sign-in view, with `message` (why the last attempt or the session failed) when there is one. */
  function showSignIn(message) {
    signedIn = false;
    authOff = false;
    // Answers still on their way belong to the session that ended: drop them.
    searchSeq++;
    trendsSeq++;
    viewSeq++;
    accountSeq++;
    clearTimeout(debounce);
    clearTimeout(accountTimer);
    closeSuggestions();
    document.body.dataset.auth = "out";
    document.title = "Sign in · Digitallz Keywords";
    setStatus(null);
    for (const id of ["#home-view", "#keyword-view", "#search-form", "#account", "#account-button", "#auth-off"]) $(id).hidden = true;
    clearAccount();
    $("#signin-view").hidden = false;
    $("#login-password").value = "";
    $("#api-key").value = "";
    setSignInError(message);
    loadProviders();
    (($("#login-email").value && message) ? $("#login-password") : $("#login-email")).focus();
  }

  /**
   * Signed in as `me`: the account panel, then whatever the location hash asks for. `me` null:
   * authentication is off, so there is no account to show (/v1/me would answer 404), only a note.
   */
  function enterApp(me, { focus = false } = {}) {
    signedIn = true;
    authOff = !me;
    document.body.dataset.auth = me ? "in" : "off";
    setSignInError(null);
    $("#signin-view").hidden = true;
    $("#search-form").hidden = false;
    for (const id of ["#account", "#account-button"]) $(id).hidden = !me;
    $("#auth-off").hidden = Boolean(me);
    if (me) {
      renderAccount(me);
      refreshAccount();
    }
    route();
    if (focus) q.focus({ preventScroll: true });
  }

  /** A credential just stored: check it with GET /v1/me (the sign-in view says why when refused). */
  async function verify(options) {
    let me;
    try {
      me = await api("/v1/me");
    } catch (e) {
      if (e.signedOut) return false;
      setCreds(null);
      showSignIn(`Could not load your account: ${e.message}`);
      return false;
    }
    enterApp(me, options);
    return true;
  }

  $("#login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const email = $("#login-email").value.trim();
    const password = $("#login-password").value;
    if (!email || !password) {
      setSignInError("Enter your email and password.");
      return;
    }
    const button = $("#login-submit");
    button.disabled = true;
    setSignInError(null);
    try {
      const t = await api("/v1/auth/login", { method: "POST", body: { email, password }, auth: false });
      storeTokens(t);
      $("#login-password").value = "";
      if (t.user) enterApp(t.user, { focus: true });
      else await verify({ focus: true });
    } catch (e) {
      setSignInError(e.message);
      $("#login-password").select();
      $("#login-password").focus();
    } finally {
      button.disabled = false;
    }
  });

  $("#key-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const key = $("#api-key").value.trim();
    if (!/^kwi_live_[0-9A-Za-z]+$/.test(key)) {
      setSignInError("That is not an API key: they look like kwi_live_ followed by letters and digits.");
      $("#api-key").focus();
      return;
    }
    const button = $("#key-submit");
    button.disabled = true;
    setSignInError(null);
    setCreds({ token: key });
    try {
      await verify({ focus: true });
    } finally {
      button.disabled = false;
    }
  });

  $("#sso-button").addEventListener("click", () => {
    const url = providers && providers.oidc && providers.oidc.login_url;
    if (!url) return;
    // The provider sends the browser back to `/`; the keyword open now is restored from here.
    session.set(AFTER_SIGN_IN, currentRoute().view === "keyword" ? location.hash : null);
    location.assign(`${url}${url.includes("?") ? "&" : "?"}return_to=/`);
  });

  /** Takes the fragment out of the address bar, back to the keyword open before the SSO round trip. */
  function clearFragment() {
    const back = session.get(AFTER_SIGN_IN);
    session.set(AFTER_SIGN_IN, null);
    history.replaceState(null, "", location.pathname + location.search + (back && back.startsWith("#/") ? back : ""));
  }

  /**
   * Credentials handed over in the fragment: `#key=kwi_live_...` (the link `kwi serve` prints on first
   * start) or `#access_token=...&refresh_token=...&expires_in=...` (where the SSO callback lands). They
   * are stored for this tab and taken out of the address bar at once, so they are not left on screen,
   * in the history or in a copied link.
   */
  function takeFragmentCredentials() {
    const frag = location.hash.replace(/^#/, "");
    if (!frag || frag.startsWith("/")) return false; // a route
    const p = new URLSearchParams(frag);
    const key = p.get("key");
    const access = p.get("access_token");
    if (!key && !access) return false;
    clearFragment();
    if (access) {
      storeTokens({ access_token: access, refresh_token: p.get("refresh_token"), expires_in: p.get("expires_in") });
    } else {
      setCreds({ token: key.trim() });
    }
    return true;
  }

  /**
   * Why single sign-on failed: the SSO callback sends the browser to `/#login_error=<percent-encoded
   * message>`. Taken out of the address bar at once (a reload must not show it again); returns the
   * sign-in view's message, or null. A malformed escape is shown as it came rather than thrown on.
   */
  function takeLoginError() {
    const frag = location.hash.replace(/^#/, "");
    if (frag.startsWith("/")) return null; // a route
    const part = frag.split("&").find((p) => p.startsWith("login_error="));
    if (part === undefined) return null;
    clearFragment();
    let why = part.slice("login_error=".length);
    try {
      why = decodeURIComponent(why);
    } catch (_) {
      /* keep the raw text */
    }
    why = why.trim();
    return why ? `Single sign-on failed: ${why}` : "Single sign-on failed.";
  }

  // ---------- account panel ----------

  let accountSeq = 0;
  let accountTimer = null;
  const monthFmt = new Intl.DateTimeFormat(undefined, { month: "long", year: "numeric", timeZone: "UTC" });
  const dayFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
  const clockFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  const shortDayFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });
  const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  const fromDay = (iso) => new Date(String(iso).slice(0, 10) + "T00:00:00Z");

  function clearAccount() {
    for (const id of ["#account-email", "#account-role", "#account-plan", "#account-rate", "#account-quota", "#account-button"]) {
      $(id).textContent = "";
    }
    const usage = $("#usage");
    usage.replaceChildren();
    delete usage.dataset.lookups;
    delete usage.dataset.limit;
    $("#history").replaceChildren();
  }

  function renderAccount(me) {
    const plan = me.plan || {};
    $("#account-email").textContent = me.email;
    $("#account-role").textContent = me.role;
    $("#account-plan").textContent = plan.name || "–";
    $("#account-rate").textContent = plan.requests_per_minute == null ? "–" : `${fmt(plan.requests_per_minute)} requests/min`;
    $("#account-quota").textContent = plan.monthly_lookups == null ? "unlimited" : `${fmt(plan.monthly_lookups)} a month`;
    const button = $("#account-button");
    button.textContent = me.email;
    button.title = `Account: ${me.email}`;
    $("#usage").replaceChildren(el("p", { class: "loading", text: "Loading usage…" }));
  }

  function renderUsage(u) {
    const box = $("#usage");
    const limit = u.monthly_lookups;
    box.dataset.lookups = String(u.lookups);
    box.dataset.limit = limit == null ? "unlimited" : String(limit);
    const out = [el("p", { id: "usage-text" }, limit == null
      ? `${fmt(u.lookups)} lookups · unlimited`
      : `${fmt(u.lookups)} of ${fmt(limit)} lookups`)];
    if (limit != null) {
      const pct = limit > 0 ? Math.min(100, (100 * u.lookups) / limit) : 100;
      out.push(el("div", {
        class: `meter${pct >= 90 ? " high" : ""}`, role: "progressbar", "aria-label": "Lookups used this month",
        "aria-valuemin": 0, "aria-valuemax": limit, "aria-valuenow": Math.min(u.lookups, limit),
        "aria-valuetext": `${fmt(u.lookups)} of ${fmt(limit)}`,
      }, el("span", { style: `width:${pct}%` })));
    }
    const period = u.period_start ? monthFmt.format(fromDay(u.period_start)) : u.period;
    out.push(el("p", { class: "muted" }, period || "",
      u.period_end ? ` · resets ${dayFmt.format(fromDay(u.period_end))}` : ""));
    box.replaceChildren(...out);
  }

  function when(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return "";
    return d.toDateString() === new Date().toDateString() ? clockFmt.format(d) : shortDayFmt.format(d);
  }

  /** Newest first; a keyword looked up several times (snapshot, forecast, markets) is listed once. */
  function renderHistory(items) {
    const seen = new Set();
    const rows = [];
    for (const it of items) {
      const id = `${it.platform || ""}/${it.keyword}`;
      if (!it.keyword || seen.has(id)) continue;
      seen.add(id);
      const d = new Date(it.created_at);
      rows.push(el("li", { "data-platform": it.platform || undefined, "data-keyword": it.keyword },
        el("a", { href: it.platform ? keywordHref(it.platform, it.keyword) : "#/", text: it.keyword }),
        it.platform ? el("span", { class: `pill p-${it.platform}`, text: it.platform }) : null,
        el("time", {
          datetime: it.created_at, title: Number.isNaN(d.getTime()) ? undefined : fullFmt.format(d), text: when(it.created_at),
        })));
    }
    $("#history").replaceChildren(...(rows.length ? rows : [el("li", { class: "empty", text: "No searches yet." })]));
  }

  /** Re-reads this month's usage and the recent searches. */
  async function refreshAccount() {
    clearTimeout(accountTimer);
    const seq = ++accountSeq;
    const [usage, hist] = await Promise.allSettled([api("/v1/me/usage"), api("/v1/me/history?limit=10")]);
    if (seq !== accountSeq || !signedIn) return;
    if (usage.status === "fulfilled") renderUsage(usage.value);
    else $("#usage").replaceChildren(el("p", { class: "error", text: `Could not load usage: ${usage.reason.message}` }));
    if (hist.status === "fulfilled") renderHistory(hist.value.items || []);
    else $("#history").replaceChildren(el("li", { class: "error", text: `Could not load recent searches: ${hist.reason.message}` }));
  }

  /** After a search or a keyword view; a burst of lookups (typing, one keyword's requests) refreshes once. */
  function scheduleAccountRefresh() {
    if (!signedIn || authOff) return; // no account with authentication off
    clearTimeout(accountTimer);
    accountTimer = setTimeout(refreshAccount, 600);
  }

  $("#history").addEventListener("click", (ev) => {
    const a = ev.target.closest("a");
    const li = a && a.closest("li[data-keyword]");
    if (!li || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const { platform, keyword } = li.dataset;
    ev.preventDefault();
    window.scrollTo(0, 0);
    if (platform) {
      pick({ platform, keyword });
    } else {
      // Recorded without a platform: search for it as if typed.
      q.value = keyword;
      $("#search-form").requestSubmit();
    }
  });

  $("#account-button").addEventListener("click", () => {
    const title = $("#account-title");
    title.scrollIntoView({ block: "start" });
    title.focus({ preventScroll: true });
  });

  $("#sign-out").addEventListener("click", async () => {
    const button = $("#sign-out");
    const old = creds;
    button.disabled = true;
    setCreds(null);
    session.set(AFTER_SIGN_IN, null);
    if (old && old.refresh) {
      try {
        await api("/v1/auth/logout", { method: "POST", body: { refresh_token: old.refresh }, auth: false });
      } catch (_) {
        // Signed out here all the same; the access token expires on its own.
      }
    }
    button.disabled = false;
    history.replaceState(null, "", location.pathname + location.search);
    showSignIn();
  });

  // ---------- routing ----------

  function currentRoute() {
    const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
    if (parts.length >= 2) {
      try {
        return { view: "keyword", platform: decodeURIComponent(parts[0]), keyword: decodeURIComponent(parts.slice(1).join("/")) };
      } catch (_) {
        return { view: "home" };
      }
    }
    return { view: "home" };
  }

  function route() {
    const r = currentRoute();
    if (r.view === "keyword") {
      showKeyword(r.platform, r.keyword);
      return;
    }
    viewSeq++;
    setStatus(null);
    document.title = "Digitallz Keywords";
    $("#keyword-view").hidden = true;
    $("#home-view").hidden = false;
    loadTrends();
  }

  /**
   * On load (and when a credential link is opened in this tab): sign in with what is stored; without
   * a credential, open the app where the server needs none (`--auth off`), else ask.
   */
  async function boot() {
    const ssoError = takeLoginError();
    if (ssoError) {
      showSignIn(ssoError);
      return;
    }
    takeFragmentCredentials();
    if (!creds) {
      const p = await getProviders();
      if (creds) return; // a credential link opened meanwhile signs in on its own
      // Only an explicit `false`: older servers do not send `required` and always need credentials.
      if (p && p.required === false) enterApp(null);
      else showSignIn();
      return;
    }
    $("#signin-view").hidden = true;
    setStatus("loading", "Signing in…");
    let me;
    try {
      me = await api("/v1/me");
    } catch (e) {
      if (e.signedOut) return; // the sign-in view says why
      const retry = el("button", { type: "button", class: "link-button", text: "Retry" });
      retry.addEventListener("click", boot);
      setStatus("error", `Could not load your account: ${e.message} `, retry);
      return;
    }
    setStatus(null);
    enterApp(me);
  }

  window.addEventListener("hashchange", () => {
    const ssoError = takeLoginError();
    if (ssoError) showSignIn(ssoError);
    else if (takeFragmentCredentials()) boot();
    else if (signedIn) route();
  });
  boot();
})();
