// Headless Chromium for the client tests: Debian's /usr/bin/chromium driven by playwright-core
// (nothing downloads a browser), with the flags this closed network needs, plus a small static
// server on its own loopback port, so a page can be served from a second origin.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

/** Launches headless Chromium with Fetch's strict CORS header rules enabled (playwright gives
 * every launch a fresh, empty profile of its own). */
export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // `Access-Control-Allow-Headers: *` does not cover Authorization (Fetch standard); with
      // this Chromium enforces that, so a server that answers `*` fails the test.
      "--enable-features=CorsNonWildcardRequestHeadersSupport",
    ],
  });
}

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
};

/** Serves `root` on 127.0.0.1:<free port>; resolves to { origin, close }. */
export async function serveStatic(root) {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname));
    if (path.includes("..")) {
      res.writeHead(400).end();
      return;
    }
    try {
      const file = join(root, path === "/" ? "index.html" : path);
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[extname(file)] || "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404).end("not found");
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Counts checks and prints the closing line CI reads ("N passed, N failed"). */
export class Checks {
  constructor(name) {
    this.name = name;
    this.passed = 0;
    this.failed = 0;
  }
  check(what, ok, detail = "") {
    if (ok) {
      this.passed += 1;
      console.log(`ok   ${what}`);
    } else {
      this.failed += 1;
      console.log(`FAIL ${what}${detail ? `: ${detail}` : ""}`);
    }
  }
  equal(what, actual, expected) {
    const a = JSON.stringify(actual);
    const e = JSON.stringify(expected);
    this.check(what, a === e, `got ${a}, want ${e}`);
  }
  finish() {
    console.log(`${this.name}: ${this.passed} passed, ${this.failed} failed`);
    process.exitCode = this.failed === 0 && this.passed > 0 ? 0 : 1;
  }
}
