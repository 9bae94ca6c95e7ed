// The recipe library: every recipe with its versions, the text of each, the difference
// between two versions; an engineer uploads a recipe, which the daemon validates like any
// other (through the command controller) and refuses field by field.
"use strict";

(function () {
  let session = { user: null, role: null, csrf: null };
  let current = null;

  function byId(id) {
    return document.getElementById(id);
  }

  async function getJson(path) {
    const response = await fetch(path, { cache: "no-store" });
    return { ok: response.ok, doc: await response.json() };
  }

  function fillSelect(select, versions, pick) {
    select.textContent = "";
    for (const v of versions) {
      const option = document.createElement("option");
      option.value = String(v.version);
      option.textContent = `v${v.version} (${v.added_at}, ${v.source})`;
      select.appendChild(option);
    }
    select.value = String(pick);
  }

  async function showRecipe(name) {
    const { ok, doc } = await getJson(`/api/recipes/${encodeURIComponent(name)}/versions`);
    if (!ok) return;
    current = name;
    byId("recipe-title").textContent = name;
    const versions = doc.versions;
    const last = versions[versions.length - 1].version;
    fillSelect(byId("version"), versions, last);
    fillSelect(byId("diff-a"), versions, versions.length > 1 ? versions[versions.length - 2].version : last);
    fillSelect(byId("diff-b"), versions, last);
    await showText();
  }

  async function showText() {
    const version = byId("version").value;
    const { ok, doc } = await getJson(`/api/recipes/${encodeURIComponent(current)}/${version}`);
    byId("recipe-diff").hidden = true;
    byId("recipe-text").hidden = false;
    byId("recipe-text").textContent = ok ? doc.text : "—";
  }

  async function showDiff() {
    const a = byId("diff-a").value;
    const b = byId("diff-b").value;
    const { ok, doc } = await getJson(`/api/recipes/${encodeURIComponent(current)}/diff?a=${a}&b=${b}`);
    const pre = byId("recipe-diff");
    pre.textContent = "";
    pre.hidden = false;
    byId("recipe-text").hidden = true;
    if (!ok) {
      pre.textContent = (doc.errors || []).map((e) => `${e.field}: ${e.reason}`).join("; ");
      return;
    }
    if (!doc.diff.length) pre.textContent = `v${a} and v${b} are the same text`;
    for (const line of doc.diff) {
      const span = document.createElement("span");
      span.className = line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : line.startsWith("@@") ? "hunk" : "";
      span.textContent = `${line}\n`;
      pre.appendChild(span);
    }
  }

  async function loadList() {
    const { ok, doc } = await getJson("/api/recipes");
    if (!ok) return;
    const list = byId("recipe-list");
    list.textContent = "";
    for (const r of doc.recipes) {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = "#";
      a.dataset.name = r.name;
      a.textContent = `${r.name} v${r.version}`;
      a.addEventListener("click", (e) => {
        e.preventDefault();
        showRecipe(r.name);
      });
      li.appendChild(a);
      list.appendChild(li);
    }
    if (!current && doc.recipes.length) await showRecipe(doc.recipes[0].name);
  }

  // The controller names each problem "field: reason", joined by "; ".
  function fieldErrors(message) {
    return message.split(/; (?=[^;:\s]+: )/);
  }

  async function upload(e) {
    e.preventDefault();
    const file = byId("upload-file").files[0];
    const text = file ? await file.text() : byId("upload-text").value;
    const name = byId("upload-name").value;
    const result = byId("upload-result");
    const errors = byId("upload-errors");
    errors.textContent = "";
    const response = await fetch("/api/action/put_recipe", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": session.csrf || "" },
      body: JSON.stringify({ name, recipe_toml: text }),
    });
    const doc = await response.json();
    if (doc.ok) {
      const r = doc.result;
      result.className = "done";
      result.textContent = r.new_version ? `${r.name} v${r.version} added` : `${r.name} v${r.version}: the same text is already in the library`;
      current = null;
      await loadList();
      await showRecipe(r.name);
      return;
    }
    result.className = "refused";
    if (doc.error) {
      result.textContent = `refused (${doc.error.code})`;
      for (const problem of fieldErrors(doc.error.message)) {
        const li = document.createElement("li");
        li.textContent = problem;
        errors.appendChild(li);
      }
    } else {
      result.textContent = `refused — ${(doc.errors || []).map((x) => `${x.field}: ${x.reason}`).join("; ")}`;
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    byId("version").addEventListener("change", showText);
    byId("compare").addEventListener("click", showDiff);
    byId("upload-form").addEventListener("submit", upload);
    session = (await getJson("/api/session")).doc;
    byId("upload-box").hidden = !(session.role === "engineer" || session.role === "maintenance");
    await loadList();
  });
})();
