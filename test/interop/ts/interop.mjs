#!/usr/bin/env node
// Drives the upstream TypeScript client (@durable-streams/client, the exact
// version pinned in package.json) against a running durable-streams server
// and checks every result byte for byte. See README.md for what is covered.
//
// Usage:
//
//	node interop.mjs [options] <server-url>
//
// <server-url> is the server's root (streams are then under /v1/stream/) or
// any URL with a path, which is used as the parent of the test streams. It
// may also come from DS_INTEROP_URL.
//
// Options:
//
//	--long-poll-ms N       the server's long-poll timeout (default 2000); one
//	                       check waits across a timed-out long poll
//	--sse-reconnect-ms N   the server's SSE connection limit
//	                       (--sse-max-duration); when set, one check follows an
//	                       SSE stream across the server closing the connection
//	--only REGEXP          run only the checks whose name matches
//	--timeout-ms N         per-check time limit (default 20000)
//
// Prints one line per check and then
//
//	INTEROP passed=N failed=M total=T client=@durable-streams/client@VERSION
//
// and exits 1 if any check failed, 2 on bad usage.

import assert from "node:assert/strict"
import { randomBytes, randomUUID } from "node:crypto"
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { parseArgs } from "node:util"

import {
  DurableStream,
  IdempotentProducer,
  StaleEpochError,
  StreamClosedError,
  stream,
} from "@durable-streams/client"

// ---------------------------------------------------------------------------
// Command line

const usage = "usage: node interop.mjs [--long-poll-ms N] [--sse-reconnect-ms N] [--only REGEXP] [--timeout-ms N] <server-url>"

let opts
try {
  opts = parseArgs({
    allowPositionals: true,
    options: {
      "long-poll-ms": { type: "string", default: "2000" },
      "sse-reconnect-ms": { type: "string", default: "0" },
      only: { type: "string", default: "" },
      "timeout-ms": { type: "string", default: "20000" },
    },
  })
} catch (err) {
  console.error(`${err.message}\n${usage}`)
  process.exit(2)
}

const baseArg = opts.positionals[0] ?? process.env.DS_INTEROP_URL
if (!baseArg || opts.positionals.length > 1) {
  console.error(usage)
  process.exit(2)
}
const longPollMs = positiveInt("--long-poll-ms", opts.values["long-poll-ms"])
const sseReconnectMs = positiveInt("--sse-reconnect-ms", opts.values["sse-reconnect-ms"], true)
const checkTimeoutMs = positiveInt("--timeout-ms", opts.values["timeout-ms"])
let only
try {
  only = new RegExp(opts.values.only)
} catch (err) {
  console.error(`--only: ${err.message}`)
  process.exit(2)
}

let streamsBase
try {
  const u = new URL(baseArg)
  if (u.pathname === "/" || u.pathname === "") u.pathname = "/v1/stream/"
  if (!u.pathname.endsWith("/")) u.pathname += "/"
  streamsBase = u
} catch (err) {
  console.error(`bad server URL ${JSON.stringify(baseArg)}: ${err.message}`)
  process.exit(2)
}

function positiveInt(flag, s, zeroOK = false) {
  const n = Number(s)
  if (!Number.isSafeInteger(n) || n < 0 || (n === 0 && !zeroOK)) {
    console.error(`${flag}: want a ${zeroOK ? "non-negative" : "positive"} integer, got ${JSON.stringify(s)}`)
    process.exit(2)
  }
  return n
}

const clientVersion = (() => {
  // The package's exports map hides package.json; find it next to the entry.
  const require = createRequire(import.meta.url)
  let dir = require.resolve("@durable-streams/client")
  for (let i = 0; i < 4; i++) {
    dir = dir.slice(0, dir.lastIndexOf("/"))
    try {
      const pkg = JSON.parse(readFileSync(`${dir}/package.json`, "utf8"))
      if (pkg.name === "@durable-streams/client") return pkg.version
    } catch {}
  }
  return "unknown"
})()

// ---------------------------------------------------------------------------
// Helpers

const OCTET = "application/octet-stream"
const TEXT = "text/plain; charset=utf-8"
const JSON_CT = "application/json"
const enc = new TextEncoder()
const dec = new TextDecoder()

// Every run gets its own directory of streams, so runs never collide.
const runId = `interop-${Date.now().toString(36)}-${randomUUID().slice(0, 8)}`
let streamCount = 0

function streamURL(name) {
  return new URL(`${runId}/${++streamCount}-${name}`, streamsBase).toString()
}

async function create(name, contentType, extra = {}) {
  return DurableStream.create({ url: streamURL(name), contentType, ...extra })
}

function concat(parts) {
  const bufs = parts.map((p) => (typeof p === "string" ? enc.encode(p) : p))
  return Buffer.concat(bufs)
}

function assertBytes(got, want, what) {
  const g = Buffer.from(got)
  const w = Buffer.from(want)
  if (g.equals(w)) return
  let i = 0
  while (i < g.length && i < w.length && g[i] === w[i]) i++
  assert.fail(`${what}: got ${g.length} bytes, want ${w.length}; first difference at byte ${i} (got ${g[i]}, want ${w[i]})`)
}

function mediaType(ct) {
  return (ct ?? "").split(";")[0].trim().toLowerCase()
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// expectError runs fn and checks that it throws an error passing test.
async function expectError(fn, test, what) {
  let err
  try {
    await fn()
  } catch (e) {
    err = e
  }
  if (!err) assert.fail(`${what}: no error`)
  if (!test(err)) assert.fail(`${what}: unexpected error ${err.name}: ${err.message} (code ${err.code}, status ${err.status})`)
  return err
}

// In this client version the write methods of DurableStream surface HTTP
// errors as the FetchError of its retrying fetch wrapper, which throws before
// the typed mapping (StreamClosedError, CONFLICT_EXISTS, ...) runs. Checks
// therefore accept either form and look at the status and the headers the
// typed errors are built from.
const headerOf = (e, name) => (e?.headers instanceof Headers ? e.headers.get(name) : e?.headers?.[name.toLowerCase()])
const isNotFound = (e) => e.status === 404 || e.code === "NOT_FOUND"
const isConflict = (e) => e.status === 409 && !(e instanceof StreamClosedError) && headerOf(e, "stream-closed") !== "true"
const isClosedError = (e) => e instanceof StreamClosedError || (e.status === 409 && headerOf(e, "stream-closed") === "true")
const closedErrorOffset = (e) => (e instanceof StreamClosedError ? e.finalOffset : headerOf(e, "stream-next-offset"))

// follow subscribes to a StreamResponse with the given subscribe method and
// accumulates what arrives; until() waits for a condition on the result.
function follow(res, method) {
  const st = {
    bytes: Buffer.alloc(0),
    text: "",
    items: [],
    batches: 0,
    upToDate: false,
    streamClosed: false,
    error: undefined,
    ended: false,
  }
  const waiters = new Set()
  const wake = () => {
    for (const w of waiters) w()
  }
  res.closed.then(
    () => {
      st.ended = true
      wake()
    },
    (err) => {
      st.error = err
      st.ended = true
      wake()
    },
  )
  const unsubscribe = res[method]((chunk) => {
    st.batches++
    if (chunk.data) st.bytes = Buffer.concat([st.bytes, chunk.data])
    if (chunk.text !== undefined) st.text += chunk.text
    if (chunk.items) st.items.push(...chunk.items)
    st.upToDate = chunk.upToDate
    st.streamClosed = st.streamClosed || chunk.streamClosed
    wake()
  })
  st.until = (cond, what, ms = 10_000) =>
    new Promise((resolve, reject) => {
      const check = () => {
        if (cond(st)) {
          done()
          resolve(st)
        } else if (st.error) {
          done()
          reject(new Error(`${what}: reader failed: ${st.error.message}`))
        }
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`${what}: not seen within ${ms} ms (got ${st.bytes.length} bytes, ${st.items.length} items, text ${JSON.stringify(st.text.slice(-80))}, upToDate=${st.upToDate}, streamClosed=${st.streamClosed})`))
      }, ms)
      const done = () => {
        clearTimeout(timer)
        waiters.delete(check)
      }
      waiters.add(check)
      check()
    })
  st.stop = () => {
    unsubscribe()
    res.cancel()
  }
  return st
}

// duplicatingFetch sends every producer request twice, as a client whose
// first response was lost would, and answers with the second response.
function duplicatingFetch(log) {
  return async (url, init) => {
    const first = await fetch(url, init)
    await first.arrayBuffer()
    const second = await fetch(url, init)
    log.push({ seq: new Headers(init.headers).get("producer-seq"), first: first.status, second: second.status })
    return second
  }
}

// ---------------------------------------------------------------------------
// Checks

const checks = []
const notes = []
const note = (msg) => notes.push(msg)
// A check may have its own time limit (ms) instead of --timeout-ms.
const check = (name, fn, timeoutMs) => checks.push({ name, fn, timeoutMs })

check("create: binary, text and JSON streams; HEAD metadata; idempotent re-create; conflicting re-create", async () => {
  for (const ct of [OCTET, TEXT, JSON_CT]) {
    const h = await create("create", ct)
    const head = await h.head()
    assert.equal(head.exists, true)
    assert.equal(mediaType(head.contentType), mediaType(ct), "HEAD content type")
    assert.equal(typeof head.offset, "string", "HEAD offset")
    assert.ok(head.offset.length > 0, "HEAD offset is empty")
    assert.equal(head.streamClosed, false, "HEAD streamClosed")

    const connected = await DurableStream.connect({ url: h.url })
    assert.equal(mediaType(connected.contentType), mediaType(ct), "connect() content type")

    await DurableStream.create({ url: h.url, contentType: ct }) // same config: 200
    const other = ct === OCTET ? JSON_CT : OCTET
    await expectError(
      () => DurableStream.create({ url: h.url, contentType: other }),
      isConflict,
      "re-create with another content type",
    )
  }
})

check("append + catch-up: binary bytes exact (all byte values, 64 KiB random, concurrent batched appends keep order)", async () => {
  const h = await create("binary", OCTET)
  const all = new Uint8Array(256).map((_, i) => i)
  const parts = [all, "\r\n\0data: x\n\n", randomBytes(64 << 10)]
  for (const p of parts) await h.append(p)
  // Not awaited one by one: the client coalesces these into batched POSTs.
  const burst = Array.from({ length: 50 }, (_, i) => enc.encode(`<${i}>`))
  await Promise.all(burst.map((b) => h.append(b)))
  const want = concat([...parts, ...burst])

  const res = await h.stream({ live: false })
  assertBytes(await res.body(), want, "catch-up body")
  assert.equal(res.upToDate, true, "upToDate after catch-up")
  assert.equal(res.streamClosed, false, "streamClosed on an open stream")
  const head = await h.head()
  assert.equal(res.offset, head.offset, "read offset == HEAD tail offset")
})

check("catch-up: 3 MiB in 256 KiB appends is read back whole (body(), subscribe, live:false)", async () => {
  const h = await create("big", OCTET)
  const data = randomBytes(3 << 20)
  for (let off = 0; off < data.length; off += 256 << 10) await h.append(data.subarray(off, off + (256 << 10)))
  // body() with the default live mode stops at the first up-to-date.
  const res = await h.stream()
  assertBytes(await res.body(), data, "3 MiB body()")
  const sub = await h.stream({ live: "long-poll" })
  const st = follow(sub, "subscribeBytes")
  try {
    await st.until((s) => s.upToDate, "end of catch-up")
    assertBytes(st.bytes, data, "3 MiB subscribed")
  } finally {
    st.stop()
  }
  // Client 0.2.x with live:false ends the session after the first
  // response even when it is not up to date; the server's catch-up
  // response runs to the tail, so nothing is cut short.
  assertBytes(await (await h.stream({ live: false })).body(), data, "3 MiB live:false body()")
})

check("catch-up: live:false reads a 100 MB stream of many sealed segments whole, in one response", async () => {
  // The server runs with 1 MiB segments (TestInteropTS), so this stream
  // spans about 100 sealed segments. Client 0.2.x with live:false reads
  // one response and stops: every byte must be in it.
  const h = await create("big-rotated", OCTET)
  const total = 100 * 1000 * 1000
  const piece = 1 << 20
  const data = randomBytes(total)
  for (let off = 0; off < total; off += piece) await h.append(data.subarray(off, Math.min(off + piece, total)))
  const res = await h.stream({ live: false })
  const body = await res.body()
  assertBytes(body, data, "100 MB live:false body()")
  assert.equal(res.upToDate, true, "upToDate after the one-response catch-up")
  const head = await h.head()
  assert.equal(res.offset, head.offset, "read offset == HEAD tail offset")
}, 180000)

check("catch-up: resume from a saved offset returns only later data", async () => {
  const h = await create("resume", OCTET)
  await h.append("first;")
  const res = await h.stream({ live: false })
  assert.equal(dec.decode(await res.body()), "first;")
  const saved = res.offset
  await h.append("second;")
  await h.append("third;")
  const again = await h.stream({ offset: saved, live: false })
  assert.equal(dec.decode(await again.body()), "second;third;")
  const fromStart = await stream({ url: h.url, offset: "-1", live: false })
  assert.equal(dec.decode(await fromStart.body()), "first;second;third;")
  const atTail = await h.stream({ offset: again.offset, live: false })
  assert.equal((await atTail.body()).length, 0, "read at the tail is empty")
  assert.equal(atTail.upToDate, true)
})

check("text: UTF-8 text round trip", async () => {
  const h = await create("text", TEXT)
  const parts = ["héllo wörld ✓ 😀\n", "line two\r\n", "日本語テキスト", "\ttabbed  trailing  "]
  for (const p of parts) await h.append(p)
  const res = await h.stream({ live: false })
  assert.equal(await res.text(), parts.join(""))
})

check("JSON: messages round trip (objects, arrays, scalars, unicode), batched appends keep order", async () => {
  const h = await create("json", JSON_CT)
  const values = [
    { a: 1, b: "two", c: [3, 4.5, -6e-7] },
    [1, 2, 3],
    "a string with \"quotes\" and \\ and \n newline",
    42,
    null,
    true,
    { nested: { deep: [{}, [], { x: "✓ 😀" }] } },
  ]
  for (const v of values) await h.append(JSON.stringify(v))
  const burst = Array.from({ length: 40 }, (_, i) => ({ burst: i }))
  await Promise.all(burst.map((v) => h.append(JSON.stringify(v))))
  const res = await h.stream({ live: false })
  assert.deepEqual(await res.json(), [...values, ...burst])
})

check("long-poll: live follow (binary), across a timed-out poll, then EOF on close", async () => {
  const h = await create("longpoll", OCTET)
  await h.append("a")
  const res = await h.stream({ live: "long-poll" })
  const st = follow(res, "subscribeBytes")
  try {
    await st.until((s) => s.upToDate && s.bytes.toString() === "a", "initial catch-up")
    await h.append("b")
    await st.until((s) => s.bytes.toString() === "ab", "append after subscribing")
    await sleep(longPollMs + 500) // at least one long poll times out meanwhile
    await h.append(new Uint8Array([0, 255, 10]))
    await st.until((s) => s.bytes.equals(concat(["ab", new Uint8Array([0, 255, 10])])), "append after a long-poll timeout")
    await Promise.all(["c", "d", "e"].map((x) => h.append(x)))
    const want = concat(["ab", new Uint8Array([0, 255, 10]), "cde"])
    await st.until((s) => s.bytes.equals(want), "concurrent appends")
    const t0 = Date.now()
    await h.close()
    await st.until((s) => s.streamClosed && s.ended, "EOF after close")
    assert.ok(Date.now() - t0 < longPollMs + 1000, "close woke the waiting long poll late")
    assertBytes(st.bytes, want, "long-poll bytes")
    assert.equal(st.error, undefined)
  } finally {
    st.stop()
  }
})

check("SSE: live follow (JSON), then EOF on close", async () => {
  const h = await create("sse-json", JSON_CT)
  await h.append(JSON.stringify({ n: 0 }))
  const res = await h.stream({ live: "sse" })
  const st = follow(res, "subscribeJson")
  try {
    await st.until((s) => s.upToDate && s.items.length === 1, "initial catch-up")
    await h.append(JSON.stringify({ n: 1, s: "line\nbreak" }))
    await st.until((s) => s.items.length === 2, "append after subscribing")
    await Promise.all([2, 3, 4, 5].map((n) => h.append(JSON.stringify({ n }))))
    await st.until((s) => s.items.length === 6, "concurrent appends")
    await h.close()
    await st.until((s) => s.streamClosed && s.ended, "EOF after close")
    assert.deepEqual(st.items, [{ n: 0 }, { n: 1, s: "line\nbreak" }, { n: 2 }, { n: 3 }, { n: 4 }, { n: 5 }])
    assert.equal(st.error, undefined)
  } finally {
    st.stop()
  }
})

check("SSE: live follow (binary, base64-encoded events)", async () => {
  const h = await create("sse-binary", OCTET)
  const first = new Uint8Array([0, 1, 2, 10, 13, 255])
  await h.append(first)
  const res = await h.stream({ live: "sse" })
  const st = follow(res, "subscribeBytes")
  try {
    await st.until((s) => s.upToDate && s.bytes.length === first.length, "initial catch-up")
    const more = randomBytes(10_000)
    await h.append(more)
    const want = concat([first, more, "\n\nevent: control\n"])
    await h.append("\n\nevent: control\n")
    await st.until((s) => s.bytes.length >= want.length, "appends after subscribing")
    assertBytes(st.bytes, want, "SSE binary bytes")
  } finally {
    st.stop()
  }
})

// SSE cannot carry a bare CR: servers split text on CR, LF and CRLF, so
// these texts use LF only. Servers write "data:" and the line, as the
// reference does, and SSE parsers drop one space after the colon: a line
// that starts with a space arrives one space shorter (seen is what the
// client gets).
for (const [what, more, seen = more] of [
  ["multi-line", "second ✓\n\nfourth after an empty line\nevent: control\ndata: {}\nno newline at end"],
  ["lines starting with spaces", " one leading space\n  two\n\t tab then space\n end", "one leading space\n two\n\t tab then space\nend"],
]) {
  check(`SSE: live follow (text, ${what})`, async () => {
    const h = await create("sse-text", TEXT)
    await h.append("first line\n")
    const res = await h.stream({ live: "sse" })
    const st = follow(res, "subscribeText")
    try {
      await st.until((s) => s.upToDate && s.text === "first line\n", "initial catch-up")
      await h.append(more)
      await h.append("|END")
      await st.until((s) => s.text.endsWith("|END"), "appends after subscribing")
      assert.equal(st.text, "first line\n" + seen + "|END")
    } finally {
      st.stop()
    }
  })
}

check("live from offset=now: existing data is skipped, new data arrives (long-poll and SSE)", async () => {
  for (const live of ["long-poll", "sse"]) {
    const h = await create(`now-${live}`, JSON_CT)
    await h.append(JSON.stringify("old"))
    const res = await h.stream({ offset: "now", live })
    const st = follow(res, "subscribeJson")
    try {
      await st.until((s) => s.upToDate, `${live}: up to date at the tail`)
      await h.append(JSON.stringify("new"))
      await st.until((s) => s.items.length >= 1, `${live}: new data`)
      await sleep(100)
      assert.deepEqual(st.items, ["new"], live)
    } finally {
      st.stop()
    }
  }
})

if (sseReconnectMs > 0) {
  check(`SSE: follows across the server closing the connection (after ${sseReconnectMs} ms)`, async () => {
    const h = await create("sse-reconnect", JSON_CT)
    await h.append(JSON.stringify("before"))
    const res = await h.stream({ live: "sse" })
    const st = follow(res, "subscribeJson")
    try {
      await st.until((s) => s.upToDate && s.items.length === 1, "initial catch-up")
      await sleep(sseReconnectMs + 700)
      await h.append(JSON.stringify("after reconnect"))
      await st.until((s) => s.items.length >= 2, "append after the reconnect")
      await sleep(200) // a duplicate from a bad resume offset would show now
      assert.deepEqual(st.items, ["before", "after reconnect"])
    } finally {
      st.stop()
    }
  })
}

check("IdempotentProducer: 300 messages in pipelined batches arrive exactly once, in order (JSON)", async () => {
  const h = await create("producer-json", JSON_CT)
  const errors = []
  const p = new IdempotentProducer(h, "producer-a", {
    lingerMs: 1,
    maxBatchBytes: 512, // many small batches, up to maxInFlight at once
    maxInFlight: 5,
    onError: (e) => errors.push(e),
  })
  const want = Array.from({ length: 300 }, (_, i) => ({ i, pad: "x".repeat(i % 17) }))
  for (const v of want) p.append(JSON.stringify(v))
  await p.flush()
  assert.deepEqual(errors, [], "producer errors")
  assert.ok(p.nextSeq > 5, `expected many batches, got ${p.nextSeq}`)
  const res = await h.stream({ live: false })
  assert.deepEqual(await res.json(), want)
  assert.equal(p.lastSuccessfulOffset, (await h.head()).offset, "producer's last offset == HEAD tail offset")
  await p.detach()
  assert.equal((await h.head()).streamClosed, false, "detach() must not close the stream")
})

check("IdempotentProducer: retried (duplicated) batches are deduplicated (bytes)", async () => {
  const h = await create("producer-dup", OCTET)
  const log = []
  const errors = []
  const p = new IdempotentProducer(h, "producer-dup", {
    lingerMs: 0,
    maxInFlight: 1,
    fetch: duplicatingFetch(log),
    onError: (e) => errors.push(e),
  })
  const parts = []
  for (let i = 0; i < 20; i++) {
    const part = `msg-${i};`
    parts.push(part)
    p.append(part)
    if (i % 4 === 3) await p.flush()
  }
  await p.flush()
  assert.deepEqual(errors, [], "producer errors")
  assert.ok(log.length >= 5, `expected several batches, got ${log.length}`)
  for (const r of log) {
    assert.equal(r.first, 200, `seq ${r.seq}: first delivery status`)
    assert.equal(r.second, 204, `seq ${r.seq}: retried delivery status (duplicate)`)
  }
  const res = await h.stream({ live: false })
  assert.equal(dec.decode(await res.body()), parts.join(""))
})

check("IdempotentProducer: epoch fencing (StaleEpochError) and autoClaim", async () => {
  const h = await create("producer-fence", JSON_CT)
  const errA = []
  const a = new IdempotentProducer(h, "shared-id", { epoch: 0, lingerMs: 0, onError: (e) => errA.push(e) })
  a.append(JSON.stringify("a1"))
  await a.flush()
  const b = new IdempotentProducer(h, "shared-id", { epoch: 1, lingerMs: 0 })
  b.append(JSON.stringify("b1"))
  await b.flush()
  a.append(JSON.stringify("zombie"))
  await a.flush().catch(() => {})
  assert.equal(errA.length, 1, `zombie producer errors: ${errA.map((e) => e.message)}`)
  assert.ok(errA[0] instanceof StaleEpochError, `got ${errA[0]?.name}: ${errA[0]?.message}`)
  assert.equal(errA[0].currentEpoch, 1, "current epoch reported by the 403")

  const errC = []
  const c = new IdempotentProducer(h, "shared-id", { autoClaim: true, lingerMs: 0, onError: (e) => errC.push(e) })
  c.append(JSON.stringify("c1"))
  c.append(JSON.stringify("c2"))
  await c.flush()
  assert.deepEqual(errC, [])
  assert.equal(c.epoch, 2, "autoClaim takes the server's epoch + 1")
  const res = await h.stream({ live: false })
  assert.deepEqual(await res.json(), ["a1", "b1", "c1", "c2"])
})

check("IdempotentProducer.close(final message): atomic append + close, retry-safe", async () => {
  const h = await create("producer-close", JSON_CT)
  const log = []
  const p = new IdempotentProducer(h, "closer", { lingerMs: 0, fetch: duplicatingFetch(log) })
  p.append(JSON.stringify({ step: 1 }))
  p.append(JSON.stringify({ step: 2 }))
  const result = await p.close(JSON.stringify({ done: true }))
  const head = await h.head()
  assert.equal(head.streamClosed, true, "HEAD streamClosed after producer close")
  assert.equal(result.finalOffset, head.offset, "close() final offset == HEAD tail offset")
  const res = await h.stream({ live: false })
  assert.deepEqual(await res.json(), [{ step: 1 }, { step: 2 }, { done: true }])
  assert.equal(res.streamClosed, true)
  await expectError(() => h.append(JSON.stringify("late")), isClosedError, "append after producer close")
})

check("appendStream: streamed (chunked) request body", async () => {
  const h = await create("append-stream", OCTET)
  const pieces = Array.from({ length: 20 }, (_, i) => `piece-${i}|`)
  async function* gen() {
    for (const p of pieces) {
      yield p
      await sleep(2)
    }
  }
  await h.appendStream(gen())
  const res = await h.stream({ live: false })
  assert.equal(dec.decode(await res.body()), pieces.join(""))
})

check("writable(): piping a ReadableStream appends everything and closes the stream", async () => {
  const h = await create("writable", OCTET)
  const pieces = Array.from({ length: 30 }, (_, i) => `w${i},`)
  const src = new ReadableStream({
    start(ctl) {
      for (const p of pieces) ctl.enqueue(p)
      ctl.close()
    },
  })
  await src.pipeTo(h.writable({ lingerMs: 1 }))
  const res = await h.stream({ live: false })
  assert.equal(dec.decode(await res.body()), pieces.join(""))
  assert.equal(res.streamClosed, true, "writable() closes the stream at the end")
})

check("close: EOF semantics (HEAD, reads, append rejected, idempotent close, close with body rejected)", async () => {
  const h = await create("close", OCTET)
  await h.append("payload")
  const { finalOffset } = await h.close()
  const head = await h.head()
  assert.equal(head.streamClosed, true, "HEAD streamClosed")
  assert.equal(finalOffset, head.offset, "close() final offset == HEAD tail offset")

  const res = await h.stream({ live: false })
  assert.equal(dec.decode(await res.body()), "payload")
  assert.equal(res.streamClosed, true, "catch-up streamClosed")

  const err = await expectError(() => h.append("more"), isClosedError, "append after close")
  assert.equal(closedErrorOffset(err), finalOffset, "final offset reported by the rejected append")
  const again = await h.close()
  assert.equal(again.finalOffset, finalOffset, "second close() (idempotent)")
  await expectError(() => h.close({ body: "x" }), isClosedError, "close with body after close")

  // Live readers of a closed stream end at once instead of waiting.
  for (const live of ["long-poll", "sse"]) {
    const t0 = Date.now()
    const r = await h.stream({ live })
    const st = follow(r, "subscribeBytes")
    await st.until((s) => s.ended && s.streamClosed, `${live} reader on a closed stream ends`, longPollMs + 3000)
    assert.equal(st.streamClosed, true, `${live}: streamClosed`)
    assert.equal(st.bytes.toString(), "payload", `${live}: bytes`)
    assert.ok(Date.now() - t0 < longPollMs, `${live}: reader waited ${Date.now() - t0} ms on a closed stream`)
  }
})

check("create closed: a stream created closed with a body", async () => {
  const h = await create("created-closed", TEXT, { closed: true, body: "complete content" })
  const head = await h.head()
  assert.equal(head.streamClosed, true)
  const res = await h.stream({ live: false })
  assert.equal(await res.text(), "complete content")
  assert.equal(res.streamClosed, true)
})

check("Stream-Seq: writer coordination rejects a non-increasing seq", async () => {
  const url = streamURL("stream-seq")
  const h = await DurableStream.create({ url, contentType: OCTET, batching: false })
  await h.append("one", { seq: "0001" })
  await h.append("two", { seq: "0002" })
  await expectError(
    () => h.append("stale", { seq: "0002" }),
    isConflict,
    "append with a repeated seq",
  )
  const res = await h.stream({ live: false })
  assert.equal(dec.decode(await res.body()), "onetwo")
})

check("errors: content-type mismatch on append is rejected", async () => {
  const url = streamURL("ct-mismatch")
  const h = await DurableStream.create({ url, contentType: JSON_CT, batching: false })
  await expectError(
    () => h.append("plain", { contentType: "text/plain" }),
    isConflict,
    "append with another content type",
  )
})

check("delete: then HEAD says missing, reads/appends/delete fail with not found; a live reader ends", async () => {
  const h = await create("delete", OCTET)
  await h.append("doomed")
  const res = await h.stream({ live: "long-poll" })
  const st = follow(res, "subscribeBytes")
  await st.until((s) => s.upToDate && s.bytes.toString() === "doomed", "reader before delete")

  await h.delete()
  const head = await h.head()
  assert.equal(head.exists, false, "HEAD after delete")
  await expectError(() => stream({ url: h.url, live: false }), isNotFound, "read after delete")
  await expectError(() => h.append("more"), isNotFound, "append after delete")
  await expectError(() => h.delete(), isNotFound, "second delete")

  // The reader waiting in a long poll learns of the deletion.
  await st.until((s) => s.ended, "live reader ends after delete", longPollMs + 5000)
  assert.ok(st.error && isNotFound(st.error), `live reader error: ${st.error?.message ?? "none"}`)
  st.stop()
})

// ---------------------------------------------------------------------------
// Runner

// An unexpected rejection inside the client must fail the run, not kill it.
const stray = []
process.on("unhandledRejection", (err) => stray.push(err))

let passed = 0
let failed = 0
const t0 = Date.now()

// The client retries network errors forever, so a server that is not there
// would make every check run into its time limit: fail fast instead.
try {
  await fetch(new URL(`${runId}/preflight`, streamsBase), { method: "HEAD", signal: AbortSignal.timeout(5000) })
} catch (err) {
  console.log(`FAIL server not reachable at ${streamsBase}: ${err.cause?.message ?? err.message}`)
  console.log(`INTEROP passed=0 failed=1 total=1 client=@durable-streams/client@${clientVersion}`)
  process.exit(1)
}
for (const c of checks) {
  if (!only.test(c.name)) continue
  const start = Date.now()
  let timer
  try {
    await Promise.race([
      c.fn(),
      new Promise((_, reject) => {
        const limit = c.timeoutMs ?? checkTimeoutMs
        timer = setTimeout(() => reject(new Error(`timed out after ${limit} ms`)), limit)
      }),
    ])
    passed++
    console.log(`ok   ${c.name} (${Date.now() - start} ms)`)
    for (const n of notes.splice(0)) console.log(`     note: ${n}`)
  } catch (err) {
    failed++
    console.log(`FAIL ${c.name} (${Date.now() - start} ms)\n     ${String(err?.stack ?? err).replaceAll("\n", "\n     ")}`)
  } finally {
    clearTimeout(timer)
  }
}
if (stray.length > 0) {
  failed++
  for (const err of stray) console.log(`FAIL unhandled rejection: ${err?.stack ?? err}`)
}
console.log(`INTEROP passed=${passed} failed=${failed} total=${passed + failed} client=@durable-streams/client@${clientVersion} elapsed=${((Date.now() - t0) / 1000).toFixed(1)}s`)
process.exit(failed > 0 ? 1 : 0)
