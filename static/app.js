// The drawing page: draw, and the answer is pushed back over Socket.IO.
//
// Flow: every time the pen lifts, the drawing goes out at once as a "predict"
// event tagged with a sequence number; the ack names its job id; the predict
// worker pushes "prediction" (or "prediction_error") to this browser's room.
// A digit of several strokes (a 4, a crossed 7) is sent after each stroke, and
// each answer replaces the one before. Only the answer for the latest drawing
// is shown: anything for an older job id or sequence number is dropped, however
// late it arrives. A pushed answer that never comes (lost while Redis restarted,
// or sent to a socket that has since reconnected) is fetched instead: the worker
// also stores every answer under its job id, so when none has arrived a moment
// after the ack the page asks GET /api/jobs/{id}.
import { DrawingPad } from "./pad.js";
import { AnswerView, Connection } from "./view.js";

const canvas = document.getElementById("canvas");
const placeholder = document.getElementById("placeholder");
const feedback = document.getElementById("feedback-status");
const correctButtons = Array.from(document.querySelectorAll("[data-correct]"));
const guessButtons = Array.from(document.querySelectorAll("[data-guess]"));
const labelButtons = [...correctButtons, ...guessButtons];
// The server reports a timeout itself; this only covers a lost connection.
const GIVE_UP_MS = Number(canvas.dataset.answerTimeoutMs) + 3000;
// Pushed answers take milliseconds: one still missing after POLL_AFTER_MS is
// asked for, then again at doubling intervals up to POLL_MAX_MS, POLL_TRIES times.
const POLL_AFTER_MS = 1500;
const POLL_MAX_MS = 5000;
const POLL_TRIES = 20;

const view = new AnswerView();
const connection = new Connection();
let seq = 0;
let latest = { seq: 0, jobId: null, penUpAt: null, sentAt: null, image: null, answered: true };
let giveUp = 0;
const early = new Map();   // answers that overtook their own ack, by job id

const pad = new DrawingPad(canvas, {
  brush: Number(canvas.dataset.brush),
  onStrokeStart() {
    feedback.textContent = "";
    feedback.dataset.state = "";
  },
  onStrokeEnd(penUpAt) {
    send(penUpAt);
  },
  onChange() {
    placeholder.hidden = !pad.isEmpty();
    for (const b of correctButtons) b.disabled = pad.isEmpty();
  },
});

const socket = window.io ? window.io({ transports: ["websocket", "polling"], tryAllTransports: true }) : null;

function send(penUpAt) {
  if (pad.isEmpty()) return;
  seq += 1;
  clearTimeout(latest.poll);
  latest = { seq, jobId: null, penUpAt, sentAt: null, image: pad.toDataURL(), answered: false };
  view.box.dataset.sentSeq = String(seq);
  early.clear();
  if (!socket || !socket.connected) {
    view.pending(true);
    return;   // sent by the "connect" handler
  }
  view.pending(false);
  emitLatest();
}

function emitLatest() {
  const mine = latest;
  mine.sentAt = performance.now();
  view.box.dataset.sentAt = mine.sentAt.toFixed(3);
  socket.emit("predict", { image: mine.image, seq: mine.seq }, (ack) => {
    if (mine !== latest || !ack || !ack.job_id) return;
    mine.jobId = ack.job_id;
    const overtaken = early.get(ack.job_id);
    early.clear();
    if (overtaken) overtaken();
    pollLater(mine, POLL_AFTER_MS, POLL_TRIES);
  });
  clearTimeout(giveUp);
  giveUp = setTimeout(() => {
    if (mine === latest && !mine.answered) answer(() => view.error("No answer arrived. Check your connection and draw again."), false);
  }, GIVE_UP_MS);
}

function answer(render, isResult) {
  latest.answered = true;
  latest.gotResult = latest.gotResult || isResult;
  clearTimeout(giveUp);
  render();
}

function pollLater(mine, delay, triesLeft) {
  clearTimeout(mine.poll);
  if (triesLeft > 0) mine.poll = setTimeout(() => pollJob(mine, delay, triesLeft - 1), delay);
}

async function pollJob(mine, delay, triesLeft) {
  if (mine !== latest || mine.gotResult) return;
  let status = null;
  try {
    const res = await fetch(`/api/jobs/${encodeURIComponent(mine.jobId)}`, { headers: { Accept: "application/json" } });
    if (res.status === 404) return;   // expired or unknown: the give-up timer speaks
    if (res.ok) status = await res.json();
  } catch (err) {
    status = null;                    // offline for now: ask again later
  }
  if (mine !== latest || mine.gotResult) return;
  if (status && status.result) {
    route(status.result, true, () => showPrediction(status.result, "poll"));
  } else if (status && status.state === "failed") {
    route({ job_id: mine.jobId, error: status.error }, false, () => showError(status.error));
  } else {
    pollLater(mine, Math.min(delay * 2, POLL_MAX_MS), triesLeft);
  }
}

function showPrediction(result, via) {
  const rtt = performance.now() - latest.sentAt;
  view.done(result, rtt, Number(canvas.dataset.unsureBelow));
  // Pen up -> answer on screen, for benchmarks/browser_latency.py.
  const d = view.box.dataset;
  d.seq = String(latest.seq);
  d.via = via;
  const renderedAt = performance.now();
  d.renderedAt = renderedAt.toFixed(3);
  d.penUpAt = latest.penUpAt.toFixed(3);
  d.penUpMs = (renderedAt - latest.penUpAt).toFixed(3);
}

function showError(message) {
  view.error(message || "The drawing could not be read.");
}

// Route a pushed message to the latest drawing, hold it until the ack if it
// came first, or drop it when it belongs to an older drawing. A real answer
// may still replace a timeout message; nothing replaces a real answer.
function route(msg, isResult, render) {
  if (latest.sentAt === null || latest.gotResult) return;
  const forLatest = msg.job_id ? msg.job_id === latest.jobId : msg.seq === latest.seq;
  if (forLatest) {
    if (!isResult && latest.answered) return;
    answer(render, isResult);
  } else if (msg.job_id && latest.jobId === null && early.size < 32) {
    early.set(msg.job_id, () => route(msg, isResult, render));
  }
}

if (socket) {
  socket.on("prediction", (result) => route(result, true, () => showPrediction(result, "push")));
  socket.on("prediction_error", (err) => route(err, false, () => showError(err.error)));
  socket.on("model_changed", (info) => {
    if (info && info.model_version) view.model.textContent = `${info.model_version} (new)`;
  });
  socket.on("connect", () => {
    connection.show("connected", socket.io.engine.transport.name);
    socket.io.engine.once("upgrade", (t) => connection.show("connected", t.name));
    // A drawing made offline, or one whose answer went to the old connection.
    if (!latest.answered && latest.image) {
      view.pending(false);
      emitLatest();
    }
  });
  socket.on("disconnect", (reason) => {
    connection.show("reconnecting");
    if (reason === "io server disconnect") socket.connect();
  });
  socket.on("connect_error", () => connection.show("reconnecting"));
} else {
  connection.show("reconnecting");
  view.error("The live connection library did not load. Reload the page.");
}

function clearAll() {
  clearTimeout(giveUp);
  clearTimeout(latest.poll);
  pad.clear();
  seq += 1;
  latest = { seq, jobId: null, penUpAt: null, sentAt: null, image: null, answered: true };
  early.clear();
  view.idle();
  feedback.textContent = "";
  feedback.dataset.state = "";
}

document.getElementById("clear").addEventListener("click", clearAll);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && !e.defaultPrevented) clearAll();
});

async function sendCorrection(label, button) {
  if (pad.isEmpty()) return;
  const body = { image: pad.toDataURL(), label };
  const d = view.box.dataset;
  if (d.state === "done") {
    body.predicted = Number(d.digit);
    body.job_id = d.jobId;
  }
  for (const b of labelButtons) b.setAttribute("aria-pressed", String(b === button));
  feedback.dataset.state = "sending";
  feedback.textContent = `Sending your ${label}…`;
  try {
    const res = await fetch("/helpdata", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const reply = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(reply.error || `the server answered ${res.status}`);
    feedback.dataset.state = "received";
    feedback.dataset.id = reply.id || "";
    feedback.textContent = `Thanks! Received as a ${label} — it will help train the next model.`;
  } catch (err) {
    feedback.dataset.state = "error";
    feedback.textContent = `Could not send it: ${err.message}`;
  }
}

for (const button of correctButtons) {
  button.addEventListener("click", () => sendCorrection(Number(button.dataset.correct), button));
}
// "Not sure: is it 4 or 9?": a tap on a guess is a correction like any other.
for (const button of guessButtons) {
  button.addEventListener("click", () => sendCorrection(Number(button.dataset.guess), button));
}

view.idle();
