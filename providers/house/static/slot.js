// The slot's player page: no build step, no framework, only the house API through fetch().
"use strict";

(() => {
  const API = location.pathname.replace(/\/slot\/?$/, "");
  const TOKEN = new URLSearchParams(location.search).get("token") || "";
  const LABELS = {
    SEVEN: "7", BAR: "BAR", BELL: "BELL", MELON: "MELON", PLUM: "PLUM", ORANGE: "ORANGE",
    LEMON: "LEMON", CHERRY: "CHERRY", WILD: "WILD", SCATTER: "★",
  };
  const REFUSALS = {
    INSUFFICIENT_FUNDS: "Not enough funds for this bet.",
    LIMIT_EXCEEDED: "This bet is above your limit.",
    SESSION_EXPIRED: "Your session has ended: open the game again from the casino.",
    PLAYER_BLOCKED: "Your account cannot place bets right now.",
  };
  const RETRY_DELAY_MS = 400;
  const MAX_TRIES = 25;
  const $ = (id) => document.getElementById(id);
  let layout = { reels: 5, rows: 3, lines: 20 };
  let currency = "";
  let exponent = 2;

  // A pending round is kept until it is answered, so a reload finishes it with the same outcome.
  const pendingKey = `house-pending-${TOKEN.slice(0, 12)}`;

  function uuid4() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function major(minor) {
    // Integer arithmetic on the minor units: never a float for money.
    const sign = minor < 0 ? "-" : "";
    const digits = String(Math.abs(minor)).padStart(exponent + 1, "0");
    if (exponent === 0) return sign + digits;
    return `${sign}${digits.slice(0, -exponent)}.${digits.slice(-exponent)}`;
  }

  function say(text, isError = false) {
    $("message").textContent = text;
    $("message").classList.toggle("error", isError);
  }

  function showBalance(answer) {
    if (typeof answer.balance_minor !== "number") return;
    currency = answer.currency || currency;
    $("balance").textContent = `${answer.balance || major(answer.balance_minor)} ${currency}`;
    $("balance").dataset.minor = String(answer.balance_minor);
  }

  function drawWindow(window, winning) {
    const reels = $("reels");
    reels.replaceChildren();
    for (let row = 0; row < layout.rows; row += 1) {
      for (let reel = 0; reel < layout.reels; reel += 1) {
        const symbol = window ? window[row][reel] : null;
        const cell = document.createElement("div");
        cell.className = symbol ? `cell sym-${symbol}` : "cell";
        cell.textContent = symbol ? (LABELS[symbol] || symbol) : "?";
        cell.dataset.reel = String(reel);
        cell.dataset.row = String(row);
        if (symbol) cell.dataset.symbol = symbol;
        if (winning.has(`${row}:${reel}`)) cell.classList.add("win");
        reels.appendChild(cell);
      }
    }
  }

  async function call(method, path, body) {
    const options = { method, headers: { "Content-Type": "application/json" } };
    if (body !== undefined) options.body = JSON.stringify(body);
    if (method === "GET") options.headers.Authorization = `Bearer ${TOKEN}`;
    const response = await fetch(API + path, options);
    let answer = {};
    try { answer = await response.json(); } catch (_) { answer = { status: "ERROR", message: response.statusText }; }
    return { http: response.status, answer };
  }

  async function loadFair() {
    const { answer } = await call("GET", "/fair");
    if (answer.status !== "OK") return;
    $("commitment").textContent = answer.active.commitment;
    $("client-seed").textContent = answer.active.client_seed;
    $("nonce").textContent = String(answer.active.next_nonce);
  }

  function showRound(round) {
    const base = round.outcome.base;
    const last = round.outcome.free_spins.length ? round.outcome.free_spins.at(-1) : base;
    // The reels show the base spin; the free spins it triggered are listed below.
    const winning = new Set();
    const paylines = layout.paylines || [];
    for (const win of base.line_wins) {
      const line = paylines[win.line - 1];
      if (!line) continue;
      for (let reel = 0; reel < win.count; reel += 1) winning.add(`${line[reel]}:${reel}`);
    }
    drawWindow(base.window, winning);
    $("win").textContent = major(round.win_minor);
    $("win").dataset.minor = String(round.win_minor);
    $("round-id").textContent = round.round_id;
    $("reels").dataset.roundId = round.round_id;
    const lines = base.line_wins.map((w) => `Line ${w.line}: ${w.count} × ${w.symbol} pays ${major(w.win_minor)}`);
    if (base.scatter_win_minor) lines.push(`${base.scatters} scatters pay ${major(base.scatter_win_minor)}`);
    if (round.outcome.free_spins_played) {
      lines.push(`${round.outcome.free_spins_played} free spins at ×${round.outcome.multiplier}` +
        ` (last window: ${last.window.map((r) => r.join(" ")).join(" / ")})`);
    }
    if (round.outcome.capped) lines.push("Maximum win reached");
    $("wins").replaceChildren(...lines.map((text) => Object.assign(document.createElement("li"), { textContent: text })));
    say(round.win_minor > 0 ? `You win ${major(round.win_minor)} ${currency}!` : "No win this time.");
  }

  async function play(request) {
    sessionStorage.setItem(pendingKey, JSON.stringify(request));
    $("spin").disabled = true;
    $("reels").classList.add("spinning");
    try {
      for (let attempt = 0; attempt < MAX_TRIES; attempt += 1) {
        let result;
        try {
          result = await call("POST", "/rounds", request);
        } catch (_) {
          result = { http: 0, answer: { retryable: true, message: "network error" } };
        }
        const { answer } = result;
        if (answer.status === "OK") {
          sessionStorage.removeItem(pendingKey);
          showRound(answer);
          showBalance(answer);
          document.body.dataset.rounds = String(Number(document.body.dataset.rounds) + 1);
          if (request.mode === "fair") loadFair();
          return;
        }
        if (!answer.retryable) {
          // A refused bet has no outcome to show: only the reason and the balance.
          sessionStorage.removeItem(pendingKey);
          showBalance(answer);
          say(REFUSALS[answer.code] || answer.message || "The bet was refused.", true);
          document.body.dataset.refused = answer.code || "ERROR";
          return;
        }
        say("Connecting…");
        await new Promise((resolve) => setTimeout(resolve, RETRY_DELAY_MS));
      }
      say("The round is not finished yet; it will complete when you come back.", true);
    } finally {
      $("reels").classList.remove("spinning");
      $("spin").disabled = false;
    }
  }

  function spin() {
    const bet = Number($("bet").value);
    const request = {
      token: TOKEN,
      round_id: uuid4(),
      game: "slot",
      bet_minor: bet,
      params: {},
      mode: $("fair").checked ? "fair" : "standard",
    };
    return play(request);
  }

  async function start() {
    drawWindow(null, new Set());
    if (!TOKEN) {
      say("No session: open this page from the casino with ?token=…", true);
      return;
    }
    const games = await call("GET", "/games");
    const slot = (games.answer.games || []).find((g) => g.game === "slot");
    if (slot) layout = { ...layout, ...slot };
    $("lines").textContent = String(layout.lines);
    if (slot && slot.title) $("title").textContent = slot.title;
    drawWindow(null, new Set());
    const balance = await call("POST", "/balance", { token: TOKEN });
    if (balance.answer.status !== "OK") {
      say(REFUSALS[balance.answer.code] || balance.answer.message || "The game cannot start.", true);
      return;
    }
    exponent = typeof balance.answer.exponent === "number" ? balance.answer.exponent : exponent;
    showBalance(balance.answer);
    for (const multiple of [1, 2, 5, 10, 25, 50]) {
      const option = document.createElement("option");
      option.value = String(layout.lines * multiple);
      option.textContent = major(layout.lines * multiple);
      $("bet").appendChild(option);
    }
    $("spin").addEventListener("click", spin);
    $("fair").addEventListener("change", loadFair);
    $("spin").disabled = false;
    document.body.dataset.ready = "true";
    const pending = sessionStorage.getItem(pendingKey);
    if (pending) await play(JSON.parse(pending));
  }

  start();
})();
