import { api, el, pct, toast, shell } from "/static/common.js";

shell("calibration");

const slider = document.getElementById("threshold");
let saved = null, data = null, previewTimer = null;

function histogram(values, lo, hi, bins) {
  const counts = new Array(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / (hi - lo) * bins)))] += 1;
  const total = values.length || 1;
  return counts.map((c) => c / total);
}

function drawPlot() {
  const canvas = document.getElementById("plot");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  canvas.width = width * ratio; canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const cal = data && data.calibration;
  const genuine = (cal && cal.genuine_scores) || [], impostor = (cal && cal.impostor_scores) || [];
  const note = document.getElementById("plot-note");
  const pad = { left: 66, right: 16, top: 16, bottom: 36 };
  const w = width - pad.left - pad.right, h = height - pad.top - pad.bottom;
  ctx.strokeStyle = "#dfe4ea"; ctx.fillStyle = "#5d6b7a"; ctx.font = "12px system-ui, sans-serif";
  if (!genuine.length && !impostor.length) {
    ctx.fillText("No scores yet: enroll at least two people with two or more photos each.", pad.left, pad.top + 20);
    note.textContent = "";
    return;
  }
  const score = data.estimate ? data.estimate.score : null;
  const all = genuine.concat(impostor, score !== null ? [score] : []);
  let lo = Math.min(...all), hi = Math.max(...all);
  const margin = (hi - lo) * 0.05 || 0.05; lo -= margin; hi += margin;
  const bins = 40;
  const g = histogram(genuine, lo, hi, bins), im = histogram(impostor, lo, hi, bins);
  const top = Math.max(...g, ...im, 0.01);
  const x = (v) => pad.left + (v - lo) / (hi - lo) * w;
  const y = (p) => pad.top + h - p / top * h;
  // axes and grid
  ctx.beginPath();
  for (let i = 0; i <= 4; i++) {
    const yy = pad.top + h * i / 4;
    ctx.moveTo(pad.left, yy); ctx.lineTo(pad.left + w, yy);
    ctx.fillText(`${Math.round(top * (4 - i) / 4 * 100)}%`, pad.left - 38, yy + 4);
  }
  ctx.stroke();
  for (let i = 0; i <= 5; i++) {
    const v = lo + (hi - lo) * i / 5;
    ctx.fillText(v.toFixed(2), x(v) - 12, pad.top + h + 18);
  }
  ctx.save(); ctx.translate(16, pad.top + h / 2); ctx.rotate(-Math.PI / 2); ctx.fillText("share of scores", -44, 0); ctx.restore();
  ctx.fillText("similarity score", pad.left + w / 2 - 40, height - 4);
  const bar = w / bins;
  const drawBars = (values, color) => {
    ctx.fillStyle = color;
    values.forEach((p, i) => { if (p > 0) ctx.fillRect(pad.left + i * bar + 1, y(p), bar - 2, pad.top + h - y(p)); });
  };
  drawBars(im, "rgba(192, 49, 43, .55)");
  drawBars(g, "rgba(25, 135, 90, .6)");
  if (score !== null && score >= lo && score <= hi) {
    ctx.strokeStyle = "#2457d6"; ctx.lineWidth = 2; ctx.setLineDash([6, 4]);
    ctx.beginPath(); ctx.moveTo(x(score), pad.top); ctx.lineTo(x(score), pad.top + h); ctx.stroke(); ctx.setLineDash([]);
    ctx.fillStyle = "#2457d6";
    const label = `threshold ${Number(slider.value).toFixed(2)} → score ${score.toFixed(3)}`;
    const tx = Math.min(x(score) + 6, pad.left + w - ctx.measureText(label).width);
    ctx.fillText(label, tx, pad.top + 12);
  }
  note.textContent = `${genuine.length} genuine and ${impostor.length} impostor scores` +
    (genuine.length < 20 ? " — few samples: the figures below are rough until more photos are enrolled." : ".");
}

function showStats() {
  const cal = data.calibration || {};
  const estimate = data.estimate;
  document.getElementById("threshold-value").textContent = Number(slider.value).toFixed(2);
  document.getElementById("people").textContent = cal.people ?? "–";
  document.getElementById("images").textContent = cal.images ?? "–";
  document.getElementById("loo").textContent = cal.loo_accuracy === null || cal.loo_accuracy === undefined ? "–" : pct(cal.loo_accuracy, 1);
  const gar = cal.genuine_accept_at && cal.genuine_accept_at[String(Number(slider.value))];
  document.getElementById("gar").textContent = gar === undefined ? "–" : pct(gar, 1);
  document.getElementById("method").textContent = cal.backend ? `${cal.backend} backend · calibration ${cal.method || ""}` : "";
  const far = document.getElementById("far"), note = document.getElementById("far-note");
  if (!estimate || estimate.far === null || estimate.far === undefined) {
    far.textContent = "–";
    note.textContent = "Enroll at least two people to estimate how often a stranger would be let in.";
  } else {
    far.textContent = estimate.far < 0.001 && estimate.far > 0 ? "<0.1%" : pct(estimate.far, 1);
    note.textContent = estimate.method === "leave-one-out"
      ? `Measured: each enrolled photo treated as a stranger to the other people (${estimate.trials} trials).`
      : `Estimated from ${estimate.trials} impostor scores (a stranger compared with every enrolled person).`;
  }
  document.getElementById("save").disabled = saved !== null && Math.abs(Number(slider.value) - saved) < 1e-9;
}

async function load(threshold) {
  const query = threshold === undefined ? "" : `?threshold=${threshold}`;
  data = await api(`/api/calibration${query}`);
  if (saved === null) { saved = data.threshold; slider.value = String(saved); }
  showStats();
  drawPlot();
}

slider.addEventListener("input", () => {
  showStats();
  clearTimeout(previewTimer);
  previewTimer = setTimeout(() => load(Number(slider.value)).catch((err) => toast(err.message, true)), 150);
});
document.getElementById("save").addEventListener("click", async () => {
  try {
    const answer = await api("/api/settings", { method: "PUT", json: { threshold: Number(slider.value) } });
    saved = answer.settings.threshold;
    toast(answer.message);
    showStats();
  } catch (err) { toast(err.message, true); }
});
window.addEventListener("resize", drawPlot);
load().catch((err) => { document.getElementById("plot-note").textContent = `Cannot load the calibration: ${err.message}`; });

// -- liveness: on or off (the figures on the page are the bench's, not this gallery's) ----------------------
api("/api/settings").then((data) => {
  const on = data.settings && data.settings.liveness !== false;
  document.getElementById("liveness-state").textContent = on ? "on" : "OFF: photos and screens of enrolled people open the door";
}).catch(() => { document.getElementById("liveness-state").textContent = ""; });

// -- liveness at this door: the timeline's unlocks judged live and the refusals ------------------------------
function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

api("/api/calibration/liveness?days=30").then((door) => {
  const live = door.unlocks.live, refused = door.refused;
  const parts = [`Face unlocks judged live: ${live}`];
  if (door.wait.median !== null) {
    parts[0] += ` (the decision waited a median ${door.wait.median.toFixed(2)} s for liveness` +
      (door.wait.p90 !== null ? `, 90% within ${door.wait.p90.toFixed(2)} s)` : ")");
  }
  const cues = Object.entries(door.cues).map(([cue, n]) => `${cue} ${n}`).join(", ");
  parts.push(`refused by liveness: ${plural(refused.attack, "attack")} caught${cues ? ` (${cues})` : ""}, ` +
    `${refused.timeout} still undecided at the timeout, ${refused.undecided} left before they were judged`);
  if (refused.other) parts.push(`${refused.other} refused for another reason`);
  if (door.unlocks.off) parts.push(`face unlocks with liveness off: ${door.unlocks.off}`);
  if (door.unlocks.unknown) parts.push(`face unlocks from an engine that did not say: ${door.unlocks.unknown}`);
  let text = `${parts.join("; ")}.`;
  if (door.oldest !== null && (door.oldest > door.since + 86400 || !door.complete)) {
    text += ` The timeline's rows counted reach back to ${new Date(door.oldest * 1000).toLocaleString()} only.`;
  }
  document.getElementById("door-liveness").textContent = text;
  document.getElementById("door-liveness-people").replaceChildren(...door.people.map((row) =>
    el("li", { text: `${row.person}: ${plural(row.refused, "refusal")}, ${plural(row.live, "live unlock")}` })));
}).catch((err) => { document.getElementById("door-liveness").textContent = `Cannot load: ${err.message}`; });
