// Serves the bundled page from two loopback origins (two ports): the first is the origin the
// server is told to allow, the second one it is not. Prints "ALLOWED DENIED" on one line, then
// serves until it is terminated.
//
//   node serve.mjs PAGE_DIR
import { serveStatic } from "../lib/browser.mjs";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node serve.mjs PAGE_DIR");
  process.exit(2);
}
const allowed = await serveStatic(dir);
const denied = await serveStatic(dir);
process.stdout.write(`${allowed.origin} ${denied.origin}\n`);

// Nothing to flush: stop at once, whatever connections the browser still holds open.
process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
