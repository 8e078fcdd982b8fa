// Stands in for DurableStreamTestServer of @durable-streams/server when
// scripts/client-conformance.sh runs the upstream client conformance runner:
// the script rewrites the runner's import (in its temporary copy) to this
// module.
//
// Without DS_CONFORMANCE_SERVER_URL this starts the reference exactly as the
// runner would. With it (the root URL of a durable-streams server), the
// runner talks to that server instead:
//   - the URL handed to the runner and its client adapters is the server's
//     streams root, <root>/v1/stream (DS_CONFORMANCE_STREAMS_PREFIX), since
//     the runner puts stream paths right after it, as the reference serves
//     streams at its root;
//   - the runner's fault injection, POST/DELETE <url>/_test/inject-error, is
//     sent to <root>/_test/inject-error instead, with the fault's path moved
//     under the streams prefix. The runner calls the global fetch for it in
//     this process, so that is where the request is redirected.
import { DurableStreamTestServer as Reference } from "@durable-streams/server"

const CONTROL = "/_test/inject-error"

export class DurableStreamTestServer {
  constructor(options) {
    this.options = options
    this.reference = null
    this.url = ""
  }

  async start() {
    const root = process.env.DS_CONFORMANCE_SERVER_URL
    if (!root) {
      this.reference = new Reference(this.options)
      await this.reference.start()
      this.url = this.reference.url
      return this.url
    }
    const base = root.replace(/\/+$/, "")
    const prefix = process.env.DS_CONFORMANCE_STREAMS_PREFIX ?? "/v1/stream"
    this.url = base + prefix
    redirectFaultControl(this.url + CONTROL, base + CONTROL, prefix)
    return this.url
  }

  async stop() {
    await this.reference?.stop()
  }
}

// redirectFaultControl makes fetch send requests for from to to, moving the
// "path" of a JSON body under prefix.
function redirectFaultControl(from, to, prefix) {
  const fetch = globalThis.fetch
  globalThis.fetch = async (input, init) => {
    if (String(input) !== from) return fetch(input, init)
    if (init?.body) {
      const fault = JSON.parse(init.body)
      if (typeof fault.path === "string") fault.path = prefix + fault.path
      init = { ...init, body: JSON.stringify(fault) }
    }
    return fetch(to, init)
  }
}
