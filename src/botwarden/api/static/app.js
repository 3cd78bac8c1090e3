// The botwarden dashboard: every bot, live. No framework and nothing from a CDN: the
// page talks to the control API with the token (kept in this browser only) and redraws
// whenever the event stream says something changed.
"use strict";

const TOKEN_KEY = "botwarden-token";
const RECENT_TRADES = 8;
let token = tokenFromFragment() || localStorage.getItem(TOKEN_KEY) || "";
let redrawing = null;
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
  const n = Number(value);
  return el("span", { class: n > 0 ? "pnl-up" : n < 0 ? "pnl-down" : null }, n.toFixed(2));
}

function table(columns, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", {}, c)))),
    el("tbody", {}, rows));
}

function positionsTable(positions) {
  if (!positions.length) return el("p", { class: "muted" }, "no positions");
  const columns = ["symbol", "side", "size", "entry", "stop", "take-profit", "on the venue"];
  return table(columns, positions.map((p) =>
    el("tr", { "data-position": p.symbol },
      el("td", {}, p.symbol), el("td", {}, p.side), el("td", {}, p.size),
      el("td", {}, p.entry_price), el("td", {}, p.stop_price || "-"),
      el("td", { "data-take-profit": p.take_profit || "" }, p.take_profit || "-"),
      el("td", { "data-stop-live": String(Boolean(p.stop_live)) },
        p.stop_live ? el("span", { class: "live-stop" }, "stop live")
          : el("span", { class: "no-stop" }, "NO STOP")))));
}

function ordersTable(orders) {
  if (!orders.length) return el("p", { class: "muted" }, "no open orders");
  return table(["client order id", "purpose", "side", "qty", "type", "status"], orders.map((o) =>
    el("tr", {}, el("td", {}, o.client_order_id), el("td", {}, o.purpose), el("td", {}, o.side),
      el("td", {}, o.qty), el("td", {}, o.type), el("td", {}, o.status))));
}

function tradesTable(trades) {
  if (!trades.length) return el("p", { class: "muted" }, "no trades yet");
  return table(["closed (UTC)", "symbol", "side", "qty", "entry", "exit", "fees", "PnL"],
    trades.slice(-RECENT_TRADES).reverse().map((t) =>
      el("tr", {}, el("td", {}, t.exit_time.slice(0, 16).replace("T", " ")), el("td", {}, t.symbol),
        el("td", {}, t.side), el("td", {}, t.qty), el("td", {}, t.entry_price),
        el("td", {}, t.exit_price), el("td", {}, money(t.fees)), el("td", {}, money(t.pnl)))));
}

function pnlChart(days) {
  // Realized PnL, summed day after trading day, over the bot's whole history.
  const width = 600, height = 90, pad = 6;
  const sums = [0];
  for (const d of days) sums.push(sums[sums.length - 1] + Number(d.pnl));
  const trades = days.reduce((n, d) => n + d.trades, 0);
  const low = Math.min(...sums), high = Math.max(...sums), range = high - low || 1;
  const x = (i) => pad + (i * (width - 2 * pad)) / Math.max(1, sums.length - 1);
  const y = (v) => height - pad - ((v - low) * (height - 2 * pad)) / range;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label",
    `realized PnL over ${days.length} days, ${trades} trades: ${sums.at(-1).toFixed(2)}`);
  const zero = document.createElementNS(svg.namespaceURI, "line");
  for (const [k, v] of Object.entries({ x1: 0, x2: width, y1: y(0), y2: y(0) })) zero.setAttribute(k, v);
  const line = document.createElementNS(svg.namespaceURI, "polyline");
  line.setAttribute("points", sums.map((v, i) => `${x(i)},${y(v)}`).join(" "));
  svg.append(zero, line);
  return svg;
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

function card(bot, details) {
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
    })) ),
    el("h3", {}, "open orders"), ordersTable(details.orders || []),
    el("h3", {}, "realized PnL"), pnlChart(details.pnl ? details.pnl.days : []),
    el("h3", {}, "recent trades"), tradesTable(details.trades || []));
}

async function detailsOf(bot) {
  if (bot.problem) return {};
  const id = encodeURIComponent(bot.bot_id);
  const [positions, orders, trades, pnl] = await Promise.all([
    api(`/api/v1/bots/${id}/positions`), api(`/api/v1/bots/${id}/orders?pending=true`),
    api(`/api/v1/bots/${id}/trades?limit=${RECENT_TRADES}`), api(`/api/v1/bots/${id}/pnl`),
  ].map((p) => p.catch((error) => { if (error instanceof Unauthorized) throw error; return null; })));
  return { positions, orders, trades, pnl };
}

async function redraw() {
  const bots = await api("/api/v1/bots");
  const details = await Promise.all(bots.map(detailsOf));
  const main = document.getElementById("bots");
  main.replaceChildren(...bots.map((bot, i) => card(bot, details[i])));
  if (!bots.length) {
    main.append(el("p", { class: "muted" }, "No bots yet: `botwarden start CONFIG` starts one."));
  }
}

function scheduleRedraw() {
  // Many events arrive together (a fill, its trade, a stop): one redraw for all.
  if (redrawing) return;
  redrawing = setTimeout(async () => {
    redrawing = null;
    try {
      await redraw();
      say(null);
    } catch (error) {
      handle(error);
    }
  }, 150);
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
        if (/^event: /m.test(message)) scheduleRedraw();
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
