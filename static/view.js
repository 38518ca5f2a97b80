// Everything the page shows about the answer lives here, including the stable
// hooks automated tests read: #prediction[data-state|data-digit|data-job-id|
// data-model-version|data-rtt-ms|data-seq|data-pen-up-ms|data-unsure|data-guesses],
// #unsure and its [data-guess] buttons.
//
// data-state says where the latest drawing is; data-look (for the style sheet
// only) what the box shows. They differ while a drawing is out: the box keeps
// showing what it showed (the previous stroke's answer, say) and only turns to
// "Looking…" if no answer came within LOOKING_AFTER_MS. Answers take ~15 ms,
// so the page does not flash between strokes, and the frame Chromium renders
// right after the pen lifts (it holds other tasks, the answer's included, until
// that frame is out) has nothing to restyle.
const $ = (id) => document.getElementById(id);
const LOOKING_AFTER_MS = 150;

export class AnswerView {
  constructor() {
    this.box = $("prediction");
    this.digit = $("answer-digit");
    this.message = $("answer-message");
    this.detail = $("answer-detail");
    this.model = $("model-version");
    this.rtt = $("rtt");
    this.bars = Array.from(document.querySelectorAll("#bars .bar"));
    this.unsure = $("unsure");
    this.guessButtons = Array.from(this.unsure.querySelectorAll("[data-guess]"));
  }

  setState(state, look = state) {
    clearTimeout(this.lookingTimer);
    this.box.dataset.state = state;
    if (look) this.box.dataset.look = look;
    for (const key of ["digit", "jobId", "modelVersion", "rttMs", "seq", "penUpAt", "penUpMs", "renderedAt",
                       "unsure", "guesses"]) {
      if (state !== "done") delete this.box.dataset[key];
    }
    // The guesses stay as long as the answer they belong to is on screen.
    if (look && look !== "done" && look !== "unsure") this.unsure.hidden = true;
  }

  idle() {
    this.setState("idle");
    this.digit.textContent = "?";
    this.message.textContent = "Draw a digit to start.";
    this.detail.textContent = "I'll tell you what I see.";
    this.showBars(null);
  }

  pending(waitingForConnection) {
    if (waitingForConnection) {
      this.looking(true);
      return;
    }
    this.setState("pending", null);   // the box keeps its look for now
    this.lookingTimer = setTimeout(() => this.looking(false), LOOKING_AFTER_MS);
  }

  looking(waitingForConnection) {
    this.setState("pending");
    this.digit.textContent = "…";
    this.message.textContent = waitingForConnection ? "Waiting for the connection…" : "Looking…";
    this.detail.textContent = waitingForConnection ? "Your drawing is sent when it is back." : "";
  }

  error(message) {
    this.setState("error");
    this.digit.textContent = "!";
    this.message.textContent = "Something went wrong";
    this.detail.textContent = message;
    this.showBars(null);
  }

  // unsureBelow: under this top probability (or always, from 1 up) the page
  // says it is not sure and offers its two best guesses as one-tap answers.
  done(result, rttMs, unsureBelow) {
    const p = result.probabilities;
    const best = result.digit;
    const second = p.reduce((b, v, i) => (i !== best && (b < 0 || v > p[b]) ? i : b), -1);
    const pct = (digit) => Math.round((p[digit] || 0) * 100);
    const unsure = unsureBelow >= 1 || (p[best] || 0) < unsureBelow;
    this.digit.textContent = String(best);
    if (unsure) {
      this.message.textContent = `Not sure: is it ${best} or ${second}?`;
      this.detail.textContent = `${pct(best)}% ${best}, ${pct(second)}% ${second}`;
      [best, second].forEach((digit, i) => {
        const button = this.guessButtons[i];
        button.dataset.guess = String(digit);
        button.textContent = `It's a ${digit}`;
        button.setAttribute("aria-label", `It's a ${digit}: send my drawing as a ${digit}`);
        button.setAttribute("aria-pressed", "false");
      });
    } else {
      this.message.textContent = `It's a ${best}`;
      this.detail.textContent = `${pct(best)}% sure`;
    }
    this.unsure.hidden = !unsure;
    this.showBars(p, best);
    this.model.textContent = result.model_version;
    this.model.title = result.model_version;
    this.rtt.textContent = `${rttMs.toFixed(rttMs < 10 ? 1 : 0)} ms`;
    this.setState("done", unsure ? "unsure" : "done");
    const d = this.box.dataset;
    if (unsure) {
      d.unsure = "true";
      d.guesses = `${best},${second}`;
    } else {
      delete d.unsure;
      delete d.guesses;
    }
    d.digit = String(result.digit);
    d.jobId = result.job_id;
    d.modelVersion = result.model_version;
    d.rttMs = rttMs.toFixed(3);
  }

  showBars(probabilities, best) {
    this.bars.forEach((bar, i) => {
      const p = probabilities ? probabilities[i] || 0 : 0;
      bar.style.setProperty("--p", String(p));
      bar.classList.toggle("best", probabilities !== null && i === best);
      bar.querySelector(".bar-value").textContent = `${Math.round(p * 100)}%`;
    });
  }
}

export class Connection {
  constructor() {
    this.pill = $("connection");
    this.text = $("connection-text");
    this.transport = $("transport");
  }

  show(state, transportName) {
    const words = { connecting: "Connecting…", connected: "Connected", reconnecting: "Reconnecting…" };
    this.pill.dataset.state = state;
    this.text.textContent = words[state] || state;
    this.transport.textContent = state === "connected" && transportName ? `· live over ${transportName}` : "";
  }
}
