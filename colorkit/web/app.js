// colorkit serve: the page. Plain JavaScript, no libraries, talks only to this server's /api.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const MAX_AHEAD = 4;      // photos uploaded to the server's queue ahead of the one it is working on
const POLL_MS = 400;

const items = [];         // one per photo: {file, card, job, state, url, settings}
let health = null;

function setStatus(text) { $("#status").textContent = text; }

async function apiError(resp) {
  try { const body = await resp.json(); return body.error || resp.statusText; }
  catch { return `${resp.status} ${resp.statusText}`; }
}

function settings() {
  return { renderSize: $("#render-size").value, strength: $("#strength").value };
}

function syncOutputs() {
  $("#render-size-out").textContent = $("#render-size").value;
  $("#strength-out").textContent = Number($("#strength").value).toFixed(2);
  const fmt = $("#format").value;
  for (const it of items) if (it.job && it.state === "done") setDownload(it, fmt);
  updateButtons();
}

function setDownload(it, fmt) {
  const a = $(".download", it.card);
  a.href = `api/jobs/${encodeURIComponent(it.job)}/result?format=${fmt}`;
  a.textContent = `Download ${fmt === "png" ? "PNG" : "JPEG"}`;
  a.hidden = false;
}

function updateButtons() {
  const done = items.filter((it) => it.state === "done");
  const active = items.filter((it) => ["pending", "uploading", "queued", "running"].includes(it.state));
  $("#zip").disabled = done.length === 0;
  $("#cancel-all").disabled = active.length === 0;
  const failed = items.filter((it) => it.state === "failed").length;
  if (items.length) {
    setStatus(`${done.length} of ${items.length} colorized` + (active.length ? `, ${active.length} to go` : "") +
              (failed ? `, ${failed} failed` : ""));
  }
}

function grayBefore(it) {
  const before = $(".before", it.card);
  if (before.src !== $(".after", it.card).src) before.src = $(".after", it.card).src;
  before.classList.add("gray");
  it.card.classList.remove("no-before");
}

function setState(it, state, text, progress) {
  it.state = state;
  it.card.className = `card ${state}` + (it.beforeBroken && state !== "done" ? " no-before" : "");
  $(".state", it.card).textContent = text;
  if (progress !== undefined) $("progress", it.card).value = progress;
  const finished = ["done", "failed", "cancelled"].includes(state);
  $(".cancel", it.card).hidden = finished;
  $(".remove", it.card).hidden = !finished;
  $(".redo", it.card).hidden = !finished;
  if (state !== "done") $(".download", it.card).hidden = true;
  updateButtons();
}

function addPhoto(file) {
  const card = $("#card-template").content.firstElementChild.cloneNode(true);
  const it = { file, card, job: null, state: "pending", url: URL.createObjectURL(file), settings: settings() };
  $(".name", card).textContent = file.name;
  $(".name", card).title = file.name;
  const before = $(".before", card);
  before.src = it.url;
  before.addEventListener("error", () => {   // a format the browser cannot show (TIFF): gray the result instead
    it.beforeBroken = true;
    card.classList.add("no-before");
    if (it.state === "done") grayBefore(it);
  });
  const divider = document.createElement("div");
  divider.className = "divider";
  $(".compare", card).appendChild(divider);
  const slider = $(".slider", card);
  const clip = () => {
    before.style.clipPath = `inset(0 ${100 - slider.value}% 0 0)`;
    divider.style.left = `${slider.value}%`;
  };
  slider.addEventListener("input", clip);
  clip();
  $(".cancel", card).addEventListener("click", () => cancel(it));
  $(".remove", card).addEventListener("click", () => remove(it));
  $(".redo", card).addEventListener("click", () => {
    if (it.job) fetch(`api/jobs/${encodeURIComponent(it.job)}`, { method: "DELETE" }).catch(() => {});
    it.settings = settings();
    it.job = null;
    $(".error", card).textContent = "";
    setState(it, "pending", "waiting to upload", 0);
    pump();
  });
  $("#results").prepend(card);
  items.push(it);
  setState(it, "pending", "waiting to upload", 0);
}

async function upload(it) {
  setState(it, "uploading", "uploading…", 0.02);
  const form = new FormData();
  form.append("file", it.file, it.file.name);
  form.append("render_size", it.settings.renderSize);
  form.append("strength", it.settings.strength);
  let resp;
  try {
    resp = await fetch("api/jobs", { method: "POST", body: form });
  } catch (err) {
    setState(it, "failed", "failed");
    $(".error", it.card).textContent = `Could not reach the colorkit server (${err.message}). Is it still running?`;
    return;
  }
  if (it.state !== "uploading") return;                 // cancelled while uploading
  if (resp.status === 503) {                            // the server's queue is full: try again shortly
    setState(it, "pending", "server busy, retrying…", 0);
    setTimeout(pump, 3000);
    return;
  }
  if (!resp.ok) {
    setState(it, "failed", `failed (${resp.status})`);
    $(".error", it.card).textContent = await apiError(resp);
    return;
  }
  const info = await resp.json();
  it.job = info.id;
  $(".error", it.card).textContent = "";
  show(it, info);
}

function show(it, info) {
  if (info.state === "queued") {
    setState(it, "queued", info.position ? `queued (${info.position} ahead)` : "queued", 0.03);
  } else if (info.state === "running") {
    setState(it, "running", info.stage, info.progress);
  } else if (info.state === "done") {
    const after = $(".after", it.card);
    after.onload = () => {
      setState(it, "done", `done in ${info.seconds.toFixed(1)} s · ${info.width}×${info.height}`, 1);
      if (it.beforeBroken) grayBefore(it);
      setDownload(it, $("#format").value);
    };
    after.onerror = () => { setState(it, "failed", "failed"); $(".error", it.card).textContent = "the result could not be shown"; };
    after.src = `api/jobs/${encodeURIComponent(it.job)}/preview?t=${Date.now()}`;
    it.state = "loading";
  } else {
    setState(it, info.state === "cancelled" ? "cancelled" : "failed", info.state);
    $(".error", it.card).textContent = info.state === "cancelled" ? "" : info.error;
  }
}

async function poll() {
  for (const it of items.filter((x) => x.job && (x.state === "queued" || x.state === "running"))) {
    try {
      const resp = await fetch(`api/jobs/${encodeURIComponent(it.job)}`);
      if (!resp.ok) { setState(it, "failed", "failed"); $(".error", it.card).textContent = await apiError(resp); continue; }
      const info = await resp.json();
      if (it.state === "queued" || it.state === "running") show(it, info);
    } catch (err) {
      setStatus(`Lost contact with the server (${err.message}); retrying…`);
    }
  }
  pump();
  setTimeout(poll, POLL_MS);
}

let pumping = false;
async function pump() {                 // upload pending photos while the server has few of ours queued
  if (pumping) return;
  pumping = true;
  try {
    for (;;) {
      const ahead = items.filter((x) => ["uploading", "queued", "running"].includes(x.state)).length;
      const next = items.find((x) => x.state === "pending");
      if (!next || ahead >= MAX_AHEAD) break;
      await upload(next);
      if (next.state === "pending") break;             // server busy: wait for the retry
    }
  } finally { pumping = false; }
}

async function cancel(it) {
  const wasState = it.state;
  setState(it, "cancelled", "cancelled");
  if (it.job && (wasState === "queued" || wasState === "running" || wasState === "loading")) {
    try { await fetch(`api/jobs/${encodeURIComponent(it.job)}`, { method: "DELETE" }); } catch { /* server gone */ }
  }
}

function remove(it) {
  if (it.job) fetch(`api/jobs/${encodeURIComponent(it.job)}`, { method: "DELETE" }).catch(() => {});
  URL.revokeObjectURL(it.url);
  it.card.remove();
  items.splice(items.indexOf(it), 1);
  updateButtons();
}

function addFiles(files) {
  const list = [...files].filter((f) => f.size > 0);
  for (const f of list) addPhoto(f);
  if (!list.length) setStatus("No photos found in what was dropped.");
  pump();
}

function setupDrop() {
  const drop = $("#drop");
  for (const ev of ["dragenter", "dragover"]) {
    document.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const ev of ["dragleave", "drop"]) {
    document.addEventListener(ev, (e) => { e.preventDefault(); if (ev === "drop" || e.target === drop) drop.classList.remove("over"); });
  }
  document.addEventListener("drop", (e) => { if (e.dataTransfer && e.dataTransfer.files.length) addFiles(e.dataTransfer.files); });
  $("#files").addEventListener("change", (e) => { addFiles(e.target.files); e.target.value = ""; });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("#files").click(); });
}

async function loadHealth() {
  try {
    const resp = await fetch("api/health");
    health = await resp.json();
    $("#model").textContent = `model ${health.model} · render size ${health.render_size} px · colorkit ${health.version}`;
    const rs = $("#render-size");
    rs.max = health.max_render_size;
    rs.value = health.render_size;
    syncOutputs();
  } catch (err) {
    $("#model").textContent = `cannot reach the colorkit server (${err.message})`;
  }
}

function init() {
  setupDrop();
  for (const id of ["render-size", "strength", "format"]) $(`#${id}`).addEventListener("input", syncOutputs);
  $("#zip").addEventListener("click", () => {
    const ids = items.filter((it) => it.state === "done").map((it) => it.job);
    if (!ids.length) return;
    const a = document.createElement("a");
    a.href = `api/zip?format=${$("#format").value}&ids=${ids.map(encodeURIComponent).join(",")}`;
    a.download = "colorized.zip";
    document.body.appendChild(a);
    a.click();
    a.remove();
  });
  $("#cancel-all").addEventListener("click", () => {
    for (const it of items) if (["pending", "uploading", "queued", "running"].includes(it.state)) cancel(it);
  });
  $("#clear").addEventListener("click", () => {
    for (const it of items.filter((x) => ["done", "failed", "cancelled"].includes(x.state))) remove(it);
    if (!items.length) setStatus("");
  });
  loadHealth();
  poll();
}

init();
