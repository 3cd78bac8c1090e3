// The botwarden dashboard: every bot, live. No framework and nothing from a CDN: the
// page talks to the control API with the token (kept in this browser only) and redraws
// whenever the event stream says something changed. Charts are plotly's, its script
// served by botwarden from the installed package.
"use strict";

const TOKEN_KEY = "botwarden-token";
const RECENT_TRADES = 8;
const COLORS = {  // the stop and the take-profit in colours no candle has
  up: "#1a7f37", down: "#cf222e", entry: "#0969da", stop: "#e16f24", target: "#8250df",
  grid: "#d0d7de",
};
const charts = new Map();  // chart divs by bot and symbol, kept across redraws
let token = tokenFromFragment() || localStorage.getItem(TOKEN_KEY) || "";
let redrawing = null;
let redrawAgain = false;
const MARKET_REDRAW = 1000;  // ms: a fast bot's passes redraw its charts at most this often
let streaming = null;

function tokenFromFragment() {
  // `botwarden serve` may print the address with #token=...: the fragment never
  // reaches a server or its logs; it is kept here and taken off the address bar.
  const match = /token=([^&]+)/.exec(location.hash);
  if (!match) return null;
  const given = decodeURIComponent(match[1]);
  localStorage.setItem(TOKEN_KEY, given);
  history.replaceState(null, "", location.pathname);
  return given;
}

class Unauthorized extends Error {
  // `sentWith`: the token the refused request carried (an answer to one sent with a
  // token since replaced must not ask for the new one).
  constructor(sentWith) {
    super("the token was refused");
    this.sentWith = sentWith;
  }
}

async function api(path, options = {}) {
  const sentWith = token;
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${sentWith}`, ...(options.headers || {}) },
  });
  if (response.status === 401) throw new Unauthorized(sentWith);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

// -- drawing ----------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function span(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  const s = Math.floor(seconds);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function money(value) {
  if (value === null || value === undefined) return "-";
  const n = Number(value);
  return el("span", { class: n > 0 ? "pnl-up" : n < 0 ? "pnl-down" : null }, n.toFixed(2));
}

function cents(value) {
  return value === null || value === undefined ? "-" : Number(value).toFixed(2);
}

function shown(value, places) {
  // A price or a quantity as its market writes it (places from its tick or lot step);
  // as the API gave it where the market sets none.
  if (value === null || value === undefined) return "-";
  return places === null || places === undefined ? String(value) : Number(value).toFixed(places);
}

function utc(iso) {
  // The API's times are UTC ("...+00:00"); plotly takes them without the offset.
  return iso.slice(0, 19).replace("T", " ");
}

function table(columns, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", {}, c)))),
    el("tbody", {}, rows));
}

function positionsTable(positions, market) {
  if (!positions.length) return el("p", { class: "muted" }, "no positions");
  const of = marketsOf(market);
  const columns = ["symbol", "side", "size", "entry", "price", "unrealized", "stop",
    "take-profit", "on the venue"];
  return table(columns, positions.map((p) => {
    const m = of[p.symbol] || {};
    const places = m.price_places;
    return el("tr", { "data-position": p.symbol },
      el("td", {}, p.symbol), el("td", {}, p.side), el("td", {}, shown(p.size, m.qty_places)),
      el("td", { "data-entry": p.entry_price }, shown(p.entry_price, places)),
      el("td", {}, shown(m.price, places)),
      el("td", { "data-unrealized": m.position?.unrealized_pnl ?? "" },
        money(m.position?.unrealized_pnl)),
      el("td", {}, shown(p.stop_price, places)),
      el("td", { "data-take-profit": p.take_profit || "" }, shown(p.take_profit, places)),
      el("td", { "data-stop-live": String(Boolean(p.stop_live)) },
        p.stop_live ? el("span", { class: "live-stop" }, "stop live")
          : el("span", { class: "no-stop" }, "NO STOP")));
  }));
}

function ordersTable(orders, market) {
  if (!orders.length) return el("p", { class: "muted" }, "no open orders");
  const of = marketsOf(market);
  // A stop moved in one request: the old one's end is the venue's word at the next pass.
  const replacedBy = Object.fromEntries(orders.filter((o) => o.replaces).map((o) => [o.replaces, o]));
  return table(["client order id", "purpose", "side", "qty", "type", "price", "status"], orders.map((o) => {
    const places = (of[o.symbol] || {}).price_places;
    const newer = replacedBy[o.client_order_id];
    const status = newer && !["rejected", "canceled"].includes(newer.status)
      ? `replaced by ${newer.client_order_id} (ends when the venue says so)` : o.status;
    return el("tr", { "data-order": o.client_order_id },
      el("td", {}, o.client_order_id), el("td", {}, o.purpose), el("td", {}, o.side),
      el("td", {}, o.qty), el("td", {}, o.type),
      el("td", {}, shown(o.stop_price || o.limit_price, places)), el("td", {}, status));
  }));
}

function marketsOf(market) {
  return Object.fromEntries((market?.symbols || []).map((m) => [m.symbol, m]));
}

function tradesTable(trades, market) {
  if (!trades.length) return el("p", { class: "muted" }, "no trades yet");
  const of = marketsOf(market);
  const closed = !market || market.speed === 1 ? "closed (UTC)" : "closed (UTC, exchange clock)";
  return table([closed, "symbol", "side", "qty", "entry", "exit", "fees", "PnL"],
    trades.slice(-RECENT_TRADES).reverse().map((t) => {
      const m = of[t.symbol] || {};
      return el("tr", {}, el("td", {}, utc(t.exit_time).slice(0, 16)), el("td", {}, t.symbol),
        el("td", {}, t.side), el("td", {}, shown(t.qty, m.qty_places)),
        el("td", {}, shown(t.entry_price, m.price_places)),
        el("td", {}, shown(t.exit_price, m.price_places)), el("td", {}, money(t.fees)),
        el("td", {}, money(t.pnl)));
    }));
}

// -- charts (plotly) --------------------------------------------------------------------
function chartDiv(key, label) {
  // One div per chart, kept from redraw to redraw: plotly updates it in place.
  let div = charts.get(key);
  if (!div) {
    div = el("div", { class: "chart", "data-chart": key, role: "img", "aria-label": label });
    charts.set(key, div);
  }
  div.setAttribute("aria-label", label);
  return div;
}

function clockTitle(market) {
  return market.speed === 1 ? "time (UTC)" : `the exchange's clock (UTC, running ${market.speed}x)`;
}

function priceFigure(market, m) {
  // The symbol's candles, every entry and exit on them, and the position's live stop
  // and take-profit as lines across the chart.
  const bars = m.bars;
  // A candle spans its bar (plotly centres it on x): half a bar after the open, so a
  // fill inside the bar is marked on its candle.
  const half = (market.bar_seconds * 1000) / 2;
  const middle = (iso) => utc(new Date(Date.parse(iso) + half).toISOString().replace("Z", "+00:00"));
  const traces = [{
    type: "candlestick", name: m.symbol, x: bars.time.map(middle),
    open: bars.open, high: bars.high, low: bars.low, close: bars.close,
    increasing: { line: { color: COLORS.up } }, decreasing: { line: { color: COLORS.down } },
    showlegend: false,
  }];
  const first = bars.time.length ? bars.time[0] : null;
  const shownBars = (t) => !first || t >= first;  // (older ones would stretch the axis)
  const entries = m.trades.filter((t) => shownBars(t.entry_time))
    .map((t) => ({ time: t.entry_time, price: t.entry_price, side: t.side, qty: t.qty }));
  if (m.position && shownBars(m.position.entry_time)) {
    const p = m.position;
    entries.push({ time: p.entry_time, price: p.entry_price, side: p.side, qty: p.size });
  }
  const price = (value) => shown(value, m.price_places);
  traces.push({
    type: "scatter", mode: "markers", name: "entry", x: entries.map((e) => utc(e.time)),
    y: entries.map((e) => e.price),
    text: entries.map((e) => `${e.side} entry, ${shown(e.qty, m.qty_places)} at ${price(e.price)}`),
    hoverinfo: "x+text",
    marker: { color: COLORS.entry, size: 11, line: { color: "white", width: 1 },
      symbol: entries.map((e) => (e.side === "long" ? "triangle-up" : "triangle-down")) },
  });
  traces.push({
    type: "scatter", mode: "markers", name: "exit", x: m.trades.map((t) => utc(t.exit_time)),
    y: m.trades.map((t) => t.exit_price), hoverinfo: "x+text",
    text: m.trades.map((t) => `exit by ${t.exit_reason.replace("_", "-")}, filled at`
      + ` ${price(t.exit_price)}: PnL ${Number(t.pnl).toFixed(2)}`),
    marker: { size: 11, symbol: "x", line: { width: 1 },
      color: m.trades.map((t) => (Number(t.pnl) >= 0 ? COLORS.up : COLORS.down)) },
  });
  const shapes = [], annotations = [];
  const level = (at, color, label, dash) => {
    shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: at, y1: at,
      line: { color, width: 2, dash } });
    // (in the right margin, off the newest candles)
    annotations.push({ xref: "paper", x: 1, y: at, xanchor: "left", yanchor: "middle",
      text: `${label}<br>${price(at)}`, showarrow: false, font: { color, size: 11 }, align: "left" });
  };
  const p = m.position;
  if (p?.stop_price) {
    if (p.stop_live === false) level(p.stop_price, COLORS.down, "stop, NOT<br>on the venue", "dot");
    else level(p.stop_price, COLORS.stop, "stop", "dash");
  }
  if (p?.take_profit) level(p.take_profit, COLORS.target, "take-profit", "dash");
  const layout = {
    height: 280, margin: { l: 8, r: 84, t: 8, b: 8 }, shapes, annotations,
    paper_bgcolor: "white", plot_bgcolor: "#fbfcfd", showlegend: false, uirevision: m.symbol,
    xaxis: { type: "date", rangeslider: { visible: false }, title: { text: clockTitle(market) },
      gridcolor: COLORS.grid, automargin: true },
    yaxis: { title: { text: m.symbol, standoff: 8 }, automargin: true, gridcolor: COLORS.grid,
      tickformat: m.price_places === null ? "" : `.${m.price_places}f` },
  };
  return { traces, layout };
}

function pnlFigure(days) {
  // Realized PnL: one bar per trading day, and the running total (the equity the
  // closed trades made) as a line on its own axis.
  const x = days.map((d) => `${d.day} 12:00`);  // (a day's bar over its day, not its midnight)
  const DAY = 86400000;  // (ms: a date axis counts in them)
  const first = Date.parse(x[0]), last = Date.parse(x[x.length - 1]);
  const ticks = Math.max(1, Math.ceil((last - first) / DAY / 8)) * DAY;  // whole days
  let total = 0;
  const sums = days.map((d) => (total += Number(d.pnl)));
  const traces = [
    { type: "bar", name: "day's PnL", x, y: days.map((d) => Number(d.pnl)), width: 0.8 * DAY,
      marker: { color: days.map((d) => (Number(d.pnl) >= 0 ? COLORS.up : COLORS.down)) },
      hovertemplate: "%{x}: %{y:.2f}<extra>day's PnL</extra>" },
    { type: "scatter", mode: "lines+markers", name: "running total", x, y: sums,
      line: { color: COLORS.entry }, hovertemplate: "%{x}: %{y:.2f}<extra>running total</extra>" },
  ];
  const layout = {
    height: 240, margin: { l: 8, r: 16, t: 8, b: 8 }, paper_bgcolor: "white",
    plot_bgcolor: "#fbfcfd", legend: { orientation: "h", y: 1.12 }, uirevision: "pnl",
    xaxis: { type: "date", title: { text: "trading day" }, gridcolor: COLORS.grid,
      range: [first - DAY, last + DAY], dtick: ticks, tickformat: "%b %d\n%Y", automargin: true },
    yaxis: { title: { text: "realized PnL", standoff: 8 }, tickformat: ".2f", automargin: true,
      gridcolor: COLORS.grid, zeroline: true, zerolinecolor: "#8c959f" },
  };
  return { traces, layout };
}

function draw(div, figure) {
  if (typeof Plotly === "undefined") {  // (its script did not load: say so, once per chart)
    div.textContent = "charts need plotly's script (/static/plotly.min.js), which did not load";
    return;
  }
  Plotly.react(div, figure.traces, figure.layout, { displaylogo: false, responsive: true });
}

function marketSection(bot, market, drawing) {
  if (!market) return null;
  const parts = [];
  for (const m of market.symbols) {
    if (!m.bars.time.length) {
      parts.push(el("p", { class: "muted" }, `${m.symbol}: no bars seen yet (the bot's first pass draws them)`));
      continue;
    }
    const label = `${m.symbol}: ${m.bars.time.length} ${market.timeframe} bars, ${m.trades.length} trades`
      + (m.position?.stop_price ? `, stop at ${m.position.stop_price}` : "");
    const div = chartDiv(`${bot.bot_id}/${m.symbol}`, label);
    drawing.push(() => draw(div, priceFigure(market, m)));
    parts.push(div);
  }
  const clock = market.speed === 1 ? "UTC" : `UTC, the exchange's clock at ${market.speed}x`;
  const when = market.seen_at ? `as its last pass saw it, at ${utc(market.seen_at)} ${clock}` : "";
  return [el("h3", {}, "market"), el("p", { class: "muted", "data-seen-at": market.seen_at || "" }, when), parts];
}

function pnlSection(bot, pnl, drawing) {
  const days = pnl ? pnl.days : [];
  if (!days.length) return [el("h3", {}, "realized PnL"), el("p", { class: "muted" }, "no closed trades yet")];
  const trades = days.reduce((n, d) => n + d.trades, 0);
  const total = days.reduce((sum, d) => sum + Number(d.pnl), 0);
  const div = chartDiv(`${bot.bot_id}/pnl`, `realized PnL over ${days.length} days, ${trades} trades: ${total.toFixed(2)}`);
  drawing.push(() => draw(div, pnlFigure(days)));
  return [el("h3", {}, "realized PnL"), div];
}

function actions(bot) {
  const running = bot.pid !== null;
  const startable = bot.driven_by !== "code";  // its own program starts it, not botwarden
  const button = (action, label, enabled) => el("button", {
    type: "button", "data-action": action, disabled: !enabled,
    onclick: (event) => act(bot.bot_id, action, event.target),
  }, label);
  return el("div", { class: "actions" },
    bot.status === "needs_attention" ? button("resolve", "Resolve", true) : null,
    startable ? button("start", "Start", !running) : null, button("stop", "Stop", running),
    startable ? button("restart", "Restart", running) : null);
}

function card(bot, details, drawing) {
  const market = details.market;
  const facts = [
    ["strategy", bot.strategy || "-"], ["pid", bot.pid ?? "not running"], ["uptime", span(bot.uptime_seconds)],
    ["heartbeat", bot.heartbeat_seconds === null ? "never" : `${span(bot.heartbeat_seconds)} ago`],
    ["open orders", bot.open_orders], ["PnL today", money(bot.pnl_today)],
    ["trades today", bot.trades_today], ["entries today", bot.entries_today],
    ["breaker", bot.breaker || "off"],
    ["trading day", bot.trading_day || "-"], ["losing streak", bot.losing_streak],
    ["drawdown", bot.drawdown === null ? "-" : `${(Number(bot.drawdown) * 100).toFixed(2)}%`],
    ["PnL 7 days", details.pnl ? money(details.pnl.periods["7d"].pnl) : "-"],
    ["PnL all time", money(bot.pnl_total)], ["trades all time", bot.trades_total],
    ["equity", el("span", { "data-equity": market?.equity ?? "" }, cents(market?.equity))],
    ["cash", cents(market?.balance?.cash)],
    ["unrealized PnL", el("span", { "data-unrealized-total": market?.unrealized_pnl ?? "" },
      money(market?.unrealized_pnl))],
  ];
  return el("section", { class: "bot", "data-bot": bot.bot_id, "data-status": bot.status },
    el("h2", {}, bot.bot_id,
      el("span", { class: "status", "data-status": bot.status }, bot.status.replace("_", " ")),
      actions(bot)),
    el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
    bot.last_error ? el("p", { class: "error-text", "data-last-error": "" }, bot.last_error) : null,
    bot.attention ? el("p", { class: "attention-text" }, `needs attention: ${bot.attention}`) : null,
    bot.problem ? el("p", { class: "muted" }, bot.problem) : null,
    el("h3", {}, "positions"), positionsTable(details.positions || bot.positions.map((p) => ({
      symbol: p.symbol, side: p.side, size: p.size, entry_price: p.entry, stop_price: p.stop_price,
      take_profit: p.take_profit, stop_live: p.stop_live,
    })), market),
    marketSection(bot, market, drawing),
    el("h3", {}, "open orders"), ordersTable(details.orders || [], market),
    pnlSection(bot, details.pnl, drawing),
    el("h3", {}, "recent trades"), tradesTable(details.trades || [], market));
}

async function detailsOf(bot) {
  if (bot.problem) return {};
  const id = encodeURIComponent(bot.bot_id);
  const [positions, orders, trades, pnl, market] = await Promise.all([
    api(`/api/v1/bots/${id}/positions`), api(`/api/v1/bots/${id}/orders?pending=true`),
    api(`/api/v1/bots/${id}/trades?limit=${RECENT_TRADES}`), api(`/api/v1/bots/${id}/pnl`),
    api(`/api/v1/bots/${id}/market`),
  ].map((p) => p.catch((error) => { if (error instanceof Unauthorized) throw error; return null; })));
  return { positions, orders, trades, pnl, market };
}

// -- backtests ----------------------------------------------------------------------------
function pct(value) {
  return value === null || value === undefined ? "-" : `${Number(value).toFixed(2)}%`;
}

function backtestsTable(runs) {
  return table(["written (UTC)", "bot", "symbols", "from", "to", "return", "buy and hold",
    "max drawdown", "Sharpe", "trades", ""], runs.map((run) => {
    const s = run.summary;
    return el("tr", { "data-backtest": run.id },
      el("td", {}, utc(run.written_at).slice(0, 16)), el("td", {}, run.bot_id),
      el("td", {}, `${(s.symbols || []).join(", ")} ${s.timeframe || ""}`),
      el("td", {}, (s.start || "").slice(0, 10)), el("td", {}, (s.end || "").slice(0, 10)),
      el("td", {}, s.total_return_pct === null ? "-" : [money(s.total_return_pct), "%"]),
      el("td", {}, pct(s.buy_and_hold_return_pct)), el("td", {}, pct(s.max_drawdown_pct)),
      el("td", {}, s.sharpe === null || s.sharpe === undefined ? "-" : Number(s.sharpe).toFixed(2)),
      el("td", {}, s.trades ?? "-"),
      el("td", {}, el("button", { type: "button", "data-action": "report",
        onclick: () => showReport(run) }, "Report")));
  }));
}

async function showReport(run) {
  const sentWith = token;
  let response;
  try {
    response = await fetch(`/api/v1/backtests/${encodeURIComponent(run.id)}/report`, {
      headers: { Authorization: `Bearer ${sentWith}` },
    });
  } catch (error) {
    return say(`backtest ${run.id}: its report cannot be read (${error.message})`);
  }
  if (response.status === 401) return handle(new Unauthorized(sentWith));
  if (!response.ok) return say(`backtest ${run.id}: its report cannot be read (${response.status})`);
  // The report loads plotly's script beside it: here, the one botwarden serves.
  const page = (await response.text()).replace("<head>", '<head><base href="/static/">');
  document.getElementById("report-title").textContent =
    `backtest of ${run.bot_id}, written ${utc(run.written_at)} UTC (${run.folder})`;
  document.getElementById("report-frame").srcdoc = page;
  document.getElementById("report").showModal();
}

async function redrawBacktests() {
  const runs = await api("/api/v1/backtests");
  document.getElementById("backtests").hidden = !runs.length;
  document.getElementById("backtest-list").replaceChildren(backtestsTable(runs));
}

async function redraw() {
  redrawBacktests().catch(handle);
  const bots = await api("/api/v1/bots");
  const details = await Promise.all(bots.map(detailsOf));
  const main = document.getElementById("bots");
  const drawing = [];  // charts are drawn once their divs are on the page
  main.replaceChildren(...bots.map((bot, i) => card(bot, details[i], drawing)));
  for (const [key, div] of charts) if (!div.isConnected) charts.delete(key);
  for (const drawOne of drawing) drawOne();
  if (!bots.length) {
    main.append(el("p", { class: "muted" }, "No bots yet: `botwarden start CONFIG` starts one."));
  }
}

function scheduleRedraw(delay = 150) {
  // Many events arrive together (a fill, its trade, a stop): one redraw for all, and
  // one at a time (one asked for meanwhile follows it: never an older one drawn last).
  if (redrawing) {
    redrawAgain = true;
    return;
  }
  redrawing = setTimeout(async () => {
    try {
      await redraw();
      say(null);
    } catch (error) {
      handle(error);
    } finally {
      redrawing = null;
      if (redrawAgain) {
        redrawAgain = false;
        scheduleRedraw(delay);
      }
    }
  }, delay);
}

// -- acting -----------------------------------------------------------------------------
async function act(botId, action, button) {
  button.disabled = true;
  try {
    await api(`/api/v1/bots/${encodeURIComponent(botId)}/${action}`, { method: "POST" });
    say(null);
  } catch (error) {
    handle(error);
  } finally {
    scheduleRedraw();
  }
}

// -- live -------------------------------------------------------------------------------
async function stream() {
  // Server-sent events read with fetch (EventSource cannot send the token).
  const live = document.getElementById("live");
  const controller = new AbortController();
  streaming = controller;
  const sentWith = token;
  try {
    const response = await fetch("/api/v1/events/stream", {
      headers: { Authorization: `Bearer ${sentWith}` }, signal: controller.signal,
    });
    if (response.status === 401) throw new Unauthorized(sentWith);
    if (!response.ok) throw new Error(`event stream: ${response.status}`);
    live.dataset.live = "yes";
    live.textContent = "live";
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const message = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (/^event: market$/m.test(message)) scheduleRedraw(MARKET_REDRAW);
        else if (/^event: /m.test(message)) scheduleRedraw();
      }
    }
  } catch (error) {
    if (error instanceof Unauthorized) return handle(error);
  } finally {
    live.dataset.live = "no";
    live.textContent = "reconnecting";
  }
  if (streaming === controller) setTimeout(stream, 2000);
}

// -- the token ----------------------------------------------------------------------------
function say(text) {
  const message = document.getElementById("message");
  message.hidden = !text;
  message.textContent = text || "";
}

function handle(error) {
  if (error instanceof Unauthorized) {
    if (error.sentWith !== token) return; // sent before the token was replaced
    streaming?.abort();
    streaming = null;
    document.getElementById("login").hidden = false;
    say(token ? "The token was refused." : null);
    return;
  }
  say(error.message);
}

function connect() {
  document.getElementById("login").hidden = true;
  scheduleRedraw();
  stream();
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  token = document.getElementById("token").value.trim();
  localStorage.setItem(TOKEN_KEY, token);
  say(null);
  connect();
});

if (token) connect();
else document.getElementById("login").hidden = false;
