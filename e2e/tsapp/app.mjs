// Cairn e2e test app: a plain Node.js HTTP server that serves a handful of
// Inngest functions with the official SDK (npm inngest@4.24.0).
//
// Environment:
//   PORT      port to listen on (127.0.0.1), default 3939
//   APP_ID    Inngest client id (prefix of every function id), default "tsapp"
//   JOURNAL   file that gets one JSON line per step-body execution (optional)
//   INNGEST_DEV=1, INNGEST_BASE_URL=http://127.0.0.1:<cairn port>
//             standard SDK variables that point the app at the server
//
// Prints "READY <port>" on stdout once listening. SDK logs go to stderr.

import fs from "node:fs";
import http from "node:http";
import { Inngest, NonRetriableError, step } from "inngest";
import { endpointAdapter, serve, serveEndpoint } from "inngest/node";

const PORT = Number(process.env.PORT || 3939);
const APP_ID = process.env.APP_ID || "tsapp";
const JOURNAL = process.env.JOURNAL || "";

// Keep stdout for the READY line; everything the SDK logs goes to stderr.
const toStderr =
  (level) =>
  (...args) =>
    console.error(`[${level}]`, ...args);
const logger = {
  info: toStderr("info"),
  warn: toStderr("warn"),
  error: toStderr("error"),
  debug: process.env.TSAPP_DEBUG ? toStderr("debug") : () => {},
};

const inngest = new Inngest({ id: APP_ID, logger });

// --- journal -----------------------------------------------------------------

// Appends one complete line synchronously, so a killed process never leaves a
// half-written record behind.
function journal(fnId, stepId, ctx) {
  if (!JOURNAL) return;
  const line = JSON.stringify({
    fn: fnId,
    step: stepId,
    run: ctx.runId,
    event: ctx.event?.id ?? null,
    attempt: ctx.attempt,
    pid: process.pid,
  });
  fs.appendFileSync(JOURNAL, line + "\n");
}

const sleepMs = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Wraps step.run so that every execution of the body is journaled first.
// `delayMs` (if a number) is waited after journaling, inside the body.
function journaledStep(fnId, ctx, stepId, body, delayMs) {
  return ctx.step.run(stepId, async () => {
    journal(fnId, stepId, ctx);
    if (typeof delayMs === "number" && delayMs > 0) await sleepMs(delayMs);
    return body();
  });
}

// --- import-contacts -----------------------------------------------------------

const DEFAULT_CSV = [
  "email,name",
  "Ann@Example.com,  Ann ",
  "bob@example.com,Bob",
  "ann@example.com,Ann again",
].join("\n");

function parseCsv(text) {
  // Cells are kept as they appear in the file; normalize-raw-csv cleans them.
  const lines = String(text)
    .split(/\r?\n/)
    .filter((l) => l.trim() !== "");
  if (lines.length === 0) return [];
  const header = lines[0].split(",").map((h) => h.trim().toLowerCase());
  return lines.slice(1).map((line) => {
    const cells = line.split(",");
    const row = {};
    header.forEach((col, i) => {
      row[col] = cells[i] ?? "";
    });
    return { email: row.email ?? "", name: row.name ?? "" };
  });
}

const importContacts = inngest.createFunction(
  { id: "import-contacts", triggers: [{ event: "contacts/csv.uploaded" }] },
  async (ctx) => {
    const fn = "import-contacts";
    const data = ctx.event.data ?? {};
    const slow = typeof data.slowMs === "number" ? data.slowMs : undefined;
    const csv = typeof data.csv === "string" ? data.csv : DEFAULT_CSV;

    const rows = await journaledStep(fn, ctx, "parse-csv", () => parseCsv(csv), slow);

    const contacts = await journaledStep(
      fn,
      ctx,
      "normalize-raw-csv",
      () => {
        const seen = new Set();
        const out = [];
        for (const r of rows) {
          const email = String(r.email).trim().toLowerCase();
          if (email === "" || seen.has(email)) continue;
          seen.add(email);
          out.push({ email, name: String(r.name).trim() });
        }
        return out;
      },
      slow,
    );

    const results = await journaledStep(
      fn,
      ctx,
      "input-contacts",
      () => ({ imported: contacts.length, emails: contacts.map((c) => c.email) }),
      slow,
    );

    return { results };
  },
);

// --- flaky-step ----------------------------------------------------------------

// Executions of the "flaky" body per run id (in memory; resets on restart).
const flakyExecutions = new Map();

const flakyStep = inngest.createFunction(
  { id: "flaky-step", triggers: [{ event: "test/flaky" }] },
  async (ctx) => {
    const fn = "flaky-step";
    await journaledStep(fn, ctx, "before", () => "ok");
    const flaky = await journaledStep(fn, ctx, "flaky", () => {
      const n = (flakyExecutions.get(ctx.runId) ?? 0) + 1;
      flakyExecutions.set(ctx.runId, n);
      if (n <= 2) throw new Error("boom");
      return "recovered";
    });
    await journaledStep(fn, ctx, "after", () => "done");
    return { flaky };
  },
);

// --- non-retriable ---------------------------------------------------------------

const nonRetriable = inngest.createFunction(
  { id: "non-retriable", triggers: [{ event: "test/nonretriable" }] },
  async (ctx) => {
    const fn = "non-retriable";
    const first = await journaledStep(fn, ctx, "first", () => 1);
    await journaledStep(fn, ctx, "fatal", () => {
      throw new NonRetriableError("stop now");
    });
    return { first }; // never reached
  },
);

// --- parallel-steps --------------------------------------------------------------

const parallelSteps = inngest.createFunction(
  { id: "parallel-steps", triggers: [{ event: "test/parallel" }] },
  async (ctx) => {
    const fn = "parallel-steps";
    const [a, b] = await Promise.all([
      journaledStep(fn, ctx, "provision-a", () => "A"),
      journaledStep(fn, ctx, "provision-b", () => "B"),
    ]);
    const combined = await journaledStep(fn, ctx, "combine", () => a + b);
    return { combined };
  },
);

// --- sleeper ---------------------------------------------------------------------

const sleeper = inngest.createFunction(
  { id: "sleeper", triggers: [{ event: "test/sleep" }] },
  async (ctx) => {
    const fn = "sleeper";
    await journaledStep(fn, ctx, "before", () => "before");
    await ctx.step.sleep("nap", "2s");
    await journaledStep(fn, ctx, "after", () => "after");
    return "slept";
  },
);

const sleepUntil = inngest.createFunction(
  { id: "sleep-until", triggers: [{ event: "test/sleepuntil" }] },
  async (ctx) => {
    await ctx.step.sleepUntil("until", new Date(ctx.event.data.until));
    return await journaledStep("sleep-until", ctx, "woke", () => Date.now());
  },
);

// --- fn-throws -------------------------------------------------------------------

const fnThrows = inngest.createFunction(
  { id: "fn-throws", retries: 1, triggers: [{ event: "test/fnthrow" }] },
  async () => {
    throw new Error("function level boom");
  },
);


// --- step vocabulary: waits, signals, invoke, sendEvent, cancellation -----------

const waiter = inngest.createFunction(
  { id: "waiter", triggers: [{ event: "test/wait" }] },
  async (ctx) => {
    const reply = await ctx.step.waitForEvent("wait-for-reply", {
      event: "test/reply",
      timeout: ctx.event.data.timeout || "20s",
      if: "async.data.key == event.data.key",
    });
    return { got: reply ? reply.data.value : null };
  },
);

// The reply is sent by the run itself, in the same breath as the wait: the
// engine must register the wait before it runs the send.
const raceWaiter = inngest.createFunction(
  { id: "race-waiter", triggers: [{ event: "test/race" }] },
  async (ctx) => {
    const key = ctx.event.data.key;
    const [reply] = await Promise.all([
      ctx.step.waitForEvent("wait-for-own-reply", {
        event: "test/race.reply",
        timeout: "20s",
        if: "async.data.key == event.data.key",
      }),
      ctx.step.sendEvent("send-own-reply", { name: "test/race.reply", data: { key } }),
    ]);
    return { got: reply ? reply.data.key : null };
  },
);

const signalWaiter = inngest.createFunction(
  { id: "signal-waiter", triggers: [{ event: "test/signal" }] },
  async (ctx) => {
    const sig = await ctx.step.waitForSignal("wait-for-signal", {
      signal: `sig-${ctx.event.data.key}`,
      timeout: ctx.event.data.timeout || "20s",
    });
    return { sig };
  },
);

const child = inngest.createFunction({ id: "child", retries: 0 }, async (ctx) => {
  const d = ctx.event.data;
  if (d.fail) throw new NonRetriableError("child failed");
  if (d.sleep) await ctx.step.sleep("child-nap", d.sleep);
  return await journaledStep("child", ctx, "double", () => ({ doubled: d.n * 2 }));
});

const invoker = inngest.createFunction(
  { id: "invoker", triggers: [{ event: "test/invoke" }] },
  async (ctx) => {
    const d = ctx.event.data;
    try {
      const r = await ctx.step.invoke("call-child", {
        function: child,
        data: { n: d.n, fail: d.fail, sleep: d.sleep },
        timeout: d.timeout || "30s",
      });
      return { ok: r };
    } catch (err) {
      return { error: err.message };
    }
  },
);

const fanOut = inngest.createFunction(
  { id: "fan-out", triggers: [{ event: "test/fanout" }] },
  async (ctx) => {
    const sent = await ctx.step.sendEvent("fan", [
      { name: "test/fanout.item", data: { i: 1, batch: ctx.event.data.batch } },
      { name: "test/fanout.item", data: { i: 2, batch: ctx.event.data.batch } },
    ]);
    return { count: sent.ids.length };
  },
);

const fanItem = inngest.createFunction(
  { id: "fan-item", triggers: [{ event: "test/fanout.item" }] },
  async (ctx) => journaledStep("fan-item", ctx, "item", () => ctx.event.data.i),
);

const cancellable = inngest.createFunction(
  {
    id: "cancellable",
    triggers: [{ event: "test/cancellable" }],
    cancelOn: [{ event: "test/cancel.it", if: "async.data.key == event.data.key" }],
  },
  async (ctx) => {
    await journaledStep("cancellable", ctx, "first", () => 1);
    await ctx.step.sleep("long-nap", "3s");
    await journaledStep("cancellable", ctx, "second", () => 2);
    return "not cancelled";
  },
);

const failsWithHandler = inngest.createFunction(
  {
    id: "fails-with-handler",
    retries: 0,
    triggers: [{ event: "test/fail.handled" }],
    onFailure: async (ctx) => {
      await journaledStep("fails-with-handler-failure", ctx, "report", () => ({
        fn: ctx.event.data.function_id,
        msg: ctx.error.message,
      }));
    },
  },
  async (ctx) => {
    await journaledStep("fails-with-handler", ctx, "doomed", () => {
      throw new NonRetriableError("doomed on purpose");
    });
  },
);

const timesOut = inngest.createFunction(
  { id: "times-out", timeouts: { finish: "2s" }, triggers: [{ event: "test/timeout" }] },
  async (ctx) => {
    await journaledStep("times-out", ctx, "first", () => 1);
    await ctx.step.sleep("too-long", "6s");
    await journaledStep("times-out", ctx, "never", () => 2);
  },
);

const idempotent = inngest.createFunction(
  { id: "idempotent", idempotency: "event.data.key", triggers: [{ event: "test/idem" }] },
  async (ctx) => journaledStep("idempotent", ctx, "once", () => ctx.event.data.key),
);

const filtered = inngest.createFunction(
  { id: "filtered", triggers: [{ event: "test/filtered", if: "event.data.plan != 'free'" }] },
  async (ctx) => journaledStep("filtered", ctx, "paid", () => ctx.event.data.plan),
);

const cronFn = inngest.createFunction(
  { id: "cron-fn", triggers: [{ cron: "TZ=Europe/Paris 0 3 * * *" }] },
  async (ctx) => journaledStep("cron-fn", ctx, "tick", () => ctx.event.data.scheduledAt ?? null),
);

// --- flow control ----------------------------------------------------------------

// work holds the concurrency slot for `ms` and reports when it ran.
const work = (ctx, fn, ms) =>
  journaledStep(fn, ctx, "work", async () => {
    const start = Date.now();
    await sleepMs(ms);
    return { start, end: Date.now(), key: ctx.event.data.key ?? null };
  });

const concOne = inngest.createFunction(
  { id: "conc-one", concurrency: { limit: 1, key: "event.data.key" }, triggers: [{ event: "test/conc" }] },
  async (ctx) => work(ctx, "conc-one", 300),
);

const throttled = inngest.createFunction(
  { id: "throttled", throttle: { limit: 2, period: "4s" }, triggers: [{ event: "test/throttle" }] },
  async (ctx) => journaledStep("throttled", ctx, "go", () => Date.now()),
);

const rateLimited = inngest.createFunction(
  { id: "rate-limited", rateLimit: { limit: 1, period: "1m", key: "event.data.key" }, triggers: [{ event: "test/ratelimit" }] },
  async (ctx) => journaledStep("rate-limited", ctx, "go", () => ctx.event.data.key),
);

const debounced = inngest.createFunction(
  { id: "debounced", debounce: { period: "1s", key: "event.data.key" }, triggers: [{ event: "test/debounce" }] },
  async (ctx) => journaledStep("debounced", ctx, "go", () => ctx.event.data.n),
);

const batched = inngest.createFunction(
  { id: "batched", batchEvents: { maxSize: 3, timeout: "10s" }, triggers: [{ event: "test/batch" }] },
  async (ctx) => journaledStep("batched", ctx, "go", () => ctx.events.map((e) => e.data.n)),
);

const singleton = inngest.createFunction(
  { id: "singleton", singleton: { key: "event.data.key", mode: "skip" }, triggers: [{ event: "test/singleton" }] },
  async (ctx) => {
    await ctx.step.sleep("hold", "2s");
    return "ran";
  },
);

const prioritized = inngest.createFunction(
  {
    id: "prioritized",
    concurrency: 1,
    priority: { run: "event.data.vip == true ? 600 : 0" },
    triggers: [{ event: "test/priority" }],
  },
  async (ctx) => work(ctx, "prioritized", 400),
);

// --- limits ----------------------------------------------------------------------

// big-step returns event.data.bytes characters from one step and reports
// what came back: the step fails when that is over the server's step output
// limit, and the function catches it as any step error.
const bigStep = inngest.createFunction(
  { id: "big-step", retries: 0, triggers: [{ event: "test/big-step" }] },
  async ({ event, step }) => {
    try {
      const out = await step.run("big", () => "x".repeat(event.data.bytes));
      return { length: out.length };
    } catch (err) {
      return { caught: err.name, message: err.message };
    }
  },
);

// many-steps runs event.data.steps steps of event.data.bytes characters each.
const manySteps = inngest.createFunction(
  { id: "many-steps", retries: 0, triggers: [{ event: "test/many-steps" }] },
  async ({ event, step }) => {
    for (let i = 0; i < event.data.steps; i++) {
      await step.run(`s${i}`, () => "x".repeat(event.data.bytes));
    }
    return "done";
  },
);

// --- durable endpoint ----------------------------------------------------------

// /api/durable is a durable endpoint (inngest.endpoint with the node adapter):
// an ordinary HTTP handler whose body is a workflow. Query: user (echoed),
// k (journal key: the endpoint has no run id to journal by), sleep (a
// step.sleep duration), fail (how many times compute-greeting throws first),
// throw (the handler throws after its first step), status (of the response).
// A POST's JSON body is echoed back. The response carries x-probe: 1.
const endpoints = new Inngest({ id: APP_ID + "-endpoints", logger, endpointAdapter });
const failures = new Map();
// The SDK consumes the request body before the handler runs (it keeps it in
// the run's event), so the handler reads a copy taken before.
const bodies = new WeakMap();
const durableHandler = endpoints.endpoint(async (req) => {
    const url = new URL(req.url);
    const q = (name) => url.searchParams.get(name) || "";
    const jctx = { runId: q("k"), attempt: 0 };
    const raw = await bodies.get(req);
    const body = raw ? JSON.parse(raw) : null;
    const user = await step.run("fetch-user", () => {
      journal("endpoint", "fetch-user", jctx);
      return { id: q("user") };
    });
    if (q("sleep")) await step.sleep("pause", q("sleep"));
    if (q("throw")) throw new Error("handler failed");
    const greeting = await step.run("compute-greeting", () => {
      journal("endpoint", "compute-greeting", jctx);
      const n = failures.get(q("k")) || 0;
      if (n < Number(q("fail") || 0)) {
        failures.set(q("k"), n + 1);
        throw new Error("greeting service down");
      }
      return `hello ${user.id}`;
    });
    return Response.json(
      { user, greeting, body, method: req.method },
      { status: Number(q("status") || 200), headers: { "x-probe": "1" } },
    );
});
const durable = serveEndpoint(async (req) => {
  bodies.set(req, req.clone().text());
  return durableHandler(req);
});

// --- checkpointing ---------------------------------------------------------------

// classic-steps opts out of async checkpointing: even when the server sends
// ctx.fn_id, the SDK answers each step with its own call.
const classicSteps = inngest.createFunction(
  { id: "classic-steps", checkpointing: false, triggers: [{ event: "test/classic-steps" }] },
  async ({ step }) => {
    const a = await step.run("a", () => 1);
    const b = await step.run("b", () => a + 1);
    return { b };
  },
);

// --- HTTP server -------------------------------------------------------------------

const handler = serve({
  client: inngest,
  functions: [
    importContacts, flakyStep, nonRetriable, parallelSteps, sleeper, sleepUntil, fnThrows,
    waiter, raceWaiter, signalWaiter, child, invoker, fanOut, fanItem, cancellable,
    failsWithHandler, timesOut, idempotent, filtered, cronFn,
    concOne, throttled, rateLimited, debounced, batched, singleton, prioritized,
    bigStep, manySteps, classicSteps,
  ],
});

const server = http.createServer((req, res) => {
  const { pathname } = new URL(req.url, "http://localhost");
  if (pathname === "/api/inngest") return handler(req, res);
  if (pathname === "/api/durable") return durable(req, res);
  res.writeHead(404, { "content-type": "text/plain" });
  res.end("not found\n");
});

server.listen(PORT, "127.0.0.1", () => {
  const port = server.address().port;
  process.stdout.write(`READY ${port}\n`);
});

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    server.close();
    process.exit(0);
  });
}
