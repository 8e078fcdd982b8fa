// Starts the upstream Node reference server, file-backed, for the benchmarks:
//   node start.mjs <port> <data-dir>
import { DurableStreamTestServer } from "@durable-streams/server";

const [port, dataDir] = process.argv.slice(2);
if (!port || !dataDir) {
  console.error("usage: node start.mjs <port> <data-dir>");
  process.exit(2);
}
const server = new DurableStreamTestServer({
  port: Number(port),
  host: "127.0.0.1",
  dataDir,
  longPollTimeout: 30000,
});
await server.start();
console.log(`reference server on ${server.baseUrl}, data in ${dataDir}`);
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, async () => {
    await server.stop();
    process.exit(0);
  });
}
