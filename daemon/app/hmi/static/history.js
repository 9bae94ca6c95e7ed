// The run history: the recorded runs, newest first, filtered by lot, recipe and result;
// each opens its report or downloads its trace. Text from the daemon only as textContent.
"use strict";

(function () {
  function cell(row, value) {
    const td = document.createElement("td");
    td.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
    row.appendChild(td);
    return td;
  }

  function link(parent, href, label) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = label;
    parent.appendChild(a);
    parent.appendChild(document.createTextNode(" "));
  }

  async function load() {
    const params = new URLSearchParams();
    for (const [key, id] of [["lot", "f-lot"], ["recipe", "f-recipe"], ["result", "f-result"]]) {
      const value = document.getElementById(id).value.trim();
      if (value) params.set(key, value);
    }
    const note = document.getElementById("history-note");
    const response = await fetch(`/api/runs?${params}`, { cache: "no-store" });
    const doc = await response.json();
    const body = document.querySelector("#runs tbody");
    body.textContent = "";
    if (!response.ok) {
      note.textContent = (doc.errors || []).map((e) => `${e.field}: ${e.reason}`).join("; ") || `error ${response.status}`;
      return;
    }
    note.textContent = `${doc.runs.length} run(s), newest first`;
    for (const run of doc.runs) {
      const row = document.createElement("tr");
      row.dataset.runId = run.run_id;
      cell(row, run.run_id);
      cell(row, `${run.recipe.name} v${run.recipe.version}`);
      cell(row, run.lot_id);
      cell(row, run.operator);
      const result = cell(row, run.result || run.state);
      result.className = `result-${run.result || run.state}`;
      cell(row, run.started_at);
      cell(row, run.ended_at);
      const links = cell(row, "");
      links.textContent = "";
      const id = encodeURIComponent(run.run_id);
      link(links, `/runs/${id}/report`, "report");
      link(links, `/runs/${id}/trace.csv`, "CSV");
      body.appendChild(row);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("filter").addEventListener("submit", (e) => {
      e.preventDefault();
      load();
    });
    load();
  });
})();
