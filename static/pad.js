// The drawing surface: pointer events (mouse, touch, pen) into round-brush strokes.
//
// Strokes are kept as point lists and the whole drawing is repainted from them,
// so every pixel is inked once, exactly like shared/drawing.py renders strokes
// server-side: dark #111 on a transparent canvas, brush width from the server.
export class DrawingPad {
  constructor(canvas, { brush, onStrokeStart, onStrokeEnd, onChange }) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.brush = brush;
    this.strokes = [];
    this.current = null;
    this.pointerId = null;
    this.frame = 0;
    this.onStrokeStart = onStrokeStart || (() => {});
    this.onStrokeEnd = onStrokeEnd || (() => {});
    this.onChange = onChange || (() => {});
    canvas.addEventListener("pointerdown", (e) => this.down(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    canvas.addEventListener("pointerup", (e) => this.up(e));
    canvas.addEventListener("pointercancel", (e) => this.up(e));
    canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  }

  isEmpty() {
    return this.strokes.length === 0;
  }

  point(e) {
    const r = this.canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * this.canvas.width / r.width,
            (e.clientY - r.top) * this.canvas.height / r.height];
  }

  down(e) {
    if (this.pointerId !== null || (e.pointerType === "mouse" && e.button !== 0)) return;
    e.preventDefault();
    this.pointerId = e.pointerId;
    this.canvas.setPointerCapture(e.pointerId);
    this.current = [this.point(e)];
    this.strokes.push(this.current);
    this.onStrokeStart();
    this.onChange();
    this.schedule();
  }

  move(e) {
    if (e.pointerId !== this.pointerId || !this.current) return;
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
    for (const ev of events.length ? events : [e]) this.current.push(this.point(ev));
    this.schedule();
  }

  up(e) {
    if (e.pointerId !== this.pointerId) return;
    const liftedAt = performance.now();
    this.pointerId = null;
    this.current = null;
    this.paint();  // the picture must be complete before anyone reads it
    this.onStrokeEnd(liftedAt);
  }

  clear() {
    this.strokes = [];
    this.current = null;
    this.pointerId = null;
    this.paint();
    this.onChange();
  }

  toDataURL() {
    if (this.frame) this.paint();   // every change schedules a frame; none pending: up to date
    return this.canvas.toDataURL("image/png");
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.paint());
  }

  paint() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    const ctx = this.ctx;
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.lineWidth = this.brush;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#111";
    for (const stroke of this.strokes) {
      ctx.beginPath();
      ctx.moveTo(stroke[0][0], stroke[0][1]);
      // A tap is a zero-length line: round caps turn it into a dot.
      for (const [x, y] of stroke.length > 1 ? stroke.slice(1) : stroke) ctx.lineTo(x, y);
      ctx.stroke();
    }
  }
}
