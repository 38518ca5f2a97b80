"use strict";
// Minimal drawing page: strokes on a transparent canvas, sent to POST /api/predict.
(function () {
  const canvas = document.getElementById("canvas");
  const out = document.getElementById("prediction");
  const ctx = canvas.getContext("2d");
  ctx.lineWidth = Number(canvas.dataset.brush);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.strokeStyle = "#111";
  let drawing = false;
  let timer = null;

  function pos(e) {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
  }
  canvas.addEventListener("pointerdown", (e) => {
    drawing = true;
    canvas.setPointerCapture(e.pointerId);
    const [x, y] = pos(e);
    ctx.beginPath();
    ctx.moveTo(x, y);
    ctx.lineTo(x, y);
    ctx.stroke();
    clearTimeout(timer);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const [x, y] = pos(e);
    ctx.lineTo(x, y);
    ctx.stroke();
  });
  canvas.addEventListener("pointerup", () => {
    drawing = false;
    timer = setTimeout(send, 300);
  });
  document.getElementById("clear").addEventListener("click", () => {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    out.dataset.state = "idle";
    out.textContent = "Draw a digit above.";
  });

  async function send() {
    out.dataset.state = "pending";
    const res = await fetch("/api/predict", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({image: canvas.toDataURL("image/png")}),
    });
    const body = await res.json();
    if (!res.ok) {
      out.dataset.state = "error";
      out.textContent = body.error;
      return;
    }
    out.dataset.state = "done";
    out.dataset.digit = body.digit;
    out.dataset.jobId = body.job_id;
    out.dataset.modelVersion = body.model_version;
    out.textContent = "It's a " + body.digit;
  }
})();
