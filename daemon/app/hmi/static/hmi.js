// The operator station's page: the run so far from /api/run, then live frames from
// /api/stream (Server-Sent Events). Everything is drawn from what the daemon sends; text
// from the daemon is only ever set as textContent.
"use strict";

(function () {
  const CHANNELS = ["chip", "component", "chuck"];
  const COLOURS = { chip: "#d62728", component: "#1f77b4", chuck: "#2ca02c", setpoint: "#555" };
  const NO_POINTS = { show: false };
  const ZONE_COLOURS = ["#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"];

  let runId = null; // the run the charts show
  let runLive = false; // whether that run is the one running now
  let context = { liquidus_c: null, component_max_c: null, peak_windows: [] };
  let steps = [];
  let trace = emptyTrace(0);
  let charts = null;
  let loading = null; // the history fetch under way, if any
  let pending = []; // live points received while the history loads

  function emptyTrace(zones) {
    const t = { t: [], sp: [], p: [], o2: [], zones: [] };
    for (const ch of CHANNELS) t[ch] = [];
    for (let z = 0; z < zones; z++) t.zones.push([]);
    return t;
  }

  function byId(id) {
    return document.getElementById(id);
  }

  function text(id, value) {
    byId(id).textContent = value === null || value === undefined || value === "" ? "—" : String(value);
  }

  function fmt(v, digits) {
    return v === null || v === undefined ? "—" : Number(v).toFixed(digits);
  }

  function positive(v) {
    return v === null || v === undefined || !(v > 0) ? null : v;
  }

  // ---- charts ---------------------------------------------------------------------------
  function drawGuides(u) {
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    const lastT = trace.t.length ? trace.t[trace.t.length - 1] : 0;
    for (const w of context.peak_windows || []) {
      const step = steps.find((s) => s.name === w.step);
      if (!step) continue;
      const x0 = u.valToPos(step.start_s, "x", true);
      const x1 = u.valToPos(step.end_s === null ? lastT : step.end_s, "x", true);
      const y0 = u.valToPos(w.max_c, "y", true);
      const y1 = u.valToPos(w.min_c, "y", true);
      ctx.fillStyle = "rgba(44, 160, 44, 0.15)";
      ctx.fillRect(x0, y0, Math.max(1, x1 - x0), y1 - y0);
    }
    const hline = (value, colour, dash, label) => {
      if (value === null || value === undefined) return;
      const y = u.valToPos(value, "y", true);
      ctx.strokeStyle = colour;
      ctx.lineWidth = 1.5 * devicePixelRatio;
      ctx.setLineDash(dash.map((d) => d * devicePixelRatio));
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(left + width, y);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = colour;
      ctx.textAlign = "left";
      ctx.textBaseline = "bottom";
      ctx.font = `${12 * devicePixelRatio}px sans-serif`;
      ctx.fillText(label, left + 6 * devicePixelRatio, y - 4 * devicePixelRatio);
    };
    hline(context.liquidus_c, "#ff7f0e", [], context.liquidus_label || "liquidus");
    hline(context.component_max_c, "#9467bd", [2, 3], context.component_label || "Tg − margin");
    ctx.restore();
  }

  // The guide lines stay in view even before the chip comes near them.
  function tempRange(_u, lo, hi) {
    const guides = [context.liquidus_c, context.component_max_c, ...(context.peak_windows || []).map((w) => w.max_c)];
    let top = Number.isFinite(hi) ? hi : 50;
    for (const g of guides) if (g !== null && g !== undefined) top = Math.max(top, g);
    return [Math.min(0, Number.isFinite(lo) ? lo : 0), top + 10];
  }

  function widthOf(el) {
    return Math.max(300, el.clientWidth);
  }

  function makeCharts(zones) {
    for (const id of ["chart-temps", "chart-gas", "chart-lamps"]) byId(id).textContent = "";
    const x = { label: "run time (s)" };
    const temps = new uPlot(
      {
        width: widthOf(byId("chart-temps")),
        height: 320,
        scales: { x: { time: false }, y: { range: tempRange } },
        axes: [x, { label: "°C" }],
        series: [
          {},
          ...CHANNELS.map((ch) => ({ label: ch, stroke: COLOURS[ch], width: ch === "chip" ? 2 : 1.5, points: NO_POINTS })),
          { label: "setpoint", stroke: COLOURS.setpoint, width: 1.2, dash: [4, 3], points: NO_POINTS },
        ],
        hooks: { draw: [drawGuides] },
      },
      [[], [], [], [], []],
      byId("chart-temps"),
    );
    const gas = new uPlot(
      {
        width: widthOf(byId("chart-gas")),
        height: 200,
        scales: { x: { time: false }, y: { distr: 3 } },
        axes: [x, { label: "mbar / ppm" }],
        series: [
          {},
          { label: "pressure (mbar)", stroke: "#1f77b4", width: 1.8, points: NO_POINTS },
          { label: "O2 (ppm, not under vacuum)", stroke: "#d62728", width: 1.5, points: NO_POINTS },
        ],
      },
      [[], [], []],
      byId("chart-gas"),
    );
    const zoneSeries = [];
    for (let z = 0; z < zones; z++) {
      zoneSeries.push({ label: `zone ${z + 1} (%)`, stroke: ZONE_COLOURS[z % ZONE_COLOURS.length], width: 1.5, points: NO_POINTS });
    }
    const lamps = new uPlot(
      {
        width: widthOf(byId("chart-lamps")),
        height: 160,
        scales: { x: { time: false }, y: { range: [0, 100] } },
        axes: [x, { label: "%" }],
        series: [{}, ...zoneSeries],
      },
      [[], ...zoneSeries.map(() => [])],
      byId("chart-lamps"),
    );
    charts = { temps, gas, lamps, zones };
  }

  function redraw() {
    if (!charts || charts.zones !== trace.zones.length) makeCharts(trace.zones.length);
    charts.temps.setData([trace.t, ...CHANNELS.map((ch) => trace[ch]), trace.sp]);
    charts.gas.setData([trace.t, trace.p, trace.o2]);
    charts.lamps.setData([trace.t, ...trace.zones]);
    byId("chart-temps").dataset.points = String(trace.t.length);
  }

  function addPoint(pt) {
    const n = trace.t.length;
    if (n && pt.t_s <= trace.t[n - 1]) return false; // already in the history
    if (pt.lamp_zones_pct.length !== trace.zones.length) {
      if (n) return false; // a frame of another machine layout: the next history fixes it
      trace = emptyTrace(pt.lamp_zones_pct.length);
    }
    trace.t.push(pt.t_s);
    for (const ch of CHANNELS) trace[ch].push(pt.temps_c[ch] === undefined ? null : pt.temps_c[ch]);
    trace.sp.push(pt.setpoint_c);
    trace.p.push(positive(pt.pressure_mbar));
    trace.o2.push(positive(pt.o2_ppm));
    pt.lamp_zones_pct.forEach((v, z) => trace.zones[z].push(v));
    return true;
  }

  function fromHistory(doc) {
    const run = doc.run;
    if (!run) {
      runId = null;
      steps = [];
      trace = emptyTrace(0);
      text("run-note", "no run recorded yet");
      return;
    }
    runId = run.run_id;
    steps = run.steps;
    context = run.context;
    const tr = doc.trace;
    trace = emptyTrace(tr.lamp_zones_pct.length);
    trace.t = tr.t_s.slice();
    for (const ch of CHANNELS) trace[ch] = (tr.temps_c[ch] || tr.t_s.map(() => null)).slice();
    trace.sp = tr.setpoint_c.slice();
    trace.p = tr.pressure_mbar.map(positive);
    trace.o2 = tr.o2_ppm.map(positive);
    trace.zones = tr.lamp_zones_pct.map((z) => z.slice());
    const what = `${run.recipe.name} v${run.recipe.version}, lot ${run.lot_id}`;
    text("run-note", runLive ? `${what} — live` : `${what} — ${run.state}: the last recorded run, not live`);
  }

  async function loadHistory() {
    if (loading) return loading;
    loading = (async () => {
      try {
        const response = await fetch("/api/run", { cache: "no-store" });
        if (!response.ok) throw new Error(`/api/run answered ${response.status}`);
        fromHistory(await response.json());
        for (const pt of pending) addPoint(pt);
        redraw();
      } finally {
        pending = [];
        loading = null;
      }
    })();
    return loading;
  }

  // ---- the state panel and the synoptic ---------------------------------------------------
  function showState(f) {
    text("equipment", f.equipment_id);
    const state = byId("state");
    state.textContent = f.state;
    state.className = `state-${f.state}`;
    text("control", f.control);
    text("e10", f.e10);
    text("recipe", f.recipe ? `${f.recipe.name} v${f.recipe.version}` : null);
    text("lot", f.lot_id);
    text("operator", f.operator);
    text("run-id", f.run_id);
    const step = f.step;
    text("step", step ? step.name : null);
    text("step-count", step ? `(${step.index + 1}/${step.count})` : "");
    byId("step-progress").value = step ? step.progress : 0;
    text("remaining", step && step.remaining_s !== null ? `≈ ${fmt(step.remaining_s, 0)} s` : null);
    const list = byId("alarms");
    list.textContent = "";
    if (!f.alarms.length) {
      const li = document.createElement("li");
      li.className = "none";
      li.textContent = "none";
      list.appendChild(li);
    }
    for (const a of f.alarms) {
      const li = document.createElement("li");
      li.className = a.severity === "alarm" ? "alarm" : "warning";
      li.dataset.code = a.code;
      li.textContent = `${a.code}: ${a.message}`;
      if (session.user) {
        const ack = document.createElement("button");
        ack.type = "button";
        ack.className = "ack";
        ack.textContent = "acknowledge";
        ack.addEventListener("click", () => act("ack_alarm", { code: a.code }));
        li.appendChild(ack);
      }
      list.appendChild(li);
    }
    showSynoptic(f.synoptic);
    if (session.user && lastFrame && lastFrame.state !== "idle" && f.state === "idle") loadRecipes();
    lastFrame = f;
    enableActions();
  }

  function tileState(v) {
    if (v === null || v === undefined) return ["unknown", "no reading"];
    if (typeof v === "boolean") return [v ? "on" : "off", v ? "on" : "off"];
    if (v.fault) return ["fault", "fault"];
    if ("open" in v) return [v.open ? "on" : "off", v.open ? "open" : "closed"];
    return [v.on ? "on" : "off", v.on ? "on" : "off"];
  }

  function showSynoptic(s) {
    for (const tile of document.querySelectorAll("#synoptic .tile")) {
      const key = tile.dataset.key;
      const name = tile.dataset.name || tile.textContent;
      tile.dataset.name = name;
      const v = s[key];
      let cls, detail;
      if (key === "pressure_mbar") {
        [cls, detail] = v === null || v === undefined ? ["unknown", "no reading"] : ["off", `${Number(v).toPrecision(3)} mbar`];
      } else if (key === "estop_ok") {
        [cls, detail] = v === null || v === undefined ? ["unknown", "no reading"] : v ? ["on", "released"] : ["fault", "PRESSED"];
      } else if (key === "door_closed") {
        [cls, detail] = v === null || v === undefined ? ["unknown", "no reading"] : v ? ["on", "closed"] : ["off", "open"];
      } else {
        [cls, detail] = tileState(v);
        if (key === "chiller" && v && v.temp_c !== null) detail += ` ${fmt(v.temp_c, 1)} °C`;
        if (key === "z_stage" && v) {
          [cls, detail] = v.fault ? ["fault", "fault"] : [v.busy ? "on" : "off", `${fmt(v.position_um, 0)} µm${v.homed ? "" : " (not homed)"}`];
        }
        if ((key === "chuck_vacuum" || key === "support_vacuum") && v) {
          const held = s[`${key}_ok`];
          detail += held ? ", held" : ", not held";
        }
      }
      tile.className = `tile ${cls}`;
      tile.textContent = `${name}: ${detail}`;
    }
    const errors = byId("device-errors");
    errors.textContent = "";
    for (const [device, why] of Object.entries(s.device_errors || {})) {
      const li = document.createElement("li");
      li.textContent = `${device}: ${why}`;
      errors.appendChild(li);
    }
  }

  // ---- logins and actions ----------------------------------------------------------------
  // Every action goes to the daemon's one command controller; what it refuses is shown with
  // the controller's reason. The buttons' states only spare the operator a refusal.
  let session = { user: null, role: null, csrf: null };
  let lastFrame = null;
  const RANK = { operator: 0, engineer: 1, maintenance: 2 };

  function showSession(doc) {
    session = doc;
    const logged = Boolean(doc.user);
    byId("login-form").hidden = logged;
    byId("who").hidden = !logged;
    byId("actions").hidden = !logged;
    byId("user").textContent = logged ? `${doc.user} (${doc.role})` : "";
    if (logged && !byId("start-operator").value) byId("start-operator").value = doc.user;
    if (logged) loadRecipes();
    showDiagnostics(logged && doc.role === "maintenance");
    if (lastFrame) showState(lastFrame);
  }

  function enableActions() {
    const f = lastFrame;
    if (!f || !session.user) return;
    const local = f.control === "local";
    const active = ["running", "holding", "held"].includes(f.state);
    byId("take-control").disabled = local;
    byId("release-control").disabled = !local;
    byId("start").disabled = !local || f.state !== "idle";
    byId("hold").disabled = !local || f.state !== "running";
    byId("resume").disabled = !local || f.state !== "held";
    byId("abort").disabled = !active;
    byId("reset").disabled = RANK[session.role] < RANK.engineer;
    byId("remote-note").hidden = local;
  }

  function result(text, ok) {
    const el = byId("action-result");
    el.textContent = text;
    el.className = ok ? "done" : "refused";
  }

  async function post(path, body) {
    const headers = { "Content-Type": "application/json" };
    if (session.csrf) headers["X-CSRF-Token"] = session.csrf;
    const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body), cache: "no-store" });
    let doc = {};
    try {
      doc = await response.json();
    } catch (_e) {
      doc = {};
    }
    return { status: response.status, doc };
  }

  function refusal(doc) {
    if (doc.error && typeof doc.error === "object") return `${doc.error.code}: ${doc.error.message}`;
    if (doc.errors) return doc.errors.map((e) => `${e.field}: ${e.reason}`).join("; ");
    return "refused";
  }

  async function act(command, args) {
    result(`${command}…`, true);
    const { status, doc } = await post(`/api/action/${command}`, args);
    if (status === 401) {
      showSession({ user: null, role: null, csrf: null });
      result("the session ended: log in again", false);
      return;
    }
    if (doc.ok) result(`${command}: done`, true);
    else result(`${command} refused — ${refusal(doc)}`, false);
  }

  async function loadRecipes() {
    const response = await fetch("/api/recipes", { cache: "no-store" });
    if (!response.ok) return;
    const select = byId("start-recipe");
    const keep = select.value;
    select.textContent = "";
    for (const r of (await response.json()).recipes) {
      const option = document.createElement("option");
      option.value = r.name;
      option.textContent = `${r.name} v${r.version}`;
      select.appendChild(option);
    }
    if (keep) select.value = keep;
  }

  // Maintenance sees the machine's health: refreshed every 2 s while the role is logged in.
  let diagTimer = null;

  function diagRow(list, key, value) {
    const dt = document.createElement("dt");
    dt.textContent = key;
    const dd = document.createElement("dd");
    dd.textContent = typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
    list.appendChild(dt);
    list.appendChild(dd);
  }

  async function loadDiagnostics() {
    const response = await fetch("/api/diagnostics", { cache: "no-store" });
    if (!response.ok) return;
    const doc = await response.json();
    const list = byId("diag-list");
    list.textContent = "";
    const loop = doc.control_loop;
    diagRow(list, "software", doc.software_version);
    diagRow(list, "control loop", `late p50 ${loop.late_p50_ms} / p99 ${loop.late_p99_ms} / max ${loop.late_max_ms} ms, ${loop.overruns} overruns`);
    diagRow(list, "interlocks", doc.interlocks_healthy ? "healthy" : "NOT keeping up");
    diagRow(list, "latched trip", doc.interlock_trip ? `${doc.interlock_trip.code}: ${doc.interlock_trip.message}` : "none");
    diagRow(list, "MQTT", doc.mqtt_connected ? "connected" : "not connected");
    diagRow(list, "events pending", doc.events_pending);
    for (const [device, why] of Object.entries(doc.device_errors)) diagRow(list, `${device} error`, why);
    for (const [device, ident] of Object.entries(doc.device_identities)) diagRow(list, device, ident);
  }

  function showDiagnostics(on) {
    byId("diagnostics").hidden = !on;
    if (on && diagTimer === null) {
      loadDiagnostics();
      diagTimer = setInterval(loadDiagnostics, 2000);
    } else if (!on && diagTimer !== null) {
      clearInterval(diagTimer);
      diagTimer = null;
    }
  }

  function wireActions() {
    byId("login-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const { status, doc } = await post("/api/login", {
        name: byId("login-name").value,
        password: byId("login-password").value,
      });
      byId("login-password").value = "";
      if (status === 200) {
        showSession(doc);
        result(`logged in as ${doc.user}`, true);
        startView();
      } else {
        result(`login refused — ${refusal(doc)}`, false);
      }
    });
    byId("logout").addEventListener("click", async () => {
      await post("/api/logout", {});
      showSession({ user: null, role: null, csrf: null });
    });
    // The library changes under the page (the MES, the watch folder, an engineer).
    byId("start-recipe").addEventListener("focus", loadRecipes);
    byId("take-control").addEventListener("click", () => act("take_control", {}));
    byId("release-control").addEventListener("click", () => act("release_control", {}));
    byId("hold").addEventListener("click", () => act("hold", {}));
    byId("resume").addEventListener("click", () => act("resume", {}));
    byId("reset").addEventListener("click", () => act("reset", {}));
    byId("start-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const args = { recipe: byId("start-recipe").value, lot_id: byId("start-lot").value };
      const operator = byId("start-operator").value;
      if (operator) args.operator = operator;
      act("start", args);
    });
    const dialog = byId("abort-dialog");
    byId("abort").addEventListener("click", () => {
      byId("abort-reason").value = "";
      dialog.showModal();
    });
    byId("abort-cancel").addEventListener("click", () => dialog.close());
    byId("abort-form").addEventListener("submit", (e) => {
      e.preventDefault();
      dialog.close();
      act("abort", { reason: byId("abort-reason").value });
    });
  }

  // ---- the stream -------------------------------------------------------------------------
  function setLive(on, why) {
    const el = byId("live");
    el.className = on ? "live-on" : "live-off";
    el.textContent = on ? "live" : `not live: ${why}`;
  }

  // How long after the daemon built a frame the page had drawn it (same host clock for a
  // browser on the machine): the station's own lag, in the live badge's tooltip, and the
  // last few hundred kept for bench/hmi_bench.py (hmi_update_p99_ms).
  const UPDATE_KEEP = 600;
  window.hmiUpdateMs = [];

  function noteUpdate(f) {
    const ms = Date.now() - Date.parse(f.ts);
    if (!Number.isFinite(ms)) return;
    window.hmiUpdateMs.push(ms);
    if (window.hmiUpdateMs.length > UPDATE_KEEP) window.hmiUpdateMs.shift();
    byId("live").title = `last frame drawn ${ms} ms after the daemon built it`;
  }

  function onFrame(f) {
    showState(f);
    const current = f.run_id;
    if (current && current !== runId) {
      runLive = true; // a run started since the history was read: read it again
      loadHistory();
      return;
    }
    runLive = Boolean(current) && current === runId;
    if (runLive && f.step && f.step.start_s !== null) noteStep(f.step);
    if (current && session.user && !byId("start-recipe").options.length) loadRecipes();
    if (f.point && runLive) {
      if (loading) pending.push(f.point);
      else if (addPoint(f.point)) redraw();
    }
    noteUpdate(f);
  }

  // A step the history did not have yet: the previous one ended where this one started.
  function noteStep(step) {
    if (steps.some((s) => s.name === step.name && s.start_s === step.start_s)) return;
    const last = steps[steps.length - 1];
    if (last && last.end_s === null) last.end_s = step.start_s;
    steps.push({ name: step.name, start_s: step.start_s, end_s: null, result: "running" });
  }

  function connect() {
    const source = new EventSource("/api/stream");
    source.addEventListener("open", () => {
      setLive(true);
      loadHistory(); // what happened while the page was away is in the records
    });
    source.addEventListener("frame", (e) => onFrame(JSON.parse(e.data)));
    source.addEventListener("resync", () => loadHistory());
    source.addEventListener("error", () => {
      setLive(false, "connection to the daemon lost, reconnecting — showing what was received");
    });
  }

  let viewing = false;

  async function startView() {
    if (viewing) return;
    const response = await fetch("/api/state", { cache: "no-store" });
    if (response.status === 401) {
      setLive(false, "log in to see the station");
      return;
    }
    const doc = await response.json();
    viewing = true;
    runLive = Boolean(doc.frame.run_id);
    context = doc.context;
    showState(doc.frame);
    connect();
  }

  async function start() {
    wireActions();
    showSession(await (await fetch("/api/session", { cache: "no-store" })).json());
    await startView();
  }

  window.addEventListener("resize", () => {
    if (!charts) return;
    for (const [name, id] of [["temps", "chart-temps"], ["gas", "chart-gas"], ["lamps", "chart-lamps"]]) {
      charts[name].setSize({ width: widthOf(byId(id)), height: charts[name].height });
    }
  });
  document.addEventListener("DOMContentLoaded", () => {
    start().catch((err) => setLive(false, `cannot reach the daemon (${err.message})`));
  });
})();
